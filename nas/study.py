"""The Optuna study behind a search: where it lives, its objectives, its Pareto front.

The study is the single source of truth: every proposal is an Optuna trial with the candidate's Spec
and cost in its user attributes, and every outcome is told back to it as COMPLETE (validation
score, MACs), PRUNED (stopped early, with its partial curve) or FAIL (with the error). The score is
the task's metric on the validation split (`workers.metrics`), maximised or minimised as the metric
says; the study records which metric in its user attr ``metric``.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial, TrialState

try:  # Optuna's RDB internals, for writing several attributes in one transaction (`set_user_attrs`)
    from optuna.storages._rdb import models as _rdb_models
    from optuna.storages._rdb.storage import _create_scoped_session as _rdb_session
except ImportError:  # another Optuna layout: one write per attribute
    _rdb_models = _rdb_session = None

from nas.errors import ConfigError
from workers.front import hypervolume
from workers.metrics import METRICS, Metric, get_metric
from workers.run_dir import TRAINER_FILE, RunDir, experiment_dir, trial_dir

METRIC_ATTR = "metric"  # study user attr: the name of the metric behind the first objective
REFERENCE_ATTR = "reference_score"  # study user attr: the score hypervolumes are measured from

optuna.logging.set_verbosity(logging.WARNING)


HEARTBEAT_INTERVAL = 5  # seconds between a driver's "still running" marks on its trials
GRACE_PERIOD = 30  # seconds without a mark before another driver may recover a trial


CREATE_ATTEMPTS = 5
# what SQLite and PostgreSQL say when two processes create Optuna's tables at the same moment
_CREATION_RACE = ("UNIQUE constraint failed", "UniqueViolation", "duplicate key", "already exists", "database is locked")


class StorageError(ConfigError):
    """A storage URL that cannot be opened; the message names the URL and the reason."""


STORAGE_RETRY_S = 60.0  # how long a driver waits for a lost storage (NAS_STORAGE_RETRY_S overrides)


class StorageUnavailable(RuntimeError):
    """The storage stopped answering for longer than the retry budget (exit 3): the study in it is
    intact, and `nas resume NAME` continues once it answers again."""

    def __init__(self, url: str, waited_s: float, reason: str) -> None:
        super().__init__(f"lost the study's storage {url} for {waited_s:.0f} s ({reason})")
        self.url = url


def _connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` means the database went away (worth waiting for), not bad data."""
    lost = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlalchemy.exc.DisconnectionError)
    if isinstance(exc, lost) or getattr(exc, "connection_invalidated", False):
        return True
    cause = exc.__cause__ or exc.__context__
    return isinstance(exc, optuna.exceptions.StorageInternalError) and cause is not None and _connection_lost(cause)


def _safe_url(url: str) -> str:
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL sqlalchemy parses: say it as given
        return url


class RetryingStorage(optuna.storages.RDBStorage):
    """An RDB storage whose calls wait for a lost database (a restarted server, a dropped network)
    for up to ``retry_s`` seconds, then raise `StorageUnavailable`; later calls then fail at once.
    Results that arrive meanwhile wait in the driver, so nothing reported is lost."""

    retry_s: float = STORAGE_RETRY_S
    _gone: StorageUnavailable | None = None

    def call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """``method(*args, **kwargs)``, retried while the connection is lost."""
        if self._gone is not None:
            raise self._gone
        start, pause = time.monotonic(), 0.5
        while True:
            try:
                return method(*args, **kwargs)
            except Exception as exc:
                if not _connection_lost(exc):
                    raise
                waited = time.monotonic() - start
                if waited + pause > self.retry_s:
                    reason = (str(exc.__cause__ or exc).strip().splitlines() or [type(exc).__name__])[0]
                    self._gone = StorageUnavailable(_safe_url(self.url), waited, reason[:200])
                    raise self._gone from None
                if pause == 0.5:  # once per outage
                    logging.getLogger(__name__).warning("storage %s unreachable; retrying for up to %.0f s",
                                                        _safe_url(self.url), self.retry_s)
                time.sleep(pause)
                self.engine.dispose()  # reconnect from scratch
                pause = min(pause * 2, 5.0)


# every call that talks to the database (Optuna's storage API and heartbeats)
_RETRIED = ("create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
            "get_study_id_from_name", "get_study_name_from_id", "get_study_directions", "get_study_user_attrs",
            "get_study_system_attrs", "get_all_studies", "create_new_trial", "set_trial_param",
            "get_trial_id_from_study_id_trial_number", "get_trial_number_from_id", "get_trial_param",
            "set_trial_state_values", "set_trial_intermediate_value", "set_trial_user_attr",
            "set_trial_system_attr", "get_trial", "get_all_trials", "get_best_trial", "record_heartbeat",
            "_get_stale_trial_ids", "get_n_trials", "_get_trials")


def _retried(name: str) -> Any:
    method = getattr(optuna.storages.RDBStorage, name)

    def call(self: RetryingStorage, *args: Any, **kwargs: Any) -> Any:
        return self.call(method, self, *args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = method.__doc__
    return call


for _name in _RETRIED:
    if hasattr(optuna.storages.RDBStorage, _name):
        setattr(RetryingStorage, _name, _retried(_name))


def default_storage(run_dir: Path) -> str:
    """SQLite file inside the run directory: one driver, no server."""
    return RunDir(run_dir).storage_url


def make_storage(url: str) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage (SQLite, PostgreSQL, MySQL) with heartbeats, so trials of a driver
    that died are recognised and recovered by the next one."""
    for attempt in range(CREATE_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = RetryingStorage(
                    url,
                    heartbeat_interval=HEARTBEAT_INTERVAL,
                    grace_period=GRACE_PERIOD,
                    engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None,
                )
            if url.startswith("sqlite"):
                _fast_sqlite(storage)
            storage.retry_s = float(os.environ.get("NAS_STORAGE_RETRY_S", STORAGE_RETRY_S))
            return storage
        except Exception as exc:  # sqlalchemy raises many kinds; all mean "cannot use this URL"
            text = str(exc)
            if attempt + 1 < CREATE_ATTEMPTS and any(m in text for m in _CREATION_RACE):
                time.sleep(0.5 * (attempt + 1))  # another process is creating the tables right now
                continue
            reason = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
            raise StorageError(f"storage {url!r} cannot be opened: {reason}") from None
    raise AssertionError("unreachable")


def _fast_sqlite(storage: optuna.storages.RDBStorage) -> None:
    """WAL journal with synchronous=NORMAL: a commit no longer waits for the disk (about 1 ms each,
    and a trial makes ~30 of them), yet a killed process loses nothing committed; only a power cut
    can lose the last few transactions. Readers (nas status, dashboards) never block the driver."""

    @sqlalchemy.event.listens_for(storage.engine, "connect")
    def _pragmas(connection, _record):  # noqa: ANN001
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    storage.engine.dispose()  # connections opened before the listener reconnect with the pragmas


def open_study(
    name: str,
    storage: str | optuna.storages.BaseStorage,
    *,
    sampler: optuna.samplers.BaseSampler | None = None,
    create: bool = True,
    metric: Metric | None = None,
) -> optuna.Study:
    """Create or load the two-objective study ``name``: the validation ``metric`` (accuracy by
    default) in its direction, MACs down. Raises `ConfigError` when the study exists and scores its
    trials by another metric (its trials could not be compared with the new ones)."""
    if isinstance(storage, str):
        storage = make_storage(storage)
    if not create:
        return optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    metric = metric or METRICS["accuracy"]
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=sampler,
        directions=[metric.direction, "minimize"],
        load_if_exists=True,
    )
    held = study.user_attrs.get(METRIC_ATTR)
    if held is None and study.directions[0].name.lower() == metric.direction:
        study.set_user_attr(METRIC_ATTR, metric.name)
        with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in use
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([metric.name, "macs"])
    elif held != metric.name:
        raise ConfigError(
            f"study {name!r} scores its trials by {held or 'accuracy'}, this config by {metric.name}: "
            "set train.metric to match, or give the search another name"
        )
    return study


def study_metric(study: optuna.Study) -> Metric:
    """The metric behind the study's first objective (accuracy for studies older than the attr)."""
    return get_metric(study.user_attrs.get(METRIC_ATTR, "accuracy"))


DUPLICATE_ATTR = "duplicate_of"  # on a trial that repeated an evaluated cell: the original's number


def is_repeat(trial: FrozenTrial) -> bool:
    """Whether ``trial`` repeated a cell already evaluated and took that cell's result untrained
    (completed or stopped like the original); the original stands for the cell everywhere."""
    return DUPLICATE_ATTR in trial.user_attrs and trial.state in (TrialState.COMPLETE, TrialState.PRUNED)


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """Completed trials that no other completed trial dominates, best score first (then MACs); one
    trial per cell: a repeat of an evaluated cell (`is_repeat`) is left to the original."""
    metric = study_metric(study)
    cells = [t for t in study.best_trials if not is_repeat(t)]
    return sorted(cells, key=lambda t: metric.rank(*t.values))


def hypervolume_2d(points: Sequence[tuple[float, float]], reference: tuple[float, float], metric: Metric | None = None) -> float:
    """Area dominated by (score, cost) ``points`` -- the score in ``metric``'s direction (accuracy:
    up), the cost down -- and bounded by ``reference`` (a worst score and a worst cost)."""
    orient = (metric or METRICS["accuracy"]).oriented
    return hypervolume(((orient(s), c) for s, c in points), orient(reference[0]), reference[1])


def reference_score(metric: Metric, scores: Sequence[float], recorded: float | None = None) -> float:
    """The score a hypervolume is measured from: the metric's worst value where it is bounded
    (accuracy: 0); else the ``recorded`` one (the study's ``reference_score``, the score of a
    model that ignores its input: log2(V) bits per character), else the worst of ``scores``."""
    if math.isfinite(metric.worst):
        return metric.worst
    if recorded is not None and math.isfinite(recorded):
        return recorded
    finite = [s for s in scores if math.isfinite(s)]
    return min(finite, key=metric.oriented) if finite else 0.0


@dataclass
class StudySummary:
    complete: int
    pruned: int
    failed: int
    running: int
    metric: Metric
    best_score: float | None
    best_macs: int | None
    front_size: int
    repeats: int = 0  # complete or pruned trials that took an evaluated cell's result untrained (`is_repeat`)

    @property
    def finished(self) -> int:
        return self.complete + self.pruned + self.failed


def interrupted(trial: FrozenTrial) -> bool:
    return bool(trial.user_attrs.get("interrupted"))


def summarize(study: optuna.Study) -> StudySummary:
    trials = study.get_trials(deepcopy=False)
    count = lambda state: sum(1 for t in trials if t.state == state and not interrupted(t))  # noqa: E731
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    metric = study_metric(study)
    best = min(complete, key=lambda t: metric.rank(*t.values), default=None)
    return StudySummary(
        complete=len(complete),
        pruned=count(TrialState.PRUNED),
        failed=count(TrialState.FAIL),
        running=count(TrialState.RUNNING),
        metric=metric,
        best_score=best.values[0] if best else None,
        best_macs=int(best.values[1]) if best else None,
        front_size=len(pareto_front(study)) if complete else 0,
        repeats=sum(1 for t in trials if is_repeat(t)),
    )


def driver_id() -> dict[str, object]:
    """Who is running a trial: this host and process."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _dead_local_driver(trial: FrozenTrial) -> bool:
    driver = trial.user_attrs.get("driver")
    if not driver or driver.get("host") != socket.gethostname():
        return False
    if driver.get("pid") == os.getpid():
        return False
    try:
        os.kill(int(driver["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, TypeError):
        return False
    return False


def _heartbeats(study: optuna.Study) -> BaseHeartbeat | None:
    """The study's storage if it keeps heartbeats. A study wraps its RDB storage in Optuna's
    cache, which forwards heartbeats; both implement `BaseHeartbeat`."""
    storage = study._storage
    if isinstance(storage, BaseHeartbeat) and storage.get_heartbeat_interval():
        return storage
    return None


def stale_trials(study: optuna.Study) -> list[FrozenTrial]:
    """RUNNING trials whose driver is gone: a dead process on this host, or no heartbeat for
    `GRACE_PERIOD` seconds (another host's driver that died)."""
    storage = _heartbeats(study)
    heartbeat_stale: set[int] = set()
    if storage is not None:
        heartbeat_stale = set(storage._get_stale_trial_ids(study._study_id))
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if t._trial_id in heartbeat_stale or _dead_local_driver(t)
    ]


def set_user_attrs(study: optuna.Study, trial_id: int, attrs: dict[str, Any]) -> None:
    """Write several user attributes of one unfinished trial in one transaction.

    The searcher records about ten attributes per trial; one commit for all of them instead of one
    each is most of its storage time on SQLite. Other storages fall back to one write per attribute.
    """
    backend = getattr(study._storage, "_backend", study._storage)  # behind Optuna's cache
    batched = _rdb_session is not None and hasattr(backend, "_set_trial_attr_without_commit")
    if not batched or not isinstance(backend, optuna.storages.RDBStorage):
        for key, value in attrs.items():
            study._storage.set_trial_user_attr(trial_id, key, value)
        return
    def write() -> None:
        with _rdb_session(backend.scoped_session, True) as session:
            for key, value in attrs.items():
                backend._set_trial_attr_without_commit(session, _rdb_models.TrialUserAttributeModel, trial_id, key, value)

    backend.call(write) if isinstance(backend, RetryingStorage) else write()


def record_heartbeats(study: optuna.Study, trial_ids: Sequence[int]) -> None:
    """Tell the storage that this driver's trials are alive."""
    storage = _heartbeats(study)
    if storage is not None:
        for trial_id in trial_ids:
            storage.record_heartbeat(trial_id)


def latest_checkpoint(trial_dir: Path) -> Path | None:
    """The newest ``checkpoint_*`` folder Ray wrote whole for a trial, if any. Ray copies a
    checkpoint into place file by file, so a process killed meanwhile leaves a folder whose trainer
    file is missing or cut short; that folder is skipped for the one before it."""
    if not trial_dir.is_dir():
        return None
    return next((c for c in sorted(trial_dir.glob("checkpoint_*"), reverse=True) if _whole(c / TRAINER_FILE)), None)


def _whole(trainer_file: Path) -> bool:
    """Whether ``trainer_file`` (a `torch.save` zip archive) is complete: its central directory, the
    last thing written, is there and parses."""
    try:
        with zipfile.ZipFile(trainer_file):
            return True
    except (OSError, zipfile.BadZipFile):
        return False


def recover_trials(study: optuna.Study, trials: Sequence[FrozenTrial], run: RunDir | None = None) -> list[int]:
    """Fail trials a stopped driver left RUNNING (marked ``interrupted``, so they do not count
    toward the budget) and enqueue each once more with the same params, to continue from its last
    epoch checkpoint (``resume_checkpoint``) when Ray wrote one. A trial the driver had asked for
    but not finished proposing (no ``spec`` yet) is only failed: its partial params are no
    candidate, and the budget it leaves is refilled by fresh proposals. ``run``: the run directory,
    where a trial's folder is looked for when its recorded one is gone (the directory was renamed).
    A trial whose checkpoint is nowhere restarts from scratch, with a ``restart`` note saying so.
    Returns the trials continued."""
    recovered = []
    for trial in trials:
        handle = optuna.trial.Trial(study, trial._trial_id)
        try:
            handle.set_user_attr("interrupted", "the driver stopped while this trial ran")
            study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, RuntimeError):  # finished meanwhile, or another driver recovered it
            continue
        if "spec" not in trial.user_attrs:
            continue
        attrs: dict[str, object] = {"resumed_from": trial.number}
        if "baseline" in trial.user_attrs:  # a known cell stays tagged (and is not enqueued again)
            attrs["baseline"] = trial.user_attrs["baseline"]
        artifacts = trial.user_attrs.get("artifacts")
        folders = [Path(artifacts)] if artifacts else []
        if artifacts and run is not None:  # the recorded folder, else the same trial's in this directory
            folders.append(Path(trial_dir(experiment_dir(run.artifacts()), trial.number)))
        checkpoint = next((c for c in map(latest_checkpoint, folders) if c is not None), None)
        if checkpoint is not None:
            attrs["resume_checkpoint"] = str(checkpoint)
        elif artifacts:
            attrs["restart"] = f"restarted from scratch: no checkpoint of trial {trial.number} in {artifacts}"
        study.enqueue_trial(trial.params, user_attrs=attrs, skip_if_exists=False)
        recovered.append(trial.number)
    return recovered


def running_trials(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))


def counted_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Trials that count toward the budget: finished or running, not interrupted or over budget."""
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
    return [t for t in study.get_trials(deepcopy=False, states=states) if not interrupted(t)]
