"""Sparsity masks: exact densities, shapes, and zeros that survive training."""

from __future__ import annotations

import pytest
import torch

from search_spaces import SparsitySpace, Task, build, sparsity

PATTERNS = [p for p in sparsity.PATTERNS if p != "dense"]


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("density", [0.5, 0.25, 0.125])
@pytest.mark.parametrize("shape", [(32, 32), (32, 16), (48, 48)])
def test_masks_hit_their_density_exactly(pattern, density, shape):
    blocks = (shape[0] // 16) * (shape[1] // 16)
    if pattern == "block" and (density * blocks) % 1:
        with pytest.raises(sparsity.SparsityError, match="multiple of 1/"):
            sparsity.make_mask(pattern, density, shape)
        return
    mask = sparsity.make_mask(pattern, density, shape, weight=torch.randn(shape), seed=1)
    assert mask.shape == shape and mask.dtype == torch.bool
    assert int(mask.sum()) == sparsity.nnz(pattern, density, shape)
    assert int(mask.sum()) == round(density * mask.numel())


def test_block_and_nm_structure():
    w = torch.randn(32, 32)
    block = sparsity.make_mask("block", 0.25, (32, 32), weight=w)
    tiles = block.view(2, 16, 2, 16).permute(0, 2, 1, 3).reshape(4, -1)
    assert all(t.all() or not t.any() for t in tiles) and int(tiles.all(dim=1).sum()) == 1
    nm = sparsity.make_mask("nm", 0.5, (32, 32), weight=w)
    assert (nm.view(32, 8, 4).sum(-1) == 2).all()


def test_impossible_patterns_are_rejected_with_the_reason():
    with pytest.raises(sparsity.SparsityError, match="divisible by 16"):
        sparsity.check("nm", 0.0625, (32, 8))
    with pytest.raises(sparsity.SparsityError, match="unknown sparsity pattern"):
        sparsity.check("diagonal", 0.5, (8, 8))
    with pytest.raises(sparsity.SparsityError, match=r"\(0, 1\]"):
        sparsity.check("random", 0.0, (8, 8))


def test_masks_stay_zero_after_optimizer_steps():
    space = SparsitySpace(cell="gru", hidden_size=16, input_size=8, densities=(0.25,), patterns=("random", "block"))
    params = {d.name: d.choices[-1] for d in space.decisions()}
    spec = space.decode(params)
    task = Task(input_size=8, seq_len=5, output_size=3)
    model = build(spec, task)
    cell = model.cell
    zeros_before = {s: (cell.mask(s) == 0) for s in cell.sources}
    for s, z in zeros_before.items():
        assert z.float().mean() == pytest.approx(0.75)
        assert (cell.weights[s][z] == 0).all()
    opt = torch.optim.Adam(model.parameters(), lr=0.1, weight_decay=0.01)
    for _ in range(5):
        loss = model(torch.randn(8, 5, 8)).square().mean()
        opt.zero_grad()
        loss.backward()
        for s, z in zeros_before.items():
            assert (cell.weights[s].grad[z] == 0).all()
        opt.step()
        model.apply_masks()
    for s, z in zeros_before.items():
        assert (cell.weights[s][z] == 0).all()
        assert (cell.weights[s][~z] != 0).all()


def test_gradual_magnitude_pruning_reaches_target_density():
    space = SparsitySpace(cell="elman", hidden_size=32, input_size=8, densities=(0.25,), patterns=("magnitude",))
    spec = space.decode({d.name: d.choices[0] for d in space.decisions()})
    model = build(spec, Task(input_size=8, seq_len=4, output_size=2))
    cell = model.cell
    model.prune_magnitude(0.0)
    assert cell.mask("h").all()
    model.prune_magnitude(0.5)
    half = float(cell.mask("h").mean())
    assert 0.25 < half < 1.0
    model.prune_magnitude(1.0)
    assert int(cell.mask("h").sum()) == sparsity.nnz("magnitude", 0.25, (32, 32))
    kept = cell.weights["h"][cell.mask("h").bool()].abs().min()
    assert kept > 0
