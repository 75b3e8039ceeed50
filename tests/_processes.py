"""Helpers of the real-process tests: run `nas` in its own session, wait with a bound, end every
process a run left behind, write tiny configs and open their studies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import yaml


def write_config(folder: Path, name: str, data: dict) -> Path:
    """``folder/<name>.yaml`` holding ``data`` under ``name``."""
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **data}))
    return path


def load_study(runs: Path, name: str, directory: str | None = None) -> optuna.Study:
    """Study ``name`` in the SQLite database of ``runs/<directory or name>``."""
    from nas.study import default_storage

    return optuna.load_study(study_name=name, storage=default_storage(runs / (directory or name)))


def wait_for(predicate: Callable[[], bool], timeout: float = 120.0, what: str = "the condition") -> None:
    """Poll ``predicate`` (exceptions count as False: a database being created) until it holds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if predicate():
                return
        except Exception:
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def start_nas(*args: str, cwd: Path, env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
    """``python -m nas.cli ARGS`` in a new session (so `end_session` can end all it starts); its
    output goes to ``log`` (read it with ``log.read_text()``), else to a pipe."""
    out = open(log, "w") if log is not None else subprocess.PIPE
    try:
        return subprocess.Popen([sys.executable, "-m", "nas.cli", *args], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        if log is not None:
            out.close()


def session_processes(sid: int) -> list[int]:
    """Processes of session ``sid`` (a `start_nas` process's pid): the driver and the Ray cluster it
    started, whose workers run in process groups of their own."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp session
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def end_session(process: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGKILL every process of ``process``'s session and wait until none is left (a killed driver's
    Ray workers must not write into the run directory while the next driver resumes it)."""
    deadline = time.time() + timeout
    while left := session_processes(process.pid):
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.time() > deadline:
            raise AssertionError(f"processes {left} of session {process.pid} survive SIGKILL")
        time.sleep(0.2)
    if process.poll() is None:
        process.wait()


def compiling(cache: Path) -> bool:
    """Whether an engine build under ``cache`` has reached the compiler (torch writes build.ninja, then runs it)."""
    return any((cache / "recurrent_native").rglob("build.ninja"))


def processes_in(directory: Path) -> list[int]:
    """Processes working in ``directory`` (ninja and the compiler run in the build directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and Path(os.readlink(entry / "cwd")).is_relative_to(directory):
                found.append(int(entry.name))
        except OSError:  # exited meanwhile, or not ours to read
            continue
    return found


def no_build_left(cache: Path) -> None:
    """No process of an ended build still runs (a killed build must not leave its compiler behind)."""
    deadline = time.monotonic() + 15
    while (left := processes_in(cache)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"build processes left running in {cache}: {left}"
