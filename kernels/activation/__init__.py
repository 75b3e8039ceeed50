"""Fused searched activations: ``activation(x, tree, bias)`` picks Triton or torch by `kernels.dispatch`."""

from __future__ import annotations

import torch

from kernels.activation import reference
from kernels.activation.expr import Tree, tree_text
from kernels.dispatch import use_triton


def activation(x: torch.Tensor, tree: Tree, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``act(x + bias)`` for an expression tree; ``x``: ``[..., C]``, ``bias``: ``[C]`` or None."""
    if use_triton(x):
        from kernels.activation import triton as _triton

        return _triton.activation(x, tree, bias)
    return reference.activation(x, tree, bias)


__all__ = ["Tree", "activation", "tree_text"]
