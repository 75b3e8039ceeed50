"""Which data split is behind each reported number, for tables, plots, reports and manifests.

A search records its dataset's splits (`workers.data.Dataset.describe`: size and source of train,
validation and test) as the study attribute ``data_splits``. "val" numbers (the task's metric, e.g.
"val acc", "val bpc") are always on the validation split, the one that selects (best epoch, early
stopping, the Pareto front); "test" numbers on the test split, evaluated at the selected epoch and
never used to choose. With ``train.eval_seeds: K`` each of them is the mean of K seeded runs, and
the captions say so.
"""

from __future__ import annotations

import math
from typing import Any

import optuna

from workers.data import DataError, describe_splits, load_dataset
from workers.metrics import METRICS, Metric

STUDY_ATTR = "data_splits"


def study_eval_seeds(study: optuna.Study) -> int:
    """How many seeded runs each trial of ``study`` averages (``train.eval_seeds`` of the config it
    was created with; 1 for a study from before it was recorded)."""
    from nas.locate import CONFIG_ATTR

    return int(((study.user_attrs.get(CONFIG_ATTR) or {}).get("train") or {}).get("eval_seeds", 1))


def eval_seeds_line(train: Any) -> str | None:
    """What ``train.eval_seeds`` or ``train.folds`` costs, said before anything trains (None for one run)."""
    k = train.eval_seeds
    if train.folds > 1:
        return (f"each trial trains {train.folds} models, one per fold of a {train.folds}-fold cross-validation over "
                f"train + validation (train.folds: {train.folds}), and is scored by their mean: "
                f"{train.folds}x the training time of one run")
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
    return f"{info.get('size', '?')} {info.get('unit', 'sequences')}{source}"


def split_caption(splits: dict[str, dict[str, Any]] | None, metric: Metric = METRICS["accuracy"],
                  eval_seeds: int = 1) -> str:
    """``val acc: validation split (8 sequences: ...), selects; test acc: test split (...)``, with
    the metric's label and direction (``val bpc (lower is better)``), each "the mean of K seeds on"
    the split when trials average ``eval_seeds`` runs."""
    val, test_label = f"val {metric.label}", f"test {metric.label}"
    if metric.name != "accuracy":
        val += f" ({metric.phrase}, {'higher' if metric.maximize else 'lower'} is better)"
    on = f"mean of {eval_seeds} seeds on the " if eval_seeds > 1 else ""
    if not splits:
        return f"{val}: {on}the validation split, which selects; {test_label}: {on}the test split, never used to select"
    test = splits.get("test") or {}
    test_text = (f"{test_label}: no test split (give data.test_path)" if not test.get("size")
                 else f"{test_label}: {on}test split ({_part(splits, 'test')}), never used to select")
    return f"{val}: {on}validation split ({_part(splits, 'val')}), which selects; {test_text}"


def validation_label(splits: dict[str, dict[str, Any]] | None, metric: Metric = METRICS["accuracy"],
                     eval_seeds: int = 1) -> str:
    """Axis label of the validation metric, with the split's size when known and the number of
    seeds each point averages."""
    val = (splits or {}).get("val") or {}
    text = f"validation {metric.phrase}" + ("" if metric.maximize else " (lower is better)")
    notes = [f"mean of {eval_seeds} seeds"] if eval_seeds > 1 else []
    if val.get("size"):
        notes.append(f"{val['size']} {val.get('unit', 'sequences')}")
    return f"{text} ({', '.join(notes)})" if notes else text


def splits_line(splits: dict[str, dict[str, Any]] | None) -> str:
    """``data: train 32 (...), validation 8 (...), test 40 (...)`` for `nas status`."""
    return "data: " + (describe_splits(splits) if splits else "splits not recorded")


def number_or_none(value: float | None) -> float | None:
    """A JSON-safe score: None where there is none (NaN: no test split)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
