"""Hand-written cells as Specs: the constructor they share, and the gated-cell builder in which the
Elman RNN, GRU, MGU, LSTM and the LSTM variants of "LSTM: A Search Space Odyssey" are named points.

These are the references the searches start from (activation and sparsity searches keep the cell and
change its activations or matrices; the gated space of `search_spaces.gated` walks their
neighbourhood) and the baselines every study holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
    """Build and validate a Spec from op-node definitions (an edge may name a node defined later)."""
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


MEMORIES = ("none", "cell")
GATES = ("none", "update", "reset", "update+reset", "shared")
GATE_INPUTS = ("xh", "x", "h")
FORGET_GATES = ("on", "coupled", "off")

# every named cell as its decisions (the hidden size apart); "known" cells are the default baselines
NAMED: dict[str, dict[str, Any]] = {
    "elman": {"memory": "none", "gates": "none", "cand_act": "tanh"},
    "gru": {"memory": "none", "gates": "update+reset", "z_in": "xh", "r_in": "xh", "cand_act": "tanh"},
    "mgu": {"memory": "none", "gates": "shared", "z_in": "xh", "cand_act": "tanh"},
    "lstm": {
        "memory": "cell", "forget": "on", "input_gate": "on", "output_gate": "on", "f_in": "xh",
        "i_in": "xh", "o_in": "xh", "cand_act": "tanh", "output_act": "tanh", "peephole": "no",
    },
}
_LSTM = NAMED["lstm"]
NAMED.update({
    "lstm-nig": {**{k: v for k, v in _LSTM.items() if k != "i_in"}, "input_gate": "off"},
    "lstm-nfg": {**{k: v for k, v in _LSTM.items() if k != "f_in"}, "forget": "off"},
    "lstm-nog": {**{k: v for k, v in _LSTM.items() if k != "o_in"}, "output_gate": "off"},
    "lstm-cifg": {k: v for k, v in {**_LSTM, "forget": "coupled"}.items() if k not in ("input_gate", "i_in")},
    "lstm-niaf": {**_LSTM, "cand_act": "identity"},
    "lstm-noaf": {**_LSTM, "output_act": "identity"},
    "lstm-ph": {**_LSTM, "peephole": "yes"},
})


def _gate(inputs: str, extra: Sequence[str] = ()) -> NodeDef:
    sources = {"xh": ("x", "h"), "x": ("x",), "h": ("h",)}[inputs]
    return ("add", "sigmoid", True, [(s, True) for s in (*sources, *extra)])


def gated_cell(hidden_size: int, params: dict[str, Any], *, space: str = "gated") -> Spec:
    """The Spec of one assignment of the gated space's decisions (``hidden`` is ``hidden_size``)."""
    act = params["cand_act"]
    if params["memory"] == "none":
        return _single_state(hidden_size, params["gates"], params, act, space)
    return _memory_cell(hidden_size, params, act, space)


def _single_state(hidden: int, gates: str, p: dict[str, Any], act: str, space: str) -> Spec:
    full: NodeDef = ("add", act, True, [("x", True), ("h", True)])
    if gates == "none":
        return make_spec(hidden, {"n0": full}, space=space)
    nodes: dict[str, NodeDef] = {}
    if gates in ("reset", "update+reset"):
        nodes["r"] = _gate(p["r_in"])
    if gates in ("update", "update+reset", "shared"):
        nodes["z"] = _gate(p["z_in"])
    if gates == "update":
        nodes["n"] = full
    else:  # the gate scales the recurrent term inside the candidate (after the matrix, as torch's GRU)
        nodes["uh"] = ("add", "x", True, [("h", True)])
        nodes["ruh"] = ("mul", "x", False, [("z" if gates == "shared" else "r", False), ("uh", False)])
        nodes["n"] = ("add", act, True, [("x", True), ("ruh", False)])
    if gates == "reset":
        return make_spec(hidden, nodes, outputs={"h": "n"}, space=space)
    if gates == "shared":  # MGU: h' = (1 - z) h + z n
        nodes["nh"] = ("sub", "x", False, [("n", False), ("h", False)])
        nodes["znh"] = ("mul", "x", False, [("z", False), ("nh", False)])
        nodes["h_new"] = ("add", "x", False, [("h", False), ("znh", False)])
    else:  # GRU: h' = (1 - z) n + z h
        nodes["hn"] = ("sub", "x", False, [("h", False), ("n", False)])
        nodes["zhn"] = ("mul", "x", False, [("z", False), ("hn", False)])
        nodes["h_new"] = ("add", "x", False, [("n", False), ("zhn", False)])
    return make_spec(hidden, nodes, outputs={"h": "h_new"}, space=space)


def _memory_cell(hidden: int, p: dict[str, Any], act: str, space: str) -> Spec:
    peep = ("c",) if p.get("peephole") == "yes" else ()
    forget, has_input = p["forget"], p.get("input_gate") == "on"
    nodes: dict[str, NodeDef] = {}
    if has_input:
        nodes["i"] = _gate(p["i_in"], peep)
    if forget != "off":
        nodes["f"] = _gate(p["f_in"], peep)
    nodes["g"] = ("add", act, True, [("x", True), ("h", True)])
    if p["output_gate"] == "on":  # its peephole reads the new cell (make_spec takes the forward edge)
        nodes["o"] = _gate(p["o_in"], ("c_new",) if peep else ())
    candidate = "ig" if has_input else "g"
    if forget == "coupled":  # c' = (1 - f) g + f c
        nodes["cg"] = ("sub", "x", False, [("c", False), ("g", False)])
        nodes["fcg"] = ("mul", "x", False, [("f", False), ("cg", False)])
        nodes["c_new"] = ("add", "x", False, [("g", False), ("fcg", False)])
    else:
        if forget == "on":
            nodes["fc"] = ("mul", "x", False, [("f", False), ("c", False)])
        if has_input:
            nodes["ig"] = ("mul", "x", False, [("i", False), ("g", False)])
        kept = "fc" if forget == "on" else "c"
        nodes["c_new"] = ("add", "x", False, [(kept, False), (candidate, False)])
    nodes["tc"] = ("add", p["output_act"], False, [("c_new", False)])
    h_out = "tc"
    if "o" in nodes:
        nodes["h_new"] = ("mul", "x", False, [("o", False), ("tc", False)])
        h_out = "h_new"
    return make_spec(hidden, nodes, states=("h", "c"), outputs={"h": h_out, "c": "c_new"}, space=space)


def elman(hidden_size: int, activation: str = "tanh") -> Spec:
    """h_t = act(W x_t + U h_{t-1} + b), as torch.nn.RNN (its two biases summed)."""
    return gated_cell(hidden_size, {**NAMED["elman"], "cand_act": activation}, space="elman")


def lstm(hidden_size: int, activation: str = "tanh") -> Spec:
    """The standard LSTM (no peepholes), as in torch.nn.LSTM; ``activation`` replaces both tanh."""
    return gated_cell(hidden_size, {**NAMED["lstm"], "cand_act": activation, "output_act": activation}, space="lstm")


def gru(hidden_size: int, activation: str = "tanh") -> Spec:
    """The GRU as in torch.nn.GRU: n = act(W x + r * (U h + b)), h' = n + z * (h - n)."""
    return gated_cell(hidden_size, {**NAMED["gru"], "cand_act": activation}, space="gru")


def named_cell(name: str, hidden_size: int, activation: str = "tanh") -> Spec:
    """A named cell of `NAMED` (elman, gru, mgu, lstm and the LSTM variants) at ``hidden_size``;
    ``activation`` replaces the candidate's (and the LSTM's output) tanh."""
    if name not in NAMED:
        raise ValueError(f"unknown cell {name!r}; choose one of {sorted(NAMED)}")
    params = dict(NAMED[name])
    for key in ("cand_act", "output_act"):
        if params.get(key) == "tanh":
            params[key] = activation
    return gated_cell(hidden_size, params, space=name)
