"""End-to-end searches on the local Ray cluster (slow: they train real candidates)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from nas.cli import main
from nas.config import parse_config
from nas.search import run_search
from nas.study import default_storage

pytestmark = pytest.mark.slow

SMALL = {
    "data": {"name": "digits-seq"},
    "space": {"name": "recurrent_cell", "num_nodes": 2, "hidden_sizes": [8, 16]},
    "train": {"epochs": 2, "batch_size": 128},
    "search": {"trials": 4, "sampler": "random", "max_concurrent": 2},
}


def _config(tmp_path: Path, name: str, **changes) -> Path:
    data = {"name": name, **{k: dict(v) for k, v in SMALL.items()}}
    for dotted, value in changes.items():
        section, key = dotted.split(".")
        data[section][key] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _study(tmp_path: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=default_storage(tmp_path / "runs" / name))


def test_search_writes_a_study_with_both_objectives(ray_cluster, tmp_path, capsys):
    path = _config(tmp_path, "tiny")
    assert main(["search", str(path), "--runs-dir", str(tmp_path / "runs")]) == 0
    study = _study(tmp_path, "tiny")
    trials = study.get_trials()
    assert len(trials) == 4
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert complete, [t.user_attrs for t in trials]
    for t in complete:
        assert len(t.values) == 2 and 0 <= t.values[0] <= 1 and t.values[1] == t.user_attrs["macs"] > 0
        assert t.user_attrs["epochs"] == 2 and len(t.user_attrs["curve"]) == 2 and "spec" in t.user_attrs
    assert study.best_trials
    out = capsys.readouterr().out
    assert "Pareto front" in out and "finished 4/4" in out
    assert main(["status", "tiny", "--runs-dir", str(tmp_path / "runs")]) == 0
    assert "complete 4" in capsys.readouterr().out.replace(",", "")
    # the same study again: already done, nothing runs; a different config is refused, study untouched
    assert main(["search", str(path), "--runs-dir", str(tmp_path / "runs")]) == 0
    changed = _config(tmp_path, "tiny", **{"space.num_nodes": 3})
    assert main(["search", str(changed), "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "space.num_nodes" in capsys.readouterr().err
    assert len(_study(tmp_path, "tiny").get_trials()) == 4


def test_crashing_candidates_fail_their_trial_and_the_search_goes_on(ray_cluster, tmp_path):
    config = parse_config(
        {
            "name": "crashy",
            **SMALL,
            "space": {"name": "recurrent_cell", "num_nodes": 1, "hidden_sizes": [16],
                      "activations": ["tanh", "exp(exp(exp(exp(x))))"], "combine_ops": ["add"]},
            "search": {"trials": 6, "sampler": "random", "max_concurrent": 2},
        }
    )
    outcome = run_search(config, runs_dir=tmp_path / "runs")
    trials = outcome.study.get_trials()
    assert len(trials) == 6 and not outcome.interrupted
    for t in trials:
        act = t.params["n0_act"]
        if act == "tanh":
            assert t.state == TrialState.COMPLETE
        else:
            assert t.state == TrialState.FAIL and "loss became" in t.user_attrs["error"]
    assert {t.params["n0_act"] for t in trials} == {"tanh", "exp(exp(exp(exp(x))))"}


def test_ctrl_c_leaves_the_study_readable(tmp_path):
    path = _config(tmp_path, "stopme", **{"search.trials": 200, "train.epochs": 3})
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nas.cli", "search", str(path), "--runs-dir", str(tmp_path / "runs")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
    )
    db = tmp_path / "runs" / "stopme" / "study.db"
    deadline = time.time() + 120
    while time.time() < deadline:
        if db.exists():
            try:
                if sum(t.state == TrialState.COMPLETE for t in _study(tmp_path, "stopme").get_trials()) >= 2:
                    break
            except Exception:
                pass
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode in (0, 130), out.decode()[-2000:]
    assert "Tuner.restore" not in out.decode() and "`nas resume stopme`" in out.decode()  # our hint, not Ray's
    trials = _study(tmp_path, "stopme").get_trials()
    assert 2 <= len(trials) < 200
    assert not [t for t in trials if t.state == TrialState.RUNNING]


def test_curve_stopper_state_is_checkpointed_beside_the_study(ray_cluster, tmp_path):
    from workers.stopping import CurveStopper

    config = parse_config(
        {"name": "stopper", **SMALL, "stopping": {"policy": "curve", "options": {"min_finished": 1, "grace_period": 1}},
         "search": {"trials": 3, "sampler": "random", "max_concurrent": 2}}
    )
    run_search(config, runs_dir=tmp_path / "runs")
    state = tmp_path / "runs" / "stopper" / "proposer" / "stopper.pkl"
    assert state.is_file()
    restored = CurveStopper(metric="score", mode="max", max_epochs=2, grace_period=1)
    restored.restore(str(state))
    finished, stopped = restored.debug_string().split(":")[1].split(",")
    assert int(finished.split()[0]) + int(stopped.split()[0]) >= 1


def test_invalid_proposals_are_failed_trials_with_the_reason(ray_cluster, tmp_path):
    # N:M at 1/16 needs inputs divisible by 16; digits rows have 8: every proposal is invalid
    config = parse_config(
        {"name": "invalid", **SMALL,
         "space": {"name": "sparsity", "cell": "elman", "hidden_size": 16, "densities": [0.0625], "patterns": ["nm"]},
         "search": {"trials": 3, "sampler": "random"}}
    )
    outcome = run_search(config, runs_dir=tmp_path / "runs")
    trials = outcome.study.get_trials()
    assert len(trials) == 3 and outcome.error is None
    assert all(t.state == TrialState.FAIL and "invalid proposal" in t.user_attrs["error"] for t in trials)


def test_hypernetwork_proxy_and_warm_start_in_a_search(ray_cluster, tmp_path):
    config = parse_config(
        {"name": "hyper", **SMALL, "search": {"trials": 4, "sampler": "random", "max_concurrent": 2},
         "hyper": {"enabled": True, "train_steps": 20, "proxy": "skip", "proxy_min_seen": 2,
                   "proxy_quantile": 0.5, "warm_start": True}}
    )
    outcome = run_search(config, runs_dir=tmp_path / "runs")
    trials = outcome.study.get_trials()
    assert len(trials) == 4 and (tmp_path / "runs" / "hyper" / "hyper.pt").is_file()
    assert all(0.0 <= t.user_attrs["proxy"] <= 1.0 for t in trials)
    trained = [t for t in trials if t.state == TrialState.COMPLETE]
    skipped = [t for t in trials if t.user_attrs.get("skipped")]
    assert trained and all(t.state == TrialState.PRUNED for t in skipped)
    assert len(trained) + len(skipped) == 4


def test_equivalent_candidates_are_not_trained_twice(ray_cluster, tmp_path):
    config = parse_config(
        {"name": "dups", **SMALL,
         "space": {"name": "recurrent_cell", "num_nodes": 1, "hidden_sizes": [8], "activations": ["tanh"],
                   "combine_ops": ["add"]},
         "search": {"trials": 3, "sampler": "random", "max_concurrent": 1}}
    )
    trials = run_search(config, runs_dir=tmp_path / "runs").study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert "duplicate_of" not in trials[0].user_attrs
    assert [t.user_attrs["duplicate_of"] for t in trials[1:]] == [0, 0]
    assert all(t.values == trials[0].values for t in trials)


def test_a_finished_trial_keeps_only_its_last_checkpoint_unless_all_are_asked_for(ray_cluster, tmp_path):
    runs = tmp_path / "runs"
    for name, keep, expected in (("last", "last", 1), ("every", "all", 3)):
        path = _config(tmp_path, name, **{"train.epochs": 3, "train.keep_checkpoints": keep, "search.trials": 2})
        assert main(["search", str(path), "--runs-dir", str(runs)]) == 0
        for t in _study(tmp_path, name).get_trials():
            folder = runs / name / "ray" / f"trial_{t.number}"
            kept = sorted(p.name for p in folder.glob("checkpoint_*"))
            assert len(kept) == expected, (name, t.number, kept)
            assert t.user_attrs["checkpoint"] == f"ray/trial_{t.number}/{kept[-1]}"  # the last epoch's
    out = tmp_path / "cells"
    assert main(["export", "last", "--trial", "0", "--out", str(out), "--format", "json,torch",
                 "--runs-dir", str(runs)]) == 0
    manifest = (out / "trial_0" / "manifest.json").read_text()
    assert '"weights": "trained' in manifest  # the best epoch's weights live in the kept checkpoint
