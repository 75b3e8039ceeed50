"""CPU training throughput of recurrent cells: our path against torch.nn.LSTM and two eager loops.

Prints two tables (sequences per second, forward + backward, best of interleaved repeats, timed by
this process's CPU time by default so that other processes on a shared machine do not skew the
ratios; ``--clock wall`` for wall time) and writes JSON with every sample.

LSTM table (time relative to torch.nn.LSTM, target <= 1.5x):

* ``torch.nn.LSTM``: the baseline (oneDNN on CPU).
* ``lstm Spec, our path``: an LSTM expressed as a Spec through `CellModule.forward` (recognised as an
  exact LSTM, so it runs on torch's fused LSTM op).
* ``lstm Spec, generated``: the same Spec through the general path for searched cells (no library
  shortcut; the C++ engine where it builds), what any LSTM variant with a searched activation or a
  changed gate gets.

Random-cell table: cells sampled from the recurrent-cell space, `CellModule.forward` (our path: the
C++ engine `kernels.recurrent.native`, or the TorchScript path where no compiler builds it), the
TorchScript path itself (``torchscript``: `kernels.recurrent.fused`, the previous CPU path, for the
A/B), and two eager baselines, both differentiated by autograd:

* ``naive per-edge``: `naive_per_edge_loop`, the cell as a user writes it: one ``F.linear`` per edge
  per step (x edges on ``x_t``), masks applied once before the loop. The issue's target (>= 3x) is
  the speed-up over this one.
* ``grouped loop``: `CellModule.forward_reference`, the input projections of all steps in one matmul
  and one matmul per source per step (fewer matmuls, but a dict-and-split walk per step).

In the C++ engine most of the time is BLAS matmul work every path shares (forward, recurrent input
gradients and weight gradients of every edge; ``perf`` puts MKL's sgemm at about half of a training
step at the defaults); the naive loop's extra cost is per-op dispatch and autograd, the TorchScript
path's one small eager op per node and step.

Language-model table (tokens per second, forward + backward): a training step of truncated BPTT,
``--lm-bptt`` steps (default 128) of ``--batch`` streams with the state carried in from the previous
step (detached) and out, input size = hidden size (the embedding's), on an LSTM Spec through the C++
engine (``lstm Spec, C++ engine``: `cell_sequence` without the library shortcut) against
``torch.nn.LSTM`` at the same size given the same carried state; the ratio is engine / torch.

Run: ``python benchmarks/cells_cpu.py [--batch 32 --seq 32 --hidden 64 --threads 1 --lm-bptt 128]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kernels.recurrent import cell_sequence, fused, native, reference  # noqa: E402
from search_spaces import get_space  # noqa: E402
from search_spaces.build import CellModule  # noqa: E402
from search_spaces.cells import lstm  # noqa: E402


def naive_per_edge_loop(cell: CellModule, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The searched cell the way a user writes it by hand: a per-step eager loop of small ops.

    Walks the cell's lowered program: one ``F.linear`` per linear edge per step (edges from ``x``
    too, on ``x_t`` at each step), the op's combine, bias and activation, then the mean of the
    state's output values; the sparsity masks are applied once before the loop; autograd does the
    backward. Same numerics as
    `CellModule.forward` (checked in tests/kernels/test_cells_cpu.py). The baseline the issue's
    ">= 3x" target is measured against; `CellModule.forward_reference` is a stronger one (input
    projections of all steps in one matmul, one matmul per source per step).
    """
    program, H = cell.program, cell.hidden_size
    wx, weights, biases = cell.kernel_params()  # masks applied
    x_weight, edge_weight = wx.split(H), weights.unbind(0)  # one matrix per edge, [H, input] / [H, H]
    state = [x.new_zeros(x.shape[0], H) for _ in range(program.num_states)]
    hs = []
    for t in range(x.shape[1]):
        values = list(state)
        for op, act in zip(program.ops, cell.acts):
            terms = []
            for term in op.terms:
                if term.kind == "x":
                    terms.append(F.linear(x[:, t], x_weight[term.index]))
                elif term.kind == "edge":
                    terms.append(F.linear(values[program.edge_src[term.index]], edge_weight[term.index]))
                else:
                    terms.append(values[term.index])
            values.append(act(reference.combine(op, terms, biases)))
        state = reference.new_state(program, values)
        hs.append(state[0])
    return torch.stack(hs, dim=1), dict(zip(cell.states, state))

def throughput(step: Callable[[], None], batch: int, repeats: int, warmup: int = 2) -> list[tuple[float, float]]:
    """(sequences per second of wall time, of this process's CPU time) for each repeat."""
    for _ in range(warmup):
        step()
    out = []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        out.append((batch / (time.perf_counter() - wall), batch / max(time.process_time() - cpu, 1e-9)))
    return out


def train_step(forward: Callable[[torch.Tensor], torch.Tensor], params: list[torch.Tensor], x: torch.Tensor):
    def step() -> None:
        for p in params:
            p.grad = None
        forward(x).sum().backward()

    return step


def stateful_steps(B: int, T: int, H: int) -> dict[str, Callable[[], None]]:
    """Truncated-BPTT training steps over ``T`` tokens of ``B`` streams, the state carried (detached)
    from step to step: torch.nn.LSTM, and an LSTM Spec on the C++ engine (no library shortcut)."""
    x = torch.randn(B, T, H)
    ref = torch.nn.LSTM(H, H, batch_first=True)
    cell = CellModule(lstm(H), H)
    carried: dict[str, tuple[torch.Tensor, ...]] = {"torch": (torch.zeros(1, B, H), torch.zeros(1, B, H)),
                                                    "engine": (torch.zeros(2, B, H),)}

    def torch_step() -> None:
        ref.zero_grad(set_to_none=True)
        out, (h, c) = ref(x, carried["torch"])
        out.sum().backward()
        carried["torch"] = (h.detach(), c.detach())

    def engine_step() -> None:
        cell.zero_grad(set_to_none=True)
        wx, w, b = cell.kernel_params()
        hs, final = cell_sequence(cell.program, x, wx, w, b, carried["engine"][0], library=False)
        hs.sum().backward()
        carried["engine"] = (final.detach(),)

    return {"lm: torch.nn.LSTM": torch_step, "lm: lstm Spec, C++ engine": engine_step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=32)
    parser.add_argument("--input", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--cells", type=int, default=4, help="random searched cells")
    parser.add_argument("--nodes", type=int, default=6, help="nodes per random cell")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lm-bptt", type=int, default=128, help="steps per truncated-BPTT window (LM table)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="time by this process's CPU time (robust on a shared machine) or wall time")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "cells_cpu.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    B, T, I, H = args.batch, args.seq, args.input, args.hidden
    x = torch.randn(B, T, I)

    steps: dict[str, Callable[[], None]] = {}
    ref = torch.nn.LSTM(I, H, batch_first=True)
    steps["torch.nn.LSTM"] = train_step(lambda x: ref(x)[0], list(ref.parameters()), x)
    cell = CellModule(lstm(H), I)
    steps["lstm Spec, our path"] = train_step(lambda x: cell(x)[0], list(cell.parameters()), x)

    def generated(x: torch.Tensor) -> torch.Tensor:
        wx, w, b = cell.kernel_params()
        return cell_sequence(cell.program, x, wx, w, b, library=False)[0]

    steps["lstm Spec, generated"] = train_step(generated, list(cell.parameters()), x)
    space = get_space("recurrent_cell", num_nodes=args.nodes, hidden_sizes=(H,))
    rng = np.random.default_rng(args.seed)
    lm_steps = stateful_steps(B, args.lm_bptt, H)
    steps.update(lm_steps)
    cells = []  # (our path, naive per-edge loop, grouped loop, torchscript path, spec)

    def torchscript(rc: CellModule, x: torch.Tensor) -> torch.Tensor:
        wx, w, b = rc.kernel_params()
        return fused.recurrent(rc.program, x @ wx.t(), w, b)[0]

    for k in range(args.cells):
        rc = CellModule(space.sample(rng), I, seed=k)
        names = (f"random cell {k}, our path", f"random cell {k}, naive per-edge", f"random cell {k}, grouped loop",
                 f"random cell {k}, torchscript")
        params = list(rc.parameters())
        steps[names[0]] = train_step(lambda x, rc=rc: rc(x)[0], params, x)
        steps[names[1]] = train_step(lambda x, rc=rc: naive_per_edge_loop(rc, x)[0], params, x)
        steps[names[2]] = train_step(lambda x, rc=rc: rc.forward_reference(x)[0], params, x)
        steps[names[3]] = train_step(lambda x, rc=rc: torchscript(rc, x), params, x)
        cells.append((*names, repr(rc.spec)))

    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
    for _ in range(args.repeats):  # interleave, so load from other processes hits every row alike
        for name, step in steps.items():
            items = B * args.lm_bptt if name in lm_steps else B  # tokens for the LM rows, else sequences
            samples[name] += throughput(step, items, repeats=1, warmup=0 if samples[name] else 2)
    # best of the repeats, by CPU time (default) or wall time: the dev machine is shared, and other
    # processes only ever slow a run down; with one thread CPU time is the compute we spent
    which = 1 if args.clock == "cpu" else 0
    med = {name: max(v[which] for v in vals) for name, vals in samples.items()}
    medians = {name: statistics.median(v[which] for v in vals) for name, vals in samples.items()}

    lstm_ratio = {k: med["torch.nn.LSTM"] / med[f"lstm Spec, {k}"] for k in ("our path", "generated")}
    print(f"CPU training throughput (forward + backward), B={B} T={T} input={I} hidden={H}, "
          f"{args.threads} thread(s), {os.cpu_count()}-core {platform.machine()}, torch {torch.__version__}, "
          f"best of {args.repeats} by {args.clock} time")
    print("LSTM: time relative to torch.nn.LSTM (target <= 1.5x)")
    print(f"  {'row':32s} {'seq/s':>9s} {'time ratio':>11s}")
    print(f"  {'torch.nn.LSTM':32s} {med['torch.nn.LSTM']:9.1f} {1.0:10.2f}x")
    for k, r in lstm_ratio.items():
        print(f"  {'lstm Spec, ' + k:32s} {med['lstm Spec, ' + k]:9.1f} {r:10.2f}x")
    print("random searched cells: seq/s; speed-up of our path over each baseline (target >= 3x over naive per-edge)")
    print("  naive per-edge = one F.linear per edge per step (x edges on x_t), autograd backward;")
    print("  grouped loop   = CellModule.forward_reference (all x projections in one matmul, one matmul per source per step)")
    engine = "C++ engine" if native.available() else f"TorchScript (C++ engine unavailable: {native.build_error()})"
    print(f"  our path = CellModule.forward on the {engine}; torchscript = kernels.recurrent.fused")
    print(f"  {'cell':14s} {'our path':>9s} {'naive per-edge':>15s} {'grouped loop':>13s} {'torchscript':>12s} "
          f"{'vs per-edge':>12s} {'vs grouped':>11s} {'vs torchscript':>15s}")
    speedups: dict[str, list[float]] = {"naive_per_edge": [], "grouped_loop": [], "torchscript": []}
    for k, (fast, per_edge, grouped, script, _) in enumerate(cells):
        speedups["naive_per_edge"].append(med[fast] / med[per_edge])
        speedups["grouped_loop"].append(med[fast] / med[grouped])
        speedups["torchscript"].append(med[fast] / med[script])
        print(f"  {'random cell ' + str(k):14s} {med[fast]:9.1f} {med[per_edge]:15.1f} {med[grouped]:13.1f} "
              f"{med[script]:12.1f} {speedups['naive_per_edge'][-1]:11.2f}x {speedups['grouped_loop'][-1]:10.2f}x "
              f"{speedups['torchscript'][-1]:14.2f}x")
    geo = {k: float(np.exp(np.mean(np.log(v)))) if v else float("nan") for k, v in speedups.items()}
    print(f"  {'geometric mean':14s} {'':9s} {'':15s} {'':13s} {'':12s} {geo['naive_per_edge']:11.2f}x "
          f"{geo['grouped_loop']:10.2f}x {geo['torchscript']:14.2f}x")
    print(f"random cells: our path {geo['naive_per_edge']:.2f}x the naive per-edge loop (target >= 3x), "
          f"{geo['grouped_loop']:.2f}x the grouped loop, {geo['torchscript']:.2f}x the TorchScript path; "
          "lstm Spec our path / generated: "
          f"{lstm_ratio['our path']:.2f}x / {lstm_ratio['generated']:.2f}x the time of torch.nn.LSTM (target <= 1.5x)")
    lm_torch, lm_engine = med["lm: torch.nn.LSTM"], med["lm: lstm Spec, C++ engine"]
    engine_row = "C++ engine" if native.available() else "TorchScript path (no C++ engine)"
    print(f"language model: training tokens/s (forward + backward), bptt {args.lm_bptt}, {B} streams, state carried, "
          f"input = hidden = {H}")
    print(f"  {'torch.nn.LSTM':32s} {lm_torch:11.0f} tokens/s")
    print(f"  {'lstm Spec, ' + engine_row:32s} {lm_engine:11.0f} tokens/s   {lm_engine / lm_torch:.2f}x torch.nn.LSTM's throughput")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"config": vars(args), "torch": torch.__version__, "best_seq_per_s": med, "median_seq_per_s": medians, "clock": args.clock, "samples": samples,
                   "engine": engine,
                   "random_cells": [{"spec": c[4], "speedup_over_naive_per_edge": a, "speedup_over_grouped_loop": g,
                                     "speedup_over_torchscript": ts}
                                    for c, a, g, ts in zip(cells, speedups["naive_per_edge"], speedups["grouped_loop"],
                                                           speedups["torchscript"])],
                   "random_geomean_speedup": geo,
                   "lm_tokens_per_s": {"torch_lstm": lm_torch, "lstm_spec_engine": lm_engine,
                                       "engine_over_torch": lm_engine / lm_torch, "bptt": args.lm_bptt},
                   "lstm_time_ratio": {"our_path": lstm_ratio["our path"], "generated": lstm_ratio["generated"]}},
                  f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
