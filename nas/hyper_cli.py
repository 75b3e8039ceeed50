"""``nas hyper train`` and ``nas hyper eval``: train a hypernetwork on a config's task and space, and
inspect how it ranks candidates.

``train`` samples Specs from the config's space, trains SMASH-style and writes a checkpoint that
`hyper.HyperNetwork.load` (and ``--resume``) reads. ``eval`` samples ``--candidates`` new Specs, scores
each with generated weights only (validation accuracy) and prints them best first; with
``--train-epochs E`` it also trains each normally and prints Spearman and Kendall tau between the proxy
and the trained accuracy, the partial Spearman given size, and the parameter count's and MACs'.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from hyper import HyperConfig, HyperNetwork, HyperTrainer, partial_spearman, proxy_score
from nas.config import Config, ConfigError
from nas.tables import describe_cell
from nas.trial_loop import distinct_samples
from search_spaces import cost
from workers.data import Dataset, load_dataset, sequences
from workers.training import Trainer


def _data(config: Config) -> Dataset:
    return load_dataset(config.data.name, **config.data.options())


def _read_checkpoint(load: Any, path: str | Path) -> Any:
    """``load(path)``, with a file that is no hypernetwork checkpoint refused as bad input (exit 2)."""
    try:
        return load(path)
    except Exception as exc:  # torch raises many kinds for a truncated or foreign file
        raise ConfigError(f"{path}: not a hypernetwork checkpoint ({type(exc).__name__}: {str(exc)[:200]}); "
                          "point to a file written by `nas hyper train`") from None


def hyper_train(config: Config, out: str | Path, *, steps: int, resume: bool, console: Console) -> Path:
    """Train a hypernetwork on ``config``'s dataset over its space; checkpoint to ``out`` as it goes."""
    out = Path(out)
    data = _data(config)
    space = config.space.make()
    train = sequences(data, "train")  # a language model's stream in windows
    trainer = HyperTrainer(HyperNetwork(HyperConfig(seed=config.seed)), data.task, train.x, train.y, sample_spec=space.sample)
    if resume and out.is_file():
        _read_checkpoint(trainer.load, out)
        console.print(f"resumed {out} at step {trainer.step}")
    start, every = time.perf_counter(), max(1, min(100, steps // 10))
    while trainer.step < steps:
        loss = trainer.train(min(every, steps - trainer.step))
        console.print(f"step {trainer.step}/{steps}  loss {loss:.4f}  ({time.perf_counter() - start:.0f} s)")
        trainer.save(out)
    trainer.save(out)
    console.print(f"saved {out}")
    return out


def hyper_eval(
    path: str | Path, config: Config, *, candidates: int, train_epochs: int, seed: int, console: Console
) -> list[dict]:
    """Proxy-score (and optionally train) ``candidates`` new Specs; print them best first."""
    if not Path(path).is_file():
        raise ConfigError(f"hypernetwork checkpoint {str(path)!r} does not exist (write one with `nas hyper train`)")
    net = _read_checkpoint(HyperNetwork.load, path)
    data = _data(config)
    rows = []
    val = sequences(data, "val")
    for spec in distinct_samples(config.space.make(), candidates, np.random.default_rng(seed)):
        row = {"spec": spec, "proxy": proxy_score(net, spec, data.task, val.x, val.y)}
        row.update(cost(spec, data.task))  # "macs", "params"
        if train_epochs:
            trainer = Trainer(spec, data, config.train.updated(epochs=train_epochs), seed=seed)
            try:
                for _ in range(train_epochs):
                    trainer.train_epoch()
                row["trained"] = trainer.best.score
            except Exception:  # a diverged candidate scores what it reached
                row["trained"] = trainer.best.score if trainer.best else 0.0
        rows.append(row)
    rows.sort(key=lambda r: -r["proxy"])
    table = Table(title=f"{len(rows)} candidates ranked by the hypernetwork proxy")
    for column in ("rank", "proxy acc", *(["trained acc"] if train_epochs else []), "MACs", "cell"):
        table.add_column(column, no_wrap=column != "cell")
    for i, r in enumerate(rows, 1):
        cell = describe_cell(SimpleNamespace(user_attrs={"spec": r["spec"].to_json()}))  # type: ignore[arg-type]
        trained = [f"{r['trained']:.4f}"] if train_epochs else []
        table.add_row(str(i), f"{r['proxy']:.4f}", *trained, f"{r['macs']:,}", cell)
    console.print(table)
    if train_epochs and len(rows) > 2:
        from scipy.stats import kendalltau, spearmanr

        trained = [r["trained"] for r in rows]
        proxy, params, macs = ([r[k] for r in rows] for k in ("proxy", "params", "macs"))
        console.print(f"Spearman {spearmanr(proxy, trained).statistic:.3f}, Kendall tau {kendalltau(proxy, trained).statistic:.3f} "
                      f"(proxy vs best validation accuracy after {train_epochs} epochs); partial Spearman given size "
                      f"{partial_spearman(proxy, trained, np.log(params)):.3f}; size alone: parameter count "
                      f"{spearmanr(params, trained).statistic:.3f}, MACs {spearmanr(macs, trained).statistic:.3f}")
    return rows
