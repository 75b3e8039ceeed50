"""Candidates trained over several seeds, and the statistics the benchmarks report about them.

`run_jobs` trains training jobs (a Spec, a dataset, a seed) in worker processes; `summarize`,
`format_stats` and `verdict` turn the runs of one candidate into mean and std over seeds and compare
two candidates with two standard errors. The activation, sparsity and SAFS benchmarks share them.
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import torch

from search_spaces import Spec

__all__ = ["STATS_HEADER", "format_stats", "mean_std", "run_jobs", "summarize", "train_job", "verdict"]


def _init_worker() -> None:
    torch.set_num_threads(1)  # candidates are tiny: one thread each, one process per core


def train_job(job: dict[str, Any]) -> dict[str, Any]:
    """Train ``job["spec"]`` (JSON) on ``job["data"]``; best-epoch validation and test score."""
    from workers.data import load_dataset
    from workers.training import CandidateDiverged, TrainConfig, Trainer

    start = time.perf_counter()
    data = load_dataset(job["data"], **job.get("data_options", {}))
    config = TrainConfig(epochs=job["epochs"], **job.get("train", {}))
    out = {k: v for k, v in job.items() if k != "spec"}
    try:
        trainer = Trainer(Spec.from_json(job["spec"]), data, config, seed=job["seed"])
        for _ in range(config.epochs):
            trainer.train_epoch()
        best = trainer.best
        out.update(score=best.score, test_score=best.test_score, error=None)
    except CandidateDiverged as exc:
        worst = data.scoring(config.metric).worst  # a diverged seed counts as the worst score
        out.update(score=worst, test_score=worst, error=str(exc))
    out["seconds"] = time.perf_counter() - start
    return out


_POOLS: dict[int, ProcessPoolExecutor] = {}


def run_jobs(jobs: list[dict[str, Any]], workers: int, retries: int = 3) -> list[dict[str, Any]]:
    """Train every job, ``workers`` processes at a time (spawned: no forked OpenMP state).

    The worker processes are kept for the next call (a search calls this once per batch). A worker
    that dies (killed from outside, out of memory) breaks the pool; the jobs not finished yet run again
    in a fresh pool, up to ``retries`` times (training is deterministic per seed: same results).
    """
    if workers <= 1:
        _init_worker()
        return [train_job(j) for j in jobs]
    done: dict[int, dict[str, Any]] = {}
    for _ in range(retries + 1):
        pending = [i for i in range(len(jobs)) if i not in done]
        if not pending:
            break
        if workers not in _POOLS:
            _POOLS[workers] = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker)
        try:
            futures = {_POOLS[workers].submit(train_job, jobs[i]): i for i in pending}
            for future in as_completed(futures):
                done[futures[future]] = future.result()
        except BrokenProcessPool as exc:
            _POOLS.pop(workers).shutdown(wait=False, cancel_futures=True)
            print(f"  a worker process died ({exc}); {len(jobs) - len(done)} jobs run again", flush=True)
    if len(done) < len(jobs):
        raise RuntimeError(f"{len(jobs) - len(done)} training jobs lost after {retries} retries")
    return [done[i] for i in range(len(jobs))]


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    values = list(values)
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


STATS_HEADER = f"{'val acc':>15} {'test acc':>15} {'seeds':>5}"


def summarize(runs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std over seeds of the best-epoch validation score and the test score at that
    epoch, the number of seeds and how many diverged."""
    runs = list(runs)
    val, test = mean_std(r["score"] for r in runs), mean_std(r["test_score"] for r in runs)
    return {"val_mean": val[0], "val_std": val[1], "test_mean": test[0], "test_std": test[1],
            "seeds": len(runs), "diverged": sum(r.get("error") is not None for r in runs)}


def format_stats(row: dict[str, Any]) -> str:
    """``val mean ± std  test mean ± std  seeds``, the columns of `STATS_HEADER`."""
    return (f"{row['val_mean']:.4f} ± {row['val_std']:.4f} {row['test_mean']:.4f} ± {row['test_std']:.4f} "
            f"{row['seeds']:>5}")


def verdict(found: dict[str, Any], base: dict[str, Any]) -> tuple[float, float, str]:
    """(mean validation gap found - base, two standard errors of the gap, "beats"/"ties with"/"loses to")."""
    gap = found["val_mean"] - base["val_mean"]
    n = max(1, min(found["seeds"], base["seeds"]))
    noise = 2 * ((found["val_std"] ** 2 + base["val_std"] ** 2) / n) ** 0.5
    return gap, noise, "beats" if gap > noise else "ties with" if gap > -noise else "loses to"
