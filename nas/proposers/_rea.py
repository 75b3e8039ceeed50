"""Regularised evolution (Real et al., "Regularized Evolution for Image Classifier Architecture
Search", 2019) as an Optuna sampler: the strongest classic baseline on NAS-Bench-201.

The population is the ``population_size`` youngest evaluated trials (age = trial number, so the
oldest die first): completed ones with their values, and trials an early-stopping policy stopped
with what they had reached (`partial_values`: the best score of their partial curve, and their
cost), so a search that stops most trials still evolves from all of them rather than waiting for a
population of survivors. Before that many were evaluated, cells are drawn uniformly at random, unless
the study holds known cells (trials tagged ``baseline``): then evolution starts from them at once,
over the trials there are. A child is the winner of a tournament of ``tournament_size`` random
members mutated by the space (`SearchSpace.mutate`: one active decision changed, conditional
decisions repaired).

Multi-objective studies: each tournament draws random weights and picks the member with the best
weighted Chebyshev score of its per-objective ranks in the population, so successive tournaments
pull towards different parts of the Pareto front (ParEGO-style). The sampler keeps no state beyond
its RNG: the study is the population, so a resumed study carries on as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.trial import TrialState

from nas.proposers._common import SeenCells, SpaceSampler, evaluated, oriented

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial

    from search_spaces import SearchSpace


class REASampler(SpaceSampler):
    """Regularised evolution over a space's decisions.

    Args:
        space: the `search_spaces.SearchSpace` whose ``decisions()`` are evolved.
        seed: seed of the sampler's RNG.
        population_size: completed trials alive at once (the youngest ones).
        tournament_size: members drawn per tournament; at most ``population_size``.
        dedup: retry a mutation (up to 20 times) whose cell the study has already seen.

    Example::

        space = search_spaces.get_space("nb201")
        study = optuna.create_study(direction="maximize", sampler=REASampler(space=space, seed=0))
        study.optimize(lambda t: score(space.suggest(t)), n_trials=100)
    """

    def __init__(
        self,
        *,
        space: SearchSpace,
        seed: int | None = None,
        population_size: int = 20,
        tournament_size: int = 5,
        dedup: bool = True,
    ) -> None:
        if not isinstance(population_size, int) or population_size < 2:
            raise ValueError(f"population_size: must be an integer >= 2, got {population_size!r}")
        if not isinstance(tournament_size, int) or not 1 <= tournament_size <= population_size:
            raise ValueError(
                f"tournament_size: must be an integer in 1..population_size ({population_size}), "
                f"got {tournament_size!r}"
            )
        super().__init__(space, seed)
        self._population_size = population_size
        self._tournament_size = tournament_size
        self._dedup = dedup
        self._seen = SeenCells(space)



    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        population = self.population(study)
        seeded = any("baseline" in t.user_attrs for t, _ in population)
        if len(population) < (min(2, self._tournament_size) if seeded else self._population_size):
            return self._space.sample_params(self._rng)
        idx = self._rng.choice(len(population), size=min(self._tournament_size, len(population)), replace=False)
        parent = population[self._winner([v for _, v in population], idx, study.directions)][0]
        seen = self._seen.keys(study) if self._dedup else set()
        child = self._mutate(parent.params)
        for _ in range(20):
            if self._seen.key(child) not in seen:
                break
            child = self._mutate(parent.params)
        return child

    def population(self, study: optuna.Study) -> list[tuple[FrozenTrial, list[float]]]:
        """The youngest ``population_size`` evaluated trials (completed or stopped) with their values."""
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        return evaluated(sorted(done, key=lambda t: t.number), study.directions)[-self._population_size :]

    def _winner(self, values: list[list[float]], idx: np.ndarray, directions: Sequence[Any]) -> int:
        """Index in the population (its ``values``) of the tournament's winner among ``idx``."""
        scores = np.array([oriented(v, directions) for v in values])  # (P, K), larger better
        if scores.shape[1] == 1:
            return int(idx[np.argmax(scores[idx, 0])])
        ranks = scores.argsort(axis=0).argsort(axis=0) / max(len(values) - 1, 1)  # 1 = best
        w = self._rng.dirichlet(np.ones(scores.shape[1]))
        chebyshev = (w * (1.0 - ranks[idx])).max(axis=1)  # smaller is better
        return int(idx[np.argmin(chebyshev)])

    def _mutate(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._space.mutate(params, self._rng)
