"""Does the hypernetwork's warm start buy a better search in the same wall time? Searches with and
without ``hyper.warm_start``, each under the same ``search.time_budget_s``, same seeds, interleaved.

The warm arm trains the hypernetwork first (``hyper.train_steps``, inside the budget: the time it
takes is time the search does not get), then every trial, baselines included, starts from generated
weights and trains ``--warm-epochs`` (default: half the config's epochs), so more candidates fit in
the budget. The cold arm is the config as written. What each search found is then judged by ONE
recipe, the config's own (random init, its epochs): its ``confirm_top`` front cells and every
baseline retrained over ``--confirm`` more seeds, as ``search.confirm`` does. Per arm: trials
trained, the best confirmed found cell's mean validation score (and its test score), and the
hypervolume of the confirmed front (one reference point per config, `_search_runs.hypervolumes`);
the summary puts the arms side by side with the warm arm's difference.

    python benchmarks/warm_start_search.py --configs configs/quickstart.yaml --minutes 4 --seeds 0 1 2

Writes ``benchmarks/results/warm_start_search.json``.
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
ARMS = ("cold", "warm")


def arm_config(base: dict[str, Any], arm: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """The config of one arm: the time budget for both; warm start and fewer epochs for ``warm``."""
    search = {**base["search"], "trials": 100_000, "time_budget_s": args.minutes * 60}
    config = {**base, "name": f"{base['name']}-{arm}-{seed}", "search": search}
    if arm == "warm":
        epochs = args.warm_epochs or max(1, base["train"]["epochs"] // 2)
        config["train"] = {**base["train"], "epochs": epochs}
        config["hyper"] = {**base.get("hyper", {}), "enabled": True, "warm_start": True, "when": "before",
                           "train_steps": args.hyper_steps}
    else:
        config["hyper"] = {**base.get("hyper", {}), "enabled": False}
    return config


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Means over seeds per arm; the warm arm's differences from the cold one (positive: better)."""
    from workers.metrics import get_metric

    metric = get_metric(rows[0]["metric"])
    out: dict[str, dict[str, Any]] = {}
    for arm in ARMS:
        mine = [r for r in rows if r["arm"] == arm]
        best = [r["confirmed_best"]["val"] for r in mine if r["confirmed_best"]]
        test = [r["confirmed_best"]["test"] for r in mine if r["confirmed_best"]]
        out[arm] = {
            "runs": len(mine),
            "wall_s": statistics.fmean(r["wall_s"] for r in mine),
            "trials": statistics.fmean(r["trials"] for r in mine),
            "epochs": mine[0]["max_epochs"],
            "confirmed_best": statistics.fmean(best) if best else None,
            "confirmed_best_se": statistics.stdev(best) / math.sqrt(len(best)) if len(best) > 1 else None,
            "confirmed_best_test": statistics.fmean(test) if test else None,
            "hypervolume": statistics.fmean(r["hypervolume"] for r in mine),
        }
    cold, warm = out["cold"], out["warm"]
    if cold["confirmed_best"] is not None and warm["confirmed_best"] is not None:
        warm["best_gain"] = metric.gain(warm["confirmed_best"], cold["confirmed_best"])
    warm["hypervolume_ratio"] = warm["hypervolume"] / cold["hypervolume"] if cold["hypervolume"] else None
    warm["trials_ratio"] = warm["trials"] / cold["trials"] if cold["trials"] else None
    return out


def print_table(console: Console, title: str, summary: dict[str, dict[str, Any]]) -> None:
    table = Table(title=title)
    for column in ("arm", "epochs", "wall s", "trials", "confirmed best (val)", "its test", "hypervolume", "warm vs cold"):
        table.add_column(column, justify="right")
    fmt = lambda v, spec="": "-" if v is None else format(v, spec)  # noqa: E731
    for arm, s in summary.items():
        se = f" ± {s['confirmed_best_se']:.4f}" if s.get("confirmed_best_se") else ""
        versus = ("baseline" if arm == "cold" else
                  f"best {fmt(s.get('best_gain'), '+.4f')}, hypervolume {fmt(s.get('hypervolume_ratio'), '.3f')}x, "
                  f"trials {fmt(s.get('trials_ratio'), '.2f')}x")
        table.add_row(arm, str(s["epochs"]), f"{s['wall_s']:.0f}", f"{s['trials']:.1f}",
                      fmt(s["confirmed_best"], ".4f") + se, fmt(s["confirmed_best_test"], ".4f"),
                      f"{s['hypervolume']:.4f}", versus)
    console.print(table)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=[str(REPO / "configs" / "quickstart.yaml")])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--minutes", type=float, default=4.0, help="search.time_budget_s of every search, in minutes")
    parser.add_argument("--warm-epochs", type=int, help="train.epochs of the warm arm (default: half the config's)")
    parser.add_argument("--hyper-steps", type=int, default=1000, help="hyper.train_steps of the warm arm")
    parser.add_argument("--confirm", type=int, default=2, help="confirmation seeds per search, the config's recipe")
    parser.add_argument("--out", type=Path, default=RESULTS / "warm_start_search.json")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(width=160)
    try:
        bases = {Path(c).stem: load_config(c).to_dict() for c in args.configs}
    except (ConfigError, OSError) as exc:
        console.print(f"error: {exc}", markup=False)
        return 2
    _init_ray(None)
    logging.getLogger("ray").setLevel(logging.ERROR)
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "configs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, base in bases.items():
            rows = []
            for seed in args.seeds:
                for arm in ARMS:
                    row = search_runs.one_search(arm_config(base, arm, seed, args), seed, Path(tmp),
                                                 confirm_seeds=args.confirm, confirm_train=base["train"])
                    rows.append({"arm": arm, **row})
                    best = row["confirmed_best"]
                    console.print(f"{name} seed {seed} {arm}: {row['trials']} trials of {row['max_epochs']} epochs in "
                                  f"{row['wall_s']:.0f} s, {row['failed']} failed; confirmed best "
                                  f"{'-' if best is None else format(best['val'], '.4f')}", markup=False)
            search_runs.hypervolumes(rows)
            summary = summarize(rows)
            print_table(console, f"{name}: {args.minutes:g}-minute searches, seeds {args.seeds}, judged by the config's "
                                 f"recipe over {args.confirm} seeds, load average {os.getloadavg()[0]:.1f}", summary)
            results["configs"][name] = {"rows": rows, "summary": summary}
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2, default=str))  # each config kept as it ends
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
