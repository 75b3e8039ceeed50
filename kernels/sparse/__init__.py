"""Block-sparse matmul for the ``block`` sparsity pattern; unstructured masks stay masked dense.

``block_sparse_matmul(x, weight, layout)`` dispatches to Triton (CUDA or forced interpreter) or the
masked dense reference.
"""

from __future__ import annotations

import torch

from kernels.dispatch import use_triton
from kernels.sparse import reference
from kernels.sparse.layout import BlockLayout


def block_sparse_matmul(x: torch.Tensor, weight: torch.Tensor, layout: BlockLayout) -> torch.Tensor:
    """``x`` ``[M, K]`` @ ``weight`` ``[N, K]``.T over the non-zero blocks of ``layout``."""
    if use_triton(x, weight):
        from kernels.sparse import triton as _triton

        return _triton.block_sparse_matmul(x, weight, layout)
    return reference.block_sparse_matmul(x, weight, layout)


__all__ = ["BlockLayout", "block_sparse_matmul"]
