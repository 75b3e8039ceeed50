"""Plain-torch reference of the fused activation: ``act(x + bias)`` by autograd."""

from __future__ import annotations

import functools

import torch

from kernels.activation.expr import TORCH_PRELUDE, Tree, emit, tree_hash


@functools.lru_cache(maxsize=1024)
def torch_function(tree: Tree):
    """A torch function for ``tree`` from the same generated code as the kernels (value only)."""
    lines: list[str] = []
    value, _ = emit(tree, "x", lines, prefix="a", grad=False)
    body = "\n".join(f"    {line}" for line in lines)
    namespace: dict = {}
    exec(compile(f"{TORCH_PRELUDE}\n\ndef act(x):\n{body}\n    return {value}\n", f"<act {tree_hash(tree)}>", "exec"), namespace)
    return namespace["act"]


def activation(x: torch.Tensor, tree: Tree, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``act(x + bias)``; ``x``: ``[..., C]``, ``bias``: ``[C]`` or None. Differentiable by autograd."""
    if bias is not None:
        x = x + bias
    return torch_function(tree)(x)
