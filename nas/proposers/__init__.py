"""Proposers: every one is an `optuna.samplers.BaseSampler`, chosen by name in the config.

`make_sampler(name, ...)` is the one place a config's ``search.sampler`` becomes a sampler, and
`check_options(name, options)` the one place its ``search.sampler_options`` are checked (the config
does so before anything is written). A new proposer is one entry in `PROPOSERS`: a `Proposer` of a
factory taking keyword arguments ``seed`` (int | None), ``space`` (the `search_spaces.SearchSpace`
being searched), ``options`` (the config's ``search.sampler_options`` dict) and ``state_dir`` (a
directory beside the study where a stateful proposer saves and, on resume, restores its state; None
for a throwaway study), and of the sampler class whose keyword arguments are its options.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from nas.proposers._grid import GridSampler
from nas.proposers._rea import REASampler
from nas.proposers._rnn_controller import RNNControllerSampler
from search_spaces import SearchSpace

SamplerFactory = Callable[..., optuna.samplers.BaseSampler]


def _random(
    *, seed: int | None, space: SearchSpace, options: dict[str, Any], state_dir: Path | None
) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed, **options)


def _tpe(
    *, seed: int | None, space: SearchSpace, options: dict[str, Any], state_dir: Path | None
) -> optuna.samplers.BaseSampler:
    opts = {"n_startup_trials": 8, "multivariate": True, "group": True, **options}
    return optuna.samplers.TPESampler(seed=seed, **opts)


class _SharedParamsChildren:
    """NSGA-II's child generation restricted to the params every parent has.

    Optuna's crossover indexes each parent's params by the whole search space and raises KeyError
    when a parent lacks a conditional param (sparsity's ``pattern[...]`` exists only below density
    1). Params outside the shared set are left to the sampler's independent sampling instead.
    """

    def __init__(self, inner: Callable[..., dict[str, Any]]) -> None:
        self.inner = inner

    def __call__(self, study: optuna.Study, search_space: dict[str, Any], parent_population: list) -> dict[str, Any]:
        shared = {k: d for k, d in search_space.items() if all(k in p.params for p in parent_population)}
        return self.inner(study, shared, parent_population)


class _PicklableNSGAIISampler(optuna.samplers.NSGAIISampler):
    """Optuna's NSGA-II, picklable again: Optuna 5.1 guards its generation cache with a
    ``threading.Lock``, which pickle cannot copy (Ray pickles the searcher, resume restores it); a
    copy gets a fresh lock."""

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if "_thread_lock" in state:  # Optuna < 5.1 has none
            state["_thread_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "_thread_lock" in state:
            self._thread_lock = threading.Lock()


def _nsga2(
    *, seed: int | None, space: SearchSpace, options: dict[str, Any], state_dir: Path | None
) -> optuna.samplers.BaseSampler:
    opts = {"population_size": 16, **options}
    sampler = _PicklableNSGAIISampler(seed=seed, **opts)
    if hasattr(sampler, "_child_generation_strategy"):  # Optuna 4-5 keep it here
        sampler._child_generation_strategy = _SharedParamsChildren(sampler._child_generation_strategy)
    return sampler


def _rnn(
    *, seed: int | None, space: SearchSpace, options: dict[str, Any], state_dir: Path | None
) -> optuna.samplers.BaseSampler:
    return RNNControllerSampler(space=space, seed=seed, state_dir=state_dir, **options)


def _rea(
    *, seed: int | None, space: SearchSpace, options: dict[str, Any], state_dir: Path | None
) -> optuna.samplers.BaseSampler:
    return REASampler(space=space, seed=seed, **options)


def _grid(
    *, seed: int | None, space: SearchSpace, options: dict[str, Any], state_dir: Path | None
) -> optuna.samplers.BaseSampler:
    return GridSampler(space=space, seed=seed, **options)


@dataclass(frozen=True)
class Proposer:
    """A registry entry: how to build the sampler, and the class whose keyword arguments (less
    ``seed``, ``space`` and ``state_dir``, which the search supplies) are its options."""

    factory: SamplerFactory
    sampler: type[optuna.samplers.BaseSampler]

    def options(self) -> list[str]:
        params = inspect.signature(self.sampler.__init__).parameters.values()
        return [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
                and p.name not in ("self", "seed", "space", "state_dir")]


PROPOSERS: dict[str, Proposer] = {
    "random": Proposer(_random, optuna.samplers.RandomSampler),
    "tpe": Proposer(_tpe, optuna.samplers.TPESampler),
    "nsga2": Proposer(_nsga2, optuna.samplers.NSGAIISampler),
    "rnn": Proposer(_rnn, RNNControllerSampler),
    "rea": Proposer(_rea, REASampler),
    "grid": Proposer(_grid, GridSampler),
}


def check_options(name: str, options: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming an unknown proposer or an option it does not take."""
    if name not in PROPOSERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(PROPOSERS)}")
    allowed = PROPOSERS[name].options()
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for sampler {name!r}; allowed: {allowed}")


def make_sampler(
    name: str,
    *,
    seed: int | None,
    space: SearchSpace,
    options: dict[str, Any] | None = None,
    state_dir: Path | None = None,
) -> optuna.samplers.BaseSampler:
    """The sampler called ``name`` (see `PROPOSERS`), seeded."""
    check_options(name, options or {})
    try:
        return PROPOSERS[name].factory(seed=seed, space=space, options=dict(options or {}), state_dir=state_dir)
    except TypeError as exc:
        raise ValueError(f"search.sampler_options for {name!r}: {exc}") from exc


__all__ = ["PROPOSERS", "GridSampler", "Proposer", "REASampler", "RNNControllerSampler", "check_options", "make_sampler"]
