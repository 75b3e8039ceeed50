"""The tokens the hypernetwork reads: a Spec as a sequence of decision tokens, and tensor roles.

Tokens come from the Spec graph itself rather than from one space's decision list, so every space
(recurrent cell, activation, sparsity, hand-written cells) reads the same way: the hidden size, then
per op node in topological order its combine, activation (whole expression and its units), bias and,
per input slot, where the input comes from (``x``, a state, or an op node ``k`` steps back), whether it
is linear, and its sparsity. Each token is a string hashed (crc32, not Python's salted ``hash``) into
a fixed vocabulary, with an optional number in [0, 1] (hidden size, density, position).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

from search_spaces import Spec
from search_spaces.activations import canonical, parse


@dataclass
class Step:
    """One LSTM step: a bag of tokens (summed embeddings) and a number in [0, 1]."""

    tokens: list[str]
    value: float = 0.0
    tensor: str | None = None  # walk steps only: the tensor this chunk belongs to
    tile: tuple[int, int] = field(default=(0, 0))


def token_id(token: str, vocab: int) -> int:
    """Stable id in ``1..vocab-1`` (0 is padding)."""
    return 1 + zlib.crc32(token.encode()) % (vocab - 1)


def hidden_value(hidden: int) -> float:
    """log2(hidden) mapped to [0, 1] for hidden sizes 1..1024."""
    return min(1.0, math.log2(max(hidden, 1)) / 10.0)


def source_role(spec: Spec, src: str, dst: str, order: list[str]) -> str:
    """Where an input comes from, independent of node names: ``x``, ``state:h``, ``back:2``."""
    if src == "x":
        return "x"
    if src in spec.states:
        return f"state:{src}"
    return f"back:{order.index(dst) - order.index(src)}"


def _units(expr) -> list[str]:  # noqa: ANN001 - activations.Expr
    out = [expr.op]
    for arg in expr.args:
        out += _units(arg)
    return out


def node_tokens(spec: Spec, node: str) -> list[str]:
    d = spec.graph.nodes[node]
    act = canonical(d["activation"])
    return [f"combine:{d['combine']}", f"act:{act}", *(f"unit:{u}" for u in _units(parse(act))[:4])]


def spec_steps(spec: Spec) -> list[Step]:
    """The Spec as decision tokens, one `Step` per decision."""
    order = spec.op_nodes()
    n = max(len(order), 1)
    steps = [Step(["hidden"], hidden_value(spec.hidden_size)), Step([f"states:{len(spec.states)}"])]
    for i, node in enumerate(order):
        d = spec.graph.nodes[node]
        steps.append(Step(["node"], i / n))
        steps.append(Step([f"combine:{d['combine']}"]))
        act = canonical(d["activation"])
        steps.append(Step([f"act:{act}", *(f"unit:{u}" for u in _units(parse(act))[:4])]))
        steps.append(Step([f"bias:{d['bias']}"]))
        for src, e in spec.inputs_of(node):
            role = source_role(spec, src, node, order)
            linear = e.get("linear", True)
            density = float(e.get("density", 1.0))
            steps.append(Step([f"in:{role}", f"slot:{e['slot']}", f"linear:{linear}", f"pattern:{e.get('pattern', 'dense')}"], density))
    for state in spec.states:
        for node in spec.output_nodes(state):
            steps.append(Step([f"out:{state}", f"from_end:{len(order) - 1 - order.index(node)}"]))
    steps.append(Step(["end_of_spec"]))
    return steps
