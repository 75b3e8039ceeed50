"""Plain-torch reference of the block-sparse matmul: a masked dense matmul.

Also the path for unstructured masks, where blocks do not help: ``x @ (weight * mask).T``.
"""

from __future__ import annotations

import torch

from kernels.sparse.layout import BlockLayout


def block_sparse_matmul(x: torch.Tensor, weight: torch.Tensor, layout: BlockLayout) -> torch.Tensor:
    """``x`` ``[M, K]`` @ ``weight`` ``[N, K]``.T restricted to the layout's blocks -> ``[M, N]``."""
    mask = layout.dense_mask().to(device=weight.device, dtype=weight.dtype)
    return x @ (weight * mask).t()
