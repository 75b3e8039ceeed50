"""The tables printed after a search and by ``nas status``: the Pareto front, a trial's cell in one line.

Light on purpose (rich and Optuna's trial type): ``nas status`` imports it without Ray.
"""

from __future__ import annotations

from collections.abc import Sequence

from optuna.trial import FrozenTrial
from rich.console import Console
from rich.table import Table


def front_table(front: Sequence[FrozenTrial], title: str = "Pareto front (accuracy up, MACs down)") -> Table:
    table = Table(title=title)
    for column, justify in (("trial", "right"), ("val acc", "right"), ("test acc", "right"), ("MACs", "right"),
                            ("params", "right"), ("cell", "left")):
        wide = column == "cell"  # the cell wraps onto more lines rather than being cut
        table.add_column(column, justify=justify, no_wrap=not wide, overflow="fold" if wide else "ellipsis")
    rows = [
        (
            str(t.number),
            f"{t.values[0]:.4f}",
            f"{t.user_attrs.get('test_accuracy', float('nan')):.4f}",
            f"{int(t.values[1]):,}",
            f"{t.user_attrs.get('params', 0):,}",
            describe_cell(t),
        )
        for t in front
    ]
    return fit_columns(table, rows, flexible={"cell"})


def fit_columns(table: Table, rows: Sequence[Sequence[str]], flexible: set[str], width: int | None = None) -> Table:
    """Add ``rows``; every column keeps its full width except the ``flexible`` ones, which share
    what is left of the terminal (and wrap or are cut, as each column's overflow says)."""
    width = width or Console().width
    fixed = 0
    for i, column in enumerate(table.columns):
        if str(column.header) not in flexible:
            column.min_width = max([len(str(column.header))] + [len(r[i]) for r in rows])
            fixed += column.min_width
    left = max(10, (width - fixed - 3 * len(table.columns) - 1) // max(1, len(flexible)))
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
