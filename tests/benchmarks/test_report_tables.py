"""The benchmark tables: found candidates against the baselines of the same run, mean ± std over
seeds and the seed count (benchmarks/activation_search.py's helpers, shared by the sparsity and SAFS
benchmarks), and ``--show`` reprinting the committed results without training."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import activation_search as bench  # noqa: E402


def _runs(values: list[float]) -> list[dict]:
    return [{"accuracy": v, "test_accuracy": v - 0.01, "error": None} for v in values]


def test_summarize_gives_mean_std_and_seed_count() -> None:
    row = bench.summarize(_runs([0.9, 0.92, 0.94]) + [{"accuracy": 0.0, "test_accuracy": 0.0, "error": "nan"}])
    assert row["seeds"] == 4 and row["diverged"] == 1
    assert row["val_mean"] == pytest.approx(0.69) and row["test_mean"] == pytest.approx(0.6825)
    one = bench.summarize(_runs([0.5]))
    assert one["val_std"] == 0.0 and one["seeds"] == 1
    text = bench.format_stats(bench.summarize(_runs([0.9, 0.92, 0.94])))
    assert text == "0.9200 ± 0.0200 0.9100 ± 0.0200     3"
    assert len(text) == len(bench.STATS_HEADER)


def test_verdict_uses_two_standard_errors_of_the_gap() -> None:
    base = bench.summarize(_runs([0.90, 0.91, 0.92, 0.93]))
    assert bench.verdict(bench.summarize(_runs([0.95, 0.96, 0.97, 0.98])), base)[2] == "beats"
    assert bench.verdict(bench.summarize(_runs([0.90, 0.92, 0.91, 0.94])), base)[2] == "ties with"
    gap, noise, word = bench.verdict(bench.summarize(_runs([0.80, 0.81, 0.82, 0.83])), base)
    assert word == "loses to" and gap == pytest.approx(-0.10) and noise == pytest.approx(2 * (2 * 0.0129099**2 / 4) ** 0.5, rel=1e-3)


@pytest.mark.parametrize("script", ["activation_search", "sparsity_search", "safs_search"])
def test_show_reprints_the_committed_tables(script: str) -> None:
    path = BENCH / "results" / f"{script}.json"
    if not path.exists():
        pytest.skip(f"{path.name} not committed")
    proc = subprocess.run([sys.executable, str(BENCH / f"{script}.py"), "--show"], capture_output=True, text=True,
                          timeout=300, cwd=BENCH.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "val acc" in proc.stdout and "test acc" in proc.stdout and "seeds" in proc.stdout
    result = json.loads(path.read_text())
    if script == "activation_search":
        assert "best found" in proc.stdout and all(b in json.dumps(result["candidates"]) for b in ("tanh", "relu", "gelu"))
    else:
        assert proc.stdout.count(" B ") + proc.stdout.count("\nB ") >= 1
