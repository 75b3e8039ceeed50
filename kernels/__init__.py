"""Kernels for candidate cells, each with a plain-torch reference beside it.

One package per op, same signature for every variant (reference, fused CPU path, Triton):

* `kernels.activation`: searched activation ``act(x + bias)``, forward and backward generated from
  the expression tree into a real ``.py`` file (cached by the expression's hash).
* `kernels.recurrent`: a recurrent cell over a whole sequence from its `CellProgram` (FlashRNN-style
  Triton kernel; generated fused torch code on CPU; torch's fused LSTM/GRU for exact LSTM/GRU).
* `kernels.sparse`: block-sparse matmul driven by a table of non-zero blocks.

`kernels.dispatch.use_triton` is the one dispatch point: Triton for CUDA tensors, or on CPU when
``NAS_KERNELS=triton`` and ``TRITON_INTERPRET=1`` (tests); PyTorch otherwise. Generated files go to
``$NAS_KERNEL_CACHE`` (default ``~/.cache/nas_kernels``). This package imports nothing else of ours:
`search_spaces.lowering` turns Specs into the plain data used here.
"""

from __future__ import annotations

from kernels.activation import activation
from kernels.dispatch import use_triton
from kernels.recurrent import CellProgram, cell_sequence
from kernels.sparse import BlockLayout, block_sparse_matmul

__all__ = ["BlockLayout", "CellProgram", "activation", "block_sparse_matmul", "cell_sequence", "use_triton"]
