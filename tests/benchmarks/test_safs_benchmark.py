"""benchmarks/safs_search.py: each found cell is confirmed three ways (as found, its sparsity with
tanh, its activation in the dense cell), sparse non-tanh cells are picked, and a tiny run end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nas.config import load_config
from search_spaces.activations import probe_signature
from search_spaces.sparsity_space import overall_density

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import safs_search as bench  # noqa: E402


def _space():
    return load_config(str(BENCH.parent / "configs" / "safs_search.yaml")).space.make()


def _params(space, u1: str, b1: str, u2: str, density: float) -> dict:
    return {"u1": u1, "b1": b1, "u2": u2, **space.sparsity_space.uniform_params(density, "magnitude")}


def _act(spec, space) -> set[str]:
    return {spec.graph.nodes[n]["activation"] for n in spec.op_nodes()}


def test_variants_separate_the_activation_from_the_sparsity() -> None:
    space = _space()
    params = _params(space, "tanh", "add", "relu", 0.25)
    cells = bench.variants(space, params)
    assert list(cells) == list(bench.VARIANTS)
    expr = space.expression(params)
    edges = {k: [(e.density, e.pattern) for e in s.linear_edges(8)] for k, s in cells.items()}
    assert edges["learned"] == edges["tanh"] == [(0.25, "magnitude")] * 6
    assert edges["dense+act"] == [(1.0, "dense")] * 6
    assert expr in _act(cells["learned"], space) and expr in _act(cells["dense+act"], space)
    assert expr not in _act(cells["tanh"], space)
    assert any(probe_signature(a) == probe_signature("tanh") for a in _act(cells["tanh"], space))
    assert overall_density(cells["learned"], 8) == pytest.approx(0.25)


def test_pick_top_keeps_sparse_cells_with_a_new_activation() -> None:
    space = _space()

    def trial(acc: float, u1: str, b1: str, u2: str, density: float) -> dict:
        return {"score": acc, "macs": int(density * 1000), "density": density,
                "params": _params(space, u1, b1, u2, density)}

    trials = [trial(0.99, "tanh", "max", "tanh", 0.25),   # max(tanh, tanh) is tanh: no new activation
              trial(0.98, "x", "add", "relu", 1.0),       # dense
              trial(0.90, "x", "add", "relu", 0.25), trial(0.95, "sin", "add", "x", 0.5),
              trial(0.70, "sigmoid", "mul", "x", 0.125)]
    top = bench.pick_top(space, trials, 2)
    assert [t["score"] for t in top] == [0.95, 0.90]


@pytest.mark.slow
def test_tiny_run_prints_the_three_way_table(tmp_path) -> None:
    out = tmp_path / "safs.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "safs_search.py"), "--seeds", "2", "--trials", "4", "--epochs", "1",
         "--top", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=BENCH.parent,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    variants = [r["variant"] for r in result["table"]]
    assert variants[0] == "baseline" and variants.count("learned") == variants.count("tanh") <= 1
    assert all(r["seeds"] == 2 for r in result["table"]) and "val acc" in proc.stdout
    assert all(line in proc.stdout for line in result["verdicts"])
    shown = subprocess.run([sys.executable, str(BENCH / "safs_search.py"), "--show", "--out", str(out)],
                           capture_output=True, text=True, timeout=300, cwd=BENCH.parent)
    assert shown.returncode == 0 and all(line in shown.stdout for line in result["verdicts"])
