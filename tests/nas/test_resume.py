"""Resume after the driver dies, and the bad-input suite (slow: real processes and Ray)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest
import yaml
from _processes import load_study, wait_for, write_config
from optuna.trial import TrialState

from nas.cli import main
from nas.study import interrupted

pytestmark = pytest.mark.slow

CONFIG = {
    "data": {"name": "digits-seq"},
    "space": {"name": "recurrent_cell", "num_nodes": 2, "hidden_sizes": [8, 16]},
    "train": {"epochs": 6, "batch_size": 128},
    "search": {"trials": 8, "sampler": "random", "max_concurrent": 2},
}


def test_kill_9_of_the_driver_then_resume_loses_nothing(ray_cluster, tmp_path, capsys):
    runs = tmp_path / "runs"
    # trials of about a second, so that the kill lands while some run (6 epochs end too quickly)
    path = write_config(tmp_path, "killed", {**CONFIG, "train": {**CONFIG["train"], "epochs": 100}})
    proc = subprocess.Popen(
        [sys.executable, "-m", "nas.cli", "search", str(path), "--runs-dir", str(runs)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path, start_new_session=True,
    )
    try:
        def two_done_and_running() -> bool:
            trials = load_study(runs, "killed").get_trials()
            done = sum(t.state == TrialState.COMPLETE for t in trials)
            running = [t for t in trials if t.state == TrialState.RUNNING and "spec" in t.user_attrs]
            return done >= 2 and bool(running)

        wait_for(two_done_and_running)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local cluster it started
        proc.wait()
    before = {t.number: t for t in load_study(runs, "killed").get_trials()}
    complete_before = {n: t.values for n, t in before.items() if t.state == TrialState.COMPLETE}
    running_before = [n for n, t in before.items() if t.state == TrialState.RUNNING]
    assert complete_before and running_before

    assert main(["resume", "killed", "--runs-dir", str(runs)]) == 0
    study = load_study(runs, "killed")
    trials = study.get_trials()
    counted = [t for t in trials if not interrupted(t)]
    assert len(counted) == 8
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL) for t in trials)
    for number, values in complete_before.items():  # nothing lost
        assert trials[number].state == TrialState.COMPLETE and trials[number].values == values
    proposed = [n for n in running_before if "spec" in before[n].user_attrs]
    assert proposed, "the kill landed before any running trial was proposed"
    for number in running_before:  # each interrupted trial failed, not counted
        assert trials[number].state == TrialState.FAIL and interrupted(trials[number])
    for number in set(running_before) - set(proposed):  # asked, never proposed: nothing to continue
        assert not [t for t in trials if t.user_attrs.get("resumed_from") == number]
    for number in proposed:  # each interrupted candidate continued exactly once
        continued = [t for t in trials if t.user_attrs.get("resumed_from") == number]
        assert len(continued) == 1 and continued[0].params == trials[number].params
        assert continued[0].state == TrialState.COMPLETE
    assert any("resume_checkpoint" in t.user_attrs for t in trials), "no trial resumed from a checkpoint"

    capsys.readouterr()
    assert main(["resume", "killed", "--runs-dir", str(runs)]) == 0
    assert "is finished" in capsys.readouterr().out
    assert len(load_study(runs, "killed").get_trials()) == len(trials)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--address", "127.0.0.1:{port}"], "no Ray cluster answers there"),
        (["--storage", "postgresql://nobody@127.0.0.1:{port}/nas"], "cannot be opened"),
        (["--storage", "notadb://x"], "cannot be opened"),
        (["--trials", "0"], "search.trials"),
    ],
)
def test_bad_addresses_and_urls_exit_2_and_write_nothing(tmp_path, capsys, args, expected):
    path = write_config(tmp_path, "bad", CONFIG)
    runs = tmp_path / "runs"
    port = _free_port()
    code = main(["search", str(path), "--runs-dir", str(runs), *[a.format(port=port) for a in args]])
    assert code == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) <= 3
    assert not runs.exists()


def test_impossible_budget_and_corrupt_files(ray_cluster, tmp_path, capsys):
    runs = tmp_path / "runs"
    greedy = write_config(tmp_path, "greedy", {**CONFIG, "search": {**CONFIG["search"], "cpus_per_trial": 64}})
    assert main(["search", str(greedy), "--runs-dir", str(runs)]) == 2
    assert "cpus_per_trial: 64 CPUs per trial" in capsys.readouterr().err
    assert not (runs / "greedy").exists()

    small = write_config(tmp_path, "fine", {**CONFIG, "search": {**CONFIG["search"], "trials": 2}, "train": {"epochs": 1}})
    assert main(["search", str(small), "--runs-dir", str(runs)]) == 0
    db = runs / "fine" / "study.db"
    snapshot = db.read_bytes()
    # a corrupt config beside the study
    (runs / "fine" / "config.yaml").write_text("search: [broken\n")
    assert main(["resume", "fine", "--runs-dir", str(runs)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert db.read_bytes() == snapshot
    # a corrupt study database
    (runs / "fine" / "config.yaml").write_text(yaml.safe_dump({"name": "fine", **CONFIG}))
    db.write_bytes(b"this is not sqlite" * 100)
    assert main(["resume", "fine", "--runs-dir", str(runs)]) == 2
    assert "cannot be opened" in capsys.readouterr().err
