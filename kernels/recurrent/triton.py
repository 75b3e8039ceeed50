"""The recurrent cell over a whole sequence as one generated Triton kernel (FlashRNN-style).

Outside the kernel: the input projections of all steps, one matmul (``xproj``). Inside, one program
per block of ``BB`` sequences: the recurrent weights (every ``[H, H]`` edge) are loaded once and held
on chip for the whole time loop, each step's pointwise graph is generated from the `CellProgram`, and
every value the backward needs is written to a per-step save buffer. The backward kernel is the
reverse time loop; each program accumulates its own partial weight and bias gradients in registers
and writes them once (``[programs, E, H, H]``), summed in torch afterwards: no atomics, deterministic.

Layers: generated kernels (``<cache>/rnn_<hash>.py``) -> `recurrent_fwd` / `recurrent_bwd` launchers
-> `RecurrentFunction` -> `recurrent` (same contract as `kernels.recurrent.reference.recurrent`).

Limits: the hidden state is one register tile (``H <= MAX_HIDDEN``); larger cells use the PyTorch
path (see `supports`). ``tl.dot`` needs tiles of at least 16, so ``BB`` and the padded hidden size
are at least 16; padded rows/columns are masked to zero after every op.
"""

from __future__ import annotations

import functools
import hashlib

import torch
import triton

from kernels._alloc import empty, empty_like
from kernels.dispatch import dot_precision
from kernels.activation.expr import TRITON_PRELUDE, generated_module
from kernels.recurrent.codegen import activation_grad, activation_value, names_in
from kernels.recurrent.program import CellProgram
from kernels.recurrent.reference import check_shapes

BLOCK_B = 16
MAX_HIDDEN = 128
_MODULES: dict[str, object] = {}


def supports(program: CellProgram) -> bool:
    """Whether the kernel handles this cell (the hidden state must fit one register tile)."""
    return program.hidden <= MAX_HIDDEN


def _term_names(op, i: int) -> list[str]:
    return [f"x{i}_{t.index}" if t.kind == "x" else f"p{t.index}" if t.kind == "edge" else f"v{t.index}" for t in op.terms]


def _backward_body(p: CellProgram) -> tuple[list[str], set[str]]:
    """Lines of one reverse step (tiles), and the forward names it reads."""
    S = p.num_states
    body: list[str] = []
    grads: set[str] = set()

    def acc(name: str, expr: str) -> None:
        body.append(f"{name} = {name} + {expr}" if name in grads else f"{name} = {expr}")
        grads.add(name)

    acc("g0", "tl.load(dhs_ptr + row_t + offs_h[None, :], mask=m2, other=0.0) + ds0")
    for s in range(1, S):
        acc(f"g{s}", f"ds{s}")
    for s, outs in enumerate(p.outputs):
        for o in outs:
            acc(f"dv{o}", f"g{s}" if len(outs) == 1 else f"g{s} * {1.0 / len(outs)!r}")
    edge_grads: dict[int, str] = {}
    x_done: set[int] = set()

    def close(src: int) -> None:
        for e, es in enumerate(p.edge_src):
            if es == src and e in edge_grads:
                body.append(f"dp{e} = tl.where(m2, {edge_grads[e]}, 0.0)")
                acc(f"dv{src}", f"tl.dot(dp{e}, Wn{e}, input_precision=PREC)")
                body.append(f"dW{e} += tl.dot(tl.trans(dp{e}), v{src}, input_precision=PREC)")

    for i in reversed(range(len(p.ops))):
        op, idx = p.ops[i], S + i
        close(idx)
        if f"dv{idx}" not in grads:
            continue
        deriv = activation_grad(op.activation, f"z{i}", f"v{idx}", body, f"d{i}_")
        if deriv is None:
            continue
        body.append(f"dz{i} = tl.where(m2, dv{idx}{'' if deriv == '1' else f' * {deriv}'}, 0.0)")
        if op.bias >= 0:
            body.append(f"db{op.bias} += tl.sum(dz{i}, axis=0)")
        names = _term_names(op, i)
        for j, t in enumerate(op.terms):
            if op.combine == "add" or (op.combine == "sub" and j == 0):
                d = f"dz{i}"
            elif op.combine == "sub":
                d = f"-dz{i}"
            else:
                d = f"dz{i} * {' * '.join(n for jj, n in enumerate(names) if jj != j)}"
            if t.kind == "x":
                body.append(f"tl.store(dxp_ptr + xrow + {t.index * p.hidden} + offs_h[None, :], {d}, mask=m2)")
                x_done.add(t.index)
            elif t.kind == "edge":
                edge_grads[t.index] = d
            else:
                acc(f"dv{t.index}", d)
    for s in range(S):
        close(s)
    for k in range(p.num_x):
        if k not in x_done:
            body.append(f"tl.store(dxp_ptr + xrow + {k * p.hidden} + offs_h[None, :], zero, mask=m2)")
    for s in range(S):
        body.append(f"ds{s} = tl.where(m2, dv{s}, 0.0)" if f"dv{s}" in grads else f"ds{s} = zero")
    used = names_in(body)
    return body, {n for n in used if n[0] in "vzp" and n[1:].isdigit() or (n[0] == "x" and "_" in n and n[1:].replace("_", "").isdigit())}


def _source(p: CellProgram) -> str:
    S, H, KX = p.num_states, p.hidden, p.num_x
    bwd_body, read = _backward_body(p)
    slots = sorted(n for n in read if not n.startswith("x"))
    slot = {n: k for k, n in enumerate(slots)}
    NS = max(1, len(slots))
    common = [
        "    pid = tl.program_id(0)",
        "    offs_b = pid * BB + tl.arange(0, BB)",
        "    offs_h = tl.arange(0, HP)",
        "    mh = offs_h < H",
        "    m2 = (offs_b[:, None] < B) & mh[None, :]",
        "    mw = mh[:, None] & mh[None, :]",
        "    zero = tl.zeros((BB, HP), dtype=DT)",
    ]
    for n in range(p.num_biases):
        common.append(f"    b{n} = tl.load(b_ptr + {n * H} + offs_h, mask=mh, other=0.0).to(DT)[None, :]")
    # forward
    F = ["@triton.jit",
         "def rnn_fwd_kernel(xp_ptr, w_ptr, b_ptr, h0_ptr, hs_ptr, final_ptr, save_ptr, B, T, H: tl.constexpr,",
         "                   STORE: tl.constexpr, DT: tl.constexpr, BB: tl.constexpr, HP: tl.constexpr, PREC: tl.constexpr):", *common]
    for e in range(len(p.edge_src)):
        F.append(f"    Wt{e} = tl.load(w_ptr + {e * H * H} + offs_h[None, :] * H + offs_h[:, None], mask=mw, other=0.0).to(DT)")
    for s in range(S):
        F.append(f"    v{s} = tl.load(h0_ptr + {s} * B * H + offs_b[:, None] * H + offs_h[None, :], mask=m2, other=0.0).to(DT)")
    F.append("    for t in range(0, T):")
    body = [f"xrow = offs_b[:, None] * T * {KX * H} + t * {KX * H}", "row_t = offs_b[:, None] * T * H + t * H",
            f"srow = offs_b[:, None] * T * {NS * H} + t * {NS * H}"]

    def save(name: str) -> None:
        if name in slot:
            body.append(f"if STORE:\n            tl.store(save_ptr + srow + {slot[name] * H} + offs_h[None, :], {name}, mask=m2)")

    def project(src: int) -> None:
        for e, es in enumerate(p.edge_src):
            if es == src:
                body.append(f"p{e} = tl.dot(v{src}, Wt{e}, input_precision=PREC)")
                save(f"p{e}")

    for s in range(S):
        save(f"v{s}")
        project(s)
    for i, op in enumerate(p.ops):
        names = _term_names(op, i)
        for t, n in zip(op.terms, names):
            if t.kind == "x":
                body.append(f"{n} = tl.load(xp_ptr + xrow + {t.index * H} + offs_h[None, :], mask=m2, other=0.0).to(DT)")
        sym = {"add": " + ", "mul": " * ", "sub": " - "}[op.combine]
        expr = sym.join(names)
        if op.bias >= 0:
            expr = f"({expr}) + b{op.bias}"
        body.append(f"z{i} = {expr}")
        value = activation_value(op.activation, f"z{i}", body, f"a{i}_")
        body.append(f"v{S + i} = tl.where(m2, {value}, 0.0)")
        save(f"z{i}")
        save(f"v{S + i}")
        project(S + i)
    for s, outs in enumerate(p.outputs):
        mean = f"v{outs[0]}" if len(outs) == 1 else f"({' + '.join(f'v{o}' for o in outs)}) * {1.0 / len(outs)!r}"
        body.append(f"n{s} = {mean}")
    body += [f"v{s} = n{s}" for s in range(S)]
    body.append("tl.store(hs_ptr + row_t + offs_h[None, :], v0, mask=m2)")
    F += [f"        {line}" for line in body]
    for s in range(S):
        F.append(f"    tl.store(final_ptr + {s} * B * H + offs_b[:, None] * H + offs_h[None, :], v{s}, mask=m2)")
    # backward
    Bk = ["@triton.jit",
          "def rnn_bwd_kernel(xp_ptr, w_ptr, b_ptr, save_ptr, dhs_ptr, dfinal_ptr, dxp_ptr, dh0_ptr, dw_ptr, db_ptr,",
          "                   B, T, H: tl.constexpr, DT: tl.constexpr, BB: tl.constexpr, HP: tl.constexpr,",
          "                   PREC: tl.constexpr):", *common]
    for e in range(len(p.edge_src)):
        Bk.append(f"    Wn{e} = tl.load(w_ptr + {e * H * H} + offs_h[:, None] * H + offs_h[None, :], mask=mw, other=0.0).to(DT)")
        Bk.append(f"    dW{e} = tl.zeros((HP, HP), dtype=DT)")
    for n in range(p.num_biases):
        Bk.append(f"    db{n} = tl.zeros((HP,), dtype=DT)")
    for s in range(S):
        Bk.append(f"    ds{s} = tl.load(dfinal_ptr + {s} * B * H + offs_b[:, None] * H + offs_h[None, :], mask=m2, other=0.0).to(DT)")
    Bk.append("    for tt in range(0, T):")
    loads = ["t = T - 1 - tt", f"xrow = offs_b[:, None] * T * {KX * H} + t * {KX * H}",
             "row_t = offs_b[:, None] * T * H + t * H", f"srow = offs_b[:, None] * T * {NS * H} + t * {NS * H}"]
    for n in slots:
        loads.append(f"{n} = tl.load(save_ptr + srow + {slot[n] * H} + offs_h[None, :], mask=m2, other=0.0).to(DT)")
    for n in sorted(read - set(slots)):
        k = int(n.split("_")[1])
        loads.append(f"{n} = tl.load(xp_ptr + xrow + {k * H} + offs_h[None, :], mask=m2, other=0.0).to(DT)")
    Bk += [f"        {line}" for line in loads + bwd_body]
    for s in range(S):
        Bk.append(f"    tl.store(dh0_ptr + {s} * B * H + offs_b[:, None] * H + offs_h[None, :], ds{s}, mask=m2)")
    for e in range(len(p.edge_src)):
        Bk.append(f"    tl.store(dw_ptr + pid * {len(p.edge_src) * H * H} + {e * H * H} + offs_h[:, None] * H + offs_h[None, :], dW{e}, mask=mw)")
    for n in range(p.num_biases):
        Bk.append(f"    tl.store(db_ptr + pid * {p.num_biases * H} + {n * H} + offs_h, db{n}, mask=mh)")
    header = f"# Generated by kernels.recurrent.triton for:\n# {p.key()}\n"
    src = "\n".join([header + TRITON_PRELUDE, "", "", *F, "", "", *Bk, ""])
    return src.replace("    " * 2 + "if STORE:\n            ", "        if STORE:\n            ")


@functools.lru_cache(maxsize=512)
def kernels_for(program: CellProgram) -> tuple[object, int]:
    """The generated module and the number of save slots per step."""
    source = _source(program)
    _, read = _backward_body(program)
    slots = max(1, len([n for n in read if not n.startswith("x")]))
    key = hashlib.sha256(program.key().encode()).hexdigest()[:16]
    return generated_module(source, f"rnn_{key}", _MODULES), slots


def _meta(program: CellProgram, dtype: torch.dtype) -> dict:
    import triton.language as tl

    hp = max(16, triton.next_power_of_2(program.hidden))
    return {"H": program.hidden, "DT": tl.float64 if dtype == torch.float64 else tl.float32, "BB": BLOCK_B, "HP": hp,
            "PREC": dot_precision(dtype)}


def recurrent_fwd(program, xproj, weights, biases, initial, store: bool):
    """Launch the forward kernel; returns hs ``[B, T, H]``, final ``[S, B, H]``, save ``[B, T, NS, H]``."""
    module, slots = kernels_for(program)
    B, T, _ = xproj.shape
    H = program.hidden
    hs = empty(B, T, H, dtype=xproj.dtype, device=xproj.device)
    final = empty(program.num_states, B, H, dtype=xproj.dtype, device=xproj.device)
    cdt = torch.float64 if xproj.dtype == torch.float64 else torch.float32
    save = empty(B, T, slots, H, dtype=cdt, device=xproj.device) if store else hs
    grid = (triton.cdiv(B, BLOCK_B),)
    module.rnn_fwd_kernel[grid](xproj, weights, biases, initial, hs, final, save, B, T, STORE=store, **_meta(program, xproj.dtype))
    return hs, final, save


def recurrent_bwd(program, xproj, weights, biases, save, dhs, dfinal):
    """Launch the backward kernel; returns ``dxproj, dweights, dbiases, dinitial``."""
    module, _ = kernels_for(program)
    B, T, _ = xproj.shape
    grid = (triton.cdiv(B, BLOCK_B),)
    cdt = save.dtype
    dxp = empty_like(xproj)
    dh0 = empty(program.num_states, B, program.hidden, dtype=xproj.dtype, device=xproj.device)
    dw = empty(grid[0], *weights.shape, dtype=cdt, device=xproj.device)
    db = empty(grid[0], *biases.shape, dtype=cdt, device=xproj.device)
    module.rnn_bwd_kernel[grid](
        xproj, weights, biases, save, dhs.contiguous(), dfinal.contiguous(), dxp, dh0, dw, db, B, T,
        **_meta(program, xproj.dtype),
    )
    return dxp, dw.sum(0).to(weights.dtype), db.sum(0).to(biases.dtype), dh0


class RecurrentFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, program, xproj, weights, biases, initial):
        store = any(ctx.needs_input_grad)
        hs, final, save = recurrent_fwd(program, xproj, weights, biases, initial, store)
        ctx.program = program
        ctx.save_for_backward(xproj, weights, biases, save)
        return hs, final

    @staticmethod
    def backward(ctx, dhs, dfinal):
        xproj, weights, biases, save = ctx.saved_tensors
        p = ctx.program
        if dhs is None:
            dhs = xproj.new_zeros(xproj.shape[0], xproj.shape[1], p.hidden)
        if dfinal is None:
            dfinal = xproj.new_zeros(p.num_states, xproj.shape[0], p.hidden)
        return (None, *recurrent_bwd(p, xproj, weights, biases, save, dhs, dfinal))


def recurrent(
    program: CellProgram,
    xproj: torch.Tensor,
    weights: torch.Tensor,
    biases: torch.Tensor,
    initial: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as `kernels.recurrent.reference.recurrent`, as one Triton kernel per direction."""
    check_shapes(program, xproj, weights, biases, initial)
    if not supports(program):
        raise ValueError(f"hidden size {program.hidden} > {MAX_HIDDEN}: use kernels.recurrent.fused")
    if initial is None:
        initial = xproj.new_zeros(program.num_states, xproj.shape[0], program.hidden)
    return RecurrentFunction.apply(
        program, xproj.contiguous(), weights.contiguous(), biases.contiguous(), initial.contiguous()
    )
