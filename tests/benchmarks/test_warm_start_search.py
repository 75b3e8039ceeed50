"""benchmarks/warm_start_search.py: both arms under one wall-time budget, judged by one recipe."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import warm_start_search as bench  # noqa: E402

TINY = {
    "name": "tiny", "data": {"name": "digits-seq"},
    "space": {"name": "gated", "hidden_sizes": [8]},
    "train": {"epochs": 2, "batch_size": 128, "lr": 0.01},
    "search": {"trials": 4, "sampler": "rea", "baselines": ["elman", "gru"], "confirm_top": 1, "max_concurrent": 2},
}


def test_arms_differ_only_in_warm_start_epochs_and_budget():
    args = bench.build_parser().parse_args(["--minutes", "0.5", "--hyper-steps", "7"])
    cold, warm = (bench.arm_config(TINY, arm, 3, args) for arm in bench.ARMS)
    assert cold["search"]["time_budget_s"] == warm["search"]["time_budget_s"] == 30
    assert not cold["hyper"]["enabled"] and cold["train"] == TINY["train"]
    assert warm["hyper"] == {"enabled": True, "warm_start": True, "when": "before", "train_steps": 7}
    assert warm["train"] == {**TINY["train"], "epochs": 1}
    assert cold["name"] != warm["name"]


@pytest.mark.slow
def test_both_arms_search_and_are_confirmed_by_the_configs_recipe(ray_cluster, tmp_path, monkeypatch):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "warm.json"
    assert bench.main(["--configs", str(config), "--seeds", "0", "--minutes", "0.4", "--hyper-steps", "5",
                       "--confirm", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())["configs"]["tiny"]
    rows = {r["arm"]: r for r in result["rows"]}
    assert set(rows) == {"cold", "warm"}
    assert rows["cold"]["max_epochs"] == 2 and rows["warm"]["max_epochs"] == 1
    for row in rows.values():
        assert row["confirmed"] and row["trials"] >= 2 and row["hypervolume"] > 0
        assert row["confirmed_best"] is not None and row["confirmed_best"]["seeds"] == 1
    summary = result["summary"]
    assert summary["warm"]["trials_ratio"] == rows["warm"]["trials"] / rows["cold"]["trials"]
    assert "best_gain" in summary["warm"] and summary["warm"]["hypervolume_ratio"] > 0
