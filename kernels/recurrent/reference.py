"""Plain-torch reference of a recurrent cell over a sequence: a per-step loop of small ops, autograd.

This is the trusted oracle of the fused paths (it mirrors the original `CellModule` loop), not a fast
path. Signature shared by every implementation::

    recurrent(program, xproj, weights, biases, initial) -> (hs, final)

    xproj   [B, T, Kx * H]  input projections of all steps (``x @ Wx.T``, one matmul outside)
    weights [E, H, H]       recurrent edges, ``W[e]`` maps value ``program.edge_src[e]``
    biases  [NB, H]         one row per op with a bias, in op order
    initial [S, B, H]       states at t = -1 (None: zeros)
    hs      [B, T, H]       the new ``h`` at every step; final [S, B, H] the last states
"""

from __future__ import annotations

import torch

from kernels.activation.reference import torch_function
from kernels.recurrent.program import CellProgram, Op


def check_shapes(
    program: CellProgram, xproj: torch.Tensor, weights: torch.Tensor, biases: torch.Tensor, initial: torch.Tensor | None
) -> None:
    """Raise ValueError naming the sizes when tensors do not fit the program."""
    H, S = program.hidden, program.num_states
    if xproj.dim() != 3 or xproj.shape[2] != program.num_x * H:
        raise ValueError(f"xproj must be [B, T, {program.num_x * H}], got {list(xproj.shape)}")
    if tuple(weights.shape) != (len(program.edge_src), H, H):
        raise ValueError(f"weights must be [{len(program.edge_src)}, {H}, {H}], got {list(weights.shape)}")
    if tuple(biases.shape) != (program.num_biases, H):
        raise ValueError(f"biases must be [{program.num_biases}, {H}], got {list(biases.shape)}")
    if initial is not None and tuple(initial.shape) != (S, xproj.shape[0], H):
        raise ValueError(f"initial must be [{S}, {xproj.shape[0]}, {H}], got {list(initial.shape)}")


def initial_state(
    program: CellProgram, xproj: torch.Tensor, weights: torch.Tensor, biases: torch.Tensor, initial: torch.Tensor | None
) -> torch.Tensor:
    """Check the shapes (`check_shapes`) and return ``initial``, zeros where it is None: the common
    prologue of every implementation."""
    check_shapes(program, xproj, weights, biases, initial)
    return initial if initial is not None else xproj.new_zeros(program.num_states, xproj.shape[0], program.hidden)


def output_grads(
    program: CellProgram, xproj: torch.Tensor, dhs: torch.Tensor | None, dfinal: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradients of ``hs`` and ``final`` a backward receives, zeros for an output autograd left
    out (it passes None for an unused one), contiguous."""
    B, T = xproj.shape[0], xproj.shape[1]
    dhs = dhs.contiguous() if dhs is not None else xproj.new_zeros(B, T, program.hidden)
    dfinal = dfinal.contiguous() if dfinal is not None else xproj.new_zeros(program.num_states, B, program.hidden)
    return dhs, dfinal


def combine(op: Op, terms: list[torch.Tensor], biases: torch.Tensor) -> torch.Tensor:
    """The op's pre-activation: its terms combined left to right, plus its bias row if it has one."""
    out = terms[0]
    for other in terms[1:]:
        out = out + other if op.combine == "add" else out * other if op.combine == "mul" else out - other
    return out + biases[op.bias] if op.bias >= 0 else out


def new_state(program: CellProgram, values: list[torch.Tensor]) -> list[torch.Tensor]:
    """The states after a step: each the mean of its output values (the value itself when one)."""
    return [values[o[0]] if len(o) == 1 else torch.stack([values[i] for i in o]).mean(0) for o in program.outputs]


def recurrent(
    program: CellProgram,
    xproj: torch.Tensor,
    weights: torch.Tensor,
    biases: torch.Tensor,
    initial: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the cell over the sequence, one small op at a time (see the module docstring for shapes)."""
    state = list(initial_state(program, xproj, weights, biases, initial).unbind(0))
    T, H = xproj.shape[1], program.hidden
    acts = [torch_function(op.activation) for op in program.ops]
    hs = []
    for t in range(T):
        values = list(state)
        xt = xproj[:, t]
        for op, act in zip(program.ops, acts):
            terms = []
            for term in op.terms:
                if term.kind == "x":
                    terms.append(xt[:, term.index * H : (term.index + 1) * H])
                elif term.kind == "edge":
                    terms.append(values[program.edge_src[term.index]] @ weights[term.index].t())
                else:
                    terms.append(values[term.index])
            values.append(act(combine(op, terms, biases)))
        state = new_state(program, values)
        hs.append(state[0])
    return torch.stack(hs, dim=1), torch.stack(state)
