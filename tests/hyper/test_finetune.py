"""`hyper.finetune_score`: finite, reproducible, and it tells a cell that learns from one that cannot."""

from __future__ import annotations

import torch

from hyper import HyperConfig, HyperNetwork, finetune_score, proxy_score
from search_spaces import named_cell
from workers.data import load_dataset

SMALL = HyperConfig(embed=32, hidden=64, bank=256, bias_bank=64, seed=0)


def _score(net: HyperNetwork, spec, seed: int = 0, steps: int = 100) -> float:  # noqa: ANN001 - Spec
    data = load_dataset("digits-seq")
    return finetune_score(net, spec, data.task, data.train.x, data.train.y, data.val.x, data.val.y, steps=steps, seed=seed)


def test_finite_and_deterministic_given_a_seed() -> None:
    net = HyperNetwork(SMALL)
    spec = named_cell("gru", 16)
    first = _score(net, spec, seed=3, steps=20)
    assert 0.0 <= first <= 1.0
    assert _score(net, spec, seed=3, steps=20) == first
    assert _score(net, spec, seed=4, steps=20) != first  # other batches, another score


def test_steps_train_and_zero_steps_is_the_generated_weights_score() -> None:
    data = load_dataset("digits-seq")
    net = HyperNetwork(SMALL)
    spec = named_cell("gru", 16)
    assert _score(net, spec, steps=0) == proxy_score(net, spec, data.task, data.val.x, data.val.y)
    assert _score(net, spec) > _score(net, spec, steps=0) + 0.1  # chance is 0.1; 100 steps learn


def test_ranks_a_good_cell_above_a_broken_one() -> None:
    net = HyperNetwork(SMALL)
    good = _score(net, named_cell("gru", 32), steps=60)
    weak = _score(net, named_cell("elman", 1), steps=60)  # one hidden unit cannot tell ten digits apart
    assert good > weak + 0.1, (good, weak)  # the weak one stays at chance (0.1)
    broken = HyperNetwork(SMALL)
    with torch.no_grad():
        broken.theta0.fill_(float("nan"))  # weights that are not numbers: the loss is not finite
    assert _score(broken, named_cell("gru", 32)) == 0.0
