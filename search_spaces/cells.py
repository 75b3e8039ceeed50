"""Hand-written cells as Specs: the Elman RNN, LSTM and GRU, and the constructor they share.

These are the references the searches start from (activation and sparsity searches keep the cell and
change its activations or matrices) and the baselines benchmarks compare against.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx

from search_spaces.spec import Spec, validate_spec

# one op node: (combine, activation, bias, [(source, linear), ...])
NodeDef = tuple[str, str, bool, Sequence[tuple[str, bool]]]


def make_spec(
    hidden_size: int,
    nodes: dict[str, NodeDef],
    *,
    states: Sequence[str] = ("h",),
    outputs: dict[str, str | None] | None = None,
    space: str = "manual",
) -> Spec:
    """Build and validate a Spec from op-node definitions given in topological order."""
    graph = nx.DiGraph(
        hidden_size=hidden_size,
        states=list(states),
        outputs=dict(outputs) if outputs is not None else {"h": None},
        space=space,
    )
    graph.add_node("x", kind="input")
    for state in states:
        graph.add_node(state, kind="state")
    for name, (combine, activation, bias, inputs) in nodes.items():
        graph.add_node(name, kind="op", combine=combine, activation=activation, bias=bias)
        for slot, (src, linear) in enumerate(inputs):
            edge = {"slot": slot, "linear": linear}
            if linear:
                edge.update(density=1.0, pattern="dense")
            graph.add_edge(src, name, **edge)
    spec = Spec(graph)
    validate_spec(spec)
    return spec


def elman(hidden_size: int, activation: str = "tanh") -> Spec:
    """h_t = act(W x_t + U h_{t-1} + b)."""
    return make_spec(hidden_size, {"n0": ("add", activation, True, [("x", True), ("h", True)])}, space="elman")


def lstm(hidden_size: int, activation: str = "tanh") -> Spec:
    """The standard LSTM (no peepholes), as in torch.nn.LSTM; ``activation`` replaces both tanh."""
    gate = lambda act: ("add", act, True, [("x", True), ("h", True)])  # noqa: E731
    nodes: dict[str, NodeDef] = {
        "i": gate("sigmoid"),
        "f": gate("sigmoid"),
        "g": gate(activation),
        "o": gate("sigmoid"),
        "fc": ("mul", "x", False, [("f", False), ("c", False)]),
        "ig": ("mul", "x", False, [("i", False), ("g", False)]),
        "c_new": ("add", "x", False, [("fc", False), ("ig", False)]),
        "tc": ("add", activation, False, [("c_new", False)]),
        "h_new": ("mul", "x", False, [("o", False), ("tc", False)]),
    }
    return make_spec(hidden_size, nodes, states=("h", "c"), outputs={"h": "h_new", "c": "c_new"}, space="lstm")


def gru(hidden_size: int, activation: str = "tanh") -> Spec:
    """The GRU as in torch.nn.GRU: n = act(W x + r * (U h + b)), h' = n + z * (h - n)."""
    nodes: dict[str, NodeDef] = {
        "r": ("add", "sigmoid", True, [("x", True), ("h", True)]),
        "z": ("add", "sigmoid", True, [("x", True), ("h", True)]),
        "uh": ("add", "x", True, [("h", True)]),
        "ruh": ("mul", "x", False, [("r", False), ("uh", False)]),
        "n": ("add", activation, True, [("x", True), ("ruh", False)]),
        "hn": ("sub", "x", False, [("h", False), ("n", False)]),
        "zhn": ("mul", "x", False, [("z", False), ("hn", False)]),
        "h_new": ("add", "x", False, [("n", False), ("zhn", False)]),
    }
    return make_spec(hidden_size, nodes, outputs={"h": "h_new"}, space="gru")


NAMED_CELLS = {"elman": elman, "lstm": lstm, "gru": gru}


def named_cell(name: str, hidden_size: int, activation: str = "tanh") -> Spec:
    if name not in NAMED_CELLS:
        raise ValueError(f"unknown cell {name!r}; choose one of {sorted(NAMED_CELLS)}")
    return NAMED_CELLS[name](hidden_size, activation)
