"""Exhaustive enumeration of a small space, as "Searching for Activation Functions" did for its small
spaces: every distinct, valid candidate once, in a fixed order.

The grid is the product of the space's decisions with conditions respected (an inactive decision is
absent, not enumerated). Points whose Spec fails ``space.validate`` (e.g. a numerically unsafe
activation) or hashes equal to an earlier point (``space.canonical_hash``: an equivalent expression,
an isomorphic cell) are skipped, so a study of ``grid_size()`` trials trains each candidate once.
Enumeration is lazy, so a huge space costs only the points actually asked for.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from search_spaces import SearchSpace

GRID_ID = "grid:id"


class GridSampler(BaseSampler):
    """Propose the space's grid points one by one (relative sampling), each at most once per study.

    Which points are taken is read from the study (a system attribute per trial), so a resumed study
    carries on where it stopped. Once the grid is exhausted it starts again from the first point and
    warns: set ``search.trials`` to `grid_size`.

    Args:
        space: the search space to enumerate.
        seed: unused (the order is fixed); accepted for the common factory signature.
        dedupe: skip points whose ``canonical_hash`` was seen, and points that fail ``validate``.

    Example::

        sampler = GridSampler(space=get_space("activation", unary=["x", "sigmoid", "tanh"]))
        study = optuna.create_study(sampler=sampler)
    """

    def __init__(self, *, space: SearchSpace, seed: int | None = None, dedupe: bool = True) -> None:
        self._space = space
        self._dedupe = dedupe
        self._points: list[dict[str, Any]] = []
        self._complete = False

    def _raw(self) -> Iterator[dict[str, Any]]:
        decisions = self._space.decisions()

        def walk(i: int, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
            if i == len(decisions):
                yield dict(params)
                return
            decision = decisions[i]
            if decision.condition is not None:
                parent, values = decision.condition
                if parent not in params or params[parent] not in values:
                    yield from walk(i + 1, params)
                    return
            for choice in decision.choices:
                params[decision.name] = choice
                yield from walk(i + 1, params)
                del params[decision.name]

        return walk(0, {})

    def _filtered(self) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        for params in self._raw():
            if self._dedupe:
                try:
                    spec = self._space.decode(params)
                    self._space.validate(spec)
                except ValueError:
                    continue
                key = self._space.canonical_hash(spec)
                if key in seen:
                    continue
                seen.add(key)
            yield params

    def _point(self, index: int) -> dict[str, Any] | None:
        """The grid point ``index``, or None past the end; enumerates lazily as far as needed."""
        if index >= len(self._points) and not self._complete:
            target = max(index + 1, 2 * len(self._points), 16)
            points: list[dict[str, Any]] = []
            for params in self._filtered():  # restart: generators do not pickle, lists do
                points.append(params)
                if len(points) >= target:
                    break
            else:
                self._complete = True
            self._points = points
        return self._points[index] if index < len(self._points) else None

    def grid_size(self) -> int:
        """Number of distinct valid points (enumerates the whole grid)."""
        while not self._complete:
            self._point(len(self._points))
        return len(self._points)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {d.name: CategoricalDistribution(list(d.choices)) for d in self._space.decisions()}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        taken = [t.system_attrs[GRID_ID] for t in study.get_trials(deepcopy=False) if GRID_ID in t.system_attrs]
        index = max(taken, default=-1) + 1
        point = self._point(index)
        if point is None:
            warnings.warn(f"grid of {len(self._points)} points exhausted; starting again from the first", stacklevel=2)
            index = index % max(len(self._points), 1)
            point = self._point(index) or {}
        study._storage.set_trial_system_attr(trial._trial_id, GRID_ID, index)
        return dict(point)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        # a decision outside the relative space (not expected): its first choice, deterministically
        return param_distribution.to_external_repr(0) if isinstance(param_distribution, CategoricalDistribution) else None

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: list[float] | None
    ) -> None:
        return None
