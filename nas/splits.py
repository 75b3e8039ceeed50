"""Which data split is behind each reported number, for tables, plots, reports and manifests.

A search records its dataset's splits (`workers.data.Dataset.describe`: size and source of train,
validation and test) as the study attribute ``data_splits``. "val acc" is always the validation
split, the one that selects (best epoch, early stopping, the Pareto front); "test acc" is the test
split, evaluated at the selected epoch and never used to choose. With ``train.eval_seeds: K`` each of
them is the mean of K seeded runs, and the captions say so.
"""

from __future__ import annotations

import math
from typing import Any

import optuna

from workers.data import DataError, describe_splits, load_dataset

STUDY_ATTR = "data_splits"


def study_eval_seeds(study: optuna.Study) -> int:
    """How many seeded runs each trial of ``study`` averages (``train.eval_seeds`` of the config it
    was created with; 1 for a study from before it was recorded)."""
    from nas.locate import CONFIG_ATTR

    return int(((study.user_attrs.get(CONFIG_ATTR) or {}).get("train") or {}).get("eval_seeds", 1))


def eval_seeds_line(train: Any) -> str | None:
    """What ``train.eval_seeds`` costs, said before anything trains (None for one seed)."""
    k = train.eval_seeds
    if k == 1:
        return None
    return (f"each trial trains {k} seeds (train.eval_seeds: {k}) and is scored by their mean: "
            f"{k}x the training time of one run")


def study_splits(study: optuna.Study, config: Any = None) -> dict[str, dict[str, Any]] | None:
    """The study's recorded splits; for a study from before they were recorded, those of its search
    `Config` (None when neither is there or its data is gone)."""
    recorded = study.user_attrs.get(STUDY_ATTR)
    if recorded:
        return recorded
    if config is None:
        return None
    try:
        return load_dataset(config.data.name, **config.data.options()).describe()
    except DataError:
        return None


def _part(splits: dict[str, dict[str, Any]], name: str) -> str:
    info = splits.get(name) or {}
    source = f": {info['source']}" if info.get("source") else ""
    return f"{info.get('size', '?')} sequences{source}"


def accuracy_caption(splits: dict[str, dict[str, Any]] | None, eval_seeds: int = 1) -> str:
    """``val acc: validation split (8 sequences: ...), selects; test acc: test split (...)``, each
    "the mean of K seeds on" the split when trials average ``eval_seeds`` runs."""
    on = f"mean of {eval_seeds} seeds on the " if eval_seeds > 1 else ""
    if not splits:
        return f"val acc: {on}the validation split, which selects; test acc: {on}the test split, never used to select"
    test = splits.get("test") or {}
    test_text = ("test acc: no test split (give data.test_path)" if not test.get("size")
                 else f"test acc: {on}test split ({_part(splits, 'test')}), never used to select")
    return f"val acc: {on}validation split ({_part(splits, 'val')}), which selects; {test_text}"


def validation_label(splits: dict[str, dict[str, Any]] | None, eval_seeds: int = 1) -> str:
    """Axis label of validation accuracy, with the split's size when known and the number of seeds
    each point averages."""
    size = ((splits or {}).get("val") or {}).get("size")
    notes = [f"mean of {eval_seeds} seeds"] * (eval_seeds > 1) + [f"{size} sequences"] * bool(size)
    return f"validation accuracy ({', '.join(notes)})" if notes else "validation accuracy"


def splits_line(splits: dict[str, dict[str, Any]] | None) -> str:
    """``data: train 32 (...), validation 8 (...), test 40 (...)`` for `nas status`."""
    return "data: " + (describe_splits(splits) if splits else "splits not recorded")


def fmt_accuracy(value: float | None) -> str:
    """``0.9610``, or ``-`` where there is no number (no test split, a pruned trial)."""
    value = accuracy_or_none(value)
    return "-" if value is None else f"{value:.4f}"


def accuracy_or_none(value: float | None) -> float | None:
    """A JSON-safe accuracy: None where there is none (NaN: no test split)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
