"""The recurrent cell over a whole sequence as one generated Triton kernel (FlashRNN-style).

Outside the kernel: the input projections of all steps, one matmul (``xproj``). Inside, one program
per block of ``BB`` sequences: the recurrent weights (every ``[H, H]`` edge) are loaded once and held
on chip for the whole time loop, each step's pointwise graph is generated from the `CellProgram`, and
every value the backward needs is written to a per-step save buffer. The backward kernel is the
reverse time loop; each program accumulates its own partial weight and bias gradients in registers
and writes them once (``[programs, E, H, H]``), summed in torch afterwards: no atomics, deterministic.

Layers: generated kernels (``<cache>/rnn_<hash>.py``) -> `recurrent_fwd` / `recurrent_bwd` launchers
-> `RecurrentFunction` -> `recurrent` (same contract as `kernels.recurrent.reference.recurrent`).

Head-wise split: up to ``MAX_HIDDEN`` the hidden state is one register tile and the weights stay on
chip. Larger states are split into heads of ``HEAD_BLOCK`` columns; every value is one tile per
head, a projection sums ``tl.dot`` over the source's heads, and (the full ``[H, H]`` matrices no
longer fit on chip) weight tiles are streamed from L2 each step; the weight gradient then comes from
the stored per-step edge gradients as one matmul per edge. Our cells mix all hidden units, so heads
are not independent programs as in FlashRNN's block-diagonal cells: one program owns all heads of
its batch block. ``tl.dot`` needs tiles of at least 16, so ``BB`` and the head are at least 16;
padded rows/columns are masked to zero after every op.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass

import torch
import triton

from kernels._alloc import empty, empty_like
from kernels.dispatch import dot_precision
from kernels.activation.expr import TRITON_PRELUDE, generated_module
from kernels.recurrent.codegen import activation_grad, activation_value, names_in, term_grads
from kernels.recurrent.program import CellProgram
from kernels.recurrent.reference import initial_state, output_grads

BLOCK_B = 16
MAX_HIDDEN = 64  # up to this (padded) hidden size the state is one tile and the weights stay on chip (untuned)
HEAD_BLOCK = 64  # beyond it, heads of this many columns; weight tiles are streamed from L2 every step
_MODULES: dict[str, object] = {}


def _term_names(op, i: int) -> list[str]:
    return [f"x{i}_{t.index}" if t.kind == "x" else f"p{t.index}" if t.kind == "edge" else f"v{t.index}" for t in op.terms]


# Code is generated for one head (a [BB, HB] tile of the hidden state) and replicated per head by
# renaming these names (``v3`` -> ``v3_h1``); matmuls across heads are directives expanded in `_render`.
_PER_HEAD = re.compile(r"\b(v\d+|z\d+|p\d+|a\d+_\d+|d\d+_\d+|dz\d+|dv\d+|dp\d+|g\d+|gm\d+|n\d+|b\d+|x\d+_\d+|ds\d+|db\d+"
                       r"|m2|mh|offs_h|zero)\b")
Item = str | tuple


def _head(line: str, k: int, hb: int) -> str:
    return _PER_HEAD.sub(lambda m: f"{m.group(1)}_h{k}", line.replace("{HEAD0}", str(k * hb)))


def _render(items: list[Item], nh: int, hb: int, H: int, indent: str) -> list[str]:
    """Expand per-head lines and the cross-head matmul directives into kernel source lines."""
    out: list[str] = []
    held = nh == 1

    def wt(e: int, k: int, j: int) -> str:  # [HB_k, HB_j] tile of W[e].T
        if held:
            return f"Wt{e}"
        return f"_w_t(w_ptr + {e * H * H}, offs_h_h{k}, offs_h_h{j}, mh_h{k}, mh_h{j}, H, DT)"

    def wn(e: int, j: int, k: int) -> str:  # [HB_j, HB_k] tile of W[e]
        if held:
            return f"Wn{e}"
        return f"_w_n(w_ptr + {e * H * H}, offs_h_h{j}, offs_h_h{k}, mh_h{j}, mh_h{k}, H, DT)"

    for item in items:
        if isinstance(item, str):
            out += [indent + _head(item, k, hb) for k in range(nh)]
            continue
        kind, e, src = item[:3]
        if kind == "fdot":
            for j in range(nh):
                terms = " + ".join(f"tl.dot(v{src}_h{k}, {wt(e, k, j)}, input_precision=PREC)" for k in range(nh))
                out.append(f"{indent}p{e}_h{j} = {terms}")
        elif kind == "bdot":
            first = item[3]
            for k in range(nh):
                terms = " + ".join(f"tl.dot(dp{e}_h{j}, {wn(e, j, k)}, input_precision=PREC)" for j in range(nh))
                out.append(f"{indent}dv{src}_h{k} = {terms}" if first else f"{indent}dv{src}_h{k} = dv{src}_h{k} + {terms}")
        elif held:  # "dw": per-program partial weight gradient held in registers
            out.append(f"{indent}dW{e} += tl.dot(tl.trans(dp{e}_h0), v{src}_h0, input_precision=PREC)")
        else:  # "dw" with heads: store dp, the launcher forms dW with one matmul per edge
            out += [f"{indent}tl.store(dp_ptr + dprow + {e * H} + offs_h_h{j}[None, :], dp{e}_h{j}, mask=m2_h{j})"
                    for j in range(nh)]
    return out


def _backward_body(p: CellProgram, heads: bool) -> tuple[list[Item], set[str]]:
    """Items of one reverse step, and the forward names it reads."""
    S = p.num_states
    body: list[Item] = []
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
    extra: set[str] = set()

    def close(src: int) -> None:
        for e, es in enumerate(p.edge_src):
            if es == src and e in edge_grads:
                body.append(f"dp{e} = tl.where(m2, {edge_grads[e]}, 0.0)")
                body.append(("bdot", e, src, f"dv{src}" not in grads))
                grads.add(f"dv{src}")
                body.append(("dw", e, src))
                if heads:
                    extra.add(f"v{src}")  # the launcher's weight-gradient matmul reads it

    for i in reversed(range(len(p.ops))):
        op, idx = p.ops[i], S + i
        close(idx)
        if f"dv{idx}" not in grads:
            continue
        lines: list[str] = []
        deriv = activation_grad(op.activation, f"z{i}", f"v{idx}", lines, f"d{i}_")
        body += lines
        if deriv is None:
            continue
        body.append(f"dz{i} = tl.where(m2, dv{idx}{'' if deriv == '1' else f' * {deriv}'}, 0.0)")
        if op.bias >= 0:
            body.append(f"db{op.bias} += tl.sum(dz{i}, axis=0)")
        for t, d in term_grads(op, f"dz{i}", _term_names(op, i)):
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
    text = [b for b in body if isinstance(b, str)]
    text += [f"v{b[2]} p{b[1]}" for b in body if isinstance(b, tuple) and b[0] == "dw" and not heads]
    used = names_in(text) | extra
    pattern = re.compile(r"(v|z|p)\d+|x\d+_\d+")
    return body, {n for n in used if pattern.fullmatch(n)}


_HELPERS = '''

@triton.jit
def _w_t(ptr, offs_in, offs_out, m_in, m_out, H: tl.constexpr, DT: tl.constexpr):
    """[in, out] tile of W.T for W [H, H] at ptr."""
    return tl.load(ptr + offs_out[None, :] * H + offs_in[:, None], mask=m_in[:, None] & m_out[None, :], other=0.0).to(DT)


@triton.jit
def _w_n(ptr, offs_out, offs_in, m_out, m_in, H: tl.constexpr, DT: tl.constexpr):
    """[out, in] tile of W [H, H] at ptr."""
    return tl.load(ptr + offs_out[:, None] * H + offs_in[None, :], mask=m_out[:, None] & m_in[None, :], other=0.0).to(DT)
'''


@dataclass(frozen=True)
class _Layout:
    """What a launcher needs to know about a generated kernel."""

    slots: int  # per-step save slots
    slot_of: dict  # name -> slot
    heads: int
    head_block: int


def _source(p: CellProgram, hb: int) -> tuple[str, _Layout]:
    S, H, KX, E = p.num_states, p.hidden, p.num_x, len(p.edge_src)
    nh = -(-H // hb)
    bwd_body, read = _backward_body(p, nh > 1)
    slots = sorted(n for n in read if not n.startswith("x"))
    slot = {n: k for k, n in enumerate(slots)}
    NS = max(1, len(slots))
    head_setup = [
        "offs_h = {HEAD0} + tl.arange(0, HB)",
        "mh = offs_h < H",
        "m2 = (offs_b[:, None] < B) & mh[None, :]",
        "zero = tl.zeros((BB, HB), dtype=DT)",
    ] + [f"b{n} = tl.load(b_ptr + {n * H} + offs_h, mask=mh, other=0.0).to(DT)[None, :]" for n in range(p.num_biases)]
    common = ["    pid = tl.program_id(0)", "    offs_b = pid * BB + tl.arange(0, BB)", *_render(head_setup, nh, hb, H, "    ")]
    # forward
    F = ["@triton.jit",
         "def rnn_fwd_kernel(xp_ptr, w_ptr, b_ptr, h0_ptr, hs_ptr, final_ptr, save_ptr, B, T, H: tl.constexpr,",
         "                   STORE: tl.constexpr, DT: tl.constexpr, BB: tl.constexpr, HB: tl.constexpr, PREC: tl.constexpr):",
         *common]
    if nh == 1:
        F += [f"    Wt{e} = _w_t(w_ptr + {e * H * H}, offs_h_h0, offs_h_h0, mh_h0, mh_h0, H, DT)" for e in range(E)]
    pre: list[Item] = [f"v{s} = tl.load(h0_ptr + {s} * B * H + offs_b[:, None] * H + offs_h[None, :], mask=m2, other=0.0).to(DT)"
                       for s in range(S)]
    F += _render(pre, nh, hb, H, "    ")
    F.append("    for t in range(0, T):")
    F += [f"        xrow = offs_b[:, None] * T * {KX * H} + t * {KX * H}", "        row_t = offs_b[:, None] * T * H + t * H",
          f"        srow = offs_b[:, None] * T * {NS * H} + t * {NS * H}"]
    body: list[Item] = []

    def save(name: str) -> None:
        if name in slot:
            body.append(f"tl.store(save_ptr + srow + {slot[name] * H} + offs_h[None, :], {name}, mask=m2 & STORE)")

    def project(src: int) -> None:
        for e, es in enumerate(p.edge_src):
            if es == src:
                body.append(("fdot", e, src))
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
        lines: list[str] = []
        value = activation_value(op.activation, f"z{i}", lines, f"a{i}_")
        body += lines
        body.append(f"v{S + i} = tl.where(m2, {value}, 0.0)")
        save(f"z{i}")
        save(f"v{S + i}")
        project(S + i)
    for s, outs in enumerate(p.outputs):
        mean = f"v{outs[0]}" if len(outs) == 1 else f"({' + '.join(f'v{o}' for o in outs)}) * {1.0 / len(outs)!r}"
        body.append(f"n{s} = {mean}")
    body += [f"v{s} = n{s}" for s in range(S)]
    body.append("tl.store(hs_ptr + row_t + offs_h[None, :], v0, mask=m2)")
    F += _render(body, nh, hb, H, "        ")
    F += _render([f"tl.store(final_ptr + {s} * B * H + offs_b[:, None] * H + offs_h[None, :], v{s}, mask=m2)"
                  for s in range(S)], nh, hb, H, "    ")
    # backward
    Bk = ["@triton.jit",
          "def rnn_bwd_kernel(xp_ptr, w_ptr, b_ptr, save_ptr, dhs_ptr, dfinal_ptr, dxp_ptr, dh0_ptr, dw_ptr, db_ptr,",
          "                   dp_ptr, B, T, H: tl.constexpr, DT: tl.constexpr, BB: tl.constexpr, HB: tl.constexpr,",
          "                   PREC: tl.constexpr):", *common]
    if nh == 1:
        for e in range(E):
            Bk.append(f"    Wn{e} = _w_n(w_ptr + {e * H * H}, offs_h_h0, offs_h_h0, mh_h0, mh_h0, H, DT)")
            Bk.append(f"    dW{e} = tl.zeros((HB, HB), dtype=DT)")
    pre = [f"db{n} = tl.zeros((HB,), dtype=DT)" for n in range(p.num_biases)]
    pre += [f"ds{s} = tl.load(dfinal_ptr + {s} * B * H + offs_b[:, None] * H + offs_h[None, :], mask=m2, other=0.0).to(DT)"
            for s in range(S)]
    Bk += _render(pre, nh, hb, H, "    ")
    Bk.append("    for tt in range(0, T):")
    Bk += ["        t = T - 1 - tt", f"        xrow = offs_b[:, None] * T * {KX * H} + t * {KX * H}",
           "        row_t = offs_b[:, None] * T * H + t * H", f"        srow = offs_b[:, None] * T * {NS * H} + t * {NS * H}",
           f"        dprow = offs_b[:, None] * T * {E * H} + t * {E * H}"]
    loads: list[Item] = [f"{n} = tl.load(save_ptr + srow + {slot[n] * H} + offs_h[None, :], mask=m2, other=0.0).to(DT)"
                         for n in slots]
    for n in sorted(read - set(slots)):
        k = int(n.split("_")[1])
        loads.append(f"{n} = tl.load(xp_ptr + xrow + {k * H} + offs_h[None, :], mask=m2, other=0.0).to(DT)")
    Bk += _render(loads + bwd_body, nh, hb, H, "        ")
    post: list[Item] = [f"tl.store(dh0_ptr + {s} * B * H + offs_b[:, None] * H + offs_h[None, :], ds{s}, mask=m2)"
                        for s in range(S)]
    post += [f"tl.store(db_ptr + pid * {p.num_biases * H} + {n * H} + offs_h, db{n}, mask=mh)" for n in range(p.num_biases)]
    Bk += _render(post, nh, hb, H, "    ")
    if nh == 1:
        for e in range(E):
            Bk.append(f"    tl.store(dw_ptr + pid * {E * H * H} + {e * H * H} + offs_h_h0[:, None] * H + offs_h_h0[None, :], "
                      f"dW{e}, mask=mh_h0[:, None] & mh_h0[None, :])")
    header = f"# Generated by kernels.recurrent.triton ({nh} head(s) of {hb}) for:\n# {p.key()}\n"
    src = "\n".join([header + TRITON_PRELUDE + _HELPERS, "", "", *F, "", "", *Bk, ""])
    return src, _Layout(NS, slot, nh, hb)


def head_block(program: CellProgram) -> int:
    """Hidden columns per head: the whole (padded) state up to ``MAX_HIDDEN``, else heads of ``HEAD_BLOCK``."""
    hp = max(16, triton.next_power_of_2(program.hidden))
    return hp if hp <= MAX_HIDDEN else HEAD_BLOCK


@functools.lru_cache(maxsize=512)
def kernels_for(program: CellProgram, hb: int) -> tuple[object, _Layout]:
    """The generated module for a program split in heads of ``hb`` columns, and its layout."""
    source, layout = _source(program, hb)
    key = hashlib.sha256(f"{program.key()}|{hb}".encode()).hexdigest()[:16]
    return generated_module(source, f"rnn_{key}", _MODULES), layout


def _meta(program: CellProgram, dtype: torch.dtype, hb: int) -> dict:
    import triton.language as tl

    return {"H": program.hidden, "DT": tl.float64 if dtype == torch.float64 else tl.float32, "BB": BLOCK_B, "HB": hb,
            "PREC": dot_precision(dtype)}


def recurrent_fwd(program, xproj, weights, biases, initial, store: bool, hb: int):
    """Launch the forward kernel; returns hs ``[B, T, H]``, final ``[S, B, H]``, save ``[B, T, NS, H]``."""
    module, layout = kernels_for(program, hb)
    B, T, _ = xproj.shape
    H = program.hidden
    hs = empty(B, T, H, dtype=xproj.dtype, device=xproj.device)
    final = empty(program.num_states, B, H, dtype=xproj.dtype, device=xproj.device)
    cdt = torch.float64 if xproj.dtype == torch.float64 else torch.float32
    save = empty(B, T, layout.slots, H, dtype=cdt, device=xproj.device) if store else hs
    grid = (triton.cdiv(B, BLOCK_B),)
    module.rnn_fwd_kernel[grid](xproj, weights, biases, initial, hs, final, save, B, T, STORE=store,
                                **_meta(program, xproj.dtype, hb))
    return hs, final, save


def recurrent_bwd(program, xproj, weights, biases, save, dhs, dfinal, hb: int):
    """Launch the backward kernel; returns ``dxproj, dweights, dbiases, dinitial``.

    One head: each program's partial weight gradient comes back ``[programs, E, H, H]``. Several
    heads: the kernel stores every step's edge gradients ``dp`` and the weight gradient is one
    matmul per edge over all (batch, step) rows. Both are deterministic (no atomics).
    """
    module, layout = kernels_for(program, hb)
    B, T, _ = xproj.shape
    H, E = program.hidden, len(program.edge_src)
    grid = (triton.cdiv(B, BLOCK_B),)
    cdt = save.dtype
    dxp = empty_like(xproj)
    dh0 = empty(program.num_states, B, H, dtype=xproj.dtype, device=xproj.device)
    db = empty(grid[0], *biases.shape, dtype=cdt, device=xproj.device)
    if layout.heads == 1:
        dw = empty(grid[0], *weights.shape, dtype=cdt, device=xproj.device)
        dp = dw
    else:
        dw = None
        dp = empty(B, T, E, H, dtype=cdt, device=xproj.device)
    module.rnn_bwd_kernel[grid](
        xproj, weights, biases, save, dhs.contiguous(), dfinal.contiguous(), dxp, dh0, dw if dw is not None else dp,
        db, dp, B, T, **_meta(program, xproj.dtype, hb),
    )
    if dw is not None:
        dweights = dw.sum(0)
    else:
        dweights = torch.stack([
            dp[:, :, e].reshape(B * T, H).t() @ save[:, :, layout.slot_of[f"v{src}"]].reshape(B * T, H)
            for e, src in enumerate(program.edge_src)
        ]) if E else weights.new_zeros(0, H, H)
    return dxp, dweights.to(weights.dtype), db.sum(0).to(biases.dtype), dh0


class RecurrentFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, program, xproj, weights, biases, initial, hb):
        store = any(ctx.needs_input_grad)
        hs, final, save = recurrent_fwd(program, xproj, weights, biases, initial, store, hb)
        ctx.program, ctx.hb = program, hb
        ctx.save_for_backward(xproj, weights, biases, save)
        return hs, final

    @staticmethod
    def backward(ctx, dhs, dfinal):
        xproj, weights, biases, save = ctx.saved_tensors
        p = ctx.program
        dhs, dfinal = output_grads(p, xproj, dhs, dfinal)
        return (None, *recurrent_bwd(p, xproj, weights, biases, save, dhs, dfinal, ctx.hb), None)


def recurrent(
    program: CellProgram,
    xproj: torch.Tensor,
    weights: torch.Tensor,
    biases: torch.Tensor,
    initial: torch.Tensor | None = None,
    *,
    head: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as `kernels.recurrent.reference.recurrent`, as one Triton kernel per direction.

    ``head``: hidden columns per head (a power of two >= 16); default `head_block`.
    """
    initial = initial_state(program, xproj, weights, biases, initial)
    hb = head_block(program) if head is None else head
    if hb < 16 or hb & (hb - 1):
        raise ValueError(f"head must be a power of two >= 16, got {hb}")
    return RecurrentFunction.apply(
        program, xproj.contiguous(), weights.contiguous(), biases.contiguous(), initial.contiguous(), hb
    )
