"""The recurrent-cell space (NAS-RL / ENAS-RNN style): a DAG of N nodes over x_t and h_{t-1}.

Node 0 combines ``W x_t`` and ``U h_{t-1}``; each later node reads one or two earlier nodes (or x, h)
through weight matrices, combines them, adds a bias and applies an activation. The new h is the mean
of the loose ends. Decisions per node i >= 1: ``n{i}_in1``, ``n{i}_in2`` (or ``none``), ``n{i}_op``
(only with two inputs), ``n{i}_act``; node 0 has ``n0_op`` and ``n0_act``; ``hidden`` first when more
than one hidden size is offered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from search_spaces.activations import parse
from search_spaces.base import Decision, SearchSpace, check_choices
from search_spaces.cells import NodeDef, make_spec
from search_spaces.spec import Spec

DEFAULT_ACTIVATIONS = ("tanh", "relu", "sigmoid", "identity")


@dataclass
class RecurrentCellSpace(SearchSpace):
    num_nodes: int = 4
    hidden_sizes: Sequence[int] = (32,)
    activations: Sequence[str] = DEFAULT_ACTIVATIONS
    combine_ops: Sequence[str] = ("add", "mul")

    def __post_init__(self) -> None:
        self.name = "recurrent_cell"
        if not isinstance(self.num_nodes, int) or not 1 <= self.num_nodes <= 24:
            raise ValueError(f"num_nodes: must be an integer in 1..24, got {self.num_nodes!r}")
        if not self.hidden_sizes or any(not isinstance(h, int) or h < 1 for h in self.hidden_sizes):
            raise ValueError(f"hidden_sizes: must be positive integers, got {list(self.hidden_sizes)}")
        for act in self.activations:
            parse(act)  # raises ExpressionError naming the unit
        if not self.activations:
            raise ValueError("activations: needs at least one value")
        check_choices("combine_ops", self.combine_ops, ("add", "mul"))
        self.hidden_sizes = tuple(self.hidden_sizes)
        self.activations = tuple(self.activations)
        self.combine_ops = tuple(self.combine_ops)

    def decisions(self) -> list[Decision]:
        out: list[Decision] = []
        if len(self.hidden_sizes) > 1:
            out.append(Decision("hidden", self.hidden_sizes))
        out += [Decision("n0_op", self.combine_ops), Decision("n0_act", self.activations)]
        for i in range(1, self.num_nodes):
            sources = ("x", "h", *(f"n{j}" for j in range(i)))
            out.append(Decision(f"n{i}_in1", sources))
            out.append(Decision(f"n{i}_in2", ("none", *sources)))
            out.append(Decision(f"n{i}_op", self.combine_ops, (f"n{i}_in2", sources)))
            out.append(Decision(f"n{i}_act", self.activations))
        return out

    def decode(self, params: dict[str, Any]) -> Spec:
        hidden = params.get("hidden", self.hidden_sizes[0])
        nodes: dict[str, NodeDef] = {
            "n0": (params["n0_op"], params["n0_act"], True, [("x", True), ("h", True)]),
        }
        for i in range(1, self.num_nodes):
            first, second = params[f"n{i}_in1"], params[f"n{i}_in2"]
            inputs = [first] if second in ("none", first) else [first, second]
            op = params.get(f"n{i}_op", "add") if len(inputs) == 2 else "add"
            nodes[f"n{i}"] = (op, params[f"n{i}_act"], True, [(s, True) for s in inputs])
        return make_spec(int(hidden), nodes, space=self.name)
