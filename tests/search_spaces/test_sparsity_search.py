"""The sparsity search: every pattern hits its density exactly in a built cell, random-graph masks
have the graph properties asked for, hidden sizes are searched, uniform baselines and overall density."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from search_spaces import SparsitySpace, Task, build, get_space
from search_spaces import sparsity
from search_spaces.sparsity import graph_properties, make_mask, nnz
from search_spaces.sparsity_space import overall_density

TASK = Task(input_size=16, seq_len=4, output_size=3)
PATTERNS = ("magnitude", "random", "block", "nm", "erdos_renyi", "watts_strogatz", "barabasi_albert")


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("density", [0.5, 0.25, 0.125, 0.0625])
def test_built_cells_hit_every_matrix_density_exactly(pattern: str, density: float) -> None:
    space = SparsitySpace(cell="gru", hidden_size=32, input_size=16, densities=(density,), patterns=(pattern,))
    spec = space.decode(space.uniform_params(density, pattern))
    model = build(spec, TASK, seed=3)
    cell = model.cell
    for src in cell.sources:
        mask, weight = cell.mask(src), cell.weights[src]
        for i, e in enumerate(cell.edges_by_source[src]):
            rows = slice(i * 32, (i + 1) * 32)
            try:
                sparsity.check(pattern, density, e.shape)
                assert e.pattern == pattern
            except sparsity.SparsityError:  # e.g. a 32x16 matrix has 2 blocks: no 25% block mask
                assert e.pattern == "random"
            assert int(mask[rows].sum()) == nnz(e.pattern, density, e.shape) == round(density * e.shape[0] * e.shape[1])
            assert int((weight[rows] != 0).sum()) <= nnz(e.pattern, density, e.shape)
    assert overall_density(spec, 16) == pytest.approx(density)
    assert space.cost(spec, TASK)["macs"] == 4 * round(density * 32 * (3 * 16 + 3 * 32)) + 32 * 3


def test_magnitude_pruning_retrains_to_the_exact_density() -> None:
    space = SparsitySpace(cell="gru", hidden_size=32, input_size=16)
    model = build(space.decode(space.uniform_params(0.125, "magnitude")), TASK, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = torch.randn(16, 4, 16), torch.randint(0, 3, (16,))
    counts = []
    for step in range(6):
        model.prune_magnitude(step / 4)  # gradual: dense at 0, target density from progress 1 on
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.apply_masks()
        counts.append(sum(int(model.cell.mask(s).sum()) for s in model.cell.sources))
    total = 32 * (3 * 16 + 3 * 32)
    assert counts[0] == total and counts[-1] == counts[-2] == round(0.125 * 32 * 16) * 3 + round(0.125 * 32 * 32) * 3
    assert all(a >= b for a, b in zip(counts, counts[1:]))


@pytest.mark.parametrize("density", [0.125, 0.25])
def test_random_graph_masks_have_their_graph_properties(density: float) -> None:
    props = {
        p: [graph_properties(make_mask(p, density, (64, 64), seed=s)) for s in range(3)]
        for p in ("erdos_renyi", "watts_strogatz", "barabasi_albert")
    }
    mean = lambda p, k: float(np.mean([q[k] for q in props[p]]))  # noqa: E731
    for p in props:
        assert all(int(make_mask(p, density, (64, 64), seed=s).sum()) == nnz(p, density, (64, 64)) for s in range(3))
    # Erdos-Renyi: clustering equals edge density; Watts-Strogatz: a small world, far more clustered
    assert mean("erdos_renyi", "clustering_ratio") == pytest.approx(1.0, abs=0.1)
    assert mean("watts_strogatz", "clustering_ratio") > 1.8 * mean("erdos_renyi", "clustering_ratio")
    # at equal (undirected) density too: the ring lattice is symmetric, so its graph density is the mask's
    assert mean("watts_strogatz", "density") == pytest.approx(density, rel=0.1)
    # Barabasi-Albert: hubs, a heavy-tailed degree distribution
    assert mean("barabasi_albert", "degree_cv") > 2 * mean("erdos_renyi", "degree_cv")
    assert mean("barabasi_albert", "degree_cv") > 2 * mean("watts_strogatz", "degree_cv")


def test_graph_properties_need_a_square_mask() -> None:
    with pytest.raises(sparsity.SparsityError, match="square"):
        graph_properties(torch.ones(4, 8, dtype=torch.bool))


def test_hidden_size_is_a_decision_and_trades_against_density() -> None:
    space = get_space("sparsity", cell="gru", hidden_size=32, hidden_sizes=[32, 64], input_size=8,
                      densities=[1.0, 0.25, 0.0625])
    assert space.decisions()[0].name == "hidden_size"
    task = Task(input_size=8, seq_len=8, output_size=10)
    dense32 = space.decode(space.uniform_params(1.0, hidden_size=32))
    sparse64 = space.decode(space.uniform_params(0.25, "magnitude", hidden_size=64))
    assert sparse64.hidden_size == 64 and overall_density(sparse64, 8) == pytest.approx(0.25)
    assert space.cost(sparse64, task)["macs"] < space.cost(dense32, task)["macs"]
    rng = np.random.default_rng(0)
    for _ in range(10):
        params = space.sample_params(rng)
        spec = space.decode(params)
        space.validate(spec)
        assert spec.hidden_size == params["hidden_size"]
    with pytest.raises(ValueError, match="hidden_sizes"):
        SparsitySpace(hidden_sizes=[0])
