"""Readers of user files into `Arrays`: ``.npz``, ``.ts`` (UEA/UCR, via aeon), CSV and Parquet.

Every reader returns right-padded sequences with their lengths and the raw labels; checks of values
(NaN, labels, sizes) are `workers.data.checks`' job. Errors are `DataError` s that start with
``where`` (the option and file, e.g. ``data.train_path: mine.csv``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workers.data.base import DataError

AEON_HINT = "pip install aeon (or pip install -e \".[data]\")"


@dataclass
class Arrays:
    """Sequences of one file: ``x`` ``[N, T, F]`` floats (or ``[N, T]`` int64 tokens) right-padded
    with zeros, ``lengths`` ``[N]`` valid steps, ``y`` ``[N]`` labels as read, ``where`` for messages."""

    x: np.ndarray
    lengths: np.ndarray
    y: np.ndarray
    where: str
    tokens: bool = False

    @property
    def features(self) -> int:
        return 0 if self.tokens else int(self.x.shape[2])


def pad(sequences: list[np.ndarray], where: str) -> tuple[np.ndarray, np.ndarray]:
    """``[T_i, F]`` float sequences -> right-padded ``[N, max T, F]`` and lengths ``[N]``."""
    if not sequences:
        raise DataError(f"{where}: holds no sequences; give a file with at least one")
    widths = {s.shape[1] for s in sequences}
    if len(widths) > 1:
        raise DataError(f"{where}: sequences have different numbers of features {sorted(widths)}; give every step the same features")
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    if lengths.min() == 0:
        raise DataError(f"{where}: sequence {int(np.argmin(lengths))} has no steps; remove empty sequences")
    x = np.zeros((len(sequences), int(lengths.max()), widths.pop()), dtype=np.float64)
    for i, s in enumerate(sequences):
        x[i, : len(s)] = s
    return x, lengths


def read_npz(path: Path, where: str) -> Arrays:
    """Arrays ``x`` (``[N, T, F]`` floats, ``[N, T]`` floats as one feature, or ``[N, T]`` integer
    tokens), ``y`` ``[N]`` labels, and optionally ``lengths`` ``[N]`` for right-padded sequences."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = [k for k in ("x", "y") if k not in arrays]
            if missing:
                raise DataError(f"{where}: must hold arrays 'x' and 'y' (missing {missing}, found {sorted(arrays.files)}); "
                                "save them with np.savez(path, x=..., y=...)")
            x, y = arrays["x"], arrays["y"]
            lengths = arrays["lengths"] if "lengths" in arrays else None
    except DataError:
        raise
    except Exception as exc:  # not a zip, an object array, a truncated file
        raise DataError(f"{where}: cannot be read as .npz ({type(exc).__name__}: {exc}); write it with np.savez") from None
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{where}: y must be 1-D with one label per sequence of x; got y {y.shape} for x {x.shape}")
    tokens = x.ndim == 2 and np.issubdtype(x.dtype, np.integer)
    if x.ndim == 2 and not tokens:
        x = x[:, :, None]
    if x.ndim != 3 and not tokens:
        raise DataError(f"{where}: x must be [N, T, F] floats or [N, T] integer tokens, got shape {x.shape}")
    if not tokens and not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise DataError(f"{where}: x must hold numbers, got dtype {x.dtype}")
    if lengths is None:
        lengths = np.full(len(x), x.shape[1], dtype=np.int64)
    elif lengths.shape != (len(x),) or not np.issubdtype(lengths.dtype, np.integer) \
            or (len(x) and (lengths.min() < 1 or lengths.max() > x.shape[1])):
        raise DataError(f"{where}: lengths must be {len(x)} integers in [1, {x.shape[1]}] (valid steps of each right-padded sequence)")
    x = x.astype(np.int64 if tokens else np.float64)
    if len(x):  # padding past each length is zero, whatever the file held there
        valid = np.arange(x.shape[1])[None, :] < lengths[:, None]
        x[~valid] = 0
    return Arrays(x, lengths.astype(np.int64), y, where, tokens=tokens)


def read_ts(path: Path, where: str) -> Arrays:
    """A UEA/UCR ``.ts`` file through aeon's reader (equal or unequal length, any channels)."""
    try:
        from aeon.datasets import load_from_ts_file
    except ImportError:
        raise DataError(f"{where}: reading .ts files needs aeon: {AEON_HINT}") from None
    try:
        x, y = load_from_ts_file(str(path))
    except Exception as exc:
        raise DataError(f"{where}: not a valid .ts file ({type(exc).__name__}: {exc})") from None
    if isinstance(x, np.ndarray):  # [N, channels, T]
        sequences = list(np.transpose(x, (0, 2, 1)).astype(np.float64))
    else:  # unequal length: a list of [channels, T_i]
        sequences = [np.asarray(s, dtype=np.float64).T for s in x]
    if y is None or len(y) != len(sequences):
        raise DataError(f"{where}: needs one class label per series (@classLabel true in the header)")
    xs, lengths = pad(sequences, where)
    return Arrays(xs, lengths, np.asarray(y), where)


def read_table(path: Path, where: str, *, label_column: str, id_column: str, time_column: str | None) -> Arrays:
    """CSV or Parquet, in one of two layouts chosen by whether ``id_column`` is there.

    Long: one row per time step; rows with the same ``id_column`` form a sequence (in file order, or
    sorted by ``time_column``), every other column but ``label_column`` is a feature. Wide: one row
    per sequence, ``label_column`` and then one column per step of a single feature; empty cells at
    the end of a row are padding (shorter sequences).
    """
    frame = _read_frame(path, where)
    if label_column not in frame.columns:
        raise DataError(f"{where}: no label column {label_column!r} (columns: {list(frame.columns)[:8]}); "
                        "name it with data.label_column")
    if id_column in frame.columns:
        return _long(frame, where, label_column, id_column, time_column)
    if time_column is not None:
        raise DataError(f"{where}: time_column {time_column!r} needs one row per step with an id column "
                        f"{id_column!r}, which this file lacks; set data.id_column")
    return _wide(frame, where, label_column)


def _read_frame(path: Path, where: str):  # -> pandas.DataFrame
    try:
        import pandas as pd
    except ImportError:
        raise DataError(f"{where}: reading CSV and Parquet needs pandas: pip install pandas") from None
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path)
    except ImportError as exc:
        raise DataError(f"{where}: reading Parquet needs pyarrow: pip install pyarrow ({exc})") from None
    except Exception as exc:
        raise DataError(f"{where}: cannot be read ({type(exc).__name__}: {exc})") from None
    if frame.empty:
        raise DataError(f"{where}: holds no rows; give a file with a header and at least one sequence")
    return frame


def _numeric(frame, columns: list[str], where: str) -> np.ndarray:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    bad = [c for c in columns if not is_numeric_dtype(frame[c].dtype) or is_bool_dtype(frame[c].dtype)]
    if bad:
        raise DataError(f"{where}: feature column {bad[0]!r} is not numeric; drop it or make it numbers")
    return frame[columns].to_numpy(dtype=np.float64)


def _long(frame, where: str, label_column: str, id_column: str, time_column: str | None) -> Arrays:
    if time_column is not None and time_column not in frame.columns:
        raise DataError(f"{where}: no time column {time_column!r}; fix data.time_column or leave it out (file order)")
    features = [c for c in frame.columns if c not in (label_column, id_column, time_column)]
    if not features:
        raise DataError(f"{where}: no feature columns besides {label_column!r} and {id_column!r}")
    if time_column is not None:
        frame = frame.sort_values([id_column, time_column], kind="stable")
    sequences, labels = [], []
    for key, group in frame.groupby(id_column, sort=False):
        values = group[label_column].unique()
        if len(values) != 1:
            raise DataError(f"{where}: sequence {key!r} has several labels {list(values)[:4]}; give one label per {id_column!r}")
        sequences.append(_numeric(group, features, where))
        labels.append(values[0])
    x, lengths = pad(sequences, where)
    return Arrays(x, lengths, np.asarray(labels), where)


def _wide(frame, where: str, label_column: str) -> Arrays:
    steps = [c for c in frame.columns if c != label_column]
    if not steps:
        raise DataError(f"{where}: one row per sequence needs step columns besides {label_column!r}")
    values = _numeric(frame, steps, where)  # [N, T]
    present = ~np.isnan(values)
    lengths = np.where(present.any(1), values.shape[1] - np.argmax(present[:, ::-1], axis=1), 0).astype(np.int64)
    if lengths.min() == 0:
        raise DataError(f"{where}: row {int(np.argmin(lengths))} has no values; remove empty rows")
    x = np.where(np.arange(values.shape[1])[None, :] < lengths[:, None], values, 0.0)[:, :, None]
    return Arrays(x, lengths, frame[label_column].to_numpy(), where)
