"""Take discovered cells away: JSON, standalone PyTorch source, weights, ONNX and a manifest.

`export_study` writes one directory per selected trial (``--trial N``, ``--pareto`` or ``--top K``)::

    trial_21/
        cell.json       the Spec (networkx node-link JSON, with its schema version)
        cell.py         a standalone module that imports only torch (`nas.codegen`)
        weights.pt      torch state dict for cell.py's ``Model`` (and for `search_spaces.build`):
                        the best epoch's trained weights when the trial kept a checkpoint
        model.onnx      the full model (embedding, cell, head), dynamic batch, fixed sequence length;
                        for a language model one step with the state in and out (`nas.lm_export`)
        sample.txt      a language model's generated text, from cell.py's ``generate`` (fixed seed)
        config.yaml     the search config (data, training, seed) the trial was trained with
        manifest.json   objectives, MACs, params, seed, versions, config hash, how to reproduce

`load_cell` reads a cell back (an exported directory, or a hand-written JSON file) with errors that
name the field, so it can be built, trained and searched from again.
"""

from __future__ import annotations

import importlib.util
import json
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from nas.codegen import module_source, package_version
from nas.config import Config, ConfigError
from nas.lm_export import (
    CHECK_STEPS,
    SAMPLE_FILE,
    OneStep,
    dataset_prompt,
    sample_prompt,
    step_inputs,
    step_max_difference,
    step_names,
    write_sample,
)
from nas.splits import number_or_none
from search_spaces import Spec, SpecError, Task, build, canonical_hash, cost
from workers.data.folds import selection_splits
from workers.ensemble import SEED_RUNS
from workers.run_dir import RunDir
from workers.metrics import Metric

FORMATS = ("json", "torch", "onnx")
MANIFEST_VERSION = 1
MAX_CELL_BYTES = 1 << 20  # a cell file is a few kilobytes
ONNX_OPSET = 17  # TorchScript exporter
DYNAMO_OPSET = 18  # the torch.export-based exporter's lowest


@dataclass
class ExportedCell:
    """What `export_cell` wrote: the directory, the files by kind, and the manifest."""

    directory: Path
    files: dict[str, Path] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"json,torch"`` -> ``("json", "torch")``; unknown names raise `ConfigError`."""
    names = [p.strip() for p in (text.split(",") if isinstance(text, str) else text) if p.strip()]
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise ConfigError(f"--format: unknown format(s) {unknown or names}; choose from {','.join(FORMATS)}")
    return tuple(dict.fromkeys(names))


# ---- one cell -------------------------------------------------------------------------------------
def load_module(path: str | Path) -> ModuleType:
    """Import a generated ``cell.py`` from its path under a unique module name."""
    name = f"_nas_cell_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def example_input(task: Task, batch: int = 2, *, seed: int = 0) -> torch.Tensor:
    """A random batch shaped like the task's inputs (floats, or token ids)."""
    gen = torch.Generator().manual_seed(seed)
    if task.input_kind == "tokens":
        return torch.randint(0, task.input_size, (batch, task.seq_len), generator=gen)
    return torch.randn(batch, task.seq_len, task.input_size, generator=gen)


def example_inputs(task: Task, batch: int = 2, *, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """The model's inputs for ``task``: ``(x,)``, or ``(x, lengths)`` for variable-length tasks
    (lengths from 1 to ``seq_len``, the first sequence full)."""
    x = example_input(task, batch, seed=seed)
    if not task.variable_length or task.objective == "lm":
        return (x,)
    gen = torch.Generator().manual_seed(seed + 1)
    lengths = torch.randint(1, task.seq_len + 1, (batch,), generator=gen)
    lengths[0] = task.seq_len
    return x, lengths


def input_names(task: Task) -> list[str]:
    """Names of the ONNX model's inputs, in `example_inputs` order."""
    return ["x", "lengths"][: len(example_inputs(task))]


_EXTRA_SYMBOLICS = {"asinh": "Asinh", "sinh": "Sinh", "cosh": "Cosh"}  # ONNX has them since opset 9


def _register_symbolics() -> None:
    """Teach the TorchScript exporter the activation units it lacks (idempotent)."""
    for aten, onnx_op in _EXTRA_SYMBOLICS.items():
        torch.onnx.register_custom_op_symbolic(
            f"aten::{aten}", lambda g, x, _op=onnx_op: g.op(_op, x), 9
        )


def export_onnx(model: torch.nn.Module, task: Task, path: Path, *, exporter: str = "auto",
                states: Sequence[str] = ()) -> str:
    """ONNX of ``model`` with a dynamic batch axis; the time loop is unrolled to ``task.seq_len``.
    For an ``lm`` task, ONE step with the state in and out instead (`nas.lm_export`; ``model`` is
    cell.py's stateful ``Model`` and ``states`` names the cell's states, `Spec.states`).

    ``exporter``: ``"torchscript"`` (the legacy exporter, with symbolics added for asinh, sinh and
    cosh), ``"dynamo"`` (torch.export-based; needs ``onnxscript``) or ``"auto"``: TorchScript, then
    dynamo if that fails. TorchScript is the default because it is fast: for a 4-node cell over 8
    steps, 0.9 s against 12 s for dynamo (torch 2.13, 2 CPU cores). Returns the exporter used.
    """
    model.eval()
    if task.objective == "lm":
        if not states:
            raise ValueError("export_onnx: a language model's step needs the names of its states (Spec.states)")
        module: torch.nn.Module = OneStep(model)
        args = step_inputs(model, task)
        names, outputs = step_names(states)
    else:
        module, args, names, outputs = model, example_inputs(task), input_names(task), ["y"]
    common = dict(args=args, f=str(path), input_names=names, output_names=outputs)
    if exporter in ("auto", "torchscript"):
        try:
            _register_symbolics()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(module, **common, dynamo=False, opset_version=ONNX_OPSET,
                                  dynamic_axes={n: {0: "batch"} for n in [*names, *outputs]})
            return "torchscript"
        except Exception:
            if exporter == "torchscript":
                raise
    batch = {0: torch.export.Dim("batch", min=1)}
    # torch.export sees OneStep's *state as one argument: a tuple
    shapes = (batch, (batch,) * len(states)) if task.objective == "lm" else (batch,) * len(names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, **common, dynamo=True, opset_version=DYNAMO_OPSET, verbose=False,
                          dynamic_shapes=shapes, external_data=False)
    return "dynamo"


def onnx_max_difference(model: torch.nn.Module, task: Task, path: Path, batch: int = 5) -> float | None:
    """Largest absolute difference between onnxruntime and torch on a random batch (None without
    onnxruntime); for an ``lm`` task over several steps with the state fed back (`step_max_difference`)."""
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    if task.objective == "lm":
        return step_max_difference(session, model, task, batch=batch)
    inputs = example_inputs(task, batch, seed=1)
    (y,) = session.run(None, {name: t.numpy() for name, t in zip(input_names(task), inputs)})
    with torch.no_grad():
        expected = model(*inputs).numpy()
    return float(abs(y - expected).max())


def export_cell(
    spec: Spec,
    task: Task,
    out_dir: str | Path,
    *,
    state_dict: dict[str, torch.Tensor] | None = None,
    seed: int = 0,
    formats: Sequence[str] = FORMATS,
    title: str = "searched cell",
    manifest: dict[str, Any] | None = None,
    extra_files: dict[str, str] | None = None,
    prompt: str | None = None,
) -> ExportedCell:
    """Write one cell to ``out_dir`` in ``formats`` plus a manifest (see the module docstring).

    Args:
        spec: the cell.
        task: the task it was trained for (shapes of the model around the cell).
        out_dir: created if missing; existing files of the same names are replaced.
        state_dict: trained weights of ``build(spec, task)``; without them ``weights.pt`` holds the
            initial weights of ``build(spec, task, seed=seed)`` (and so the sparsity masks).
        seed: the build seed for initial weights.
        formats: a subset of `FORMATS`; the manifest is always written.
        title: first line of the generated module's docstring.
        manifest: extra manifest entries (study, trial, objectives...).
        extra_files: more text files to write beside the cell, by name (e.g. the search config).
        prompt: for a language model with a vocabulary, the text ``sample.txt`` continues (default:
            `nas.lm_export.sample_prompt`, the vocabulary's first printable token).
    """
    formats = parse_formats(formats)
    if "onnx" in formats and importlib.util.find_spec("onnx") is None:
        raise ConfigError("--format onnx needs the onnx package: pip install onnx onnxscript onnxruntime "
                          "(or leave it out: --format json,torch)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = ExportedCell(out)
    trained = state_dict is not None
    reference = build(spec, task, seed=seed)
    if trained:
        reference.load_state_dict(state_dict)
    reference.eval()
    if "json" in formats:
        result.files["json"] = _write(out / "cell.json", json.dumps(spec.to_dict(), indent=2, sort_keys=True) + "\n")
    source = module_source(spec, task, title=title, module_name="cell")
    if "torch" in formats:
        result.files["torch"] = _write(out / "cell.py", source)
        torch.save(reference.state_dict(), out / "weights.pt")
        result.files["weights"] = out / "weights.pt"
    onnx_entry, sample_entry = None, None
    text_lm = task.objective == "lm" and task.vocab is not None
    if "onnx" in formats or (text_lm and "torch" in formats):
        module_file = out / "cell.py" if "torch" in formats else _write(out / ".cell_for_onnx.py", source)
        standalone = load_module(module_file).Model()
        standalone.load_state_dict(reference.state_dict())
        standalone.eval()
        if module_file.name.startswith("."):
            module_file.unlink()
        if "onnx" in formats:
            onnx_entry = _write_onnx(standalone, spec, task, out / "model.onnx")
            result.files["onnx"] = out / "model.onnx"
        if text_lm:  # what the exported model writes, drawn by cell.py itself
            sample_entry = write_sample(standalone, task, out, prompt=prompt or sample_prompt(task), seed=seed)
            result.files["sample"] = out / SAMPLE_FILE
    for name, text in (extra_files or {}).items():
        result.files[Path(name).stem] = _write(out / name, text)
    costs = cost(spec, task)
    result.manifest = {
        "manifest_version": MANIFEST_VERSION,
        **(manifest or {}),
        "macs": costs["macs"],
        "params": costs["params"],
        "hash": canonical_hash(spec),
        "task": task.to_dict(),
        "weights": "trained" if trained else f"initial (build seed {seed}; the trial kept no trained weights)",
        "package": "nas-hyper",
        "package_version": package_version(),
        "torch_version": torch.__version__,
        "files": {kind: path.name for kind, path in result.files.items()},
        **({"onnx": onnx_entry} if onnx_entry is not None else {}),
        **({"sample": sample_entry} if sample_entry is not None else {}),
    }
    result.files["manifest"] = _write(out / "manifest.json", json.dumps(result.manifest, indent=2) + "\n")
    return result


def _write_onnx(model: torch.nn.Module, spec: Spec, task: Task, path: Path) -> dict[str, Any]:
    """Export ``model`` (cell.py's) to ONNX, check it with onnxruntime; the manifest entry."""
    exporter = export_onnx(model, task, path, states=spec.states)
    entry: dict[str, Any] = {"exporter": exporter, "opset": ONNX_OPSET if exporter == "torchscript" else DYNAMO_OPSET}
    if task.objective == "lm":
        inputs, outputs = step_names(spec.states)
        entry["step"] = {"inputs": inputs, "outputs": outputs, "steps_checked": CHECK_STEPS}
    entry["max_abs_difference"] = onnx_max_difference(model, task, path)
    return entry


def _write(path: Path, text: str) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


# ---- a study's cells ------------------------------------------------------------------------------
def select_trials(
    study: optuna.Study, *, trial: int | None = None, pareto: bool = False, top: int | None = None
) -> list[FrozenTrial]:
    """The trials to export: one by number, the Pareto front, or the ``top`` by validation score."""
    from nas.study import pareto_front, study_metric

    if sum((trial is not None, pareto, top is not None)) != 1:
        raise ConfigError("choose exactly one of --trial N, --pareto, --top K")
    trials = study.get_trials(deepcopy=False)
    if trial is not None:
        found = [t for t in trials if t.number == trial]
        if not found:
            raise ConfigError(f"--trial {trial}: study {study.study_name!r} has trials 0..{len(trials) - 1}")
        if "spec" not in found[0].user_attrs:
            raise ConfigError(f"--trial {trial}: the trial has no cell (state {found[0].state.name})")
        return found
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        raise ConfigError(f"study {study.study_name!r} has no complete trials to export yet")
    if pareto:
        return pareto_front(study)
    if top is not None and top < 1:
        raise ConfigError(f"--top {top}: expected a positive number of cells")
    metric = study_metric(study)
    return sorted(complete, key=lambda t: metric.rank(*t.values))[:top]


def trial_weights(run_dir: Path, trial: FrozenTrial) -> dict[str, torch.Tensor] | None:
    """The best epoch's state dict from the trial's last checkpoint, or None if it kept none."""
    relative = trial.user_attrs.get("checkpoint")
    if not relative:
        return None
    file = RunDir(run_dir).checkpoint_file(relative)
    if not file.is_file():
        return None
    state = torch.load(file, weights_only=False, map_location="cpu")
    return state.get("best_state")  # None before the first epoch ended


def config_dataset(config: Config) -> Any:
    """The dataset of a search config (a `workers.data.Dataset`; cached per process)."""
    from workers.data import load_dataset

    return load_dataset(config.data.name, **config.data.options())


def config_task(config: Config) -> Task:
    """The task of a search config's dataset (shapes of the model around the cell, and the input
    statistics it standardises with)."""
    return config_dataset(config).task


def export_study(
    study: optuna.Study,
    run_dir: Path,
    out_dir: str | Path,
    *,
    config: Config,
    trial: int | None = None,
    pareto: bool = False,
    top: int | None = None,
    formats: Sequence[str] = FORMATS,
    initial_weights: bool = False,
) -> list[ExportedCell]:
    """Export the selected trials of ``study`` to ``out_dir/trial_<N>/`` (see the module docstring).

    When weights are exported (torch, onnx), a trial whose trained weights are gone (its checkpoint
    deleted, or it never finished an epoch) is refused with `ConfigError` naming it, before anything
    is written, unless ``initial_weights``: then it ships its initial weights and its manifest says so.
    """
    from nas.study import study_metric

    formats = parse_formats(formats)
    chosen = select_trials(study, trial=trial, pareto=pareto, top=top)
    weights = {t.number: trial_weights(run_dir, t) for t in chosen}
    gone = [t for t in chosen if weights[t.number] is None]
    if gone and not initial_weights and {"torch", "onnx"} & set(formats):  # JSON alone carries no weights
        numbers = ", ".join(str(t.number) for t in gone)
        where = gone[0].user_attrs.get("checkpoint") or "none was recorded"
        raise ConfigError(f"trial(s) {numbers}: no trained weights to export (checkpoint: {where}, not found); "
                          "export other trials, or pass --initial-weights to export the untrained cell")
    data = config_dataset(config)
    task = data.task
    prompt = dataset_prompt(data)
    out = Path(out_dir)
    exported = []
    comparisons, metric = baseline_comparisons(study), study_metric(study)
    for t in chosen:
        directory = out / f"trial_{t.number}"
        manifest = run_manifest(
            config, data, metric,
            comparison={**NO_COMPARISON, "baseline": t.user_attrs.get("baseline"), **comparisons.get(t.number, {})},
            study=study.study_name, trial=t.number, state=t.state.name,
            val=t.values[0] if t.values else None, test=t.user_attrs.get("test_score"),
            macs=t.values[1] if t.values else None, best_epoch=t.user_attrs.get("best_epoch"),
            epochs=t.user_attrs.get("epochs"), curve=t.user_attrs.get("curve"), seed_runs=t.user_attrs.get(SEED_RUNS),
        )
        exported.append(
            export_cell(
                Spec.from_json(t.user_attrs["spec"]),
                task,
                directory,
                state_dict=weights[t.number],
                seed=config.seed,
                formats=formats,
                title=f"Trial {t.number} of study {study.study_name}",
                manifest=manifest,
                extra_files={"config.yaml": _yaml(config)},
                prompt=prompt,
            )
        )
    return exported


NO_COMPARISON = {"baseline": None, "confirmed": None, "vs_baseline": None}  # keys every manifest has


def run_manifest(
    config: Config,
    data: Any,
    metric: Metric,
    *,
    val: float | None,
    test: float | None,
    macs: float | None,
    best_epoch: int | None,
    epochs: int | None,
    curve: list[float] | None,
    seed_runs: dict[str, Any] | None,
    comparison: dict[str, Any] = NO_COMPARISON,
    study: str | None = None,
    trial: int | None = None,
    state: str | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """The manifest entries of one trained cell, the same keys for a search's trial (`export_study`)
    and a cell trained by `nas import` (`export_trained`): which run, its numbers and their splits,
    the per-seed values behind them (``seed_runs``: whose weights ship), and how to reproduce it."""
    return {
        **comparison,
        "source": source if source is not None else f"study {study}, trial {trial}",
        "study": study,
        "trial": trial,
        "state": state,
        **score_entries(metric, val, test, macs),
        "splits": selection_splits(data, config.train.folds),  # val_score is on "val" (it selects), test_score on "test"
        "best_epoch": best_epoch,
        "epochs": epochs,
        "curve": curve,
        "eval_seeds": config.train.eval_seeds,
        "folds": config.train.folds,
        SEED_RUNS: seed_runs,
        "seed": config.seed,
        "config_hash": config.fingerprint(),
        "reproduce": {
            "train": "nas import cell.json --config config.yaml",
            "search": None if study is None else f"nas search config.yaml --name {study}",
        },
    }


def baseline_comparisons(study: optuna.Study) -> dict[int, dict[str, Any]]:
    """Per scored trial: its baseline tag if it is a known cell, its confirmation over seeds, and
    the best baseline at no more MACs with the validation difference (manifest keys)."""
    from nas.baselines import best_baseline_within
    from nas.confirm import study_scores
    from nas.study import study_metric

    (scores, confirmed), metric = study_scores(study), study_metric(study)
    baselines = [s for s in scores if s.baseline is not None]
    out: dict[int, dict[str, Any]] = {}
    for s in scores:
        entry: dict[str, Any] = {"baseline": s.baseline}
        if confirmed:
            entry["confirmed"] = {"seeds": s.seeds, "val_mean": s.val, "val_sd": s.val_sd,
                                  "test_mean": s.test, "test_sd": s.test_sd}
        rival = best_baseline_within([b for b in baselines if b.number != s.number], s.macs, metric)
        if rival is not None:
            entry["vs_baseline"] = {"baseline": rival.baseline, "trial": rival.number, "macs": rival.macs,
                                    "val": rival.val, "val_delta": s.val - rival.val,
                                    "test_delta": s.test - rival.test, "confirmed": confirmed}
        out[s.number] = entry
    return out


def score_entries(metric: Metric, val: float | None, test: float | None, macs: float | None) -> dict[str, Any]:
    """The manifest's scores: which metric (and its direction), the objectives the study was told
    (validation score, MACs) and the test score at the selected epoch (None: no test split)."""
    return {
        "metric": {"name": metric.name, "direction": metric.direction, "phrase": metric.phrase},
        "objectives": None if val is None else {"val_score": val, "macs": macs},
        "test_score": number_or_none(test),
    }


def _yaml(config: Config) -> str:
    import yaml

    return yaml.safe_dump(config.to_dict(), sort_keys=False)


# ---- reading cells back ---------------------------------------------------------------------------
_NODE_KEYS = {"id", "kind", "combine", "activation", "bias"}
_EDGE_KEYS = {"source", "target", "slot", "linear", "density", "pattern"}


def check_cell_dict(data: Any) -> None:
    """Structural checks of a node-link cell before `Spec.from_dict`, naming the field at fault.

    `Spec.from_dict` checks meaning (kinds, combines, activations, slots, reachability); this catches
    what a hand-written file gets wrong in shape: missing ids, endpoints or slots, wrong types,
    unknown keys (a typo such as ``"activaton"`` would otherwise be ignored), duplicate nodes.
    """
    if not isinstance(data, dict):
        raise SpecError(f"a cell must be a JSON object, got {type(data).__name__}")
    if not isinstance(data.get("graph"), dict):
        raise SpecError("graph: expected an object with version, hidden_size, states, outputs")
    for key in ("nodes", "edges"):
        if not isinstance(data.get(key), list):
            raise SpecError(f"{key}: expected a list of objects")
    ids: set[Any] = set()
    for i, node in enumerate(data["nodes"]):
        if not isinstance(node, dict) or not isinstance(node.get("id"), str):
            raise SpecError(f"nodes[{i}].id: expected every node to be an object with a string id")
        where = f"nodes[{node['id']!r}]"
        if node["id"] in ids:
            raise SpecError(f"{where}.id: duplicate node id")
        ids.add(node["id"])
        unknown = sorted(set(node) - _NODE_KEYS)
        if unknown:
            raise SpecError(f"{where}.{unknown[0]}: unknown key; allowed keys: {sorted(_NODE_KEYS)}")
        if node.get("kind") == "op":
            for key in ("combine", "activation", "bias"):
                if key not in node:
                    raise SpecError(f"{where}.{key}: missing (op nodes need combine, activation and bias)")
    for i, edge in enumerate(data["edges"]):
        if not isinstance(edge, dict):
            raise SpecError(f"edges[{i}]: expected an object with source, target and slot")
        for key in ("source", "target"):
            if edge.get(key) not in ids:
                raise SpecError(f"edges[{i}].{key}: {edge.get(key)!r} is not a node id")
        where = f"edges[{edge['source']!r}->{edge['target']!r}]"
        unknown = sorted(set(edge) - _EDGE_KEYS)
        if unknown:
            raise SpecError(f"{where}.{unknown[0]}: unknown key; allowed keys: {sorted(_EDGE_KEYS)}")
        slot = edge.get("slot")
        if not isinstance(slot, int) or isinstance(slot, bool) or slot < 0:
            raise SpecError(f"{where}.slot: expected the argument position, an integer >= 0, got {slot!r}")


def read_cell_dict(data: Any) -> Spec:
    """A validated Spec from a node-link dict; raises `SpecError` naming the field."""
    check_cell_dict(data)
    return Spec.from_dict(data)


def load_cell(path: str | Path) -> Spec:
    """Read a cell from ``cell.json``, an exported directory (its ``cell.json``) or a generated
    ``cell.py`` (its ``SPEC_JSON``); raises `SpecError` whose message starts with the file and names
    the field at fault.

    Example::

        spec = load_cell("cells/trial_21")
        model = search_spaces.build(spec, task)
    """
    path = Path(path)
    if path.is_dir():
        path = path / "cell.json"
    if not path.is_file():
        raise SpecError(f"{path}: no such cell file")
    try:
        if path.stat().st_size > MAX_CELL_BYTES:
            raise SpecError(f"{path.stat().st_size:,} bytes, more than the {MAX_CELL_BYTES:,} a cell file may have")
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError(f"not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
        if path.suffix == ".py":
            text = _spec_json_of_module(text)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"not valid JSON: {exc}") from exc
        except RecursionError:
            raise SpecError("nested too deeply to be a cell") from None
        return read_cell_dict(data)
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from exc


def _spec_json_of_module(text: str) -> str:
    import ast

    try:
        body = ast.parse(text).body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise SpecError(f"not a Python module ({type(exc).__name__})") from None
    for node in body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "SPEC_JSON" for t in node.targets):
            value = ast.literal_eval(node.value)
            if isinstance(value, str):
                return value
    raise SpecError("SPEC_JSON: no cell JSON in this module (expected a file written by `nas export`)")


def train_cell(spec: Spec, config: Config, *, epochs: int | None = None, console: Any = None) -> Any:
    """Train ``spec`` exactly as a trial of ``config``'s search does: its data, training settings
    (``train.eval_seeds`` runs included), seed, and torch threads (``search.cpus_per_trial``: the
    thread count changes how float sums are split, and so, epochs later, the curve). Returns the
    trainer (`workers.ensemble.make_trainer`: ``history``, ``best``, ``best_state``, ``metric``)."""
    from workers.ensemble import make_trainer

    data = config_dataset(config)
    train = config.train if epochs is None else config.train.updated(epochs=epochs)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.search.threads_per_trial)
    try:
        trainer = make_trainer(spec, data, train, seed=config.seed)
        label, fmt = trainer.metric.label, trainer.metric.fmt
        while trainer.epoch < train.epochs:
            result = trainer.train_epoch()
            if console is not None:
                console.print(
                    f"epoch {result.epoch:>3}  train loss {result.train_loss:.4f}  val {label} {fmt(result.score)}  "
                    f"test {label} {fmt(result.test_score)}"
                )
    finally:
        torch.set_num_threads(threads)  # an in-process caller (tests, notebooks) keeps its own
    return trainer


def export_trained(spec: Spec, config: Config, trainer: Any, out_dir: str | Path, *, source: str,
                   formats: Sequence[str] = FORMATS) -> ExportedCell:
    """Export a cell `train_cell` trained: its best epoch's weights, ``config.yaml``, and a manifest
    with the same keys as a search's export (`run_manifest`)."""
    from workers.ensemble import seed_runs

    data = config_dataset(config)
    best = trainer.best
    manifest = run_manifest(
        config, data, trainer.metric, source=source,
        val=best.score, test=best.test_score, macs=cost(spec, data.task)["macs"],
        best_epoch=best.epoch, epochs=trainer.epoch,
        curve=[r.score for r in trainer.history], seed_runs=seed_runs(trainer),
    )
    return export_cell(spec, data.task, out_dir, state_dict=trainer.best_state, seed=config.seed, formats=formats,
                       title=f"Cell {Path(source).name} trained on {config.data.name}", manifest=manifest,
                       extra_files={"config.yaml": _yaml(config)}, prompt=dataset_prompt(data))


__all__ = [
    "FORMATS",
    "ExportedCell",
    "check_cell_dict",
    "config_dataset",
    "config_task",
    "dataset_prompt",
    "export_cell",
    "example_inputs",
    "export_onnx",
    "export_study",
    "export_trained",
    "load_cell",
    "load_module",
    "parse_formats",
    "run_manifest",
    "read_cell_dict",
    "select_trials",
    "train_cell",
    "trial_weights",
]
