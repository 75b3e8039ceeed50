"""``nas hyper train`` / ``nas hyper eval`` end to end on a tiny budget."""

from __future__ import annotations

from nas.cli import main

CONFIG = """
name: tiny
data: {name: digits-seq}
space: {name: recurrent_cell, num_nodes: 2, hidden_sizes: [16]}
train: {epochs: 1}
"""


def test_hyper_train_then_eval(tmp_path, capsys) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(CONFIG)
    out = tmp_path / "hyper.pt"
    assert main(["hyper", "train", str(config), "--out", str(out), "--steps", "3"]) == 0
    assert out.is_file()
    assert main(["hyper", "train", str(config), "--out", str(out), "--steps", "4", "--resume"]) == 0
    assert "resumed" in capsys.readouterr().out
    assert main(["hyper", "eval", str(out), str(config), "--candidates", "3", "--train-epochs", "1"]) == 0
    text = capsys.readouterr().out
    assert "ranked by the hypernetwork proxy" in text and "Spearman" in text
    assert "partial Spearman given size" in text and "parameter count" in text and "MACs" in text
    assert main(["hyper", "eval", str(tmp_path / "missing.pt"), str(config)]) == 2
