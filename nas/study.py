"""The Optuna study behind a search: where it lives, its objectives, its Pareto front.

The study is the single source of truth: every proposal is an Optuna trial with the candidate's Spec
and cost in its user attributes, and every outcome is told back to it as COMPLETE (validation
accuracy, MACs), PRUNED (stopped early, with its partial curve) or FAIL (with the error).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

OBJECTIVES = ("accuracy", "macs")
DIRECTIONS = ("maximize", "minimize")

optuna.logging.set_verbosity(logging.WARNING)


def default_storage(run_dir: Path) -> str:
    """SQLite file inside the run directory: one driver, no server."""
    return f"sqlite:///{(run_dir / 'study.db').resolve()}"


def open_study(
    name: str, storage: str, *, sampler: optuna.samplers.BaseSampler | None = None, create: bool = True
) -> optuna.Study:
    """Create or load the two-objective study ``name`` (accuracy up, MACs down)."""
    if create:
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=sampler,
            directions=list(DIRECTIONS),
            load_if_exists=True,
        )
        with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in use
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(OBJECTIVES))
        return study
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler)


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """Completed trials that no other completed trial dominates, by accuracy (then MACs)."""
    return sorted(study.best_trials, key=lambda t: (-t.values[0], t.values[1]))


def hypervolume_2d(points: Sequence[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by (accuracy up, cost down) ``points`` and bounded by ``reference``
    (a worst accuracy and a worst cost)."""
    ref_acc, ref_cost = reference
    useful = sorted((c, a) for a, c in points if a > ref_acc and c < ref_cost)
    volume, best_acc = 0.0, ref_acc
    for i, (cost, acc) in enumerate(useful):
        best_acc = max(best_acc, acc)
        next_cost = useful[i + 1][0] if i + 1 < len(useful) else ref_cost
        volume += (next_cost - cost) * (best_acc - ref_acc)
    return volume


@dataclass
class StudySummary:
    complete: int
    pruned: int
    failed: int
    running: int
    best_accuracy: float | None
    best_macs: int | None
    front_size: int

    @property
    def finished(self) -> int:
        return self.complete + self.pruned + self.failed


def interrupted(trial: FrozenTrial) -> bool:
    return bool(trial.user_attrs.get("interrupted"))


def summarize(study: optuna.Study) -> StudySummary:
    trials = study.get_trials(deepcopy=False)
    count = lambda state: sum(1 for t in trials if t.state == state and not interrupted(t))  # noqa: E731
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: (t.values[0], -t.values[1]), default=None)
    return StudySummary(
        complete=len(complete),
        pruned=count(TrialState.PRUNED),
        failed=count(TrialState.FAIL),
        running=count(TrialState.RUNNING),
        best_accuracy=best.values[0] if best else None,
        best_macs=int(best.values[1]) if best else None,
        front_size=len(study.best_trials) if complete else 0,
    )


def fail_stale_trials(study: optuna.Study, reason: str = "interrupted") -> list[int]:
    """Mark trials left RUNNING by a driver that stopped as FAIL (``interrupted`` user attr), so the
    study is consistent and those candidates are proposed and run again."""
    stale = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        optuna.trial.Trial(study, trial._trial_id).set_user_attr("interrupted", reason)
        study.tell(trial.number, state=TrialState.FAIL)
        stale.append(trial.number)
    return stale
