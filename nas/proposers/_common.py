"""Helpers shared by our own proposers: a base sampler over a search space, objective orientation
and duplicate detection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import StudyDirection
from optuna.trial import TrialState

if TYPE_CHECKING:
    import optuna

    from search_spaces import SearchSpace

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def relative_space(space: SearchSpace) -> dict[str, BaseDistribution]:
    """Every decision of ``space`` as a categorical distribution (inactive ones are simply not used)."""
    return {d.name: CategoricalDistribution(list(d.choices)) for d in space.decisions()}


class SpaceSampler(BaseSampler):
    """What our proposers share: they sample the whole space relatively (``sample_relative``), and
    anything outside it (a param the space does not declare) is drawn at random."""

    def __init__(self, space: SearchSpace, seed: int | None) -> None:
        self._space = space
        self._rng = np.random.default_rng(seed)
        self._random = RandomSampler(seed=seed)

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self._random.reseed_rng()

    def infer_relative_search_space(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return relative_space(self._space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)


def oriented(values: Sequence[float], directions: Sequence[StudyDirection]) -> list[float]:
    """``values`` turned so that larger is better for every objective."""
    return [v if d == StudyDirection.MAXIMIZE else -v for v, d in zip(values, directions)]


# user attrs holding the objectives after the first, known before training (the search writes
# them when it settles a proposal), so a stopped trial has them too
COST_ATTRS = ("macs",)


def partial_values(trial: optuna.trial.FrozenTrial, directions: Sequence[StudyDirection]) -> list[float] | None:
    """The objectives a stopped (PRUNED) trial reached, in the study's units; None if unknown.

    The first objective is the best score of its partial curve (user attr ``curve``, one value per
    epoch, as the search records it; the search keeps the best epoch's weights, so this is what the
    trial would report had it ended there: a bound of its final value), else its last intermediate
    value (a study written by ``trial.report``). The others are the costs known before training
    (`COST_ATTRS`). A proposer learns from it what the trial showed before it was stopped, rather
    than treating it as a failure.
    """
    if not directions:  # (not ``trial.state``: a sampler's ``after_trial`` sees it still RUNNING)
        return None
    curve = [float(v) for v in trial.user_attrs.get("curve") or [] if v is not None and np.isfinite(v)]
    if curve:
        score = max(curve) if directions[0] == StudyDirection.MAXIMIZE else min(curve)
    elif trial.intermediate_values:
        score = float(trial.intermediate_values[max(trial.intermediate_values)])
    else:
        return None
    costs = [trial.user_attrs.get(name) for name in COST_ATTRS[: len(directions) - 1]]
    if len(costs) < len(directions) - 1 or any(c is None for c in costs) or not np.isfinite(score):
        return None
    return [score, *(float(c) for c in costs)]


def evaluated(
    trials: Sequence[optuna.trial.FrozenTrial], directions: Sequence[StudyDirection]
) -> list[tuple[optuna.trial.FrozenTrial, list[float]]]:
    """Completed trials with their values and stopped ones with `partial_values`, in order."""
    out = []
    for t in trials:
        values = t.values if t.state == TrialState.COMPLETE else partial_values(t, directions)
        if values is not None:
            out.append((t, list(values)))
    return out


class SeenCells:
    """The cells a study has already proposed, by the space's canonical hash (isomorphic cells match).

    Finished trials are hashed once and cached; running ones are re-read each time, since a
    define-by-run trial may not have suggested all its params yet.
    """

    def __init__(self, space: SearchSpace) -> None:
        self._space = space
        self._finished: dict[int, str] = {}

    def key(self, params: dict[str, Any]) -> str:
        try:
            return self._space.canonical_hash(self._space.decode(params))
        except Exception:  # an undecodable assignment is still a distinct proposal
            return repr(sorted(params.items(), key=lambda kv: kv[0]))

    def keys(self, study: optuna.Study) -> set[str]:
        out: set[str] = set()
        names = {d.name for d in self._space.decisions()}
        for t in study.get_trials(deepcopy=False):
            if t.number in self._finished:
                out.add(self._finished[t.number])
                continue
            params = {k: v for k, v in t.params.items() if k in names}
            if not params:
                continue
            k = self.key(params)
            out.add(k)
            if t.state in FINISHED:
                self._finished[t.number] = k
        return out
