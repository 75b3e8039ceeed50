"""Every space: decisions, decoding, JSON round trips, build + forward/backward, hashing, cost."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
import torch

from search_spaces import (
    ActivationSpace,
    RecurrentCellSpace,
    SparsitySpace,
    Spec,
    Task,
    build,
    elman,
    get_space,
    gru,
    lstm,
)

TASK = Task(input_size=8, seq_len=8, output_size=10)
TOKENS = Task(input_size=8, seq_len=6, output_size=3, input_kind="tokens", objective="lm")

SPACE_FACTORIES = {
    "recurrent_cell": lambda: RecurrentCellSpace(num_nodes=5, hidden_sizes=(16, 32)),
    "activation": lambda: ActivationSpace(cell="gru", hidden_size=16, units=2),
    "sparsity": lambda: SparsitySpace(cell="lstm", hidden_size=16, input_size=8),
}


@pytest.fixture(params=sorted(SPACE_FACTORIES))
def space(request):
    return SPACE_FACTORIES[request.param]()


def test_specs_round_trip_through_json(space):
    rng = np.random.default_rng(0)
    for _ in range(25):
        spec = space.sample(rng)
        again = Spec.from_json(spec.to_json())
        assert again == spec
        assert space.canonical_hash(again) == space.canonical_hash(spec)
        assert again.to_dict()["graph"]["version"] == 1


def test_decoded_specs_build_and_train_forward_backward(space):
    rng = np.random.default_rng(1)
    for i in range(8):
        spec = space.sample(rng)
        for task, x in ((TASK, torch.randn(3, 8, 8)), (TOKENS, torch.randint(0, 8, (3, 6)))):
            model = build(spec, task, seed=i)
            out = model(x)
            assert out.shape == ((3, 10) if task is TASK else (3, 6, 3))
            out.square().mean().backward()
            grads = [p.grad for p in model.parameters()]
            assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_suggest_through_optuna_matches_decode(space):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(5):
        trial = study.ask()
        spec = space.suggest(trial)
        assert spec == space.decode(trial.params)
        assert [d.name for d in space.active_decisions(trial.params)] == list(trial.params)
        study.tell(trial, 0.0)


def test_conditional_decisions_only_when_active():
    space = RecurrentCellSpace(num_nodes=3)
    params = space.sample_params(np.random.default_rng(0))
    for i in (1, 2):
        assert (f"n{i}_op" in params) == (params[f"n{i}_in2"] != "none")


def test_isomorphic_cells_hash_equal_and_different_cells_do_not():
    space = RecurrentCellSpace(num_nodes=3)
    base = {"n0_op": "add", "n0_act": "tanh", "n1_in1": "n0", "n1_in2": "none", "n1_act": "relu",
            "n2_in1": "n0", "n2_in2": "none", "n2_act": "sigmoid"}
    # the same cell with nodes 1 and 2 swapped: isomorphic, different names
    swapped = {**base, "n1_act": "sigmoid", "n2_act": "relu"}
    assert space.canonical_hash(space.decode(base)) == space.canonical_hash(space.decode(swapped))
    # add is commutative: input order does not matter
    a = space.decode({**base, "n2_in1": "x", "n2_in2": "n1", "n2_op": "add"})
    b = space.decode({**base, "n2_in1": "n1", "n2_in2": "x", "n2_op": "add"})
    assert space.canonical_hash(a) == space.canonical_hash(b)
    different = [
        {**base, "n1_act": "tanh"},
        {**base, "n2_in1": "h"},
        {**base, "n0_op": "mul"},
        {**base, "n2_in1": "x", "n2_in2": "n1", "n2_op": "mul"},
    ]
    hashes = {space.canonical_hash(space.decode(p)) for p in [base, *different]}
    assert len(hashes) == 1 + len(different)
    assert space.canonical_hash(lstm(16)) != space.canonical_hash(gru(16))
    assert space.canonical_hash(elman(16)) != space.canonical_hash(elman(32))


def test_cost_matches_hand_count():
    # Elman, H=16, 8 inputs, 8 steps, 10 classes: W 16x8 + U 16x16 per step, head 16x10 once.
    assert get_space("recurrent_cell").cost(elman(16), TASK) == {
        "macs": 8 * (16 * 8 + 16 * 16) + 16 * 10,
        "params": 16 * 8 + 16 * 16 + 16 + 16 * 10 + 10,
    }
    # LSTM, H=4, 2 inputs, 3 steps, 1 output: 4 gates of (4x2 + 4x4), 4 biases, head 4x1.
    task = Task(input_size=2, seq_len=3, output_size=1, objective="regress")
    assert get_space("recurrent_cell").cost(lstm(4), task) == {
        "macs": 3 * 4 * (4 * 2 + 4 * 4) + 4,
        "params": 4 * (4 * 2 + 4 * 4) + 4 * 4 + 4 + 1,
    }


def test_cost_scales_with_density():
    space = SparsitySpace(cell="elman", hidden_size=32, input_size=8, densities=(1.0, 0.5, 0.25), patterns=("random",))
    macs = []
    for density in (1.0, 0.5, 0.25):
        spec = space.decode({"density[x->n0]": 1.0, "density[h->n0]": density, "pattern[h->n0]": "random"})
        macs.append(space.cost(spec, TASK)["macs"])
    head = 32 * 10
    recurrent = [(m - head) / 8 - 32 * 8 for m in macs]
    assert recurrent == [32 * 32, 32 * 32 * 0.5, 32 * 32 * 0.25]


def test_lstm_and_gru_specs_match_torch_modules():
    torch.manual_seed(0)
    H, F = 6, 5
    x = torch.randn(4, 7, F)
    task = Task(input_size=F, seq_len=7, output_size=2)
    for spec, ref_cls, gates in ((lstm(H), torch.nn.LSTM, "ifgo"), (gru(H), torch.nn.GRU, "rzn")):
        ref = ref_cls(F, H, batch_first=True)
        model = build(spec, task)
        cell = model.cell
        with torch.no_grad():
            w_ih = dict(zip(gates, ref.weight_ih_l0.chunk(len(gates))))
            w_hh = dict(zip(gates, ref.weight_hh_l0.chunk(len(gates))))
            b_ih = dict(zip(gates, ref.bias_ih_l0.chunk(len(gates))))
            b_hh = dict(zip(gates, ref.bias_hh_l0.chunk(len(gates))))
            for src in cell.sources:
                for i, edge in enumerate(cell.edges_by_source[src]):
                    gate = {"uh": "n"}.get(edge.dst, edge.dst)
                    cell.weights[src][i * H : (i + 1) * H] = (w_ih if src == "x" else w_hh)[gate]
            for node in cell.biases:
                if spec.states == ["h", "c"]:
                    cell.biases[node].copy_(b_ih[node] + b_hh[node])
                elif node in ("r", "z"):
                    cell.biases[node].copy_(b_ih[node] + b_hh[node])
                elif node == "uh":
                    cell.biases[node].copy_(b_hh["n"])
                else:  # n
                    cell.biases[node].copy_(b_ih["n"])
        expected, _ = ref(x)
        got, _ = cell(x)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
