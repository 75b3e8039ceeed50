"""NAS-Bench-201 on CIFAR-10: every proposer, many seeds, the same simulated budget.

    python benchmarks/nb201.py                      # 30 seeds, 200,000 simulated s, 2 processes
    python benchmarks/nb201.py --seeds 5 --json out.json

Single-objective (validation accuracy): random, TPE, REA, the RNN controller. Multi-objective
(accuracy vs latency): random, TPE, NSGA-II, REA, the RNN controller. Prints mean +- std of the
final best accuracy (table mean of the incumbent), the regret curve and the front's hypervolume
(fraction of the whole table's), and writes the per-run results as JSON.
"""

from __future__ import annotations

import argparse
import json
import time

from nas.benchmark import DEFAULT_BUDGET_S, best_accuracy, format_table, run_benchmark, to_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, help="simulated seconds")
    parser.add_argument("--workers", type=int, default=1, help="trials in flight at once")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--metric", default="latency", choices=["latency", "model_size"])
    parser.add_argument("--json", default="benchmarks/results/nb201.json")
    args = parser.parse_args()

    best = best_accuracy(args.dataset)
    common = dict(seeds=range(args.seeds), processes=args.processes, dataset=args.dataset,
                  budget_s=args.budget, workers=args.workers)
    print(f"NAS-Bench-201 {args.dataset}: best cell {best:.2f}%, budget {args.budget:,.0f} simulated s, "
          f"{args.workers} worker(s), {args.seeds} seeds")
    t0 = time.perf_counter()
    single = run_benchmark(["random", "tpe", "rea", "rnn"], **common)
    print(format_table(single, best=best, title="\nsingle objective: validation accuracy"))
    multi = run_benchmark(["random", "tpe", "nsga2", "rea", "rnn"], metric=args.metric, **common)
    print(format_table(multi, best=best, title=f"\nmulti-objective: validation accuracy vs {args.metric}"))
    print(f"\nwall time {time.perf_counter() - t0:.0f} s")
    with open(args.json, "w") as f:
        json.dump({"args": vars(args), "single": to_json(single), "multi": to_json(multi)}, f)


if __name__ == "__main__":
    main()
