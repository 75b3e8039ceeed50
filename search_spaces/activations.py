"""Activation functions as expression trees of unary and binary units.

The grammar follows "Searching for Activation Functions" (Ramachandran et al., 2017): an expression is
the variable ``x``, or a unit applied to sub-expressions, written as a call, e.g. Swish is
``mul(x, sigmoid(x))``. A bare unary name such as ``"tanh"`` means ``tanh(x)``. Expressions are plain
strings in a Spec; `parse` turns them into a tree, `format_expr` back into canonical text, and
`compile_torch` into a differentiable torch function.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

UNARY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "neg": torch.neg,
    "abs": torch.abs,
    "square": torch.square,
    "cube": lambda x: x * x * x,
    "exp": torch.exp,
    "sin": torch.sin,
    "cos": torch.cos,
    "sinh": torch.sinh,
    "cosh": torch.cosh,
    "tanh": torch.tanh,
    "asinh": torch.asinh,
    "atan": torch.atan,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "minzero": lambda x: torch.clamp(x, max=0.0),
    "softplus": torch.nn.functional.softplus,
    "erf": torch.erf,
    "gauss": lambda x: torch.exp(-x * x),
    "gelu": torch.nn.functional.gelu,
    "zero": torch.zeros_like,
    "one": torch.ones_like,
}

DIV_EPS = 1e-3

BINARY: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": lambda a, b: a / (torch.abs(b) + DIV_EPS),
    "max": torch.maximum,
    "min": torch.minimum,
    "sigmul": lambda a, b: torch.sigmoid(a) * b,
}

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
