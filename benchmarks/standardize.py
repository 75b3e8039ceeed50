"""Does standardising inputs with training statistics change digits-seq results?

Trains the same cells (GRU and Elman, hidden 32, the quickstart's training settings) with
``standardize: false`` (pixels in [0, 1], the default) and ``true`` over several seeds (data split and
build seed alike), and prints best-epoch validation accuracy as mean ± std. Run:
``python benchmarks/standardize.py [--seeds 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

from search_spaces import elman, gru
from workers.data import load_dataset
from workers.training import TrainConfig, Trainer

CELLS = {"gru h32": lambda: gru(32), "elman h32": lambda: elman(32)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    config = TrainConfig(epochs=args.epochs, batch_size=64, lr=0.01)
    start = time.perf_counter()
    print("| cell | standardize: false | standardize: true | seeds |\n| --- | --- | --- | --- |")
    for name, make in CELLS.items():
        cells = []
        for standardize in (False, True):
            accuracies = []
            for seed in range(args.seeds):
                data = load_dataset("digits-seq", seed=seed, standardize=standardize)
                trainer = Trainer(make(), data, config, seed=seed)
                while trainer.epoch < config.epochs:
                    trainer.train_epoch()
                accuracies.append(trainer.best.score)
            cells.append(f"{statistics.mean(accuracies):.4f} ± {statistics.stdev(accuracies):.4f}")
        print(f"| {name} | {cells[0]} | {cells[1]} | {args.seeds} |", flush=True)
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
