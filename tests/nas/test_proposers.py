"""Every registered proposer against the shared suite; a new proposer is one line in ``proposer``."""

from __future__ import annotations

import pytest

from nas.proposers import PROPOSERS, make_sampler
from nas.testing.pytest_proposers import ProposerFactory, ProposerTestCase


def _factory(name: str, **options: object) -> ProposerFactory:
    def make(space, seed, state_dir):  # noqa: ANN001, ANN202
        return make_sampler(name, seed=seed, space=space, options=dict(options), state_dir=state_dir)

    return make


class TestProposers(ProposerTestCase):
    @pytest.fixture(
        params=[
            pytest.param(_factory("random"), id="random"),
            pytest.param(_factory("tpe", n_startup_trials=4), id="tpe"),
            pytest.param(_factory("nsga2", population_size=4), id="nsga2"),
            pytest.param(_factory("rea", population_size=6, tournament_size=3), id="rea"),
            pytest.param(_factory("rnn", hidden_size=16), id="rnn"),
            pytest.param(_factory("rnn", hidden_size=16, batch_size=4, pruned="skip", failed="skip"), id="rnn-batch"),
            pytest.param(_factory("grid"), id="grid"),
        ]
    )
    def proposer(self, request: pytest.FixtureRequest) -> ProposerFactory:
        return request.param


def test_every_registered_proposer_is_tested() -> None:
    assert set(PROPOSERS) == {"random", "tpe", "nsga2", "rea", "rnn", "grid"}


def test_unknown_option_is_a_value_error() -> None:
    from search_spaces import get_space

    with pytest.raises(ValueError, match="rnn"):
        make_sampler("rnn", seed=0, space=get_space("nb201"), options={"nope": 1})
    with pytest.raises(ValueError, match="tournament_size"):
        make_sampler("rea", seed=0, space=get_space("nb201"), options={"tournament_size": 50})
