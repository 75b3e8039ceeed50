"""Sparse recurrent cells on real data: the searched accuracy-vs-MACs front against the dense GRU and
uniform magnitude pruning, all trained in the same run.

Reproduces the comparison of "Investigating Sparsity in Recurrent Neural Networks" (Narang et al.,
2017) on digits-seq with the space of ``configs/sparsity_search.yaml``: a GRU whose six matrices each
get a density (1 to 1/16) and a pattern (magnitude pruning with retraining, random, block, N:M,
random-graph topologies), and whose hidden size (32/40/48/64) is searched too.

1. **Baselines**: the dense GRU (hidden 32) and uniform gradual magnitude pruning of all its matrices
   to 50%, 25%, 12.5% and 6.25%, over seeds 1..N.
2. **Search**: multi-objective TPE on (validation accuracy up, MACs down), one seed (0) per trial,
   started from a few uniform points of the larger cells; duplicates (equal hash) are not retrained.
3. **Confirmation**: the search's Pareto front (cells no larger than the dense one) over seeds 1..N.

Checks printed at the end: is there a confirmed cell at 25% density or less within 1 point of the
dense cell, and does the front dominate uniform pruning at equal MACs (for each uniform point, a
front cell with no more MACs and at least its mean accuracy)?

Run: ``python benchmarks/sparsity_search.py [--seeds 5 --trials 60 --workers 2]``.
Writes ``benchmarks/results/sparsity_search.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import optuna  # noqa: E402

from activation_search import RESULTS, mean_std, run_jobs  # noqa: E402
from nas.config import load_config  # noqa: E402
from nas.proposers import make_sampler  # noqa: E402
from search_spaces import SparsitySpace, Spec  # noqa: E402
from search_spaces.sparsity_space import overall_density  # noqa: E402
from workers.data import load_dataset  # noqa: E402

SHORT = {"magnitude": "mag", "random": "rnd", "block": "blk", "nm": "nm", "erdos_renyi": "er",
         "watts_strogatz": "ws", "barabasi_albert": "ba", "dense": ""}
UNIFORM = (0.5, 0.25, 0.125, 0.0625)
# uniform magnitude points of larger cells, where the search starts (Narang et al.: large sparse beats
# small dense at equal MACs); the table marks which front cells came from here and which from TPE
WARM_START = ((64, 0.03125), (40, 0.0625), (64, 0.0625), (48, 0.125), (64, 0.125))


def describe(spec: Spec, input_size: int) -> str:
    """``h64 d=0.19 x->r 1, h->r .25mag, ...`` (per matrix: density and pattern)."""
    parts = [f"{e.dst}{'x' if e.src == 'x' else 'h'}{e.density:g}{SHORT[e.pattern]}"
             for e in spec.linear_edges(input_size)]
    return f"h{spec.hidden_size} d={overall_density(spec, input_size):.3f} " + " ".join(parts)


def jobs_for(spec: Spec, name: str, seeds: range, args: argparse.Namespace, train: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"spec": spec.to_json(), "name": name, "data": "digits-seq", "epochs": args.epochs, "seed": s,
             "train": train} for s in seeds]


def search(space: SparsitySpace, task: Any, args: argparse.Namespace, train: dict[str, Any]) -> list[dict[str, Any]]:
    """Multi-objective TPE over the space, seed 0 per trial, warm-started at uniform points."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    sampler = make_sampler("tpe", seed=0, space=space, options={"n_startup_trials": 10})
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    for hidden, density in WARM_START:
        if hidden in (space.hidden_sizes or ()) and density in space.densities:
            study.enqueue_trial(space.uniform_params(density, "magnitude", hidden_size=hidden))
    n_warm = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))
    seen: dict[str, dict[str, Any]] = {}
    trials: list[dict[str, Any]] = []
    while len(seen) < args.trials:
        batch = []
        while len(batch) < args.workers:
            trial = study.ask()
            spec = space.suggest(trial)
            space.validate(spec)
            macs = space.cost(spec, task)["macs"]
            key = space.canonical_hash(spec)
            if key in seen:  # an isomorphic cell: tell its score, do not retrain
                study.tell(trial, [seen[key]["accuracy"], macs])
                continue
            batch.append((trial, key, spec, macs))
        jobs = [jobs_for(spec, f"trial{t.number}", range(1), args, train)[0] for t, _, spec, _ in batch]
        for (trial, key, spec, macs), result in zip(batch, run_jobs(jobs, args.workers)):
            study.tell(trial, [result["accuracy"], macs])
            row = {**result, "macs": macs, "source": "warm" if trial.number < n_warm else "tpe", "cell": describe(spec, task.input_size), "spec": spec.to_json(),
                   "density": overall_density(spec, task.input_size)}
            seen[key] = row
            trials.append(row)
        print(f"  search: {len(seen)}/{args.trials} trained", flush=True)
    return trials


def pareto(rows: list[dict[str, Any]], acc: str = "accuracy") -> list[dict[str, Any]]:
    """Rows not dominated in (``acc`` up, MACs down), by MACs."""
    front = [r for r in rows if not any(o[acc] >= r[acc] and o["macs"] <= r["macs"] and
                                        (o[acc] > r[acc] or o["macs"] < r["macs"]) for o in rows)]
    return sorted(front, key=lambda r: r["macs"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=60, help="distinct cells trained by the search")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--front", type=int, default=8, help="front cells to confirm over seeds")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--config", default="configs/sparsity_search.yaml")
    args = parser.parse_args()
    start = time.perf_counter()
    config = load_config(args.config)
    space = config.space.make()
    task = load_dataset("digits-seq").task
    train = {"lr": config.train.lr, "batch_size": config.train.batch_size, "prune_until": config.train.prune_until}
    seeds = range(1, args.seeds + 1)

    print(f"baselines: dense GRU h{space.hidden_size} and uniform magnitude pruning at {UNIFORM}, "
          f"{args.seeds} seeds, {args.epochs} epochs", flush=True)
    base_specs = {"dense": space.decode(space.uniform_params(1.0, hidden_size=space.hidden_size))}
    for d in UNIFORM:
        base_specs[f"uniform {d:g}"] = space.decode(space.uniform_params(d, "magnitude", hidden_size=space.hidden_size))
    base_runs = run_jobs([j for n, s in base_specs.items() for j in jobs_for(s, n, seeds, args, train)], args.workers)

    print(f"search: {args.trials} distinct cells, multi-objective TPE, seed 0", flush=True)
    trials = search(space, task, args, train)
    dense_macs = space.cost(base_specs["dense"], task)["macs"]
    front = [r for r in pareto(trials) if r["macs"] <= dense_macs]
    if len(front) > args.front:  # spread over the MACs range, the largest always kept
        front = [front[round(i * (len(front) - 1) / (args.front - 1))] for i in range(args.front)]
    print(f"confirm: {len(front)} front cells x {args.seeds} seeds", flush=True)
    front_specs = {f"front{i + 1}{'w' if r['source'] == 'warm' else ''}": Spec.from_json(r["spec"])
                   for i, r in enumerate(front)}
    front_runs = run_jobs([j for n, s in front_specs.items() for j in jobs_for(s, n, seeds, args, train)], args.workers)

    table = []
    for kind, specs, runs in (("baseline", base_specs, base_runs), ("found", front_specs, front_runs)):
        for name, spec in specs.items():
            rs = [r for r in runs if r["name"] == name]
            val, test = mean_std(r["accuracy"] for r in rs), mean_std(r["test_accuracy"] for r in rs)
            table.append({"name": name, "kind": kind, "macs": space.cost(spec, task)["macs"],
                          "density": overall_density(spec, task.input_size), "cell": describe(spec, task.input_size),
                          "accuracy": val[0], "val_std": val[1], "test_mean": test[0], "test_std": test[1],
                          "seeds": len(rs)})
    table.sort(key=lambda r: r["macs"])
    print(f"\ndigits-seq, GRU: best-epoch validation / test accuracy, mean ± std over {args.seeds} seeds "
          "(frontNw: a warm-start point)")
    print(f"{'name':11} {'MACs':>7} {'density':>7} {'val acc':>15} {'test acc':>15}  cell (matrix: dst, x|h, density, pattern)")
    for r in table:
        print(f"{r['name']:11} {r['macs']:>7,} {r['density']:>7.3f} {r['accuracy']:.4f} ± {r['val_std']:.4f} "
              f"{r['test_mean']:.4f} ± {r['test_std']:.4f}  {r['cell']}")

    dense = next(r for r in table if r["name"] == "dense")
    found = [r for r in table if r["kind"] == "found"]
    close = [r for r in found if r["density"] <= 0.25 + 1e-9 and r["accuracy"] >= dense["accuracy"] - 0.01]
    print(f"\ntarget 1, a cell at <= 25% density within 1 point of dense ({dense['accuracy']:.4f}): "
          + (", ".join(f"{r['name']} (d={r['density']:.3f}, {r['accuracy']:.4f}, {r['macs']:,} MACs)" for r in close)
             if close else "none"))
    dominated = []
    for u in (r for r in table if r["name"].startswith("uniform")):
        better = [f for f in found if f["macs"] <= u["macs"] and f["accuracy"] >= u["accuracy"]]
        dominated.append(bool(better))
        cheaper = [f for f in found if f["macs"] <= u["macs"]]
        closest = max(cheaper, key=lambda f: f["accuracy"], default=None)
        print(f"target 2, {u['name']:14} ({u['macs']:>6,} MACs, {u['accuracy']:.4f}): "
              + (f"dominated by {better[-1]['name']} ({better[-1]['macs']:,} MACs, {better[-1]['accuracy']:.4f})"
                 if better else "not dominated" + (
                     f"; best front cell with fewer MACs: {closest['name']} ({closest['macs']:,} MACs, "
                     f"{(closest['accuracy'] - u['accuracy']) * 100:+.2f} points)" if closest else
                     "; no front cell has as few MACs")))
    print(f"front dominates uniform pruning at {sum(dominated)}/{len(dominated)} points")
    elapsed = time.perf_counter() - start
    print(f"total {elapsed:.0f} s on {os.cpu_count()} CPUs, {args.workers} workers x 1 thread")
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, "sparsity_search.json")
    with open(path, "w") as f:
        json.dump({"args": vars(args), "seconds": elapsed, "table": table, "search": trials,
                   "runs": base_runs + front_runs, "target_close": [r["name"] for r in close],
                   "target_dominates": dominated}, f, indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
