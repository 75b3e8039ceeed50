"""`workers.faults`: ``NAS_FAULT=POINT:N`` kills the process at the Nth hit of POINT, counted per
process or across processes (``NAS_FAULT_COUNTS``), and does nothing when unset."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from workers import faults

REPO = Path(__file__).resolve().parents[2]
# hits "tell" twice with a "train" between, saying how far it got
HITS = """
from workers.faults import maybe_die
maybe_die("tell"); print("tell 1", flush=True)
maybe_die("train"); print("train 1", flush=True)
maybe_die("tell"); print("tell 2", flush=True)
"""


def _run(fault: str, counts: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NAS_FAULT": fault}
    if counts is not None:
        env["NAS_FAULT_COUNTS"] = str(counts)
    return subprocess.run([sys.executable, "-c", HITS], env=env, capture_output=True, text=True, timeout=60)


def test_the_nth_hit_of_the_named_point_kills_the_process_with_sigkill():
    done = _run("tell:2")
    assert done.returncode == -signal.SIGKILL and done.stdout.split("\n")[:-1] == ["tell 1", "train 1"]
    assert _run("train:1").stdout == "tell 1\n"
    assert _run("tell:3").returncode == 0  # never reached a third time


def test_shared_counts_fire_once_across_processes(tmp_path):
    counts = tmp_path / "sub" / "counts"
    first, second = _run("tell:3", counts), _run("tell:3", counts)
    assert first.returncode == 0  # hits 1 and 2
    assert second.returncode == -signal.SIGKILL and second.stdout == ""  # hit 3: its first
    assert _run("tell:3", counts).returncode == 0  # hits 4 and 5: it fired once, and is spent
    assert counts.read_bytes() == b"." * 5


def test_unset_does_nothing(monkeypatch):
    monkeypatch.delenv("NAS_FAULT", raising=False)
    for point in faults.POINTS:
        faults.maybe_die(point)


@pytest.mark.parametrize("value", ["tell", "tell:0", "tell:x", "nowhere:1", ":1"])
def test_a_malformed_fault_names_the_points(monkeypatch, value):
    monkeypatch.setenv("NAS_FAULT", value)
    with pytest.raises(ValueError, match="expected POINT:N .* startup, study, propose"):
        faults.maybe_die("tell")
