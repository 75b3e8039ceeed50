"""Real searches with and without early stopping: any search config, with ``stopping: none`` against
the curve stopper, ASHA and the median rule; same seeds, interleaved, on the same machine.

Per config, seed and policy: the search's wall time (after Ray's start-up, which is shared; the
confirmation is timed apart), epochs trained, trials stopped and their median stopping epoch, the best
trial of the search and, confirmed (its top front cells and the baselines retrained over
``--confirm`` more seeds, as ``search.confirm`` does), the best cell's mean validation score and the
hypervolume of the confirmed front (with `--confirm 0`: the single runs). Runs are interleaved (none, curve, asha, median, none, ...) so
that load from other processes hits every policy alike. The summary checks issue 18's acceptance:
``curve`` at most half the wall time of ``none``, its confirmed best within one standard error of
``none``'s, its confirmed front's hypervolume within 1%, and the median stopping epoch of stopped
trials at most a quarter of the budget. The score is the task's metric in its direction (accuracy
up, bits per character down); the hypervolume's reference is `nas.study.reference_score` (the
metric's worst value when it is bounded, else the score of guessing the study recorded) and the
largest MACs of any run (x 1.01).

    # the 40-epoch time-series classification search (BasicMotions, shipped with aeon)
    python benchmarks/stopping_search.py --config configs/basic_motions.yaml --epochs 40 --trials 60 \\
        --seeds 0 1 2 --policies none curve asha median --confirm 2
    # the character-level language model (bits per character, minimised), a fixed number of trials
    python benchmarks/stopping_search.py --config configs/charlm.yaml --no-time-budget --trials 40 --seeds 0 1 2

Writes ``benchmarks/results/stopping_search_<config>.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import _search_runs as search_runs  # noqa: E402
from nas.config import load_config  # noqa: E402
from nas.errors import ConfigError  # noqa: E402
from nas.search import _init_ray  # noqa: E402

RESULTS = Path(__file__).parent / "results"

# a row name -> the config's stopping section (``curve``: the search default, Pareto-aware)
POLICIES = {
    "none": {"policy": "none"},
    "curve": {"policy": "curve"},
    "curve-single": {"policy": "curve", "options": {"objective": "single"}},  # the best score only
    "asha": {"policy": "asha"},
    "median": {"policy": "median"},
}


def one_search(base: dict[str, Any], policy: str, seed: int, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Run the config with one stopping policy and seed, then confirm it (`_search_runs.one_search`)."""
    train = {**base["train"], **({"epochs": args.epochs} if args.epochs else {})}
    search = {**base["search"], **({"trials": args.trials} if args.trials else {}),
              **({"time_budget_s": None} if args.no_time_budget else {})}
    config = {**base, "name": f"{base['name']}-stop-{policy}-{seed}", "train": train, "search": search,
              "stopping": POLICIES[policy]}
    return {"policy": policy, **search_runs.one_search(config, seed, root, confirm_seeds=args.confirm)}


def summarize(rows: list[dict[str, Any]], policies: list[str]) -> dict[str, dict[str, Any]]:
    """Means over seeds per policy, with the acceptance checks against ``none``."""
    from workers.metrics import get_metric

    metric = get_metric(rows[0]["metric"])
    out: dict[str, dict[str, Any]] = {}
    for policy in policies:
        mine = [r for r in rows if r["policy"] == policy]
        confirmed = [r["confirmed_best"]["val"] for r in mine if r["confirmed_best"]]
        stops = [e for r in mine for e in r["stop_epochs"]]
        out[policy] = {
            "wall_s": statistics.fmean(r["wall_s"] for r in mine),
            "epochs": statistics.fmean(r["epochs"] for r in mine),
            "stopped": statistics.fmean(r["stopped"] for r in mine),
            "median_stop_fraction": statistics.median(stops) / mine[0]["max_epochs"] if stops else None,
            "best_val": statistics.fmean(r["best_val"] for r in mine),
            "confirmed_best": statistics.fmean(confirmed) if confirmed else None,
            "confirmed_best_se": statistics.stdev(confirmed) / math.sqrt(len(confirmed)) if len(confirmed) > 1 else None,
            "hypervolume": statistics.fmean(r["hypervolume"] for r in mine),
        }
    none = out.get("none")
    for policy, s in out.items():
        if none is None or policy == "none":
            continue
        s["wall_vs_none"] = s["wall_s"] / none["wall_s"]
        s["epochs_vs_none"] = s["epochs"] / none["epochs"]
        s["hypervolume_vs_none"] = s["hypervolume"] / none["hypervolume"] if none["hypervolume"] else None
        if s["confirmed_best"] is not None and none["confirmed_best"] is not None:
            se = max(x for x in (s["confirmed_best_se"], none["confirmed_best_se"], 0.0) if x is not None)
            s["best_gap"] = metric.gain(s["confirmed_best"], none["confirmed_best"])  # > 0: better than none
            s["best_within_1se"] = s["best_gap"] >= -se if se > 0 else None  # one seed: no standard error
        s["accepted"] = {
            "wall <= 0.5x none": s["wall_vs_none"] <= 0.5,
            "hypervolume within 1%": s.get("hypervolume_vs_none") is not None and s["hypervolume_vs_none"] >= 0.99,
            "median stop <= 1/4 budget": s["median_stop_fraction"] is not None and s["median_stop_fraction"] <= 0.25,
            "best within 1 SE": s.get("best_within_1se"),
        }
    return out


def print_table(console: Console, title: str, summary: dict[str, dict[str, Any]]) -> None:
    table = Table(title=title)
    for column in ("policy", "wall s", "wall vs none", "epochs", "epochs vs none", "stopped",
                   "median stop", "best (search)", "confirmed best", "hypervolume", "vs none"):
        table.add_column(column, justify="right")
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    for policy, s in summary.items():
        base = "wall_vs_none" not in s
        se = f" ± {s['confirmed_best_se']:.4f}" if s.get("confirmed_best_se") else ""
        table.add_row(policy, f"{s['wall_s']:.0f}", "baseline" if base else f"{s['wall_vs_none']:.2f}x",
                      f"{s['epochs']:.0f}", "baseline" if base else f"{s['epochs_vs_none']:.2f}x",
                      f"{s['stopped']:.1f}", fmt(s["median_stop_fraction"], ".0%"), f"{s['best_val']:.4f}",
                      fmt(s["confirmed_best"], ".4f") + se, f"{s['hypervolume']:.4f}",
                      "baseline" if base else fmt(s.get("hypervolume_vs_none"), ".3f"))
    console.print(table)
    for policy, s in summary.items():
        if "accepted" in s:
            console.print(f"{policy}: " + ", ".join(f"{k}: {'-' if v is None else ('yes' if v else 'NO')}"
                                                     for k, v in s["accepted"].items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "basic_motions.yaml"), help="any search config")
    parser.add_argument("--policies", nargs="+", default=["none", "curve", "asha", "median"], choices=list(POLICIES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--trials", type=int, help="search.trials (default: the config's)")
    parser.add_argument("--epochs", type=int, help="train.epochs (default: the config's)")
    parser.add_argument("--confirm", type=int, default=2, help="confirmation seeds per search (0: none)")
    parser.add_argument("--no-time-budget", action="store_true",
                        help="drop search.time_budget_s (charlm.yaml has one: every search would take as long)")
    parser.add_argument("--runs-dir", type=Path, help="keep the studies here (default: a temporary directory); "
                        "the 'none' studies hold full curves for benchmarks/early_stopping.py --study")
    args = parser.parse_args(argv)
    console = Console(width=160)
    try:
        base = load_config(args.config).to_dict()
    except (ConfigError, OSError) as exc:
        console.print(f"error: {exc}", markup=False)
        return 2
    _init_ray(None)
    logging.getLogger("ray").setLevel(logging.ERROR)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for policy in args.policies:
                row = one_search(base, policy, seed, args, args.runs_dir or Path(tmp))
                rows.append(row)
                console.print(f"seed {seed} {policy:12s}: {row['wall_s']:6.1f} s, {row['epochs']} epochs, "
                              f"{row['stopped']} stopped (median at {statistics.median(row['stop_epochs']) if row['stop_epochs'] else '-'}"
                              f" of {row['max_epochs']}), best {row['best_val']:.4f}, confirmed "
                              f"{row['confirmed_best']['val'] if row['confirmed_best'] else '-'}", markup=False)
    search_runs.hypervolumes(rows)
    summary = summarize(rows, args.policies)
    name = Path(args.config).stem
    print_table(console, f"{name}: {rows[0]['trials']} trials x {rows[0]['max_epochs']} epochs per search, seeds "
                         f"{args.seeds}, {args.confirm} confirmation seeds, load average {os.getloadavg()[0]:.1f}", summary)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"stopping_search_{name}.json"
    out.write_text(json.dumps({"args": vars(args), "rows": rows, "summary": summary}, indent=2, default=str))
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
