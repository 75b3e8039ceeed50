"""Run a search: config -> run directory -> study -> Ray Tune -> study, with progress and a front table.

Layout of a run directory (``runs/<name>/`` by default)::

    config.yaml      the validated config the study was created with
    study.db         the Optuna study (SQLite), unless --storage points elsewhere
    proposer/        state of stateful proposers (the RNN controller)
    ray/             Ray Tune's experiment folder: trial logs and epoch checkpoints
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
import yaml
from rich.console import Console

from nas.config import Config, ConfigError, parse_config
from nas.progress import LiveProgress, front_table
from nas.proposers import make_sampler
from nas.ray_bridge import StudySearcher
from nas.study import default_storage, fail_stale_trials, open_study, pareto_front, summarize
from workers.data import load_dataset

logger = logging.getLogger(__name__)
CONFIG_FILE = "config.yaml"


@dataclass
class SearchOutcome:
    study: optuna.Study
    run_dir: Path
    interrupted: bool
    ran: int


def run_dir_for(name: str, runs_dir: str | Path = "runs") -> Path:
    return Path(runs_dir) / name


def stored_config(run_dir: Path) -> Config | None:
    file = run_dir / CONFIG_FILE
    if not file.is_file():
        return None
    return parse_config(yaml.safe_load(file.read_text()), str(file))


def check_same_study(config: Config, run_dir: Path) -> None:
    """Refuse to add trials of a different config to an existing study."""
    previous = stored_config(run_dir)
    if previous is not None and previous.fingerprint() != config.fingerprint():
        old, new = previous.to_dict(), config.to_dict()
        changed = [
            f"{section}.{key}"
            for section in ("data", "space", "train", "stopping", "search")
            for key in sorted(set(old[section]) | set(new[section]))
            if old[section].get(key) != new[section].get(key)
        ] + (["seed"] if old["seed"] != new["seed"] else [])
        raise ConfigError(
            f"study {config.name!r} in {run_dir} was created with a different config "
            f"(changed: {', '.join(changed) or 'unknown'}); use --name NEW_NAME for a new study, "
            f"or `nas resume {config.name}` to continue the old one"
        )


def _init_ray(address: str | None) -> None:
    import ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # a failed candidate's last report carries ``error`` and no ``accuracy``; that is expected
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    if ray.is_initialized():
        return
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=False,
            configure_logging=True,
        )
    except ConnectionError as exc:
        raise ConfigError(f"--address {address}: cannot reach a Ray cluster there ({exc})") from None


def run_search(
    config: Config,
    *,
    runs_dir: str | Path = "runs",
    address: str | None = None,
    console: Console | None = None,
) -> SearchOutcome:
    """Run (or continue) the study of ``config`` until it has ``search.trials`` finished trials."""
    from ray import tune

    from workers.stopping import make_scheduler
    from workers.trainable import train_candidate

    console = console or Console()
    run_dir = run_dir_for(config.name, runs_dir).resolve()
    check_same_study(config, run_dir)
    data = load_dataset(config.data.name, **config.data.options())
    space = config.space.make()
    storage = config.search.storage or default_storage(run_dir)

    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / CONFIG_FILE).exists():
        tmp = run_dir / (CONFIG_FILE + ".tmp")
        tmp.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        os.replace(tmp, run_dir / CONFIG_FILE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = make_sampler(
            config.search.sampler,
            seed=config.seed,
            space=space,
            options=config.search.sampler_options,
            state_dir=run_dir / "proposer",
        )
    study = open_study(config.name, storage, sampler=sampler)
    stale = fail_stale_trials(study)
    if stale:
        console.print(f"[yellow]trials {stale} were left running by a stopped driver; they will be run again")
    done = summarize(study).finished
    remaining = config.search.trials - done
    if remaining <= 0:
        console.print(f"study {config.name!r} already has {done} finished trials (of {config.search.trials}); nothing to run")
        return SearchOutcome(study, run_dir, interrupted=False, ran=0)

    _init_ray(address)
    import ray

    cpus = ray.cluster_resources().get("CPU", 1)
    max_concurrent = config.search.max_concurrent or max(1, int(cpus // config.search.cpus_per_trial))
    searcher = StudySearcher(
        study,
        space,
        data.task,
        {
            "data": {"name": config.data.name, **config.data.options()},
            "train": config.train.model_dump(),
            "seed": config.seed,
            "threads": max(1, int(config.search.cpus_per_trial)),
        },
        epochs=config.train.epochs,
    )
    scheduler = make_scheduler(
        config.stopping.policy,
        metric="accuracy",
        mode="max",
        max_epochs=config.train.epochs,
        options=config.stopping.options,
    )
    progress = LiveProgress(searcher.counts, total=config.search.trials, done_before=done, console=console)
    resources = {"cpu": config.search.cpus_per_trial, "gpu": config.search.gpus_per_trial}
    tuner = tune.Tuner(
        tune.with_resources(train_candidate, resources),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=remaining,
            max_concurrent_trials=max_concurrent,
            reuse_actors=True,
            trial_name_creator=lambda t: f"trial_{t.config.get('optuna_number', t.trial_id)}",
            trial_dirname_creator=lambda t: f"trial_{t.config.get('optuna_number', t.trial_id)}",
        ),
        run_config=tune.RunConfig(
            name="ray",
            storage_path=str(run_dir),
            verbose=0,
            callbacks=[progress],
            # num_to_keep would force an experiment snapshot at every epoch checkpoint (seconds per
            # trial on 2 cores); epoch checkpoints of these small models are a few kB each.
            checkpoint_config=tune.CheckpointConfig(),
            failure_config=tune.FailureConfig(max_failures=config.search.max_failures),
        ),
    )
    console.print(
        f"search [bold]{config.name}[/]: {remaining} trials to run ({done} done), space {space.name}, "
        f"sampler {config.search.sampler}, stopping {config.stopping.policy}, {max_concurrent} at a time; "
        f"study {storage}"
    )
    interrupted = False
    progress.start()
    try:
        tuner.fit()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.stop()
        left = fail_stale_trials(study)
        interrupted = interrupted or bool(left)
    summary = summarize(study)
    console.print(
        f"finished {summary.finished}/{config.search.trials}: {summary.complete} complete, "
        f"{summary.pruned} pruned, {summary.failed} failed"
        + (" [yellow](interrupted; `nas resume` continues)" if interrupted else "")
    )
    for line in searcher.counts.errors[-5:]:
        console.print(f"[red]failed[/] {line}")
    front = pareto_front(study)
    if front:
        console.print(front_table(front))
    return SearchOutcome(study, run_dir, interrupted=interrupted, ran=searcher.counts.started)
