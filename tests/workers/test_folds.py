"""train.folds: K-fold cross-validation over train + validation, for selection on small data."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
import torch

from nas.config import ConfigError, parse_config
from nas.splits import eval_seeds_line
from search_spaces import gru
from workers.data import DataError, load_dataset
from workers.data.checks import feature_statistics
from workers.data.folds import cross_validation_folds, fold_of, selection_splits
from workers.ensemble import SeedEnsemble, make_trainer, member_seeds
from workers.training import Trainer, TrainConfig


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits-seq", standardize=True)


def _rows(split) -> set[bytes]:
    return {row.numpy().tobytes() for row in split.x}


def test_folds_partition_train_and_validation_and_keep_the_classes_in_proportion(data):
    folds = cross_validation_folds(data, 5)
    pool = _rows(data.train) | _rows(data.val)
    vals = [_rows(f.val) for f in folds]
    assert sum(len(f.val) for f in folds) == len(data.train) + len(data.val)  # each pooled sequence validated once
    assert set().union(*vals) == pool and all(not (a & b) for i, a in enumerate(vals) for b in vals[i + 1:])
    for fold in folds:
        assert _rows(fold.train) == pool - _rows(fold.val) and len(fold.train) + len(fold.val) == len(pool)
        assert torch.equal(fold.test.x, data.test.x)  # the test split is untouched
        for label in range(10):  # every class spread evenly: at most one sequence from its fair share
            total = int((data.train.y == label).sum() + (data.val.y == label).sum())
            assert abs(int((fold.val.y == label).sum()) - total / 5) <= 1
    # the deal is a function of the data alone: every trial of a study sees the same folds
    assert np.array_equal(fold_of(data, 5), fold_of(load_dataset("digits-seq", standardize=True), 5))


def test_each_fold_standardises_with_its_own_training_statistics(data):
    fold = cross_validation_folds(data, 4)[1]
    mean, std = feature_statistics(fold.train.x.reshape(-1, 8).numpy())
    assert fold.task.input_mean == pytest.approx(mean) and fold.task.input_std == pytest.approx(std)
    assert fold.task.input_mean != data.task.input_mean  # not the original training split's
    raw = load_dataset("digits-seq")  # inputs used as they are: nothing to recompute
    assert cross_validation_folds(raw, 2)[0].task.input_mean is None


def test_bad_folds_are_refused_naming_the_option(data, tmp_path):
    with pytest.raises(DataError, match="train.folds: 5000 folds of 1437"):
        cross_validation_folds(data, 5000)
    text = tmp_path / "t.txt"
    text.write_text("to be or not to be that is the question\n" * 50)
    with pytest.raises(DataError, match="language model's text is split by position"):
        selection_splits(load_dataset("text", path=str(text), bptt=8), 3)
    with pytest.raises(ConfigError, match="choose one"):
        parse_config({"train": {"folds": 3, "eval_seeds": 2}})
    with pytest.raises(ConfigError, match="train.folds"):
        parse_config({"train": {"folds": 0}})


def test_a_trial_over_folds_reports_the_mean_of_one_model_per_fold(data):
    config = TrainConfig(epochs=1, batch_size=256, folds=3)
    trainer = make_trainer(gru(8), data, config, seed=2)
    assert isinstance(trainer, SeedEnsemble) and trainer.seeds == member_seeds(2, 3)
    result = trainer.train_epoch()
    separate = [Trainer(gru(8), fold, config, seed=s) for fold, s in zip(cross_validation_folds(data, 3), trainer.seeds)]
    scores = [run.train_epoch().score for run in separate]
    assert result.score == statistics.fmean(scores) and len(set(scores)) == 3
    assert [len(m.data.val) for m in trainer.members] == [len(f.val) for f in cross_validation_folds(data, 3)]
    # a checkpoint of another number of folds is refused, not silently mixed
    other = make_trainer(gru(8), data, TrainConfig(epochs=1, batch_size=256, eval_seeds=3), seed=2)
    with pytest.raises(ValueError, match="fold"):
        other.load_state_dict(trainer.state_dict())


def test_the_splits_behind_the_numbers_and_the_cost_are_said(data):
    splits = selection_splits(data, 5)
    assert splits["val"]["size"] == len(data.train) + len(data.val)
    assert splits["val"]["source"].startswith("5-fold cross-validation over train + validation")
    assert splits["test"] == data.describe()["test"] and selection_splits(data) == data.describe()
    line = eval_seeds_line(parse_config({"train": {"folds": 5}}).train)
    assert line.startswith("each trial trains 5 models, one per fold") and "5x the training time" in line


@pytest.mark.slow
def test_a_search_with_folds_selects_and_confirms_on_cross_validation(ray_cluster, tmp_path, capsys):
    """Through Ray: every trial and every confirmation run is the mean over the folds, the study says
    its validation numbers are cross-validated, and a bad number of folds exits 2 before anything."""
    import optuna
    import yaml

    from nas import confirm
    from nas.cli import main
    from nas.splits import STUDY_ATTR
    from nas.study import default_storage

    config = {"name": "cv", "data": {"name": "digits-seq"}, "space": {"name": "gated", "hidden_sizes": [8]},
              "train": {"epochs": 1, "batch_size": 256, "folds": 2},
              "search": {"trials": 3, "sampler": "rea", "baselines": ["gru"], "confirm": 1, "confirm_top": 1}}
    (tmp_path / "cv.yaml").write_text(yaml.safe_dump(config))
    runs = tmp_path / "runs"
    assert main(["search", str(tmp_path / "cv.yaml"), "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "each trial trains 2 models, one per fold" in " ".join(out.split())
    study = optuna.load_study(study_name="cv", storage=default_storage(runs / "cv"))
    assert study.user_attrs[STUDY_ATTR]["val"]["source"].startswith("2-fold cross-validation")
    trials = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 3 and all(len(t.user_attrs["seed_runs"]["seeds"]) == 2 for t in trials)
    assert {s.seeds for s in confirm.scores(study)} == {1} and len(confirm.scores(study)) == 2
    (tmp_path / "play.txt").write_text("to be or not to be that is the question\n" * 50)
    bad = {**config, "name": "bad", "data": {"name": "text", "path": str(tmp_path / "play.txt"), "bptt": 8}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    assert main(["search", str(tmp_path / "bad.yaml"), "--runs-dir", str(runs)]) == 2
    assert "train.folds: a language model" in capsys.readouterr().err and not (runs / "bad").exists()
