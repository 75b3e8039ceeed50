"""benchmarks/hyper_rank.py: bad input refused before any work, and a tiny end-to-end run whose table
has the size baselines (parameters, MACs), the partial Spearman and each score's cost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH / "hyper_rank.py"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=BENCH.parent)


@pytest.mark.parametrize("args, message", [
    (["--finetune-steps", "0"], "--finetune-steps must be at least 1"),
    (["--finetune-lr", "-1"], "--finetune-lr must be positive"),
    (["--candidates", "2"], "--candidates must be at least 3"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, args: list[str], message: str) -> None:
    out = tmp_path / "r.json"
    proc = _run(*args, "--out", str(out), timeout=120)
    assert proc.returncode == 2 and message in proc.stderr
    assert not out.exists()


@pytest.mark.slow
def test_tiny_run_reports_size_baselines_partial_and_cost(tmp_path) -> None:
    out = tmp_path / "r.json"
    proc = _run("--steps", "5", "--candidates", "4", "--epochs", "1", "--finetune-steps", "3", "--jobs", "1",
                "--no-seed-baseline", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "partial|size" in proc.stdout and "issue 20's bar" in proc.stdout
    result = json.loads(out.read_text())
    rows = result["ranking"]
    assert {"baseline: parameter count", "baseline: MACs"} <= set(rows)
    assert any(name.startswith("fine-tuned proxy") for name in rows)
    assert rows["baseline: parameter count"]["partial_spearman"] is None  # size given size: nothing left
    assert all(r["seconds_per_candidate"] >= 0 for r in rows.values())
    assert len(result["candidates"]) == 4 and result["warm_start"]["mean_warm"]
    assert "ranked against warm-started training" in proc.stdout  # the other recipe's target
    assert set(rows) < set(result["warm_start"]["ranking"])
