"""SAFS on real data: does learning the activation help a sparse recurrent cell?

"Learning Activation Functions for Sparse Neural Networks" (SAFS, Loni et al., 2023) searches the
activation together with the sparsity and reports that sparse networks gain more from a learned
activation than dense ones. This reproduces the question on digits-seq with the joint space of
``configs/safs_search.yaml`` (a GRU, hidden 32: the new gate's tanh becomes binary(unary(x), unary(x)),
and each matrix gets a density 1 to 1/8 and a pattern):

1. **Search**: multi-objective TPE on (validation accuracy up, MACs down), one seed (0) per trial,
   unsafe functions rejected untrained, equivalent cells not retrained
   (`sparsity_search.search`, the loop of the sparsity benchmark).
2. **Confirmation** over seeds 1..N of the ``--top`` best sparse cells (overall density <= 50%,
   activation not equal to tanh), each three ways, against the dense tanh GRU:
   - *learned*: the cell as found (its sparsity and its activation);
   - *tanh*: the same sparsity with the default tanh (sparsity alone);
   - *dense+act*: the found activation in the dense cell (is the gain specific to sparse cells?).

The table gives mean ± std of the best-epoch validation accuracy and the test accuracy at that epoch,
and for each cell the learned-vs-tanh gap with two standard errors.

Run: ``python benchmarks/safs_search.py [--seeds 4 --trials 50 --top 3 --workers 2]``.
Writes ``benchmarks/results/safs_search.json``; ``--show`` prints its tables again without training.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _shared import add_common_args, describe, jobs_for, label, print_lines, search, setup, show_last  # noqa: E402
from nas.seed_runs import STATS_HEADER, format_stats, run_jobs, summarize, verdict  # noqa: E402

from search_spaces.activations import probe_signature  # noqa: E402
from search_spaces.safs_space import JointSpace  # noqa: E402
from search_spaces.sparsity_space import overall_density  # noqa: E402
from search_spaces.spec import Spec  # noqa: E402

VARIANTS = ("learned", "tanh", "dense+act")


def variants(space: JointSpace, params: dict[str, Any]) -> dict[str, Spec]:
    """The found cell, the same sparsity with tanh, and the found activation in the dense cell."""
    dense = space.sparsity_space.uniform_params(1.0)
    return {"learned": space.decode(params), "tanh": space.sparsity_space.decode(params),
            "dense+act": space.decode({**params, **dense})}


def pick_top(space: JointSpace, trials: list[dict[str, Any]], top: int, max_density: float = 0.5) -> list[dict[str, Any]]:
    """The ``top`` best trials (seed-0 accuracy) at <= ``max_density`` whose activation is not tanh."""
    tanh = probe_signature(space.replace)
    rows = [t for t in trials if t["density"] <= max_density + 1e-9
            and probe_signature(space.expression(t["params"])) != tanh]
    return sorted(rows, key=lambda t: (-t["score"], t["macs"]))[:top]


def print_tables(table: list[dict[str, Any]], seeds: int) -> list[str]:
    """The table (dense tanh baseline, then each top cell three ways) and the learned-vs-tanh lines."""
    print(f"\ndigits-seq, GRU h32: best-epoch validation / test accuracy, mean ± std over the same {seeds} seeds "
          "(B: baseline; learned: found cell; tanh: its sparsity alone; dense+act: its activation alone)")
    print(f"{'':2} {'name':15} {'MACs':>7} {'density':>7} {STATS_HEADER}  activation | cell")
    for r in table:
        tag = "B" if r["variant"] == "baseline" else "*" if r["variant"] == "learned" else ""
        print(f"{tag:2} {r['name']:15} {r['macs']:>7,} {r['density']:>7.3f} {format_stats(r)}  "
              f"{label(r['activation'])} | {r['cell']}")
    dense = next(r for r in table if r["variant"] == "baseline")
    lines = []
    for r in (r for r in table if r["variant"] == "learned"):
        alone = next(o for o in table if o["cell_id"] == r["cell_id"] and o["variant"] == "tanh")
        act = next(o for o in table if o["cell_id"] == r["cell_id"] and o["variant"] == "dense+act")
        gap, noise, word = verdict(r, alone)
        dgap, dnoise, dword = verdict(act, dense)
        lines.append(f"{r['cell_id']}: learned {word} tanh at the same sparsity ({gap * 100:+.2f} points, "
                     f"2 s.e. {noise * 100:.2f}); in the dense cell the activation {dword} tanh "
                     f"({dgap * 100:+.2f}, 2 s.e. {dnoise * 100:.2f}); vs dense tanh "
                     f"{(r['val_mean'] - dense['val_mean']) * 100:+.2f} points at {r['macs'] / dense['macs']:.0%} of its MACs")
    if lines:
        gaps = [(r["val_mean"] - o["val_mean"]) * 100 for r in table if r["variant"] == "learned"
                for o in table if o["cell_id"] == r["cell_id"] and o["variant"] == "tanh"]
        dense_gaps = [(o["val_mean"] - dense["val_mean"]) * 100 for o in table if o["variant"] == "dense+act"]
        lines.append(f"mean gain of the learned activation over tanh: {sum(gaps) / len(gaps):+.2f} points in the "
                     f"sparse cells, {sum(dense_gaps) / len(dense_gaps):+.2f} in the dense cell")
    return print_lines(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's train.epochs")
    parser.add_argument("--top", type=int, default=3, help="sparse cells to confirm three ways")
    add_common_args(parser, "safs_search", seeds=4, trials=50)
    args = parser.parse_args()
    if show_last(args, print_tables):
        return
    start = time.perf_counter()
    config, space, task, train = setup(args)
    args.epochs = args.epochs or config.train.epochs

    print(f"search: {args.trials} distinct cells of the joint space, multi-objective TPE, seed 0, "
          f"{args.epochs} epochs", flush=True)
    trials = search(space, task, args, train, warm=[])
    top = pick_top(space, trials, args.top)
    specs: dict[str, tuple[str, str, str, Spec]] = {"dense tanh": (
        "baseline", "-", space.replace, space.sparsity_space.decode(space.sparsity_space.uniform_params(1.0)))}
    for i, t in enumerate(top):
        for variant, spec in variants(space, t["params"]).items():
            activation = space.replace if variant == "tanh" else space.expression(t["params"])
            specs[f"cell{i + 1} {variant}"] = (variant, f"cell{i + 1}", activation, spec)
    seeds = range(1, args.seeds + 1)
    print(f"confirm: dense tanh + {len(top)} cells x {len(VARIANTS)} variants x {args.seeds} seeds", flush=True)
    runs = run_jobs([j for name, (*_, spec) in specs.items() for j in jobs_for(spec, name, seeds, args, train)],
                    args.workers)
    table = [{"name": name, "variant": variant, "cell_id": cell_id, "activation": activation,
              "macs": space.cost(spec, task)["macs"], "density": overall_density(spec, task.input_size),
              "cell": describe(spec, task.input_size), **summarize(r for r in runs if r["name"] == name)}
             for name, (variant, cell_id, activation, spec) in specs.items()]
    lines = print_tables(table, args.seeds)
    elapsed = time.perf_counter() - start
    print(f"total {elapsed:.0f} s on {os.cpu_count()} CPUs, {args.workers} workers x 1 thread "
          f"({len(trials) + len(runs)} trainings)")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"args": vars(args), "seconds": elapsed, "table": table, "search": trials, "runs": runs,
                   "verdicts": lines}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
