"""Loaders of the user's own data: ``npz``, ``ts``, ``csv``, ``parquet`` files and the ``uea`` sets
that ship with aeon.

Two ways to give the splits:

- ``path``: one file, split by ``split: [train, val, test]`` fractions (default 0.6/0.2/0.2),
  stratified by class.
- ``train_path`` with optional ``val_path`` (else ``val_fraction`` of the training file, default 0.2,
  stratified) and optional ``test_path`` (an official test split: evaluated and reported, never
  used to select; without it there is no test split).

Targets are classes by default (``target: class``); ``target: value`` reads one real number per
sequence (regression: MSE/MAE metrics, random rather than stratified splits).

Float inputs are standardised with the training split's per-feature mean and std by default
(``standardize: false`` turns it off); the statistics travel in the `Task`, so the model applies
them. Sequences of different lengths are right-padded; the model reads each at its last step.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from search_spaces import Task
from workers.data import checks
from workers.data.base import Dataset, DataError, Split
from workers.data.readers import Arrays, read_npz, read_table, read_ts
from workers.data.splits import random_split, stratified_split

DEFAULT_SPLIT = (0.6, 0.2, 0.2)
DEFAULT_VAL_FRACTION = 0.2
Reader = Callable[[Path, str], Arrays]


def check_file_options(path: str | None, train_path: str | None, val_path: str | None, test_path: str | None,
                       split: Sequence[float] | None, val_fraction: float | None) -> None:
    """One file (``path`` with ``split``) or several (``train_path`` with ``val_path`` or
    ``val_fraction`` and ``test_path``), never a mix; shared by every file loader (`workers.data.text` too)."""
    if (path is None) == (train_path is None):
        raise DataError("data: give either path (one file, split by data.split) or train_path "
                        "(with optional val_path and test_path), not " + ("both" if path else "neither"))
    if path is not None and (val_path or test_path or val_fraction is not None):
        raise DataError("data: val_path, test_path and val_fraction go with train_path; with one file (path) use "
                        "split: [train, val, test]")
    if train_path is not None and split is not None:
        raise DataError("data.split: goes with path (one file); with train_path use val_fraction or val_path")
    if val_path is not None and val_fraction is not None:
        raise DataError("data: give val_path or val_fraction, not both")


def _check_options(path: str | None, train_path: str | None, val_path: str | None, test_path: str | None,
                   split: Sequence[float] | None, val_fraction: float | None, standardize: Any) -> None:
    check_file_options(path, train_path, val_path, test_path, split, val_fraction)
    if not isinstance(standardize, bool):
        raise DataError(f"data.standardize: expected true or false, got {standardize!r}")


def split_fractions(split: Sequence[float] | None, default: tuple[float, float, float] = DEFAULT_SPLIT) -> tuple[float, float, float]:
    """``data.split`` as three fractions that sum to 1 (train and val > 0); ``default`` when None."""
    if split is None:
        return default
    try:
        values = tuple(float(v) for v in split)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or min(values) < 0 or values[0] <= 0 or values[1] <= 0 or not math.isclose(sum(values), 1.0, abs_tol=1e-6):
        raise DataError(f"data.split: expected [train, val, test] fractions that sum to 1 (train and val > 0), got {split!r}")
    return values  # type: ignore[return-value]


def val_fraction_of(value: float | None, default: float = DEFAULT_VAL_FRACTION) -> float:
    """``data.val_fraction`` checked to lie in (0, 1); ``default`` when None."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise DataError(f"data.val_fraction: expected a fraction of the training data in (0, 1), got {value!r}")
    return float(value)


def _read(reader: Reader, option: str, path: str) -> Arrays:
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"data.{option}: file {str(file)!r} does not exist; check the path (relative paths start "
                        "where nas runs)")
    arrays = reader(file, f"data.{option}: {file.name}")
    checks.check_count(arrays, 1, "a split")
    return arrays


def _take(arrays: Arrays, y: np.ndarray, index: np.ndarray) -> tuple[Arrays, np.ndarray]:
    return Arrays(arrays.x[index], arrays.lengths[index], arrays.y[index], arrays.where, arrays.tokens), y[index]


def _split_tensor(arrays: Arrays, y: np.ndarray, seq_len: int) -> Split:
    width = seq_len - arrays.x.shape[1]
    pad = [(0, 0), (0, width)] + ([] if arrays.tokens else [(0, 0)])
    x = np.pad(arrays.x, pad) if width else arrays.x
    x_t = torch.as_tensor(x.astype(np.int64 if arrays.tokens else np.float32))
    lengths = torch.as_tensor(arrays.lengths) if int(arrays.lengths.min(initial=seq_len)) < seq_len else None
    return Split(x_t, torch.as_tensor(y), lengths)


def _empty_like(arrays: Arrays) -> tuple[Arrays, np.ndarray]:
    return _take(arrays, np.zeros(len(arrays.y), dtype=np.int64), np.zeros(0, dtype=np.int64))


def load_files(
    reader: Reader,
    *,
    path: str | None = None,
    train_path: str | None = None,
    val_path: str | None = None,
    test_path: str | None = None,
    split: Sequence[float] | None = None,
    val_fraction: float | None = None,
    seed: int = 0,
    standardize: bool = True,
    nan: str = "error",
    target: str = "class",
    name: str | None = None,
    test_note: str = "official",
) -> Dataset:
    """Read, check, split and describe user files with ``reader`` (see the module docstring)."""
    _check_options(path, train_path, val_path, test_path, split, val_fraction, standardize)
    if nan not in checks.NAN_POLICIES:
        raise DataError(f"data.nan: expected one of {list(checks.NAN_POLICIES)}, got {nan!r}")
    if target not in ("class", "value"):
        raise DataError(f"data.target: expected class (labels) or value (one real number per sequence), got {target!r}")
    first = _read(reader, "path" if path else "train_path", path or train_path)  # type: ignore[arg-type]
    others = {role: _read(reader, f"{role}_path", p) for role, p in (("val", val_path), ("test", test_path)) if p}
    for other in others.values():
        checks.check_compatible(first, other)
    for arrays in (first, *others.values()):
        checks.check_finite(arrays, nan)
    if target == "value":
        y_first, y_others = checks.real_targets(first), [checks.real_targets(o) for o in others.values()]
        classes, how = 1, "random"
        carve = lambda y, fractions: _random_parts(len(y), fractions, seed)  # noqa: E731
    else:
        y_first, y_others, classes = checks.encode_labels(first, list(others.values()))
        how = "stratified"
        carve = lambda y, fractions: stratified_split(y, fractions, seed)  # noqa: E731
    labels = dict(zip(others, y_others))
    stem = Path(path or train_path).name  # type: ignore[arg-type]
    if path is not None:
        fractions = split_fractions(split)
        checks.check_count(first, 3, "splitting one file into train, validation and test")
        parts = carve(y_first, fractions if fractions[2] > 0 else fractions[:2])
        train, val = _take(first, y_first, parts[0]), _take(first, y_first, parts[1])
        test = _take(first, y_first, parts[2]) if fractions[2] > 0 else _empty_like(first)
        pct = [f"{round(100 * f)}%" for f in fractions]
        sources = {"train": f"{pct[0]} of {stem}", "val": f"{pct[1]} of {stem}, {how}",
                   "test": f"{pct[2]} of {stem}, {how}" if fractions[2] > 0 else "none"}
    else:
        if "val" in others:
            checks.check_count(first, 1, "training")
            train, val = (first, y_first), (others["val"], labels["val"])
            sources = {"train": stem, "val": Path(val_path).name}  # type: ignore[arg-type]
        else:
            fraction = val_fraction_of(val_fraction)
            checks.check_count(first, 2, "carving a validation split from the training file")
            parts = carve(y_first, (1 - fraction, fraction))
            train, val = _take(first, y_first, parts[0]), _take(first, y_first, parts[1])
            sources = {"train": f"{stem} less the validation split",
                       "val": f"{round(100 * fraction)}% of {stem}, {how}"}
        test = (others["test"], labels["test"]) if "test" in others else _empty_like(first)
        sources["test"] = f"{test_note} {Path(test_path).name}" if test_path else "none"
    if len(val[0].y) == 0:
        raise DataError(f"{first.where}: the validation split came out empty ({len(first.y)} sequences); "
                        "give more data, a larger validation fraction, or val_path")
    checks.impute([train[0], val[0], test[0]], train[0], nan)
    seq_len = max(int(a.x.shape[1]) for a, _ in (train, val, test))
    if first.tokens:
        vocab = max(int(a.x.max(initial=0)) for a, _ in (train, val, test)) + 1
        if min(int(a.x.min(initial=0)) for a, _ in (train, val, test)) < 0:
            raise DataError(f"{first.where}: token ids must be >= 0 (0 is also the padding id)")
        task_args: dict[str, Any] = {"input_size": vocab, "input_kind": "tokens"}
    else:
        task_args = {"input_size": first.features}
        if standardize:
            task_args["input_mean"], task_args["input_std"] = checks.standardization(train[0])
    splits = [_split_tensor(a, y, seq_len) for a, y in (train, val, test)]
    variable = any(s.lengths is not None for s in splits)
    if target == "value":
        splits = [Split(s.x, s.y.float().reshape(-1, 1), s.lengths) for s in splits]
        task_args["objective"] = "regress"
    task = Task(seq_len=seq_len, output_size=classes, variable_length=variable, **task_args)
    return Dataset(name or Path(stem).stem, task, *splits, sources=sources)


def _random_parts(n: int, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Seeded random parts in the order of ``fractions`` (regression targets have no classes to
    stratify by); the first part takes what the others leave."""
    rest = list(fractions[1:]) + [0.0] * (3 - len(fractions))
    val, test, train = random_split(n, seed, (rest[0], rest[1]))  # random_split's first two parts are sized
    return [train, val, test][: len(fractions)]


def _loader(reader: Callable[..., Reader], doc: str, **reader_options: Any) -> Callable[..., Dataset]:
    """A loader taking `load_files`' options plus ``reader_options`` (with their defaults), which
    configure ``reader``; its signature lists them all (config validation reads it)."""
    shared = [p for name, p in inspect.signature(load_files).parameters.items() if name not in ("reader", "name", "test_note")]
    own = [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in reader_options.items()]

    def load(**options: Any) -> Dataset:
        settings = {k: options.pop(k, default) for k, default in reader_options.items()}
        return load_files(reader(**settings), **options)

    load.__signature__ = inspect.Signature(shared + own)  # type: ignore[attr-defined]
    load.__doc__ = doc
    return load


def _table_reader(label_column: str, id_column: str, time_column: str | None) -> Reader:
    def read(file: Path, where: str) -> Arrays:
        return read_table(file, where, label_column=label_column, id_column=id_column, time_column=time_column)

    return read


npz = _loader(lambda: read_npz, "``.npz`` files with arrays ``x`` ``[N, T, F]`` (or ``[N, T]`` tokens), ``y`` ``[N]`` "
                                 "and optionally ``lengths`` ``[N]``.")
ts = _loader(lambda: read_ts, "UEA/UCR ``.ts`` files (read by aeon): equal or unequal length, one or more channels.")
_TABLE_DOC = ("{} files: one row per time step with a sequence id (``id_column``), or one row per sequence (label "
              "and one column per step); ``label_column`` holds the class.")
csv = _loader(_table_reader, _TABLE_DOC.format("CSV"), label_column="label", id_column="id", time_column=None)
parquet = _loader(_table_reader, _TABLE_DOC.format("Parquet"), label_column="label", id_column="id", time_column=None)


def uea_directory() -> Path:
    """Where aeon keeps the UEA/UCR sets it ships (found without importing aeon, which is slow)."""
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("data: the uea datasets ship with aeon, which is not installed: pip install aeon "
                        "(or pip install -e \".[data]\")")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def uea_names() -> list[str]:
    """The classification sets aeon ships with both a TRAIN and a TEST ``.ts`` file."""
    root = uea_directory()
    return sorted(d.name for d in root.iterdir()
                  if (d / f"{d.name}_TRAIN.ts").is_file() and (d / f"{d.name}_TEST.ts").is_file())


def uea(dataset: str = "", seed: int = 0, val_fraction: float | None = None, standardize: bool = True,
        nan: str = "error") -> Dataset:
    """A UEA/UCR set shipped inside aeon, read offline: its TRAIN file is split into train and a
    stratified validation carve-out, its TEST file is the official test split."""
    names = uea_names()
    if dataset not in names:
        raise DataError(f"data.dataset: {dataset!r} is not a UEA/UCR set shipped with aeon; choose one of {names}")
    folder = uea_directory() / dataset
    return load_files(read_ts, train_path=str(folder / f"{dataset}_TRAIN.ts"),
                      test_path=str(folder / f"{dataset}_TEST.ts"), val_fraction=val_fraction, seed=seed,
                      standardize=standardize, nan=nan, name=dataset)


PATH_OPTIONS = ("path", "train_path", "val_path", "test_path")


def resolve_paths(options: dict[str, Any]) -> dict[str, Any]:
    """The file options made absolute (from the current directory): trials run in other working
    directories, and a stored or exported config must find the same files."""
    return {k: str(Path(v).expanduser().resolve()) if k in PATH_OPTIONS and isinstance(v, str) else v
            for k, v in options.items()}
