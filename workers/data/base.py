"""What every loader returns: a `Dataset` of three `Split` s, and the one error type for bad data."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from search_spaces import Task
from workers.metrics import DEFAULT_METRIC, Metric, check_metric

SPLITS = ("train", "val", "test")
SPLIT_TITLES = {"train": "train", "val": "validation", "test": "test"}


class DataError(ValueError):
    """Data that cannot be used: a bad name, option or file. The message is one line that names the
    option or file at fault and how to fix it (the CLI prints it and exits with code 2)."""


@dataclass(frozen=True)
class Split:
    """Sequences and their targets. ``lengths`` ``[N]`` counts the valid steps of right-padded
    sequences (None when all have ``x.shape[1]`` steps)."""

    x: torch.Tensor
    y: torch.Tensor
    lengths: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: torch.Tensor | slice) -> Split:
        """The sequences at ``index`` (a batch, a permutation)."""
        return Split(self.x[index], self.y[index], None if self.lengths is None else self.lengths[index])


@dataclass(frozen=True)
class Dataset:
    """A task and its fixed train/validation/test splits.

    ``sources`` says where each split comes from (a file, a carve-out, a generator) so every number
    reported on a split can name it. Selection (early stopping, the best epoch, the Pareto front)
    only ever reads ``val``; ``test`` is evaluated and reported, never used to choose.
    """

    name: str
    task: Task
    train: Split
    val: Split
    test: Split
    sources: dict[str, str] = field(default_factory=dict, compare=False)
    default_metric: str | None = None  # None: the task objective's default (`workers.metrics`)

    def scoring(self, name: str | None = None) -> Metric:
        """The metric trials on this data are scored by: ``name`` (``train.metric``) or the default;
        raises `DataError` when it does not fit the task (e.g. MSE for a classification set)."""
        name = name or self.default_metric or DEFAULT_METRIC[self.task.objective]
        try:
            return check_metric(name, self.task.objective)
        except ValueError as exc:
            raise DataError(f"train.metric: {exc} (data {self.name!r})") from None

    def chance_score(self, metric: Metric) -> float:
        """The validation score of a model that ignores its input: the floor a hypervolume is
        measured from. Bits per character: log2(V) (every token equally likely); perplexity: V;
        MSE and MAE: predicting the training targets' mean; bounded metrics: their worst value."""
        if metric.name == "bpc":
            return math.log2(self.task.output_size)
        if metric.name == "perplexity":
            return float(self.task.output_size)
        if metric.name in ("mse", "mae") and len(self.val) and len(self.train):
            error = self.val.y.double() - self.train.y.double().mean(dim=0)
            return float((error**2).mean() if metric.name == "mse" else error.abs().mean())
        return metric.worst

    def describe(self) -> dict[str, dict[str, Any]]:
        """``{split: {"size": n, "source": text}}`` for manifests, reports and study attributes; ``n``
        counts sequences, or a language model's predicted tokens (then ``"unit": "tokens"`` says so)."""
        unit = {"unit": "tokens"} if self.task.objective == "lm" else {}
        return {s: {"size": len(getattr(self, s)), "source": self.sources.get(s, ""), **unit} for s in SPLITS}

    def summary(self) -> str:
        """One line: the size and source of each split, e.g. for ``nas status``."""
        return describe_splits(self.describe())


def describe_splits(splits: dict[str, dict[str, Any]]) -> str:
    """``train 32 (...), validation 8 (...), test 40 (...)`` from `Dataset.describe`'s dict."""
    parts = []
    for name in SPLITS:
        info = splits.get(name) or {}
        source = f" ({info['source']})" if info.get("source") else ""
        unit = " tokens" if info.get("unit") == "tokens" else ""
        parts.append(f"{SPLIT_TITLES[name]} {info.get('size', '?')}{unit}{source}")
    return ", ".join(parts)
