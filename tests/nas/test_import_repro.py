"""`nas import` of a searched cell reproduces the search's trial float for float (slow: a real search)."""

from __future__ import annotations

import json

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

from nas.cli import main
from nas.study import default_storage

pytestmark = pytest.mark.slow


@pytest.fixture
def two_threads():
    """This process on 2 torch threads (other tests may have left it on 1), as `nas import` starts."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def test_import_reproduces_a_searched_trial_exactly_with_k_seeds(ray_cluster, two_threads, tmp_path, capsys):
    """A search whose trials average 2 seeds (one thread per trial, as in every default search),
    its found cell exported and imported with the exported config in this process (2 torch threads):
    identical curves, per-seed results, losses and weights, and manifests with the same keys."""
    runs = tmp_path / "runs"
    config = tmp_path / "repro.yaml"
    config.write_text(yaml.safe_dump({
        "name": "repro",
        "data": {"name": "digits-seq"},
        "space": {"name": "gated", "hidden_sizes": [16]},
        "train": {"epochs": 3, "batch_size": 128, "eval_seeds": 2},
        "search": {"trials": 2, "sampler": "random", "baselines": ["gru"], "max_concurrent": 2},
    }))
    assert main(["search", str(config), "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    cost = "each trial trains 2 seeds (train.eval_seeds: 2) and is scored by their mean: 2x the training time"
    assert cost in " ".join(out.split()) and out.index("each trial trains") < out.index("search repro:")
    study = optuna.load_study(study_name="repro", storage=default_storage(runs / "repro"))
    found = [t for t in study.get_trials() if t.state == TrialState.COMPLETE and "baseline" not in t.user_attrs]
    assert found, [t.user_attrs for t in study.get_trials()]
    trial = found[0]
    runs_attr = trial.user_attrs["seed_runs"]
    assert runs_attr["seeds"] == [0, 1000]
    assert trial.values[0] == sum(r["score"] for r in runs_attr["at_best_epoch"]) / 2
    assert main(["status", "repro", "--runs-dir", str(runs)]) == 0
    assert "mean of 2 training seeds" in " ".join(capsys.readouterr().out.split())

    cells = tmp_path / "cells"
    assert main(["export", "repro", "--trial", str(trial.number), "--out", str(cells), "--format", "json,torch",
                 "--runs-dir", str(runs)]) == 0
    exported = cells / f"trial_{trial.number}"
    imported = tmp_path / "imported"
    assert main(["import", str(exported / "cell.json"), "--config", str(exported / "config.yaml"),
                 "--out", str(imported), "--format", "json,torch"]) == 0
    searched = json.loads((exported / "manifest.json").read_text())
    again = json.loads((imported / "manifest.json").read_text())
    assert sorted(searched) == sorted(again)
    for key in ("curve", "seed_runs", "objectives", "test_score", "best_epoch", "epochs", "eval_seeds",
                "splits", "seed", "config_hash", "hash", "macs", "task", "weights"):
        assert again[key] == searched[key], key
    assert searched["curve"] == trial.user_attrs["curve"] and searched["seed_runs"] == runs_attr
    assert again["source"].endswith("cell.json") and again["study"] is None
    trained, retrained = torch.load(exported / "weights.pt"), torch.load(imported / "weights.pt")
    assert trained.keys() == retrained.keys()
    assert all(torch.equal(trained[k], retrained[k]) for k in trained)
    assert torch.get_num_threads() == 2  # import trained on the trial's one thread, then gave them back

