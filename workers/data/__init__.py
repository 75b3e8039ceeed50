"""Datasets for candidate training: built-in ones and the user's own files, checked before use.

Every loader returns a `Dataset`: the `search_spaces.Task` it poses and fixed train/validation/test
splits, each with a note of where it comes from. Names:

- ``digits-seq``, ``reber``, ``adding``: built in (`workers.data.builtin`), split 60/20/20 at random.
- ``npz``, ``ts``, ``csv``, ``parquet``: the user's files, ``path`` (one file, stratified
  ``split``) or ``train_path`` + ``val_path``/``val_fraction`` + ``test_path`` (`workers.data.user`).
- ``uea``: a UEA/UCR set shipped inside aeon (``dataset: BasicMotions``), its official test split.
- ``text``, ``tinyshakespeare``: language modelling on the user's UTF-8 text or the embedded corpus,
  character or word level, split by position, token streams for truncated BPTT (`workers.data.text`).

Example::

    data = load_dataset("uea", dataset="BasicMotions")
    data.task            # Task(input_size=6, seq_len=100, output_size=4, input_mean=(...), ...)
    data.summary()       # 'train 32 (...), validation 8 (20% of BasicMotions_TRAIN.ts, stratified), test 40 (...)'
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from workers.data.base import Dataset, DataError, Split, describe_splits
from workers.data.builtin import REBER_SYMBOLS, adding, digits_seq, reber
from workers.data.text import sequences, text, tinyshakespeare
from workers.data.user import csv, npz, parquet, resolve_paths, ts, uea

LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits-seq": digits_seq,
    "reber": reber,
    "adding": adding,
    "npz": npz,
    "ts": ts,
    "csv": csv,
    "parquet": parquet,
    "uea": uea,
    "text": text,
    "tinyshakespeare": tinyshakespeare,
}


def _freeze(value: Any) -> Any:
    """Options as a hashable cache key (YAML gives lists, e.g. ``split: [0.7, 0.15, 0.15]``)."""
    return tuple(_freeze(v) for v in value) if isinstance(value, list) else value


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, frozen_options: tuple[tuple[str, Any], ...]) -> Dataset:
    return LOADERS[name](**dict(frozen_options))


def load_dataset(name: str, **options: Any) -> Dataset:
    """Load (and cache per process) a dataset by name with its options; raises `DataError`."""
    if name not in LOADERS:
        raise DataError(f"data.name: unknown dataset {name!r}; choose one of {sorted(LOADERS)}")
    try:
        inspect.signature(LOADERS[name]).bind(**options)
    except TypeError as exc:
        raise DataError(f"data: bad option for {name!r}: {exc}") from None
    return _load_cached(name, tuple(sorted((k, _freeze(v)) for k, v in options.items())))


__all__ = [
    "LOADERS",
    "REBER_SYMBOLS",
    "DataError",
    "Dataset",
    "Split",
    "adding",
    "describe_splits",
    "digits_seq",
    "load_dataset",
    "reber",
    "resolve_paths",
    "sequences",
]
