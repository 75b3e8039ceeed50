"""The gated recurrent-cell space: the hand-designed cells people write, as points of one space.

Elman, GRU, MGU (minimal gated unit) and the LSTM with the variants of "LSTM: A Search Space Odyssey"
(no input / forget / output gate, coupled input-forget gate, no input or output activation,
peepholes) are each one assignment of the decisions below, so a search starts from them (they are
the baselines every study holds) and walks their neighbourhood: a mutation changes one gate, one
gate's inputs, one activation, the memory or the hidden size.

Decisions (``hidden`` only when several sizes are offered):

- ``memory``: ``none`` (one state h) or ``cell`` (an LSTM memory cell c beside h).
- without memory, ``gates``: ``none`` (Elman: h' = act(Wx + Uh + b)), ``update`` (h' = n + z(h - n)),
  ``reset`` (n = act(Wx + r(Uh + b_u) + b), h' = n), ``update+reset`` (the GRU, as torch.nn.GRU),
  ``shared`` (the MGU: one gate z resets and updates, h' = h + z(n - h)).
- with memory: ``forget`` (``on`` | ``coupled``, i = 1 - f, | ``off``; from ``forget_gates``), ``input_gate`` (``on`` |
  ``off``; not with a coupled forget gate), ``output_gate`` (``on`` | ``off``), ``output_act``
  (h = o * output_act(c), from ``output_activations``), ``peephole`` (``no`` | ``yes``: gates also read c through a weight matrix, o reads the new c).
- ``z_in``, ``r_in``, ``f_in``, ``i_in``, ``o_in``: what each present gate reads: ``xh`` (W x + U h),
  ``x`` (W x alone: no recurrent matrix, the cheap gates of QRNN/SRU-style cells) or ``h``.
- ``cand_act``: the candidate's activation (the LSTM's g).

``output_activations`` (default: ``activations``) narrows the memory cell's output activation. A
language model carries its state across thousands of steps; there a memory cell whose candidate and
output are both unbounded (relu, identity) feeds c back into itself with a gain above 1 and overflows
within the first windows, so `configs/charlm.yaml` offers ``output_activations: [tanh]`` (h bounded,
c grows at most linearly). ``forget_gates`` (default: all three) narrows the forget decision: without
a forget gate c only accumulates, by about one candidate per step, so over a carried stream tanh(c)
saturates (most units at +-1 after one window) and the cell learns nothing past the characters'
frequencies; `configs/charlm.yaml` offers ``[on, coupled]``.

Every structure is built from the Spec's own ops (add, mul, sub, activations, pass-through
edges), so every engine, the reference, ``cell.py`` and ONNX run it unchanged; a gated mix
(1-g)a + gb is written a + g(b - a).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from search_spaces.activations import parse
from search_spaces.base import Decision, SearchSpace, check_choices
from search_spaces.cells import FORGET_GATES, GATE_INPUTS, GATES, MEMORIES, NAMED, gated_cell
from search_spaces.spec import Spec

DEFAULT_ACTIVATIONS = ("tanh", "relu", "identity")
KNOWN_CELLS = ("elman", "mgu", "gru", "lstm")  # the hand-written cells every study holds by default


@dataclass
class GatedCellSpace(SearchSpace):
    """Gated recurrent cells around the known ones (see the module docstring for the decisions)."""

    hidden_sizes: Sequence[int] = (32,)
    memory: Sequence[str] = MEMORIES
    gates: Sequence[str] = GATES
    gate_inputs: Sequence[str] = GATE_INPUTS
    forget_gates: Sequence[str] = FORGET_GATES  # a memory cell's forget gate: on, coupled (i = 1 - f), off
    activations: Sequence[str] = DEFAULT_ACTIVATIONS
    output_activations: Sequence[str] | None = None  # a memory cell's output activation; None: activations
    peepholes: bool = True

    def __post_init__(self) -> None:
        self.name = "gated"
        if not self.hidden_sizes or any(not isinstance(h, int) or isinstance(h, bool) or h < 1
                                        for h in self.hidden_sizes):
            raise ValueError(f"hidden_sizes: must be positive integers, got {list(self.hidden_sizes)}")
        check_choices("memory", self.memory, MEMORIES)
        check_choices("gates", self.gates, GATES)
        check_choices("gate_inputs", self.gate_inputs, GATE_INPUTS)
        check_choices("forget_gates", self.forget_gates, FORGET_GATES)
        if not self.activations:
            raise ValueError("activations: needs at least one value")
        if self.output_activations is not None and not self.output_activations:
            raise ValueError("output_activations: needs at least one value (or leave it out: the activations)")
        for act in (*self.activations, *(self.output_activations or ())):
            parse(act)  # raises ExpressionError naming the unit
        if not isinstance(self.peepholes, bool):
            raise ValueError(f"peepholes: must be true or false, got {self.peepholes!r}")
        self.hidden_sizes = tuple(self.hidden_sizes)
        self.memory, self.gates = tuple(self.memory), tuple(self.gates)
        self.gate_inputs, self.activations = tuple(self.gate_inputs), tuple(self.activations)
        self.forget_gates = tuple(self.forget_gates)
        self.output_activations = tuple(self.output_activations or self.activations)

    def decisions(self) -> list[Decision]:
        out: list[Decision] = []
        if len(self.hidden_sizes) > 1:
            out.append(Decision("hidden", self.hidden_sizes))
        out.append(Decision("memory", self.memory))
        single, cell = ("memory", ("none",)), ("memory", ("cell",))
        ins = self.gate_inputs
        out += [
            Decision("gates", self.gates, single),
            Decision("z_in", ins, ("gates", ("update", "update+reset", "shared"))),
            Decision("r_in", ins, ("gates", ("reset", "update+reset"))),
            Decision("forget", self.forget_gates, cell),
            Decision("input_gate", ("on", "off"), ("forget", ("on", "off"))),
            Decision("output_gate", ("on", "off"), cell),
            Decision("f_in", ins, ("forget", ("on", "coupled"))),
            Decision("i_in", ins, ("input_gate", ("on",))),
            Decision("o_in", ins, ("output_gate", ("on",))),
            Decision("cand_act", self.activations),
            Decision("output_act", self.output_activations, cell),
            Decision("peephole", ("no", "yes") if self.peepholes else ("no",), cell),
        ]
        return out

    def decode(self, params: dict[str, Any]) -> Spec:
        hidden = params.get("hidden", self.hidden_sizes[0])
        return gated_cell(int(hidden), params, space=self.name)

    def known_cells(self, names: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        cells = {}
        for name in names if names is not None else KNOWN_CELLS:
            for hidden in self.hidden_sizes:
                params = self.named_params(name, hidden)
                if params is not None:
                    cells[f"{name}-h{hidden}"] = params
        return cells

    def named_params(self, name: str, hidden_size: int) -> dict[str, Any] | None:
        """The params of the named cell at ``hidden_size``, or None when this space cannot express it."""
        if name not in NAMED:
            raise ValueError(f"unknown cell {name!r}; named cells: {sorted(NAMED)}")
        wanted = {**NAMED[name], "hidden": hidden_size}
        params = self.assign(lambda d, _: wanted.get(d.name))
        active = self.decisions()
        for d in active:
            if d.name in params and params[d.name] not in d.choices:
                return None
        if len(self.hidden_sizes) == 1 and hidden_size != self.hidden_sizes[0]:
            return None
        if {k: v for k, v in wanted.items() if k != "hidden"} != {k: v for k, v in params.items() if k != "hidden"}:
            return None
        return params
