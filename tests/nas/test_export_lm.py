"""Exported language models: the stateful ``Model`` of cell.py, ``generate``, ONNX with state, sample.txt.

cell.py's ``Model(x, state) -> (logits, state)`` must give the package model's logits and final states
with the same weights, and carry its state so that two calls equal one call over the concatenation.
``generate`` runs in a fresh interpreter (``python -I``, only the export directory importable) and is
checked against a greedy loop written here that recomputes the whole sequence at every step. The
ONNX step is run through onnxruntime token by token, its state fed back, against one torch call.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from _fake_study import fake_run, trained_state

from nas.export import export_cell, export_study, load_module
from nas.lm_codegen import vocab_level
from nas.lm_export import SAMPLE_TOKENS, dataset_prompt, sample_prompt
from search_spaces import Spec, Task, build, get_space, gru, lstm
from workers.data.base import Dataset, Split

TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"


def _lm(vocab: tuple[str, ...], seq_len: int = 12) -> Task:
    return Task(input_size=len(vocab), seq_len=seq_len, output_size=len(vocab), input_kind="tokens", objective="lm",
                vocab=vocab)


CHARS = _lm(tuple(sorted(set(TEXT))) + ("<unk>",))
WORDS = _lm(tuple(sorted(set(TEXT.split()))) + ("<unk>",), seq_len=4)
CHARS_NO_UNK = _lm(tuple(sorted(set(TEXT))))
IDS_ONLY = Task(input_size=7, seq_len=5, output_size=7, input_kind="tokens", objective="lm")  # no vocabulary


def _gated(states: int) -> Spec:
    """The first cell of the gated space (seeds 0, 1, ...) with this many states."""
    rng = np.random.default_rng(0)
    return next(s for s in (get_space("gated").sample(rng) for _ in range(100)) if len(s.states) == states)


CELLS: dict[str, Spec] = {"lstm": lstm(8), "gru": gru(8), "gated-1": _gated(1), "gated-2": _gated(2)}


def _export(spec: Spec, task: Task, out: Path, formats: tuple[str, ...] = ("json", "torch")):
    """Export with trained-like weights; the package model with the same weights."""
    state = trained_state(spec, task, seed=3)
    model = build(spec, task, seed=0)
    model.load_state_dict(state)
    return export_cell(spec, task, out, state_dict=state, formats=formats, seed=4), model.eval()


def _tokens(task: Task, batch: int, steps: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, task.input_size, (batch, steps), generator=torch.Generator().manual_seed(seed))


def _logits(output: torch.Tensor | tuple) -> torch.Tensor:
    """The package model's logits (whether or not it also returns its state)."""
    return output[0] if isinstance(output, tuple) else output


# ---- cell.py's Model ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CELLS))
def test_model_matches_the_package_model_and_loads_its_weights(name, tmp_path):
    spec = CELLS[name]
    cell, package = _export(spec, CHARS, tmp_path)
    standalone = load_module(tmp_path / "cell.py").Model()
    standalone.load_state_dict(torch.load(tmp_path / "weights.pt"))  # strict: the same names and shapes
    x = _tokens(CHARS, batch=3, steps=CHARS.seq_len)
    with torch.no_grad():
        logits, state = standalone(x)
        expected = _logits(package(x))
        _, final = package.cell(package.embedding(x))
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-5)
    assert len(state) == len(spec.states)
    final = [final[s] for s in spec.states] if isinstance(final, dict) else list(final)  # by name, or in order
    for got, want in zip(state, final, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(CELLS))
def test_state_carried_across_calls_equals_one_call(name, tmp_path):
    _export(CELLS[name], CHARS, tmp_path)
    model = load_module(tmp_path / "cell.py").Model()
    model.load_state_dict(torch.load(tmp_path / "weights.pt"))
    x = _tokens(CHARS, batch=2, steps=17)  # longer than the training sequence: any length runs
    with torch.no_grad():
        whole, whole_state = model(x)
        first, state = model(x[:, :6])
        second, state = model(x[:, 6:], state)
        fresh, _ = model(x[:, 6:])
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, rtol=1e-5, atol=1e-6)
    for got, want in zip(state, whole_state):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(fresh, second)  # the carried state matters
    zeros = model.initial_state(2)
    torch.testing.assert_close(model(x, zeros)[0], whole)


def test_sample_checks_its_arguments(tmp_path):
    _export(gru(8), CHARS, tmp_path)
    module = load_module(tmp_path / "cell.py")
    model = module.Model()
    for bad, match in (({"temperature": -1.0}, "temperature"), ({"temperature": float("nan")}, "temperature"),
                       ({"n": -1}, "n:"), ({"prompt": []}, "prompt"), ({"prompt": [len(module.VOCAB)]}, "prompt")):
        kwargs = {"prompt": [1], "n": 3} | bad
        with pytest.raises(ValueError, match=match):
            model.sample(**kwargs)
    assert model.sample([1], 0) == []
    assert len(model.sample([1, 2], 5, seed=0)) == 5


def test_a_model_without_vocabulary_samples_token_ids(tmp_path):
    cell = export_cell(gru(8), IDS_ONLY, tmp_path, formats=("torch",))
    module = load_module(tmp_path / "cell.py")
    assert not hasattr(module, "VOCAB") and not hasattr(module.Model, "generate")
    assert "sample" not in cell.files and "sample" not in cell.manifest
    tokens = module.Model().sample([0, 3], 6, temperature=0.5, seed=1)
    assert len(tokens) == 6 and all(0 <= t < 7 for t in tokens)


# ---- generate, in a fresh interpreter -------------------------------------------------------------
FRESH = textwrap.dedent(
    """
    import importlib.util, json, pathlib, sys, torch
    out = {}
    for d in sorted(pathlib.Path(sys.argv[1]).iterdir()):
        spec = importlib.util.spec_from_file_location("cell_" + d.name.replace("-", "_"), d / "cell.py")
        cell = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(cell)
        model = cell.Model()
        model.load_state_dict(torch.load(d / "weights.pt"))
        model.eval()
        prompt = json.loads((d / "manifest.json").read_text())["sample"]["prompt"]
        r = {"level": cell.LEVEL, "prompt": prompt}
        r["a"], r["b"] = (model.generate(prompt, 40, temperature=1.0, seed=7) for _ in range(2))
        r["other_seed"] = model.generate(prompt, 40, temperature=1.0, seed=8)
        r["greedy"] = model.generate(prompt, 25, temperature=0)
        ids = cell.encode(prompt)  # greedy by hand: the whole sequence again at every step, no state carried
        for _ in range(25):
            with torch.no_grad():
                ids.append(int(model(torch.tensor([ids]))[0][0, -1].argmax()))
        r["greedy_by_hand"] = cell.decode(ids[len(cell.encode(prompt)):])
        s = json.loads((d / "manifest.json").read_text())["sample"]
        separator = "" if cell.LEVEL == "char" else " "
        drawn = model.generate(s["prompt"], s["tokens"], temperature=s["temperature"], seed=s["seed"])
        r["sample_matches"] = (d / "sample.txt").read_text(encoding="utf-8") == s["prompt"] + separator + drawn + "\\n"
        r["unknown"] = cell.encode("Zz\\u00e9") if "<unk>" in cell.VOCAB else None
        try:
            cell.encode("Zz")
            r["error"] = None
        except ValueError as exc:
            r["error"] = str(exc)
        out[d.name] = r
    out["modules"] = sorted(m for m in sys.modules if m.split(".")[0] in ("nas", "search_spaces", "kernels", "workers"))
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> dict:
    """Exports of every cell (characters), a word-level one and one without <unk>, run by ``python -I``."""
    root = tmp_path_factory.mktemp("fresh")
    for name, spec in CELLS.items():
        _export(spec, CHARS, root / name)
    _export(gru(8), WORDS, root / "words")
    _export(lstm(8), CHARS_NO_UNK, root / "no-unk")
    script = root.parent / "fresh_generate.py"
    script.write_text(FRESH)
    done = subprocess.run([sys.executable, "-I", str(script), str(root)], cwd=root, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_generate_imports_only_torch(fresh):
    assert fresh["modules"] == []


@pytest.mark.parametrize("name", [*CELLS, "words", "no-unk"])
def test_generate_is_deterministic_under_a_seed_and_greedy_at_temperature_zero(name, fresh):
    r = fresh[name]
    assert r["a"] == r["b"] and r["a"] != r["other_seed"]
    assert r["greedy"] == r["greedy_by_hand"]
    assert r["sample_matches"]


def test_generate_reads_and_writes_the_vocabulary(fresh):
    chars, words, no_unk = fresh["lstm"], fresh["words"], fresh["no-unk"]
    assert chars["level"] == "char" and words["level"] == "word"
    assert chars["prompt"] == "T"  # the first printable token (export_cell was given no training text)
    unk = CHARS.vocab.index("<unk>")
    assert chars["unknown"] == [unk, unk, unk]  # 'Z', 'z' and 'é' are not in the text
    assert len(words["a"].split(" ")) == 40 and all(w in WORDS.vocab for w in words["a"].split(" "))
    assert chars["error"] is None and words["error"] is None  # unknown -> <unk>
    assert "no '<unk>'" in no_unk["error"] and "'Z'" in no_unk["error"]


# ---- sample.txt --------------------------------------------------------------------------------------
def test_sample_file_is_listed_and_decodes(tmp_path):
    cell, _ = _export(lstm(8), CHARS, tmp_path)
    sample = cell.manifest["sample"]
    assert cell.manifest["files"]["sample"] == "sample.txt" and cell.files["sample"] == tmp_path / "sample.txt"
    text = (tmp_path / "sample.txt").read_bytes().decode("utf-8")
    assert text.startswith(sample["prompt"]) and text.endswith("\n")
    assert sample["tokens"] == SAMPLE_TOKENS["char"] and sample["seed"] == 4
    generated = text[len(sample["prompt"]):-1]
    assert len(generated) >= SAMPLE_TOKENS["char"] and set(generated) <= set("".join(CHARS.vocab))


def test_sample_prompt_is_the_start_of_the_training_text():
    ids = [CHARS.vocab.index(c) for c in TEXT]
    assert sample_prompt(CHARS, ids) == "To be, or not to"  # 16 characters
    assert sample_prompt(CHARS, [CHARS.vocab.index(c) for c in "to\nbe"]) == "to\n"  # up to the first newline
    assert sample_prompt(CHARS, [CHARS.vocab.index("T"), CHARS.vocab.index("<unk>"), 0]) == "T"  # no <unk>
    assert sample_prompt(CHARS, [CHARS.vocab.index(" ")]) == "T"  # whitespace alone: the first printable token
    words = [WORDS.vocab.index(w) for w in TEXT.split()]
    assert sample_prompt(WORDS, words) == "To be, or not"
    assert vocab_level(WORDS.vocab) == "word" and vocab_level(CHARS.vocab) == "char"
    assert vocab_level(("a", "bc")) == "word"  # any multi-character token that is not <...>


def _text_dataset(task: Task) -> Dataset:
    ids = torch.tensor([task.vocab.index(c) for c in TEXT])
    rows = ids[: len(ids) // task.seq_len * task.seq_len].view(-1, task.seq_len)
    split = Split(rows, rows.roll(-1, dims=1))
    return Dataset("text", task, split, split, split)


def test_nas_export_of_an_lm_trial_writes_a_sample_from_the_training_text(tmp_path, monkeypatch):
    """`export_study` (what ``nas export`` runs) on a study whose data is text: the prompt is where the
    training text starts, and the sample is in the manifest."""
    import nas.export

    run = fake_run(tmp_path)
    monkeypatch.setattr(nas.export, "config_dataset", lambda config: _text_dataset(CHARS))
    (cell,) = export_study(run.study, run.run_dir, tmp_path / "out", config=run.config, trial=1,
                           formats=("json", "torch"), initial_weights=True)
    assert cell.manifest["sample"]["prompt"] == "To be, or no"  # the first training row: 12 characters
    assert (cell.directory / "sample.txt").read_text(encoding="utf-8").startswith("To be, or no")
    assert set(cell.manifest["files"]) == {"json", "torch", "weights", "sample", "config"}
    assert dataset_prompt(SimpleNamespace(task=IDS_ONLY, train=None)) is None


# ---- ONNX: one step with the state in and out --------------------------------------------------------
@pytest.mark.parametrize("name", ["lstm", "gru", "gated-2"])
def test_onnx_step_with_state_matches_torch_over_several_steps(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    spec = CELLS[name]
    cell, _ = _export(spec, CHARS, tmp_path, formats=("torch", "onnx"))
    step = cell.manifest["onnx"]["step"]
    assert step["inputs"] == ["x", *(f"state_{s}" for s in spec.states)]
    assert step["outputs"] == ["logits", *(f"next_state_{s}" for s in spec.states)]
    assert cell.manifest["onnx"]["max_abs_difference"] < 1e-4
    model = load_module(tmp_path / "cell.py").Model()
    model.load_state_dict(torch.load(tmp_path / "weights.pt"))
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == step["inputs"]
    x = _tokens(CHARS, batch=3, steps=9, seed=2)  # another batch size than the export traced
    gen = torch.Generator().manual_seed(5)
    start = tuple(torch.randn(3, spec.hidden_size, generator=gen) for _ in spec.states)  # not zeros
    with torch.no_grad():
        expected, expected_state = model(x, start)
    state = [s.numpy() for s in start]
    for t in range(x.shape[1]):
        logits, *state = session.run(None, dict(zip(step["inputs"], [x[:, t:t + 1].numpy(), *state])))
        assert logits.shape == (3, 1, CHARS.output_size)
        torch.testing.assert_close(torch.from_numpy(logits), expected[:, t:t + 1], rtol=1e-4, atol=1e-5)
    for got, want in zip(state, expected_state):
        torch.testing.assert_close(torch.from_numpy(got), want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_onnx_step_with_the_dynamo_exporter(tmp_path):
    """The torch.export-based exporter (the fallback) takes the state as one tuple argument."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from nas.export import export_onnx, onnx_max_difference

    spec = CELLS["lstm"]
    _export(spec, CHARS, tmp_path)
    model = load_module(tmp_path / "cell.py").Model()
    model.load_state_dict(torch.load(tmp_path / "weights.pt"))
    assert export_onnx(model, CHARS, tmp_path / "step.onnx", exporter="dynamo", states=spec.states) == "dynamo"
    session = ort.InferenceSession(str(tmp_path / "step.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x", "state_h", "state_c"]
    assert onnx_max_difference(model, CHARS, tmp_path / "step.onnx", batch=3) < 1e-4
