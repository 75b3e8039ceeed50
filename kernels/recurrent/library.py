"""Library fast paths: programs that are exactly our LSTM or GRU run on torch's fused RNN ops.

On CPU ``torch.lstm`` runs the whole sequence in oneDNN kernels, faster than the C++ engine from 32
hidden units up; ``torch.gru``'s backward is not fused and is slower than the engine at every size we
train (`kernels.recurrent.prefer_library`, measured by ``benchmarks/library_path.py``), so a GRU takes
this path only where the engine does not build. The lowering marks a program ``library="lstm"``/``"gru"`` only when it equals the
program of `search_spaces.cells.lstm`/`gru` (their tanh, any sparsity), whose chunk orders are fixed:

    LSTM: x / h / bias chunks in op order f, g, i, o -> torch order i, f, g, o
    GRU:  x chunks r, n, z; h chunks r, uh, z; biases r, uh, n, z -> torch r, z, n (b_hh = 0, 0, b_uh)
"""

from __future__ import annotations

import torch

_LSTM = [2, 0, 1, 3]


def _chunks(w: torch.Tensor, H: int, order: list[int]) -> torch.Tensor:
    return torch.cat([w[i * H : (i + 1) * H] for i in order])


def lstm(
    x: torch.Tensor, wx: torch.Tensor, weights: torch.Tensor, biases: torch.Tensor, initial: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """x [B, T, I], wx [4H, I], weights [4, H, H], biases [4, H], initial [2, B, H]."""
    H = weights.shape[-1]
    w_ih = _chunks(wx, H, _LSTM)
    w_hh = weights[_LSTM].reshape(4 * H, H)
    b_ih = biases[_LSTM].reshape(4 * H)
    params = [w_ih, w_hh, b_ih, torch.zeros_like(b_ih)]
    out, h, c = torch.lstm(x, (initial[0:1], initial[1:2]), params, True, 1, 0.0, True, False, True)
    return out, torch.cat([h, c])


def gru(
    x: torch.Tensor, wx: torch.Tensor, weights: torch.Tensor, biases: torch.Tensor, initial: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """x [B, T, I], wx [3H, I], weights [3, H, H], biases [4, H], initial [1, B, H]."""
    H = weights.shape[-1]
    w_ih = _chunks(wx, H, [0, 2, 1])
    w_hh = weights[[0, 2, 1]].reshape(3 * H, H)
    b_ih = biases[[0, 3, 2]].reshape(3 * H)
    b_hh = torch.cat([biases.new_zeros(2 * H), biases[1]])
    out, h = torch.gru(x, initial, [w_ih, w_hh, b_ih, b_hh], True, 1, 0.0, True, False, True)
    return out, h


LIBRARY = {"lstm": lstm, "gru": gru}
