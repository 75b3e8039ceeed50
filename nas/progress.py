"""Live progress of a search in the terminal, and the tables printed after it (rich)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from optuna.trial import FrozenTrial
from ray.tune import Callback
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from nas.ray_bridge import SearchCounts


class LiveProgress(Callback):
    """A Ray Tune callback that redraws a progress bar and a one-line table on every loop step."""

    def __init__(self, counts: SearchCounts, *, total: int, done_before: int, console: Console | None = None) -> None:
        self.counts = counts
        self.total = total
        self.done_before = done_before
        self.console = console or Console()
        self.progress = Progress(
            TextColumn("[bold]trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.task = self.progress.add_task("trials", total=total, completed=done_before)
        self.live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
        self._last = 0.0

    def __getstate__(self) -> dict:
        """Ray pickles callbacks with its experiment state; a live display does not travel."""
        return {"counts": self.counts, "total": self.total, "done_before": self.done_before}

    def _render(self) -> Group:
        c = self.counts
        table = Table(box=None, pad_edge=False)
        for column in ("running", "complete", "pruned", "failed", "best accuracy", "last error"):
            table.add_column(column)
        best = f"{c.best_accuracy:.4f}" if c.best_accuracy is not None else "-"
        error = (c.last_error or "-")[:60]
        table.add_row(str(c.running), str(c.complete), str(c.pruned), str(c.failed), best, error)
        return Group(self.progress, table)

    def start(self) -> None:
        self.live.start()

    def stop(self) -> None:
        self.refresh(force=True)
        self.live.stop()
        if not self.console.is_terminal:
            self.console.print()  # a non-terminal Live leaves its last line open

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.25:
            return
        self._last = now
        done = self.counts.complete + self.counts.pruned + self.counts.failed
        self.progress.update(self.task, completed=min(self.total, self.done_before + done))
        self.live.update(self._render())

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        self.refresh()

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        self.refresh(force=True)


def front_table(front: Sequence[FrozenTrial], title: str = "Pareto front (accuracy up, MACs down)",
                splits: dict | None = None) -> Table:
    """The front as a table; its caption names the split behind each accuracy (`nas.splits`)."""
    from nas.splits import accuracy_caption, fmt_accuracy

    table = Table(title=title, caption=accuracy_caption(splits), caption_justify="left")
    for column, justify in (("trial", "right"), ("val acc", "right"), ("test acc", "right"), ("MACs", "right"),
                            ("params", "right"), ("cell", "left")):
        wide = column == "cell"
        table.add_column(column, justify=justify, no_wrap=True, overflow="ellipsis")
    rows = [
        (
            str(t.number),
            f"{t.values[0]:.4f}",
            fmt_accuracy(t.user_attrs.get("test_accuracy")),
            f"{int(t.values[1]):,}",
            f"{t.user_attrs.get('params', 0):,}",
            describe_cell(t),
        )
        for t in front
    ]
    return fit_columns(table, rows, flexible={"cell"})


def fit_columns(table: Table, rows: Sequence[Sequence[str]], flexible: set[str], width: int | None = None) -> Table:
    """Add ``rows``; every column keeps its full width except the ``flexible`` ones, which share
    what is left of the terminal and are cut with an ellipsis."""
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
