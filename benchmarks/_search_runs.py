"""One real search of a config variant, then its confirmation: what the search benchmarks that compare
variants of one config share (a helper, not a script). `benchmarks/stopping_search.py` varies the
stopping policy, `benchmarks/warm_start_search.py` the hypernetwork's warm start.

A run reports its wall time (Ray's start-up is shared and left out; the confirmation is timed
apart), epochs trained, trials stopped and their stopping epochs, the search's best trial, and,
confirmed (its ``confirm_top`` front cells and the baselines retrained over more seeds, as
``search.confirm`` does), the best found cell's mean validation score and the confirmed front, whose
hypervolume `hypervolumes` measures against one reference point for every run of a config.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from optuna.trial import TrialState
from rich.console import Console

from nas import confirm
from nas.baselines import best_of, front_of, is_baseline
from nas.config import parse_config
from nas.search import run_search
from nas.study import REFERENCE_ATTR, hypervolume_2d, reference_score, study_metric


def one_search(config: dict[str, Any], seed: int, root: Path, *, confirm_seeds: int,
               confirm_train: dict[str, Any] | None = None) -> dict[str, Any]:
    """Search ``config`` (a config dict, its name unique per run) with ``seed``, then retrain its
    front cells and baselines over ``confirm_seeds`` more seeds with ``confirm_train`` (default: the
    config's own recipe; a common recipe compares what variants with different recipes found)."""
    parsed = parse_config({**config, "seed": seed, "search": {**config["search"], "confirm": 0}})
    start = time.perf_counter()
    outcome = run_search(parsed, runs_dir=root, console=Console(file=open(os.devnull, "w")))
    wall = time.perf_counter() - start
    study = outcome.study
    metric = study_metric(study)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.user_attrs.get("curve")]
    best = max(complete, key=lambda t: metric.oriented(t.values[0]))
    start = time.perf_counter()
    seeds = [seed + k for k in range(1, confirm_seeds + 1)]
    jobs = confirm.pending(study, confirm.targets(study, parsed.search.confirm_top), seeds) if seeds else []
    if jobs:
        confirm.run(study, jobs, data={"name": parsed.data.name, **parsed.data.options()},
                    train=confirm_train or parsed.train.model_dump(), cpus_per_job=parsed.search.cpus_per_trial)
    scores, confirmed = confirm.study_scores(study)  # the single runs when confirm_seeds is 0
    top = best_of([s for s in scores if s.baseline is None], metric)
    return {
        "seed": seed,
        "metric": metric.name,
        "max_epochs": parsed.train.epochs,
        "wall_s": wall,
        "confirm_s": time.perf_counter() - start,
        "trials": len(complete) + len(pruned),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "epochs": sum(len(t.user_attrs.get("curve", [])) for t in complete + pruned),
        "stopped": len(pruned),
        "stop_epochs": sorted(len(t.user_attrs["curve"]) for t in pruned),
        "best_val": best.values[0],
        "best_test": best.user_attrs.get("test_score"),
        "confirmed": confirmed,
        "confirmed_best": None if top is None else {"number": top.number, "val": top.val, "sd": top.val_sd,
                                                    "seeds": top.seeds, "test": top.test, "macs": top.macs},
        "confirmed_front": [(s.val, s.macs) for s in front_of(scores, metric) if math.isfinite(s.val)],
        "baselines": sum(1 for t in complete if is_baseline(t)),
        "max_macs": max(t.values[1] for t in complete),
        "reference": study.user_attrs.get(REFERENCE_ATTR),  # the score of guessing, for unbounded metrics
    }


def hypervolumes(rows: list[dict[str, Any]]) -> None:
    """Each row's confirmed-front hypervolume against one reference point for all ``rows`` (one
    config): the metric's reference score and the largest MACs of any run (x 1.01)."""
    from workers.metrics import get_metric

    metric = get_metric(rows[0]["metric"])
    worst_cost = max(r["max_macs"] for r in rows) * 1.01
    scores = [v for r in rows for v, _ in r["confirmed_front"]]
    ref = reference_score(metric, scores, rows[0]["reference"])
    for r in rows:
        r["hypervolume"] = hypervolume_2d(r["confirmed_front"], (ref, worst_cost), metric) / worst_cost
