"""Activation-function search on real data, against tanh, ReLU, SiLU (Swish) and GELU in the same run.

Reproduces the protocol of "Searching for Activation Functions" (Ramachandran et al., 2017) on a GRU
(hidden 32) whose candidate activation (the new gate's tanh) is searched:

1. **Exhaustive screen** of the small space of ``configs/activation_search.yaml``
   (``binary(unary(x), unary(x))``, 9 unary x 6 binary units): unsafe functions are rejected and
   equivalent expressions merged before any training (`ActivationSpace.unique_params`), then every
   distinct function trains once (seed 0) on digits-seq.
2. **TPE on the large space** (``units: 2``, the full unary list: ~1M assignments), a fixed number of
   trials scored the same way; unsafe proposals fail without training, duplicates reuse their score.
3. **Confirmation**: the top screened functions, TPE's best and the baselines train with fresh seeds
   (1..N, never the screening seed) on digits-seq and on the adding problem; the table gives the
   mean and std of the validation accuracy at the best epoch and the test accuracy at that epoch.

Run: ``python benchmarks/activation_search.py [--seeds 5 --top 3 --tpe-trials 30 --workers 2]``.
Writes ``benchmarks/results/activation_search.json``; ``--show`` prints its tables again without training.
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
import torch  # noqa: E402

from nas.config import load_config  # noqa: E402
from nas.proposers import make_sampler  # noqa: E402
from nas.seed_runs import STATS_HEADER, format_stats, run_jobs, summarize, verdict  # noqa: E402
from nas.trial_loop import TrialLoop  # noqa: E402
from _shared import BASELINES, RESULTS, label  # noqa: E402
from search_spaces import ActivationSpace, get_space, gru  # noqa: E402
from search_spaces.activations import probe_signature  # noqa: E402

# the second task: the adding problem, shortened so a candidate trains in about a second
TASKS = {"digits-seq": ({}, 12), "adding": ({"n": 2000, "length": 20}, 12)}


# --- the search ----------------------------------------------------------------------------------


def _job(text: str, data: str, seed: int, epochs: int, options: dict[str, Any], hidden: int) -> dict[str, Any]:
    return {"spec": gru(hidden, text).to_json(), "activation": text, "data": data, "data_options": options,
            "epochs": epochs, "seed": seed}


def screen(space: ActivationSpace, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every distinct safe function of ``space`` (plus the baselines) once on digits-seq, seed 0."""
    unique = [text for _, text in space.unique_params()]
    texts = list(dict.fromkeys([*BASELINES.values(), *unique]))
    print(f"screen: {space.grid_size()} assignments -> {len(unique)} distinct safe functions "
          f"(+ baselines), {args.screen_epochs} epochs each on digits-seq", flush=True)
    jobs = [_job(t, "digits-seq", 0, args.screen_epochs, {}, args.hidden) for t in texts]
    return run_jobs(jobs, args.workers)


def tpe_search(args: argparse.Namespace) -> list[dict[str, Any]]:
    """TPE over the large ``units=2`` space; unsafe proposals fail untrained, duplicates reuse scores."""
    space = get_space("activation", cell="gru", hidden_size=args.hidden, units=2)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", seed=0, space=space))
    from workers.data import load_dataset

    task = load_dataset("digits-seq").task
    loop = TrialLoop(study, space, task, fail_in_flight=True, max_invalid=20 * args.tpe_trials)
    log: list[dict[str, Any]] = []
    while loop.counts.complete - loop.counts.duplicates < args.tpe_trials and loop.counts.started < 20 * args.tpe_trials:
        batch = [p for p in (loop.propose() for _ in range(args.workers)) if p is not None]
        if not batch:
            break
        jobs = [_job(space.expression(p.trial.params), "digits-seq", 0, args.screen_epochs, {}, args.hidden) for p in batch]
        for p, result in zip(batch, run_jobs(jobs, args.workers)):
            loop.complete(p, [result["score"]])
            log.append({"kind": "trained", **result})
    for t in study.get_trials(deepcopy=False):
        if "error" in t.user_attrs:
            log.append({"kind": "unsafe", "activation": space.expression(t.params), "reason": t.user_attrs["error"]})
        elif "duplicate_of" in t.user_attrs:
            log.append({"kind": "duplicate", "activation": space.expression(t.params), "of": t.user_attrs["duplicate_of"]})
    unsafe, duplicates = loop.counts.invalid, loop.counts.duplicates
    trained = len(log) - unsafe - duplicates
    print(f"tpe (units=2): {len(log)} proposals, {trained} trained, {unsafe} unsafe rejected, "
          f"{duplicates} duplicates skipped", flush=True)
    return log


def confirm(candidates: dict[str, str], args: argparse.Namespace) -> list[dict[str, Any]]:
    jobs = [
        {**_job(text, data, seed, epochs, options, args.hidden), "name": name}
        for data, (options, epochs) in TASKS.items()
        for name, text in candidates.items()
        for seed in range(1, args.seeds + 1)
    ]
    print(f"confirm: {len(candidates)} functions x {len(TASKS)} tasks x {args.seeds} seeds", flush=True)
    return run_jobs(jobs, args.workers)


def print_table(rows: list[dict[str, Any]], candidates: dict[str, str]) -> list[dict[str, Any]]:
    summary = []
    for data in TASKS:
        print(f"\n{data}: best-epoch validation accuracy and test accuracy, mean ± std over seeds "
              "(B: baseline, *: found)")
        print(f"{'':3} {'function':44} {STATS_HEADER} {'diverged':>8}")
        table = []
        for name, text in candidates.items():
            stats = summarize(r for r in rows if r["data"] == data and r["name"] == name)
            table.append({"data": data, "name": name, "activation": text, **stats, "baseline": name in BASELINES})
        table.sort(key=lambda r: -r["val_mean"])
        for r in table:
            tag = "B" if r["baseline"] else "*"
            print(f"{tag:3} {label(r['activation'])[:44]:44} {format_stats(r)} {r['diverged']:>8}")
        best_base = max((r for r in table if r["baseline"]), key=lambda r: r["val_mean"])
        best_found = max((r for r in table if not r["baseline"]), key=lambda r: r["val_mean"])
        gap, noise, word = verdict(best_found, best_base)
        print(f"best found {label(best_found['activation'])} {word} the best baseline "
              f"{best_base['name']} ({gap * 100:+.2f} points; 2 standard errors = {noise * 100:.2f})")
        summary += table
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--top", type=int, default=3, help="screened functions to confirm")
    parser.add_argument("--screen-epochs", type=int, default=5)
    parser.add_argument("--tpe-trials", type=int, default=30, help="trained TPE trials on units=2 (0: skip)")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--config", default="configs/activation_search.yaml")
    parser.add_argument("--show", action="store_true", help="print the tables of the last run's JSON, train nothing")
    args = parser.parse_args()
    if args.show:
        with open(os.path.join(RESULTS, "activation_search.json")) as f:
            last = json.load(f)
        print_table(last["runs"], last["candidates"])
        return
    start = time.perf_counter()
    torch.set_num_threads(1)
    space = load_config(args.config).space.make(hidden_size=args.hidden)
    screened = screen(space, args)
    screened.sort(key=lambda r: -r["score"])
    baseline_signatures = {probe_signature(t) for t in BASELINES.values()}
    top = [r for r in screened if probe_signature(r["activation"]) not in baseline_signatures][: args.top]
    print("screen top 10 (seed 0, digits-seq val acc):")
    for r in screened[:10]:
        print(f"  {r['score']:.4f}  {label(r['activation'])}")
    candidates = dict(BASELINES)
    for i, r in enumerate(top):
        candidates[f"screen#{i + 1}"] = r["activation"]
    tpe_log: list[dict[str, Any]] = []
    if args.tpe_trials > 0:
        tpe_log = tpe_search(args)
        trained = sorted((r for r in tpe_log if r["kind"] == "trained"), key=lambda r: -r["score"])
        new = [r for r in trained if probe_signature(r["activation"]) not in
               {probe_signature(t) for t in candidates.values()}]
        if new:
            candidates["tpe#1"] = new[0]["activation"]
            print(f"tpe best new function: {new[0]['score']:.4f}  {label(new[0]['activation'])}")
    rows = confirm(candidates, args)
    summary = print_table(rows, candidates)
    elapsed = time.perf_counter() - start
    print(f"\ntotal {elapsed:.0f} s on {os.cpu_count()} CPUs, {args.workers} workers x 1 thread")
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, "activation_search.json")
    with open(path, "w") as f:
        json.dump({"args": vars(args), "seconds": elapsed, "screen": screened, "tpe": tpe_log,
                   "candidates": candidates, "runs": rows, "summary": summary}, f, indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
