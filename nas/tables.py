"""The tables printed after a search and by ``nas status``: the Pareto front, a trial's cell in one line.

Light on purpose (rich and Optuna's trial type): ``nas status`` imports it without Ray.
"""

from __future__ import annotations

from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from nas import confirm
from nas.baselines import Score, best_baseline_within, front_of, summary_line


def front_table(scores: Sequence[Score], study: optuna.Study, title: str, splits: dict | None = None) -> RenderableType:
    """The Pareto front of ``scores``; each found cell beside the best baseline that costs no more
    MACs (``vs baseline``: the validation difference and that baseline's tag). The caption names the
    metric and the split behind each number (`nas.splits`)."""
    from nas.splits import split_caption
    from nas.study import study_metric

    metric = study_metric(study)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    baselines = [s for s in scores if s.baseline is not None]
    table = Table(title=title, caption=split_caption(splits, metric), caption_justify="left")
    for column in ("trial", f"val {metric.label}", f"test {metric.label}", "MACs", "vs baseline", "cell"):
        wide = column == "cell"  # the cell wraps onto more lines rather than being cut
        table.add_column(column, justify="left" if column in ("cell", "vs baseline") else "right",
                         no_wrap=not wide, overflow="fold" if wide else "ellipsis")
    rows = []
    for s in front_of(scores, metric):
        trial = trials[s.number]
        rival = best_baseline_within(baselines, s.macs, metric)
        if s.baseline is not None:
            versus = f"is {s.baseline}"
        else:
            versus = "-" if rival is None else f"{s.val - rival.val:+.{metric.digits}f} {rival.baseline}"
        rows.append((
            str(s.number),
            metric.fmt(s.val) + (f"±{metric.fmt(s.val_sd)}" if s.seeds > 1 else ""),
            metric.fmt(s.test),
            f"{s.macs:,}",
            versus,
            describe_cell(trial),
        ))
    return fit_columns(table, rows, flexible={"cell"})


def show_front(study: optuna.Study, console: Console, splits: dict | None = None) -> None:
    """The front (from the confirmed means where the study has them) and one line on how the best
    found cell compares with the baselines; ``splits`` default to those the search recorded."""
    from nas.splits import study_splits

    scores, confirmed = confirm.study_scores(study)
    if not scores:
        return
    from nas.study import study_metric

    seeds, metric = max(s.seeds for s in scores), study_metric(study)
    axes = f"{metric.label} {'up' if metric.maximize else 'down'}, MACs down"
    title = (f"confirmed Pareto front (mean over {seeds} more seeds; {axes})" if confirmed
             else f"Pareto front ({axes})")
    console.print(front_table(scores, study, title, splits if splits is not None else study_splits(study)))
    line = summary_line(scores, metric)
    if line:
        console.print(line)


NARROW = 30  # a flexible column narrower than this moves below the table instead of wrapping in a sliver


def fit_columns(table: Table, rows: Sequence[Sequence[str]], flexible: set[str], width: int | None = None) -> RenderableType:
    """Add ``rows``; every column keeps its full width except the ``flexible`` ones, which share
    what is left of the terminal and wrap. Where too little is left for them (a narrow terminal),
    they leave the table and follow it as one wrapped line per row, keyed by the row's first cell."""
    width = width or Console().width
    fixed = 0
    for i, column in enumerate(table.columns):
        if str(column.header) not in flexible:
            column.min_width = max([len(str(column.header))] + [len(r[i]) for r in rows])
            fixed += column.min_width
    left = max(10, (width - fixed - 3 * len(table.columns) - 1) // max(1, len(flexible)))
    if left < NARROW:
        moved = [i for i, c in enumerate(table.columns) if str(c.header) in flexible]
        table.columns = [c for i, c in enumerate(table.columns) if i not in moved]
        for row in rows:
            table.add_row(*(v for i, v in enumerate(row) if i not in moved))
        lines = [Text(f"{table.columns[0].header} {row[0]}: " + "; ".join(row[i] for i in moved if row[i]))
                 for row in rows if any(row[i] for i in moved)]
        return Group(table, *lines)
    for column in table.columns:
        if str(column.header) in flexible:
            column.max_width = left
    for row in rows:
        table.add_row(*row)
    return table


def describe_cell(trial: FrozenTrial, width: int = 200) -> str:
    """A short formula per op node of the trial's cell, e.g. ``h32 n0=tanh(x+h) n1=relu(n0)``."""
    from search_spaces import Spec

    if "spec" not in trial.user_attrs:
        return ""
    spec = Spec.from_json(trial.user_attrs["spec"])
    parts = [f"h{spec.hidden_size}"]
    symbol = {"add": "+", "mul": "*", "sub": "-"}
    for node in spec.op_nodes():
        d = spec.graph.nodes[node]
        args = symbol[d["combine"]].join(src for src, _ in spec.inputs_of(node))
        act = d["activation"]
        parts.append(f"{node}={args}" if act in ("x", "identity") else f"{node}={act}({args})")
    text = " ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"
