"""The benchmark tables: found candidates against the baselines of the same run, mean ± std over
seeds and the seed count (`nas.seed_runs`, shared by the activation, sparsity and SAFS benchmarks;
the activation benchmark's own table)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import activation_search as bench  # noqa: E402
from nas import seed_runs  # noqa: E402


def _runs(values: list[float]) -> list[dict]:
    return [{"score": v, "test_score": v - 0.01, "error": None} for v in values]


def test_summarize_gives_mean_std_and_seed_count() -> None:
    row = seed_runs.summarize(_runs([0.9, 0.92, 0.94]) + [{"score": 0.0, "test_score": 0.0, "error": "nan"}])
    assert row["seeds"] == 4 and row["diverged"] == 1
    assert row["val_mean"] == pytest.approx(0.69) and row["test_mean"] == pytest.approx(0.6825)
    one = seed_runs.summarize(_runs([0.5]))
    assert one["val_std"] == 0.0 and one["seeds"] == 1
    text = seed_runs.format_stats(seed_runs.summarize(_runs([0.9, 0.92, 0.94])))
    assert text == "0.9200 ± 0.0200 0.9100 ± 0.0200     3"
    assert len(text) == len(seed_runs.STATS_HEADER)


def test_verdict_uses_two_standard_errors_of_the_gap() -> None:
    base = seed_runs.summarize(_runs([0.90, 0.91, 0.92, 0.93]))
    assert seed_runs.verdict(seed_runs.summarize(_runs([0.95, 0.96, 0.97, 0.98])), base)[2] == "beats"
    assert seed_runs.verdict(seed_runs.summarize(_runs([0.90, 0.92, 0.91, 0.94])), base)[2] == "ties with"
    gap, noise, word = seed_runs.verdict(seed_runs.summarize(_runs([0.80, 0.81, 0.82, 0.83])), base)
    assert word == "loses to" and gap == pytest.approx(-0.10) and noise == pytest.approx(2 * (2 * 0.0129099**2 / 4) ** 0.5, rel=1e-3)


def test_activation_table_ranks_found_against_baselines_per_task(capsys) -> None:
    """What ``--show`` prints, from synthetic runs (the sparsity and SAFS ``--show`` are exercised by
    their tiny end-to-end runs)."""
    candidates = {**bench.BASELINES, "screen#1": "add(tanh(x), relu(x))"}
    rows = []
    for data in bench.TASKS:
        for name in candidates:
            good = 0.95 if name == "screen#1" else 0.90
            rows += [{**run, "data": data, "name": name} for run in _runs([good, good + 0.01, good + 0.02])]
    summary = bench.print_table(rows, candidates)
    out = capsys.readouterr().out
    assert len(summary) == len(bench.TASKS) * len(candidates)
    assert out.count("best found") == len(bench.TASKS) and "beats the best baseline" in out
    assert all(s["seeds"] == 3 for s in summary) and "seeds" in out
