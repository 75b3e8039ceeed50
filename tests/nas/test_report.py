"""Plots and reports: the right points in the right groups, valid PNGs, reports that link them.

Points are checked on the matplotlib artists before saving (scatter offsets), files after (PNG
signature and size). The end-to-end test runs a tiny real search, then export and report from it.
"""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import pytest
import torch
from _fake_study import OBJECTIVES, fake_run

from nas.cli import main
from nas.report import cell_figure, hypervolume_curve, pareto_figure, save_figure, trial_points, write_report
from nas.study import DUPLICATE_ATTR, hypervolume_2d
from search_spaces import gru, lstm

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG file; fails unless it starts with the PNG signature and an IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_trial_points_split_front_dominated_pruned_failed(tmp_path):
    points = trial_points(fake_run(tmp_path).study)
    assert [p[0] for p in points.front] == [1, 0]  # by MACs
    assert sorted(p[0] for p in points.dominated) == [2, 3]
    assert [(p[0], p[2]) for p in points.pruned] == [(4, 0.3)]  # best partial accuracy
    assert points.failed == 1


def test_pareto_figure_has_one_point_per_trial_and_saves_a_png(tmp_path):
    run = fake_run(tmp_path)
    fig = pareto_figure(run.study)
    front = fig.front.get_offsets().tolist()
    assert front == [[OBJECTIVES[1][1], OBJECTIVES[1][0]], [OBJECTIVES[0][1], OBJECTIVES[0][0]]]
    assert sorted(fig.dominated.get_offsets().tolist()) == sorted(
        [[OBJECTIVES[n][1], OBJECTIVES[n][0]] for n in (2, 3)]
    )
    assert len(fig.pruned.get_offsets()) == 1
    assert len(fig.hypervolume.get_xdata()) == 6  # one value per finished trial (4 complete, pruned, failed)
    assert "1 failed" in fig.figure.axes[0].get_title()
    path = save_figure(fig.figure, tmp_path / "pareto.png")
    width, height = png_size(path)
    assert width > 800 and height > 300 and path.stat().st_size > 20_000


def test_hypervolume_grows_to_the_fronts(tmp_path):
    run = fake_run(tmp_path)
    curve = hypervolume_curve(run.study)
    values = [v for _, v in curve]
    assert values == sorted(values) and values[0] > 0
    worst = 1.1 * max(m for _, m in OBJECTIVES.values())
    front = [(OBJECTIVES[n][0], OBJECTIVES[n][1] / worst) for n in (0, 1)]
    assert values[-1] == pytest.approx(hypervolume_2d(front, (0.0, 1.0)))


@pytest.mark.parametrize("spec, nodes", [(lstm(8), 3 + 9 + 2), (gru(8), 2 + 8 + 1)], ids=["lstm", "gru"])
def test_cell_drawing_has_every_node(tmp_path, spec, nodes):
    """Inputs and states, op nodes, and one node per new state."""
    fig = cell_figure(spec, title="cell")
    drawn = fig.axes[0].collections[0].get_offsets()
    assert len(drawn) == nodes
    width, height = png_size(save_figure(fig, tmp_path / "cell.png"))
    assert width > 300 and height > 200


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_report_links_plots_front_table_and_cell_drawings(tmp_path, fmt):
    run = fake_run(tmp_path)
    path = write_report(run.study, tmp_path / "report", fmt=fmt, config=run.config)
    text = path.read_text()
    assert path.name == f"report.{fmt}"
    for trial in (0, 1):
        assert f"cells/trial_{trial}.png" in text
        png_size(tmp_path / "report" / "cells" / f"trial_{trial}.png")
    assert "pareto.png" in text and f"{OBJECTIVES[0][0]:.4f}" in text and run.config.fingerprint() in text
    png_size(tmp_path / "report" / "pareto.png")
    with (tmp_path / "report" / "front.csv").open() as f:
        assert [int(r["trial"]) for r in csv.DictReader(f)] == [0, 1]
    if fmt == "html":
        assert text.startswith("<!doctype html>") and text.rstrip().endswith("</html>")


def test_report_says_how_many_seeds_each_number_averages(tmp_path):
    from nas.locate import CONFIG_ATTR

    run = fake_run(tmp_path)
    config = run.config.to_dict()
    run.study.set_user_attr(CONFIG_ATTR, {**config, "train": {**config["train"], "eval_seeds": 3}})
    text = write_report(run.study, tmp_path / "report", config=run.config).read_text()
    assert "val acc: mean of 3 seeds on the validation split" in " ".join(text.split())


def test_pareto_and_report_commands(tmp_path, capsys):
    run = fake_run(tmp_path)
    runs = ["--runs-dir", str(run.runs_dir)]
    argv = ["pareto", "fake", "--plot", str(tmp_path / "p.png"), "--csv", str(tmp_path / "front.json"), *runs]
    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "2 on the front, 2 dominated, 1 pruned, 1 failed" in out
    png_size(tmp_path / "p.png")
    assert [r["trial"] for r in json.loads((tmp_path / "front.json").read_text())] == [0, 1]
    assert main(["report", "fake", *runs]) == 0
    assert (run.run_dir / "report" / "report.md").is_file()
    assert main(["pareto", "nope", *runs]) == 2


@pytest.mark.slow
def test_search_then_export_and_report_end_to_end(ray_cluster, tmp_path, capsys):
    """A real tiny search: its front cells export with trained weights that the standalone module
    reproduces, and the report draws them."""
    from nas.config import parse_config
    from nas.export import config_task, load_cell, load_module, train_cell
    from nas.search import run_search
    from search_spaces import Spec, build

    config = parse_config(
        {
            "name": "tiny",
            "data": {"name": "digits-seq"},
            "space": {"name": "recurrent_cell", "num_nodes": 2, "hidden_sizes": [8]},
            "train": {"epochs": 1, "batch_size": 128},
            "search": {"trials": 3, "sampler": "random", "max_concurrent": 2},
        }
    )
    runs = tmp_path / "runs"
    outcome = run_search(config, runs_dir=runs)
    assert not outcome.interrupted
    out = tmp_path / "cells"
    argv = ["export", "tiny", "--pareto", "--out", str(out), "--format", "json,torch", "--runs-dir", str(runs)]
    assert main(argv) == 0
    exported = sorted(out.iterdir())
    assert exported
    for directory in exported:
        manifest = json.loads((directory / "manifest.json").read_text())
        assert manifest["weights"] == "trained"
        spec = Spec.from_json((directory / "cell.json").read_text())
        task_model = build(spec, config_task(config), seed=0)
        state = torch.load(directory / "weights.pt")
        task_model.load_state_dict(state)
        standalone = load_module(directory / "cell.py").Model()
        standalone.load_state_dict(state)
        x = torch.rand(3, 8, 8)
        with torch.no_grad():
            torch.testing.assert_close(standalone(x), task_model.eval()(x), rtol=1e-4, atol=1e-5)
    # the manifest's reproduce command trains the cell to the search's numbers
    directory = exported[0]
    manifest = json.loads((directory / "manifest.json").read_text())
    trainer = train_cell(load_cell(directory), config)
    assert trainer.best.score == pytest.approx(manifest["objectives"]["val_score"], abs=1e-9)
    assert main(["report", "tiny", "--runs-dir", str(runs), "--format", "html"]) == 0
    assert (runs / "tiny" / "report" / "report.html").is_file()


def test_status_marks_a_repeat_as_untrained(tmp_path, capsys):
    """A trial that repeated an evaluated cell took its result without training: `nas status` names the
    original and shows 0 epochs, and the summary line counts it (it used to pass as a 2-epoch trial)."""
    run = fake_run(tmp_path)
    original = run.study.trials[0]
    run.study.enqueue_trial({}, user_attrs={**original.user_attrs, DUPLICATE_ATTR: 0})
    run.study.tell(run.study.ask(), list(original.values))
    assert main(["status", "fake", "--all", "--runs-dir", str(run.runs_dir)]) == 0
    out = capsys.readouterr().out
    cells = [c.strip() for c in next(line for line in out.splitlines() if line.strip("│ ").startswith("6 ")).split("│")]
    assert cells[1:6] == ["6", "COMPLETE", "0.9100", "5,000", "0"], cells  # 0 epochs of its own
    text = " ".join(out.split())
    assert text.count("repeat of 0, not trained") == 1  # the note names the original; the original has none
    assert "(1 of them repeats of evaluated cells, not trained)" in text
