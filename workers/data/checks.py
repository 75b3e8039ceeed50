"""Checks of user data before anything trains: values, labels, sizes, matching files.

Each failure is a `DataError` whose one line names the file and the fix; a search checks its data
before it writes anything, so a bad file costs nothing but the message.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from search_spaces import Task
from workers.data.base import DataError, Split
from workers.data.readers import Arrays

NAN_POLICIES = ("error", "mean", "zero")


def valid_steps(arrays: Arrays) -> np.ndarray:
    """``[N, T]`` True on the steps each sequence really has (not padding)."""
    return np.arange(arrays.x.shape[1])[None, :] < arrays.lengths[:, None]


def check_count(arrays: Arrays, minimum: int, why: str) -> None:
    if len(arrays.x) < minimum:
        raise DataError(f"{arrays.where}: has {len(arrays.x)} sequence(s); {why} needs at least {minimum}")


def check_finite(arrays: Arrays, nan: str) -> None:
    """Refuse infinities always, and NaNs unless ``nan`` imputes them; the message gives the count and
    the first (sequence, step, feature)."""
    if arrays.tokens:
        return
    valid = valid_steps(arrays)[..., None]
    for name, bad in (("infinite", np.isinf(arrays.x)), ("NaN", np.isnan(arrays.x))):
        bad &= valid
        count = int(bad.sum())
        if not count or (name == "NaN" and nan != "error"):
            continue
        i, t, f = (int(v) for v in np.argwhere(bad)[0])
        fix = "replace them in the file" if name == "infinite" else \
            "clean them, or set data.nan: mean (the feature's training mean) or data.nan: zero"
        raise DataError(f"{arrays.where}: {count} {name} value(s), the first at sequence {i}, step {t}, feature {f}; {fix}")


def impute(parts: list[Arrays], train: Arrays, nan: str) -> None:
    """Replace NaNs in place: ``zero``, or ``mean``: each feature's mean over the training steps."""
    if nan not in NAN_POLICIES:
        raise DataError(f"data.nan: expected one of {list(NAN_POLICIES)}, got {nan!r}")
    if nan == "error" or train.tokens:
        return
    fill = np.zeros(train.features)
    if nan == "mean":
        steps = train.x[valid_steps(train)]  # [steps, F]
        with np.errstate(all="ignore"):
            fill = np.nan_to_num(np.nanmean(steps, axis=0)) if len(steps) else fill
    for part in parts:
        rows = np.isnan(part.x)
        part.x[rows] = np.broadcast_to(fill, part.x.shape)[rows]


def check_compatible(train: Arrays, other: Arrays) -> None:
    """Another file of the same dataset must have the training file's kind and features."""
    if train.tokens != other.tokens:
        kinds = {True: "integer tokens [N, T]", False: "float features [N, T, F]"}
        raise DataError(f"{other.where}: holds {kinds[other.tokens]} but the training file holds {kinds[train.tokens]}; "
                        "give both files the same kind of inputs")
    if train.features != other.features:
        raise DataError(f"{other.where}: has {other.features} features per step, the training file {train.features}; "
                        "give both files the same features in the same order")


def _as_class_ids(y: np.ndarray) -> np.ndarray | None:
    """Integer labels as int64 (floats that are whole numbers too), else None (strings)."""
    if np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_):
        return y.astype(np.int64)
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or not np.array_equal(y, np.round(y)):
            return None
        return y.astype(np.int64)
    return None


def real_targets(arrays: Arrays) -> np.ndarray:
    """One finite real target per sequence (``target: value``), as float64; refuses text and
    NaN/Inf targets with their count and the first sequence."""
    try:
        y = np.asarray(arrays.y, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{arrays.where}: target: value needs numeric targets, got {arrays.y.dtype} values such as "
                        f"{arrays.y[:1]}; use target: class for labels") from None
    bad = ~np.isfinite(y)
    if bad.any():
        raise DataError(f"{arrays.where}: {int(bad.sum())} targets are NaN or infinite (first: sequence "
                        f"{int(np.flatnonzero(bad)[0])}); fix or drop those sequences")
    return y


def encode_labels(train: Arrays, others: list[Arrays]) -> tuple[np.ndarray, list[np.ndarray], int]:
    """Class ids for the training file and the others, and the number of classes.

    Integer labels are kept as they are (classes ``0..max``; negative ones are refused); strings are
    numbered in sorted order of the training labels (numerically when they all read as integers).
    A class in another file that training never shows is refused.
    """
    if np.issubdtype(train.y.dtype, np.floating) and _as_class_ids(train.y) is None:
        raise DataError(f"{train.where}: labels must be classes (integers or strings), got non-integer floats such as "
                        f"{train.y[~np.isclose(train.y, np.round(train.y))][:1]}; for one real target per sequence set data.target: value")
    ids = _as_class_ids(train.y)
    if ids is not None:
        if ids.min() < 0:
            raise DataError(f"{train.where}: labels must be class ids >= 0, found {int(ids.min())}; renumber the classes from 0")
        others_ids = []
        for other in others:
            o = _as_class_ids(other.y)
            if o is None:
                raise DataError(f"{other.where}: labels are {other.y.dtype} but the training labels are integers; use the same labels")
            unseen = sorted(set(o.tolist()) - set(ids.tolist()))
            if unseen:
                raise DataError(f"{other.where}: labels {unseen[:5]} are out of range: the training data has classes "
                                f"0..{int(ids.max())} and none of these; fix the labels or the file")
            others_ids.append(o)
        return ids, others_ids, int(ids.max()) + 1
    names = [str(v) for v in train.y]
    unique = sorted(set(names), key=lambda s: (0, int(s), s) if s.lstrip("-").isdigit() else (1, 0, s))
    index = {name: i for i, name in enumerate(unique)}
    others_ids = []
    for other in others:
        labels = [str(v) for v in other.y]
        unseen = sorted(set(labels) - set(index))
        if unseen:
            raise DataError(f"{other.where}: labels {unseen[:5]} are out of range: the training data's classes are "
                            f"{unique[:8]}; fix the labels or the file")
        others_ids.append(np.array([index[v] for v in labels], dtype=np.int64))
    return np.array([index[v] for v in names], dtype=np.int64), others_ids, len(unique)


def standardization(train: Arrays) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-feature mean and standard deviation over the training split's valid steps."""
    return feature_statistics(train.x[valid_steps(train)])


def standardized_by(task: Task, train: Split) -> Task:
    """``task`` carrying the per-feature mean and std of ``train``'s valid steps (padding left out),
    which the model standardises its inputs with."""
    x = train.x.numpy()
    if train.lengths is not None:
        x = x[np.arange(x.shape[1])[None, :] < train.lengths.numpy()[:, None]]
    mean, std = feature_statistics(x.reshape(-1, x.shape[-1]))
    return replace(task, input_mean=mean, input_std=std)


def feature_statistics(steps: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and standard deviation of each column of ``steps`` ``[steps, F]``; a constant feature gets
    std 1, so it passes through centred."""
    steps = steps.astype(np.float64)
    mean = steps.mean(axis=0)
    std = steps.std(axis=0)
    std = np.where(std > 1e-8 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
