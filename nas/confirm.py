"""Confirmation: once a search ends, its top front cells and the baselines are retrained with K more
seeds (same data, same recipe), so that "better than the GRU" is a claim about means, not about one
lucky seed on a small validation split.

Results live in the study itself (a study user attr per trial, ``confirm:<number>``, holding the
seeds and each seed's best validation score and the test score at that epoch), so an
interrupted confirmation resumes where it stopped and every command reads the same numbers. Seeds
are ``study seed + 1 .. + K``: the search's own run (seed + 0) is not among them, so the means are
free of the selection that put a cell on the front.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.baselines import BASELINE_ATTR, Score, is_baseline, nondominated_order, single_run_scores
from nas.study import study_metric

PREFIX = "confirm:"


def targets(study: optuna.Study, top: int) -> list[FrozenTrial]:
    """The ``top`` best found cells in non-dominated order (the found cells' own front, then the
    next layers while it has fewer than ``top``; the baselines left out, so a baseline's lucky seed
    does not hide the found cells near it; one trial per cell: an isomorphic twin, recorded with its
    twin's results, would only retrain the same cell; a repeat of a baseline is that baseline), then
    every completed baseline."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    found: dict[int, FrozenTrial] = {}
    seen: set[str] = {t.user_attrs["hash"] for t in complete if is_baseline(t) and "hash" in t.user_attrs}
    for t in complete:
        key = t.user_attrs.get("hash")
        if not is_baseline(t) and (key is None or key not in seen):
            found[t.number] = t
            seen.add(key)
    best = nondominated_order([Score(t.number, int(t.values[1]), t.values[0], math.nan) for t in found.values()],
                              study_metric(study), top)
    baselines = sorted((t for t in complete if is_baseline(t)), key=lambda t: t.number)
    return [found[s.number] for s in best] + baselines


def recorded(study: optuna.Study) -> dict[int, dict[str, list[float]]]:
    """Trial number -> {"seeds": [...], "val": [...], "test": [...]} as stored so far."""
    return {int(k[len(PREFIX):]): v for k, v in study.user_attrs.items() if k.startswith(PREFIX)}


def pending(study: optuna.Study, trials: Sequence[FrozenTrial], seeds: Sequence[int]) -> list[tuple[FrozenTrial, int]]:
    done = recorded(study)
    return [(t, s) for t in trials for s in seeds if s not in done.get(t.number, {}).get("seeds", [])]


def record(study: optuna.Study, number: int, seed: int, val: float, test: float) -> None:
    entry = recorded(study).get(number, {"seeds": [], "val": [], "test": []})
    if seed in entry["seeds"]:
        return
    entry = {"seeds": [*entry["seeds"], seed], "val": [*entry["val"], val], "test": [*entry["test"], test]}
    study.set_user_attr(f"{PREFIX}{number}", entry)


def retrain(spec_json: str, data: dict[str, Any], train: dict[str, Any], seed: int, threads: int = 1) -> tuple[float, float]:
    """Train one cell from scratch with ``seed``: (best validation score, test score at that epoch);
    NaN for a run that diverged. With ``train.folds`` the run is a cross-validation (the mean over
    its folds' models), as the search's trials were."""
    import torch

    from search_spaces import Spec
    from workers.data import load_dataset
    from workers.ensemble import make_trainer
    from workers.training import CandidateDiverged, TrainConfig

    torch.set_num_threads(threads)
    config = TrainConfig.from_dict({**train, "eval_seeds": 1})  # one seed per run; train.folds still cross-validates
    trainer = make_trainer(Spec.from_json(spec_json), load_dataset(**data), config, seed=seed)
    try:
        best = trainer.fit()
    except CandidateDiverged:
        return math.nan, math.nan
    return best.score, best.test_score


def run(
    study: optuna.Study,
    jobs: Sequence[tuple[FrozenTrial, int]],
    *,
    data: dict[str, Any],
    train: dict[str, Any],
    cpus_per_job: float = 1.0,
    on_done: Callable[[], None] | None = None,
) -> None:
    """Retrain ``jobs`` (trial, seed) as Ray tasks, recording each result as it arrives."""
    import ray

    remote = ray.remote(retrain).options(num_cpus=cpus_per_job, max_retries=1)
    threads = max(1, int(cpus_per_job))
    futures = {remote.remote(t.user_attrs["spec"], data, train, seed, threads): (t, seed) for t, seed in jobs}
    try:
        while futures:
            ready, _ = ray.wait(list(futures), num_returns=1)
            trial, seed = futures.pop(ready[0])
            val, test = ray.get(ready[0])
            record(study, trial.number, seed, val, test)
            if on_done is not None:
                on_done()
    finally:
        for future in futures:
            ray.cancel(future, force=True)


def scores(study: optuna.Study) -> list[Score]:
    """Every confirmed cell's mean and s.d. over its confirmation seeds (diverged runs count as
    failures: a cell that diverged on any seed gets a validation score worse than any other)."""
    never = -math.inf if study_metric(study).maximize else math.inf
    trials = {t.number: t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    out = []
    for number, entry in sorted(recorded(study).items()):
        trial = trials.get(number)
        if trial is None or not entry["seeds"]:
            continue
        val, test = np.asarray(entry["val"], dtype=float), np.asarray(entry["test"], dtype=float)
        sd = (lambda a: float(a.std(ddof=1)) if len(a) > 1 else math.nan)  # noqa: E731
        out.append(Score(
            number, int(trial.values[1]),
            float(val.mean()) if np.isfinite(val).all() else never,
            float(test.mean()) if np.isfinite(test).all() else math.nan,
            sd(val), sd(test), len(val), trial.user_attrs.get(BASELINE_ATTR),
        ))
    return out


def study_scores(study: optuna.Study) -> tuple[list[Score], bool]:
    """The confirmed scores when the study has any (True), else every completed trial's single run."""
    confirmed = scores(study)
    return (confirmed, True) if confirmed else (single_run_scores(study), False)
