"""How much does scoring a trial by the mean of K seeds (``train.eval_seeds``) or by a K-fold
cross-validation (``train.folds``) steady selection?

On BasicMotions (8 validation series, the shipped ``configs/basic_motions.yaml`` recipe) trains GRU
and Elman cells at hidden 16 as trials with ``eval_seeds: K``, several trials each, and prints what a
search would select on: the best-epoch validation accuracy of one seed against the K-seed mean (mean
and s.d. over trials), each beside the test accuracy at the epoch it selects; then the same trials
as ``folds: F`` cross-validations (the mean over folds, validated on all 40 training series). A
selection score that sits above its own test accuracy is selection on noise. Run:
``python benchmarks/eval_seeds.py [--trials 4] [--k 3] [--folds 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from nas.config import load_config
from search_spaces import get_space
from workers.data import load_dataset
from workers.ensemble import SeedEnsemble

CONFIG = "configs/basic_motions.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4, help="trials (K-seed runs) per cell")
    parser.add_argument("--k", type=int, default=3, help="seeds per trial")
    parser.add_argument("--folds", type=int, default=5, help="folds per cross-validated trial")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as a trial trains
    config = load_config(CONFIG)
    data = load_dataset(config.data.name, **config.data.options())
    train = config.train.updated(eval_seeds=args.k, folds=1)
    cross = config.train.updated(eval_seeds=1, folds=args.folds)
    space = get_space("gated", hidden_sizes=[16])
    start = time.perf_counter()
    print(f"| cell | one seed: val (s.d.) | its test | mean of {args.k}: val (s.d.) | its test | "
          f"{args.folds}-fold: val (s.d.) | its test | runs |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in ("gru", "elman"):
        spec = space.decode(space.known_cells([name])[f"{name}-h16"])
        one_val, one_test, mean_val, mean_test, cv_val, cv_test = [], [], [], [], [], []
        for trial in range(args.trials):
            folds = SeedEnsemble(spec, data, cross, seed=trial)
            best = folds.fit()
            cv_val.append(best.score)
            cv_test.append(best.test_score)
            ensemble = SeedEnsemble(spec, data, train, seed=trial)
            best = ensemble.fit()
            mean_val.append(best.score)
            mean_test.append(best.test_score)
            for run in ensemble.members:
                one_val.append(run.best.score)
                one_test.append(run.best.test_score)
        print(f"| {name}-h16 | {statistics.fmean(one_val):.3f} ({statistics.stdev(one_val):.3f}) | "
              f"{statistics.fmean(one_test):.3f} | {statistics.fmean(mean_val):.3f} ({statistics.stdev(mean_val):.3f}) | "
              f"{statistics.fmean(mean_test):.3f} | {statistics.fmean(cv_val):.3f} ({statistics.stdev(cv_val):.3f}) | "
              f"{statistics.fmean(cv_test):.3f} | {args.trials} x {args.k}, {args.trials} x {args.folds} |", flush=True)
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
