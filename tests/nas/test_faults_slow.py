"""Fault injection with real processes (issue 19): SIGTERM, lost checkpoints, renamed run directories."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from _processes import load_study, write_config
from optuna.trial import TrialState

from nas.cli import main
from nas.study import interrupted

pytestmark = pytest.mark.slow

CONFIG = {
    "data": {"name": "digits-seq"},
    "space": {"name": "recurrent_cell", "num_nodes": 2, "hidden_sizes": [8, 16]},
    "train": {"epochs": 2, "batch_size": 128},
    "search": {"trials": 2, "sampler": "random", "max_concurrent": 2, "baselines": []},
}


def _checkpointed(runs: Path, name: str, count: int) -> bool:
    folders = list((runs / name / "ray").glob("trial_*/checkpoint_*/trainer.pt"))
    return len({p.parent.parent for p in folders}) >= count


def test_sigterm_stops_like_ctrl_c_and_resume_restarts_a_trial_whose_checkpoint_is_gone(ray_cluster, tmp_path):
    runs = tmp_path / "runs"
    epochs = 400  # long enough that neither trial can finish before the signal on a loaded machine
    path = write_config(tmp_path, "term", {**CONFIG, "train": {**CONFIG["train"], "epochs": epochs}})
    proc = subprocess.Popen(
        [sys.executable, "-m", "nas.cli", "search", str(path), "--runs-dir", str(runs)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, start_new_session=True,
    )
    try:
        deadline = time.time() + 240
        while not _checkpointed(runs, "term", 2) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.3)
        assert _checkpointed(runs, "term", 2), "no two trials checkpointed in time"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 143, (proc.returncode, err[-2000:])
    assert "Traceback" not in err and "Tuner.restore" not in err + out
    assert "`nas resume term`" in out
    study = load_study(runs, "term")
    stopped = [t for t in study.get_trials() if interrupted(t)]
    assert len(stopped) == 2 and all(t.state == TrialState.FAIL for t in stopped)

    # the checkpoints of one interrupted trial are deleted: it restarts from scratch, the other continues
    continued = {t.user_attrs["resumed_from"]: t for t in study.get_trials() if "resumed_from" in t.user_attrs}
    lost, kept = sorted(continued)
    shutil.rmtree(Path(stopped[lost].user_attrs["artifacts"]))
    assert main(["resume", "term", "--runs-dir", str(runs)]) == 0
    trials = {t.user_attrs.get("resumed_from"): t for t in load_study(runs, "term").get_trials()}
    restarted, resumed = trials[lost], trials[kept]
    assert restarted.state == TrialState.COMPLETE and "restarted from scratch" in restarted.user_attrs["restart"]
    assert resumed.state == TrialState.COMPLETE and "restart" not in resumed.user_attrs
    assert resumed.user_attrs["restored_from_epoch"] >= 1
    for trial in (restarted, resumed):  # whole curves, the epochs before the resume included
        assert len(trial.user_attrs["curve"]) == epochs


def test_a_renamed_run_directory_resumes_its_own_study(ray_cluster, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["search", str(write_config(tmp_path, "first", CONFIG)), "--runs-dir", str(runs)]) == 0
    (runs / "first").rename(runs / "second")
    capsys.readouterr()
    assert main(["resume", "second", "--trials", "3", "--runs-dir", str(runs)]) == 0
    captured = capsys.readouterr()
    assert "holds study 'first'" in captured.err and "1 trials to run (2 done)" in captured.out
    assert not (runs / "first").exists()
    study = load_study(runs, "first", "second")
    assert sum(t.state == TrialState.COMPLETE for t in study.get_trials()) == 3
    assert main(["status", "second", "--runs-dir", str(runs)]) == 0


class _Postgres:
    """A throwaway PostgreSQL server this test can stop and start again (the server refuses root,
    so it runs as the `postgres` user)."""

    def __init__(self, base: Path) -> None:
        import socket

        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found or shutil.which("su") is None:
            pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql)")
        self.bin, self.base, self.data = found[-1].parent, base, base / "data"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/nas"
        if os.geteuid() == 0:
            shutil.chown(base, "postgres")
        self._run(f"{self.bin}/initdb -D {self.data} --auth=trust -U postgres >/dev/null")
        self.start()
        self._run(f"{self.bin}/createdb -h 127.0.0.1 -p {self.port} -U postgres nas")

    def _run(self, command: str) -> None:
        prefix = ["su", "postgres", "-s", "/bin/sh", "-c"] if os.geteuid() == 0 else ["sh", "-c"]
        subprocess.run([*prefix, command], check=True, capture_output=True, text=True)

    def start(self) -> None:
        self._run(f"{self.bin}/pg_ctl -D {self.data} -l {self.base}/log "
                  f"-o '-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1' -w start")

    def stop(self) -> None:
        self._run(f"{self.bin}/pg_ctl -D {self.data} -m immediate stop")


def test_a_lost_database_stops_the_driver_with_exit_3_and_resume_continues(ray_cluster, tmp_path):
    base = Path(tempfile.mkdtemp(prefix="nas-pg-"))
    server = _Postgres(base)
    try:
        runs = tmp_path / "runs"
        path = write_config(tmp_path, "lost", {**CONFIG, "train": {**CONFIG["train"], "epochs": 30}})
        proc = subprocess.Popen(
            [sys.executable, "-m", "nas.cli", "search", str(path), "--runs-dir", str(runs), "--storage", server.url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, start_new_session=True,
            env={**os.environ, "NAS_STORAGE_RETRY_S": "6"},
        )
        try:
            deadline = time.time() + 240
            while not _checkpointed(runs, "lost", 2) and time.time() < deadline and proc.poll() is None:
                time.sleep(0.3)
            assert _checkpointed(runs, "lost", 2), "no two trials checkpointed in time"
            server.stop()
            start = time.time()
            out, err = proc.communicate(timeout=180)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        assert proc.returncode == 3, (proc.returncode, err[-3000:])
        assert time.time() - start < 120
        last = err.strip().splitlines()[-1]
        assert f"lost the study's storage {server.url}" in last and "`nas resume lost` continues" in last, err[-3000:]
        assert "Traceback" not in err, err[-3000:]

        server.start()
        assert main(["resume", "lost", "--runs-dir", str(runs)]) == 0
        study = optuna.load_study(study_name="lost", storage=server.url)
        trials = study.get_trials()
        assert sum(t.state == TrialState.COMPLETE and not interrupted(t) for t in trials) == 2
        assert any("resume_checkpoint" in t.user_attrs for t in trials)  # the running trials' work was kept
    finally:
        try:
            server.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(base, ignore_errors=True)


def test_a_trial_whose_process_is_killed_is_recorded_as_killed(ray_cluster, tmp_path):
    from nas.config import parse_config
    from nas.search import run_search

    def _killed_by_the_kernel(config: dict) -> None:  # local: Ray's workers get it by value
        """A trainable whose process dies as the OOM killer would end it."""
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)

    config = parse_config({"name": "oom", **CONFIG, "search": {**CONFIG["search"], "trials": 1, "max_failures": 0}})
    outcome = run_search(config, runs_dir=tmp_path / "runs", trainable=_killed_by_the_kernel)
    (trial,) = outcome.study.get_trials()
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["error"].startswith("killed (out of memory?); Ray says: "), trial.user_attrs["error"]
