"""`CellProgram`: a recurrent cell lowered to plain data the kernels consume (no Spec, no networkx).

Values are indexed: ``0 .. S-1`` are the states at step t-1, ``S + i`` is op ``i``'s output at step t.
Weights come in two tensors: ``x`` projections ``[Kx * H, input]`` (one matmul for all steps, outside
the loop) and recurrent edges ``[E, H, H]`` (``W[e]`` maps value ``edge_src[e]``, ``y = v @ W[e].T``).
Recurrent edges are grouped by source, consecutively (``groups``), so one matmul per source serves
all the edges leaving it.
"""

from __future__ import annotations

from dataclasses import dataclass

COMBINES = ("add", "mul", "sub")


@dataclass(frozen=True)
class Term:
    """One argument of an op: ``kind`` is ``"x"`` (x-projection chunk ``index``), ``"edge"``
    (recurrent edge ``index``) or ``"value"`` (value ``index`` passed through)."""

    kind: str
    index: int


@dataclass(frozen=True)
class Op:
    """``value = activation(combine(terms) + bias[bias])``; ``bias`` is -1 for none."""

    combine: str
    terms: tuple[Term, ...]
    bias: int
    activation: tuple  # an expression tree, see kernels.activation.expr


@dataclass(frozen=True)
class CellProgram:
    """A cell over one step. ``outputs[s]``: the values averaged into state ``s``'s new value."""

    hidden: int
    num_states: int
    num_x: int
    edge_src: tuple[int, ...]
    ops: tuple[Op, ...]
    outputs: tuple[tuple[int, ...], ...]
    library: str | None = None  # "lstm" / "gru": exactly the layout of the named cell (library fast path)

    def __post_init__(self) -> None:
        nv = self.num_states + len(self.ops)
        for i, op in enumerate(self.ops):
            if op.combine not in COMBINES:
                raise ValueError(f"ops[{i}].combine: expected one of {COMBINES}, got {op.combine!r}")
            if op.combine == "sub" and len(op.terms) != 2:
                raise ValueError(f"ops[{i}]: 'sub' needs two terms, got {len(op.terms)}")
            for t in op.terms:
                limit = {"x": self.num_x, "edge": len(self.edge_src), "value": self.num_states + i}.get(t.kind)
                if limit is None or not 0 <= t.index < limit:
                    raise ValueError(f"ops[{i}]: bad term {t}")
        for e, src in enumerate(self.edge_src):
            if not 0 <= src < nv:
                raise ValueError(f"edge_src[{e}] = {src} is not a value index below {nv}")
        if len(self.outputs) != self.num_states or any(not o for o in self.outputs):
            raise ValueError("outputs: one non-empty tuple of value indices per state")

    @property
    def num_values(self) -> int:
        return self.num_states + len(self.ops)

    @property
    def num_biases(self) -> int:
        return sum(op.bias >= 0 for op in self.ops)

    def groups(self) -> list[tuple[int, int, int]]:
        """``(source value, first edge, edge count)`` for each source of recurrent edges."""
        out: list[tuple[int, int, int]] = []
        for e, src in enumerate(self.edge_src):
            if out and out[-1][0] == src and out[-1][1] + out[-1][2] == e:
                out[-1] = (src, out[-1][1], out[-1][2] + 1)
            else:
                out.append((src, e, 1))
        return out

    def key(self) -> str:
        """A stable text key (the generated-code cache key)."""
        return repr(self)
