"""What the benchmark scripts share (a helper, not a script): where results go, names of known
activation functions, and the sparsity/SAFS search pipeline (setup, the TPE search over the space
through `nas.trial_loop.TrialLoop`, cell descriptions, command-line options).

Training over seeds and the statistics reported are in the package: `nas.seed_runs`.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from typing import Any

import optuna

from nas.config import load_config
from nas.proposers import make_sampler
from nas.seed_runs import run_jobs
from nas.trial_loop import TrialLoop
from search_spaces import SearchSpace, Spec, Task
from search_spaces.activations import probe_signature
from search_spaces.sparsity_space import overall_density
from workers.data import load_dataset


BASELINES = {"tanh": "tanh", "relu": "relu", "silu": "mul(x, sigmoid(x))", "gelu": "gelu"}
KNOWN = {**BASELINES, "sigmoid": "sigmoid", "identity": "x", "softplus": "softplus", "swish": "mul(x, sigmoid(x))"}
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def label(text: str) -> str:
    """``text``, with the name of a known function it equals (by probe signature)."""
    signature = probe_signature(text)
    names = [n for n, t in KNOWN.items() if probe_signature(t) == signature]
    return f"{text} (= {names[0]})" if names else text


# --- the sparsity and SAFS searches -------------------------------------------------------------

SHORT = {"magnitude": "mag", "random": "rnd", "block": "blk", "nm": "nm", "erdos_renyi": "er",
         "watts_strogatz": "ws", "barabasi_albert": "ba", "dense": ""}


def describe(spec: Spec, input_size: int) -> str:
    """``h64 d=0.19 rx1 rh.25mag ...`` (per matrix: gate, x|h, density, pattern)."""
    parts = [f"{e.dst}{'x' if e.src == 'x' else 'h'}{e.density:g}{SHORT[e.pattern]}"
             for e in spec.linear_edges(input_size)]
    return f"h{spec.hidden_size} d={overall_density(spec, input_size):.3f} " + " ".join(parts)


def jobs_for(spec: Spec, name: str, seeds: range, args: argparse.Namespace, train: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"spec": spec.to_json(), "name": name, "data": "digits-seq", "epochs": args.epochs, "seed": s,
             "train": train} for s in seeds]


def search(space: SearchSpace, task: Any, args: argparse.Namespace, train: dict[str, Any],
           warm: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Multi-objective TPE over the space, seed 0 per trial, the ``warm`` params first, until
    ``args.trials`` distinct cells trained. A proposal the space rejects (an unsafe activation in the
    joint SAFS space) fails untrained; an isomorphic cell gets its twin's score without training."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    sampler = make_sampler("tpe", seed=0, space=space, options={"n_startup_trials": 10})
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    for params in warm:
        study.enqueue_trial(params)
    n_warm = len(warm)
    loop = TrialLoop(study, space, task, fail_in_flight=True, max_invalid=10_000)
    trials: list[dict[str, Any]] = []
    while len(trials) < args.trials:
        batch = [p for p in (loop.propose() for _ in range(args.workers)) if p is not None]
        jobs = [jobs_for(p.spec, f"trial{p.number}", range(1), args, train)[0] for p in batch]
        for p, result in zip(batch, run_jobs(jobs, args.workers)):
            macs = p.cost["macs"]
            loop.complete(p, [result["score"], macs])
            trials.append({**result, "macs": macs, "params": p.trial.params, "hash": p.key,
                           "source": "warm" if p.number < n_warm else "tpe", "cell": describe(p.spec, task.input_size),
                           "spec": p.spec.to_json(), "density": overall_density(p.spec, task.input_size)})
        print(f"  search: {len(trials)}/{args.trials} trained", flush=True)
    return trials


def add_common_args(parser: argparse.ArgumentParser, name: str, *, seeds: int, trials: int) -> None:
    """--seeds, --trials, --workers, --config (``configs/<name>.yaml``), --out (``results/<name>.json``)
    and --show."""
    parser.add_argument("--seeds", type=int, default=seeds)
    parser.add_argument("--trials", type=int, default=trials, help="distinct cells trained by the search")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--config", default=f"configs/{name}.yaml")
    parser.add_argument("--out", default=os.path.join(RESULTS, f"{name}.json"))
    parser.add_argument("--show", action="store_true", help="print the tables of the last run's JSON, train nothing")


def print_lines(lines: list[str]) -> list[str]:
    """Print the verdict lines after a blank line; return them (for the JSON)."""
    print()
    for line in lines:
        print(line)
    return lines


def show_last(args: argparse.Namespace, print_tables: Any) -> bool:
    """With ``--show``, print the tables of ``args.out`` and return True."""
    if args.show:
        with open(args.out) as f:
            last = json.load(f)
        print_tables(last["table"], last["args"]["seeds"])
    return args.show


def setup(args: argparse.Namespace) -> tuple[Any, Any, Task, dict[str, Any]]:
    """The config, its space, the digits-seq task and the training options of ``args.config``."""
    config = load_config(args.config)
    train = {"lr": config.train.lr, "batch_size": config.train.batch_size, "prune_until": config.train.prune_until}
    return config, config.space.make(), load_dataset("digits-seq").task, train
