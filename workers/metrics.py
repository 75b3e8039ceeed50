"""How a trial is scored: the metric of its task, which way is better, and the range of its values.

Every part of a search that compares trials -- the study's directions, the Pareto front and its
hypervolume, the curve stopper's bounds, the proposers' rewards, the tables and plots -- reads the
metric from here, so a minimised, unbounded metric (bits per character, MSE) is handled like
accuracy. A trial's score is the metric on the validation split; the test split is only reported.

Example::

    metric = get_metric("bpc")
    metric.better(1.52, 1.61)       # True: fewer bits per character
    metric.oriented(1.52)           # -1.52: larger is better, for code that only maximises
    metric.fmt(1.5234)              # '1.523'
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Direction = Literal["maximize", "minimize"]

@dataclass(frozen=True)
class Metric:
    """A validation score: its name in configs, a column label, a phrase for axes and captions,
    its direction, the range its values can take (None: unbounded on that side), and the task
    objectives (`search_spaces.Task.objective`) it applies to."""

    name: str
    label: str
    phrase: str
    direction: Direction
    lower: float | None
    upper: float | None
    objectives: tuple[str, ...]
    digits: int = 4

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    def oriented(self, value: float) -> float:
        """``value`` turned so that larger is better (for code that only maximises)."""
        return value if self.maximize else -value

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b`` (NaN is never better)."""
        return self.oriented(a) > self.oriented(b)

    def best(self, values: Iterable[float]) -> float | None:
        """The best of ``values`` ignoring NaN; None when there is none."""
        finite = [v for v in values if not math.isnan(v)]
        return max(finite, key=self.oriented, default=None)

    @property
    def worst(self) -> float:
        """The worst value the metric can take (infinite where it is unbounded that way)."""
        bound = self.lower if self.maximize else self.upper
        if bound is not None:
            return bound
        return -math.inf if self.maximize else math.inf

    def fmt(self, value: float | None) -> str:
        """``value`` with the metric's precision; ``-`` for None or NaN."""
        if value is None or math.isnan(value):
            return "-"
        return f"{value:.{self.digits}f}"

    def rank(self, score: float, cost: float) -> tuple[float, float]:
        """Sort key of a (score, cost) pair: the best score first, the cheaper one on a tie."""
        return -self.oriented(score), cost

    def gain(self, a: float, b: float) -> float:
        """How much better ``a`` is than ``b`` in the metric's units (positive: ``a`` is better)."""
        return self.oriented(a) - self.oriented(b)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", "acc", "accuracy", "maximize", 0.0, 1.0, ("classify", "regress")),
        Metric("balanced_accuracy", "bal acc", "balanced accuracy", "maximize", 0.0, 1.0, ("classify",)),
        Metric("macro_f1", "F1", "macro-F1", "maximize", 0.0, 1.0, ("classify",)),
        Metric("mse", "MSE", "mean squared error", "minimize", 0.0, None, ("regress",), digits=5),
        Metric("mae", "MAE", "mean absolute error", "minimize", 0.0, None, ("regress",), digits=5),
        Metric("bpc", "bpc", "bits per character", "minimize", 0.0, None, ("lm",), digits=3),
        Metric("perplexity", "ppl", "perplexity", "minimize", 1.0, None, ("lm",), digits=2),
    )
}
DEFAULT_METRIC = {"classify": "accuracy", "regress": "mse", "lm": "bpc"}


def get_metric(name: str) -> Metric:
    """The metric called ``name``; a ValueError naming the choices for an unknown one."""
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; choose one of {sorted(METRICS)}") from None


def check_metric(name: str, objective: str) -> Metric:
    """The metric ``name`` if it scores tasks of ``objective``; else a ValueError saying which do."""
    metric = get_metric(name)
    if objective not in metric.objectives:
        fits = sorted(m.name for m in METRICS.values() if objective in m.objectives)
        raise ValueError(f"metric {name!r} does not score {objective!r} tasks; choose one of {fits}")
    return metric
