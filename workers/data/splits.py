"""Index splits: random (the built-in datasets) and stratified by class (user classification data).

Both are fixed by ``seed`` and return disjoint index arrays that cover every sample once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def random_split(n: int, seed: int, fractions: Sequence[float] = (0.6, 0.2)) -> list[np.ndarray]:
    """``[train, val, test]`` indices of a seeded permutation; the first two parts have
    ``round(fraction * n)`` samples, the test part the rest (the built-in datasets' split)."""
    order = np.random.default_rng(seed).permutation(n)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    return [order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]]


def _allocate(counts: np.ndarray, total: int, cap: np.ndarray) -> np.ndarray:
    """Split ``total`` over classes in proportion to ``counts`` (largest remainders), at most
    ``cap`` per class."""
    share = counts * total / max(1, counts.sum())
    take = np.minimum(np.floor(share).astype(int), cap)
    for c in np.argsort(-(share - np.floor(share)), kind="stable"):
        if take.sum() >= total:
            break
        if take[c] < cap[c]:
            take[c] += 1
    while take.sum() < total and (cap - take).max() > 0:  # classes too small for their share
        take[int(np.argmax(cap - take))] += 1
    return take


def stratified_split(labels: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Indices of ``len(fractions)`` parts with every class in proportion; the first part (train) has
    what the others leave, and keeps at least one sample of every class.

    Args:
        labels: ``[N]`` class ids.
        fractions: e.g. ``(0.6, 0.2, 0.2)`` (train, val, test) or ``(0.8, 0.2)`` (train, val); parts
            after the first get ``round(fraction * N)`` samples, as close as the classes allow.
        seed: fixes the shuffle within each class.
    """
    rng = np.random.default_rng(seed)
    classes, inverse = np.unique(labels, return_inverse=True)
    members = [rng.permutation(np.flatnonzero(inverse == c)) for c in range(len(classes))]
    counts = np.array([len(m) for m in members])
    left = counts.copy()
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for p, fraction in enumerate(fractions[1:], start=1):
        take = _allocate(counts, int(round(fraction * len(labels))), cap=np.maximum(left - 1, 0))
        for c, k in enumerate(take):
            start = counts[c] - left[c]
            parts[p].append(members[c][start : start + k])
        left -= take
    for c in range(len(classes)):
        parts[0].append(members[c][counts[c] - left[c] :])
    return [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]
