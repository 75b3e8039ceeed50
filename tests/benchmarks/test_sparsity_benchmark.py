"""benchmarks/sparsity_search.py: warm points over the whole MACs range of the uniform baselines,
confirmation chosen per MACs band, the domination check, and a tiny end-to-end run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from search_spaces import Task, get_space

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import sparsity_search as bench  # noqa: E402

TASK = Task(input_size=8, seq_len=8, output_size=10)


def _space():
    return get_space("sparsity", cell="gru", hidden_size=32, hidden_sizes=[32, 40, 48, 64], input_size=8,
                     densities=[1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125])


def test_matrix_params_give_each_matrix_its_density() -> None:
    space = _space()
    params = space.matrix_params(lambda src, dst: 1.0 if dst == "uh" else 0.25, "random", hidden_size=48)
    spec = space.decode(params)
    assert spec.hidden_size == 48 and params["hidden_size"] == 48
    for e in spec.linear_edges(8):
        assert (e.density, e.pattern) == ((1.0, "dense") if e.dst == "uh" else (0.25, "random"))
    assert space.uniform_params(0.5) == space.matrix_params(lambda s, d: 0.5)


def test_budget_cells_fill_each_uniform_points_macs_with_a_denser_candidate_matrix() -> None:
    space = _space()
    budgets = [space.cost(space.decode(space.uniform_params(d)), TASK)["macs"] for d in bench.UNIFORM]
    assert budgets == [15680, 8000, 4160, 2240]
    for budget in budgets:
        cells = bench.budget_cells(space, TASK, budget)
        assert cells, budget
        for params in cells:
            spec = space.decode(params)
            macs = space.cost(spec, TASK)["macs"]
            assert macs <= budget and macs >= 0.85 * budget  # spends most of the budget
            dens = {(e.src, e.dst): e.density for e in spec.linear_edges(8)}
            gates = {d for (s, t), d in dens.items() if s == "h" and t != "uh"}
            assert len(gates) == 1 and dens["h", "uh"] in (2 * min(gates), 4 * min(gates))
            assert min(d for (s, _), d in dens.items() if s == "x") >= min(gates)
    cheapest = bench.budget_cells(space, TASK, 2240)  # no h48/h64 cell fits: only h32 and h40
    assert sorted(space.decode(p).hidden_size for p in cheapest) == [32, 40]
    warm = bench.warm_params(space, TASK, budgets)
    hashes = [space.canonical_hash(space.decode(p)) for p in warm]
    assert len(set(hashes)) == len(hashes) >= len(bench.WARM_START)


def _trial(name: str, acc: float, macs: int, density: float = 0.1) -> dict:
    return {"hash": name, "score": acc, "macs": macs, "density": density}


def test_confirmation_is_chosen_per_macs_band_and_never_a_baseline() -> None:
    trials = [_trial("a", 0.90, 2000), _trial("b", 0.85, 2200), _trial("c", 0.95, 4000),
              _trial("base", 0.99, 2240), _trial("d", 0.97, 7000, density=0.5), _trial("e", 0.80, 1000)]
    chosen = bench.select_confirm(trials, {"u0.25": 8000, "u0.0625": 2240, "u0.125": 4160},
                                  per_band=2, low_density=1, exclude={"base"})
    assert [(band, t["hash"]) for band, t in chosen] == [
        ("u0.0625", "a"), ("u0.0625", "b"), ("u0.125", "c"), ("u0.125", "e"), ("u0.25", "d"),
    ]  # cheapest band first; each later band skips what is taken; nothing left at <= 25% density
    assert all(t["macs"] <= {"u0.0625": 2240, "u0.125": 4160, "u0.25": 8000}[b] for b, t in chosen)


def _row(name: str, kind: str, macs: int, mean: float, density: float = 0.1) -> dict:
    return {"name": name, "kind": kind, "macs": macs, "val_mean": mean, "val_std": 0.01, "seeds": 5, "density": density}


def test_domination_needs_no_more_macs_and_at_least_the_mean_accuracy() -> None:
    table = [_row("dense", "baseline", 31040, 0.97, 1.0), _row("uniform 0.5", "baseline", 15680, 0.96, 0.5),
             _row("uniform 0.0625", "baseline", 2240, 0.88, 0.0625), _row("uniform 0.125", "baseline", 4160, 0.93),
             _row("c1", "found", 2240, 0.88), _row("c2", "found", 4000, 0.929), _row("c3", "found", 4200, 0.99),
             _row("c4", "found", 15000, 0.962, 0.2)]
    close, dominated, lines = bench.checks(table)
    assert close == ["c3", "c4"]
    assert dominated == [True, False, True]  # equal MACs and mean dominate; 0.929 < 0.93 does not
    assert "NOT dominated" in lines[2] and "c2" in lines[2] and "-0.10 points, 2 s.e. 1.26" in lines[2]
    assert lines[-1] == "front dominates uniform pruning at 2/3 points"
    no_cheap = bench.checks([r for r in table if r["name"] != "c1"])[2]
    assert "no confirmed cell has as few MACs" in no_cheap[1]


@pytest.mark.slow
def test_tiny_run_prints_the_table_and_writes_json(tmp_path) -> None:
    out = tmp_path / "sparsity.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "sparsity_search.py"), "--seeds", "2", "--trials", "4", "--epochs", "1",
         "--per-band", "1", "--low-density", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=BENCH.parent,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "val acc" in proc.stdout and "seeds" in proc.stdout and "front dominates uniform pruning at" in proc.stdout
    result = json.loads(out.read_text())
    names = {r["name"] for r in result["table"]}
    assert {"dense", "uniform 0.5", "uniform 0.0625"} <= names
    assert all(r["seeds"] == 2 for r in result["table"])
    assert len(result["target_dominates"]) == 4 and len(result["search"]) == 4
    shown = subprocess.run([sys.executable, str(BENCH / "sparsity_search.py"), "--show", "--out", str(out)],
                           capture_output=True, text=True, timeout=120, cwd=BENCH.parent)
    assert shown.returncode == 0 and result["checks"][-1] in shown.stdout
