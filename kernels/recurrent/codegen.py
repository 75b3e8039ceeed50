"""Helpers shared by the generated recurrent paths: per-op derivative code and dead-code removal."""

from __future__ import annotations

import re

from kernels.activation.expr import emit, is_identity

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def prune(lines: list[str], needed: set[str]) -> list[str]:
    """Keep only the ``name = expr`` lines that the names in ``needed`` depend on."""
    keep: list[str] = []
    needed = set(needed)
    for line in reversed(lines):
        name, expr = line.split(" = ", 1)
        if name in needed:
            keep.append(line)
            needed |= set(_NAME.findall(expr))
    return keep[::-1]


def activation_value(tree: tuple, z: str, lines: list[str], prefix: str) -> str:
    """Append forward lines of ``act(z)``; return the value's name (``z`` itself for identity)."""
    if is_identity(tree):
        return z
    value, _ = emit(tree, z, lines, prefix=prefix, grad=False)
    return value


def activation_grad(tree: tuple, z: str, y: str, lines: list[str], prefix: str) -> str | None:
    """Append lines computing ``act'(z)`` reusing the saved value ``y``; None if identically zero,
    ``"1"`` for the identity."""
    if is_identity(tree):
        return "1"
    body: list[str] = []
    value, deriv = emit(tree, z, body, prefix=prefix, grad=True)
    if deriv is None:
        return None
    body = [f"{value} = {y}" if line.startswith(f"{value} = ") else line for line in body]
    kept = prune(body, set(_NAME.findall(deriv)))
    lines += [line for line in kept if line != f"{y} = {y}"]
    return deriv


def names_in(lines: list[str]) -> set[str]:
    out: set[str] = set()
    for line in lines:
        out |= set(_NAME.findall(line))
    return out


def term_grads(op, dz: str, names: list[str]) -> list[tuple[object, str]]:
    """(term, gradient expression) for each term of ``op`` given its pre-activation gradient ``dz``;
    ``names`` are the terms' values (a product's gradient reads the other factors)."""
    out = []
    for j, t in enumerate(op.terms):
        if op.combine == "add" or (op.combine == "sub" and j == 0):
            d = dz
        elif op.combine == "sub":
            d = f"-{dz}"
        else:
            d = f"{dz} * {' * '.join(n for jj, n in enumerate(names) if jj != j)}"
        out.append((t, d))
    return out
