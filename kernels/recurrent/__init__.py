"""A recurrent cell over a whole sequence: ``cell_sequence(program, x, wx, weights, biases)``.

Dispatch (`kernels.dispatch.use_triton`): the Triton kernel on CUDA (or forced under the
interpreter); on CPU the C++ engine (`native`, built once per machine) -- torch's fused op for an
exact LSTM of 32 units or more, where it is faster (`prefer_library`) -- else the library op for an
exact LSTM/GRU, else the generated fused path (no compiler, or ``NAS_RECURRENT_CPU=fused``).
Implementations of the shared ``recurrent(program, xproj, weights, biases, initial)`` contract:
`reference` (per-step loop, the oracle), `native` (C++), `fused` (generated torch), `triton`
(generated kernels).
"""

from __future__ import annotations

import torch

from kernels.dispatch import use_triton
from kernels.recurrent import fused, native, reference
from kernels.recurrent.library import LIBRARY
from kernels.recurrent.program import CellProgram, Op, Term
from kernels.sparse import BlockLayout, block_sparse_matmul


def cell_sequence(
    program: CellProgram,
    x: torch.Tensor,
    wx: torch.Tensor,
    weights: torch.Tensor,
    biases: torch.Tensor,
    initial: torch.Tensor | None = None,
    *,
    library: bool = True,
    wx_layout: BlockLayout | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the cell over ``x`` ``[B, T, I]`` with ``wx`` ``[Kx * H, I]`` (x projections), recurrent
    ``weights`` ``[E, H, H]``, ``biases`` ``[NB, H]``, ``initial`` ``[S, B, H]`` (None: zeros).

    Returns ``hs`` ``[B, T, H]`` and the final states ``[S, B, H]``. ``library=False`` skips the
    torch LSTM/GRU fast path (benchmarks use it to time the generated path). ``wx_layout``: the
    non-zero blocks of a block-sparse ``wx``; the Triton path then projects with the block-sparse
    matmul (on CPU the masked dense matmul is faster at these sizes).
    """
    B, T, _ = x.shape
    if initial is None:
        initial = x.new_zeros(program.num_states, B, program.hidden)
    if use_triton(x, weights):
        from kernels.recurrent import triton as _triton

        if wx_layout is not None:
            xproj = block_sparse_matmul(x.reshape(B * T, -1), wx, wx_layout).view(B, T, -1)
        else:
            xproj = x @ wx.t()
        return _triton.recurrent(program, xproj, weights, biases, initial)
    if library and prefer_library(program, x, wx, weights, biases, initial):
        return LIBRARY[program.library](x, wx, weights, biases, initial)
    xproj = x @ wx.t()  # every step's input projections in one matmul
    if native.supports(program, xproj, weights, biases, initial):
        return native.recurrent(program, xproj, weights, biases, initial)
    return fused.recurrent(program, xproj, weights, biases, initial)


# torch's fused LSTM op beats the C++ engine from this hidden size up; its GRU op never does (on CPU
# its backward is not fused: 1.5x the engine's time at hidden 128, 5-9x at BasicMotions' sizes).
# Measured by benchmarks/library_path.py at the shipped configs' shapes.
LIBRARY_LSTM_MIN_HIDDEN = 32


def prefer_library(program: CellProgram, *tensors: torch.Tensor) -> bool:
    """Whether an exact LSTM/GRU (``program.library``) runs on torch's op rather than the C++ engine:
    where the engine runs these tensors (`native.supports`), only an LSTM of at least
    ``LIBRARY_LSTM_MIN_HIDDEN`` units; where it does not, any (the op beats the TorchScript path)."""
    if program.library not in LIBRARY:
        return False
    if not native.supports(program, *tensors):
        return True
    return program.library == "lstm" and program.hidden >= LIBRARY_LSTM_MIN_HIDDEN


__all__ = ["LIBRARY_LSTM_MIN_HIDDEN", "CellProgram", "Op", "Term", "cell_sequence", "fused", "native", "prefer_library", "reference"]
