"""Exact LSTM and GRU cells: torch's fused RNN ops against our C++ engine, at the shapes searches train.

A cell that lowers to exactly our LSTM or GRU (`CellProgram.library`; the baselines of every search,
and found cells equal to them) can run on ``torch.lstm``/``torch.gru`` or on the C++ engine that runs
every other cell. `kernels.recurrent.cell_sequence` picks per cell and size (`prefer_library`); this
measures both for each shape and prints which is faster, so that rule is a measured one.

Rows: a training step (forward + backward of ``hs.sum()``, gradients of every weight) at the shapes of
the shipped configs -- digits-seq (quickstart: 8 rows of 8 pixels, batch 64), BasicMotions (100 steps
of 6 channels, batch 16) and the character language model (bptt 64, 32 streams, input = hidden, the
embedding's) -- best of ``--repeats`` interleaved repeats, timed by this process's CPU time (``--clock
wall`` for wall time), one thread as each trial runs.

    python benchmarks/library_path.py [--repeats 7] [--threads 1]

Writes ``benchmarks/results/library_path.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kernels.recurrent import cell_sequence, native, prefer_library  # noqa: E402
from cells_cpu import throughput  # noqa: E402  (the same timing as the cell throughput benchmark)
from kernels.recurrent.library import LIBRARY  # noqa: E402
from search_spaces.build import CellModule  # noqa: E402
from search_spaces.cells import named_cell  # noqa: E402

# (task, batch, steps, input, hidden sizes): the shapes the shipped configs train
SHAPES = [
    ("digits-seq", 64, 8, 8, (16, 32, 48)),
    ("BasicMotions", 16, 100, 6, (8, 16, 32)),
    ("charlm", 32, 64, None, (64, 128)),  # input = hidden (the embedding)
]


def step_fn(cell: CellModule, x: torch.Tensor, library: bool):
    """One training step of ``cell`` over ``x``, on torch's op (``library``) or the engine."""
    program = cell.program
    initial = x.new_zeros(program.num_states, x.shape[0], program.hidden)

    def step() -> None:
        cell.zero_grad(set_to_none=True)
        wx, w, b = cell.kernel_params()
        if library:
            hs, _ = LIBRARY[program.library](x, wx, w, b, initial)
        else:
            hs, _ = cell_sequence(program, x, wx, w, b, initial, library=False)
        hs.sum().backward()

    return step


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "library_path.json")
    args = ap.parse_args(argv)
    if not native.available():
        sys.exit(f"the C++ engine does not build here ({native.build_error()}): nothing to compare")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    which = 1 if args.clock == "cpu" else 0  # cells_cpu.throughput gives (wall, CPU) rates
    rows = []
    for task, batch, steps, inputs, hiddens in SHAPES:
        for hidden in hiddens:
            for name in ("lstm", "gru"):
                size = inputs or hidden
                cell = CellModule(named_cell(name, hidden), size)
                assert cell.program.library == name
                x = torch.randn(batch, steps, size)
                fns = {lib: step_fn(cell, x, lib) for lib in (True, False)}
                rates: dict[bool, list[float]] = {True: [], False: []}  # steps per second
                for _ in range(args.repeats):  # interleaved: load from other processes hits both alike
                    for lib, fn in fns.items():
                        rates[lib] += [r[which] for r in throughput(fn, 1, repeats=1, warmup=0 if rates[lib] else 2)]
                lib_s, eng_s = 1.0 / max(rates[True]), 1.0 / max(rates[False])
                rows.append({"task": task, "cell": name, "batch": batch, "steps": steps, "input": size,
                             "hidden": hidden, "library_ms": 1e3 * lib_s, "engine_ms": 1e3 * eng_s,
                             "library_over_engine": lib_s / eng_s,
                             "dispatch": "library" if prefer_library(cell.program, x) else "engine"})
    print(f"training step (forward + backward), ms, best of {args.repeats} by {args.clock} time, "
          f"{args.threads} thread(s), {os.cpu_count()}-core {platform.machine()}, torch {torch.__version__}")
    head = f"{'task':<13}{'cell':<6}{'B':>4}{'T':>5}{'in':>5}{'H':>5}{'torch op':>10}{'engine':>9}{'op / engine':>13}  dispatch"
    print(head)
    print("-" * len(head))
    for r in rows:
        faster = "library" if r["library_ms"] < r["engine_ms"] else "engine"
        mark = "" if faster == r["dispatch"] else f"  (faster: {faster})"
        print(f"{r['task']:<13}{r['cell']:<6}{r['batch']:>4}{r['steps']:>5}{r['input']:>5}{r['hidden']:>5}"
              f"{r['library_ms']:>10.2f}{r['engine_ms']:>9.2f}{r['library_over_engine']:>12.2f}x  {r['dispatch']}{mark}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "torch": torch.__version__,
                                    "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
