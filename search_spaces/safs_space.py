"""The joint activation + sparsity space of SAFS ("Learning Activation Functions for Sparse Neural
Networks", Loni et al., 2023): a fixed cell whose ``replace`` activation and per-matrix density and
pattern are searched together, since the best activation of a sparse cell need not be the dense one's.

Decisions: the activation's (``u1``, ``u2``, ``b1``, ...) then the sparsity space's (``hidden_size``
when several are given, ``density[src->dst]``, ``pattern[src->dst]``). Validation rejects unsafe
functions with the reason, and the hash merges equivalent expressions, as in `ActivationSpace`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from search_spaces.activation_space import DEFAULT_BINARY, DEFAULT_UNARY, ActivationSpace, function_hash
from search_spaces.base import Decision, SearchSpace
from search_spaces.sparsity_space import DEFAULT_DENSITIES, DEFAULT_PATTERNS, SparsitySpace
from search_spaces.spec import Spec


@dataclass
class JointSpace(SearchSpace):
    """Activation x sparsity of one named cell (options as in the two spaces it joins)."""

    cell: str = "gru"
    hidden_size: int = 32
    input_size: int | None = None
    replace: str = "tanh"
    units: int = 1
    unary: Sequence[str] = DEFAULT_UNARY
    binary: Sequence[str] = DEFAULT_BINARY
    densities: Sequence[float] = DEFAULT_DENSITIES
    patterns: Sequence[str] = DEFAULT_PATTERNS
    hidden_sizes: Sequence[int] | None = None
    activation_space: ActivationSpace = field(init=False, repr=False)
    sparsity_space: SparsitySpace = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.name = "safs"
        self.activation_space = ActivationSpace(
            cell=self.cell, hidden_size=self.hidden_size, replace=self.replace, units=self.units,
            unary=self.unary, binary=self.binary,
        )
        self.sparsity_space = SparsitySpace(
            cell=self.cell, hidden_size=self.hidden_size, input_size=self.input_size,
            densities=self.densities, patterns=self.patterns, hidden_sizes=self.hidden_sizes,
        )
        self.replace = self.activation_space.replace

    def decisions(self) -> list[Decision]:
        return self.activation_space.decisions() + self.sparsity_space.decisions()

    def expression(self, params: dict[str, Any]) -> str:
        return self.activation_space.expression(params)

    def decode(self, params: dict[str, Any]) -> Spec:
        return self.activation_space.apply(self.sparsity_space.decode(params), params, space=self.name)

    def validate(self, spec: Spec) -> None:
        self.activation_space.validate(spec)

    def canonical_hash(self, spec: Spec) -> str:
        return function_hash(spec)
