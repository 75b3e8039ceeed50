"""The one comparison helper of the kernel tests, and random inputs from the search spaces."""

from __future__ import annotations

import numpy as np
import torch

from search_spaces import get_space
from search_spaces.spec import Spec

# relative RMS error bounds: float64 against the float64 reference, float32 against it
RATIO = {torch.float64: 1e-10, torch.float32: 2e-5}


def rel_rms(ref: torch.Tensor, out: torch.Tensor) -> float:
    ref, out = ref.detach().double(), out.detach().double()
    return float((ref - out).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt().clamp_min(1e-30))


def assert_close(name: str, ref: torch.Tensor | None, out: torch.Tensor | None, ratio: float) -> None:
    """``out`` matches ``ref`` in shape, is finite (no NaN poison left) and within ``ratio`` relative
    RMS error (an absolute 1e-12 floor for all-zero references)."""
    if ref is None or out is None:
        assert ref is None and out is None, f"{name}: one of ref/out is None"
        return
    assert ref.shape == out.shape, f"{name}: shape {tuple(out.shape)} != reference {tuple(ref.shape)}"
    ref, out = ref.detach(), out.detach()
    assert torch.isfinite(out).all(), f"{name}: non-finite values (NaN poison not overwritten?)"
    err = rel_rms(ref, out)
    if float(ref.double().abs().max()) == 0.0:
        assert float(out.double().abs().max()) <= 1e-12, f"{name}: expected zeros"
        return
    assert err <= ratio, f"{name}: relative RMS error {err:.3e} > {ratio:.1e}"


def random_specs(count: int, hidden: int, seed: int = 0, input_size: int | None = None) -> list[Spec]:
    """Random Specs from the recurrent-cell, gated, activation and sparsity spaces (``count`` of each)."""
    rng = np.random.default_rng(seed)
    spaces = [
        get_space("recurrent_cell", num_nodes=4, hidden_sizes=(hidden,),
                  activations=("tanh", "relu", "sigmoid", "identity", "mul(x, sigmoid(x))")),
        get_space("gated", hidden_sizes=(hidden,)),
        get_space("activation", cell="gru", hidden_size=hidden),
        get_space("activation", cell="lstm", hidden_size=hidden, units=2),
        get_space("sparsity", cell="lstm", hidden_size=hidden, input_size=input_size),
    ]
    return [space.sample(rng) for space in spaces for _ in range(count)]
