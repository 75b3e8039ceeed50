"""Run a search: config -> run directory -> study -> Ray Tune -> study, with progress and a front table.

The run directory's layout is `workers.run_dir.RunDir`'s; a trial's path through the system is in
the README's "Architecture" section.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from ray.tune import Callback
from rich.console import Console

from nas import confirm
from nas.baselines import enqueue_baselines
from nas.cluster import check_address
from nas.config import Config, ConfigError, changed_keys, load_config
from nas.locate import CONFIG_ATTR
from nas.progress import LiveProgress
from nas.proposers import make_sampler
from nas.ray_bridge import Heartbeat, StudySearcher, TrialCrashes
from nas.splits import STUDY_ATTR, eval_seeds_line
from nas.study import REFERENCE_ATTR, StorageUnavailable, make_storage, open_study, recover_trials, running_trials, stale_trials, summarize
from nas.tables import show_front
from nas.trial_loop import TrialLoop
from workers.data import load_dataset
from workers.data.folds import selection_splits
from workers.faults import maybe_die
from workers.run_dir import RAY_EXPERIMENT, RunDir, experiment_dir, trial_name
from workers.stopping import CurveStopper, make_scheduler
from workers.trial import Cost, TrialConfig

logger = logging.getLogger(__name__)


@dataclass
class SearchOutcome:
    study: optuna.Study
    run_dir: Path
    interrupted: bool
    ran: int
    error: str | None = None


def run_dir_for(name: str, runs_dir: str | Path = "runs") -> Path:
    return RunDir.of(name, runs_dir).root


def stored_config(run_dir: Path) -> Config | None:
    """The validated config a study was created with, or None when there is none."""
    file = RunDir(run_dir).config_file
    return load_config(file) if file.is_file() else None


def check_same_study(config: Config, run_dir: Path) -> None:
    """Refuse to add trials of a different config to an existing study."""
    previous = stored_config(run_dir)
    if previous is not None and previous.fingerprint() != config.fingerprint():
        changed = changed_keys(previous.to_dict(), config.to_dict())
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
    if address:
        check_address(address)
    logging.getLogger("ray.tune.tune").addFilter(_no_restore_hint)  # added once, however often called
    logging.getLogger("ray.tune.execution.tune_controller").addFilter(_no_storage_traceback)
    if ray.is_initialized():
        return
    keep = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    try:
        ray.init(
            # no address: always a fresh in-process cluster, never one a `ray start` left running
            address=address or "local",
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=False,
            configure_logging=True,
        )
    except ConnectionError as exc:
        raise ConfigError(f"--address {address}: cannot reach a Ray cluster there ({exc})") from None
    finally:
        if keep is not None:  # ray.init installs sys.exit on SIGTERM; the caller's handler stops cleanly
            signal.signal(signal.SIGTERM, keep)


def _no_storage_traceback(record: logging.LogRecord) -> bool:
    """Drop Ray Tune's traceback for a storage that stopped answering: the command line says it in
    one line, with `nas resume NAME`."""
    return not (record.exc_info and isinstance(record.exc_info[1], StorageUnavailable))


def _no_restore_hint(record: logging.LogRecord) -> bool:
    """Drop Ray's "Resume experiment with: Tuner.restore(...)": the study is the source of truth, and
    the command line says `nas resume NAME` instead."""
    return "Tuner.restore" not in record.getMessage()


def _check_resources(config: Config) -> None:
    """Refuse budgets no node can satisfy (Ray would wait for them forever)."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    most_cpus = max((n.get("CPU", 0) for n in nodes), default=0)
    most_gpus = max((n.get("GPU", 0) for n in nodes), default=0)
    if config.search.cpus_per_trial > most_cpus:
        raise ConfigError(
            f"search.cpus_per_trial: {config.search.cpus_per_trial:g} CPUs per trial, but the largest node "
            f"has {most_cpus:g}; lower it or add a bigger node"
        )
    if config.search.gpus_per_trial > most_gpus:
        raise ConfigError(
            f"search.gpus_per_trial: {config.search.gpus_per_trial:g} GPUs per trial, but the largest node "
            f"has {most_gpus:g}; set it to 0 on a CPU cluster"
        )


def _prepare_cpu_engine(console: Console) -> None:
    """Build the C++ engine of recurrent cells here, once, before the trials start (each worker on
    this machine would otherwise wait for the build inside its first trial)."""
    from kernels.recurrent import native

    if native.mode() == "fused":
        return
    if not native.is_built():
        console.print("building the C++ CPU engine for recurrent cells (once per machine, about 20 s) …")
    if not native.available():
        console.print(f"[yellow]C++ CPU engine unavailable, candidates train on the TorchScript path:[/] "
                      f"{native.build_error()}")


def run_search(
    config: Config,
    *,
    runs_dir: str | Path = "runs",
    address: str | None = None,
    console: Console | None = None,
    resume: bool = False,
    trainable: Callable[[dict[str, Any]], None] | None = None,
    run_dir: Path | None = None,
) -> SearchOutcome:
    """Run (or continue) the study of ``config`` until it has ``search.trials`` finished trials.

    Nothing is written until the config, the storage URL, the cluster address, the resources, the
    sampler and the stopper have been checked. ``resume`` treats every trial left RUNNING as
    interrupted (one driver per SQLite study); without it, only trials whose driver is known dead are
    recovered. ``trainable`` replaces the candidate trainer (benchmarks measure the stack's overhead
    with a trivial one). ``run_dir`` is the study's directory when it is not ``runs_dir/config.name``
    (a directory renamed after its search: `nas.locate`).
    """
    from ray import tune

    from workers.trainable import train_candidate

    console = console or Console()
    run = RunDir(Path(run_dir).resolve()) if run_dir is not None else RunDir.of(config.name, runs_dir)
    check_same_study(config, run.root)
    data = load_dataset(config.data.name, **config.data.options())
    metric = data.scoring(config.train.metric)
    if config.train.steps_per_epoch is not None and data.task.objective != "lm":
        raise ConfigError(f"train.steps_per_epoch: caps the bptt windows of a language model's epoch; "
                          f"{config.data.name!r} is not text: remove it (an epoch is one pass over the sequences)")
    splits = selection_splits(data, config.train.folds)
    space = config.space.make()
    storage_url = config.search.storage or run.storage_url
    storage = make_storage(storage_url) if config.search.storage or run.study_db.exists() else None
    existing = _existing_trials(storage, config.name)
    if existing and _finished(config, storage, console):
        study = open_study(config.name, storage, create=False)
        if _confirmation_jobs(config, study):
            _init_ray(address)
        interrupted = not conclude(config, study, console)
        return SearchOutcome(study, run.root, interrupted, 0)

    cost_line = eval_seeds_line(config.train)
    if cost_line:  # the price of selecting on a mean, before anything starts
        console.print(cost_line, highlight=False, soft_wrap=True)
    _init_ray(address)
    _check_resources(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = make_sampler(
            config.search.sampler,
            seed=config.seed + existing,  # a continued study must not replay the proposals of its first run
            space=space,
            options=config.search.sampler_options,
            state_dir=run.proposer_dir,
        )
    scheduler = make_scheduler(config.stopping.policy, metric="score", scoring=metric,  # direction and bounds
                               reference=data.chance_score(metric),  # where the study's hypervolume starts
                               max_epochs=config.train.epochs, options=config.stopping.options)
    _restore_stopper(scheduler, run.stopper_state)
    if config.search.gpus_per_trial == 0:
        _prepare_cpu_engine(console)

    run.write_config(config.to_dict())  # the first write
    maybe_die("startup")
    study = open_study(config.name, storage or make_storage(storage_url), sampler=sampler, metric=metric)
    study.set_user_attr(STUDY_ATTR, splits)  # which split is behind each reported score
    if REFERENCE_ATTR not in study.user_attrs:  # where hypervolumes of an unbounded metric start
        study.set_user_attr(REFERENCE_ATTR, data.chance_score(metric))
    if CONFIG_ATTR not in study.user_attrs:  # what `nas resume` checks an edited config.yaml against
        study.set_user_attr(CONFIG_ATTR, config.to_dict())
    maybe_die("study")
    recovered = recover_trials(study, running_trials(study) if resume else stale_trials(study), run)
    if recovered:
        console.print(f"[yellow]trials {recovered} were left running by a stopped driver; continuing them")
    added = enqueue_baselines(study, space.known_cells(config.search.baselines))
    if added:
        console.print(f"baselines first, trained with the same recipe: {', '.join(added)}")
    done = summarize(study).finished
    remaining = config.search.trials - done
    if remaining <= 0:
        console.print(f"study {config.name!r} already has {done} finished trials (of {config.search.trials}); nothing to run")
        interrupted = not conclude(config, study, console)
        return SearchOutcome(study, run.root, interrupted=interrupted, ran=0)

    artifacts = run.artifacts(config.search.artifacts)
    budget_s = config.search.time_budget_s
    deadline = None if budget_s is None else time.monotonic() + budget_s
    searcher = StudySearcher(
        TrialLoop(study, space, data.task, budget=config.search.trials, deadline=deadline),
        _trial_template(config),
        artifacts=experiment_dir(artifacts),
        run_dir=run,
        hyper=_start_hyper(config, space, data, run, console),
    )
    progress = LiveProgress(searcher.counts, total=config.search.trials, done_before=done, console=console, metric=metric)
    max_concurrent = _max_concurrent(config)
    tuner = tune.Tuner(
        tune.with_resources(trainable or tune.with_parameters(train_candidate, data=data),  # loaded once, here
                            {"cpu": config.search.cpus_per_trial, "gpu": config.search.gpus_per_trial}),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=remaining,
            max_concurrent_trials=max_concurrent,
            reuse_actors=True,
            trial_name_creator=_trial_folder,
            trial_dirname_creator=_trial_folder,
        ),
        run_config=tune.RunConfig(
            name=RAY_EXPERIMENT,
            storage_path=artifacts,
            verbose=0,
            callbacks=[progress, Heartbeat(searcher), TrialCrashes(searcher), SaveStopper(scheduler, run.stopper_state)],
            # num_to_keep would force an experiment snapshot at every epoch checkpoint (seconds per
            # trial on 2 cores); the searcher deletes a finished trial's older checkpoints instead.
            checkpoint_config=tune.CheckpointConfig(),
            failure_config=tune.FailureConfig(max_failures=config.search.max_failures),
        ),
    )
    console.print(
        f"search [bold]{config.name}[/]: {remaining} trials to run ({done} done), space {space.name}, "
        f"sampler {config.search.sampler}, stopping {config.stopping.policy}, {max_concurrent} at a time; "
        f"study {storage_url}"
    )
    interrupted = _fit(tuner, progress, searcher)
    _print_outcome(config, study, searcher, interrupted, console, run.root.name)
    if interrupted:
        show_front(study, console)
    else:
        interrupted = not conclude(config, study, console)
    return SearchOutcome(study, run.root, interrupted=interrupted, ran=searcher.counts.started, error=searcher.gave_up)


def _existing_trials(storage: optuna.storages.BaseStorage | None, name: str) -> int:
    if storage is None:
        return 0
    try:
        return len(storage.get_all_trials(storage.get_study_id_from_name(name), deepcopy=False))
    except KeyError:
        return 0


def _finished(config: Config, storage: optuna.storages.BaseStorage, console: Console) -> bool:
    """Whether the study already holds its budget of finished trials and runs none (says so)."""
    summary = summarize(open_study(config.name, storage, create=False))
    if summary.finished < config.search.trials or summary.running:
        return False
    console.print(f"study {config.name!r} is finished: {summary.finished}/{config.search.trials} trials; "
                  "nothing to run (raise --trials to run more)")
    return True


def _trial_template(config: Config) -> TrialConfig:
    """What every trial of ``config`` shares; the searcher fills in the proposal."""
    return TrialConfig(
        spec="", data={"name": config.data.name, **config.data.options()}, train=config.train, seed=config.seed,
        number=-1, cost=Cost(0, 0), threads=config.search.threads_per_trial,
    )


def _trial_folder(trial: Any) -> str:
    number = trial.config.get("number")
    return trial_name(number) if number is not None else f"trial_{trial.trial_id}"


def _max_concurrent(config: Config) -> int:
    import ray

    cpus = ray.cluster_resources().get("CPU", 1)
    return config.search.max_concurrent or max(1, int(cpus // config.search.cpus_per_trial))


def _start_hyper(config: Config, space: Any, data: Any, run: RunDir, console: Console) -> Any:
    """The hypernetwork bridge when ``hyper.enabled`` (trained before the search if so configured)."""
    if not config.hyper.enabled:
        return None
    from workers.hyper_bridge import HyperBridge

    if config.hyper.when == "before":
        console.print(f"training the hypernetwork ({config.hyper.train_steps} steps) before the search …")
    return HyperBridge(config.hyper, space, data, run, name=f"hyper-{config.name}-{os.getpid()}")


def _fit(tuner: Any, progress: LiveProgress, searcher: StudySearcher) -> bool:
    """Run the trials; True when interrupted (Ctrl-C, or trials left running)."""
    interrupted = False
    main_thread = threading.current_thread() is threading.main_thread()
    sigint = signal.getsignal(signal.SIGINT) if main_thread else None
    progress.start()
    try:
        tuner.fit()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if sigint is not None:  # Ray Tune leaves its own handler behind; Ctrl-C/SIGTERM must work afterwards
            signal.signal(signal.SIGINT, sigint)
        progress.stop()
        if searcher.hyper is not None:
            searcher.hyper.save()
        try:
            left = recover_trials(searcher.study, searcher.live_trials())
        except StorageUnavailable:  # the storage is gone: `nas resume` recovers the trials instead
            left = []
        interrupted = interrupted or bool(left)
    return interrupted


def _print_outcome(config: Config, study: optuna.Study, searcher: StudySearcher, interrupted: bool,
                   console: Console, directory: str) -> None:
    summary = summarize(study)
    console.print(
        f"finished {summary.finished}/{config.search.trials}: {summary.complete} complete, "
        f"{summary.pruned} pruned, {summary.failed} failed"
        + (f" [yellow](interrupted; `nas resume {directory}` continues)" if interrupted else "")
    )
    for line in searcher.counts.errors[-5:]:
        console.print(f"[red]failed[/] {line}")
    if searcher.gave_up:
        console.print(f"[red]error:[/] {searcher.gave_up}")
    if searcher.exhausted:
        console.print(f"note: {searcher.exhausted}")


def _confirmation_jobs(config: Config, study: optuna.Study) -> list:
    if config.search.confirm == 0:
        return []
    seeds = [config.seed + k for k in range(1, config.search.confirm + 1)]
    return confirm.pending(study, confirm.targets(study, config.search.confirm_top), seeds)


def conclude(config: Config, study: optuna.Study, console: Console) -> bool:
    """After the search: confirm the top front cells and the baselines over ``search.confirm`` more
    seeds (resuming a confirmation already begun), then show the front and how the best found cell
    compares with the best baseline. False when Ctrl-C stopped the confirmation."""
    jobs = _confirmation_jobs(config, study)
    if jobs:
        from rich.progress import Progress

        cells = len({t.number for t, _ in jobs})
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task(f"confirming {cells} cells over {config.search.confirm} more seeds", total=len(jobs))
            try:
                confirm.run(study, jobs, data={"name": config.data.name, **config.data.options()},
                            train=config.train.model_dump(), cpus_per_job=config.search.cpus_per_trial,
                            on_done=lambda: bar.advance(task))
            except KeyboardInterrupt:
                console.print("[yellow]confirmation interrupted; `nas resume` finishes it")
                show_front(study, console)
                return False
    show_front(study, console)
    return True


def _restore_stopper(scheduler: object, path: Path) -> None:
    """Give a stateful stopper back what it learned in earlier runs of this study."""
    if not isinstance(scheduler, CurveStopper) or not path.is_file():
        return
    try:
        scheduler.restore(str(path))
    except Exception as exc:
        raise ConfigError(
            f"the early-stopping state {path} is corrupt ({type(exc).__name__}: {exc}); "
            "delete it to let the stopper start afresh (the study itself is intact)"
        ) from None


class SaveStopper(Callback):
    """Checkpoint a stateful stopper beside the study after every finished trial (atomically)."""

    def __init__(self, scheduler: object, path: Path) -> None:
        self.scheduler = scheduler if isinstance(scheduler, CurveStopper) else None
        self.path = path

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self.scheduler is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        self.scheduler.save(str(tmp))
        maybe_die("checkpoint")
        os.replace(tmp, self.path)

    def __getstate__(self) -> dict[str, Any]:
        return {"scheduler": None, "path": self.path}
