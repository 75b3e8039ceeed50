"""Sparsity patterns for weight matrices: exact non-zero counts and the masks that realise them.

Patterns follow "Investigating Sparsity in Recurrent Neural Networks": unstructured (``magnitude``
pruned during training, or ``random``), ``block`` (16x16 tiles), ``nm`` (N of every M inputs), and
random-graph topologies from networkx (``erdos_renyi``, ``watts_strogatz``, ``barabasi_albert``),
where the matrix is the adjacency matrix of the graph. `nnz` is the single definition of how many
weights a pattern keeps; masks always have exactly that many ones, and `cost` counts the same number.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import torch

PATTERNS = (
    "dense",
    "magnitude",
    "random",
    "block",
    "nm",
    "erdos_renyi",
    "watts_strogatz",
    "barabasi_albert",
)
GRAPH_PATTERNS = ("erdos_renyi", "watts_strogatz", "barabasi_albert")
BLOCK = 16
NM_GROUPS = (4, 8, 16)


class SparsityError(ValueError):
    """A density or pattern that a matrix of the given shape cannot have."""


def block_shape(shape: tuple[int, int]) -> tuple[int, int]:
    """Tile size of the ``block`` pattern: 16x16, or the whole side where a side is smaller."""
    return min(BLOCK, shape[0]), min(BLOCK, shape[1])


def nm_group(density: float) -> tuple[int, int]:
    """The N:M ratio for a density: the smallest M in (4, 8, 16) with an integer N."""
    for m in NM_GROUPS:
        n = density * m
        if abs(n - round(n)) < 1e-9 and round(n) >= 1:
            return int(round(n)), m
    raise SparsityError(f"density {density} has no N:M form with M in {NM_GROUPS}; use a multiple of 1/16")


def check(pattern: str, density: float, shape: tuple[int, int] | None) -> None:
    """Raise `SparsityError` naming what is wrong if the pattern cannot apply to ``shape``.

    With ``shape=None`` only the shape-free rules are checked (pattern name, density range, N:M form).
    """
    if pattern not in PATTERNS:
        raise SparsityError(f"unknown sparsity pattern {pattern!r}; choose one of {list(PATTERNS)}")
    if not (0.0 < density <= 1.0):
        raise SparsityError(f"density must be in (0, 1], got {density}")
    if pattern == "dense" and density != 1.0:
        raise SparsityError(f"pattern 'dense' needs density 1.0, got {density}")
    if pattern == "nm":
        nm_group(density)
    if shape is None:
        return
    rows, cols = shape
    if pattern == "block":
        br, bc = block_shape(shape)
        if rows % br or cols % bc:
            raise SparsityError(f"block pattern needs a {rows}x{cols} matrix to tile by {br}x{bc}")
        blocks = (rows // br) * (cols // bc)
        if abs(density * blocks - round(density * blocks)) > 1e-9 or round(density * blocks) < 1:
            raise SparsityError(
                f"block pattern at density {density} keeps {density * blocks:g} of the {blocks} "
                f"{br}x{bc} blocks of a {rows}x{cols} matrix; choose a density that is a multiple of 1/{blocks}"
            )
    if pattern == "nm":
        _, m = nm_group(density)
        if cols % m:
            raise SparsityError(f"N:M pattern with M={m} needs the input size ({cols}) divisible by {m}")


def nnz(pattern: str, density: float, shape: tuple[int, int]) -> int:
    """Exact number of non-zero weights a ``shape`` matrix keeps under ``pattern`` at ``density``."""
    check(pattern, density, shape)
    rows, cols = shape
    if pattern == "dense" or density >= 1.0:
        return rows * cols
    if pattern == "block":
        br, bc = block_shape(shape)
        blocks = (rows // br) * (cols // bc)
        return round(density * blocks) * br * bc
    if pattern == "nm":
        n, m = nm_group(density)
        return rows * (cols // m) * n
    return max(1, round(density * rows * cols))


def _topk_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    flat = scores.flatten()
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[torch.topk(flat, k, sorted=False).indices] = True
    return mask.view_as(scores)


def _graph_adjacency(pattern: str, n: int, density: float, rng: np.random.Generator) -> np.ndarray:
    seed = int(rng.integers(2**31))
    if pattern == "erdos_renyi":
        graph = nx.gnm_random_graph(n, round(density * n * n), seed=seed, directed=True)
    elif pattern == "watts_strogatz":
        k = max(2, 2 * round(density * n / 2))  # ring neighbours, even, undirected: n*k entries
        graph = nx.watts_strogatz_graph(n, min(k, n - 1 - (n - 1) % 2), 0.1, seed=seed)
    else:
        m = max(1, min(n - 1, round(n * (1 - math.sqrt(max(0.0, 1 - 2 * density))) / 2)))
        graph = nx.barabasi_albert_graph(n, m, seed=seed)
    return nx.to_numpy_array(graph, nodelist=range(n), dtype=np.float64) > 0


def make_mask(
    pattern: str,
    density: float,
    shape: tuple[int, int],
    *,
    weight: torch.Tensor | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """A boolean mask of ``shape`` with exactly `nnz` ones.

    ``magnitude``, ``block`` and ``nm`` keep the largest ``|weight|`` (random scores if no weight);
    graph patterns keep the adjacency of a networkx graph on ``max(shape)`` nodes, then add or drop
    random entries so the count is exact.
    """
    k = nnz(pattern, density, shape)
    rows, cols = shape
    if k == rows * cols:
        return torch.ones(shape, dtype=torch.bool)
    gen = torch.Generator().manual_seed(seed)
    scores = weight.detach().abs().float() if weight is not None else torch.rand(shape, generator=gen)
    if pattern in ("magnitude", "random"):
        if pattern == "random":
            scores = torch.rand(shape, generator=gen)
        return _topk_mask(scores, k)
    if pattern == "block":
        br, bc = block_shape(shape)
        block_scores = scores.view(rows // br, br, cols // bc, bc).abs().sum(dim=(1, 3))
        keep = _topk_mask(block_scores, k // (br * bc))
        return keep.repeat_interleave(br, 0).repeat_interleave(bc, 1)
    if pattern == "nm":
        n, m = nm_group(density)
        groups = scores.view(rows, cols // m, m)
        idx = torch.topk(groups, n, dim=-1).indices
        mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, idx, True)
        return mask.view(shape)
    rng = np.random.default_rng(seed)
    adjacency = _graph_adjacency(pattern, max(shape), density, rng)[:rows, :cols]
    mask = torch.from_numpy(adjacency.copy())
    ones = mask.flatten().nonzero().flatten()
    zeros = (~mask.flatten()).nonzero().flatten()
    flat = mask.flatten().clone()
    perm = torch.from_numpy(rng.permutation(max(len(ones), len(zeros))))
    if len(ones) > k:
        flat[ones[perm[perm < len(ones)][: len(ones) - k]]] = False
    elif len(ones) < k:
        flat[zeros[perm[perm < len(zeros)][: k - len(ones)]]] = True
    return flat.view(shape)


def magnitude_schedule(target: float, progress: float) -> float:
    """Density during gradual magnitude pruning (Zhu & Gupta): 1.0 at progress 0, target at 1."""
    progress = min(max(progress, 0.0), 1.0)
    return target + (1.0 - target) * (1.0 - progress) ** 3


def mask_graph(mask: torch.Tensor) -> nx.Graph:
    """The undirected graph of a square mask: an edge i-j where ``mask[i, j]`` or ``mask[j, i]``
    (self-loops dropped), the view in which random-graph topologies are compared."""
    rows, cols = mask.shape
    if rows != cols:
        raise SparsityError(f"graph properties need a square mask, got {rows}x{cols}")
    adjacency = mask.bool().cpu().numpy()
    adjacency = (adjacency | adjacency.T) & ~np.eye(rows, dtype=bool)
    return nx.from_numpy_array(adjacency.astype(np.int8))


def graph_properties(mask: torch.Tensor) -> dict[str, float]:
    """Clustering, density, degrees of a square mask's undirected graph (`mask_graph`).

    ``clustering_ratio`` is the average clustering over the graph's edge density: about 1 for an
    Erdos-Renyi graph (clustering equals density), well above 1 for Watts-Strogatz small worlds.
    ``degree_cv`` (std/mean of the degree) is high for Barabasi-Albert's heavy-tailed hubs.
    """
    graph = mask_graph(mask)
    degrees = np.array([d for _, d in graph.degree()], dtype=np.float64)
    mean = float(degrees.mean()) if len(degrees) else 0.0
    clustering, density = float(nx.average_clustering(graph)), float(nx.density(graph))
    return {
        "clustering": clustering,
        "density": density,
        "clustering_ratio": clustering / density if density > 0 else 0.0,
        "mean_degree": mean,
        "max_degree": float(degrees.max()) if len(degrees) else 0.0,
        "degree_cv": float(degrees.std() / mean) if mean > 0 else 0.0,
    }
