"""The activation-function space of "Searching for Activation Functions" (Ramachandran et al.).

A core unit is ``binary(unary1(x), unary2(x))``; with two units the second reads the first:
``binary2(unary3(core1), unary4(x))``. The cell is fixed (a named cell) and every node whose
activation is ``replace`` (tanh by default) gets the searched function.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from search_spaces.activations import BINARY, UNARY, canonical
from search_spaces.base import Decision, SearchSpace, check_choices
from search_spaces.cells import NAMED_CELLS, named_cell
from search_spaces.spec import Spec

DEFAULT_UNARY = ("x", "neg", "abs", "square", "sigmoid", "tanh", "relu", "exp", "sin", "erf", "softplus", "zero", "one")
DEFAULT_BINARY = ("add", "sub", "mul", "max", "min", "sigmul")


@dataclass
class ActivationSpace(SearchSpace):
    cell: str = "gru"
    hidden_size: int = 32
    replace: str = "tanh"
    units: int = 1
    unary: Sequence[str] = DEFAULT_UNARY
    binary: Sequence[str] = DEFAULT_BINARY

    def __post_init__(self) -> None:
        self.name = "activation"
        if self.cell not in NAMED_CELLS:
            raise ValueError(f"cell: unknown cell {self.cell!r}; choose one of {sorted(NAMED_CELLS)}")
        if self.units not in (1, 2):
            raise ValueError(f"units: must be 1 or 2, got {self.units!r}")
        check_choices("unary", self.unary, ("x", *UNARY))
        check_choices("binary", self.binary, tuple(BINARY))
        self.unary, self.binary = tuple(self.unary), tuple(self.binary)
        self.replace = canonical(self.replace)
        if not any(
            canonical(d["activation"]) == self.replace
            for _, d in named_cell(self.cell, self.hidden_size).graph.nodes(data=True)
            if d["kind"] == "op"
        ):
            raise ValueError(f"replace: the {self.cell} cell has no node with activation {self.replace!r}")

    def decisions(self) -> list[Decision]:
        out = [Decision("u1", self.unary), Decision("u2", self.unary), Decision("b1", self.binary)]
        if self.units == 2:
            out += [Decision("u3", self.unary), Decision("u4", self.unary), Decision("b2", self.binary)]
        return out

    def expression(self, params: dict[str, Any]) -> str:
        """The activation the params describe, as canonical text."""

        def unary(name: str, arg: str) -> str:
            return arg if name == "x" else f"{name}({arg})"

        core = f"{params['b1']}({unary(params['u1'], 'x')}, {unary(params['u2'], 'x')})"
        if self.units == 2:
            core = f"{params['b2']}({unary(params['u3'], core)}, {unary(params['u4'], 'x')})"
        return canonical(core)

    def decode(self, params: dict[str, Any]) -> Spec:
        spec = named_cell(self.cell, self.hidden_size)
        expr = self.expression(params)
        for _, d in spec.graph.nodes(data=True):
            if d["kind"] == "op" and canonical(d["activation"]) == self.replace:
                d["activation"] = expr
        spec.graph.graph["space"] = self.name
        return spec
