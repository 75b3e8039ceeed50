"""Exported cells work without this package: standalone source, weights, ONNX; cells load back.

The standalone modules run in a fresh interpreter that imports only torch, and must give the
in-package model's outputs with the same weights, for random Specs of all three spaces plus the LSTM
(two states) and GRU (``sub``). ONNX runs in onnxruntime against the same reference.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from _fake_study import CHECKPOINT, OBJECTIVES, TASK, fake_run, trained_state

from nas.cli import main
from nas.codegen import BINARY_CODE, HELPERS, UNARY_CODE, activation_code, module_source
from nas.export import (
    example_inputs,
    export_cell,
    export_study,
    load_cell,
    parse_formats,
    read_cell_dict,
    train_cell,
)
from nas.config import ConfigError
from search_spaces import Spec, SpecError, Task, build, elman, get_space, gru, lstm, named_cell
from search_spaces.activations import BINARY, UNARY

TOKENS = Task(input_size=11, seq_len=5, output_size=4, input_kind="tokens")  # language models: test_export_lm.py
FEATURES = Task(input_size=16, seq_len=6, output_size=3)
# standardised inputs (the training split's statistics), and right-padded sequences of several lengths
STANDARDIZED = Task(input_size=3, seq_len=6, output_size=3, input_mean=(0.5, -2.0, 10.0), input_std=(0.1, 3.0, 7.5))
VARIABLE = Task(input_size=3, seq_len=9, output_size=4, input_mean=(1.0, 0.0, -1.0), input_std=(2.0, 0.5, 1.0),
                variable_length=True)


def _random_specs(space: str, count: int, seed: int) -> list[Spec]:
    rng = np.random.default_rng(seed)
    return [get_space(space).sample(rng) for _ in range(count)]


CASES: dict[str, tuple[Spec, Task]] = {
    "lstm": (lstm(8), FEATURES),
    "gru-sub": (gru(8), FEATURES),
    "gru-tokens": (gru(8), TOKENS),
    "elman-swish": (elman(8, "swish"), FEATURES),
    "gru-standardized": (gru(8), STANDARDIZED),
    "lstm-variable-length": (lstm(8), VARIABLE),
    "recurrent_cell-variable-length": (_random_specs("recurrent_cell", 1, 5)[0], VARIABLE),
    **{f"recurrent_cell-{i}": (s, FEATURES) for i, s in enumerate(_random_specs("recurrent_cell", 4, 1))},
    **{f"gated-{i}": (s, FEATURES) for i, s in enumerate(_random_specs("gated", 6, 5))},
    **{name: (named_cell(name, 8), FEATURES) for name in ("mgu", "lstm-ph", "lstm-cifg", "lstm-nfg", "lstm-nog")},
    **{f"activation-{i}": (s, FEATURES) for i, s in enumerate(_random_specs("activation", 4, 2))},
    **{f"sparsity-{i}": (s, FEATURES) for i, s in enumerate(_random_specs("sparsity", 4, 3))},
}


def _inputs(task: Task, batch: int = 4, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """``(x,)``, or ``(x, lengths)`` for variable-length tasks (inputs around the task's mean)."""
    inputs = example_inputs(task, batch, seed=seed)
    if task.standardized:
        mean, std = torch.tensor(task.input_mean), torch.tensor(task.input_std)
        inputs = (inputs[0] * std + mean, *inputs[1:])
    return inputs


def _reference(spec: Spec, task: Task) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    state = trained_state(spec, task, seed=3)
    model = build(spec, task, seed=0)
    model.load_state_dict(state)
    return model.eval(), state


# ---- generated code --------------------------------------------------------------------------------
def test_unit_tables_cover_every_activation_unit():
    assert set(UNARY_CODE) == set(UNARY)
    assert set(BINARY_CODE) == set(BINARY)


@pytest.mark.parametrize("unit", sorted(UNARY) + sorted(BINARY))
def test_each_unit_emits_the_same_function(unit):
    namespace = {"torch": torch, "nn": torch.nn}
    for helper in HELPERS.values():
        exec(helper, namespace)
    text = f"{unit}(x)" if unit in UNARY else f"{unit}(x, sin(x))"
    code, _ = activation_code(text, "v")
    x = torch.randn(64, dtype=torch.float64) * 3
    expected = UNARY[unit](x) if unit in UNARY else BINARY[unit](x, torch.sin(x))
    torch.testing.assert_close(eval(code, {**namespace, "v": x}), expected)


@pytest.fixture(scope="module")
def standalone_outputs(tmp_path_factory) -> dict[str, torch.Tensor]:
    """Every case's generated module run in one fresh interpreter that imports only torch."""
    root = tmp_path_factory.mktemp("standalone")
    for name, (spec, task) in CASES.items():
        directory = root / name
        directory.mkdir()
        (directory / "cell.py").write_text(module_source(spec, task))
        torch.save(_reference(spec, task)[1], directory / "weights.pt")
        torch.save(_inputs(task), directory / "inputs.pt")
    script = textwrap.dedent(
        """
        import importlib.util, pathlib, sys, torch
        for d in sorted(pathlib.Path(sys.argv[1]).iterdir()):
            spec = importlib.util.spec_from_file_location("cell_" + d.name.replace("-", "_"), d / "cell.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            model = module.Model()
            model.load_state_dict(torch.load(d / "weights.pt"))
            with torch.no_grad():
                torch.save(model.eval()(*torch.load(d / "inputs.pt")), d / "y.pt")
        ours = sorted(m for m in sys.modules if m.split(".")[0] in ("nas", "search_spaces", "kernels", "workers"))
        assert not ours, ours
        print("imported only torch")
        """
    )
    done = subprocess.run([sys.executable, "-c", script, str(root)], cwd=root, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "imported only torch" in done.stdout
    return {name: torch.load(root / name / "y.pt") for name in CASES}


@pytest.mark.parametrize("case", list(CASES))
def test_standalone_module_matches_the_package_model(case, standalone_outputs):
    spec, task = CASES[case]
    model, _ = _reference(spec, task)
    with torch.no_grad():
        expected = model(*_inputs(task))
    torch.testing.assert_close(standalone_outputs[case], expected, rtol=1e-4, atol=1e-5)


def test_standalone_module_trains(tmp_path):
    """A fresh ``Model()`` (no weights) has gradients everywhere a user trains it."""
    from nas.export import load_module

    (tmp_path / "cell.py").write_text(module_source(gru(8), FEATURES))
    model = load_module(tmp_path / "cell.py").Model()
    loss = model(*_inputs(FEATURES)).square().mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


# ---- ONNX -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "case",
    ["lstm", "gru-tokens", "activation-0", "sparsity-0", "elman-units", "gru-standardized", "lstm-variable-length",
     "gated-0", "lstm-ph", "lstm-cifg"],
)
def test_onnx_runs_in_onnxruntime_with_the_same_outputs(case, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    if case == "elman-units":  # units the TorchScript exporter lacks out of the box
        spec, task = elman(8, "add(asinh(x), mul(sinh(sigmoid(x)), cosh(tanh(x))))"), FEATURES
    else:
        spec, task = CASES[case]
    model, state = _reference(spec, task)
    cell = export_cell(spec, task, tmp_path, state_dict=state, formats=("onnx",))
    assert set(cell.files) == {"onnx", "manifest"}
    session = ort.InferenceSession(str(cell.files["onnx"]), providers=["CPUExecutionProvider"])
    inputs = _inputs(task, batch=7, seed=4)  # another batch size than the export's: the batch axis is dynamic
    (y,) = session.run(None, {name: t.numpy() for name, t in zip(["x", "lengths"], inputs)})
    with torch.no_grad():
        expected = model(*inputs)
    torch.testing.assert_close(torch.from_numpy(y), expected, rtol=1e-4, atol=1e-5)
    assert cell.manifest["onnx"]["max_abs_difference"] < 1e-4


@pytest.mark.slow
def test_onnx_dynamo_exporter_fallback(tmp_path):
    """The torch.export-based exporter (used when the TorchScript one fails) gives the same model."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from nas.export import export_onnx, load_module

    spec, task = CASES["lstm-variable-length"]  # standardised, with a lengths input
    model, state = _reference(spec, task)
    (tmp_path / "cell.py").write_text(module_source(spec, task))
    standalone = load_module(tmp_path / "cell.py").Model()
    standalone.load_state_dict(state)
    assert export_onnx(standalone, task, tmp_path / "model.onnx", exporter="dynamo") == "dynamo"
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    inputs = _inputs(task, batch=3, seed=5)
    (y,) = session.run(None, {"x": inputs[0].numpy(), "lengths": inputs[1].numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(y), model(*inputs), rtol=1e-4, atol=1e-5)


# ---- reading cells back -------------------------------------------------------------------------------
def _valid() -> dict:
    return elman(8).to_dict()


def _edit(change) -> dict:
    data = copy.deepcopy(_valid())
    change(data)
    return data


def _node(data: dict, name: str) -> dict:
    return next(n for n in data["nodes"] if n["id"] == name)


MALFORMED = {
    "no version": (lambda d: d["graph"].pop("version"), "graph.version"),
    "bad hidden size": (lambda d: d["graph"].update(hidden_size=-3), "graph.hidden_size"),
    "unknown activation": (lambda d: _node(d, "n0").update(activation="tanhh"), "nodes['n0'].activation"),
    "unknown combine": (lambda d: _node(d, "n0").update(combine="pow"), "nodes['n0'].combine"),
    "misspelt key": (lambda d: _node(d, "n0").update(activaton="relu"), "nodes['n0'].activaton"),
    "missing bias": (lambda d: _node(d, "n0").pop("bias"), "nodes['n0'].bias"),
    "edge without slot": (lambda d: d["edges"][0].pop("slot"), ".slot"),
    "edge to nowhere": (lambda d: d["edges"][0].update(target="n9"), "edges[0].target"),
    "duplicate node": (lambda d: d["nodes"].append(dict(_node(d, "n0"))), "nodes['n0'].id: duplicate"),
    "bad density": (lambda d: d["edges"][0].update(density=2.0), "density"),
    "output not a node": (lambda d: d["graph"].update(outputs={"h": "n7"}), "graph.outputs.h"),
    "nodes not a list": (lambda d: d.update(nodes={}), "nodes: expected a list"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_cells_are_rejected_naming_the_field(case, tmp_path):
    change, field = MALFORMED[case]
    path = tmp_path / "cell.json"
    path.write_text(json.dumps(_edit(change)))
    with pytest.raises(SpecError) as info:
        load_cell(path)
    message = str(info.value)
    assert message.startswith(str(path)) and field in message, message


def test_malformed_cell_on_the_command_line_exits_2_naming_the_field(tmp_path, capsys):
    path = tmp_path / "hand.json"
    path.write_text(json.dumps(_edit(lambda d: _node(d, "n0").update(combine="pow"))))
    assert main(["import", str(path)]) == 2
    assert "nodes['n0'].combine" in capsys.readouterr().err
    path.write_text("{not json")
    assert main(["import", str(path)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_hand_written_cell_loads_builds_and_trains(tmp_path, capsys):
    """A JSON cell goes back into the builder and trains (one epoch on digits-seq)."""
    path = tmp_path / "cell.json"
    path.write_text(json.dumps(_valid()))
    spec = load_cell(path)
    assert spec == elman(8)
    config = fake_run(tmp_path).config
    trainer = train_cell(spec, config, epochs=1)
    assert len(trainer.history) == 1 and trainer.best_state is not None
    assert trainer.best.score > 0.15  # better than chance (0.1) after one epoch


def test_every_space_cell_round_trips_through_the_checks():
    """The structural checks accept every key the spaces write (no false 'unknown key')."""
    for spec, _ in CASES.values():
        assert read_cell_dict(json.loads(spec.to_json())) == spec


def test_read_cell_dict_rejects_non_objects():
    with pytest.raises(SpecError, match="JSON object"):
        read_cell_dict([1, 2])


def test_parse_formats():
    assert parse_formats("json, onnx") == ("json", "onnx")
    with pytest.raises(ConfigError, match="pdf"):
        parse_formats("json,pdf")


# ---- a study's cells ------------------------------------------------------------------------------------
def test_export_pareto_writes_every_format_and_a_manifest(tmp_path):
    run = fake_run(tmp_path)
    # trial 1 kept no checkpoint: refused by default, naming it, and nothing is written
    with pytest.raises(ConfigError, match=r"trial\(s\) 1: no trained weights.*--initial-weights"):
        export_study(run.study, run.run_dir, tmp_path / "cells", config=run.config, pareto=True)
    assert not (tmp_path / "cells").exists()
    cells = export_study(run.study, run.run_dir, tmp_path / "cells", config=run.config, pareto=True,
                         formats=("json", "torch"), initial_weights=True)
    assert [c.manifest["trial"] for c in cells] == [0, 1]
    first = cells[0]
    assert sorted(p.name for p in first.directory.iterdir()) == [
        "cell.json", "cell.py", "config.yaml", "manifest.json", "weights.pt"
    ]
    manifest = json.loads((first.directory / "manifest.json").read_text())
    assert manifest["objectives"] == {"val_score": OBJECTIVES[0][0], "macs": OBJECTIVES[0][1]}
    assert manifest["weights"] == "trained"
    assert manifest["config_hash"] == run.config.fingerprint()
    assert manifest["seed"] == 0 and manifest["package"] == "nas-hyper" and manifest["package_version"]
    assert manifest["reproduce"]["train"] == "nas import cell.json --config config.yaml"
    assert {"macs", "params", "hash", "task"} <= set(manifest)
    # the trained weights are the checkpoint's best_state, and load back with the JSON cell
    weights = torch.load(first.directory / "weights.pt")
    assert all(torch.equal(weights[k], run.trained[k]) for k in run.trained)
    assert load_cell(first.directory) == run.specs[0] == load_cell(first.directory / "cell.py")
    # trial 1 kept no checkpoint: its weights are the build seed's initial ones, and say so
    assert cells[1].manifest["weights"].startswith("initial")


def test_export_selects_by_trial_and_top(tmp_path):
    run = fake_run(tmp_path)
    top = export_study(run.study, run.run_dir, tmp_path / "top", config=run.config, top=3, formats=("json",))
    assert [c.manifest["trial"] for c in top] == [0, 1, 2]
    pruned = export_study(run.study, run.run_dir, tmp_path / "one", config=run.config, trial=4, formats=("json",))
    assert pruned[0].manifest["state"] == "PRUNED" and pruned[0].manifest["objectives"] is None
    with pytest.raises(ConfigError, match="--trial 9"):
        export_study(run.study, run.run_dir, tmp_path / "x", config=run.config, trial=9)


def test_export_command_line(tmp_path, capsys):
    run = fake_run(tmp_path)
    out = tmp_path / "cells"
    argv = ["export", "fake", "--trial", "0", "--out", str(out), "--format", "json,torch", "--runs-dir",
            str(run.runs_dir)]
    assert main(argv) == 0
    assert "trained" in capsys.readouterr().out
    assert (out / "trial_0" / "cell.py").is_file() and (run.run_dir / CHECKPOINT).is_dir()
    assert main(["export", "nope", "--pareto", "--out", str(out), "--runs-dir", str(run.runs_dir)]) == 2
    assert main(["export", "fake", "--top", "1", "--out", str(out), "--format", "pdf",
                 "--runs-dir", str(run.runs_dir)]) == 2


def test_import_command_trains_and_exports(tmp_path, capsys):
    run = fake_run(tmp_path)
    cell = tmp_path / "cell.json"
    cell.write_text(run.specs[1].to_json())
    out = tmp_path / "trained"
    argv = ["import", str(cell), "--config", str(run.run_dir / "config.yaml"), "--epochs", "1", "--out", str(out),
            "--format", "json,torch"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "valid" in printed and "epoch   1" in printed and "best epoch 1" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["weights"] == "trained" and manifest["best_epoch"] == 1
    assert TASK.to_dict() == manifest["task"]


def test_import_on_user_data_exports_models_that_standardise_raw_inputs(tmp_path, capsys):
    """`nas import` on an npz config with an official test file: the trained package model, the
    exported cell.py and model.onnx give the same outputs on raw (unstandardised) test inputs, and
    the manifest names the splits."""
    import yaml

    from nas.export import load_module
    from workers.data import load_dataset

    rng = np.random.default_rng(0)
    x = rng.normal(50.0, 10.0, size=(60, 5, 3)).astype(np.float32)  # far from standardised
    y = rng.integers(0, 3, 60)
    np.savez(tmp_path / "train.npz", x=x[:45], y=y[:45])
    np.savez(tmp_path / "test.npz", x=x[45:], y=y[45:])
    config = tmp_path / "mine.yaml"
    config.write_text(yaml.safe_dump({"data": {"name": "npz", "train_path": str(tmp_path / "train.npz"),
                                               "test_path": str(tmp_path / "test.npz")}, "train": {"epochs": 1}}))
    cell = tmp_path / "cell.json"
    cell.write_text(gru(8).to_json())
    out = tmp_path / "out"
    formats = "json,torch,onnx" if importlib.util.find_spec("onnx") else "json,torch"
    assert main(["import", str(cell), "--config", str(config), "--out", str(out), "--format", formats]) == 0
    assert "data: train 36 (train.npz less the validation split), validation 9" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["splits"]["test"] == {"size": 15, "source": "official test.npz"}
    data = load_dataset("npz", train_path=str(tmp_path / "train.npz"), test_path=str(tmp_path / "test.npz"))
    assert manifest["task"]["input_mean"] == pytest.approx(list(data.task.input_mean))
    weights = torch.load(out / "weights.pt")
    torch.testing.assert_close(weights["input_mean"], torch.tensor(data.task.input_mean, dtype=torch.float32))
    package = build(gru(8), data.task)
    package.load_state_dict(weights)
    standalone = load_module(out / "cell.py").Model()
    standalone.load_state_dict(weights)
    raw = data.test.x
    with torch.no_grad():
        expected = package.eval()(raw)
        torch.testing.assert_close(standalone.eval()(raw), expected, rtol=1e-5, atol=1e-6)
    if "onnx" in formats and importlib.util.find_spec("onnxruntime"):
        import onnxruntime

        session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
        (onnx_out,) = session.run(None, {"x": raw.numpy()})
        torch.testing.assert_close(torch.from_numpy(onnx_out), expected, rtol=1e-4, atol=1e-5)
