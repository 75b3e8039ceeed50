"""`workers.hyper_bridge`: training before/beside the search, checkpoints, proxy gate, warm start."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from hyper import HyperConfig
from search_spaces import RecurrentCellSpace
from workers.data import load_dataset
from workers.hyper_bridge import HyperBridge, HyperSettings, init_state
from workers.run_dir import RunDir
from workers.trial import HyperStart
from workers.training import TrainConfig, Trainer

SMALL = HyperConfig(embed=32, hidden=64, bank=256, bias_bank=64, specs_per_step=1, batch_size=32)
SPACE = RecurrentCellSpace(num_nodes=2, hidden_sizes=(16,))


def test_before_search_checkpoint_gate_and_warm_start(tmp_path) -> None:
    data = load_dataset("digits-seq")
    settings = HyperSettings(enabled=True, train_steps=3, proxy="skip", proxy_quantile=0.5, proxy_min_seen=2, warm_start=True)
    bridge = HyperBridge(settings, SPACE, data, RunDir(tmp_path), config=SMALL, local=True)
    assert bridge.step == 3 and (tmp_path / "hyper.pt").is_file()
    rng = np.random.default_rng(0)
    specs = [SPACE.sample(rng) for _ in range(6)]
    decisions = [bridge.gate(s) for s in specs]
    assert not any(skip for _, skip in decisions[:2])  # never before proxy_min_seen scores
    assert all(0 <= score <= 1 for score, _ in decisions)
    start = bridge.trial_start()
    assert start == HyperStart(warm_start=True, checkpoint=str((tmp_path / "hyper.pt").resolve()))
    state = init_state(start, specs[0], data.task)
    trainer = Trainer(specs[0], data, TrainConfig(epochs=1), init_state=state)
    assert all(torch.equal(p.detach(), state[k]) for k, p in trainer.model.named_parameters())
    assert init_state(HyperStart(False, start.checkpoint), specs[0], data.task) is None
    assert init_state(None, specs[0], data.task) is None
    again = HyperBridge(settings, SPACE, data, RunDir(tmp_path), config=SMALL, local=True)
    assert again.step == 3  # resumed from the checkpoint, nothing retrained


def test_beside_search_trains_in_chunks(tmp_path) -> None:
    data = load_dataset("digits-seq")
    settings = HyperSettings(enabled=True, train_steps=3, when="beside", chunk_steps=2)
    bridge = HyperBridge(settings, SPACE, data, RunDir(tmp_path), config=SMALL, local=True)
    assert bridge.step == 0
    bridge.poll()
    assert bridge.step == 2 and (tmp_path / "hyper.pt").is_file()
    bridge.poll()
    bridge.poll()
    assert bridge.step == 3


def test_beside_search_hands_the_trained_proposals_to_the_trainer(tmp_path) -> None:
    data = load_dataset("digits-seq")
    settings = HyperSettings(enabled=True, train_steps=4, when="beside", chunk_steps=2, proxy="skip",
                             proxy_quantile=0.5, proxy_min_seen=2)
    bridge = HyperBridge(settings, SPACE, data, RunDir(tmp_path), config=SMALL, local=True)
    rng = np.random.default_rng(0)
    decisions = [(spec, bridge.gate(spec)[1]) for spec in (SPACE.sample(rng) for _ in range(6))]
    trained = [spec.to_json() for spec, skip in decisions if not skip]
    assert 2 <= len(trained) < 6  # some were skipped: those are not trained, so not learned from
    bridge.poll()
    assert [s.to_json() for s in bridge.actor.trainer.proposals] == trained
    before = HyperBridge(HyperSettings(enabled=True, train_steps=1), SPACE, data, RunDir(tmp_path / "b"),
                         config=SMALL, local=True)
    before.gate(SPACE.sample(rng))
    assert not before._proposed  # trained before the search: nothing more to learn from


def test_settings_validate() -> None:
    with pytest.raises(ValueError, match="proxy"):
        HyperSettings(proxy="sometimes")
    with pytest.raises(ValueError, match="proxy"):
        HyperSettings(proxy="order")  # there is no batch of proposals to order
    assert HyperSettings.from_dict({"warm_start": True}).warm_start


@pytest.mark.slow
def test_bridge_on_ray(ray_cluster, tmp_path) -> None:
    data = load_dataset("digits-seq")
    settings = HyperSettings(enabled=True, train_steps=3, when="beside", chunk_steps=2, warm_start=True)
    bridge = HyperBridge(settings, SPACE, data, RunDir(tmp_path), config=SMALL, name="hyper-test")
    deadline = time.time() + 120
    while bridge.step < 3 and time.time() < deadline:
        bridge.poll()
        time.sleep(0.2)
    bridge.poll()
    assert bridge.step == 3 and (tmp_path / "hyper.pt").is_file()
