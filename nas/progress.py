"""Live progress of a search in the terminal (rich); the tables printed after it are `nas.tables`."""

from __future__ import annotations

import time
from ray.tune import Callback
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from nas.tables import describe_cell, fit_columns, front_table
from nas.trial_loop import SearchCounts
from workers.metrics import METRICS, Metric

__all__ = ["LiveProgress", "describe_cell", "fit_columns", "front_table"]


class LiveProgress(Callback):
    """A Ray Tune callback that redraws a progress bar and a one-line table on every loop step."""

    def __init__(self, counts: SearchCounts, *, total: int, done_before: int, console: Console | None = None,
                 metric: Metric = METRICS["accuracy"]) -> None:
        self.counts = counts
        self.metric = metric
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
        return {"counts": self.counts, "total": self.total, "done_before": self.done_before, "metric": self.metric}

    def _render(self) -> Group:
        c = self.counts
        table = Table(box=None, pad_edge=False)
        for column in ("running", "complete", "pruned", "failed", f"best {self.metric.label}", "last error"):
            table.add_column(column)
        best = self.metric.fmt(c.best_score)
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
