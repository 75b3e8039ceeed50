"""The Ray trainable: per-epoch reports with checkpoints, and candidate errors reported, not raised."""

from __future__ import annotations

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
