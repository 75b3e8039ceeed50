"""Real processes on 127.0.0.1: a two-node Ray cluster with a killed worker, two drivers sharing a
PostgreSQL study, and reproducible searches (slow)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import yaml
from _processes import start_nas
from optuna.trial import TrialState

from nas.config import parse_config
from nas.search import run_search
from nas.study import default_storage, interrupted

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, name: str, **search) -> Path:
    data = {
        "name": name,
        "data": {"name": "digits-seq"},
        "space": {"name": "recurrent_cell", "num_nodes": 2, "hidden_sizes": [16]},
        "train": {"epochs": 2, "batch_size": 128},
        "search": {"trials": 6, "sampler": "random", "max_concurrent": 2, **search},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _finish(proc: subprocess.Popen, timeout: float = 400) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(out.decode()[-3000:])
    assert proc.returncode == 0, out.decode()[-3000:]
    return out.decode()


def test_two_node_search_survives_a_killed_worker_process(ray_head_and_worker, tmp_path):
    path = _config(tmp_path, "spread", trials=6)
    data = yaml.safe_load(path.read_text())
    data["train"] = {"epochs": 20, "batch_size": 32}
    path.write_text(yaml.safe_dump(data))
    runs = tmp_path / "runs"
    proc = start_nas("search", str(path), "--runs-dir", str(runs), "--address", ray_head_and_worker, cwd=tmp_path)
    storage = default_storage(runs / "spread")
    killed = None
    deadline = time.time() + 240
    while killed is None and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            trials = optuna.load_study(study_name="spread", storage=storage).get_trials()
        except Exception:
            continue
        for t in trials:
            driver_node = (t.user_attrs.get("driver") or {}).get("node")
            if t.state == TrialState.RUNNING and "pid" in t.user_attrs and t.user_attrs.get("node") != driver_node:
                killed = (t.number, t.user_attrs["pid"], t.user_attrs["node"])
                os.kill(int(killed[1]), signal.SIGKILL)  # the trial's worker process on the second node
                break
    assert killed is not None, "no trial ran on the second node"
    _finish(proc)
    trials = optuna.load_study(study_name="spread", storage=storage).get_trials()
    assert len([t for t in trials if not interrupted(t)]) == 6
    assert all(t.state == TrialState.COMPLETE for t in trials), [(t.number, t.state, t.user_attrs.get("error")) for t in trials]
    # spread over both nodes: the killed trial ran on the second node, others on the head's
    assert len({t.user_attrs["node"] for t in trials} | {killed[2]}) == 2
    retried = trials[killed[0]]
    assert retried.user_attrs["pid"] != killed[1]
    assert retried.user_attrs.get("restored_from_epoch", 0) > 0  # continued from its last epoch checkpoint


def test_two_drivers_share_one_postgres_study(postgres_url, tmp_path):
    path = _config(tmp_path, "shared", trials=8, storage=postgres_url, max_concurrent=1)
    first = start_nas("search", str(path), "--runs-dir", str(tmp_path / "a"), cwd=tmp_path)
    second = start_nas("search", str(path), "--runs-dir", str(tmp_path / "b"), cwd=tmp_path)
    _finish(first)
    _finish(second)
    trials = optuna.load_study(study_name="shared", storage=postgres_url).get_trials()
    counted = [t for t in trials if not interrupted(t)]
    assert len(counted) == 8
    assert all(t.state == TrialState.COMPLETE for t in counted)
    assert len({t.user_attrs["driver"]["pid"] for t in counted}) == 2  # both drivers worked
    assert len({t.number for t in counted}) == 8


def test_fixed_seed_one_worker_gives_the_same_trials_and_results(ray_cluster, tmp_path):
    def run(name: str) -> list[tuple]:
        config = parse_config(
            {
                "name": name,
                "seed": 7,
                "space": {"name": "recurrent_cell", "num_nodes": 3, "hidden_sizes": [8, 16]},
                "train": {"epochs": 2, "batch_size": 128},
                "search": {"trials": 5, "sampler": "tpe", "max_concurrent": 1,
                           "sampler_options": {"n_startup_trials": 2}},
            }
        )
        study = run_search(config, runs_dir=tmp_path / "runs").study
        return [(t.params, t.values, t.user_attrs["curve"]) for t in study.get_trials()]

    assert run("one") == run("two")
