"""Real searches with and without early stopping: the quickstart with ``stopping: none`` against
``stopping: curve`` (Pareto-aware, the default; and its single-objective variant, and ASHA), same seeds, run one after another on the same machine.

Printed per policy and seed: wall time of the search (after Ray's start-up, which is shared),
epochs trained, trials stopped early, the best validation accuracy and its test accuracy, and the
hypervolume of the front; then the means with the wall-time and epoch ratios against ``none``.
Runs are interleaved (none, curve, asha, none, ...) so that load from other processes hits every
policy alike.

    python benchmarks/stopping_search.py [--seeds 0 1 --trials 30 --policies none curve asha]

Writes ``benchmarks/results/stopping_search.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from optuna.trial import TrialState
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nas.config import load_config, parse_config  # noqa: E402
from nas.search import _init_ray, run_search  # noqa: E402
from nas.study import hypervolume_2d, pareto_front  # noqa: E402

RESULTS = Path(__file__).parent / "results"


# a row name -> the config's stopping section (``curve`` is the default, Pareto-aware for two objectives)
POLICIES = {
    "none": {"policy": "none"},
    "curve": {"policy": "curve"},
    "curve-single": {"policy": "curve", "options": {"objective": "single"}},  # best accuracy only
    "asha": {"policy": "asha"},
    "median": {"policy": "median"},
}


def one_search(base: dict[str, Any], policy: str, seed: int, trials: int, root: Path) -> dict[str, Any]:
    """Run the config with one stopping policy and seed; what it cost and what it found."""
    raw = {**base, "name": f"stop-{policy}-{seed}", "seed": seed,
           "search": {**base["search"], "trials": trials},
           "stopping": POLICIES[policy]}
    config = parse_config(raw)
    start = time.perf_counter()
    outcome = run_search(config, runs_dir=root, console=Console(file=open(os.devnull, "w")))
    wall = time.perf_counter() - start
    trials_ = outcome.study.get_trials(deepcopy=False)
    finished = [t for t in trials_ if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    complete = [t for t in trials_ if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.values[0])
    front = pareto_front(outcome.study)
    return {
        "policy": policy,
        "seed": seed,
        "wall_s": wall,
        "epochs": sum(len(t.user_attrs.get("curve", [])) for t in finished),
        "stopped": sum(1 for t in trials_ if t.state == TrialState.PRUNED),
        "best_val": best.values[0],
        "best_test": best.user_attrs.get("test_score"),
        "front": [(t.values[0], t.values[1]) for t in front],
        "max_macs": max(t.values[1] for t in complete),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "quickstart.yaml"))
    parser.add_argument("--policies", nargs="+", default=["none", "curve", "curve-single", "asha"], choices=list(POLICIES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args()
    console = Console(width=140)
    base = load_config(args.config).to_dict()
    _init_ray(None)
    logging.getLogger("ray").setLevel(logging.ERROR)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for policy in args.policies:
                row = one_search(base, policy, seed, args.trials, Path(tmp))
                rows.append(row)
                console.print(f"seed {seed} {policy:6s}: {row['wall_s']:6.1f} s, {row['epochs']} epochs, "
                              f"{row['stopped']} stopped, best val {row['best_val']:.4f}")
    worst = max(r["max_macs"] for r in rows) * 1.01  # one reference point for every search
    for r in rows:
        r["hypervolume"] = hypervolume_2d(r["front"], (0.0, worst)) / worst  # fraction of [0, 1] x [0, worst]
    table = Table(title=f"{Path(args.config).name}: {args.trials} trials per search, seeds {args.seeds}, "
                        f"load average {os.getloadavg()[0]:.1f}")
    for column in ("policy", "wall s", "wall vs none", "epochs", "epochs vs none", "stopped",
                   "best val acc", "its test acc", "hypervolume"):
        table.add_column(column, justify="right")
    summary = {}
    for policy in args.policies:
        mine = [r for r in rows if r["policy"] == policy]
        summary[policy] = {k: statistics.fmean(r[k] for r in mine)
                           for k in ("wall_s", "epochs", "stopped", "best_val", "best_test", "hypervolume")}
    for policy, s in summary.items():
        none = summary.get("none", s)
        base = policy == "none"
        table.add_row(policy, f"{s['wall_s']:.1f}", "baseline" if base else f"{none['wall_s'] / s['wall_s']:.2f}x faster",
                      f"{s['epochs']:.0f}", "baseline" if base else f"{none['epochs'] / s['epochs']:.2f}x fewer",
                      f"{s['stopped']:.1f}",
                      f"{s['best_val']:.4f}", f"{s['best_test']:.4f}", f"{s['hypervolume']:.4f}")
    console.print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "stopping_search.json").write_text(json.dumps({"args": vars(args), "rows": rows, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
