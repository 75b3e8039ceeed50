"""The fast CPU path: the whole sequence in generated straight-line torch code, with a manual backward.

The same plan as the Triton kernel, in torch ops. The cell's step is generated from its
`CellProgram` (no per-step dict lookups or graph walks). Ops that read only x ("time-parallel") run
for all steps at once before the loop, and their projections are one matmul over all steps; x
projections, time-parallel terms and biases are folded into the recurrent matmul where the combine
allows (``addmm``). The forward runs without autograd recording and keeps only what the backward
reads; the backward is a generated reverse loop over the recurrent chain only: gradients of biases,
x projections and time-parallel ops are collected and formed after the loop with a few large ops;
weight gradients accumulate in place, one ``addmm_`` per source and step into one buffer per source
while the step's tensors are still in cache (1.04x over stacking every step for one matmul after the
loop, the two copies of the stacks cost more than the small matmuls lose).

The generated functions are TorchScript-compatible and run in TorchScript's interpreter (less
dispatch per op than Python; see `_script`), falling back to the same code as Python if TorchScript
rejects it; ``NAS_FUSED_SCRIPT=0`` keeps the Python functions (for A/B timing).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import warnings

import torch

from kernels.activation.expr import TORCH_PRELUDE, generated_module
from kernels.recurrent.codegen import activation_grad, activation_value, names_in, term_grads
from kernels.recurrent.program import CellProgram
from kernels.recurrent.reference import initial_state, output_grads


# single aten backward ops for the common units (one call instead of three: 3 us vs 11.5 us per
# call on [32, 64] float32, measured on the 2-core dev machine)
FAST_BACKWARD = {
    ("tanh", ("x",)): "_aten.tanh_backward({g}, {y})",
    ("sigmoid", ("x",)): "_aten.sigmoid_backward({g}, {y})",
    ("relu", ("x",)): "_aten.threshold_backward({g}, {y}, 0.0)",  # y > 0 exactly where z > 0
}


class _Plan:
    """Static facts about a program the generators need.

    Time-parallel ops (``par``) read only x and other time-parallel ops: they do not depend on the
    recurrent state, so they run for all steps at once before the loop (forward) and after it
    (backward), as ``[T, B, H]`` tensors, and so do the projections of their values.
    """

    def __init__(self, p: CellProgram) -> None:
        self.p = p
        S = p.num_states
        self.groups = p.groups()
        self.group_of_edge = {e: (g, e - first) for g, (_, first, k) in enumerate(self.groups) for e in range(first, first + k)}
        self.group_of_value: dict[int, int] = {src: g for g, (src, _, _) in enumerate(self.groups)}
        self.par: set[int] = set()
        for i, op in enumerate(p.ops):
            if all(self.is_par(t) for t in op.terms):
                self.par.add(i)
        # absorb a chain add-op's time-parallel terms and bias into its first edge from a state
        self.absorbed: dict[int, int] = {}  # op index -> edge
        taken: set[int] = set()
        for i, op in enumerate(p.ops):
            if i in self.par or op.combine != "add" or not (any(self.is_par(t) for t in op.terms) or op.bias >= 0):
                continue
            for t in op.terms:
                if t.kind == "edge" and p.edge_src[t.index] < S and t.index not in taken:
                    self.absorbed[i] = t.index
                    taken.add(t.index)
                    break
        self.absorbing_groups = {self.group_of_edge[e][0] for e in self.absorbed.values()}

    def is_par(self, t) -> bool:
        S = self.p.num_states
        if t.kind == "x":
            return True
        src = self.p.edge_src[t.index] if t.kind == "edge" else t.index
        return src >= S and (src - S) in self.par

    def par_name(self, t) -> str:
        """The all-steps ``[T, B, H]`` tensor of a time-parallel term."""
        return f"X{t.index}" if t.kind == "x" else f"PE{t.index}" if t.kind == "edge" else f"VA{t.index}"

    def step_name(self, t, i: int) -> str:
        """The per-step name of a term of chain op ``i``."""
        if self.is_par(t):
            return f"q{i}_{self.par_name(t)}"
        return f"p{t.index}" if t.kind == "edge" else f"v{t.index}"

    def par_group(self, g: int) -> bool:
        src = self.groups[g][0]
        return src >= self.p.num_states and (src - self.p.num_states) in self.par


def _combine(op, names: list[str], bias: str | None) -> str:
    if op.combine == "add":
        return " + ".join(names + ([bias] if bias else []))
    if op.combine == "mul" and len(names) == 2 and bias:
        return f"torch.addcmul({bias}, {names[0]}, {names[1]})"  # one op for (a * b) + bias
    expr = f" {'*' if op.combine == 'mul' else '-'} ".join(names)
    return f"({expr}) + {bias}" if bias else expr


def _const(value: float, consts: dict[float, str]) -> str:
    """The name of a 0-dim tensor holding ``value`` (made once per call in the prologue, see
    `_const_lines`): ``t * K`` is 1.2 us where ``t * 0.5`` wraps the Python float, 2.4 us."""
    return consts.setdefault(value, f"K{len(consts)}")


def _const_lines(consts: dict[float, str]) -> list[str]:
    return [f"    {name} = xp.new_full((), {value!r})" for value, name in consts.items()]


_HS = "    hs: List[Tensor] = []"  # the forward's line before the loop (prologue lines go above it)


def _fast_tanh(lines: list[str]) -> list[str]:
    """Route a generated function's ``_tanh(u)`` calls to `FAST_UNITS`' ``_tanh_m(M1, u)``, with the
    0-dim ``M1 = -1`` made once at the top of the function."""
    call = re.compile(r"\b_tanh\(")
    if not any(call.search(line) for line in lines):
        return lines
    return [lines[0], "    M1 = xp.new_full((), -1.0)"] + [call.sub("_tanh_m(M1, ", line) for line in lines[1:]]


def _forward_source(plan: _Plan, saved_names: list[str], pre_names: list[str]) -> list[str]:
    p, H, S = plan.p, plan.p.hidden, plan.p.num_states
    L = ["def forward(xp: Tensor, W: Tensor, b: Tensor, h0: Tensor, keep: bool):", "    B, T = xp.shape[0], xp.shape[1]",
         "    saved: List[List[Tensor]] = []",
         "    xpt = xp.transpose(0, 1)"]
    for g, (_, first, k) in enumerate(plan.groups):
        L.append(f"    WT{g} = W[{first}:{first + k}].reshape({k * H}, {H}).t().contiguous()")
    L += [f"    b{n} = b[{n}]" for n in range(p.num_biases)]
    L += [f"    X{k} = xpt[:, :, {k * H}:{(k + 1) * H}]" for k in range(p.num_x)]
    # time-parallel ops, all steps at once
    for i in sorted(plan.par):
        op = p.ops[i]
        names = [plan.par_name(t) for t in op.terms]
        L.append(f"    zA{i} = {_combine(op, names, f'b{op.bias}' if op.bias >= 0 else None)}")
        lines: list[str] = []
        value = activation_value(op.activation, f"zA{i}", lines, f"aA{i}_")
        L += [f"    {line}" for line in lines] + [f"    VA{S + i} = {value}"]
        g = plan.group_of_value.get(S + i)
        if g is not None:
            _, first, k = plan.groups[g]
            L.append(f"    PA{g} = torch.matmul(VA{S + i}, WT{g})")
            L += [f"    PE{e} = PA{g}[:, :, {j * H}:{(j + 1) * H}]" for j, e in enumerate(range(first, first + k))]
    # per chain add-op: the sum of its time-parallel terms and bias, [T, B, H]
    presum: dict[int, str] = {}
    for i, op in enumerate(p.ops):
        if i in plan.par or op.combine != "add":
            continue
        parts = [plan.par_name(t) for t in op.terms if plan.is_par(t)]
        if parts:
            presum[i] = " + ".join(parts + ([f"b{op.bias}"] if op.bias >= 0 else []))
        elif op.bias >= 0:
            presum[i] = f"b{op.bias}.expand(T, B, {H})"
    for g in sorted(plan.absorbing_groups):
        _, first, k = plan.groups[g]
        chunks = []
        for e in range(first, first + k):
            op = next((i for i, ea in plan.absorbed.items() if ea == e), None)
            chunks.append(f"({presum[op]})" if op is not None else f"xp.new_zeros(T, B, {H})")
        L.append(f"    base{g} = torch.cat([{', '.join(chunks)}], -1).contiguous().unbind(0)")
    single: set[str] = set()
    for i, op in enumerate(p.ops):
        if i in plan.par:
            continue
        if i in presum and i not in plan.absorbed:
            L.append(f"    xs{i} = ({presum[i]}).contiguous().unbind(0)")
        if op.combine != "add":
            for t in op.terms:
                if plan.is_par(t) and plan.par_name(t) not in single:
                    single.add(plan.par_name(t))
                    L.append(f"    {plan.par_name(t)}_s = {plan.par_name(t)}.contiguous().unbind(0)")
    L += [f"    v{s} = h0[{s}]" for s in range(S)]
    L += [_HS, "    for t in range(T):"]
    body: list[str] = []
    consts: dict[float, str] = {}

    def project(g: int) -> None:
        src, first, k = plan.groups[g]
        if g in plan.absorbing_groups:
            body.append(f"P{g} = torch.addmm(base{g}[t], v{src}, WT{g})")
        else:
            body.append(f"P{g} = torch.mm(v{src}, WT{g})")  # mm, not @: skips matmul's dispatch
        if k == 1:
            body.append(f"p{first} = P{g}")
        else:
            # unsafe_split: no autograd view bookkeeping (the forward runs under no_grad and never
            # writes to P in place); 1.4 us instead of 2.9 us per call
            body.append(f"{', '.join(f'p{e}' for e in range(first, first + k))} = P{g}.unsafe_split({H}, 1)")

    for g, (src, _, _) in enumerate(plan.groups):
        if src < S:
            project(g)
    for i, op in enumerate(p.ops):
        if i in plan.par:
            continue
        terms = []
        for t in op.terms:
            if plan.is_par(t):
                if op.combine != "add":
                    body.append(f"{plan.step_name(t, i)} = {plan.par_name(t)}_s[t]")
                    terms.append(plan.step_name(t, i))
            else:
                terms.append(plan.step_name(t, i))
        if op.combine == "add":
            if i in presum and i not in plan.absorbed:
                terms.append(f"xs{i}[t]")
            expr = " + ".join(terms)
        else:
            expr = _combine(op, terms, f"b{op.bias}" if op.bias >= 0 else None)
        body.append(f"z{i} = {expr}")
        value = activation_value(op.activation, f"z{i}", body, f"a{i}_")
        body.append(f"v{S + i} = {value}")
        if S + i in plan.group_of_value:
            project(plan.group_of_value[S + i])
    for s, outs in enumerate(p.outputs):
        vals = [f"v{o}" if (o < S or (o - S) not in plan.par) else f"VA{o}_s[t]" for o in outs]
        for o in outs:
            if o >= S and (o - S) in plan.par and f"VA{o}" not in single:
                single.add(f"VA{o}")
                L.insert(L.index(_HS), f"    VA{o}_s = VA{o}.contiguous().unbind(0)")
        if len(vals) == 1:
            body.append(f"n{s} = {vals[0]}")
        elif len(vals) == 2:
            body.append(f"n{s} = torch.lerp({vals[0]}, {vals[1]}, 0.5)")  # the mean, in one op
        else:
            body.append(f"n{s} = ({' + '.join(vals)}) * {_const(1.0 / len(vals), consts)}")
    at = L.index(_HS)
    L[at:at] = _const_lines(consts)
    if saved_names:
        body += ["if keep:", f"    saved.append([{', '.join(saved_names)}])"]
    body += [f"v{s} = n{s}" for s in range(S)]
    body.append("hs.append(v0)")
    L += [f"        {line}" for line in body]
    pre = ", ".join(f"{n!r}: {n}" for n in pre_names)
    L.append(f"    pre: Dict[str, Tensor] = {{{pre}}}")
    L.append(f"    return torch.stack(hs, 1), torch.stack([{', '.join(f'v{s}' for s in range(S))}]), (saved, pre)")
    return _fast_tanh(L)


def _dz_lines(op, dv: str, z: str, y: str, dz: str, lines: list[str], prefix: str) -> bool:
    """Append ``dz = dv * act'(z)``; False if the derivative is identically zero."""
    fast = FAST_BACKWARD.get(op.activation)
    if fast is not None:
        lines.append(f"{dz} = {fast.format(g=dv, y=y, z=z)}")
        return True
    deriv = activation_grad(op.activation, z, y, lines, prefix)
    if deriv is None:
        return False
    lines.append(f"{dz} = {dv}" if deriv == "1" else f"{dz} = {dv} * {deriv}")
    return True


def _backward_source(plan: _Plan) -> tuple[list[str], list[str], list[str]]:
    """Backward code, the per-step forward names it reads, and the all-steps tensors it reads."""
    p, H, S = plan.p, plan.p.hidden, plan.p.num_states
    body: list[str] = []
    grads: set[str] = set()
    consts: dict[float, str] = {}

    def acc(name: str, expr: str, lines: list[str] = body) -> None:
        lines.append(f"{name} = {name} + {expr}" if name in grads else f"{name} = {expr}")
        grads.add(name)

    lists: set[str] = set()  # per-step gradient lists of time-parallel terms, biases, x chunks

    def push(lst: str, expr: str) -> None:
        lists.add(lst)
        body.append(f"{lst}.append({expr})")

    acc("g0", "dhs_s[t] + ds0")
    for s in range(1, S):
        acc(f"g{s}", f"ds{s}")
    for s, outs in enumerate(p.outputs):
        if len(outs) > 1:
            body.append(f"gm{s} = g{s} * {_const(1.0 / len(outs), consts)}")
        for o in outs:
            g = f"g{s}" if len(outs) == 1 else f"gm{s}"
            if o >= S and (o - S) in plan.par:
                push(f"dvx{o}", g)
            else:
                acc(f"dv{o}", g)
    edge_grads: dict[int, str] = {}
    cats: dict[str, str] = {}

    def close_group(g: int) -> None:
        src, first, k = plan.groups[g]
        if all(e not in edge_grads for e in range(first, first + k)):
            return
        chunks = [edge_grads.get(e, f"torch.zeros_like(v{src})") for e in range(first, first + k)]
        expr = chunks[0] if k == 1 else f"torch.cat([{', '.join(chunks)}], 1)"
        if expr in cats:
            body.append(f"dP{g} = {cats[expr]}")
        else:
            body.append(f"dP{g} = {expr}")
            cats[expr] = f"dP{g}"
        body.append(f"dWa{g}.addmm_(dP{g}.t(), v{src})")
        acc(f"dv{src}", f"torch.mm(dP{g}, W{g})")

    def route(t, d: str) -> None:
        """Send a term's gradient where it belongs (per-step lists for time-parallel terms)."""
        if t.kind == "x":
            push(f"dxs{t.index}", d)
        elif plan.is_par(t):
            push(f"dpe{t.index}" if t.kind == "edge" else f"dvx{t.index}", d)
        elif t.kind == "edge":
            edge_grads[t.index] = d
        else:
            acc(f"dv{t.index}", d)

    for i in reversed(range(len(p.ops))):
        if i in plan.par:
            continue
        op, idx = p.ops[i], S + i
        if idx in plan.group_of_value:
            close_group(plan.group_of_value[idx])
        if f"dv{idx}" not in grads or not _dz_lines(op, f"dv{idx}", f"z{i}", f"v{idx}", f"dz{i}", body, f"d{i}_"):
            continue
        if op.bias >= 0:
            push(f"dbs{op.bias}", f"dz{i}")
        names = [plan.step_name(t, i) for t in op.terms]
        for t, d in term_grads(p.ops[i], f"dz{i}", names):
            route(t, d)
    for g, (src, _, _) in enumerate(plan.groups):
        if src < S:
            close_group(g)
    for s in range(S):
        body.append(f"ds{s} = dv{s}" if f"dv{s}" in grads else f"ds{s} = torch.zeros_like(ds{s})")
    step_pattern = re.compile(r"(v|z|p)\d+|q\d+_\w+")
    read = sorted(n for n in names_in(body) if step_pattern.fullmatch(n) and not n.startswith("q"))
    q_names = sorted(n for n in names_in(body) if n.startswith("q") and step_pattern.fullmatch(n))
    L = ["def backward(saved: Tuple[List[List[Tensor]], Dict[str, Tensor]], W: Tensor, b: Tensor, xp: Tensor, "
         "dhs: Tensor, dfinal: Tensor):", "    steps, pre = saved[0], saved[1]", "    B, T = xp.shape[0], xp.shape[1]"]
    for g, (_, first, k) in enumerate(plan.groups):
        L += [f"    W{g} = W[{first}:{first + k}].reshape({k * H}, {H}).contiguous()",
              f"    dWa{g} = W.new_zeros({k * H}, {H})"]
    L += ["    dhs_s = dhs.unbind(1)"] + [f"    {n}: List[Tensor] = []" for n in sorted(lists)]
    L += [f"    ds{s} = dfinal[{s}]" for s in range(S)] + _const_lines(consts)
    single = sorted({n.split("_", 1)[1] for n in q_names})
    for n in single:
        if n.startswith("X"):
            k = int(n[1:])
            L.append(f"    {n}_s = xp[:, :, {k * H}:{(k + 1) * H}].transpose(0, 1).contiguous().unbind(0)")
        else:
            L.append(f"    {n}_s = pre[{n!r}].contiguous().unbind(0)")
    L.append("    for t in range(T - 1, -1, -1):")
    if read:
        L.append("        st = steps[t]")
        L += [f"        {n} = st[{j}]" for j, n in enumerate(read)]
    L += [f"        {q} = {q.split('_', 1)[1]}_s[t]" for q in q_names]
    L += [f"        {line}" for line in body]
    # after the loop: stack the per-step lists (reversed: the loop ran backwards), then the
    # time-parallel ops' backward for all steps at once
    post: list[str] = []
    pre_read: set[str] = set(single)

    def stacked(lst: str) -> str:
        return f"torch.stack({lst}[::-1])"  # [T, B, H]

    DX: dict[int, str] = {}
    DB: dict[int, str] = {}
    DPE: dict[int, str] = {}
    DVX: dict[int, str] = {}
    for lst in sorted(lists):
        kind, index = re.fullmatch(r"(dxs|dbs|dpe|dvx)(\d+)", lst).groups()
        target = {"dxs": DX, "dbs": DB, "dpe": DPE, "dvx": DVX}[kind]
        post.append(f"    A{lst} = {stacked(lst)}")
        target[int(index)] = f"A{lst}"
    for i in sorted(plan.par, reverse=True):
        op, idx = p.ops[i], S + i
        parts = [DVX[idx]] if idx in DVX else []
        g = plan.group_of_value.get(idx)
        if g is not None:
            _, first, k = plan.groups[g]
            if any(e in DPE for e in range(first, first + k)):
                chunks = [DPE.get(e, f"torch.zeros_like(VA{idx})") for e in range(first, first + k)]
                post.append(f"    dPA{g} = {chunks[0] if k == 1 else f'torch.cat([{chr(44).join(chunks)}], -1)'}")
                post.append(f"    dWa{g}.addmm_(dPA{g}.reshape(-1, {k * H}).t(), VA{idx}.reshape(-1, {H}))")
                parts.append(f"torch.matmul(dPA{g}, W{g})")
                pre_read.add(f"VA{idx}")
        if not parts:
            continue
        post.append(f"    dVA{idx} = {' + '.join(parts)}")
        lines: list[str] = []
        if not _dz_lines(op, f"dVA{idx}", f"zA{i}", f"VA{idx}", f"dzA{i}", lines, f"dA{i}_"):
            continue
        post += [f"    {line}" for line in lines]
        pre_read |= {n for n in names_in(lines) if re.fullmatch(r"(zA|VA)\d+", n)}
        if op.bias >= 0:
            DB[op.bias] = f"{DB[op.bias]} + dzA{i}" if op.bias in DB else f"dzA{i}"
        names = [plan.par_name(t) for t in op.terms]
        if op.combine == "mul":
            pre_read |= set(names)
        for t, d in term_grads(op, f"dzA{i}", names):
            target = DX if t.kind == "x" else DPE if t.kind == "edge" else DVX
            key = t.index
            post.append(f"    G{i}_{key}_{t.kind} = {d}")
            target[key] = f"{target[key]} + G{i}_{key}_{t.kind}" if key in target else f"G{i}_{key}_{t.kind}"
    L += post
    if any(n.startswith("X") for n in pre_read):
        L.append("    xpt = xp.transpose(0, 1)")
        L += [f"    {n} = xpt[:, :, {int(n[1:]) * H}:{(int(n[1:]) + 1) * H}]" for n in sorted(pre_read) if n.startswith("X")]
    L += [f"    {n} = pre[{n!r}]" for n in sorted(pre_read) if not n.startswith("X") and not n.endswith("_s")]
    # hoist the pre reads to the top of the function body (after the signature lines)
    hoist = [line for line in L if re.match(r"    (X\d+|xpt|VA\d+|zA\d+|PE\d+) = ", line)]
    L = [line for line in L if line not in hoist]
    L[3:3] = hoist
    dx_parts = [f"({DX[k]}).transpose(0, 1)" if k in DX else f"xp.new_zeros(B, T, {H})" for k in range(p.num_x)]
    L.append(f"    dxp = torch.cat([{', '.join(dx_parts)}], 2)" if dx_parts else "    dxp = xp.new_zeros(B, T, 0)")
    db_parts = [f"({DB[k]}).sum((0, 1))" if k in DB else f"b.new_zeros({H})" for k in range(p.num_biases)]
    L.append(f"    db = torch.stack([{', '.join(db_parts)}])" if db_parts else f"    db = b.new_zeros(0, {H})")
    dws = []
    for g, (_, first, k) in enumerate(plan.groups):
        L.append(f"    dW{g} = dWa{g}.view({k}, {H}, {H})")
        dws.append(f"dW{g}")
    L.append(f"    dW = torch.cat([{', '.join(dws)}])" if dws else "    dW = torch.zeros_like(W)")
    L.append(f"    return dxp, dW, db, torch.stack([{', '.join(f'ds{s}' for s in range(S))}])")
    pre_names = sorted(n for n in pre_read if not n.startswith("X"))
    return _fast_tanh(L), read, pre_names


# units faster than their torch op on CPU (the generated code runs under no_grad; the backward reads
# only the saved value y, so any correct form of the value serves), and the names the annotations use
FAST_UNITS = """
from typing import Dict, List, Tuple

from torch import Tensor


def _tanh_m(m1: Tensor, u: Tensor) -> Tensor:
    # 2 sigmoid(2u) - 1 with m1 = -1 (abs. error ~1e-16 in float64): 3.8 us instead of 5.4 us on
    # [32, 64] float32, 27 us instead of 142 us on [32, 32, 64] (torch's CPU tanh is slower than
    # its sigmoid); u + u is a fresh tensor, so its sigmoid runs in place
    return torch.add(m1, (u + u).sigmoid_(), alpha=2)
"""

PRELUDE = "\n".join([TORCH_PRELUDE, "_aten = torch.ops.aten", FAST_UNITS])
SCRIPT = os.environ.get("NAS_FUSED_SCRIPT", "1") != "0"  # 0: run the generated Python (A/B timing)


@functools.lru_cache(maxsize=1)
def _prelude() -> dict:
    """The helpers the generated functions call, imported once from a real file (TorchScript
    compiles called Python functions from their source)."""
    return vars(generated_module(PRELUDE, "recurrent_prelude", {}))


def _script(fns: dict, code: str) -> str | None:
    """Replace ``fns``' forward/backward by TorchScript compilations of ``code``; the error text if
    that fails (the Python functions then stay: same code, same numbers).

    TorchScript's interpreter runs the generated straight-line code with ~0.4 us less dispatch per op
    than Python (about 1.15x on the benchmark's cells, forward + backward). The functions run with
    graph optimisation off: the interpreter is the whole gain, and the profiling executor would
    spend ~20 ms on each of a program's first two calls (hypernetwork training meets a new program
    every step). Each program gets its own CompilationUnit, freed with its `compiled` entry
    (``torch.jit.script`` would keep every program's functions in the global unit). TorchScript is
    deprecated in torch 2.13; where it goes away, the fallback applies.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            unit = torch.jit.CompilationUnit()
            unit.define(code, rcb=_prelude().get)
    except Exception as exc:  # noqa: BLE001 - any scripting failure falls back to Python
        return f"{type(exc).__name__}: {exc}"
    fns.update(forward=_unoptimised(unit.forward), backward=_unoptimised(unit.backward), unit=unit)
    return None


def _unoptimised(fn):
    def call(*args):
        with torch.jit.optimized_execution(False):
            return fn(*args)

    return call


@functools.lru_cache(maxsize=32)  # a TorchScript unit holds ~1.4 MB: at most ~45 MB
def compiled(program: CellProgram) -> dict:
    """Generate the forward/backward functions of a program and compile them with TorchScript
    (memoised). Keys: ``forward``, ``backward``, ``python`` (the same two as plain Python),
    ``source``, ``script_error`` (None when TorchScript runs them)."""
    plan = _Plan(program)
    bwd, read, pre_names = _backward_source(plan)
    fwd = _forward_source(plan, read, pre_names)
    code = "\n".join([*fwd, "", *bwd, ""])
    namespace = dict(_prelude())
    exec(compile(code, f"<recurrent {hashlib.sha256(program.key().encode()).hexdigest()[:16]}>", "exec"), namespace)
    fns: dict = {"forward": namespace["forward"], "backward": namespace["backward"], "source": f"{PRELUDE}\n{code}"}
    fns["python"] = (fns["forward"], fns["backward"])
    fns["script_error"] = _script(fns, code) if SCRIPT else "disabled"
    return fns


class FusedRecurrentFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, program, xproj, weights, biases, initial):
        fns = compiled(program)
        keep = any(ctx.needs_input_grad)
        with torch.no_grad():
            hs, final, saved = fns["forward"](xproj, weights, biases, initial, keep)
        ctx.program, ctx.saved_steps = program, saved
        ctx.save_for_backward(xproj, weights, biases)
        return hs, final

    @staticmethod
    def backward(ctx, dhs, dfinal):
        xproj, weights, biases = ctx.saved_tensors
        fns = compiled(ctx.program)
        dhs, dfinal = output_grads(ctx.program, xproj, dhs, dfinal)
        with torch.no_grad():
            dxp, dW, db, dh0 = fns["backward"](ctx.saved_steps, weights, biases, xproj, dhs, dfinal)
        return None, dxp, dW, db, dh0


def recurrent(
    program: CellProgram,
    xproj: torch.Tensor,
    weights: torch.Tensor,
    biases: torch.Tensor,
    initial: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as `kernels.recurrent.reference.recurrent`, generated and fused."""
    initial = initial_state(program, xproj, weights, biases, initial)
    return FusedRecurrentFunction.apply(program, xproj.contiguous(), weights, biases, initial)
