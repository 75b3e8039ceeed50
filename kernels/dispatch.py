"""The one dispatch point: Triton kernels on CUDA tensors (or when forced), PyTorch otherwise.

Rule: Triton when any tensor is on CUDA and ``NAS_KERNELS`` is not ``torch``; on CPU the PyTorch
path, unless ``NAS_KERNELS=triton`` and ``TRITON_INTERPRET=1`` (how tests run the kernels on CPU).
The environment is read on every call, so tests can switch it with ``monkeypatch.setenv``.
"""

from __future__ import annotations

import os

import torch


def backend() -> str:
    """``"auto"`` (default), ``"triton"`` or ``"torch"``, from ``$NAS_KERNELS``."""
    value = os.environ.get("NAS_KERNELS", "auto").strip().lower() or "auto"
    if value not in ("auto", "triton", "torch"):
        raise ValueError(f"NAS_KERNELS must be auto, triton or torch, got {value!r}")
    return value


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def use_triton(*tensors: torch.Tensor | None) -> bool:
    """Whether the Triton kernels should run for these tensors."""
    choice = backend()
    if choice == "torch":
        return False
    on_cuda = any(t is not None and t.is_cuda for t in tensors)
    if on_cuda:
        return True
    return choice == "triton" and interpreting()


def dot_precision(dtype: torch.dtype) -> str:
    """``tl.dot`` input precision: IEEE for float64 or when torch disallows TF32 matmuls, else TF32."""
    return "ieee" if dtype == torch.float64 or not torch.backends.cuda.matmul.allow_tf32 else "tf32"
