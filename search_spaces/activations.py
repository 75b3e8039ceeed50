"""Activation functions as expression trees of unary and binary units.

The grammar follows "Searching for Activation Functions" (Ramachandran et al., 2017): an expression is
the variable ``x``, or a unit applied to sub-expressions, written as a call, e.g. Swish is
``mul(x, sigmoid(x))``. A bare unary name such as ``"tanh"`` means ``tanh(x)``. Expressions are plain
strings in a Spec; `parse` turns them into a tree, `format_expr` back into canonical text, and
`compile_torch` into a differentiable torch function.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

from kernels.activation import units

# the units, from the one table in `kernels.activation.units` (name -> torch function)
UNARY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {n: u.torch for n, u in units.of_arity(1).items()}
BINARY: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    n: u.torch for n, u in units.of_arity(2).items()
}
DIV_EPS = units.DIV_EPS

ALIASES: dict[str, str] = {
    "identity": "x",
    "linear": "x",
    "silu": "mul(x, sigmoid(x))",
    "swish": "mul(x, sigmoid(x))",
}

_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*|[(),])")


class ExpressionError(ValueError):
    """An activation expression that does not parse or uses an unknown unit."""


@dataclass(frozen=True)
class Expr:
    """A node of an activation expression: ``op`` is ``"x"`` or a unit name."""

    op: str
    args: tuple[Expr, ...] = ()


def _tokenize(text: str) -> list[str]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ExpressionError(f"unexpected character {text[pos]!r} at position {pos} in {text!r}")
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


def _parse_tokens(tokens: list[str], pos: int, text: str) -> tuple[Expr, int]:
    if pos >= len(tokens):
        raise ExpressionError(f"expression {text!r} ends early")
    name = tokens[pos]
    if name in "(),":
        raise ExpressionError(f"expected a unit name or 'x' in {text!r}, got {name!r}")
    pos += 1
    if name == "x":
        return Expr("x"), pos
    arity = 1 if name in UNARY else 2 if name in BINARY else None
    if arity is None:
        raise ExpressionError(
            f"unknown unit {name!r} in {text!r}; unary units: {sorted(UNARY)}, binary units: {sorted(BINARY)}"
        )
    if pos >= len(tokens) or tokens[pos] != "(":
        if arity == 1:  # bare unary name: tanh == tanh(x)
            return Expr(name, (Expr("x"),)), pos
        raise ExpressionError(f"binary unit {name!r} needs two arguments in {text!r}")
    pos += 1
    args = []
    while True:
        arg, pos = _parse_tokens(tokens, pos, text)
        args.append(arg)
        if pos < len(tokens) and tokens[pos] == ",":
            pos += 1
            continue
        if pos < len(tokens) and tokens[pos] == ")":
            pos += 1
            break
        raise ExpressionError(f"expected ',' or ')' in {text!r}")
    if len(args) != arity:
        raise ExpressionError(f"unit {name!r} takes {arity} argument(s), got {len(args)} in {text!r}")
    return Expr(name, tuple(args)), pos


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Expr:
    """Parse an activation expression (or a named activation) into a tree."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError(f"an activation must be a non-empty string, got {text!r}")
    text = ALIASES.get(text.strip(), text)
    tokens = _tokenize(text)
    expr, pos = _parse_tokens(tokens, 0, text)
    if pos != len(tokens):
        raise ExpressionError(f"unexpected {' '.join(tokens[pos:])!r} after a complete expression in {text!r}")
    return expr


def format_expr(expr: Expr) -> str:
    """Canonical text of an expression: ``tanh(x)``, ``mul(x, sigmoid(x))``."""
    if expr.op == "x":
        return "x"
    return f"{expr.op}({', '.join(format_expr(a) for a in expr.args)})"


def canonical(text: str) -> str:
    """Canonical text of an activation string (aliases and bare names expanded)."""
    return format_expr(parse(text))


def _build(expr: Expr) -> Callable[[torch.Tensor], torch.Tensor]:
    if expr.op == "x":
        return lambda x: x
    if len(expr.args) == 1:
        fn, inner = UNARY[expr.op], _build(expr.args[0])
        return lambda x: fn(inner(x))
    fn, left, right = BINARY[expr.op], _build(expr.args[0]), _build(expr.args[1])
    return lambda x: fn(left(x), right(x))


@functools.lru_cache(maxsize=4096)
def compile_torch(text: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """A differentiable torch function for an activation expression (the reference path)."""
    return _build(parse(text))


def depth(expr: Expr) -> int:
    return 0 if expr.op == "x" else 1 + max(depth(a) for a in expr.args)


def is_finite_on_probe(text: str, low: float = -6.0, high: float = 6.0, points: int = 257) -> bool:
    """Whether the activation and its gradient are finite on ordinary inputs in [low, high]."""
    x = torch.linspace(low, high, points, dtype=torch.float64, requires_grad=True)
    y = compile_torch(text)(x)
    (grad,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
    grad = torch.zeros_like(x) if grad is None else grad
    return bool(torch.isfinite(y).all() and torch.isfinite(grad).all() and y.abs().max() < math.inf)


# --- deduplication and safety (the Swish paper's search trains each distinct function once) ---------

# Fixed probe points: an irregular grid over ordinary pre-activations, plus 0 and a few far points, so
# two functions that agree on all of them are, for a search's purposes, the same function.
PROBE_POINTS: tuple[float, ...] = tuple(
    sorted({round(-7.3 + 0.137 * i, 6) for i in range(108)} | {0.0, -12.5, -9.1, 9.1, 12.5})
)
SAFE_RANGE = (-8.0, 8.0)  # "ordinary inputs": pre-activations of a trained recurrent cell stay in here
SAFE_MAX_ABS = 1e4  # a function larger than this on SAFE_RANGE overflows float16/bf16 products quickly


def probe_signature(text: str, digits: int = 6) -> str:
    """A hash of the expression's values at `PROBE_POINTS`, rounded to ``digits`` significant digits.

    Equivalent expressions (``mul(x, sigmoid(x))``, ``mul(sigmoid(x), x)``, ``sigmul(x, x)``) get the
    same signature without any symbolic algebra; distinct functions differ on some probe point.
    """
    x = torch.tensor(PROBE_POINTS, dtype=torch.float64)
    with torch.no_grad():
        y = compile_torch(text)(x)
    parts = []
    for value in y.tolist():
        if not math.isfinite(value):
            parts.append(repr(value))
        elif value == 0.0:
            parts.append("0")
        else:
            parts.append(f"{value:.{digits - 1}e}")
    return hashlib.sha256(",".join(parts).encode()).hexdigest()[:16]


def check_safe(text: str, low: float = SAFE_RANGE[0], high: float = SAFE_RANGE[1], points: int = 513) -> None:
    """Raise `ExpressionError` with the reason if the activation is unsafe to train with.

    Unsafe means, on ordinary inputs ``[low, high]`` in float32: a NaN or infinite value or gradient,
    a value beyond `SAFE_MAX_ABS` (overflow waiting to happen), or a constant function (no gradient
    reaches the weights before it, so the cell cannot learn).
    """
    fn = compile_torch(text)
    x = torch.linspace(low, high, points, dtype=torch.float32, requires_grad=True)
    y = fn(x)
    if y.requires_grad:
        (grad,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
    else:
        grad = None
    grad = torch.zeros_like(x) if grad is None else grad.detach()
    x, y = x.detach(), y.detach()
    name = canonical(text)
    bad = ~torch.isfinite(y)
    if bad.any():
        at = float(x[bad.nonzero()[0, 0]])
        raise ExpressionError(f"{name}: value is {float(y[bad][0])} at x={at:g} (NaN/overflow on ordinary inputs)")
    bad = ~torch.isfinite(grad)
    if bad.any():
        at = float(x[bad.nonzero()[0, 0]])
        raise ExpressionError(f"{name}: gradient is {float(grad[bad][0])} at x={at:g} (NaN/overflow on ordinary inputs)")
    peak = int(y.abs().argmax())
    if float(y[peak].abs()) > SAFE_MAX_ABS:
        raise ExpressionError(
            f"{name}: reaches {float(y[peak]):.3g} at x={float(x[peak]):g}, beyond {SAFE_MAX_ABS:g} (overflow risk)"
        )
    if float(grad.abs().max()) == 0.0:
        raise ExpressionError(f"{name}: constant on [{low:g}, {high:g}] (zero gradient, nothing to learn)")
