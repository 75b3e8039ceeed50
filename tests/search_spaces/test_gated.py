"""The gated space: known cells are points of it (and equal torch's modules), mutations stay inside
it, every cell it decodes validates, builds, trains and costs what its matrices cost."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from search_spaces import NAMED, GatedCellSpace, Task, build, canonical_hash, get_space, named_cell

F, H, T = 5, 6, 7
TASK = Task(input_size=F, seq_len=T, output_size=3)
SPACE = GatedCellSpace(hidden_sizes=(H, 2 * H))


@pytest.mark.parametrize("name", sorted(NAMED))
def test_every_named_cell_is_a_point_of_the_space(name):
    params = SPACE.named_params(name, H)
    assert params is not None
    assert canonical_hash(SPACE.decode(params)) == canonical_hash(named_cell(name, H))
    assert SPACE.named_params(name, 3 * H) is None  # a size the space does not offer


def test_named_params_is_none_where_the_space_cannot_express_the_cell():
    assert GatedCellSpace(memory=("none",)).named_params("lstm", 32) is None
    assert GatedCellSpace(gate_inputs=("x",)).named_params("gru", 32) is None
    assert GatedCellSpace(activations=("relu",)).named_params("elman", 32) is None
    assert GatedCellSpace(peepholes=False).named_params("lstm-ph", 32) is None
    assert GatedCellSpace(peepholes=False).named_params("lstm", 32) is not None
    assert GatedCellSpace(output_activations=("tanh",)).named_params("lstm-noaf", 32) is None
    assert GatedCellSpace(output_activations=("tanh",)).named_params("lstm", 32) is not None
    assert GatedCellSpace(forget_gates=("on", "coupled")).named_params("lstm-nfg", 32) is None
    assert GatedCellSpace(forget_gates=("on", "coupled")).named_params("lstm-cifg", 32) is not None
    with pytest.raises(ValueError, match="unknown cell"):
        SPACE.named_params("transformer", H)


def _load_torch_weights(cell: torch.nn.Module, ref: torch.nn.Module, gates: str, two_biases: tuple[str, ...]) -> None:
    """Copy a torch RNN/GRU/LSTM's weights into our cell (torch's gate order ``gates``)."""
    chunk = lambda t: dict(zip(gates, t.chunk(len(gates))))  # noqa: E731
    w_ih, w_hh, b_ih, b_hh = (chunk(getattr(ref, f"{n}_l0")) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    rename = {"uh": "n", "n0": "n"}
    with torch.no_grad():
        for src in cell.sources:
            for i, edge in enumerate(cell.edges_by_source[src]):
                cell.weights[src][i * H : (i + 1) * H] = (w_ih if src == "x" else w_hh)[rename.get(edge.dst, edge.dst)]
        for node in cell.biases:
            gate = rename.get(node, node)
            if node == "uh":
                cell.biases[node].copy_(b_hh["n"])
            elif node == "n" and "uh" in cell.biases:
                cell.biases[node].copy_(b_ih["n"])
            else:
                assert gate in two_biases or gate in gates
                cell.biases[node].copy_(b_ih[gate] + b_hh[gate])


@pytest.mark.parametrize(
    "name, ref_cls, gates",
    [("elman", torch.nn.RNN, "n"), ("gru", torch.nn.GRU, "rzn"), ("lstm", torch.nn.LSTM, "ifgo")],
)
def test_decoded_known_cells_equal_torch_modules_in_output_and_every_gradient(name, ref_cls, gates):
    torch.manual_seed(0)
    ref = ref_cls(F, H, batch_first=True).double()
    model = build(SPACE.decode(SPACE.named_params(name, H)), TASK).double()
    cell = model.cell
    _load_torch_weights(cell, ref, gates, tuple(gates))
    x = torch.randn(4, T, F, dtype=torch.float64, requires_grad=True)
    expected, _ = ref(x)
    got, _ = cell(x)
    torch.testing.assert_close(got, expected)
    weights = torch.randn_like(got)
    g_ref = torch.autograd.grad((expected * weights).sum(), [x, ref.weight_ih_l0, ref.weight_hh_l0])
    g_our = torch.autograd.grad((got * weights).sum(), [x, cell.weights["x"], cell.weights["h"]])
    torch.testing.assert_close(g_our[0], g_ref[0])
    # our matrices hold torch's gate chunks in our edge order: compare chunk by chunk
    for ours, theirs, src in ((g_our[1], g_ref[1], "x"), (g_our[2], g_ref[2], "h")):
        by_gate = dict(zip(gates, theirs.chunk(len(gates))))
        for i, edge in enumerate(cell.edges_by_source[src]):
            gate = {"uh": "n", "n0": "n"}.get(edge.dst, edge.dst)
            torch.testing.assert_close(ours[i * H : (i + 1) * H], by_gate[gate])


def _in_space(space: GatedCellSpace, params: dict) -> bool:
    active = {d.name: d for d in space.active_decisions(params)}
    return set(active) == set(params) and all(params[n] in d.choices for n, d in active.items())


def test_every_mutation_stays_in_the_space_and_validates():
    rng = np.random.default_rng(0)
    space = GatedCellSpace(hidden_sizes=(8, 16, 32))
    params = space.named_params("lstm", 16)
    changed = 0
    for _ in range(300):
        child = space.mutate(params, rng)
        assert _in_space(space, child), child
        space.validate(space.decode(child))
        diff = {k for k in set(child) | set(params) if child.get(k) != params.get(k)}
        assert diff, "a mutation changes something"
        changed += len(diff) == 1
        params = child if rng.random() < 0.5 else params
    assert changed > 100  # most mutations change exactly one decision (others repair conditionals)


def test_random_cells_validate_build_train_and_cost_their_matrices():
    rng = np.random.default_rng(1)
    hashes = set()
    for _ in range(40):
        spec = SPACE.sample(rng)
        SPACE.validate(spec)
        hashes.add(canonical_hash(spec))
        model = build(spec, TASK)
        loss = model(torch.randn(3, T, F)).square().mean()
        loss.backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert len(hashes) > 25


@pytest.mark.parametrize(
    "name, recurrent_matrices, input_matrices",
    [("elman", 1, 1), ("mgu", 2, 2), ("gru", 3, 3), ("lstm", 4, 4), ("lstm-ph", 7, 4), ("lstm-cifg", 3, 3)],
)
def test_cost_counts_every_matrix(name, recurrent_matrices, input_matrices):
    macs = SPACE.cost(named_cell(name, H), TASK)["macs"]
    assert macs == T * (recurrent_matrices * H * H + input_matrices * H * F) + H * 3


def test_cheap_gates_read_the_input_only():
    params = {**SPACE.named_params("gru", H), "z_in": "x", "r_in": "x"}
    assert SPACE.cost(SPACE.decode(params), TASK)["macs"] == T * (H * H + 3 * H * F) + H * 3


@pytest.mark.parametrize(
    "options, message",
    [({"memory": ["tape"]}, "memory"), ({"gates": []}, "gates"), ({"gate_inputs": ["y"]}, "gate_inputs"),
     ({"hidden_sizes": [0]}, "hidden_sizes"), ({"activations": ["nope"]}, "nope"), ({"peepholes": "yes"}, "peepholes"),
     ({"output_activations": []}, "output_activations"), ({"output_activations": ["nope"]}, "nope"),
     ({"forget_gates": []}, "forget_gates"), ({"forget_gates": ["maybe"]}, "forget_gates")],
)
def test_bad_options_name_the_option(options, message):
    with pytest.raises(ValueError, match=message):
        get_space("gated", **options)


def test_output_activations_narrow_only_the_memory_cells_output():
    """A language model's space keeps h bounded (charlm.yaml): every memory cell it proposes squashes
    c on the way out, while the candidates and the single-state cells keep every activation."""
    space = GatedCellSpace(activations=("tanh", "relu", "identity"), output_activations=("tanh",))
    rng = np.random.default_rng(0)
    drawn = [space.sample_params(rng) for _ in range(300)]
    memory = [p for p in drawn if p["memory"] == "cell"]
    assert memory and {p["output_act"] for p in memory} == {"tanh"}
    assert {p["cand_act"] for p in drawn} == {"tanh", "relu", "identity"}
    for params in memory[:20]:
        assert space.mutate(params, rng).get("output_act", "tanh") == "tanh"
    assert GatedCellSpace().output_activations == GatedCellSpace().activations


def test_forget_gates_keep_every_memory_cell_forgetting():
    """``forget_gates: [on, coupled]`` (charlm.yaml): no memory cell it samples or mutates into is an
    accumulator without a forget gate; single-state cells are untouched."""
    space = GatedCellSpace(forget_gates=("on", "coupled"))
    rng = np.random.default_rng(1)
    drawn = [space.sample_params(rng) for _ in range(300)]
    memory = [p for p in drawn if p["memory"] == "cell"]
    assert memory and {p["forget"] for p in memory} == {"on", "coupled"}
    assert {p["gates"] for p in drawn if p["memory"] == "none"} == set(space.gates)
    for params in drawn[:60]:
        assert space.mutate(params, rng).get("forget", "on") != "off"
