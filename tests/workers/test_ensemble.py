"""train.eval_seeds: a trial over K seeds reports the mean of K separate runs, and resumes exactly."""

from __future__ import annotations

import io
import math
import statistics
from dataclasses import fields

import pytest
import torch

from nas.config import ConfigError, parse_config
from nas.splits import eval_seeds_line, split_caption, validation_label
from search_spaces import gru
from workers.data import load_dataset
from workers.ensemble import SeedEnsemble, make_trainer, member_seeds, seed_runs
from workers.training import EpochResult, Trainer, TrainConfig

CONFIG = TrainConfig(epochs=2, batch_size=256, eval_seeds=3)


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits-seq")


def _roundtrip(state: dict) -> dict:
    """A state as a checkpoint file gives it back."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def test_the_curve_is_the_mean_of_k_runs_trained_separately(data):
    ensemble = SeedEnsemble(gru(8), data, CONFIG, seed=4)
    ensemble.fit()
    assert ensemble.seeds == member_seeds(4, 3) == [4, 1004, 2004]
    separate = [Trainer(gru(8), data, CONFIG, seed=s) for s in ensemble.seeds]
    for run in separate:
        run.fit()
    for epoch, mean in enumerate(ensemble.history):
        runs = [run.history[epoch] for run in separate]
        for f in fields(EpochResult):
            expected = statistics.fmean(getattr(r, f.name) for r in runs)
            assert getattr(mean, f.name) == expected or (math.isnan(expected) and math.isnan(getattr(mean, f.name)))
    # the runs really differ (three seeds, not one run thrice), and the mean is what the trial reports
    assert len({run.history[-1].train_loss for run in separate}) == 3
    best = max(ensemble.history, key=lambda r: r.score)
    assert ensemble.best is best
    runs = seed_runs(ensemble)
    assert runs["seeds"] == ensemble.seeds and runs["weights_seed"] == 4 and runs["weights_epoch"] == best.epoch
    assert [r["score"] for r in runs["at_best_epoch"]] == [run.history[best.epoch - 1].score for run in separate]
    assert runs["curves"] == [[r.score for r in run.history] for run in separate]
    # the weights it exports: the first seed's at the epoch where the mean is best
    first = Trainer(gru(8), data, CONFIG, seed=4)
    for _ in range(best.epoch):
        first.train_epoch()
    assert all(torch.equal(ensemble.best_state[k], v) for k, v in first.model.state_dict().items())


def test_resume_mid_trial_with_k_seeds_equals_an_uninterrupted_run(data):
    config = CONFIG.updated(eval_seeds=2)
    straight = SeedEnsemble(gru(8), data, config, seed=1)
    straight.fit()
    interrupted = SeedEnsemble(gru(8), data, config, seed=1)
    interrupted.train_epoch()
    resumed = SeedEnsemble(gru(8), data, config, seed=1)
    resumed.load_state_dict(_roundtrip(interrupted.state_dict()))
    assert resumed.epoch == 1
    resumed.fit()
    assert [r.to_dict() for r in resumed.history] == [r.to_dict() for r in straight.history]
    for a, b in zip(resumed.members, straight.members):
        assert all(torch.equal(x, y) for x, y in zip(a.model.parameters(), b.model.parameters()))
    assert all(torch.equal(resumed.best_state[k], v) for k, v in straight.best_state.items())


def test_a_checkpoint_of_other_seeds_is_refused(data):
    two = SeedEnsemble(gru(8), data, CONFIG.updated(eval_seeds=2), seed=0)
    three = SeedEnsemble(gru(8), data, CONFIG, seed=0)
    with pytest.raises(ValueError, match=r"seeds \[0, 1000\], this trial trains \[0, 1000, 2000\]"):
        three.load_state_dict(two.state_dict())
    with pytest.raises(ValueError):
        three.load_state_dict(Trainer(gru(8), data, CONFIG, seed=0).state_dict())  # a one-seed checkpoint


def test_one_seed_is_a_plain_trainer_and_seeds_stay_clear_of_confirmation(data):
    assert type(make_trainer(gru(8), data, CONFIG.updated(eval_seeds=1), seed=0)) is Trainer
    assert type(make_trainer(gru(8), data, CONFIG, seed=0)) is SeedEnsemble
    confirmation = {7 + k for k in range(1, 101)}  # nas.confirm: seed + 1 .. seed + search.confirm (<= 100)
    assert not confirmation & set(member_seeds(7, 100))


def test_eval_seeds_is_validated_and_its_cost_said():
    assert parse_config({}).train.eval_seeds == 1 and eval_seeds_line(parse_config({}).train) is None
    line = eval_seeds_line(parse_config({"train": {"eval_seeds": 3}}).train)
    assert line == "each trial trains 3 seeds (train.eval_seeds: 3) and is scored by their mean: 3x the training time of one run"
    with pytest.raises(ConfigError, match="train.eval_seeds"):
        parse_config({"train": {"eval_seeds": 0}})
    assert parse_config({"train": {"eval_seeds": 2}}).fingerprint() != parse_config({}).fingerprint()
    splits = {"val": {"size": 8, "source": "x"}, "test": {"size": 40, "source": "y"}}
    assert "val acc: mean of 3 seeds on the validation split (8" in split_caption(splits, eval_seeds=3)
    assert "mean of" not in split_caption(splits)
    assert validation_label(splits, eval_seeds=3) == "validation accuracy (mean of 3 seeds, 8 sequences)"
    assert validation_label(None) == "validation accuracy"
