"""The candidate training loop: learns, fails loudly on NaN, resumes exactly."""

from __future__ import annotations

import pytest
import torch

from search_spaces import elman, gru
from workers.data import load_dataset
from workers.training import CandidateDiverged, TrainConfig, Trainer


def test_gru_learns_digits_well_above_chance():
    trainer = Trainer(gru(32), load_dataset("digits-seq"), TrainConfig(epochs=4))
    for _ in range(4):
        result = trainer.train_epoch()
    assert result.score > 0.6  # chance is 0.1
    assert trainer.best.score >= result.score


def test_exploding_candidate_raises_diverged():
    spec = elman(16, activation="exp(exp(exp(exp(x))))")
    trainer = Trainer(spec, load_dataset("digits-seq"), TrainConfig(epochs=1))
    with pytest.raises(CandidateDiverged, match="loss became"):
        trainer.train_epoch()


def test_resume_from_state_dict_continues_identically():
    data = load_dataset("digits-seq")
    config = TrainConfig(epochs=3, batch_size=128)
    straight = Trainer(gru(16), data, config, seed=5)
    for _ in range(3):
        straight.train_epoch()
    first = Trainer(gru(16), data, config, seed=5)
    first.train_epoch()
    state = first.state_dict()
    resumed = Trainer(gru(16), data, config, seed=5)
    resumed.load_state_dict(state)
    for _ in range(2):
        resumed.train_epoch()
    assert [r.score for r in resumed.history] == [r.score for r in straight.history]
    for a, b in zip(resumed.model.parameters(), straight.model.parameters()):
        torch.testing.assert_close(a, b)
