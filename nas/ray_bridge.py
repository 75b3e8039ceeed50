"""`StudySearcher`: Ray Tune's Searcher over our persistent Optuna study.

One Ray trial is one Optuna trial. ``suggest`` asks the study, lets the space suggest a Spec through
the trial (so any Optuna sampler, or our own, proposes it) and returns the trainable's config;
``on_trial_complete`` tells the study the outcome. Ray's own `OptunaSearch` cannot do this here: it
does not let us attach the Spec and its cost to the trial, record failures reported by the trainable,
or mark early-stopped trials as PRUNED rather than finished (Ray Tune issue 6056).
"""

from __future__ import annotations

import logging
import os
import pickle
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from ray.tune import Callback
from ray.tune.search import Searcher

from nas.study import HEARTBEAT_INTERVAL, counted_trials, driver_id, record_heartbeats, set_user_attrs

from search_spaces import SearchSpace, SpecError, Task

logger = logging.getLogger(__name__)

MAX_INVALID_PROPOSALS = 50


@dataclass
class SearchCounts:
    """What the driver has seen this session, for the progress display."""

    started: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    best_accuracy: float | None = None
    last_error: str | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def running(self) -> int:
        return self.started - self.complete - self.pruned - self.failed


def _ray_node_id() -> str | None:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


class StudySearcher(Searcher):
    """Ask/tell an Optuna study from Ray Tune.

    Args:
        study: the two-objective study (accuracy maximize, MACs minimize).
        space: the search space that turns an Optuna trial into a Spec.
        task: the dataset's task, for the cost.
        base_config: the rest of the trainable's config (data, train, seed, threads).
        epochs: the full training length; a trial ending before it was stopped early (PRUNED).
        budget: trials the whole study should finish, across every driver sharing it; once the
            study holds that many, ``suggest`` returns ``FINISHED``.
        artifacts: where Ray puts trial folders (``<artifacts>/trial_<number>``), recorded per trial
            so another driver can continue an interrupted trial from its checkpoint.
        run_dir: the run directory, to record checkpoint paths relative to it where possible.
        hyper: a `workers.hyper_bridge.HyperBridge`: scores each proposal with generated weights
            (user attr ``proxy``), skips hopeless ones (PRUNED, ``skipped``) and hands trials the
            checkpoint to warm-start from.
        deadline: a ``time.monotonic()`` instant after which no trial is proposed (running ones
            finish): a search with a fixed wall-time budget.
    """

    def __init__(
        self,
        study: optuna.Study,
        space: SearchSpace,
        task: Task,
        base_config: dict[str, Any],
        *,
        epochs: int,
        budget: int | None = None,
        artifacts: str | None = None,
        run_dir: Path | None = None,
        hyper: Any = None,
        deadline: float | None = None,
    ) -> None:
        super().__init__(metric="accuracy", mode="max")
        self.study = study
        self.space = space
        self.task = task
        self.base_config = base_config
        self.epochs = epochs
        self.budget = budget
        self.artifacts = artifacts
        self.run_dir = run_dir
        self.hyper = hyper
        self.deadline = deadline
        self.driver = {**driver_id(), "node": _ray_node_id()}
        self.counts = SearchCounts()
        self.gave_up: str | None = None
        self._done_by_hash: dict[str, int] | None = None  # canonical hash -> a COMPLETE trial
        self._live: dict[str, optuna.Trial] = {}
        self._curves: dict[str, list[float]] = {}
        self._where: dict[str, tuple[str, int]] = {}

    def _budget_filled(self) -> bool:
        """Checked before asking, so that a full study gets no extra (over-budget) trial; past the
        wall-time ``deadline`` (``time.monotonic``) nothing new is proposed either."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return True
        return self.budget is not None and len(counted_trials(self.study)) >= self.budget

    def _over_budget(self, trial: optuna.Trial) -> bool:
        """Whether trials numbered before ``trial`` (by any driver) already fill the budget; such a
        trial is closed as FAIL, marked interrupted (not counted)."""
        if self.budget is None:
            return False
        earlier = [t for t in counted_trials(self.study) if t.number < trial.number]
        if len(earlier) < self.budget:
            return False
        self._write(trial, {"interrupted": "over budget: other drivers filled the study first"})
        self.study.tell(trial, state=TrialState.FAIL)
        return True

    def _write(self, trial: optuna.Trial, attrs: dict[str, Any]) -> None:
        set_user_attrs(self.study, trial._trial_id, attrs)

    def _propose(self) -> tuple[optuna.Trial, dict[str, Any]] | None:
        for _ in range(MAX_INVALID_PROPOSALS):
            if self._budget_filled():
                return None
            with warnings.catch_warnings():  # Optuna's heartbeat note assumes Study.optimize; we beat ourselves
                warnings.filterwarnings("ignore", message="Heartbeat of storage")
                trial = self.study.ask()
            if self._over_budget(trial):
                return None
            # beat at once: should this driver die while proposing, other drivers see the trial go stale
            record_heartbeats(self.study, [trial._trial_id])
            attrs: dict[str, Any] = {"driver": self.driver}  # written at once when the proposal is settled
            try:
                spec = self.space.suggest(trial)
                self.space.validate(spec)
                cost = self.space.cost(spec, self.task)
            except (SpecError, ValueError) as exc:
                self._reject(trial, TrialState.FAIL, {**attrs, "error": f"invalid proposal: {exc}"})
                continue
            except Exception as exc:  # a proposer that breaks on one trial must not end the search
                logger.warning("proposer failed on trial %d: %r", trial.number, exc)
                self._reject(trial, TrialState.FAIL, {**attrs, "error": f"proposer error: {type(exc).__name__}: {exc}"})
                continue
            key = self.space.canonical_hash(spec)
            attrs.update(spec=spec.to_json(), hash=key, macs=cost["macs"], params=cost["params"])
            if self._reuse_duplicate(trial, key, attrs):
                continue
            if self.artifacts is not None:
                attrs["artifacts"] = f"{self.artifacts}/trial_{trial.number}"
            config = {
                **self.base_config,
                "spec": spec.to_json(),
                "macs": cost["macs"],
                "params": cost["params"],
                "optuna_number": trial.number,
            }
            resume = trial.user_attrs.get("resume_checkpoint")
            if resume is not None:
                config["resume_checkpoint"] = resume
            if self.hyper is not None:
                self.hyper.poll()
                score, skip = self.hyper.gate(spec)
                attrs["proxy"] = score
                if skip:
                    self._reject(trial, TrialState.PRUNED,
                                 {**attrs, "skipped": "hypernetwork proxy below the configured quantile"})
                    continue
                config["hyper"] = self.hyper.trial_config()
            self._write(trial, attrs)
            return trial, config
        self.gave_up = (
            f"{MAX_INVALID_PROPOSALS} proposals in a row were invalid or made the proposer fail, so the "
            "search stopped asking; see the `error` of the last failed trials (nas status NAME)"
        )
        return None

    def _reject(self, trial: optuna.Trial, state: TrialState, attrs: dict[str, Any]) -> None:
        """Finish a proposal without training it (invalid, proposer error, skipped by the proxy)."""
        self._write(trial, attrs)
        self.study.tell(trial, state=state)
        self.counts.started += 1
        if state == TrialState.PRUNED:
            self.counts.pruned += 1
        else:
            self.counts.failed += 1

    def _reuse_duplicate(self, trial: optuna.Trial, key: str, attrs: dict[str, Any]) -> bool:
        """An equivalent candidate (same canonical hash: an isomorphic cell, an activation written
        another way) that already finished is not trained again: its result is told for this trial,
        so the sampler still learns, with ``duplicate_of`` naming the original."""
        if self._done_by_hash is None:
            self._done_by_hash = {
                t.user_attrs["hash"]: t.number
                for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if "hash" in t.user_attrs
            }
        number = self._done_by_hash.get(key)
        if number is None:
            return False
        twin = self.study._storage.get_trial(self.study._storage.get_trial_id_from_study_id_trial_number(
            self.study._study_id, number))
        copied = {a: twin.user_attrs[a] for a in ("curve", "best_epoch", "test_accuracy", "epochs", "checkpoint")
                  if a in twin.user_attrs}
        self._write(trial, {**attrs, **copied, "duplicate_of": number})
        self.study.tell(trial, values=twin.values)
        self.counts.started += 1
        self.counts.complete += 1
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        proposal = self._propose()
        if proposal is None:
            return Searcher.FINISHED
        trial, config = proposal
        self._live[trial_id] = trial
        self._curves[trial_id] = []
        self.counts.started += 1
        return config

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if "accuracy" in result and trial_id in self._curves:
            self._curves[trial_id].append(float(result["accuracy"]))
        trial = self._live.get(trial_id)
        where = (result.get("node_id"), result.get("pid"))
        if trial is not None and where[0] is not None and self._where.get(trial_id) != where:
            # where the trial runs now (it changes when Ray retries a crashed process elsewhere)
            self._where[trial_id] = where
            attrs = {"node": where[0], "pid": where[1]}
            if result.get("restored_from_epoch"):
                attrs["restored_from_epoch"] = int(result["restored_from_epoch"])
            self._write(trial, attrs)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        trial = self._live.pop(trial_id, None)
        if trial is None:
            return
        number = trial.number
        result = result or {}
        self._where.pop(trial_id, None)
        curve = self._curves.pop(trial_id, [])
        if "accuracy" in result and len(curve) < int(result.get("epoch", 0)):
            curve.append(float(result["accuracy"]))  # Ray skips on_trial_result for a STOPped result
        attrs: dict[str, Any] = {"curve": curve}
        message = result.get("error") or ("trial process failed (see Ray's trial log)" if error else None)
        if message is None and "best_accuracy" not in result:
            message = "the trial ended without reporting an epoch"
        if message is not None:
            self._write(trial, {**attrs, "error": message})
            self._tell(number, TrialState.FAIL)
            self.counts.failed += 1
            self.counts.last_error = message
            self.counts.errors.append(f"trial {number}: {message}")
            return
        epoch = int(result.get("epoch", 0))
        attrs.update(best_epoch=int(result["best_epoch"]), test_accuracy=float(result["best_test_accuracy"]), epochs=epoch)
        if result.get("checkpoint_dir_name") and self.artifacts is not None:
            # <checkpoint>/trainer.pt holds the last epoch's trainer state with the best epoch's
            # weights under "best_state"; relative to the run directory when it lies inside it
            path = f"{self.artifacts}/trial_{number}/{result['checkpoint_dir_name']}"
            if self.run_dir is not None and Path(path).is_relative_to(self.run_dir):
                path = str(Path(path).relative_to(self.run_dir))
            attrs["checkpoint"] = path
        self._write(trial, attrs)
        if epoch < self.epochs:
            self._tell(number, TrialState.PRUNED)
            self.counts.pruned += 1
            return
        accuracy = float(result["best_accuracy"])
        recorded = self.study._storage.get_trial_user_attrs(trial._trial_id)  # set_user_attrs bypasses the Trial's cache
        self._tell(number, TrialState.COMPLETE, [accuracy, float(recorded["macs"])])
        if self._done_by_hash is not None and "hash" in recorded:
            self._done_by_hash.setdefault(recorded["hash"], number)
        self.counts.complete += 1
        if self.counts.best_accuracy is None or accuracy > self.counts.best_accuracy:
            self.counts.best_accuracy = accuracy

    def _tell(self, number: int, state: TrialState, values: list[float] | None = None) -> None:
        self.study.tell(number, values=values, state=state, skip_if_finished=True)
        logger.debug("trial %d -> %s %s", number, state.name, values)

    def __getstate__(self) -> dict[str, Any]:
        """Ray pickles the searcher with its experiment state; the study stays in its own storage
        (ours is the source of truth), so only plain bookkeeping is pickled."""
        state = self.__dict__.copy()
        state["study"] = None
        state["hyper"] = None
        state["_live"] = {}
        state["_done_by_hash"] = None
        return state

    def save(self, checkpoint_path: str) -> None:
        """Ray's searcher checkpoint: only bookkeeping (the study itself is already persistent)."""
        tmp = f"{checkpoint_path}.tmp"
        with open(tmp, "wb") as f:
            pickle.dump(self.__getstate__(), f)
        os.replace(tmp, checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        state.pop("study", None)
        self.__dict__.update({k: v for k, v in state.items() if k != "study"})

    def live_trials(self) -> list[FrozenTrial]:
        """The Optuna trials Ray is running now, as the study stores them."""
        if self.study is None:
            return []
        return [
            t
            for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.number in {live.number for live in self._live.values()}
        ]

    def heartbeat(self) -> None:
        """Mark this driver's running trials alive in the storage."""
        record_heartbeats(self.study, [t._trial_id for t in self._live.values()])


class Heartbeat(Callback):
    """Records heartbeats of the searcher's running trials from the driver loop."""

    def __init__(self, searcher: StudySearcher) -> None:
        self.searcher = searcher
        self._last = 0.0

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        if now - self._last >= HEARTBEAT_INTERVAL:
            self._last = now
            self.searcher.heartbeat()

    def __getstate__(self) -> dict[str, Any]:
        return {"searcher": None, "_last": 0.0}
