"""Datasets for candidate training: real or exactly generated, never downloaded.

Every loader returns a `Dataset`: the `search_spaces.Task` it poses and fixed train/validation/test
splits drawn from ``seed``. Names: ``digits-seq`` (scikit-learn's bundled 8x8 digits, each image read as
8 steps of 8 pixels), ``reber`` (embedded Reber grammar: is the string grammatical? The only
difference between positives and negatives is the long-range symbol), ``adding`` (the adding
problem), ``npz`` (a user file with arrays ``x`` and ``y``).
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from search_spaces import Task


@dataclass(frozen=True)
class Split:
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class Dataset:
    name: str
    task: Task
    train: Split
    val: Split
    test: Split


class DataError(ValueError):
    """A dataset name or option that cannot be loaded; the message says how to fix it."""


def _split(x: np.ndarray, y: np.ndarray, seed: int, fractions: tuple[float, float] = (0.6, 0.2)) -> tuple[Split, ...]:
    order = np.random.default_rng(seed).permutation(len(x))
    n_train = int(round(fractions[0] * len(x)))
    n_val = int(round(fractions[1] * len(x)))
    parts = order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]
    x_t = torch.as_tensor(x)
    y_t = torch.as_tensor(y)
    return tuple(Split(x_t[p], y_t[p]) for p in parts)


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


def digits_seq(seed: int = 0) -> Dataset:
    """scikit-learn's digits (1,797 images, shipped with the package), rows as time steps."""
    table = _digits_table()
    x = (table[:, :64].reshape(-1, 8, 8) / 16.0).astype(np.float32)  # [N, 8, 8]
    y = table[:, 64].astype(np.int64)
    train, val, test = _split(x, y, seed)
    return Dataset("digits-seq", Task(8, 8, 10), train, val, test)


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
    return Dataset("reber", Task(len(REBER_SYMBOLS) + 1, max_len, 2, input_kind="tokens"), train, val, test)


def adding(seed: int = 0, n: int = 4000, length: int = 30) -> Dataset:
    """The adding problem (Hochreiter & Schmidhuber): sum the two marked numbers of a sequence.

    Accuracy is the fraction of predictions within 0.04 of the target, the usual success criterion.
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
    return Dataset("adding", Task(2, length, 1, objective="regress"), train, val, test)


def npz(path: str, seed: int = 0) -> Dataset:
    """User data: ``x`` float ``[N, T, F]`` (or int tokens ``[N, T]``) and integer labels ``y`` ``[N]``."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"data.path: file {str(file)!r} does not exist")
    with np.load(file) as arrays:
        if "x" not in arrays or "y" not in arrays:
            raise DataError(f"data.path: {file} must hold arrays 'x' and 'y', found {sorted(arrays.files)}")
        x, y = arrays["x"], arrays["y"]
    if len(x) != len(y) or len(x) < 5:
        raise DataError(f"data.path: x and y need the same length (at least 5), got {len(x)} and {len(y)}")
    if not np.issubdtype(y.dtype, np.integer) or y.ndim != 1:
        raise DataError("data.path: y must be a 1-D array of integer class labels")
    if np.issubdtype(x.dtype, np.integer) and x.ndim == 2:
        task = Task(int(x.max()) + 1, x.shape[1], int(y.max()) + 1, input_kind="tokens")
        x = x.astype(np.int64)
    elif x.ndim == 3:
        task = Task(x.shape[2], x.shape[1], int(y.max()) + 1)
        x = x.astype(np.float32)
    else:
        raise DataError(f"data.path: x must be [N, T, F] floats or [N, T] integer tokens, got shape {x.shape}")
    train, val, test = _split(x, y.astype(np.int64), seed)
    return Dataset(file.stem, task, train, val, test)


LOADERS = {"digits-seq": digits_seq, "reber": reber, "adding": adding, "npz": npz}


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, frozen_options: tuple[tuple[str, Any], ...]) -> Dataset:
    return LOADERS[name](**dict(frozen_options))


def load_dataset(name: str, **options: Any) -> Dataset:
    """Load (and cache per process) a dataset by name with its options."""
    if name not in LOADERS:
        raise DataError(f"data.name: unknown dataset {name!r}; choose one of {sorted(LOADERS)}")
    try:
        return _load_cached(name, tuple(sorted(options.items())))
    except TypeError as exc:
        raise DataError(f"data: bad option for {name!r}: {exc}") from exc
