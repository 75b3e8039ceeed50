"""The RNN hypernetwork: shapes for every Spec, gradients, learning, MIP, checkpoints, warm start."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hyper import train as hyper_train
from hyper.candidate import accuracy, expected_accuracy, run
from hyper import (
    HyperActor,
    HyperConfig,
    HyperNetwork,
    HyperTrainer,
    ensemble_from_weights,
    generate_state,
    masks_of,
    proxy_score,
)
from search_spaces import ActivationSpace, RecurrentCellSpace, SparsitySpace, Task, build, named_cell
from workers.data import load_dataset
from workers.training import TrainConfig, Trainer

SMALL = HyperConfig(embed=32, hidden=64, bank=256, bias_bank=64, seed=0)
FEATURES = Task(8, 8, 10)
TOKENS = Task(9, 12, 2, input_kind="tokens")
LM = Task(9, 12, 9, input_kind="tokens", objective="lm")


def _specs() -> list:
    rng = np.random.default_rng(0)
    specs = []
    for nodes in (1, 2, 4, 7, 12):
        space = RecurrentCellSpace(num_nodes=nodes, hidden_sizes=(5, 16, 33), combine_ops=("add", "mul"))
        specs += [space.sample(rng) for _ in range(2)]
    specs += [ActivationSpace(cell=c, hidden_size=20, units=2).sample(rng) for c in ("gru", "lstm")]
    specs += [SparsitySpace(cell=c, hidden_size=32, input_size=8).sample(rng) for c in ("gru", "lstm") for _ in range(2)]
    specs += [named_cell(c, 17) for c in ("elman", "lstm", "gru")]
    return specs


@pytest.mark.parametrize("task", [FEATURES, TOKENS, LM], ids=["features", "tokens", "lm"])
def test_generated_shapes_match_every_parameter(task: Task) -> None:
    net = HyperNetwork(SMALL)
    for spec in _specs():
        model = build(spec, task)
        params = net.generate(spec, task, masks_of(model))
        expected = {k: tuple(v.shape) for k, v in model.named_parameters()}
        assert {k: tuple(v.shape) for k, v in params.items()} == expected, spec
        for name, mask in masks_of(model).items():
            assert torch.all(params[name][mask == 0] == 0), f"{name}: masked weights must be zero"
        if task is FEATURES:
            assert torch.isfinite(run(model, params, torch.randn(3, 8, 8))).all()


def test_config_seed_alone_sets_the_network() -> None:
    """Same seed, same weights whatever the global RNG holds (a benchmark seed reproduces its network),
    and building one leaves the global RNG where it was."""
    torch.manual_seed(1)
    a = HyperNetwork(SMALL)
    torch.manual_seed(2)
    before = torch.random.get_rng_state()
    b = HyperNetwork(SMALL)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    other = HyperNetwork(HyperConfig.from_dict({**SMALL.to_dict(), "seed": 1}))
    assert not torch.equal(other.lstm.weight_hh_l0, a.lstm.weight_hh_l0)


def test_init_scale_is_a_normal_layer() -> None:
    """MIP: theta = theta0 + delta with delta ~ 0 at init, so each tensor has U(-1/sqrt(fan_in), ..) scale."""
    net = HyperNetwork(SMALL)
    spec = named_cell("lstm", 48)
    params = net.generate(spec, FEATURES)
    for name, p in params.items():
        if p.numel() < 256:  # too few values for a stable std
            continue
        fan_in = 8 if name == "cell.weights.x" else 48
        expected = 1 / math.sqrt(3 * fan_in)
        assert 0.8 * expected < float(p.detach().std()) < 1.25 * expected, name


def test_gradients_reach_every_parameter() -> None:
    data = load_dataset("digits-seq")
    space = RecurrentCellSpace(num_nodes=3, hidden_sizes=(16, 24))
    net = HyperNetwork(SMALL)
    trainer = HyperTrainer(net, data.task, data.train.x, data.train.y, sample_spec=space.sample)
    trainer.optimizer.step = lambda *a, **k: None  # keep the gradients for inspection
    trainer.train_step()
    for name, p in net.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, f"no gradient reaches {name}"


def _no_mip(config: HyperConfig) -> HyperConfig:
    return HyperConfig.from_dict({**config.to_dict(), "mip": False})


@pytest.mark.parametrize("mip", [True, False])
def test_mip_output_scale_steady_when_inputs_scaled(mip: bool) -> None:
    """Scaling every input embedding by 10 leaves MIP's output unchanged; a plain hypernet's moves."""
    config = SMALL if mip else _no_mip(SMALL)
    net = HyperNetwork(config)
    spec = named_cell("gru", 32)
    before = {k: v.detach().clone() for k, v in net.generate(spec, FEATURES).items()}
    with torch.no_grad():
        net.tokens.weight.mul_(10)
        net.value.weight.mul_(10)
        net.value.bias.mul_(10)
    after = net.generate(spec, FEATURES)
    ratio = [float(after[k].detach().norm() / before[k].norm()) for k in before]
    if mip:
        assert max(abs(r - 1) for r in ratio) < 1e-4
    else:
        assert max(abs(r - 1) for r in ratio) > 0.05


def test_trained_hypernetwork_beats_chance() -> None:
    """Generated weights alone classify digits-seq clearly better than chance (10%)."""
    torch.manual_seed(0)
    data = load_dataset("digits-seq")
    space = RecurrentCellSpace(num_nodes=2, hidden_sizes=(16, 24), activations=("tanh", "relu"), combine_ops=("add",))
    config = HyperConfig.from_dict({**SMALL.to_dict(), "specs_per_step": 1, "batch_size": 64, "theta0_lr": 0.05})
    trainer = HyperTrainer(HyperNetwork(config), data.task, data.train.x, data.train.y, sample_spec=space.sample)
    trainer.train(80)
    rng = np.random.default_rng(123)
    specs = [space.sample(rng) for _ in range(6)]
    accs = []
    for spec in specs:
        model = build(spec, data.task, seed=0)
        params = trainer.net.generate(spec, data.task, masks_of(model))
        accs.append(accuracy(model, params, data.val.x, data.val.y, "classify")[0])
    assert np.mean(accs) > 0.35, accs
    # the proxy (expected accuracy: mean probability of the right digit) is above chance (0.1) too
    scores = [proxy_score(trainer.net, spec, data.task, data.val.x, data.val.y) for spec in specs]
    assert np.mean(scores) > 0.15, scores


@pytest.mark.parametrize("objective", ["classify", "lm", "regress"])
def test_expected_accuracy_is_smooth_accuracy(objective: str) -> None:
    """Mean true-label probability: 1/C for uniform outputs, near 1 for confident right answers."""

    class Fixed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(1.0))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.scale

    y = torch.tensor([[0, 3], [2, 1], [4, 4]]) if objective == "lm" else torch.tensor([0, 3, 2])
    onehot = torch.nn.functional.one_hot(y, 5).float()
    model = Fixed()
    if objective == "regress":
        assert expected_accuracy(model, {"scale": torch.tensor(1.0)}, onehot, onehot, objective) == 1.0
        return
    uniform = expected_accuracy(model, {"scale": torch.tensor(0.0)}, onehot, y, objective, batch_size=2)
    sharp = expected_accuracy(model, {"scale": torch.tensor(50.0)}, onehot, y, objective, batch_size=2)
    assert uniform == pytest.approx(0.2) and sharp == pytest.approx(1.0)


def test_checkpoint_round_trip(tmp_path) -> None:
    data = load_dataset("digits-seq")
    space = RecurrentCellSpace(num_nodes=3, hidden_sizes=(16,))
    config = HyperConfig.from_dict({**SMALL.to_dict(), "snapshots": 3, "snapshot_every": 1})
    make = lambda: HyperTrainer(HyperNetwork(config), data.task, data.train.x, data.train.y, sample_spec=space.sample)  # noqa: E731
    first = make()
    first.train(3)
    first.save(tmp_path / "hyper.pt")
    second = make()
    second.load(tmp_path / "hyper.pt")
    assert second.step == 3 and second.losses == first.losses
    assert len(second.snapshots) == len(first.snapshots) == config.snapshots - 1
    spec0 = space.sample(np.random.default_rng(4))
    assert first.proxy_score(spec0, data.val.x, data.val.y) == second.proxy_score(spec0, data.val.x, data.val.y)
    payload = torch.load(tmp_path / "hyper.pt", weights_only=False)
    assert len(ensemble_from_weights(payload)) == config.snapshots
    spec = space.sample(np.random.default_rng(5))
    a, b = first.generate_state(spec), second.generate_state(spec)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert first.train_step() == second.train_step()  # the optimiser state came back too
    loaded = HyperNetwork.load(tmp_path / "hyper.pt")  # the plain network reads a trainer checkpoint
    c = generate_state(loaded, spec, data.task)
    d = generate_state(HyperNetwork.from_weights(first.net.weights()), spec, data.task)
    assert not all(torch.equal(c[k], d[k]) for k in c)  # `first` trained one more step since the save
    assert all(torch.equal(c[k], generate_state(HyperNetwork.load(tmp_path / "hyper.pt"), spec, data.task)[k]) for k in c)


def test_training_draws_from_the_searchs_proposals_and_resumes_with_them(tmp_path) -> None:
    """Beside a search the trainer learns the cells the search trains: with proposal_fraction 1 every
    training candidate is an observed proposal; the pool survives a checkpoint, so a resumed
    trainer takes the same next step; with no proposals it samples the space as before."""
    data = load_dataset("digits-seq")
    space = RecurrentCellSpace(num_nodes=2, hidden_sizes=(16,))
    config = HyperConfig.from_dict({**SMALL.to_dict(), "proposal_fraction": 1.0, "specs_per_step": 2})
    drawn: list = []

    def sample(rng):
        drawn.append("space")
        return space.sample(rng)

    make = lambda: HyperTrainer(HyperNetwork(config), data.task, data.train.x, data.train.y, sample_spec=sample)  # noqa: E731
    trainer = make()
    trainer.train(1)
    assert drawn == ["space", "space"]  # no proposals yet: the space
    proposals = [space.sample(np.random.default_rng(s)) for s in (7, 8)]
    assert trainer.observe(proposals) == 2
    seen: list = []
    original = hyper_train.candidate
    hyper_train.candidate = lambda spec, task: (seen.append(spec.to_json()), original(spec, task))[1]
    try:
        trainer.train(3)
    finally:
        hyper_train.candidate = original
    assert drawn == ["space", "space"] and set(seen) <= {p.to_json() for p in proposals} and len(seen) == 6
    trainer.save(tmp_path / "hyper.pt")
    resumed = make()
    resumed.load(tmp_path / "hyper.pt")
    assert [p.to_json() for p in resumed.proposals] == [p.to_json() for p in proposals]
    assert resumed.train_step() == trainer.train_step()
    with pytest.raises(ValueError, match="proposal_fraction"):
        HyperConfig(proposal_fraction=1.5)


def test_actor_without_ray_and_warm_start(tmp_path) -> None:
    data = load_dataset("digits-seq")
    space = RecurrentCellSpace(num_nodes=2, hidden_sizes=(16,))
    actor = HyperActor(space, data.task, data.train.x, data.train.y, config=SMALL)
    assert actor.train(2)["step"] == 2
    actor.save(tmp_path / "h.pt")
    resumed = HyperActor(space, data.task, data.train.x, data.train.y, config=SMALL, checkpoint=tmp_path / "h.pt")
    assert resumed.step() == 2
    net = HyperNetwork.from_weights(actor.weights())
    spec = space.sample(np.random.default_rng(1))
    state = generate_state(net, spec, data.task)
    trainer = Trainer(spec, data, TrainConfig(epochs=1), seed=3, init_state=state)
    for name, p in trainer.model.named_parameters():
        assert torch.equal(p.detach(), state[name]), name
    assert trainer.train_epoch().score > 0
    with pytest.raises(ValueError, match="init_state"):
        Trainer(spec, data, TrainConfig(epochs=1), init_state={"head.nope": torch.zeros(1)})
    scores = actor.proxy_scores([spec.to_json()], data.val.x, data.val.y)
    assert len(scores) == 1 and 0 <= scores[0] <= 1


@pytest.mark.slow
def test_actor_on_ray(ray_cluster) -> None:
    from hyper import start_actor

    data = load_dataset("digits-seq")
    space = RecurrentCellSpace(num_nodes=2, hidden_sizes=(16,))
    actor = start_actor(space, data.task, data.train.x, data.train.y, config=SMALL, num_cpus=0)
    assert ray_cluster.get(actor.train.remote(2))["step"] == 2
    net = HyperNetwork.from_weights(ray_cluster.get(actor.weights.remote()))
    assert set(generate_state(net, space.sample(np.random.default_rng(0)), data.task)) >= {"head.weight"}
