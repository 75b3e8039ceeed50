"""The fixed order in which the hypernetwork walks a candidate's weight tensors.

Order of computation: the token embedding (token tasks), then per op node in topological order its
incoming weight matrices (slot order) and its bias, then the head. Each weight matrix is one linear
edge, ``[hidden, in]``; the pieces are stacked into the parameters of `search_spaces.build` by source
(``cell.weights.<src>`` is ``[k * hidden, in_src]`` in `Spec.linear_edges` order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from search_spaces import Spec, Task
from hyper.tokens import node_tokens, source_role


@dataclass(frozen=True)
class Piece:
    """One generated tensor: a matrix ``[rows, cols]`` or a vector ``[rows]`` (``cols == 0``)."""

    param: str  # the model parameter it belongs to
    rows: int
    cols: int
    bound: float  # init scale: generated values are (theta0 + delta) * bound, theta0 ~ U(-1, 1)
    role: tuple[str, ...]  # role tokens: kind, source, destination node, slot
    key: str  # identity for the theta0 bank hash (same role in two Specs -> same base)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.rows, self.cols) if self.cols else (self.rows,)


def cell_input_size(task: Task, hidden: int) -> int:
    return hidden if task.input_kind == "tokens" else task.input_size


def walk(spec: Spec, task: Task) -> list[Piece]:
    """Every generated piece of ``build(spec, task)``'s parameters, in walk order."""
    H = spec.hidden_size
    cell_in = cell_input_size(task, H)
    order = spec.op_nodes()
    pieces: list[Piece] = []
    if task.input_kind == "tokens":
        # nn.Embedding is initialised N(0, 1): U(-1, 1) * sqrt(3) has the same variance
        pieces.append(Piece("embedding.weight", task.input_size, H, math.sqrt(3.0), ("kind:embedding",), "embedding"))
    edges = list(spec.linear_edges(cell_in))
    for node_pos, node in enumerate(order):
        dst = node_tokens(spec, node)
        for e in (e for e in edges if e.dst == node):
            role = source_role(spec, e.src, node, order)
            fan_in = e.shape[1]
            pieces.append(
                Piece(
                    f"cell.weights.{e.src}",
                    H,
                    fan_in,
                    1.0 / math.sqrt(fan_in),
                    ("kind:weight", f"src:{role}", f"slot:{e.slot}", f"pattern:{e.pattern}", *dst),
                    f"w|{role}|{node_pos}|{e.slot}",
                )
            )
        if spec.graph.nodes[node]["bias"]:
            pieces.append(
                Piece(f"cell.biases.{node}", H, 0, 1.0 / math.sqrt(H), ("kind:bias", *dst), f"b|{node_pos}")
            )
    pieces.append(Piece("head.weight", task.output_size, H, 1.0 / math.sqrt(H), ("kind:head",), "head.w"))
    pieces.append(Piece("head.bias", task.output_size, 0, 1.0 / math.sqrt(H), ("kind:head_bias",), "head.b"))
    return pieces
