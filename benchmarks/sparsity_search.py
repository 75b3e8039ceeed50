"""Sparse recurrent cells on real data: the searched accuracy-vs-MACs front against the dense GRU and
uniform magnitude pruning, all trained in the same run.

Reproduces the comparison of "Investigating Sparsity in Recurrent Neural Networks" (Narang et al.,
2017) on digits-seq with the space of ``configs/sparsity_search.yaml``: a GRU whose six matrices each
get a density (1 to 1/32) and a pattern (magnitude pruning with retraining, random, block, N:M,
random-graph topologies), and whose hidden size (32/40/48/64) is searched too.

1. **Baselines**: the dense GRU (hidden 32) and uniform gradual magnitude pruning of all its matrices
   to 50%, 25%, 12.5% and 6.25%, over seeds 1..N.
2. **Search**: multi-objective TPE on (validation accuracy up, MACs down), one seed (0) per trial,
   duplicates (equal hash) not retrained. It starts from warm points spread over the whole MACs range
   of the baselines: uniform pruning of the larger cells (Narang et al.: large sparse beats small
   dense at equal MACs) and, for each uniform point and hidden size, the non-uniform magnitude cell
   that spends the most of that point's MACs with the candidate's recurrent matrix (h->uh) 2-4x
   denser than the gates' (h->r, h->z) and the small input matrices at least as dense (`budget_cells`).
3. **Confirmation per MACs band**: for each uniform point, the best search cells (seed-0 accuracy)
   with at most its MACs, plus the best cells at <= 25% density, over the baselines' seeds 1..N.
   Cells equal to a baseline (same hash) are not confirmed: a tie with itself proves nothing.

Checks printed at the end: is there a confirmed cell at 25% density or less within 1 point of the
dense cell, and does the front dominate uniform pruning at equal MACs (for each uniform point, a
confirmed cell with no more MACs and at least its mean validation accuracy over the same seeds)?

Run: ``python benchmarks/sparsity_search.py [--seeds 5 --trials 80 --per-band 3 --workers 2]``.
Writes ``benchmarks/results/sparsity_search.json``; ``--show`` prints its tables again without training.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _shared import add_common_args, describe, jobs_for, print_lines, search, setup, show_last  # noqa: E402
from nas.seed_runs import STATS_HEADER, format_stats, run_jobs, summarize, verdict  # noqa: E402
from search_spaces import SparsitySpace, Spec, Task  # noqa: E402
from search_spaces.sparsity_space import overall_density  # noqa: E402

UNIFORM = (0.5, 0.25, 0.125, 0.0625)
# uniform magnitude points of larger cells (Narang et al.: large sparse beats small dense at equal MACs)
WARM_START = ((64, 0.03125), (40, 0.0625), (64, 0.0625), (48, 0.125), (64, 0.125))


def grouped_params(space: SparsitySpace, hidden: int, dx: float, dg: float, du: float) -> dict[str, Any]:
    """Magnitude pruning in three density groups: the input matrices (x->*) at ``dx``, the candidate's
    recurrent matrix (h->uh) at ``du``, the gates' recurrent matrices (h->r, h->z) at ``dg``."""
    return space.matrix_params(lambda src, dst: dx if src == "x" else du if dst == "uh" else dg,
                               "magnitude", hidden_size=hidden)


def budget_cells(space: SparsitySpace, task: Task, budget: int) -> list[dict[str, Any]]:
    """For each hidden size, the magnitude-pruned cell spending the most of ``budget`` MACs with the
    candidate's recurrent matrix 2 or 4 times denser than the gates' and the input matrices 1, 2 or 4
    times (ties: the denser candidate matrix). The warm points of the search near one uniform point."""
    out = []
    for hidden in space.hidden_sizes or (space.hidden_size,):
        best: tuple[tuple[int, float, float], dict[str, Any]] | None = None
        for dx, dg, du in itertools.product(space.densities, repeat=3):
            if du not in (2 * dg, 4 * dg) or dx not in (dg, 2 * dg, 4 * dg):
                continue
            params = grouped_params(space, hidden, dx, dg, du)
            macs = space.cost(space.decode(params), task)["macs"]
            if macs <= budget and (best is None or (macs, du, dx) > best[0]):
                best = ((macs, du, dx), params)
        if best is not None:
            out.append(best[1])
    return out


def warm_params(space: SparsitySpace, task: Task, budgets: list[int]) -> list[dict[str, Any]]:
    """The search's warm points: `WARM_START` and `budget_cells` of every budget, distinct cells."""
    hiddens = space.hidden_sizes or (space.hidden_size,)
    params = [space.uniform_params(d, "magnitude", hidden_size=h) for h, d in WARM_START
              if h in hiddens and d in space.densities]
    params += [p for b in budgets for p in budget_cells(space, task, b)]
    seen, out = set(), []
    for p in params:
        key = space.canonical_hash(space.decode(p))
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def pareto(rows: list[dict[str, Any]], acc: str = "score") -> list[dict[str, Any]]:
    """Rows not dominated in (``acc`` up, MACs down), by MACs."""
    front = [r for r in rows if not any(o[acc] >= r[acc] and o["macs"] <= r["macs"] and
                                        (o[acc] > r[acc] or o["macs"] < r["macs"]) for o in rows)]
    return sorted(front, key=lambda r: r["macs"])


def select_confirm(trials: list[dict[str, Any]], bands: dict[str, int], per_band: int, low_density: int,
                   exclude: set[str]) -> list[tuple[str, dict[str, Any]]]:
    """(band, trial) pairs to confirm: for each band (name -> MACs, cheapest first), the ``per_band``
    best trials (seed-0 accuracy) with at most its MACs not chosen yet; then the ``low_density`` best
    at <= 25% density. Trials whose hash is in ``exclude`` (the baselines) are never chosen."""
    ranked = sorted((t for t in trials if t["hash"] not in exclude), key=lambda t: (-t["score"], t["macs"]))
    chosen: list[tuple[str, dict[str, Any]]] = []
    taken: set[str] = set()
    groups = [(name, per_band, lambda t, m=macs: t["macs"] <= m) for name, macs in sorted(bands.items(), key=lambda b: b[1])]
    groups.append(("d<=0.25", low_density, lambda t: t["density"] <= 0.25 + 1e-9))
    for name, k, fits in groups:
        for t in [t for t in ranked if fits(t) and t["hash"] not in taken][:k]:
            taken.add(t["hash"])
            chosen.append((name, t))
    return chosen


def checks(table: list[dict[str, Any]]) -> tuple[list[str], list[bool], list[str]]:
    """Target 1 (names of found cells at <= 25% density within 1 point of dense), target 2 (per uniform
    point, cheapest first: is it dominated by a found cell?) and the printed lines."""
    dense = next(r for r in table if r["name"] == "dense")
    found = [r for r in table if r["kind"] == "found"]
    close = [r for r in found if r["density"] <= 0.25 + 1e-9 and r["val_mean"] >= dense["val_mean"] - 0.01]
    lines = [f"target 1, a cell at <= 25% density within 1 point of dense ({dense['val_mean']:.4f}): "
             + (", ".join(f"{r['name']} (d={r['density']:.3f}, {r['val_mean']:.4f}, {r['macs']:,} MACs)" for r in close)
                if close else "none")]
    dominated = []
    for u in sorted((r for r in table if r["name"].startswith("uniform")), key=lambda r: r["macs"]):
        cheaper = [f for f in found if f["macs"] <= u["macs"]]
        best = max(cheaper, key=lambda f: (f["val_mean"], -f["macs"]), default=None)
        ok = best is not None and best["val_mean"] >= u["val_mean"]
        dominated.append(ok)
        line = f"target 2, {u['name']:14} ({u['macs']:>6,} MACs, {u['val_mean']:.4f} ± {u['val_std']:.4f}): "
        if best is None:
            line += "not dominated; no confirmed cell has as few MACs"
        else:
            gap, noise, _ = verdict(best, u)
            line += (f"{'dominated' if ok else 'NOT dominated'}: best confirmed cell with <= its MACs is "
                     f"{best['name']} ({best['macs']:,} MACs, {best['val_mean']:.4f} ± {best['val_std']:.4f}, "
                     f"{gap * 100:+.2f} points, 2 s.e. {noise * 100:.2f})")
        lines.append(line)
    lines.append(f"front dominates uniform pruning at {sum(dominated)}/{len(dominated)} points")
    return [r["name"] for r in close], dominated, lines


def print_tables(table: list[dict[str, Any]], seeds: int) -> list[str]:
    """The table (baselines B, found cells *, confirmed front F) and the checks; returns the check lines."""
    front = {r["name"] for r in pareto([r for r in table if r["kind"] == "found"], acc="val_mean")}
    print(f"\ndigits-seq, GRU: best-epoch validation / test accuracy, mean ± std over the same {seeds} seeds "
          "(B: baseline, *: found, F: on the confirmed front; band: the uniform point it was chosen for)")
    print(f"{'':2} {'name':14} {'band':8} {'MACs':>7} {'density':>7} {STATS_HEADER}  cell (gate, x|h, density, pattern)")
    for r in sorted(table, key=lambda r: r["macs"]):
        tag = "B" if r["kind"] == "baseline" else "F" if r["name"] in front else "*"
        print(f"{tag:2} {r['name']:14} {r.get('band', ''):8} {r['macs']:>7,} {r['density']:>7.3f} {format_stats(r)}  {r['cell']}")
    _, _, lines = checks(table)
    return print_lines(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--per-band", type=int, default=3, help="cells confirmed per uniform point's MACs band")
    parser.add_argument("--low-density", type=int, default=2, help="extra cells confirmed at <= 25%% density")
    add_common_args(parser, "sparsity_search", seeds=5, trials=80)
    args = parser.parse_args()
    if show_last(args, print_tables):
        return
    start = time.perf_counter()
    _, space, task, train = setup(args)
    seeds = range(1, args.seeds + 1)

    print(f"baselines: dense GRU h{space.hidden_size} and uniform magnitude pruning at {UNIFORM}, "
          f"{args.seeds} seeds, {args.epochs} epochs", flush=True)
    base_specs = {"dense": space.decode(space.uniform_params(1.0, hidden_size=space.hidden_size))}
    for d in UNIFORM:
        base_specs[f"uniform {d:g}"] = space.decode(space.uniform_params(d, "magnitude", hidden_size=space.hidden_size))
    base_runs = run_jobs([j for n, s in base_specs.items() for j in jobs_for(s, n, seeds, args, train)], args.workers)
    bands = {f"u{d:g}": space.cost(base_specs[f"uniform {d:g}"], task)["macs"] for d in UNIFORM}

    warm = warm_params(space, task, list(bands.values()))
    print(f"search: {args.trials} distinct cells, multi-objective TPE, seed 0, {len(warm)} warm points", flush=True)
    trials = search(space, task, args, train, warm)
    exclude = {space.canonical_hash(s) for s in base_specs.values()}
    chosen = select_confirm(trials, bands, args.per_band, args.low_density, exclude)
    print(f"confirm: {len(chosen)} cells x {args.seeds} seeds", flush=True)
    found_specs = {f"c{i + 1}{'w' if t['source'] == 'warm' else ''}": Spec.from_json(t["spec"])
                   for i, (_, t) in enumerate(chosen)}
    found_bands = {name: band for name, (band, _) in zip(found_specs, chosen)}
    found_runs = run_jobs([j for n, s in found_specs.items() for j in jobs_for(s, n, seeds, args, train)], args.workers)

    table = []
    for kind, specs, runs in (("baseline", base_specs, base_runs), ("found", found_specs, found_runs)):
        for name, spec in specs.items():
            table.append({"name": name, "kind": kind, "band": found_bands.get(name, ""),
                          "macs": space.cost(spec, task)["macs"], "density": overall_density(spec, task.input_size),
                          "cell": describe(spec, task.input_size), **summarize(r for r in runs if r["name"] == name)})
    table.sort(key=lambda r: r["macs"])
    lines = print_tables(table, args.seeds)
    close, dominated, _ = checks(table)
    elapsed = time.perf_counter() - start
    print(f"total {elapsed:.0f} s on {os.cpu_count()} CPUs, {args.workers} workers x 1 thread "
          f"({len(base_runs) + len(trials) + len(found_runs)} trainings)")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"args": vars(args), "seconds": elapsed, "table": table, "search": trials,
                   "runs": base_runs + found_runs, "target_close": close, "target_dominates": dominated,
                   "checks": lines}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
