"""Block-sparse matmul under the interpreter against the masked dense float64 reference."""

from __future__ import annotations

import pytest
import torch

from kernels.sparse import BlockLayout, reference
from kernels.sparse import triton as sparse_triton
from search_spaces import sparsity
from tests.kernels._testing import RATIO, assert_close

# (M, N, K, density): odd M, blocks of 16 and a whole side smaller than 16
SHAPES = [(5, 32, 48, 0.5), (17, 16, 64, 0.25), (3, 8, 32, 0.5), (4, 32, 16, 1.0)]


def _case(M: int, N: int, K: int, density: float, dtype=torch.float64, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    mask = sparsity.make_mask("block", density, (N, K), seed=seed)
    layout = BlockLayout.from_mask(mask, sparsity.block_shape((N, K)))
    x = torch.randn(M, K, generator=gen, dtype=torch.float64).to(dtype).requires_grad_()
    w = (torch.randn(N, K, generator=gen, dtype=torch.float64) * mask).to(dtype).requires_grad_()
    return x, w, layout


def _run(fn, x, w, layout):
    y = fn(x, w, layout)
    dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64).to(y.dtype)
    dx, dw = torch.autograd.grad(y, (x, w), dy)
    return y, dx, dw


@pytest.mark.parametrize("M,N,K,density", SHAPES, ids=[f"M{m}-N{n}-K{k}-d{d}" for m, n, k, d in SHAPES])
def test_matches_masked_dense(M, N, K, density) -> None:
    x, w, layout = _case(M, N, K, density)
    assert layout.density() == pytest.approx(density)
    for name, r, o in zip(("y", "dx", "dw"), _run(reference.block_sparse_matmul, x, w, layout),
                          _run(sparse_triton.block_sparse_matmul, x, w, layout)):
        assert_close(name, r, o, RATIO[torch.float64])


def test_gradcheck() -> None:
    x, w, layout = _case(3, 32, 32, 0.5)
    assert torch.autograd.gradcheck(lambda x, w: sparse_triton.block_sparse_matmul(x, w, layout), (x, w), fast_mode=True)


def test_float32_against_float64() -> None:
    x, w, layout = _case(9, 32, 48, 0.5)
    ref = _run(reference.block_sparse_matmul, x, w, layout)
    out = _run(sparse_triton.block_sparse_matmul, x.detach().float().requires_grad_(), w.detach().float().requires_grad_(), layout)
    for name, r, o in zip(("y", "dx", "dw"), ref, out):
        assert_close(name, r, o, RATIO[torch.float32])


def test_layout_tables() -> None:
    bm = torch.tensor([[1, 0, 1], [0, 0, 0], [0, 1, 1]], dtype=torch.bool)
    layout = BlockLayout.from_block_mask(bm, (2, 2))
    assert layout.row_ptr.tolist() == [0, 2, 2, 4] and layout.row_cols.tolist() == [0, 2, 1, 2]
    assert layout.col_ptr.tolist() == [0, 1, 2, 4] and layout.col_rows.tolist() == [0, 2, 0, 2]
    assert layout.dense_mask().shape == (6, 6) and int(layout.dense_mask().sum()) == 16


def test_shape_error() -> None:
    x, w, layout = _case(3, 32, 32, 0.5)
    with pytest.raises(ValueError, match="expected"):
        sparse_triton.block_sparse_matmul(x[:, :16], w, layout)
