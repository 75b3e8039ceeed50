"""The built-in datasets: real or exactly generated, never downloaded, randomly split 60/20/20.

``digits-seq`` (scikit-learn's bundled 8x8 digits, each image read as 8 steps of 8 pixels),
``reber`` (embedded Reber grammar: is the string grammatical? The only difference between positives
and negatives is the long-range symbol), ``adding`` (the adding problem).
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from search_spaces import Task
from workers.data.base import Dataset, DataError, Split
from workers.data.checks import standardized_by
from workers.data.splits import random_split

RANDOM_SOURCES = {"train": "60% of {n:,}, random", "val": "20% of {n:,}, random", "test": "20% of {n:,}, random"}


def _split(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[Split, Split, Split]:
    x_t, y_t = torch.as_tensor(x), torch.as_tensor(y)
    train, val, test = (Split(x_t[p], y_t[p]) for p in random_split(len(x), seed))
    return train, val, test


def _sources(n: int) -> dict[str, str]:
    return {k: v.format(n=n) for k, v in RANDOM_SOURCES.items()}


def _standardized(task: Task, train: Split, standardize: bool) -> Task:
    """``task`` with the training split's per-feature mean and std when ``standardize``."""
    if not isinstance(standardize, bool):
        raise DataError(f"data.standardize: expected true or false, got {standardize!r}")
    return standardized_by(task, train) if standardize else task


def _digits_table() -> np.ndarray:
    """scikit-learn's ``digits.csv.gz`` as a ``[1797, 65]`` array (64 pixels, then the label).

    Read straight from the file scikit-learn ships: 8 ms, against 1.6 s for importing scikit-learn
    and `load_digits` (which parses it with ``np.loadtxt``), paid by the driver and by every worker.
    """
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is None or not path.is_file():  # another layout: let scikit-learn find it
        from sklearn.datasets import load_digits

        digits = load_digits()
        return np.column_stack([digits.data, digits.target])
    with gzip.open(path, "rb") as f:
        fields = f.read().strip().replace(b"\n", b",").split(b",")
    return np.array(fields, dtype=np.float64).reshape(-1, 65)


def digits_seq(seed: int = 0, standardize: bool = False) -> Dataset:
    """scikit-learn's digits (1,797 images, shipped with the package), rows as time steps, pixels
    scaled to [0, 1] (``standardize: true``: to the training split's mean and std per feature)."""
    table = _digits_table()
    x = (table[:, :64].reshape(-1, 8, 8) / 16.0).astype(np.float32)  # [N, 8, 8]
    y = table[:, 64].astype(np.int64)
    train, val, test = _split(x, y, seed)
    task = _standardized(Task(8, 8, 10), train, standardize)
    return Dataset("digits-seq", task, train, val, test, sources=_sources(len(x)))


_REBER = {  # state -> [(symbol, next state)]; state 5 is the end
    0: [("T", 1), ("P", 2)],
    1: [("S", 1), ("X", 3)],
    2: [("T", 2), ("V", 4)],
    3: [("X", 2), ("S", 5)],
    4: [("P", 3), ("V", 5)],
}
REBER_SYMBOLS = "BTSXPVE"


def _reber_string(rng: np.random.Generator, max_inner: int) -> str:
    while True:
        out, state = ["B"], 0
        while state != 5:
            symbol, state = _REBER[state][int(rng.integers(2))]
            out.append(symbol)
        if len(out) + 1 <= max_inner:
            return "".join(out) + "E"


def reber(seed: int = 0, n: int = 2000, max_len: int = 20) -> Dataset:
    """Embedded Reber grammar: B{T|P}<reber>{T|P}E. Positives repeat the second symbol before the
    final E; negatives swap it, so telling them apart needs memory across the whole string."""
    rng = np.random.default_rng(seed + 17)
    inner_max = max_len - 4
    x = np.zeros((n, max_len), dtype=np.int64)  # left-padded with 0, symbols are 1..7
    y = np.zeros(n, dtype=np.int64)
    for i in range(n):
        branch = "TP"[int(rng.integers(2))]
        positive = i % 2 == 0
        closing = branch if positive else ("P" if branch == "T" else "T")
        s = "B" + branch + _reber_string(rng, inner_max) + closing + "E"
        ids = [REBER_SYMBOLS.index(c) + 1 for c in s]
        x[i, max_len - len(ids) :] = ids
        y[i] = int(positive)
    train, val, test = _split(x, y, seed)
    task = Task(len(REBER_SYMBOLS) + 1, max_len, 2, input_kind="tokens")
    return Dataset("reber", task, train, val, test, sources=_sources(n))


def adding(seed: int = 0, n: int = 4000, length: int = 30, standardize: bool = False) -> Dataset:
    """The adding problem (Hochreiter & Schmidhuber): sum the two marked numbers of a sequence.

    Accuracy is the fraction of predictions within 0.04 of the target, the usual success criterion.
    ``standardize: true`` standardises the inputs (not the targets) with the training statistics.
    """
    rng = np.random.default_rng(seed + 29)
    values = rng.uniform(0, 1, size=(n, length)).astype(np.float32)
    marks = np.zeros((n, length), dtype=np.float32)
    for i in range(n):
        a = rng.integers(length // 2)
        b = length // 2 + rng.integers(length - length // 2)
        marks[i, [a, b]] = 1.0
    x = np.stack([values, marks], axis=-1)
    y = (values * marks).sum(axis=1, keepdims=True).astype(np.float32)
    train, val, test = _split(x, y, seed)
    task = _standardized(Task(2, length, 1, objective="regress"), train, standardize)
    return Dataset("adding", task, train, val, test, sources=_sources(n), default_metric="accuracy")  # within tolerance
