"""The ``nas`` command line: ``nas search``, ``nas status`` (and more subcommands as they land).

Exit codes: 0 success, 1 runtime failure, 2 bad input (config, names, addresses), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console

from nas.config import ConfigError, load_config

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

Handler = Callable[[argparse.Namespace], int]


def _add_runs_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", default="runs", help="where run directories live (default: runs)")


def _study_location(args: argparse.Namespace) -> tuple[Path, str]:
    """(run directory, storage URL) of an existing study named on the command line."""
    from nas.search import run_dir_for, stored_config
    from nas.study import default_storage

    run_dir = run_dir_for(args.name, args.runs_dir)
    config = stored_config(run_dir)
    storage = getattr(args, "storage", None) or (config.search.storage if config else None)
    if storage is None:
        if not (run_dir / "study.db").is_file():
            raise ConfigError(f"no study named {args.name!r} in {args.runs_dir}/ (looked for {run_dir / 'study.db'})")
        storage = default_storage(run_dir)
    return run_dir, storage


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
    outcome = run_search(config, runs_dir=args.runs_dir, address=args.address, console=console)
    return EXIT_INTERRUPTED if outcome.interrupted else 0


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

    from nas.progress import describe_cell, fit_columns, front_table
    from nas.study import open_study, pareto_front, summarize

    _, storage = _study_location(args)
    try:
        study = open_study(args.name, storage, create=False)
    except KeyError:
        raise ConfigError(f"no study named {args.name!r} in {storage}") from None
    s = summarize(study)
    trials = study.get_trials(deepcopy=False)
    table = Table(title=f"study {args.name}: {len(trials)} trials")
    for column in ("trial", "state", "val acc", "MACs", "epochs", "note", "cell"):
        table.add_column(column, no_wrap=True, overflow="ellipsis")
    shown = trials if args.all else trials[-20:]
    rows = []
    for t in shown:
        acc = f"{t.values[0]:.4f}" if t.values else "-"
        macs = f"{int(t.user_attrs['macs']):,}" if "macs" in t.user_attrs else "-"
        note = t.user_attrs.get("error") or t.user_attrs.get("interrupted") or ""
        rows.append((str(t.number), t.state.name, acc, macs, str(t.user_attrs.get("epochs", "-")), note, describe_cell(t)))
    console.print(fit_columns(table, rows, flexible={"note", "cell"}))
    best = f"{s.best_accuracy:.4f} at {s.best_macs:,} MACs" if s.best_accuracy is not None else "-"
    console.print(
        f"complete {s.complete}, pruned {s.pruned}, failed {s.failed}, running {s.running}; best {best}; "
        f"front size {s.front_size}"
    )
    front = pareto_front(study)
    if front:
        console.print(front_table(front))
    return 0


# ---- entry point ----------------------------------------------------------------------------------
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_search, _add_status]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nas", description="Neural architecture search with hypernetworks")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ConfigError as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        err_console.print("interrupted; the study is saved and `nas resume` continues it")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
