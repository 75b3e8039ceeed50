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


def _report_done(config: dict, seconds: float) -> None:
    if seconds:
        time.sleep(seconds)
    epochs = config["train"]["epochs"]
    tune.report({"accuracy": 0.5, "loss": 1.0, "epoch": epochs, "best_accuracy": 0.5,
                 "best_test_accuracy": 0.5, "best_epoch": epochs})


def trivial_trial(config: dict) -> None:
    """A trial that does no work: the whole cost is the stack's."""
    _report_done(config, 0.0)


def one_second_trial(config: dict) -> None:
    """A trial that works for one second."""
    _report_done(config, 1.0)


def plain_optuna(trials: int, seconds: float) -> float:
    """Wall time of the same proposals in a plain Optuna loop on SQLite, one worker."""
    config = parse_config({})
    space = config.space.make()
    task = load_dataset("digits-seq").task
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(
            storage=make_storage(f"sqlite:///{tmp}/plain.db"),  # the same SQLite settings as the stack
            directions=["maximize", "minimize"],
            sampler=make_sampler("random", seed=0, space=space),
        )

        def objective(trial: optuna.Trial) -> tuple[float, float]:
            spec = space.suggest(trial)
            if seconds:
                time.sleep(seconds)
            return 0.5, space.cost(spec, task)["macs"]

        start = time.perf_counter()
        study.optimize(objective, n_trials=trials)
        return time.perf_counter() - start


def bare_ray_tune(trials: int, seconds: float, workers: int, root: Path) -> float:
    """Stock Ray Tune with actor reuse and its own random search: the floor under our stack."""
    start = time.perf_counter()
    tune.Tuner(
        one_second_trial if seconds else trivial_trial,
        param_space={"train": {"epochs": 1}, "x": tune.uniform(0, 1)},
        tune_config=tune.TuneConfig(num_samples=trials, reuse_actors=True, max_concurrent_trials=workers),
        run_config=tune.RunConfig(storage_path=str(root / f"bare-{seconds}-{workers}"), verbose=0),
    ).fit()
    return time.perf_counter() - start


def full_stack(trials: int, seconds: float, workers: int, root: Path, console: Console) -> float:
    name = f"overhead-{int(seconds)}s-{workers}w"
    config = parse_config(
        {"name": name, "train": {"epochs": 1}, "search": {"trials": trials, "sampler": "random", "max_concurrent": workers}}
    )
    start = time.perf_counter()
    run_search(config, runs_dir=root, console=console, trainable=one_second_trial if seconds else trivial_trial)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40, help="trivial trials per run")
    parser.add_argument("--slow-trials", type=int, default=20, help="1-second trials per run")
    args = parser.parse_args()
    console = Console()
    quiet = Console(file=open("/dev/null", "w"))
    start = time.perf_counter()
    _init_ray(None)
    ray_start = time.perf_counter() - start
    logging.getLogger("ray").setLevel(logging.ERROR)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds, trials in ((0.0, args.trials), (1.0, args.slow_trials)):
            plain = plain_optuna(trials, seconds)
            rows.append({"trial": f"{seconds:g} s", "stack": "optuna", "workers": 1, "trials": trials,
                         "wall_s": plain, "overhead_ms": 1000 * (plain - trials * seconds) / trials})
            for workers in (1, 2):
                for stack, run in (("ray tune", bare_ray_tune), ("nas", full_stack)):
                    args_ = (trials, seconds, workers, Path(tmp)) + ((quiet,) if stack == "nas" else ())
                    wall = run(*args_)
                    overhead = (wall - trials * seconds / workers) / trials
                    rows.append({"trial": f"{seconds:g} s", "stack": stack, "workers": workers,
                                 "trials": trials, "wall_s": wall, "overhead_ms": 1000 * overhead,
                                 "throughput_per_s": trials / wall})
    table = Table(title=f"per-trial overhead: nas = Ray Tune + study searcher, ray tune = stock Tuner with "
                        f"actor reuse, optuna = plain loop (Ray start-up {ray_start:.1f} s, not included)")
    for column in ("trial", "stack", "workers", "trials", "wall s", "overhead ms/trial", "trials/s", "overhead %"):
        table.add_column(column, justify="right")
    for r in rows:
        work = float(r["trial"].split()[0])
        percent = f"{100 * r['overhead_ms'] / 1000 / work:.1f}%" if work else "-"
        table.add_row(r["trial"], r["stack"], str(r["workers"]), str(r["trials"]), f"{r['wall_s']:.2f}",
                      f"{r['overhead_ms']:.1f}", f"{r['trials'] / r['wall_s']:.2f}", percent)
    console.print(table)
    for seconds in ("0 s", "1 s"):
        plain = next(r for r in rows if r["trial"] == seconds and r["stack"] == "optuna")
        ours = next(r for r in rows if r["trial"] == seconds and r["workers"] == 1 and r["stack"] == "nas")
        bare = next(r for r in rows if r["trial"] == seconds and r["workers"] == 1 and r["stack"] == "ray tune")
        console.print(f"{seconds} trials, 1 worker: stack overhead {ours['overhead_ms']:.1f} ms vs plain Optuna "
                      f"{plain['overhead_ms']:.1f} ms per trial (ratio {ours['overhead_ms'] / max(plain['overhead_ms'], 1e-9):.0f}x); "
                      f"stock Ray Tune alone {bare['overhead_ms']:.1f} ms")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "overhead.json").write_text(json.dumps({"ray_start_s": ray_start, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
