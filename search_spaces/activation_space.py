"""The activation-function space of "Searching for Activation Functions" (Ramachandran et al.).

A core unit is ``binary(unary1(x), unary2(x))``; with two units the second reads the first:
``binary2(unary3(core1), unary4(x))``. The cell is fixed (a named cell) and every node whose
activation is ``replace`` (tanh by default) gets the searched function.

Two things keep a search from wasting training runs (as the paper's exhaustive search did): `validate`
rejects numerically unsafe functions with the reason (`activations.check_safe`), and `canonical_hash`
hashes functions by their values at fixed probe points, so ``mul(x, sigmoid(x))`` and ``sigmul(x, x)``
are one candidate. `unique_params` enumerates a small space exhaustively, one entry per distinct safe
function.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from search_spaces.activations import BINARY, UNARY, ExpressionError, canonical, check_safe, probe_signature
from search_spaces.base import Decision, SearchSpace, check_choices
from search_spaces.cells import NAMED, named_cell
from search_spaces.spec import Spec, SpecError, validate_spec
from search_spaces.spec import canonical_hash as graph_hash

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
        if self.cell not in NAMED:
            raise ValueError(f"cell: unknown cell {self.cell!r}; choose one of {sorted(NAMED)}")
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
        return self.apply(named_cell(self.cell, self.hidden_size), params, space=self.name)

    def apply(self, spec: Spec, params: dict[str, Any], *, space: str) -> Spec:
        """Give every ``replace`` node of ``spec`` the params' function (in place); ``space`` names it."""
        expr = self.expression(params)
        for _, d in spec.graph.nodes(data=True):
            if d["kind"] == "op" and canonical(d["activation"]) == self.replace:
                d["activation"] = expr
        spec.graph.graph["space"] = space
        return spec

    def validate(self, spec: Spec) -> None:
        """`validate_spec`, then reject an unsafe searched function with the reason (`check_safe`)."""
        validate_spec(spec)
        for node in spec.op_nodes():
            text = spec.graph.nodes[node]["activation"]
            try:
                check_safe(text)
            except ExpressionError as exc:
                raise SpecError(f"nodes[{node!r}].activation: unsafe: {exc}") from exc

    def canonical_hash(self, spec: Spec) -> str:
        """Equal for cells whose activations agree at the probe points (equivalent expressions)."""
        return function_hash(spec)

    def grid_size(self) -> int:
        """Number of raw decision assignments (before deduplication)."""
        n = 1
        for d in self.decisions():
            n *= len(d.choices)
        return n

    def iter_params(self) -> Iterator[dict[str, Any]]:
        """Every assignment of the decisions, in a fixed order (first choices vary slowest)."""
        decisions = self.decisions()
        for values in itertools.product(*(d.choices for d in decisions)):
            yield {d.name: v for d, v in zip(decisions, values)}

    def unique_params(self, *, safe_only: bool = True) -> list[tuple[dict[str, Any], str]]:
        """One ``(params, expression)`` per distinct function (probe signature), first seen kept.

        With ``safe_only``, functions that fail `check_safe` are left out. Exhaustive: meant for
        ``units=1`` spaces (13 unary x 6 binary: 1,014 assignments, a few hundred functions).
        """
        seen: set[str] = set()
        out = []
        for params in self.iter_params():
            text = self.expression(params)
            signature = probe_signature(text)
            if signature in seen:
                continue
            seen.add(signature)
            if safe_only:
                try:
                    check_safe(text)
                except ExpressionError:
                    continue
            out.append((params, text))
        return out


def function_hash(spec: Spec) -> str:
    """`canonical_hash` of the cell's structure plus the probe signature of each node's activation."""
    graph = Spec(spec.graph.copy())
    signatures = []
    for node in sorted(graph.op_nodes()):
        d = graph.graph.nodes[node]
        signatures.append(f"{node}={probe_signature(d['activation'])}")
        d["activation"] = "x"
    key = graph_hash(graph) + "|" + ",".join(signatures)
    return hashlib.sha256(key.encode()).hexdigest()[:16]
