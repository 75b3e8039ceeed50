"""Lower Specs and activation strings into the plain data `kernels` consumes.

``kernels`` imports nothing of ours, so this is where a networkx `Spec` becomes a
`kernels.recurrent.program.CellProgram` and an activation string an expression tree of tuples.
The edge and bias order matches `search_spaces.build.CellModule`'s parameters: recurrent edges by
source in ``CellModule.sources`` order, each source's chunks in `Spec.linear_edges` order.
"""

from __future__ import annotations

import functools
from dataclasses import replace

from kernels.recurrent.program import CellProgram, Op, Term
from search_spaces import activations
from search_spaces.spec import Spec


def _tree(expr: activations.Expr) -> tuple:
    return (expr.op, *(_tree(a) for a in expr.args))


@functools.lru_cache(maxsize=4096)
def lower_activation(text: str) -> tuple:
    """``"mul(x, sigmoid(x))"`` -> ``("mul", ("x",), ("sigmoid", ("x",)))``."""
    return _tree(activations.parse(text))


def cell_sources(spec: Spec, input_size: int) -> list[str]:
    """Sources of linear edges in parameter order: ``x``, then states, then op nodes (by name)."""
    states = spec.states
    sources = {e.src for e in spec.linear_edges(input_size)}
    return sorted(sources, key=lambda s: (s != "x", s not in states, s))


def value_names(spec: Spec) -> list[str]:
    """The node name of each value index of ``spec``'s `CellProgram`: the states, then the op nodes."""
    return [*spec.states, *spec.op_nodes()]


def lower_cell(spec: Spec, input_size: int) -> CellProgram:
    """The `CellProgram` of ``spec`` for inputs of ``input_size`` features."""
    program = _lower(spec, input_size)
    return replace(program, library=_library_name(program, spec.hidden_size, input_size))


def _lower(spec: Spec, input_size: int) -> CellProgram:
    states, order = spec.states, spec.op_nodes()
    index = {name: i for i, name in enumerate(value_names(spec))}
    edges = list(spec.linear_edges(input_size))
    chunk: dict[tuple[str, str, int], tuple[str, int]] = {}
    counts: dict[str, int] = {}
    for e in edges:
        chunk[(e.src, e.dst, e.slot)] = (e.src, counts.get(e.src, 0))
        counts[e.src] = counts.get(e.src, 0) + 1
    first_edge: dict[str, int] = {}
    edge_src: list[int] = []
    for src in cell_sources(spec, input_size):
        if src == "x":
            continue
        first_edge[src] = len(edge_src)
        edge_src += [index[src]] * counts[src]
    ops, biases = [], 0
    for node in order:
        d = spec.graph.nodes[node]
        terms = []
        for src, e in spec.inputs_of(node):
            if e.get("linear", True):
                owner, i = chunk[(src, node, e["slot"])]
                terms.append(Term("x", i) if owner == "x" else Term("edge", first_edge[owner] + i))
            else:
                terms.append(Term("value", index[src]))
        bias = biases if d["bias"] else -1
        biases += bool(d["bias"])
        ops.append(Op(d["combine"], tuple(terms), bias, lower_activation(d["activation"])))
    outputs = tuple(tuple(index[n] for n in spec.output_nodes(s)) for s in states)
    return CellProgram(spec.hidden_size, len(states), counts.get("x", 0), tuple(edge_src), tuple(ops), outputs)


def _library_name(program: CellProgram, hidden: int, input_size: int) -> str | None:
    """``"lstm"``/``"gru"`` when the program is exactly that named cell's (torch's fused RNN ops apply)."""
    for name in ("lstm", "gru"):
        if program == _named_program(name, hidden, input_size):
            return name
    return None


@functools.lru_cache(maxsize=256)
def _named_program(name: str, hidden: int, input_size: int) -> CellProgram:
    from search_spaces.cells import named_cell

    return _lower(named_cell(name, hidden), input_size)
