"""The sparsity space: per weight matrix of a fixed cell, a density and a pattern.

Decisions, per linear edge in `Spec.linear_edges` order: ``density[src->dst]`` and, when the density is
below 1, ``pattern[src->dst]``. Patterns that do not fit a matrix's shape at the chosen density (N:M
needs the input size divisible by M) fall back to ``random`` at the same density, recorded in the Spec.

With ``hidden_sizes`` the first decision is the hidden size, so the search can trade a larger sparse cell
against a smaller dense one at equal MACs, the comparison "Investigating Sparsity in Recurrent Neural
Networks" (Narang et al.) makes. ``magnitude`` matrices are pruned gradually while training
(`workers.training.TrainConfig.prune_until`), so the surviving weights are retrained.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from search_spaces import sparsity
from search_spaces.base import Decision, SearchSpace, check_choices
from search_spaces.cells import NAMED, named_cell
from search_spaces.spec import Spec

DEFAULT_DENSITIES = (1.0, 0.5, 0.25, 0.125)
DEFAULT_PATTERNS = ("magnitude", "random", "block", "nm", "erdos_renyi", "watts_strogatz", "barabasi_albert")


@dataclass
class SparsitySpace(SearchSpace):
    cell: str = "gru"
    hidden_size: int = 32
    input_size: int | None = None  # the task's input size, to shape-check x edges; None: skip
    densities: Sequence[float] = DEFAULT_DENSITIES
    patterns: Sequence[str] = DEFAULT_PATTERNS
    hidden_sizes: Sequence[int] | None = None  # searched hidden sizes; None: ``hidden_size`` only

    def __post_init__(self) -> None:
        self.name = "sparsity"
        if self.cell not in NAMED:
            raise ValueError(f"cell: unknown cell {self.cell!r}; choose one of {sorted(NAMED)}")
        if not self.densities or any(not 0 < d <= 1 for d in self.densities):
            raise ValueError(f"densities: must be numbers in (0, 1], got {list(self.densities)}")
        check_choices("patterns", self.patterns, tuple(p for p in sparsity.PATTERNS if p != "dense"))
        self.densities, self.patterns = tuple(float(d) for d in self.densities), tuple(self.patterns)
        if self.hidden_sizes is not None:
            if not self.hidden_sizes or any(int(h) < 1 for h in self.hidden_sizes):
                raise ValueError(f"hidden_sizes: must be positive integers, got {list(self.hidden_sizes)}")
            self.hidden_sizes = tuple(int(h) for h in self.hidden_sizes)
        sparse = tuple(d for d in self.densities if d < 1.0)
        self._sparse_densities = sparse
        self._base = named_cell(self.cell, self.hidden_size)
        self._edges = list(self._base.linear_edges(self.input_size or self.hidden_size))

    def edge_key(self, src: str, dst: str) -> str:
        return f"{src}->{dst}"

    def decisions(self) -> list[Decision]:
        out = [Decision("hidden_size", self.hidden_sizes)] if self.hidden_sizes else []
        for e in self._edges:
            key = self.edge_key(e.src, e.dst)
            out.append(Decision(f"density[{key}]", self.densities))
            if self._sparse_densities:
                out.append(Decision(f"pattern[{key}]", self.patterns, (f"density[{key}]", self._sparse_densities)))
        return out

    def decode(self, params: dict[str, Any]) -> Spec:
        hidden = int(params.get("hidden_size", self.hidden_size))
        spec = named_cell(self.cell, hidden)
        for e in spec.linear_edges(self.input_size or hidden):
            key = self.edge_key(e.src, e.dst)
            density = float(params[f"density[{key}]"])
            pattern = params.get(f"pattern[{key}]", "dense") if density < 1.0 else "dense"
            shape = e.shape if (e.src != "x" or self.input_size) else None
            try:
                sparsity.check(pattern, density, shape)
            except sparsity.SparsityError:
                pattern = "random"
            spec.graph.edges[e.src, e.dst].update(density=density, pattern=pattern)
        spec.graph.graph["space"] = self.name
        return spec

    def uniform_params(self, density: float, pattern: str = "magnitude", hidden_size: int | None = None) -> dict[str, Any]:
        """Params giving every matrix the same density and pattern (the uniform-pruning baseline)."""
        return self.matrix_params(lambda src, dst: density, pattern, hidden_size)

    def matrix_params(self, density_of: Callable[[str, str], float], pattern: str = "magnitude",
                      hidden_size: int | None = None) -> dict[str, Any]:
        """Params giving each matrix ``src->dst`` the density ``density_of(src, dst)``, and ``pattern``
        where that is below 1 (non-uniform allocations, e.g. denser recurrent matrices)."""
        params: dict[str, Any] = {"hidden_size": hidden_size or self.hidden_size} if self.hidden_sizes else {}
        for e in self._edges:
            key = self.edge_key(e.src, e.dst)
            density = float(density_of(e.src, e.dst))
            params[f"density[{key}]"] = density
            if density < 1.0:
                params[f"pattern[{key}]"] = pattern
        return params


def overall_density(spec: Spec, input_size: int) -> float:
    """Non-zero weights over all weights of the cell's matrices (what "a 25%-dense cell" means)."""
    edges = list(spec.linear_edges(input_size))
    total = sum(e.shape[0] * e.shape[1] for e in edges)
    kept = sum(sparsity.nnz(e.pattern, e.density, e.shape) for e in edges)
    return kept / total if total else 1.0
