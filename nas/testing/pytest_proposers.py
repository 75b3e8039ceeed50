"""Tests every proposer must pass, whatever its algorithm (Optuna's ``pytest_samplers`` pattern).

Subclass `ProposerTestCase` and override the ``proposer`` fixture with a factory
``(space, seed, state_dir) -> BaseSampler``; the class parametrises over every registered space.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from nas.proposers import GridSampler
from search_spaces import SearchSpace, SpecError, get_space, validate_spec

ProposerFactory = Callable[[SearchSpace, "int | None", "Path | None"], optuna.samplers.BaseSampler]

SPACE_OPTIONS: dict[str, dict[str, Any]] = {
    "recurrent_cell": {"num_nodes": 3},
    "activation": {},
    "sparsity": {},
    "nb201": {},
}


def toy_values(space: SearchSpace, params: dict[str, Any], n_objectives: int) -> list[float]:
    """A deterministic reward: the fraction of decisions at their first choice (and a cost)."""
    active = space.active_decisions(params)
    score = sum(d.choices.index(params[d.name]) == 0 for d in active) / max(len(active), 1)
    return [score, 1.0 + len(params) + sum(d.choices.index(params[d.name]) for d in active)][:n_objectives]


def run(
    sampler: optuna.samplers.BaseSampler,
    space: SearchSpace,
    n_trials: int,
    *,
    directions: list[str] | None = None,
    in_flight: int = 1,
    study: optuna.Study | None = None,
    mirror: bool = False,
) -> optuna.Study:
    """Ask/tell ``n_trials`` with ``in_flight`` trials running at once, told newest-first;
    ``mirror`` tells ``1 - score`` (as a minimised metric, e.g. an error rate, would be)."""
    directions = directions or ["maximize"]
    study = study or optuna.create_study(directions=directions, sampler=sampler)
    running: list[optuna.Trial] = []
    asked = 0
    while asked < n_trials or running:
        while asked < n_trials and len(running) < in_flight:
            trial = study.ask()
            space.suggest(trial)
            running.append(trial)
            asked += 1
        trial = running.pop()  # out of order: the youngest finishes first
        values = toy_values(space, trial.params, len(directions))
        study.tell(trial, [1.0 - values[0], *values[1:]] if mirror else values)
    return study


class ProposerTestCase:
    """Validity, conditional decisions, reproducibility, pickling, parallel trials, pruned/failed."""

    @pytest.fixture
    def proposer(self) -> ProposerFactory:
        raise NotImplementedError("override the proposer fixture")

    @pytest.fixture(params=sorted(SPACE_OPTIONS))
    def space(self, request: pytest.FixtureRequest) -> SearchSpace:
        return get_space(request.param, **SPACE_OPTIONS[request.param])

    def test_samples_are_valid_specs(self, proposer: ProposerFactory, space: SearchSpace) -> None:
        study = run(proposer(space, 0, None), space, 24, in_flight=3)
        for t in study.trials:
            assert [d.name for d in space.active_decisions(t.params)] == list(t.params)
            spec = space.decode(t.params)
            try:
                space.validate(spec)
            except SpecError as exc:
                # a sampler cannot know that an activation overflows: the space rejects it and the
                # search fails that trial before training; its structure must still be valid
                assert "unsafe" in str(exc)
                validate_spec(spec)

    def test_multi_objective(self, proposer: ProposerFactory, space: SearchSpace) -> None:
        study = run(proposer(space, 1, None), space, 24, directions=["maximize", "minimize"], in_flight=2)
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
        assert study.best_trials

    def test_a_minimised_metric_gets_the_proposals_of_its_maximised_mirror(
        self, proposer: ProposerFactory, space: SearchSpace
    ) -> None:
        """Bits per character, MSE: a proposer reads the study's direction, so an error rate
        ``1 - accuracy`` minimised leads it exactly where accuracy maximised does."""
        up = run(proposer(space, 7, None), space, 16, in_flight=2)
        down = run(proposer(space, 7, None), space, 16, directions=["minimize"], in_flight=2, mirror=True)
        assert [t.params for t in down.trials] == [t.params for t in up.trials]

    def test_seeded_reproducibility(self, proposer: ProposerFactory, space: SearchSpace) -> None:
        a = run(proposer(space, 3, None), space, 20, in_flight=2)
        b = run(proposer(space, 3, None), space, 20, in_flight=2)
        assert [t.params for t in a.trials] == [t.params for t in b.trials]

    def test_pickle_roundtrip(self, proposer: ProposerFactory, space: SearchSpace) -> None:
        sampler = proposer(space, 4, None)
        run(sampler, space, 3)  # lazily built state must pickle too
        clone = pickle.loads(pickle.dumps(sampler))
        a = run(sampler, space, 8)
        b = run(clone, space, 8)
        assert [t.params for t in a.trials] == [t.params for t in b.trials]

    def test_reseed_rng(self, proposer: ProposerFactory, space: SearchSpace) -> None:
        """Reseeding (Optuna does it per thread with ``n_jobs > 1``) keeps proposals valid, and a
        sampler that draws at random no longer repeats its seed's proposals; a grid's order is fixed."""
        seeded = run(proposer(space, 5, None), space, 8)
        sampler = proposer(space, 5, None)
        sampler.reseed_rng()
        reseeded = run(sampler, space, 8)
        for t in reseeded.trials:
            assert [d.name for d in space.active_decisions(t.params)] == list(t.params)
        repeated = [t.params for t in reseeded.trials] == [t.params for t in seeded.trials]
        assert repeated == isinstance(sampler, GridSampler)

    def test_pruned_and_failed_trials(self, proposer: ProposerFactory, space: SearchSpace) -> None:
        study = optuna.create_study(direction="maximize", sampler=proposer(space, 6, None))
        rng = np.random.default_rng(0)
        for i in range(18):
            trial = study.ask()
            space.suggest(trial)
            kind = i % 3
            if kind == 0:
                study.tell(trial, toy_values(space, trial.params, 1))
            elif kind == 1:
                trial.report(float(rng.random()), step=1)
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
        early = study.ask()  # a trial that fails before suggesting anything
        study.tell(early, state=optuna.trial.TrialState.FAIL)
        run(study.sampler, space, 3, study=study)
        assert len(study.trials) == 22
