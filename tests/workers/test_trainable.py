"""The Ray trainable: per-epoch reports with checkpoints, and candidate errors reported, not raised."""

from __future__ import annotations

import json

import pytest
from ray import tune

from search_spaces import gru
from workers.settings import TrainConfig
from workers.trainable import train_candidate
from workers.trial import Cost, TrialConfig

pytestmark = pytest.mark.slow


def _config(spec: str, epochs: int, **overrides) -> dict:
    trial = TrialConfig(spec=spec, data={"name": "digits-seq"}, train=TrainConfig(epochs=epochs, batch_size=256),
                        seed=1, number=0, cost=Cost(0, 0), **overrides)
    return trial.to_dict()


def _run(config, tmp_path):
    tuner = tune.Tuner(
        train_candidate,
        param_space=config,
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="t", verbose=0),
    )
    return tuner.fit()[0]


def test_reports_every_epoch_with_a_checkpoint(ray_cluster, tmp_path):
    config = _config(gru(8).to_json(), 2)
    result = _run(config, tmp_path)
    assert result.error is None
    history = result.metrics_dataframe
    assert list(history["epoch"]) == [1, 2]
    assert result.checkpoint is not None
    assert 0 < result.metrics["best_score"] <= 1


def test_a_candidate_that_cannot_build_reports_an_error(ray_cluster, tmp_path):
    result = _run(_config("{not json", 1), tmp_path)
    assert result.error is None
    assert "SpecError" in result.metrics["error"]


def test_a_malformed_trial_config_reports_an_error(ray_cluster, tmp_path):
    result = _run({**_config(gru(8).to_json(), 1), "macs": 10}, tmp_path)
    assert result.error is None
    assert "unknown keys ['macs']" in result.metrics["error"]


def test_resuming_after_the_last_epoch_reports_the_final_result(ray_cluster, tmp_path):
    first = _run(_config(gru(8).to_json(), 1), tmp_path / "a")
    with first.checkpoint.as_directory() as directory:
        again = _run(_config(gru(8).to_json(), 1, resume=directory), tmp_path / "b")
    assert again.metrics["epoch"] == 1 and again.metrics["restored_from_epoch"] == 1
    assert again.metrics["best_score"] == first.metrics["best_score"]


def test_k_seeds_resumed_mid_trial_end_as_an_uninterrupted_run(ray_cluster, tmp_path):
    """train.eval_seeds: 2: every report is the mean of both runs with their per-seed values, and a
    trial continued from its epoch-1 checkpoint ends exactly where the uninterrupted one does."""
    def config(**overrides):
        trial = TrialConfig(spec=gru(8).to_json(), data={"name": "digits-seq"}, seed=3, number=0, cost=Cost(0, 0),
                            train=TrainConfig(epochs=2, batch_size=256, eval_seeds=2), **overrides)
        return trial.to_dict()

    straight = _run(config(), tmp_path / "a")
    runs = json.loads(straight.metrics["seed_runs"])
    assert straight.error is None and runs["seeds"] == [3, 1003] and len(runs["curves"]) == 2
    assert straight.metrics["best_score"] == sum(r["score"] for r in runs["at_best_epoch"]) / 2
    first = min(straight.best_checkpoints, key=lambda c: c[1]["epoch"])[0]  # the epoch-1 checkpoint
    with first.as_directory() as directory:
        resumed = _run(config(resume=directory), tmp_path / "b")
    assert resumed.metrics["restored_from_epoch"] == 1 and resumed.metrics["epoch"] == 2
    for key in ("score", "loss", "train_loss", "test_score", "curve", "seed_runs"):
        assert resumed.metrics[key] == straight.metrics[key], key


def test_a_dataset_handed_over_is_not_loaded_again(ray_cluster, tmp_path):
    """The search loads the data once and shares it through Ray's object store (`tune.with_parameters`):
    the worker trains on it without reading anything (here the config names data that does not exist)."""
    from workers.data import load_dataset

    config = {**_config(gru(8).to_json(), 1), "data": {"name": "uea", "dataset": "NoSuchSet"}}
    tuner = tune.Tuner(
        tune.with_parameters(train_candidate, data=load_dataset("digits-seq")),
        param_space=config,
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="t", verbose=0),
    )
    result = tuner.fit()[0]
    assert "error" not in result.metrics or not result.metrics["error"]
    assert 0 < result.metrics["best_score"] <= 1
