"""Do searched cells beat the cells people write by hand? One search per task with a fixed wall-time
budget on the gated space (the known cells enqueued first, evolution from them), then the best found
cells and every baseline retrained over 5 seeds with the same recipe (the search's confirmation),
and one table of test metric mean +- s.d., MACs and the comparisons.

Protocol, per task: selection uses validation only. The found cells confirmed are the
``--top`` best found cells in non-dominated order (the found cells' front, then the next layers;
single search runs, baselines left out). Each
verdict checks ONE found cell, picked by its confirmed mean validation score, on the test split
(so trying several cells does not buy a lucky test number); "better" follows the task's metric
(accuracy up, bits per character down):

- ``>= best @ <=0.7x``: among the found cells at no more than 0.7x the MACs of the best baseline
  (the baseline with the best mean test metric: the strongest rival), the one with the best
  validation mean has a mean test metric at least the best baseline's;
- ``> all by 2 SE``: among the found cells at no more MACs than the largest baseline, the one with
  the best validation mean is better than every baseline by more than two standard errors of the
  difference.

With ``--folds K`` (small data sets, whose validation carve-out saturates) every search trial and every
confirmation run is a K-fold cross-validation over train + validation (``train.folds``): its
validation number is the mean over the folds, its test number the mean of the K fold models on the
untouched test split, for found cells and baselines alike.

    python benchmarks/vs_baselines.py [--tasks digits-seq adding reber] [--minutes 5] [--seeds 5] [--folds 5]

Writes ``benchmarks/results/vs_baselines.json`` and a plot of test metric against MACs per task
(``vs_baselines.png``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
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

from nas import confirm  # noqa: E402
from nas.baselines import Score  # noqa: E402
from nas.config import load_config, parse_config  # noqa: E402
from nas.search import run_search  # noqa: E402
from nas.study import study_metric  # noqa: E402
from workers.metrics import Metric, get_metric  # noqa: E402
from workers.data import LOADERS, load_dataset  # noqa: E402

RESULTS = Path(__file__).parent / "results"
RATIO = 0.7

# task -> (data section, gated-space options, training recipe); every cell of a task trains with this recipe
TASKS: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "digits-seq": ({"name": "digits-seq"}, {"hidden_sizes": [16, 32, 48]}, {"epochs": 12, "batch_size": 64, "lr": 0.01}),
    "adding": ({"name": "adding"}, {"hidden_sizes": [16, 32]}, {"epochs": 10, "batch_size": 64, "lr": 0.01}),
    "reber": ({"name": "reber"}, {"hidden_sizes": [8, 16, 32]}, {"epochs": 10, "batch_size": 64, "lr": 0.01}),
}
# character-level language modelling on Tiny Shakespeare (shipped in the package): configs/charlm.yaml's recipe
_CHARLM = load_config(REPO / "configs" / "charlm.yaml")
TASKS["charlm"] = ({"name": _CHARLM.data.name, **_CHARLM.data.options()}, _CHARLM.space.options(), _CHARLM.train.to_dict())
if "uea" in LOADERS:  # real multivariate / univariate sets shipped inside an installed package
    TASKS["basicmotions"] = ({"name": "uea", "dataset": "BasicMotions"}, {"hidden_sizes": [16, 32, 48]},
                             {"epochs": 30, "batch_size": 16, "lr": 0.01})
    TASKS["italypower"] = ({"name": "uea", "dataset": "ItalyPowerDemand"}, {"hidden_sizes": [8, 16, 32]},
                           {"epochs": 30, "batch_size": 16, "lr": 0.01})
    TASKS["gunpoint"] = ({"name": "uea", "dataset": "GunPoint"}, {"hidden_sizes": [8, 16, 32]},
                         {"epochs": 30, "batch_size": 16, "lr": 0.01})


def search_task(task: str, minutes: float, seeds: int, top: int, root: Path, console: Console,
                eval_seeds: int = 1, folds: int = 1, seed: int = 0) -> dict[str, Any]:
    """A ``minutes`` search of ``task`` (study seed ``seed``), its ``top`` found cells and every
    baseline confirmed over ``seeds`` more seeds; the cells' rows and the verdicts."""
    data, space, train = TASKS[task]
    if folds > 1 and load_dataset(**data).task.objective == "lm":
        folds = 1  # a language model's text is split by position: its long validation stream selects
    train = {**train, "eval_seeds": eval_seeds, "folds": folds}  # each trial scored by a mean of this many runs
    config = parse_config({
        "name": f"vs-{task}", "seed": seed, "data": data,
        "space": {**space, "name": "gated"},
        "train": train,
        "search": {"trials": 10_000, "sampler": "rea", "time_budget_s": minutes * 60,
                   "confirm": seeds, "confirm_top": top},
        "stopping": {"policy": "none"},
    })
    start = time.perf_counter()
    outcome = run_search(config, runs_dir=root, console=console)
    wall = time.perf_counter() - start
    trials = outcome.study.get_trials(deepcopy=False)
    errors = [str(t.user_attrs.get("error", "")).lower() for t in trials if t.state == TrialState.FAIL]
    diverged = sum("diverged" in e or "became nan" in e or "became inf" in e for e in errors)
    scores, metric = confirm.scores(outcome.study), study_metric(outcome.study)
    return {"task": task, "metric": metric.name, "eval_seeds": eval_seeds, "folds": folds, "wall_s": wall, "trials": len(trials), "failed": len(errors),
            "diverged": diverged, "minutes": minutes, "seeds": seeds,
            "cells": [_row(s, trials[s.number]) for s in scores], **verdicts(scores, metric)}


def _row(score: Score, trial: Any) -> dict[str, Any]:
    return {"trial": score.number, "baseline": score.baseline, "macs": score.macs, "val": score.val,
            "test": score.test, "test_sd": score.test_sd, "seeds": score.seeds, "spec": trial.user_attrs.get("spec")}


def _se(score: Score) -> float:
    return score.test_sd / math.sqrt(score.seeds) if score.seeds > 1 else math.inf


def verdicts(scores: list[Score], metric: Metric) -> dict[str, Any]:
    """The two comparisons of the module docstring, over confirmed (mean) scores: each names the
    found cell it checked (picked by validation) and whether it passed."""
    baselines = [s for s in scores if s.baseline is not None and math.isfinite(s.test)]
    found = [s for s in scores if s.baseline is None and math.isfinite(s.test) and math.isfinite(s.val)]
    if not baselines:
        return {"best_baseline": None, "cheaper_pick": None, "cheaper_match": None, "beats_pick": None, "beats_all": None}
    best = min(baselines, key=lambda s: metric.rank(s.test, s.macs))
    largest = max(b.macs for b in baselines)
    by_val = lambda cells: min(cells, key=lambda s: metric.rank(s.val, s.macs), default=None)  # noqa: E731
    cheaper = by_val([f for f in found if f.macs <= RATIO * best.macs])
    beats = by_val([f for f in found if f.macs <= largest])
    matches = cheaper is not None and metric.gain(cheaper.test, best.test) >= 0
    wins = beats is not None and all(metric.gain(beats.test, b.test) > 2 * math.hypot(_se(beats), _se(b)) for b in baselines)
    number = lambda s: None if s is None else s.number  # noqa: E731
    return {"best_baseline": best.number, "cheaper_pick": number(cheaper), "cheaper_match": number(cheaper) if matches else None,
            "beats_pick": number(beats), "beats_all": number(beats) if wins else None}


def print_table(results: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="found cells against the known cells (test metric, mean ± s.d. over seeds)")
    for column in ("task", "cell", "MACs", "test", "val", "x best MACs", "verdict"):
        table.add_column(column, justify="left" if column in ("task", "cell", "verdict") else "right")
    for result in results:
        metric = get_metric(result.get("metric", "accuracy"))
        cells = sorted(result["cells"], key=lambda c: (c["baseline"] is not None, -metric.oriented(c["test"])))
        best = next((c for c in cells if c["trial"] == result["best_baseline"]), None)
        for c in cells:
            verdict = []
            if c["trial"] == result["best_baseline"]:
                verdict.append("best baseline")
            if c["trial"] == result.get("cheaper_pick", result["cheaper_match"]):
                verdict.append(f"{'' if result['cheaper_match'] is not None else 'NOT '}>= best @ <={RATIO}x")
            if c["trial"] == result.get("beats_pick", result["beats_all"]):
                verdict.append(f"{'' if result['beats_all'] is not None else 'not '}> all by 2 SE")
            table.add_row(
                result["task"], c["baseline"] or f"found #{c['trial']}", f"{c['macs']:,}",
                f"{metric.fmt(c['test'])} ± {metric.fmt(c['test_sd'])} {metric.label}", metric.fmt(c["val"]),
                "-" if best is None else f"{c['macs'] / best['macs']:.2f}", ", ".join(verdict),
            )
        table.add_section()
    console.print(table)
    for r in results:
        console.print(f"{r['task']}: {r['trials']} trials in {r['minutes']:g} min of search "
                      f"({r['wall_s']:.0f} s with confirmation), {r['failed']} failed, {r['diverged']} diverged")
    met = sum(r["cheaper_match"] is not None for r in results)
    goal = sum(r["beats_all"] is not None for r in results)
    console.print(f"tasks with a found cell >= the best baseline at <= {RATIO}x its MACs: {met} of {len(results)}; "
                  f"better than every baseline by > 2 SE at no more MACs than the largest: {goal} of {len(results)}")


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(results))
    rows = -(-len(results) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(results):]:
        ax.set_visible(False)
    for ax, result in zip(axes.flat, results):
        for kind, marker, color in (("baseline", "s", "tab:gray"), ("found", "o", "tab:red")):
            cells = [c for c in result["cells"] if (c["baseline"] is not None) == (kind == "baseline")]
            ax.errorbar([c["macs"] for c in cells], [c["test"] for c in cells], yerr=[c["test_sd"] for c in cells],
                        fmt=marker, color=color, label=kind, capsize=2)
            if kind == "baseline":
                for c in cells:
                    ax.annotate(c["baseline"], (c["macs"], c["test"]), fontsize=6, xytext=(2, 2), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_title(result["task"])
        ax.set_xlabel("MACs per sample")
        metric = get_metric(result.get("metric", "accuracy"))
        ax.set_ylabel(f"test {metric.phrase} (mean ± s.d.)" + ("" if metric.maximize else ", lower is better"))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--minutes", type=float, default=5.0, help="search wall-time budget per task (<= 15)")
    parser.add_argument("--seeds", type=int, default=5, help="retraining seeds per confirmed cell")
    parser.add_argument("--top", type=int, default=4, help="found cells of the front to confirm per task")
    parser.add_argument("--eval-seeds", type=int, default=1, help="train.eval_seeds of the searches (selection on a mean)")
    parser.add_argument("--folds", type=int, default=1,
                        help="train.folds of the searches and confirmations (cross-validated selection; not with --eval-seeds)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--runs-dir", type=Path, help="keep the studies here (default: a temporary directory)")
    parser.add_argument("--show", type=Path, metavar="JSON", help="print the table and plot of an earlier run's results")
    args = parser.parse_args(argv)
    if args.folds > 1 and args.eval_seeds > 1:
        parser.error("--folds and --eval-seeds: choose one (each fold is its own seeded run)")
    console = Console(width=max(Console().width, 120))
    if args.show:
        results = json.loads(args.show.read_text())["results"]
        print_table(results, console)
        plot(results, args.show.with_suffix(".png"))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        root = args.runs_dir or Path(scratch)
        for task in args.tasks:
            console.rule(task)
            results.append(search_task(task, args.minutes, args.seeds, args.top, root, console, args.eval_seeds, args.folds))
            meta = {"cpus": os.cpu_count(), "load": os.getloadavg(), "results": results}
            (args.out / "vs_baselines.json").write_text(json.dumps(meta, indent=1))  # each task kept as it ends
    print_table(results, console)
    plot(results, args.out / "vs_baselines.png")
    console.print(f"wrote {args.out / 'vs_baselines.json'} and {args.out / 'vs_baselines.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
