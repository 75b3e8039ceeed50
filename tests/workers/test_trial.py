"""`TrialConfig` round trips, refuses malformed dicts; `RunDir` spells the layout; checkpoint pruning."""

from __future__ import annotations

import pytest

from workers.run_dir import RunDir, prune_checkpoints
from workers.settings import TrainConfig
from workers.trial import Cost, HyperStart, TrialConfig, config_cost, config_epochs


def _trial(**overrides) -> TrialConfig:
    fields = dict(spec='{"x": 1}', data={"name": "digits-seq", "seed": 3}, train=TrainConfig(epochs=4), seed=2,
                  number=7, cost=Cost(macs=1200, params=300), threads=2)
    return TrialConfig(**{**fields, **overrides})


@pytest.mark.parametrize("overrides", [{}, {"resume": "ray/trial_3/checkpoint_000002"},
                                       {"hyper": HyperStart(warm_start=True, checkpoint="/r/hyper.pt")}])
def test_trial_config_round_trips_through_a_plain_dict(overrides) -> None:
    trial = _trial(**overrides)
    data = trial.to_dict()
    assert TrialConfig.from_dict(data) == trial
    assert config_cost(data) == 1200.0 and config_cost(data, "params") == 300.0
    assert config_epochs(data, 99) == 4 and config_epochs({}, 99) == 99 and config_cost({}) is None


def test_trial_config_names_unknown_and_missing_keys() -> None:
    data = _trial().to_dict()
    with pytest.raises(ValueError, match=r"unknown keys \['macs'\], missing keys \['cost'\]"):
        TrialConfig.from_dict({**{k: v for k, v in data.items() if k != "cost"}, "macs": 1})
    with pytest.raises(ValueError, match="epochs"):
        TrialConfig.from_dict({**data, "train": {"epochs": 0}})


def test_run_dir_paths(tmp_path) -> None:
    run = RunDir.of("demo", tmp_path)
    assert run.root == tmp_path.resolve() / "demo"
    assert run.storage_url == f"sqlite:///{run.root / 'study.db'}"
    assert run.stopper_state.parent == run.proposer_dir and run.hyper_checkpoint.name == "hyper.pt"
    assert not run.exists() and run.read_config() is None
    run.write_config({"name": "demo", "seed": 1})
    run.write_config({"name": "other"})  # an existing config is the study's: kept
    assert run.exists() and run.read_config() == {"name": "demo", "seed": 1}
    assert run.relative(str(run.root / "ray" / "trial_1")) == "ray/trial_1"
    assert run.relative("/elsewhere/x") == "/elsewhere/x"
    assert run.checkpoint_file("ray/trial_1/checkpoint_000003") == run.root / "ray/trial_1/checkpoint_000003/trainer.pt"


def test_prune_checkpoints_keeps_the_named_or_newest(tmp_path) -> None:
    for k in range(4):
        (tmp_path / f"checkpoint_00000{k}").mkdir()
        (tmp_path / f"checkpoint_00000{k}" / "trainer.pt").write_bytes(b"x")
    (tmp_path / "result.json").write_text("{}")
    assert prune_checkpoints(str(tmp_path), "checkpoint_000002") == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_000002", "result.json"]
    (tmp_path / "checkpoint_000005").mkdir()
    assert prune_checkpoints(str(tmp_path), None) == 1  # no name: the newest stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_000005", "result.json"]
    assert prune_checkpoints(str(tmp_path / "missing"), None) == 0
