"""Hypernetwork proxy ranking and warm start on ``digits-seq``, against baselines in the same run.

1. Train the RNN hypernetwork SMASH-style over random cells of the quickstart space (4 nodes,
   hidden 16/32/48, tanh/relu/sigmoid/identity, add/mul).
2. Sample ``--candidates`` new cells; score each cheaply: the hypernetwork proxy (validation expected
   accuracy -- the mean probability of the correct label -- with generated weights), the fine-tuned
   proxy (the same after ``--finetune-steps`` Adam steps from the generated weights,
   `hyper.finetune_score`), and the baselines: the same Adam steps from the candidate's random init,
   the accuracy of its random init, its parameter count and its MACs (bigger-is-better, common
   zero-cost proxies; `search_spaces.cost`).
3. Train every candidate normally (``workers.training.Trainer``, ``--epochs`` epochs, the quickstart
   training config) from its random init and, separately, warm-started from generated weights.
   Trained accuracy is the best epoch's validation accuracy, as the search records it.
4. Print Spearman and Kendall tau between each score and the trained accuracy, the partial Spearman
   given size (`hyper.partial_spearman` on log parameters: what a score ranks beyond size), each
   score's seconds per candidate, whether the fine-tuned proxy meets issue 20's bar (Spearman >= 0.6
   and >= the parameter count's + 0.2), and how many epochs a warm-started candidate needs to reach
   the best accuracy its random-initialised twin reaches in all ``--epochs`` epochs, and each score's
   Spearman against the warm-started runs' accuracy (what a proxy would rank if searches trained
   every cell from generated weights: `hyper.warm_start` as the recipe). A reference row
   retrains every candidate with another seed: how well training itself agrees with the trained
   accuracy (the ceiling any proxy can hope for).

Usage:
    python benchmarks/hyper_rank.py                       # table + benchmarks/results/hyper_rank.json
    python benchmarks/hyper_rank.py --steps 300 --candidates 12 --epochs 6   # a quick look
    python benchmarks/hyper_rank.py --candidates 30 --no-seed-baseline --no-warm-start   # ranking only
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr

from hyper import HyperConfig, HyperNetwork, HyperTrainer, finetune_score, partial_spearman
from hyper.candidate import accuracy
from hyper.finetune import short_training_score
from nas.trial_loop import distinct_samples
from search_spaces import RecurrentCellSpace, Spec, build, cost
from workers.data import load_dataset
from workers.training import TrainConfig, Trainer

REPO = Path(__file__).resolve().parent.parent
SPACE = RecurrentCellSpace(num_nodes=4, hidden_sizes=(16, 32, 48))
TRAIN = dict(batch_size=64, lr=0.01, optimizer="adam", grad_clip=1.0)  # configs/quickstart.yaml


def _train_curve(job: tuple[str, dict[str, torch.Tensor] | None, int, int]) -> list[float]:
    """Validation accuracy after each epoch (index 0: before training); 0.0 from a divergence on."""
    spec_json, init_state, epochs, seed = job
    torch.set_num_threads(1)
    data = load_dataset("digits-seq")
    trainer = Trainer(Spec.from_json(spec_json), data, TrainConfig(epochs=epochs, **TRAIN), seed=seed, init_state=init_state)
    curve = [accuracy(trainer.model, dict(trainer.model.named_parameters()), data.val.x, data.val.y, "classify")[0]]
    try:
        for _ in range(epochs):
            curve.append(trainer.train_epoch().score)
    except Exception:  # a diverged candidate scores what it reached
        curve += [0.0] * (epochs + 1 - len(curve))
    return curve


FINETUNED = "fine-tuned proxy (generated w. + Adam steps)"  # the row issue 20's bar is checked on


def _ranks(proxy: list[float], target: list[float], log_params: list[float], seconds: float) -> dict[str, float]:
    """Rank agreement of one score with the trained accuracy, beyond size too, and its cost."""
    return {
        "spearman": float(spearmanr(proxy, target).statistic),
        "kendall": float(kendalltau(proxy, target).statistic),
        "partial_spearman": _finite(partial_spearman(proxy, target, log_params)),  # None: size itself
        "seconds_per_candidate": seconds,
    }


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


def _timed(score: Callable[[Spec], float], specs: list[Spec]) -> tuple[list[float], float]:
    """Each Spec's score and the mean seconds per candidate."""
    t0 = time.perf_counter()
    values = [float(score(s)) for s in specs]
    return values, (time.perf_counter() - t0) / len(specs)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=4000, help="hypernetwork training steps")
    ap.add_argument("--candidates", type=int, default=50)
    ap.add_argument("--epochs", type=int, default=12, help="normal training epochs per candidate")
    ap.add_argument("--finetune-steps", type=int, default=100,
                    help="Adam steps of the fine-tuned proxy and of its random-init baseline")
    ap.add_argument("--finetune-lr", type=float, default=0.003, help="the fine-tuned proxy's learning rate "
                    "(its random-init baseline uses training's, %s)" % TRAIN["lr"])
    ap.add_argument("--jobs", type=int, default=2, help="processes training candidates")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-seed-baseline", dest="seed_baseline", action="store_false",
                    help="skip retraining every candidate with another seed (the noise-ceiling row)")
    ap.add_argument("--no-warm-start", dest="warm_start", action="store_false",
                    help="skip training every candidate warm-started from generated weights (the warm-start table)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "hyper_rank.json"))
    args = ap.parse_args(argv)
    for name in ("steps", "epochs", "jobs"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.candidates < 3:
        ap.error(f"--candidates must be at least 3 for a rank correlation, got {args.candidates}")
    if args.finetune_steps < 1:
        ap.error(f"--finetune-steps must be at least 1, got {args.finetune_steps}")
    if not args.finetune_lr > 0:
        ap.error(f"--finetune-lr must be positive, got {args.finetune_lr}")
    torch.set_num_threads(1)  # one thread: measured faster than two on the shared 2-core machine
    data = load_dataset("digits-seq")
    task, train, val = data.task, data.train, data.val
    start = time.perf_counter()

    # 1. the hypernetwork
    net = HyperNetwork(HyperConfig(seed=args.seed))
    trainer = HyperTrainer(net, task, train.x, train.y, sample_spec=SPACE.sample)
    loss = trainer.train(args.steps)
    hyper_s = time.perf_counter() - start
    print(f"hypernetwork: {sum(p.numel() for p in net.parameters()):,} parameters, {args.steps} steps in {hyper_s:.0f} s, "
          f"recent loss {loss:.3f}, skipped candidates {trainer.skipped}")

    # 2. candidates and cheap scores, each timed
    rng = np.random.default_rng(args.seed + 10_000)
    specs = distinct_samples(SPACE, args.candidates, rng)
    k = args.finetune_steps
    short = dict(steps=k, batch_size=TRAIN["batch_size"], grad_clip=TRAIN["grad_clip"], seed=args.seed)

    def from_random_init(s: Spec) -> float:  # another init than the trained accuracy's (seed 0), as the reference row
        model = build(s, task, seed=1)
        return short_training_score(model, dict(model.named_parameters()), task.objective, train.x, train.y, val.x, val.y,
                                    lr=TRAIN["lr"], **short)

    def init_accuracy(s: Spec) -> float:
        model = build(s, task, seed=0)
        return accuracy(model, dict(model.named_parameters()), val.x, val.y, "classify")[0]

    scores = {
        "hypernetwork proxy (val p(label), generated w.)": _timed(lambda s: trainer.proxy_score(s, val.x, val.y), specs),
        FINETUNED: _timed(lambda s: finetune_score(trainer.ema, s, task, train.x, train.y, val.x, val.y, lr=args.finetune_lr, **short), specs),
        "baseline: random init (seed 1) + the same steps": _timed(from_random_init, specs),
        "baseline: random-init val acc": _timed(init_accuracy, specs),
        "baseline: parameter count": _timed(lambda s: cost(s, task)["params"], specs),
        "baseline: MACs": _timed(lambda s: cost(s, task)["macs"], specs),
    }
    n_params = scores["baseline: parameter count"][0]
    log_params = np.log(n_params).tolist()
    warm_states = [trainer.generate_state(s) for s in specs]  # the averaged network, as the proxy

    # 3. normal training, random init and warm start
    t0 = time.perf_counter()
    n = len(specs)
    jobs = [(s.to_json(), None, args.epochs, 0) for s in specs]
    if args.warm_start:
        jobs += [(s.to_json(), w, args.epochs, 0) for s, w in zip(specs, warm_states)]
    if args.seed_baseline:
        jobs += [(s.to_json(), None, args.epochs, 1) for s in specs]
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        curves = pool.map(_train_curve, jobs, chunksize=1)
    train_s = time.perf_counter() - t0
    cold = curves[:n]
    warm = curves[n : 2 * n] if args.warm_start else []
    trained = [max(c[1:]) for c in cold]
    train_one_s = train_s * args.jobs / len(jobs)  # process-seconds to train one candidate

    # 4. report
    rows = {name: _ranks(values, trained, log_params, seconds) for name, (values, seconds) in scores.items()}
    if args.seed_baseline:  # the noise ceiling: how well training itself ranks, seed 1 against seed 0
        rows[f"reference: trained acc with another seed ({args.epochs} ep)"] = _ranks(
            [max(c[1:]) for c in curves[-n:]], trained, log_params, train_one_s
        )
    fine, size = rows[FINETUNED]["spearman"], rows["baseline: parameter count"]["spearman"]
    met = fine >= 0.6 and fine >= size + 0.2
    print(f"\n{n} candidates, trained {args.epochs} epochs each (trained acc: min {min(trained):.3f}, "
          f"median {np.median(trained):.3f}, max {max(trained):.3f}); {train_one_s:.1f} s to train one; "
          f"fine-tuned proxy: {k} Adam steps at lr {args.finetune_lr:g} from the generated weights")
    print(f"{'score':<50} {'Spearman':>9} {'Kendall':>9} {'partial|size':>12} {'s/cand.':>8}")
    for name, r in rows.items():
        partial = "-" if r["partial_spearman"] is None else f"{r['partial_spearman']:.3f}"
        print(f"{name:<50} {r['spearman']:>9.3f} {r['kendall']:>9.3f} {partial:>12} "
              f"{r['seconds_per_candidate']:>8.3f}")
    print(f"issue 20's bar (fine-tuned proxy Spearman >= 0.6 and >= the parameter count's + 0.2): "
          f"{'met' if met else 'not met'} ({fine:.3f} vs {size:.3f} + 0.2)")
    warm_start: dict[str, Any] = {}
    if args.warm_start:
        warm_start = _warm_start_report(cold, warm, args.epochs)
        # the other recipe: if searches trained every cell from generated weights (hyper.warm_start),
        # this is the accuracy a proxy would have to rank
        warm_trained = [max(c[1:]) for c in warm]
        warm_start["ranking"] = {name: _ranks(values, warm_trained, log_params, seconds)
                                 for name, (values, seconds) in scores.items()}
        warm_start["ranking"]["reference: random-init training"] = _ranks(trained, warm_trained, log_params, train_one_s)
        print(f"\nranked against warm-started training instead (best of {args.epochs} epochs from generated weights; "
              f"s.d. {np.std(warm_trained):.3f} against {np.std(trained):.3f} from random inits)")
        for name, r in warm_start["ranking"].items():
            print(f"{name:<50} {r['spearman']:>9.3f} {r['kendall']:>9.3f}")
    total = time.perf_counter() - start
    print(f"\ntotal {total:.0f} s (hypernetwork {hyper_s:.0f} s, candidate training {train_s:.0f} s on {args.jobs} processes)")
    results = {
        "args": vars(args),
        "ranking": rows,
        "bar_met": met,
        "warm_start": warm_start,
        "candidates": [
            {"spec": s.to_json(), **{name: values[i] for name, (values, _) in scores.items()}, "cold": cold[i],
             **({"warm": warm[i]} if warm else {})}
            for i, s in enumerate(specs)
        ],
        "seconds": {"total": total, "hyper": hyper_s, "train": train_s, "train_one": train_one_s},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    return results


def _warm_start_report(cold: list[list[float]], warm: list[list[float]], epochs: int) -> dict[str, Any]:
    """Print and return how soon warm-started candidates reach their random-init twins' best."""
    needed = []
    for c, w in zip(cold, warm):
        target = max(c[1:])
        needed.append(next((e for e in range(epochs + 1) if w[e] >= target), None))
    reached = [n for n in needed if n is not None]
    med = float(np.median([n if n is not None else epochs + 1 for n in needed]))
    within_half = sum(1 for n in reached if n <= epochs / 2) / len(needed)
    mean_cold = np.mean(cold, axis=0)
    mean_warm = np.mean(warm, axis=0)
    print(f"\nwarm start: epochs to reach the random-init run's best accuracy over {epochs} epochs: median {med:g} "
          f"(never reached: {len(needed) - len(reached)}/{len(needed)}), within {epochs / 2:g} epochs: {within_half:.0%}")
    print("mean val acc by epoch  " + " ".join(f"{e:>5d}" for e in range(epochs + 1)))
    print("  random init          " + " ".join(f"{a:5.3f}" for a in mean_cold))
    print("  warm start (hyper)   " + " ".join(f"{a:5.3f}" for a in mean_warm))
    return {"median_epochs": med, "within_half": within_half, "never": len(needed) - len(reached),
            "mean_cold": mean_cold.tolist(), "mean_warm": mean_warm.tolist()}


if __name__ == "__main__":
    main()
