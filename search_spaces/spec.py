"""`Spec`: a candidate recurrent cell as plain data, a networkx DiGraph with attributes.

Nodes:
    ``x``                    the input at step t (``kind="input"``)
    state nodes (``h``, ``c``) the recurrent state at step t-1 (``kind="state"``)
    op nodes                 ``kind="op"``: ``combine`` (add | mul | sub) of the inputs in slot order,
                             plus a bias if ``bias``, then ``activation`` (an expression string)
Edges (src -> op node): ``slot`` (argument position), ``linear`` (apply a weight matrix, else pass the
value through), and for linear edges ``density`` and ``pattern`` (see `search_spaces.sparsity`).
Graph attributes: ``version``, ``hidden_size``, ``states`` (names, ``h`` first), ``outputs`` (state ->
op node giving its new value; ``None`` for ``h`` means the mean of the loose ends), ``space`` (the
space that produced it, informational).

Example (an Elman RNN cell)::

    spec = Spec.from_dict(elman(hidden_size=32).to_dict())
    spec.op_nodes()  # ['n0']
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import networkx as nx

from search_spaces import activations, sparsity

SCHEMA_VERSION = 1
COMBINES = ("add", "mul", "sub")
COMMUTATIVE = ("add", "mul")


class SpecError(ValueError):
    """A Spec that is malformed; the message names the field."""


def _natural_key(name: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(name)))


@dataclass
class LinearEdge:
    """One weight matrix of a cell: ``shape`` is ``(out, in)``."""

    src: str
    dst: str
    slot: int
    density: float
    pattern: str
    shape: tuple[int, int]


class Spec:
    """A candidate cell. Construct with a graph, or with `from_dict`/`from_json`."""

    def __init__(self, graph: nx.DiGraph) -> None:
        self.graph = graph

    # ---- accessors -----------------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return int(self.graph.graph["hidden_size"])

    @property
    def states(self) -> list[str]:
        return list(self.graph.graph["states"])

    @property
    def outputs(self) -> dict[str, str | None]:
        return dict(self.graph.graph["outputs"])

    def op_nodes(self) -> list[str]:
        """Op nodes in a deterministic topological order."""
        ops = [n for n, d in self.graph.nodes(data=True) if d.get("kind") == "op"]
        sub = self.graph.subgraph(ops)
        return list(nx.lexicographical_topological_sort(sub, key=_natural_key))

    def inputs_of(self, node: str) -> list[tuple[str, dict[str, Any]]]:
        """(source, edge attributes) of an op node, in slot order."""
        edges = [(u, d) for u, _, d in self.graph.in_edges(node, data=True)]
        return sorted(edges, key=lambda e: e[1]["slot"])

    def loose_ends(self) -> list[str]:
        """Op nodes that feed nothing and are not a state's explicit output."""
        explicit = {n for n in self.outputs.values() if n is not None}
        return [n for n in self.op_nodes() if self.graph.out_degree(n) == 0 and n not in explicit]

    def output_nodes(self, state: str) -> list[str]:
        node = self.outputs[state]
        return [node] if node is not None else self.loose_ends()

    def linear_edges(self, input_size: int) -> Iterator[LinearEdge]:
        """Every weight matrix in a fixed order: by destination (topological), then slot."""
        hidden = self.hidden_size
        for dst in self.op_nodes():
            for src, d in self.inputs_of(dst):
                if d.get("linear", True):
                    shape = (hidden, input_size if src == "x" else hidden)
                    yield LinearEdge(src, dst, d["slot"], float(d.get("density", 1.0)), d.get("pattern", "dense"), shape)

    # ---- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = nx.node_link_data(self.graph, edges="edges")
        data["graph"] = {**data["graph"], "version": SCHEMA_VERSION}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Spec:
        if not isinstance(data, dict):
            raise SpecError(f"a Spec must be a JSON object, got {type(data).__name__}")
        version = data.get("graph", {}).get("version")
        if version != SCHEMA_VERSION:
            raise SpecError(f"graph.version: expected {SCHEMA_VERSION}, got {version!r}")
        for key in ("nodes", "edges"):
            if not isinstance(data.get(key), list):
                raise SpecError(f"{key}: expected a list of objects")
        try:
            graph = nx.node_link_graph(data, directed=True, multigraph=False, edges="edges")
        except (KeyError, TypeError, nx.NetworkXError) as exc:
            raise SpecError(f"nodes/edges: cannot read the graph ({exc})") from exc
        spec = cls(graph)
        validate_spec(spec)
        return spec

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, **kwargs)

    @classmethod
    def from_json(cls, text: str) -> Spec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Spec) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        ops = ", ".join(
            f"{n}={d['activation']}/{d['combine']}({','.join(s for s, _ in self.inputs_of(n))})"
            for n, d in ((n, self.graph.nodes[n]) for n in self.op_nodes())
        )
        return f"Spec(hidden={self.hidden_size}, states={self.states}, {ops})"


def validate_spec(spec: Spec) -> None:
    """Raise `SpecError` naming the first field that makes ``spec`` unusable."""
    g = spec.graph
    attrs = g.graph
    hidden = attrs.get("hidden_size")
    if not isinstance(hidden, int) or isinstance(hidden, bool) or hidden < 1:
        raise SpecError(f"graph.hidden_size: expected a positive integer, got {hidden!r}")
    states = attrs.get("states")
    if not isinstance(states, list) or not states or states[0] != "h":
        raise SpecError(f"graph.states: expected a list of state names starting with 'h', got {states!r}")
    outputs = attrs.get("outputs")
    if not isinstance(outputs, dict) or set(outputs) != set(states):
        raise SpecError(f"graph.outputs: expected one entry per state {states}, got {outputs!r}")
    if "x" not in g or g.nodes["x"].get("kind") != "input":
        raise SpecError("nodes: the input node 'x' (kind 'input') is missing")
    for state in states:
        if state not in g or g.nodes[state].get("kind") != "state":
            raise SpecError(f"nodes: state node {state!r} (kind 'state') is missing")
    for node, d in g.nodes(data=True):
        kind = d.get("kind")
        if kind not in ("input", "state", "op"):
            raise SpecError(f"nodes[{node!r}].kind: expected input, state or op, got {kind!r}")
        if kind == "input" and node != "x":
            raise SpecError(f"nodes[{node!r}]: the only input node is 'x'")
        if kind == "state" and node not in states:
            raise SpecError(f"nodes[{node!r}]: state node not listed in graph.states")
        if kind != "op":
            if g.in_degree(node):
                raise SpecError(f"nodes[{node!r}]: {kind} nodes take no incoming edges")
            continue
        if d.get("combine") not in COMBINES:
            raise SpecError(f"nodes[{node!r}].combine: expected one of {list(COMBINES)}, got {d.get('combine')!r}")
        if not isinstance(d.get("bias"), bool):
            raise SpecError(f"nodes[{node!r}].bias: expected true or false, got {d.get('bias')!r}")
        try:
            activations.parse(d.get("activation"))
        except activations.ExpressionError as exc:
            raise SpecError(f"nodes[{node!r}].activation: {exc}") from exc
        slots = sorted(e.get("slot") for _, _, e in g.in_edges(node, data=True))
        if not slots:
            raise SpecError(f"nodes[{node!r}]: an op node needs at least one input edge")
        if slots != list(range(len(slots))):
            raise SpecError(f"edges into {node!r}: slots must be 0..{len(slots) - 1}, got {slots}")
        if d["combine"] == "sub" and len(slots) != 2:
            raise SpecError(f"nodes[{node!r}]: combine 'sub' needs exactly two inputs, got {len(slots)}")
    if not nx.is_directed_acyclic_graph(g):
        raise SpecError("edges: the cell graph has a cycle; recurrence goes through state nodes only")
    for src, dst, e in g.edges(data=True):
        where = f"edges[{src!r}->{dst!r}]"
        linear = e.get("linear", True)
        if not isinstance(linear, bool):
            raise SpecError(f"{where}.linear: expected true or false, got {linear!r}")
        if src == "x" and not linear:
            raise SpecError(f"{where}.linear: edges from the input 'x' must be linear (x has the input size)")
        pattern, density = e.get("pattern", "dense"), e.get("density", 1.0)
        if not linear and (pattern != "dense" or density != 1.0):
            raise SpecError(f"{where}: sparsity applies to linear edges only")
        if linear:
            if not isinstance(density, (int, float)) or isinstance(density, bool):
                raise SpecError(f"{where}.density: expected a number in (0, 1], got {density!r}")
            try:
                # the input size is known only with a task: x edges are shape-checked by build/cost
                sparsity.check(pattern, float(density), None if src == "x" else (hidden, hidden))
            except sparsity.SparsityError as exc:
                raise SpecError(f"{where}: {exc}") from exc
    for state, node in outputs.items():
        if node is None:
            if state != "h":
                raise SpecError(f"graph.outputs.{state}: only 'h' may use the mean of loose ends (null)")
            if not spec.loose_ends():
                raise SpecError("graph.outputs.h: null (mean of loose ends) but the cell has no loose ends")
        elif node not in g or g.nodes[node].get("kind") != "op":
            raise SpecError(f"graph.outputs.{state}: {node!r} is not an op node")
    outs = {n for s in states for n in spec.output_nodes(s)}
    for source in ["x", *states]:
        if not (nx.descendants(g, source) & outs):
            raise SpecError(f"nodes[{source!r}]: does not reach any state output, so the cell ignores it")


def canonical_hash(spec: Spec) -> str:
    """A hash equal for isomorphic cells (node names do not matter) and different otherwise.

    Weisfeiler-Lehman hashing over node labels (role, combine, activation, bias, which state it
    outputs) and edge labels (linear, sparsity, and the slot where the combine is not commutative).
    """
    g = spec.graph
    labelled = nx.DiGraph()
    output_of: dict[str, list[str]] = {}
    for state in spec.states:
        for node in spec.output_nodes(state):
            output_of.setdefault(node, []).append(state)
    for node, d in g.nodes(data=True):
        if d["kind"] == "op":
            label = "|".join(
                [
                    "op",
                    d["combine"],
                    activations.canonical(d["activation"]),
                    str(d["bias"]),
                    ",".join(sorted(output_of.get(node, []))),
                ]
            )
        else:
            label = f"{d['kind']}:{node}"
        labelled.add_node(node, label=label)
    for src, dst, e in g.edges(data=True):
        combine = g.nodes[dst]["combine"]
        slot = "" if combine in COMMUTATIVE else str(e["slot"])
        label = f"{e.get('linear', True)}|{float(e.get('density', 1.0))}|{e.get('pattern', 'dense')}|{slot}"
        labelled.add_edge(src, dst, label=label)
    with warnings.catch_warnings():  # networkx notes that directed hashes changed in 3.5; ours are 3.5+
        warnings.simplefilter("ignore", UserWarning)
        wl = nx.weisfeiler_lehman_graph_hash(
            labelled, node_attr="label", edge_attr="label", iterations=max(3, labelled.number_of_nodes())
        )
    key = f"{wl}|{spec.hidden_size}|{','.join(spec.states)}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]
