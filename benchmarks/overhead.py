"""Per-trial overhead of the full search stack (Ray Tune + our study searcher + proposer) against a
plain Optuna loop, on trivial trials and on 1-second trials, with 1 and 2 workers.

    python benchmarks/overhead.py [--trials 40] [--slow-trials 8]

Both sides propose with Optuna's RandomSampler over the quickstart space and write to SQLite, so the
difference is the stack itself, not a sampler's cost. Prints a table and writes
benchmarks/results/overhead.json. Overhead per trial is
(wall time - the trials' own work / workers) / trials, measured after Ray has started (cluster
start-up is a one-off, reported separately).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import optuna
from ray import tune
from rich.console import Console
from rich.table import Table

from nas.config import parse_config
from nas.proposers import make_sampler
from nas.search import _init_ray, run_search
from nas.study import make_storage
from workers.data import load_dataset

RESULTS = Path(__file__).parent / "results"


LOG_ENV = "NAS_OVERHEAD_LOG"  # trials append "pid start end" here (set before Ray starts: workers inherit it)


def _log_span(start: float) -> None:
    with open(os.environ[LOG_ENV], "a") as f:
        f.write(f"{os.getpid()} {start!r} {time.time()!r}\n")


def _report_done(config: dict, seconds: float) -> None:
    start = time.time()
    if seconds:
        time.sleep(seconds)
    _log_span(start)
    epochs = config["train"]["epochs"]
    tune.report({"score": 0.5, "loss": 1.0, "epoch": epochs, "best_score": 0.5,
                 "best_test_score": 0.5, "best_epoch": epochs})


def spans(path: Path, begin: float, end: float) -> dict[str, float]:
    """Mean gap between consecutive trials of each worker, and the one-off costs before and after."""
    rows = [line.split() for line in path.read_text().splitlines()]
    by_worker: dict[str, list[tuple[float, float]]] = {}
    for pid, start, stop in rows:
        by_worker.setdefault(pid, []).append((float(start), float(stop)))
    gaps = []
    for runs in by_worker.values():
        runs.sort()
        gaps += [b[0] - a[1] for a, b in zip(runs, runs[1:])]
    first = min(float(r[1]) for r in rows)
    last = max(float(r[2]) for r in rows)
    return {"gap_ms": 1000 * statistics.fmean(gaps), "gap_median_ms": 1000 * statistics.median(gaps),
            "gaps": len(gaps), "startup_s": first - begin, "teardown_s": end - last}


def trivial_trial(config: dict) -> None:
    """A trial that does no work: the whole cost is the stack's."""
    _report_done(config, 0.0)


def one_second_trial(config: dict) -> None:
    """A trial that works for one second."""
    _report_done(config, 1.0)


def _measured(run) -> dict[str, float]:
    """Run one search, its trials logging to the (emptied) log; its gaps, one-off costs and wall time."""
    log = Path(os.environ[LOG_ENV])
    log.write_text("")
    begin = time.time()
    run()
    end = time.time()
    return {**spans(log, begin, end), "wall_s": end - begin}


def plain_optuna(trials: int, seconds: float, root: Path) -> dict[str, float]:
    """The same proposals in a plain Optuna loop on SQLite, one worker."""
    config = parse_config({})
    space = config.space.make()
    task = load_dataset("digits-seq").task
    study = optuna.create_study(
        storage=make_storage(f"sqlite:///{root}/plain-{seconds}.db"),  # the same SQLite settings as the stack
        directions=["maximize", "minimize"],
        sampler=make_sampler("random", seed=0, space=space),
    )

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        spec = space.suggest(trial)
        start = time.time()
        if seconds:
            time.sleep(seconds)
        _log_span(start)
        return 0.5, space.cost(spec, task)["macs"]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _measured(lambda: study.optimize(objective, n_trials=trials))


def bare_ray_tune(trials: int, seconds: float, workers: int, root: Path) -> dict[str, float]:
    """Stock Ray Tune with actor reuse and its own random search: the floor under our stack."""
    tuner = tune.Tuner(
        one_second_trial if seconds else trivial_trial,
        param_space={"train": {"epochs": 1}, "x": tune.uniform(0, 1)},
        tune_config=tune.TuneConfig(num_samples=trials, reuse_actors=True, max_concurrent_trials=workers),
        run_config=tune.RunConfig(storage_path=str(root / f"bare-{seconds}-{workers}"), verbose=0),
    )
    return _measured(tuner.fit)


def full_stack(trials: int, seconds: float, workers: int, root: Path, console: Console) -> dict[str, float]:
    name = f"overhead-{int(seconds)}s-{workers}w"
    config = parse_config(
        {"name": name, "train": {"epochs": 1}, "search": {"trials": trials, "sampler": "random", "max_concurrent": workers}}
    )
    trainable = one_second_trial if seconds else trivial_trial
    return _measured(lambda: run_search(config, runs_dir=root, console=console, trainable=trainable))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40, help="trivial trials per run")
    parser.add_argument("--slow-trials", type=int, default=20, help="1-second trials per run")
    args = parser.parse_args()
    console = Console(width=150)
    quiet = Console(file=open(os.devnull, "w"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ[LOG_ENV] = str(root / "trials.log")  # set before Ray starts, so its workers inherit it
        start = time.perf_counter()
        _init_ray(None)
        ray_start = time.perf_counter() - start
        logging.getLogger("ray").setLevel(logging.ERROR)
        rows = []
        for seconds, trials in ((0.0, args.trials), (1.0, args.slow_trials)):
            rows.append({"trial": f"{seconds:g} s", "stack": "optuna", "workers": 1, "trials": trials,
                         **plain_optuna(trials, seconds, root)})
            for workers in (1, 2):
                for stack in ("ray tune", "nas"):
                    if stack == "nas":
                        stats = full_stack(trials, seconds, workers, root, quiet)
                    else:
                        stats = bare_ray_tune(trials, seconds, workers, root)
                    rows.append({"trial": f"{seconds:g} s", "stack": stack, "workers": workers, "trials": trials, **stats})
    table = Table(title=f"per-trial overhead = mean gap between a worker's consecutive trials; nas = Ray Tune + study "
                        f"searcher, ray tune = stock Tuner with actor reuse, optuna = plain loop (Ray start-up "
                        f"{ray_start:.1f} s, load average {os.getloadavg()[0]:.1f})")
    for column in ("trial", "stack", "workers", "trials", "overhead ms/trial", "median ms", "overhead %",
                   "start-up s", "tear-down s", "wall s", "trials/s"):
        table.add_column(column, justify="right")
    for r in rows:
        work = float(r["trial"].split()[0])
        percent = f"{100 * r['gap_ms'] / 1000 / work:.1f}%" if work else "-"
        table.add_row(r["trial"], r["stack"], str(r["workers"]), str(r["trials"]), f"{r['gap_ms']:.1f}",
                      f"{r['gap_median_ms']:.1f}", percent, f"{r['startup_s']:.2f}", f"{r['teardown_s']:.2f}",
                      f"{r['wall_s']:.2f}", f"{r['trials'] / r['wall_s']:.2f}")
    console.print(table)
    for seconds in ("0 s", "1 s"):
        pick = {(r["stack"], r["workers"]): r for r in rows if r["trial"] == seconds}
        plain, bare, ours = pick[("optuna", 1)], pick[("ray tune", 1)], pick[("nas", 1)]
        console.print(f"{seconds} trials, 1 worker: nas {ours['gap_ms']:.1f} ms per trial, stock Ray Tune "
                      f"{bare['gap_ms']:.1f} ms, plain Optuna {plain['gap_ms']:.1f} ms (nas / plain Optuna "
                      f"{ours['gap_ms'] / max(plain['gap_ms'], 1e-9):.1f}x); targets: < 50 ms per trivial trial, "
                      f"< 5% of a 1-s trial")
    RESULTS.mkdir(exist_ok=True)
    load = os.getloadavg()[0]
    (RESULTS / "overhead.json").write_text(json.dumps({"ray_start_s": ray_start, "load_average": load, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
