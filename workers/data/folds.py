"""K-fold cross-validation over the training and validation sequences, for selection on small data.

A validation split of 8 or 13 sequences (the UEA sets' carve-outs) saturates: many cells score
1.000 on it and the search picks among them by chance. With ``train.folds: K`` the training and
validation sequences are pooled and dealt into K folds (stratified by class for classification);
fold i validates a model trained on the other K-1, and a trial is scored by the mean over the K
folds, so every pooled sequence is validated once. The test split is untouched and still never
selects. The folds depend on the data alone (a fixed deal), so every trial of a study is compared on
the same folds.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from workers.data.base import Dataset, DataError, Split
from workers.data.checks import standardized_by

FOLD_SEED = 0  # the deal of the pooled sequences into folds: fixed, so every trial sees the same folds


def _pool(a: Split, b: Split) -> Split:
    lengths = None
    if a.lengths is not None or b.lengths is not None:
        full = lambda s: s.lengths if s.lengths is not None else torch.full((len(s),), s.x.shape[1])  # noqa: E731
        lengths = torch.cat([full(a), full(b)])
    return Split(torch.cat([a.x, b.x]), torch.cat([a.y, b.y]), lengths)


def fold_of(data: Dataset, k: int, seed: int = FOLD_SEED) -> np.ndarray:
    """``[N]`` fold index (0..k-1) of each pooled sequence (train first, then validation): each class
    shuffled and dealt in turn, so every fold holds the classes in proportion (regression: one deal)."""
    pooled = len(data.train) + len(data.val)
    labels = torch.cat([data.train.y, data.val.y]).numpy() if data.task.objective == "classify" else np.zeros(pooled)
    rng = np.random.default_rng(seed)
    folds = np.empty(pooled, dtype=np.int64)
    start = 0  # continue the deal across classes, so small classes do not all land in fold 0
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        folds[members] = (start + np.arange(len(members))) % k
        start += len(members)
    return folds


def _check(data: Dataset, k: int) -> None:
    if data.task.objective == "lm":
        raise DataError("train.folds: a language model's text is split by position and cannot be cross-validated; "
                        "remove train.folds (its validation stream is long enough to select on)")
    pooled = len(data.train) + len(data.val)
    if not 2 <= k <= pooled:
        raise DataError(f"train.folds: {k} folds of {pooled} training + validation sequences ({data.name}); "
                        f"use 2..{pooled}, or remove train.folds")


def cross_validation_folds(data: Dataset, k: int, seed: int = FOLD_SEED) -> list[Dataset]:
    """The K datasets of K-fold cross-validation: fold i's ``val`` is the i-th fold of the pooled
    train and validation sequences, its ``train`` the rest, its ``test`` the data's own. Inputs that
    the data standardises are standardised with each fold's own training statistics.

    Raises:
        DataError: for a language model (its text is split by position; folds would train on what
            they validate), or K larger than the pooled sequences.
    """
    _check(data, k)
    pool = _pool(data.train, data.val)
    folds = fold_of(data, k, seed)
    out = []
    for i in range(k):
        train, val = pool[torch.from_numpy(np.flatnonzero(folds != i))], pool[torch.from_numpy(np.flatnonzero(folds == i))]
        # the fold's own training statistics: its validation fold stays unseen
        task = data.task if data.task.input_mean is None else standardized_by(data.task, train)
        n = len(pool)
        sources = {**data.sources,
                   "train": f"{k - 1} of {k} folds of train + validation ({n - len(val)} of {n} sequences)",
                   "val": f"fold {i + 1} of {k} of train + validation ({len(val)} of {n} sequences)"}
        out.append(replace(data, task=task, train=train, val=val, sources=sources))
    return out


def selection_splits(data: Dataset, k: int = 1) -> dict[str, dict[str, object]]:
    """`Dataset.describe`, or for K-fold selection (``k`` > 1) what is behind a trial's numbers: the
    validation numbers are means over K folds that together cover every pooled sequence once, the
    training sets K-1 folds each. Raises `DataError` as `cross_validation_folds` does, so a search
    refuses bad folds before anything starts."""
    if k == 1:
        return data.describe()
    _check(data, k)
    splits = data.describe()
    n = len(data.train) + len(data.val)
    splits["train"] = {"size": n - n // k, "source": f"{k - 1} of {k} folds of train + validation, each fold's model"}
    splits["val"] = {"size": n, "source": f"{k}-fold cross-validation over train + validation: the mean over folds"}
    return splits
