"""The one table of activation units: every path's form of each unit is produced or checked from it.

A unit has a name, an arity (1 or 2), the opcode of ``native.cpp``'s ``enum Unit`` (checked by
tests/kernels/test_units.py, the C++ source cannot import it), a torch function (the reference,
`search_spaces.activations`), a torch code template for standalone generated files (`nas.codegen`,
``{}`` are the arguments, ``_name`` helpers are defined there) and, for unary units, the value and
local-derivative templates of `kernels.activation.expr` (``{u}`` the argument, ``{y}`` the value;
``None`` for a derivative that is identically zero). Binary units' derivatives are written out in
`kernels.activation.expr`, one rule each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

DIV_EPS = 1e-3  # div(a, b) = a / (|b| + DIV_EPS): no division by zero


@dataclass(frozen=True)
class Unit:
    """One activation unit in every form the paths need (see the module docstring)."""

    name: str
    arity: int
    opcode: int
    torch: Callable[..., torch.Tensor]
    code: str
    rule: tuple[str, str | None] | None = None


def _cube(a: torch.Tensor) -> torch.Tensor:
    return a * a * a


def _minzero(a: torch.Tensor) -> torch.Tensor:
    return torch.clamp(a, max=0.0)


def _gauss(a: torch.Tensor) -> torch.Tensor:
    return torch.exp(-a * a)


def _div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a / (torch.abs(b) + DIV_EPS)


def _sigmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(a) * b


_F = torch.nn.functional
UNITS: dict[str, Unit] = {
    u.name: u
    for u in (
        Unit("neg", 1, 1, torch.neg, "torch.neg({})", ("-{u}", "-1.0")),
        Unit("abs", 1, 2, torch.abs, "torch.abs({})", ("_abs({u})", "_sign({u})")),
        Unit("square", 1, 3, torch.square, "torch.square({})", ("{u} * {u}", "2.0 * {u}")),
        Unit("cube", 1, 4, _cube, "_cube({})", ("{u} * {u} * {u}", "3.0 * {u} * {u}")),
        Unit("exp", 1, 5, torch.exp, "torch.exp({})", ("_exp({u})", "{y}")),
        Unit("sin", 1, 6, torch.sin, "torch.sin({})", ("_sin({u})", "_cos({u})")),
        Unit("cos", 1, 7, torch.cos, "torch.cos({})", ("_cos({u})", "-_sin({u})")),
        Unit("sinh", 1, 8, torch.sinh, "torch.sinh({})",
             ("0.5 * (_exp({u}) - _exp(-{u}))", "0.5 * (_exp({u}) + _exp(-{u}))")),
        Unit("cosh", 1, 9, torch.cosh, "torch.cosh({})",
             ("0.5 * (_exp({u}) + _exp(-{u}))", "0.5 * (_exp({u}) - _exp(-{u}))")),
        Unit("tanh", 1, 10, torch.tanh, "torch.tanh({})", ("_tanh({u})", "1.0 - {y} * {y}")),
        Unit("asinh", 1, 11, torch.asinh, "torch.asinh({})", ("_asinh({u})", "1.0 / _sqrt({u} * {u} + 1.0)")),
        Unit("atan", 1, 12, torch.atan, "torch.atan({})", ("_atan({u})", "1.0 / (1.0 + {u} * {u})")),
        Unit("sigmoid", 1, 13, torch.sigmoid, "torch.sigmoid({})", ("_sigmoid({u})", "{y} * (1.0 - {y})")),
        Unit("relu", 1, 14, torch.relu, "torch.relu({})", ("_relu({u})", "_gt0({u})")),
        Unit("minzero", 1, 15, _minzero, "torch.clamp({}, max=0.0)", ("_minzero({u})", "_le0({u})")),
        Unit("softplus", 1, 16, _F.softplus, "nn.functional.softplus({})", ("_softplus({u})", "_softplus_grad({u})")),
        Unit("erf", 1, 17, torch.erf, "torch.erf({})", ("_erf({u})", "1.1283791670955126 * _exp(-{u} * {u})")),
        Unit("gauss", 1, 18, _gauss, "_gauss({})", ("_exp(-{u} * {u})", "-2.0 * {u} * {y}")),
        Unit("gelu", 1, 19, _F.gelu, "nn.functional.gelu({})", ("_gelu({u})", "_gelu_grad({u})")),
        Unit("zero", 1, 20, torch.zeros_like, "torch.zeros_like({})", ("_zeros_like({u})", None)),
        Unit("one", 1, 21, torch.ones_like, "torch.ones_like({})", ("_ones_like({u})", None)),
        Unit("add", 2, 100, torch.add, "torch.add({}, {})"),
        Unit("sub", 2, 101, torch.sub, "torch.sub({}, {})"),
        Unit("mul", 2, 102, torch.mul, "torch.mul({}, {})"),
        Unit("div", 2, 103, _div, "_div({}, {})"),
        Unit("max", 2, 104, torch.maximum, "torch.maximum({}, {})"),
        Unit("min", 2, 105, torch.minimum, "torch.minimum({}, {})"),
        Unit("sigmul", 2, 106, _sigmul, "_sigmul({}, {})"),
    )
}


def of_arity(arity: int) -> dict[str, Unit]:
    """The units taking ``arity`` arguments, in table order."""
    return {name: u for name, u in UNITS.items() if u.arity == arity}
