"""Output allocation for kernel launchers; ``NAS_KERNELS_POISON=1`` fills outputs with NaN first.

Tests set the variable so that any element a kernel forgets to write shows up as NaN.
"""

from __future__ import annotations

import os

import torch


def _poison() -> bool:
    return os.environ.get("NAS_KERNELS_POISON", "0") == "1"


def empty(*shape: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    out = torch.empty(*shape, dtype=dtype, device=device)
    return out.fill_(float("nan")) if _poison() and out.is_floating_point() else out


def empty_like(t: torch.Tensor) -> torch.Tensor:
    return empty(*t.shape, dtype=t.dtype, device=t.device)
