"""CPU training throughput of recurrent cells: our path against torch.nn.LSTM and the naive loop.

Prints one table (sequences per second, forward + backward, best of interleaved repeats, timed by
this process's CPU time by default so that other processes on a shared machine do not skew the
ratios; ``--clock wall`` for wall time) and writes JSON with every sample. Rows:

* ``torch.nn.LSTM``: the baseline (oneDNN on CPU).
* ``lstm Spec, our path``: an LSTM expressed as a Spec through `CellModule.forward` (recognised as an
  exact LSTM, so it runs on torch's fused LSTM op).
* ``lstm Spec, generated``: the same Spec through the generated fused path (no library shortcut),
  what any LSTM variant with a searched activation or a changed gate gets.
* ``random cell k``: cells sampled from the recurrent-cell space, `CellModule.forward` against
  `CellModule.forward_reference` (the naive eager per-step loop).

Run: ``python benchmarks/cells_cpu.py [--batch 32 --seq 32 --hidden 64 --threads 1]``.
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

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kernels.recurrent import cell_sequence  # noqa: E402
from search_spaces import get_space  # noqa: E402
from search_spaces.build import CellModule  # noqa: E402
from search_spaces.cells import lstm  # noqa: E402


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
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="time by this process's CPU time (robust on a shared machine) or wall time")
    parser.add_argument("--out", default=os.path.join("runs", "benchmarks", "cells_cpu.json"))
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
    pairs = []
    for k in range(args.cells):
        rc = CellModule(space.sample(rng), I, seed=k)
        fast, naive = f"random cell {k}, our path", f"random cell {k}, naive loop"
        steps[fast] = train_step(lambda x, rc=rc: rc(x)[0], list(rc.parameters()), x)
        steps[naive] = train_step(lambda x, rc=rc: rc.forward_reference(x)[0], list(rc.parameters()), x)
        pairs.append((fast, naive, repr(rc.spec)))

    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
    for _ in range(args.repeats):  # interleave, so load from other processes hits every row alike
        for name, step in steps.items():
            samples[name] += throughput(step, B, repeats=1, warmup=0 if samples[name] else 2)
    # best of the repeats, by CPU time (default) or wall time: the dev machine is shared, and other
    # processes only ever slow a run down; with one thread CPU time is the compute we spent
    which = 1 if args.clock == "cpu" else 0
    med = {name: max(v[which] for v in vals) for name, vals in samples.items()}
    medians = {name: statistics.median(v[which] for v in vals) for name, vals in samples.items()}

    rows = [
        ("torch.nn.LSTM", med["torch.nn.LSTM"], "baseline", 1.0),
        ("lstm Spec, our path", med["lstm Spec, our path"], "torch.nn.LSTM",
         med["torch.nn.LSTM"] / med["lstm Spec, our path"]),
        ("lstm Spec, generated", med["lstm Spec, generated"], "torch.nn.LSTM",
         med["torch.nn.LSTM"] / med["lstm Spec, generated"]),
    ]
    speedups = []
    for fast, naive, _ in pairs:
        speedups.append(med[fast] / med[naive])
        rows.append((naive, med[naive], "", None))
        rows.append((fast, med[fast], "naive loop", med[fast] / med[naive]))
    print(f"CPU training throughput (forward + backward), B={B} T={T} input={I} hidden={H}, "
          f"{args.threads} thread(s), {os.cpu_count()}-core {platform.machine()}, torch {torch.__version__}, "
          f"best of {args.repeats} by {args.clock} time")
    print(f"{'row':34s} {'seq/s':>10s}  {'compared with':14s} {'ratio':>7s}")
    for name, value, against, ratio in rows:
        shown = "" if ratio is None else (f"{ratio:6.2f}x" if against != "torch.nn.LSTM" else f"{ratio:6.2f}x slower")
        print(f"{name:34s} {value:10.1f}  {against:14s} {shown}")
    geo = float(np.exp(np.mean(np.log(speedups)))) if speedups else float("nan")
    print(f"random cells: geometric-mean speed-up over the naive loop {geo:.2f}x (target >= 3x); "
          f"lstm Spec our path / generated: {rows[1][3]:.2f}x / {rows[2][3]:.2f}x the time of torch.nn.LSTM "
          f"(target <= 1.5x)")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"config": vars(args), "torch": torch.__version__, "best_seq_per_s": med, "median_seq_per_s": medians, "clock": args.clock, "samples": samples,
                   "random_cells": [{"spec": s, "speedup": sp} for (_, _, s), sp in zip(pairs, speedups)],
                   "random_geomean_speedup": geo, "lstm_time_ratio": {"our_path": rows[1][3], "generated": rows[2][3]}},
                  f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
