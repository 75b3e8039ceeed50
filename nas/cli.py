"""The ``nas`` command line: ``nas search``, ``nas status`` (and more subcommands as they land).

Exit codes: 0 success, 1 runtime failure, 2 bad input (config, names, paths, addresses), 3 the
study's storage stopped answering (`nas resume` continues), 130 interrupted (Ctrl-C), 143 terminated
(SIGTERM; handled like Ctrl-C).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console

from nas.cluster import use_cluster_token
from nas.errors import ConfigError

# Nothing heavy at import time (torch, Ray, Optuna, the config's registries): `nas --help` and
# `nas status` must start fast, so each handler imports what it needs.

EXIT_BAD_INPUT = 2
EXIT_STORAGE_LOST = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
MAX_IMPORT_PARAMS = 100_000_000  # `nas import --config` refuses cells larger than this (400 MB of weights)

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

Handler = Callable[[argparse.Namespace], int]


def _add_runs_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", default="runs", help="where run directories live (default: runs)")


def _locate(args: argparse.Namespace):  # -> nas.locate.StudyLocation
    """Where the study of run directory ``args.name`` lives (`nas.locate`); no torch import, so
    `nas status` starts fast. A renamed directory is followed, and says so."""
    from nas.locate import locate_study

    location = locate_study(args.name, args.runs_dir, getattr(args, "storage", None))
    if location.renamed:
        err_console.print(f"note: {location.run.root} holds study {location.name!r} (the directory was renamed)",
                          highlight=False, soft_wrap=True)
    return location


# ---- search ---------------------------------------------------------------------------------------
def _add_search(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="run a search from a YAML config")
    p.add_argument("config", help="YAML config file, e.g. configs/quickstart.yaml")
    p.add_argument("--name", help="study name (default: the config's name)")
    p.add_argument("--trials", type=int, help="finished trials to reach (overrides search.trials)")
    p.add_argument("--seed", type=int, help="seed (overrides seed)")
    p.add_argument("--sampler", help="proposer (overrides search.sampler)")
    p.add_argument("--storage", help="Optuna storage URL (default: SQLite in the run directory)")
    p.add_argument("--address", help="Ray cluster address, e.g. auto or HOST:PORT (default: a local cluster)")
    _add_runs_dir(p)
    p.set_defaults(handler=_search)


def _search(args: argparse.Namespace) -> int:
    use_cluster_token(args.address)
    from nas.config import load_config
    from nas.paths import check_dir
    from nas.search import run_search

    config = load_config(
        args.config,
        **{
            "name": args.name,
            "search.trials": args.trials,
            "seed": args.seed,
            "search.sampler": args.sampler,
            "search.storage": args.storage,
        },
    )
    check_dir(args.runs_dir, "--runs-dir")
    if config.search.artifacts and "://" not in config.search.artifacts:
        check_dir(config.search.artifacts, "search.artifacts:")
    args.name = config.name  # for the `nas resume NAME` hint should the storage go away
    outcome = run_search(config, runs_dir=args.runs_dir, address=args.address, console=console)
    return EXIT_INTERRUPTED if outcome.interrupted else 1 if outcome.error else 0


# ---- resume ---------------------------------------------------------------------------------------
def _add_resume(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("resume", help="continue a stopped search (Ctrl-C, kill -9, reboot) where it left off")
    p.add_argument("name", help="study name")
    p.add_argument("--trials", type=int, help="raise the number of finished trials to reach")
    p.add_argument("--storage", help="Optuna storage URL (default: the study's own)")
    p.add_argument("--address", help="Ray cluster address (default: a local cluster)")
    _add_runs_dir(p)
    p.set_defaults(handler=_resume)


def _resume(args: argparse.Namespace) -> int:
    use_cluster_token(args.address)
    from nas.config import parse_config
    from nas.search import run_search

    from nas.locate import NoStudyYet, study_config
    from nas.study import open_study

    try:
        location = _locate(args)
        study = open_study(location.name, location.storage, create=False)
    except NoStudyYet as missing:  # stopped at start-up, before its study existed: start it now
        location, study = missing.location, None
        err_console.print(f"note: {location.run.root} holds no study yet; starting its search from config.yaml",
                          highlight=False, soft_wrap=True)
    config = study_config(location, study)
    updates = {k: v for k, v in (("trials", args.trials), ("storage", args.storage)) if v is not None}
    if updates:
        data = config.to_dict()
        data["search"].update(updates)
        config = parse_config(data, str(location.run.config_file))
    outcome = run_search(config, runs_dir=args.runs_dir, address=args.address, console=console, resume=True,
                         run_dir=location.run.root)
    return EXIT_INTERRUPTED if outcome.interrupted else 1 if outcome.error else 0


# ---- status ---------------------------------------------------------------------------------------
def _add_status(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="table of a study's trials")
    p.add_argument("name", help="study name")
    p.add_argument("--storage", help="Optuna storage URL (default: the study's own)")
    p.add_argument("--all", action="store_true", help="list every trial, not only the last 20")
    _add_runs_dir(p)
    p.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    from rich.table import Table

    from nas.splits import splits_line, study_eval_seeds, study_splits
    from nas.study import DUPLICATE_ATTR, is_repeat, open_study, summarize
    from nas.tables import describe_cell, fit_columns, show_front

    location = _locate(args)
    study = open_study(location.name, location.storage, create=False)
    s = summarize(study)
    metric = s.metric
    trials = study.get_trials(deepcopy=False)
    table = Table(title=f"study {location.name}: {len(trials)} trials")
    for column in ("trial", "state", f"val {metric.label}", "MACs", "epochs", "note", "cell"):
        wraps = column in ("note", "cell")  # long errors and cells wrap rather than being cut
        table.add_column(column, no_wrap=not wraps, overflow="fold" if wraps else "ellipsis")
    shown = trials if args.all else trials[-20:]
    rows = []
    for t in shown:
        score = metric.fmt(t.values[0]) if t.values else "-"
        macs = f"{int(t.user_attrs['macs']):,}" if "macs" in t.user_attrs else "-"
        repeat = is_repeat(t)  # took trial N's result untrained: it holds N's curve, not epochs of its own
        note = (t.user_attrs.get("error") or t.user_attrs.get("interrupted") or t.user_attrs.get("restart")
                or (f"repeat of {t.user_attrs[DUPLICATE_ATTR]}, not trained" if repeat else "")
                or t.user_attrs.get("baseline", ""))
        epochs = "0" if repeat else str(t.user_attrs.get("epochs", "-"))
        rows.append((str(t.number), t.state.name, score, macs, epochs, note, describe_cell(t)))
    console.print(fit_columns(table, rows, flexible={"note", "cell"}))
    best = f"{metric.label} {metric.fmt(s.best_score)} at {s.best_macs:,} MACs" if s.best_score is not None else "-"
    console.print(
        f"complete {s.complete}, pruned {s.pruned}, failed {s.failed}, running {s.running}"
        + (f" ({s.repeats} of them repeats of evaluated cells, not trained)" if s.repeats else "")
        + f"; best {best}; front size {s.front_size}"
    )
    splits = study_splits(study)
    console.print(splits_line(splits), highlight=False, soft_wrap=True)
    seeds = study_eval_seeds(study)
    if seeds > 1:
        console.print(f"each trial's numbers are the mean of {seeds} training seeds (train.eval_seeds: {seeds}); "
                      "the trial's seed_runs attribute holds each seed's", highlight=False, soft_wrap=True)
    show_front(study, console, splits=splits)
    return 0


# ---- benchmark ------------------------------------------------------------------------------------
def _add_benchmark(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("benchmark", help="compare proposers on NAS-Bench-201 with a simulated clock")
    p.add_argument("--proposers", default="random,tpe,rea,rnn", help="comma-separated proposer names")
    p.add_argument("--seeds", type=int, default=30)
    p.add_argument("--budget", type=float, help="simulated seconds (default: 200,000, the published protocol)")
    p.add_argument("--metric", choices=["latency", "model_size"], help="second objective (default: none)")
    p.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100", "imagenet"])
    p.add_argument("--workers", type=int, default=1, help="trials in flight at once")
    p.add_argument("--processes", type=int, default=2)
    p.set_defaults(handler=_benchmark)


def _benchmark(args: argparse.Namespace) -> int:
    from nas.benchmark import DEFAULT_BUDGET_S, best_accuracy, format_table, run_benchmark
    from nas.proposers import PROPOSERS

    proposers = [p.strip() for p in args.proposers.split(",") if p.strip()]
    unknown = [p for p in proposers if p not in PROPOSERS]
    if unknown or args.seeds < 1:
        raise ConfigError(f"unknown proposer(s) {unknown}; choose from {sorted(PROPOSERS)}" if unknown else "--seeds: must be >= 1")
    try:
        results = run_benchmark(
            proposers, seeds=range(args.seeds), processes=args.processes, dataset=args.dataset,
            metric=args.metric, budget_s=args.budget or DEFAULT_BUDGET_S, workers=args.workers,
        )
    except (ImportError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
    console.print(format_table(results, best=best_accuracy(args.dataset)), highlight=False)
    return 0


# ---- export, import, pareto, report ---------------------------------------------------------------
def _load_study(args: argparse.Namespace):  # -> tuple[StudyLocation, optuna.Study]
    """Where the study named on the command line lives, and the study (exit 2 if there is none)."""
    from nas.study import open_study

    location = _locate(args)
    return location, open_study(location.name, location.storage, create=False)


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write discovered cells as JSON, standalone PyTorch, weights and ONNX")
    p.add_argument("name", help="study name")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--trial", type=int, metavar="N", help="one trial by number")
    which.add_argument("--pareto", action="store_true", help="every cell on the Pareto front")
    which.add_argument("--top", type=int, metavar="K", help="the K most accurate complete trials")
    p.add_argument("--out", required=True, help="directory; each cell goes to OUT/trial_<N>/")
    p.add_argument("--format", default="json,torch,onnx", help="comma-separated: json, torch, onnx (default: all)")
    p.add_argument("--initial-weights", action="store_true",
                   help="export a trial whose trained weights are gone with its initial weights (default: refuse)")
    p.add_argument("--storage", help="Optuna storage URL (default: the study's own)")
    _add_runs_dir(p)
    p.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from rich.table import Table

    from nas.export import export_study, parse_formats
    from nas.locate import study_config
    from nas.paths import check_dir
    from nas.study import study_metric

    formats = parse_formats(args.format)
    location, study = _load_study(args)
    config = study_config(location, study)
    check_dir(args.out, "--out")
    cells = export_study(study, location.run.root, args.out, config=config, trial=args.trial, pareto=args.pareto,
                         top=args.top, formats=formats, initial_weights=args.initial_weights)
    table = Table(title=f"exported {len(cells)} cell(s) of {location.name}")
    metric = study_metric(study)
    for column in ("trial", f"val {metric.label}", "MACs", "params", "weights", "directory"):
        table.add_column(column, justify="left" if column in ("weights", "directory") else "right")
    for cell in cells:
        m = cell.manifest
        score = metric.fmt(m["objectives"]["val_score"]) if m.get("objectives") else "-"
        table.add_row(str(m["trial"]), score, f"{m['macs']:,}", f"{m['params']:,}", m["weights"].split(" ")[0],
                      str(cell.directory))
    console.print(table)
    console.print(f"each directory: {' '.join(p.name for p in cells[0].files.values())}", highlight=False)
    return 0


def _add_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="check a cell file (exported or hand-written); train it with --config")
    p.add_argument("cell", help="cell.json, an exported cell directory, or a generated cell.py")
    p.add_argument("--config", help="train the cell as a trial of this search config (data, train, seed)")
    p.add_argument("--epochs", type=int, help="override train.epochs")
    p.add_argument("--out", help="export the trained cell to this directory")
    p.add_argument("--format", default="json,torch,onnx", help="formats for --out (default: all)")
    p.set_defaults(handler=_import)


def _import(args: argparse.Namespace) -> int:
    from nas.codegen import cell_formula
    from nas.config import load_config, parse_config
    from nas.export import config_dataset, export_trained, load_cell, parse_formats, train_cell
    from nas.paths import check_dir
    from nas.splits import eval_seeds_line
    from search_spaces import SpecError, cost

    try:
        spec = load_cell(args.cell)
    except SpecError as exc:
        raise ConfigError(str(exc)) from None
    console.print(f"cell {args.cell}: valid; hidden {spec.hidden_size}, states {', '.join(spec.states)}, "
                  f"{len(spec.op_nodes())} op nodes", highlight=False)
    for line in cell_formula(spec):
        console.print(f"  {line}", highlight=False, markup=False)
    if args.config is None:
        if args.out:
            raise ConfigError("--out needs --config (the data the cell is trained on)")
        return 0
    config = load_config(args.config)
    notes = (eval_seeds_line(config.train), _import_differs(spec, config, args.epochs))
    if args.epochs is not None:  # validated as the config's own, and the exported config.yaml says it
        changed = config.to_dict()
        changed["train"]["epochs"] = args.epochs
        config = parse_config(changed, f"{args.config} with --epochs {args.epochs}")
    formats = parse_formats(args.format)
    if args.out:
        check_dir(args.out, "--out")
    data = config_dataset(config)
    task = data.task
    console.print(f"data: {data.summary()}", highlight=False, soft_wrap=True)
    for line in notes:
        if line:
            console.print(line, highlight=False, soft_wrap=True)
    try:
        costs = cost(spec, task)
        console.print(f"on {config.data.name}: {costs['macs']:,} MACs, {costs['params']:,} parameters")
        too_big = costs["params"] > MAX_IMPORT_PARAMS
        trainer = None if too_big else train_cell(spec, config, console=console)
    except ValueError as exc:  # e.g. a sparsity pattern that does not fit this data's input size
        raise ConfigError(f"{args.cell}: cannot build this cell for {config.data.name}: {exc}") from None
    if trainer is None:
        raise ConfigError(f"{args.cell}: {costs['params']:,} parameters on {config.data.name}, more than the "
                          f"{MAX_IMPORT_PARAMS:,} `nas import` trains; lower the cell's hidden_size")
    best = trainer.best
    metric = trainer.metric
    console.print(f"best epoch {best.epoch}: val {metric.label} {metric.fmt(best.score)}, "
                  f"test {metric.label} {metric.fmt(best.test_score)}")
    if args.out:
        cell = export_trained(spec, config, trainer, args.out, source=str(args.cell), formats=formats)
        console.print(f"wrote {', '.join(p.name for p in cell.files.values())} to {cell.directory}")
    return 0


def _import_differs(spec: Any, config: Any, epochs: int | None) -> str | None:
    """Why this run's curve will differ from the search's trial, when it will (otherwise it is the same,
    float for float: same seed, data order, threads and kernel)."""
    if config.hyper.enabled and config.hyper.warm_start:
        return ("note: the search's trials started from the hypernetwork's generated weights (hyper.warm_start); "
                "this run starts from the seed's initial weights, so its curve differs from the trial's")
    pruned = any(e.pattern == "magnitude" and e.density < 1 for e in spec.linear_edges(1))  # shapes unused
    if epochs is not None and epochs != config.train.epochs and pruned and config.train.prune_until > 0:
        return (f"note: --epochs {epochs} rescales the magnitude-pruning schedule (train.prune_until) of sparse "
                f"cells, so their curve differs from the search's {config.train.epochs}-epoch trial")
    return None


def _add_pareto(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pareto", help="the Pareto front of a study: table, plot (PNG) and CSV/JSON")
    p.add_argument("name", help="study name")
    p.add_argument("--plot", metavar="FILE.png", help="plot every trial, the front, and hypervolume over time")
    p.add_argument("--csv", metavar="FILE", help="write the front as CSV (.csv) or JSON (.json)")
    p.add_argument("--storage", help="Optuna storage URL (default: the study's own)")
    _add_runs_dir(p)
    p.set_defaults(handler=_pareto)


def _pareto(args: argparse.Namespace) -> int:
    from nas.locate import study_config
    from nas.paths import writable_file
    from nas.report import hypervolume_curve, plot_pareto, write_front
    from nas.splits import study_splits
    from nas.study import pareto_front
    from nas.tables import show_front

    location, study = _load_study(args)
    for option, path in (("--csv", args.csv), ("--plot", args.plot)):
        if path:
            writable_file(path, option)
    if pareto_front(study):
        show_front(study, console, splits=study_splits(study, study_config(location, study)))
    else:
        console.print(f"study {args.name} has no complete trials yet")
    if args.csv:
        console.print(f"wrote the front to {write_front(study, args.csv)}")
    if args.plot:
        points = plot_pareto(study, args.plot).points
        curve = hypervolume_curve(study)
        hv = f"{curve[-1][1]:.3f}" if curve else "-"
        console.print(f"wrote {args.plot}: {len(points.front)} on the front, {len(points.dominated)} dominated, "
                      f"{len(points.pruned)} pruned, {points.failed} failed; hypervolume {hv}",
                      highlight=False, soft_wrap=True)
    return 0


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="a Markdown or HTML report: plots, front table, cell drawings")
    p.add_argument("name", help="study name")
    p.add_argument("--out", help="directory (default: RUNS_DIR/NAME/report)")
    p.add_argument("--format", choices=["md", "html"], default="md", help="report format (default: md)")
    p.add_argument("--storage", help="Optuna storage URL (default: the study's own)")
    _add_runs_dir(p)
    p.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from nas.locate import study_config
    from nas.paths import writable_dir
    from nas.report import write_report

    location, study = _load_study(args)
    config = study_config(location, study)
    out = writable_dir(args.out or location.run.root / "report", "--out")
    path = write_report(study, out, fmt=args.format, config=config)
    console.print(f"wrote {path}", highlight=False, soft_wrap=True)
    return 0


# ---- hyper ----------------------------------------------------------------------------------------
def _add_hyper(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hyper", help="train an RNN hypernetwork on a config's task, inspect its ranking")
    hsub = p.add_subparsers(dest="hyper_command", required=True)
    t = hsub.add_parser("train", help="train a hypernetwork over the config's space (SMASH-style)")
    t.add_argument("config", help="YAML config (its data and space sections are used)")
    t.add_argument("--out", required=True, help="checkpoint file to write, e.g. runs/hyper.pt")
    t.add_argument("--steps", type=int, default=4000, help="training steps (default: 4000)")
    t.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    t.set_defaults(handler=_hyper)
    e = hsub.add_parser("eval", help="rank new candidates by generated-weight accuracy")
    e.add_argument("path", help="hypernetwork checkpoint from `nas hyper train`")
    e.add_argument("config", help="YAML config (its data, space and train sections are used)")
    e.add_argument("--candidates", type=int, default=20, help="candidates to sample (default: 20)")
    e.add_argument("--train-epochs", type=int, default=0, help="also train each this long and correlate (default: 0)")
    e.add_argument("--seed", type=int, default=1, help="sampling seed (default: 1)")
    e.set_defaults(handler=_hyper)


def _hyper(args: argparse.Namespace) -> int:
    from nas.config import load_config
    from nas.hyper_cli import hyper_eval, hyper_train
    from nas.paths import writable_file

    config = load_config(args.config)
    if args.hyper_command == "train":
        writable_file(args.out, "--out")
        hyper_train(config, args.out, steps=args.steps, resume=args.resume, console=console)
    else:
        hyper_eval(args.path, config, candidates=args.candidates, train_epochs=args.train_epochs, seed=args.seed,
                   console=console)
    return 0


# ---- entry point ----------------------------------------------------------------------------------
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_search,
    _add_resume,
    _add_status,
    _add_benchmark,
    _add_export,
    _add_import,
    _add_pareto,
    _add_report,
    _add_hyper,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nas", description="Neural architecture search with hypernetworks")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def _obey_sigint() -> None:
    """Let SIGINT raise KeyboardInterrupt even where it was inherited ignored (a script's ``nas search
    ... &``): Ray Tune obeys it once trials run, so Ray's start and the engine build must too, or an
    early interrupt is lost and the whole search runs."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


class _Terminated:
    """SIGTERM handled like Ctrl-C: whatever SIGINT does now (Ray Tune's graceful stop during the
    trials, else KeyboardInterrupt), remembered so the exit code says 143."""

    received = False

    def __call__(self, signum: int, frame: object) -> None:
        type(self).received = True
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler) and handler is not self:
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt


def _obey_sigterm() -> Any:
    """Install `_Terminated` on SIGTERM (main thread only); returns the handler it replaced."""
    if threading.current_thread() is not threading.main_thread():
        return None
    _Terminated.received = False
    return signal.signal(signal.SIGTERM, _Terminated())


def main(argv: Sequence[str] | None = None) -> int:
    _obey_sigint()
    args = build_parser().parse_args(argv)
    previous = _obey_sigterm()
    try:
        code = _run(args)
    finally:
        if previous is not None:  # an in-process caller (tests, notebooks) gets its handler back
            signal.signal(signal.SIGTERM, previous)
    return EXIT_TERMINATED if code == EXIT_INTERRUPTED and _Terminated.received else code


def _run(args: argparse.Namespace) -> int:
    """The subcommand's handler, with its failures turned into one line and an exit code."""
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        err_console.print(_interrupted(args), highlight=False, soft_wrap=True)
        return EXIT_INTERRUPTED
    except _bad_input() as exc:
        err_console.print(f"[red]error:[/] {_escape(str(exc))}", highlight=False)
        return EXIT_BAD_INPUT
    except Exception as exc:
        lost = _storage_lost(exc)
        if lost is None:
            raise
        again = f"{_resume_hint(args)} continues the search" if args.command in SEARCHES else "run the command again"
        err_console.print(f"[red]error:[/] {_escape(str(lost))}; the study in it is intact: once it answers "
                          f"again, {again}", highlight=False)
        return EXIT_STORAGE_LOST


SEARCHES = ("search", "resume")  # the commands a study's `nas resume` continues


def _interrupted(args: argparse.Namespace) -> str:
    """The line after Ctrl-C or SIGTERM: how to continue, where something can be continued."""
    if args.command in SEARCHES:
        return f"interrupted; the study is saved and {_resume_hint(args)} continues it"
    if args.command == "hyper" and args.hyper_command == "train":
        return (f"interrupted; `nas hyper train {args.config} --out {args.out} --resume` continues from its "
                "last checkpoint")
    return "interrupted"


def _resume_hint(args: argparse.Namespace) -> str:
    """The command that continues this study (read late: `nas search` learns the name from its config)."""
    return f"`nas resume {getattr(args, 'name', None) or 'NAME'}`"


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _storage_lost(exc: BaseException) -> BaseException | None:
    """The `nas.study.StorageUnavailable` behind ``exc`` (Ray Tune wraps what its callbacks raise)."""
    study = sys.modules.get("nas.study")
    seen: set[int] = set()
    current: BaseException | None = exc
    while study is not None and current is not None and id(current) not in seen:
        if isinstance(current, study.StorageUnavailable):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _bad_input() -> tuple[type[Exception], ...]:
    """The errors that mean bad input (exit 2): `ConfigError`, and `workers.data.DataError` once the
    data package is loaded (it cannot have been raised before, and importing it costs torch)."""
    data = sys.modules.get("workers.data.base")
    return (ConfigError,) if data is None else (ConfigError, data.DataError)


if __name__ == "__main__":
    sys.exit(main())
