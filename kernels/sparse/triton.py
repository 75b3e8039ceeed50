"""Block-sparse ``y = x @ W.T`` driven by the table of non-zero blocks of ``W`` (`BlockLayout`).

The weight keeps its dense ``[N, K]`` storage (the model's parameter layout); kernels only touch the
non-zero blocks. Forward: one program per (row tile of x, block row of W), looping over that block
row's non-zero blocks (CSR). Input gradient: the same over block columns (CSC). Weight gradient: one
program per non-zero block, looping over the rows of x; blocks outside the layout get zero.
Tiles are at least 16 wide (``tl.dot``); blocks smaller than that are masked inside the tile.

kernels -> `sparse_fwd` / `sparse_bwd` launchers -> `BlockSparseMatmul` -> `block_sparse_matmul`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels._alloc import empty
from kernels.dispatch import dot_precision
from kernels.sparse.layout import BlockLayout

BLOCK_M = 16


@triton.jit
def _fwd_kernel(x_ptr, w_ptr, y_ptr, ptr_ptr, idx_ptr, M, N, K, BN: tl.constexpr, BK: tl.constexpr,
                TN: tl.constexpr, TK: tl.constexpr, BM: tl.constexpr, DT: tl.constexpr, PREC: tl.constexpr):
    """y[:, block row r] = sum over non-zero (r, c): x[:, block c] @ W[r, c].T (zero if none)."""
    rm = tl.program_id(0) * BM + tl.arange(0, BM)
    r = tl.program_id(1)
    on = tl.arange(0, TN)
    ok = tl.arange(0, TK)
    rn = r * BN + on
    acc = tl.zeros((BM, TN), dtype=DT)
    start = tl.load(ptr_ptr + r)
    end = tl.load(ptr_ptr + r + 1)
    for i in range(start, end):
        c = tl.load(idx_ptr + i)
        rk = c * BK + ok
        a = tl.load(x_ptr + rm[:, None] * K + rk[None, :], mask=(rm[:, None] < M) & (ok[None, :] < BK), other=0.0)
        w = tl.load(w_ptr + rn[None, :] * K + rk[:, None], mask=(on[None, :] < BN) & (ok[:, None] < BK), other=0.0)
        acc += tl.dot(a.to(DT), w.to(DT), input_precision=PREC)
    tl.store(y_ptr + rm[:, None] * N + rn[None, :], acc, mask=(rm[:, None] < M) & (on[None, :] < BN))


@triton.jit
def _dx_kernel(dy_ptr, w_ptr, dx_ptr, ptr_ptr, idx_ptr, M, N, K, BN: tl.constexpr, BK: tl.constexpr,
               TN: tl.constexpr, TK: tl.constexpr, BM: tl.constexpr, DT: tl.constexpr, PREC: tl.constexpr):
    """dx[:, block column c] = sum over non-zero (r, c): dy[:, block r] @ W[r, c]."""
    rm = tl.program_id(0) * BM + tl.arange(0, BM)
    c = tl.program_id(1)
    on = tl.arange(0, TN)
    ok = tl.arange(0, TK)
    rk = c * BK + ok
    acc = tl.zeros((BM, TK), dtype=DT)
    start = tl.load(ptr_ptr + c)
    end = tl.load(ptr_ptr + c + 1)
    for i in range(start, end):
        r = tl.load(idx_ptr + i)
        rn = r * BN + on
        g = tl.load(dy_ptr + rm[:, None] * N + rn[None, :], mask=(rm[:, None] < M) & (on[None, :] < BN), other=0.0)
        w = tl.load(w_ptr + rn[:, None] * K + rk[None, :], mask=(on[:, None] < BN) & (ok[None, :] < BK), other=0.0)
        acc += tl.dot(g.to(DT), w.to(DT), input_precision=PREC)
    tl.store(dx_ptr + rm[:, None] * K + rk[None, :], acc, mask=(rm[:, None] < M) & (ok[None, :] < BK))


@triton.jit
def _dw_kernel(x_ptr, dy_ptr, dw_ptr, blocks_ptr, M, N, K, BN: tl.constexpr, BK: tl.constexpr,
               TN: tl.constexpr, TK: tl.constexpr, BM: tl.constexpr, DT: tl.constexpr, PREC: tl.constexpr):
    """dW[r, c] = dy[:, block r].T @ x[:, block c] for one non-zero block (r, c)."""
    b = tl.program_id(0)
    r = tl.load(blocks_ptr + 2 * b)
    c = tl.load(blocks_ptr + 2 * b + 1)
    on = tl.arange(0, TN)
    ok = tl.arange(0, TK)
    rn = r * BN + on
    rk = c * BK + ok
    acc = tl.zeros((TN, TK), dtype=DT)
    for m0 in range(0, M, BM):
        rm = m0 + tl.arange(0, BM)
        g = tl.load(dy_ptr + rm[:, None] * N + rn[None, :], mask=(rm[:, None] < M) & (on[None, :] < BN), other=0.0)
        a = tl.load(x_ptr + rm[:, None] * K + rk[None, :], mask=(rm[:, None] < M) & (ok[None, :] < BK), other=0.0)
        acc += tl.dot(tl.trans(g.to(DT)), a.to(DT), input_precision=PREC)
    tl.store(dw_ptr + rn[:, None] * K + rk[None, :], acc, mask=(on[:, None] < BN) & (ok[None, :] < BK))


def _meta(layout: BlockLayout, dtype: torch.dtype) -> dict:
    bn, bk = layout.block
    return {"BN": bn, "BK": bk, "TN": max(16, triton.next_power_of_2(bn)), "TK": max(16, triton.next_power_of_2(bk)),
            "BM": BLOCK_M, "DT": tl.float64 if dtype == torch.float64 else tl.float32, "PREC": dot_precision(dtype)}


def sparse_fwd(x: torch.Tensor, weight: torch.Tensor, layout: BlockLayout) -> torch.Tensor:
    M, K = x.shape
    N = weight.shape[0]
    y = empty(M, N, dtype=x.dtype, device=x.device)
    grid = (triton.cdiv(M, BLOCK_M), N // layout.block[0])
    _fwd_kernel[grid](x, weight, y, layout.row_ptr, layout.row_cols, M, N, K, **_meta(layout, x.dtype))
    return y


def sparse_bwd(x: torch.Tensor, weight: torch.Tensor, layout: BlockLayout, dy: torch.Tensor):
    """Returns ``(dx [M, K], dweight [N, K])``; dweight is zero outside the layout's blocks."""
    M, K = x.shape
    N = weight.shape[0]
    meta = _meta(layout, x.dtype)
    dx = empty(M, K, dtype=x.dtype, device=x.device)
    _dx_kernel[(triton.cdiv(M, BLOCK_M), K // layout.block[1])](
        dy, weight, dx, layout.col_ptr, layout.col_rows, M, N, K, **meta
    )
    dw = torch.zeros_like(weight)  # zero outside the blocks is the answer, not a missing write
    if len(layout.blocks):
        _dw_kernel[(len(layout.blocks),)](x, dy, dw, layout.blocks, M, N, K, **meta)
    return dx, dw


class BlockSparseMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, layout):
        ctx.layout = layout
        ctx.save_for_backward(x, weight)
        return sparse_fwd(x, weight, layout)

    @staticmethod
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors
        dx, dw = sparse_bwd(x, weight, ctx.layout, dy.contiguous())
        return dx, dw, None


def block_sparse_matmul(x: torch.Tensor, weight: torch.Tensor, layout: BlockLayout) -> torch.Tensor:
    """``x`` ``[M, K]`` @ ``weight`` ``[N, K]``.T over the layout's non-zero blocks -> ``[M, N]``."""
    if x.dim() != 2 or weight.dim() != 2 or x.shape[1] != weight.shape[1] or tuple(weight.shape) != layout.shape:
        raise ValueError(f"x [M, K] and weight {list(layout.shape)} expected, got {list(x.shape)}, {list(weight.shape)}")
    layout = layout.to(x.device)
    return BlockSparseMatmul.apply(x.contiguous(), weight.contiguous(), layout)
