"""Fault injection as a matrix of real kills (issue 19, item 6), slow: each case runs a real
`nas search` in its own process, SIGKILLs the driver (or a trial's worker) at one named moment, then
checks that `nas resume` finishes in bounded time with exactly the requested trials, none RUNNING,
no candidate trained twice, and the trials completed before the kill unchanged.

The moments are hit with the `workers.faults` hook (``NAS_FAULT=POINT:N``), not with sleeps; the
first engine build is the exception: the driver is killed once the compiler runs on an empty cache.
"""

from __future__ import annotations

import os
import pickle
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from _processes import compiling, end_session, load_study, no_build_left, start_nas, wait_for, write_config
from optuna.trial import TrialState

from kernels.recurrent import native
from nas.cli import main
from nas.study import interrupted

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

TRIALS, EPOCHS = 2, 2
CONFIG = {
    "data": {"name": "digits-seq"},
    "space": {"name": "recurrent_cell", "num_nodes": 2, "hidden_sizes": [8, 16]},
    "train": {"epochs": EPOCHS, "batch_size": 128},
    "search": {"trials": TRIALS, "sampler": "random", "max_concurrent": 2, "baselines": []},
}
REACH_S = 240  # the longest a driver may take to reach its moment (a loaded 2-core machine)
RESUME_S = 180  # the longest `nas resume` may take to finish the rest
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def _snapshot(runs: Path, name: str) -> dict[int, optuna.trial.FrozenTrial]:
    """The study's trials by number ({} when the killed driver had not created it)."""
    if not (runs / name / "study.db").is_file():  # (loading would create the file)
        return {}
    try:
        return {t.number: t for t in load_study(runs, name).get_trials()}
    except KeyError:
        return {}


def _assert_whole(before: dict[int, optuna.trial.FrozenTrial], trials: list[optuna.trial.FrozenTrial]) -> None:
    """Exactly `TRIALS` counted, none left RUNNING, no candidate trained twice, and every trial
    finished before the kill unchanged; each interrupted candidate continued once."""
    states = [(t.number, t.state.name, t.user_attrs.get("error")) for t in trials]
    assert all(t.state in FINISHED for t in trials), states
    counted = [t for t in trials if not interrupted(t)]
    assert len(counted) == TRIALS, states
    trained = [t.user_attrs["hash"] for t in counted if "duplicate_of" not in t.user_attrs and "hash" in t.user_attrs]
    assert len(trained) == len(set(trained)), f"a candidate was trained twice: {states}"
    continued = [t.user_attrs["resumed_from"] for t in trials if "resumed_from" in t.user_attrs]
    assert len(continued) == len(set(continued)), f"an interrupted trial was continued twice: {continued}"
    for number, old in before.items():
        new = trials[number]
        if old.state in FINISHED:
            assert (new.state, new.values, new.user_attrs) == (old.state, old.values, old.user_attrs), number
        else:  # interrupted: failed, not counted; continued once if it had been proposed
            assert new.state == TrialState.FAIL and interrupted(new), states
            assert continued.count(number) == ("spec" in old.user_attrs), states


def _search_to_the_end(tmp_path: Path, name: str, config: dict, env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    """``nas search`` of ``config`` in its own process (runs in ``tmp_path / "runs"``), waited for
    until it exits or is killed by its fault; the process and its log."""
    log = tmp_path / "driver.log"
    driver = start_nas("search", str(write_config(tmp_path, name, config)), "--runs-dir", str(tmp_path / "runs"),
                       cwd=tmp_path, env=env, log=log)
    try:
        driver.wait(timeout=REACH_S + RESUME_S)
    finally:
        end_session(driver)
    return driver, log


def _resume(runs: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    started = time.monotonic()
    assert main(["resume", name, "--runs-dir", str(runs)]) == 0
    assert time.monotonic() - started < RESUME_S
    return load_study(runs, name).get_trials()


# POINT:N of the driver's kill, and config changes that make the point happen
DRIVER_KILLS = {
    "startup": ("startup:1", {}),  # config.yaml written, no study yet
    "study": ("study:1", {}),  # the study created, no trial yet
    "propose": ("propose:2", {}),  # the first trial proposed, the second asked, not yet recorded
    "train": ("train:3", {}),  # the third epoch result reaches the driver
    # the stopper's state written to its temporary name after the first finished trial, not renamed
    "checkpoint": ("checkpoint:1", {"stopping": {"policy": "curve", "options": {"grace_period": 1}}}),
    "tell": ("tell:2", {}),  # the second finished trial's attributes written, its state not told
}


needs_compiler = pytest.mark.skipif(shutil.which(native.compiler()) is None or native.mode() == "fused",
                                    reason="needs a C++ compiler and the engine not switched off")


@pytest.mark.parametrize("moment", [*DRIVER_KILLS, pytest.param("build", marks=needs_compiler)])
def test_kill_9_of_the_driver_at_each_moment_then_resume_finishes_the_study(ray_cluster, tmp_path, moment):
    """The build moment resumes in this process, whose engine is built: that the next build on the
    killed one's cache is not blocked is `test_native_build`'s (a killed builder)."""
    runs, name = tmp_path / "runs", f"kill-{moment}"
    fault, extra = DRIVER_KILLS.get(moment, (None, {}))
    env = dict(os.environ)
    if fault is not None:
        env["NAS_FAULT"] = fault
    else:  # the first engine build: an empty cache, killed once the compiler runs
        cache = tmp_path / "cache"
        env["NAS_KERNEL_CACHE"] = str(cache)
    log = tmp_path / "driver.log"
    driver = start_nas("search", str(write_config(tmp_path, name, {**CONFIG, **extra})), "--runs-dir", str(runs),
                       cwd=tmp_path, env=env, log=log)
    try:
        if fault is None:
            wait_for(lambda: compiling(cache) or driver.poll() is not None, REACH_S, "the engine build")
            driver.kill()
        driver.wait(timeout=REACH_S)
    finally:
        end_session(driver)
    assert driver.returncode == -9, f"not killed at {moment} (rc {driver.returncode}):\n{log.read_text()[-3000:]}"
    if fault is None:
        no_build_left(cache)
    before = _snapshot(runs, name)
    if moment in ("startup", "build"):
        assert not before  # killed before its study existed
    else:
        assert (runs / name / "study.db").is_file()
    stopper = runs / name / "proposer" / "stopper.pkl"
    if moment == "checkpoint":  # killed between the temporary file and the rename: nothing half-written
        assert stopper.with_suffix(".tmp").is_file() and not stopper.exists()

    if moment == "build":  # nothing written yet: no study to resume, and the search starts over
        assert main(["resume", name, "--runs-dir", str(runs)]) == 2
        assert main(["search", str(tmp_path / f"{name}.yaml"), "--runs-dir", str(runs)]) == 0
        trials = load_study(runs, name).get_trials()
    else:
        trials = _resume(runs, name)
    _assert_whole(before, trials)
    if moment == "checkpoint":  # the resumed search wrote it whole
        assert isinstance(pickle.loads(stopper.read_bytes()), dict)


@pytest.mark.parametrize("point", ["worker_train", "worker_checkpoint"])
def test_kill_9_of_a_trial_worker_is_retried_from_its_checkpoint(ray_cluster, tmp_path, point):
    """A trial's worker process killed after its second epoch trained (or while writing that epoch's
    checkpoint): Ray retries it from the first epoch's checkpoint, and the search ends whole."""
    runs, name = tmp_path / "runs", f"worker-{point}"
    counts = tmp_path / "fault-counts"
    env = {**os.environ, "NAS_FAULT": f"{point}:2", "NAS_FAULT_COUNTS": str(counts)}
    one_at_a_time = {**CONFIG, "search": {**CONFIG["search"], "max_concurrent": 1}}  # hits in epoch order
    driver, log = _search_to_the_end(tmp_path, name, one_at_a_time, env)
    assert driver.returncode == 0, log.read_text()[-3000:]
    assert counts.read_bytes().count(b".") >= 2  # the worker reached the point twice: it was killed
    trials = load_study(runs, name).get_trials()
    assert all(t.state == TrialState.COMPLETE for t in trials), [(t.number, t.user_attrs.get("error")) for t in trials]
    retried = [t for t in trials if t.user_attrs.get("restored_from_epoch")]
    assert [t.user_attrs["restored_from_epoch"] for t in retried] == [1], [t.user_attrs for t in trials]
    assert len(retried[0].user_attrs["curve"]) == EPOCHS  # whole, the epoch before the kill included
    _assert_whole({}, _resume(runs, name))  # nothing left to do


def test_a_locked_sqlite_study_stops_the_driver_with_exit_3_and_resume_continues(ray_cluster, tmp_path):
    """The study's SQLite file locked by another process (as a stuck `sqlite3` shell would) for longer
    than the driver's retry budget: it stops with exit 3 in one line naming `nas resume`; once the lock
    is gone, `nas resume` finishes the study, continuing the running trials from their checkpoints."""
    runs, name = tmp_path / "runs", "locked"
    long = {**CONFIG, "train": {**CONFIG["train"], "epochs": 20}}  # trials outlast the moment the lock is taken
    path = write_config(tmp_path, name, long)
    log = tmp_path / "driver.log"
    driver = start_nas("search", str(path), "--runs-dir", str(runs), cwd=tmp_path, log=log,
                       env={**os.environ, "NAS_STORAGE_RETRY_S": "3"})
    lock = None
    try:
        checkpoints = runs / name / "ray"
        wait_for(lambda: len({p.parent.parent for p in checkpoints.glob("trial_*/checkpoint_*/trainer.pt")}) >= 2,
                 REACH_S, "two trials with a checkpoint")
        lock = sqlite3.connect(runs / name / "study.db", timeout=30, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        locked = time.monotonic()
        driver.wait(timeout=120)
        waited = time.monotonic() - locked
    finally:
        if lock is not None:
            lock.rollback()
            lock.close()
        end_session(driver)
    output = log.read_text()
    assert driver.returncode == 3, output[-3000:]
    assert waited < 60 and "Traceback" not in output, output[-3000:]
    assert "lost the study's storage sqlite:///" in output, output[-2000:]
    assert f"`nas resume {name}` continues" in output, output[-2000:]
    before = _snapshot(runs, name)
    assert any(t.state == TrialState.RUNNING for t in before.values())
    trials = _resume(runs, name)
    _assert_whole(before, trials)
    assert any("resume_checkpoint" in t.user_attrs for t in trials)  # the running trials' epochs were kept


LM_TEXT = "to be or not to be that is the question\nwhether tis nobler in the mind to suffer\n" * 60
LM_CONFIG = {  # a language model: stateful truncated BPTT, bits per character, minimised
    "space": {"name": "gated", "hidden_sizes": [8]},
    "train": {"epochs": EPOCHS, "steps_per_epoch": 4, "batch_size": 8},
    "search": {"trials": TRIALS, "sampler": "rea", "max_concurrent": 2, "baselines": ["gru", "lstm"]},
}


@pytest.mark.parametrize("fault", ["train:3", "worker_train:2"])
def test_kill_9_of_a_language_model_search_then_resume_loses_nothing(ray_cluster, tmp_path, fault):
    """The LM search killed mid-training (the driver when the third epoch result reaches it, or a
    trial's worker after its second epoch): `nas resume` ends the study whole, still minimising bits
    per character, and every trial's curve is whole (a worker retried from its checkpoint continues
    its text stream and carried state rather than starting over)."""
    runs, name = tmp_path / "runs", f"lm-{fault.split(':')[0]}"
    (tmp_path / "play.txt").write_text(LM_TEXT)
    config = {**LM_CONFIG, "data": {"name": "text", "path": str(tmp_path / "play.txt"), "bptt": 16}}
    env = {**os.environ, "NAS_FAULT": fault, "NAS_FAULT_COUNTS": str(tmp_path / "fault-counts")}
    if fault.startswith("worker"):
        config["search"] = {**config["search"], "max_concurrent": 1}  # hits in epoch order
    driver, log = _search_to_the_end(tmp_path, name, config, env)
    if fault.startswith("worker"):  # Ray retried the worker; the driver finished
        assert driver.returncode == 0, log.read_text()[-3000:]
        assert [t.user_attrs.get("restored_from_epoch") for t in load_study(runs, name).get_trials()
                if t.user_attrs.get("restored_from_epoch")] == [1]
    else:
        assert driver.returncode == -9, f"not killed (rc {driver.returncode}):\n{log.read_text()[-3000:]}"
    before = _snapshot(runs, name)
    trials = _resume(runs, name)
    _assert_whole(before, trials)
    study = load_study(runs, name)
    assert study.directions[0].name == "MINIMIZE" and study.user_attrs["metric"] == "bpc"
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == TRIALS and all(len(t.user_attrs["curve"]) == EPOCHS for t in done)
    assert all(0 < t.values[0] < 8 for t in done)  # bits per character of a small alphabet
