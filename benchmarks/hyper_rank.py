"""Hypernetwork proxy ranking and warm start on ``digits-seq``, against baselines in the same run.

1. Train the RNN hypernetwork SMASH-style over random cells of the quickstart space (4 nodes,
   hidden 16/32/48, tanh/relu/sigmoid/identity, add/mul).
2. Sample ``--candidates`` new cells; score each with zero training: the hypernetwork proxy (validation
   expected accuracy -- the mean probability of the correct label -- with generated weights) and the
   baselines: the accuracy of the candidate's own random init, and its parameter count
   (bigger-is-better, a common zero-cost proxy).
3. Train every candidate normally (``workers.training.Trainer``, ``--epochs`` epochs, the quickstart
   training config) from its random init and, separately, warm-started from generated weights.
   Trained accuracy is the best epoch's validation accuracy, as the search records it.
4. Print Kendall tau and Spearman between each proxy and the trained accuracy, and how many epochs
   a warm-started candidate needs to reach the best accuracy its random-initialised twin reaches
   in all ``--epochs`` epochs. A reference row retrains every candidate with another seed: how well
   training itself agrees with the trained accuracy (the ceiling any proxy can hope for).

Usage:
    python benchmarks/hyper_rank.py                       # table + benchmarks/results/hyper_rank.json
    python benchmarks/hyper_rank.py --steps 300 --candidates 12 --epochs 6   # a quick look
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr

from hyper import HyperConfig, HyperNetwork, HyperTrainer
from hyper.candidate import accuracy
from nas.trial_loop import distinct_samples
from search_spaces import RecurrentCellSpace, Spec, build
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


def _ranks(proxy: list[float], target: list[float]) -> dict[str, float]:
    return {"spearman": float(spearmanr(proxy, target).statistic), "kendall": float(kendalltau(proxy, target).statistic)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=4000, help="hypernetwork training steps")
    ap.add_argument("--candidates", type=int, default=50)
    ap.add_argument("--epochs", type=int, default=12, help="normal training epochs per candidate")
    ap.add_argument("--jobs", type=int, default=2, help="processes training candidates")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-seed-baseline", dest="seed_baseline", action="store_false",
                    help="skip retraining every candidate with another seed (the noise-ceiling row)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "hyper_rank.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # one thread: measured faster than two on the shared 2-core machine
    data = load_dataset("digits-seq")
    task = data.task
    start = time.perf_counter()

    # 1. the hypernetwork
    net = HyperNetwork(HyperConfig(seed=args.seed))
    trainer = HyperTrainer(net, task, data.train.x, data.train.y, sample_spec=SPACE.sample)
    loss = trainer.train(args.steps)
    hyper_s = time.perf_counter() - start
    print(f"hypernetwork: {sum(p.numel() for p in net.parameters()):,} parameters, {args.steps} steps in {hyper_s:.0f} s, "
          f"recent loss {loss:.3f}, skipped candidates {trainer.skipped}")

    # 2. candidates and zero-training scores
    rng = np.random.default_rng(args.seed + 10_000)
    specs = distinct_samples(SPACE, args.candidates, rng)
    t0 = time.perf_counter()
    proxy = [trainer.proxy_score(s, data.val.x, data.val.y) for s in specs]
    proxy_s = (time.perf_counter() - t0) / len(specs)
    init_acc = []
    for s in specs:
        model = build(s, task, seed=0)
        init_acc.append(accuracy(model, dict(model.named_parameters()), data.val.x, data.val.y, "classify")[0])
    n_params = [sum(p.numel() for p in build(s, task).parameters()) for s in specs]
    warm_states = [trainer.generate_state(s) for s in specs]  # the averaged network, as the proxy

    # 3. normal training, random init and warm start
    t0 = time.perf_counter()
    n = len(specs)
    jobs = [(s.to_json(), None, args.epochs, 0) for s in specs] + [(s.to_json(), w, args.epochs, 0) for s, w in zip(specs, warm_states)]
    if args.seed_baseline:
        jobs += [(s.to_json(), None, args.epochs, 1) for s in specs]
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        curves = pool.map(_train_curve, jobs, chunksize=1)
    train_s = time.perf_counter() - t0
    cold, warm = curves[:n], curves[n : 2 * n]
    trained = [max(c[1:]) for c in cold]

    # 4. report
    rows = {
        "hypernetwork proxy (val p(label), generated w.)": _ranks(proxy, trained),
        "baseline: random-init val acc": _ranks(init_acc, trained),
        "baseline: parameter count": _ranks(n_params, trained),
    }
    if args.seed_baseline:  # the noise ceiling: how well training itself ranks, seed 1 against seed 0
        rows["reference: trained acc with another seed (12 ep)".replace("12", str(args.epochs))] = _ranks(
            [max(c[1:]) for c in curves[2 * n :]], trained
        )
    print(f"\n{len(specs)} candidates, trained {args.epochs} epochs each (trained acc: min {min(trained):.3f}, "
          f"median {np.median(trained):.3f}, max {max(trained):.3f}); proxy {proxy_s * 1000:.0f} ms per candidate "
          f"vs {train_s / len(jobs):.1f} s to train one")
    print(f"{'zero-training score':<50} {'Spearman':>9} {'Kendall':>9}")
    for name, r in rows.items():
        print(f"{name:<50} {r['spearman']:>9.3f} {r['kendall']:>9.3f}")
    needed = []
    for c, w in zip(cold, warm):
        target = max(c[1:])
        needed.append(next((e for e in range(args.epochs + 1) if w[e] >= target), None))
    reached = [n for n in needed if n is not None]
    med = float(np.median([n if n is not None else args.epochs + 1 for n in needed]))
    within_half = sum(1 for n in reached if n <= args.epochs / 2) / len(needed)
    mean_cold = np.mean(cold, axis=0)
    mean_warm = np.mean(warm, axis=0)
    print(f"\nwarm start: epochs to reach the random-init run's best accuracy over {args.epochs} epochs: median {med:g} "
          f"(never reached: {len(needed) - len(reached)}/{len(needed)}), within {args.epochs / 2:g} epochs: {within_half:.0%}")
    print("mean val acc by epoch  " + " ".join(f"{e:>5d}" for e in range(args.epochs + 1)))
    print("  random init          " + " ".join(f"{a:5.3f}" for a in mean_cold))
    print("  warm start (hyper)   " + " ".join(f"{a:5.3f}" for a in mean_warm))
    total = time.perf_counter() - start
    print(f"\ntotal {total:.0f} s (hypernetwork {hyper_s:.0f} s, candidate training {train_s:.0f} s on {args.jobs} processes)")
    results = {
        "args": vars(args),
        "ranking": rows,
        "warm_start": {"median_epochs": med, "within_half": within_half, "never": len(needed) - len(reached),
                       "mean_cold": mean_cold.tolist(), "mean_warm": mean_warm.tolist()},
        "candidates": [{"spec": s.to_json(), "proxy": p, "init_acc": i, "params": n, "cold": c, "warm": w}
                       for s, p, i, n, c, w in zip(specs, proxy, init_acc, n_params, cold, warm)],
        "seconds": {"total": total, "hyper": hyper_s, "train": train_s},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
