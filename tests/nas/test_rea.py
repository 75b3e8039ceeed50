"""Regularised evolution: mutation, ageing, tournaments, multi-objective selection."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
import pytest

from nas.proposers import REASampler
from nas.testing.pytest_proposers import run
from search_spaces import get_space


def test_mutation_changes_exactly_one_active_decision() -> None:
    space = get_space("nb201")
    sampler = REASampler(space=space, seed=0)
    parent = space.sample_params(np.random.default_rng(0))
    for _ in range(50):
        child = sampler._mutate(parent)
        assert sum(child[k] != parent[k] for k in parent) == 1


def test_mutation_repairs_conditional_decisions() -> None:
    space = get_space("sparsity")
    sampler = REASampler(space=space, seed=1)
    rng = np.random.default_rng(1)
    for _ in range(50):
        child = sampler._mutate(space.sample_params(rng))
        assert [d.name for d in space.active_decisions(child)] == list(child)
        space.decode(child)


def test_children_come_from_the_youngest_population() -> None:
    """After warm-up, every new cell is one mutation away from a member of the live population."""
    space = get_space("nb201")
    sampler = REASampler(space=space, seed=2, population_size=8, tournament_size=3)
    study = run(sampler, space, 40)
    for t in study.trials[8:]:
        alive = study.trials[max(0, t.number - 8) : t.number]
        distances = [sum(t.params[k] != a.params[k] for k in t.params) for a in alive]
        assert min(distances) <= 1


def test_finds_the_toy_optimum() -> None:
    space = get_space("nb201")
    study = optuna.create_study(direction="maximize", sampler=REASampler(space=space, seed=3))
    for _ in range(150):
        trial = study.ask()
        space.suggest(trial)
        study.tell(trial, sum(v == "nor_conv_3x3" for v in trial.params.values()))
    assert study.best_value >= 5


def test_multi_objective_tournaments_spread_over_the_front() -> None:
    space = get_space("nb201")
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=REASampler(space=space, seed=4))

    def values(params: dict[str, Any]) -> list[float]:
        conv = sum(v == "nor_conv_3x3" for v in params.values())
        return [float(conv), float(conv + sum(v == "nor_conv_1x1" for v in params.values()))]

    for _ in range(120):
        trial = study.ask()
        space.suggest(trial)
        study.tell(trial, values(trial.params))
    assert len({tuple(t.values) for t in study.best_trials}) >= 4


@pytest.mark.parametrize(
    "options, match",
    [({"population_size": 1}, "population_size"), ({"tournament_size": 0}, "tournament_size")],
)
def test_options_are_checked(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        REASampler(space=get_space("nb201"), **options)
