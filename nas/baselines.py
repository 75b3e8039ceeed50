"""Known cells in every study: enqueued as the first trials, tagged, and the yardstick for what the
search finds.

A baseline is an ordinary trial of the study whose params are a named cell of the space (see
`search_spaces.SearchSpace.known_cells`) and whose user attr ``baseline`` holds its tag
(``"gru-h32"``): it is proposed, trained with the same recipe, stopped and recorded exactly like
any candidate. `best_baseline_within` finds, for any cell, the best baseline that costs no more.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.study import is_repeat
from workers.metrics import Metric

BASELINE_ATTR = "baseline"


def is_baseline(trial: FrozenTrial) -> bool:
    return BASELINE_ATTR in trial.user_attrs


def enqueue_baselines(study: optuna.Study, cells: dict[str, dict[str, Any]]) -> list[str]:
    """Enqueue each known cell once per study: a tag that any trial already carries (finished,
    running, waiting, or interrupted and continued) is skipped, so a resumed study or a second
    driver does not add them again. Returns the tags enqueued now."""
    held = {t.user_attrs.get(BASELINE_ATTR) for t in study.get_trials(deepcopy=False)}
    added = []
    for tag, params in cells.items():
        if tag not in held:
            study.enqueue_trial(params, user_attrs={BASELINE_ATTR: tag})
            added.append(tag)
    return added


@dataclass(frozen=True)
class Score:
    """A cell's result: the search's single run, or the mean and s.d. over confirmation seeds. ``val``
    and ``test`` are values of the study's metric (`nas.study.study_metric`), in its direction."""

    number: int
    macs: int
    val: float
    test: float
    val_sd: float = math.nan
    test_sd: float = math.nan
    seeds: int = 1
    baseline: str | None = None


def best_of(scores: Sequence[Score], metric: Metric) -> Score | None:
    """The score with the best validation value (the cheaper one on a tie); None for none."""
    return min(scores, key=lambda s: metric.rank(s.val, s.macs), default=None)


def best_baseline_within(baselines: Sequence[Score], macs: int, metric: Metric) -> Score | None:
    """The best baseline with no more than ``macs`` MACs (None: every baseline costs more)."""
    return best_of([b for b in baselines if b.macs <= macs], metric)


def single_run_scores(study: optuna.Study) -> list[Score]:
    """Every completed cell's search result (no confirmation), once: a trial that repeated an
    evaluated cell (`nas.study.is_repeat`) is that cell, already listed -- a repeat of a baseline is not
    a found cell."""
    return [
        Score(t.number, int(t.values[1]), t.values[0], float(t.user_attrs.get("test_score", math.nan)),
              baseline=t.user_attrs.get(BASELINE_ATTR))
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not is_repeat(t)
    ]


def front_of(scores: Sequence[Score], metric: Metric) -> list[Score]:
    """Scores no other score dominates (validation in the metric's direction, MACs down), best first."""
    val = lambda s: metric.oriented(s.val)  # noqa: E731
    front = [
        s for s in scores
        if not any(val(o) >= val(s) and o.macs <= s.macs and (val(o) > val(s) or o.macs < s.macs) for o in scores)
    ]
    return sorted(front, key=lambda s: metric.rank(s.val, s.macs))


def nondominated_order(scores: Sequence[Score], metric: Metric, count: int) -> list[Score]:
    """The first ``count`` scores in non-dominated order: the front best first, then the front of
    what is left, and so on (NSGA-II's sorting), so ``count`` cells are named even when one cheap,
    accurate cell dominates all the others."""
    left, out = list(scores), []
    while left and len(out) < count:
        layer = front_of(left, metric)
        out += layer
        chosen = {id(s) for s in layer}
        left = [s for s in left if id(s) not in chosen]
    return out[:count]


def summary_line(scores: Sequence[Score], metric: Metric) -> str | None:
    """One sentence: the best found cell against the best baseline, and against the best baseline
    it does not out-cost. None when the study holds no found cell or no baseline."""
    found = [s for s in scores if s.baseline is None]
    baselines = [s for s in scores if s.baseline is not None]
    best, top = best_of(found, metric), best_of(baselines, metric)
    if best is None or top is None:
        return None
    what = f"confirmed over {best.seeds} seeds, " if best.seeds > 1 else ""
    gain, fmt = metric.gain(best.val, top.val), metric.fmt
    line = (
        f"best found cell: trial {best.number}, val {metric.label} {fmt(best.val)} at {best.macs:,} MACs "
        f"({what}test {fmt(best.test)}); best baseline: {top.baseline}, val {fmt(top.val)} at {top.macs:,} MACs: "
        f"{'beats' if gain > 0 else 'trails' if gain < 0 else 'ties'} it by "
        f"{abs(best.val - top.val):.{metric.digits}f} at {best.macs / top.macs:.2f}x its MACs"
    )
    within = best_baseline_within(baselines, best.macs, metric)
    if within is not None and within is not top:
        line += (f"; the best baseline at no more MACs is {within.baseline} "
                 f"(val {fmt(within.val)}, {best.val - within.val:+.{metric.digits}f})")
    return line
