"""`StudySearcher`: Ray Tune's Searcher over our persistent Optuna study.

One Ray trial is one Optuna trial. ``suggest`` asks the study, lets the space suggest a Spec through
the trial (so any Optuna sampler, or our own, proposes it) and returns the trainable's config;
``on_trial_complete`` tells the study the outcome. Ray's own `OptunaSearch` cannot do this here: it
does not let us attach the Spec and its cost to the trial, record failures reported by the trainable,
or mark early-stopped trials as PRUNED rather than finished (Ray Tune issue 6056).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import time
from dataclasses import replace
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from ray.tune import Callback
from ray.tune.search import Searcher

from nas.baselines import BASELINE_ATTR
from nas.study import HEARTBEAT_INTERVAL, driver_id, record_heartbeats, study_metric
from nas.trial_loop import Proposal, SearchCounts, TrialLoop
from workers.faults import maybe_die
from workers.run_dir import RunDir, prune_checkpoints, trial_dir
from workers.ensemble import SEED_RUNS
from workers.trial import Cost, TrialConfig

__all__ = ["Heartbeat", "SearchCounts", "StudySearcher", "TrialCrashes", "describe_crash"]

logger = logging.getLogger(__name__)


def _ray_node_id() -> str | None:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


class StudySearcher(Searcher):
    """Ask/tell an Optuna study from Ray Tune: `TrialLoop` proposes and records, this turns its
    proposals into `TrialConfig` dicts and Ray's results into outcomes.

    Args:
        loop: the study's propose/record loop (its budget is the study's ``search.trials``).
        template: the trial config every proposal starts from (data, train, seed, threads); the
            proposal fills in spec, number, cost and, for a continued trial, ``resume``.
        artifacts: Ray's experiment folder (``<artifacts>/trial_<number>``), recorded per trial so
            another driver can continue an interrupted trial from its checkpoint.
        run_dir: the run directory, to record checkpoint paths relative to it where possible.
        hyper: a `workers.hyper_bridge.HyperBridge`: scores each proposal with generated weights
            (user attr ``proxy``), skips hopeless ones (PRUNED, ``skipped``) and hands trials the
            checkpoint to warm-start from.
    """

    def __init__(
        self,
        loop: TrialLoop,
        template: TrialConfig,
        *,
        artifacts: str | None = None,
        run_dir: RunDir | None = None,
        hyper: Any = None,
    ) -> None:
        metric = study_metric(loop.study)
        super().__init__(metric="score", mode="max" if metric.maximize else "min")
        self.loop = loop
        self.template = template
        self.artifacts = artifacts
        self.run_dir = run_dir
        self.hyper = hyper
        loop.attrs = {"driver": {**driver_id(), "node": _ray_node_id()}}
        loop.settle = self._settle
        self._live: dict[str, Proposal] = {}
        self._curves: dict[str, list[float]] = {}
        self._where: dict[str, tuple[str, int]] = {}
        self._ray_trials: dict[str, Any] = {}  # Ray trial id -> Ray's Trial (`TrialCrashes`), for its error

    @property
    def study(self) -> optuna.Study | None:
        return self.loop.study

    @property
    def counts(self) -> SearchCounts:
        return self.loop.counts

    @property
    def gave_up(self) -> str | None:
        return self.loop.gave_up

    @property
    def exhausted(self) -> str | None:
        return self.loop.exhausted

    def _settle(self, trial: optuna.Trial, spec: Any) -> tuple[dict[str, Any], str | None]:
        """Where the trial's folder goes, and the hypernetwork's verdict."""
        attrs: dict[str, Any] = {}
        if self.artifacts is not None:
            attrs["artifacts"] = trial_dir(self.artifacts, trial.number)
        if self.hyper is None:
            return attrs, None
        self.hyper.poll()
        score, skip = self.hyper.gate(spec)
        attrs["proxy"] = score
        return attrs, "hypernetwork proxy below the configured quantile" if skip else None

    def trial_config(self, proposal: Proposal) -> TrialConfig:
        """What the worker gets for ``proposal``."""
        return replace(
            self.template,
            spec=proposal.spec.to_json(),
            number=proposal.number,
            cost=Cost(macs=proposal.cost["macs"], params=proposal.cost["params"]),
            resume=proposal.trial.user_attrs.get("resume_checkpoint"),
            hyper=None if self.hyper is None else self.hyper.trial_start(),
            baseline=proposal.trial.user_attrs.get(BASELINE_ATTR),
        )

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        proposal = self.loop.propose()
        if proposal is None:
            return Searcher.FINISHED
        self._live[trial_id] = proposal
        self._curves[trial_id] = []
        return self.trial_config(proposal).to_dict()

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        maybe_die("train")
        if "score" in result and trial_id in self._curves:
            self._curves[trial_id].append(float(result["score"]))
        proposal = self._live.get(trial_id)
        where = (result.get("node_id"), result.get("pid"))
        if proposal is not None and where[0] is not None and self._where.get(trial_id) != where:
            # where the trial runs now (it changes when Ray retries a crashed process elsewhere)
            self._where[trial_id] = where
            attrs = {"node": where[0], "pid": where[1]}
            if result.get("restored_from_epoch"):
                attrs["restored_from_epoch"] = int(result["restored_from_epoch"])
            if result.get("restart"):  # its checkpoint was gone: trained from scratch, and says so
                attrs["restart"] = str(result["restart"])
            self.loop.write(proposal.trial, attrs)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        proposal = self._live.pop(trial_id, None)
        if proposal is None:
            return
        result = result or {}
        self._where.pop(trial_id, None)
        curve = self._curves.pop(trial_id, [])
        if "score" in result and len(curve) < int(result.get("epoch", 0)):
            curve.append(float(result["score"]))  # Ray skips on_trial_result for a STOPped result
        if isinstance(result.get("curve"), list):  # the trainer's own history: whole across resumes
            curve = [float(a) for a in result["curve"]]
        attrs: dict[str, Any] = {"curve": curve}
        ray_trial = self._ray_trials.pop(trial_id, None)
        message = result.get("error") or (describe_crash(_ray_error(ray_trial)) if error else None)
        if message is None and "best_score" not in result:
            message = "the trial ended without reporting an epoch"
        self._keep_checkpoints(proposal, result)
        if message is not None:
            self.loop.fail(proposal, message, attrs)
            return
        epoch = int(result.get("epoch", 0))
        attrs.update(best_epoch=int(result["best_epoch"]), test_score=float(result["best_test_score"]), epochs=epoch)
        if isinstance(result.get(SEED_RUNS), str):  # the per-seed values behind the numbers (train.eval_seeds)
            attrs[SEED_RUNS] = json.loads(result[SEED_RUNS])
        if result.get("checkpoint_dir_name") and self.artifacts is not None:
            # <checkpoint>/trainer.pt holds the last epoch's trainer state with the best epoch's
            # weights under "best_state"; relative to the run directory when it lies inside it
            path = f"{trial_dir(self.artifacts, proposal.number)}/{result['checkpoint_dir_name']}"
            attrs["checkpoint"] = path if self.run_dir is None else self.run_dir.relative(path)
        if epoch < self.template.train.epochs:
            self.loop.prune(proposal, attrs)
        else:
            self.loop.complete(proposal, [float(result["best_score"]), float(proposal.cost["macs"])], attrs)

    def _keep_checkpoints(self, proposal: Proposal, result: dict[str, Any]) -> None:
        """A finished trial keeps its last epoch checkpoint only, unless ``train.keep_checkpoints: all``."""
        if self.artifacts is None or self.template.train.keep_checkpoints == "all":
            return
        try:
            prune_checkpoints(trial_dir(self.artifacts, proposal.number), result.get("checkpoint_dir_name"))
        except OSError as exc:  # tidying up must never end a search
            logger.warning("could not delete old checkpoints of trial %d: %s", proposal.number, exc)

    def __getstate__(self) -> dict[str, Any]:
        """Ray pickles the searcher with its experiment state; the study stays in its own storage
        (ours is the source of truth), so only plain bookkeeping is pickled."""
        state = self.__dict__.copy()
        state["hyper"] = None
        state["_live"] = {}
        state["_ray_trials"] = {}
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
        state.pop("loop", None)
        self.__dict__.update(state)

    def live_trials(self) -> list[FrozenTrial]:
        """The Optuna trials Ray is running now, as the study stores them."""
        if self.study is None:
            return []
        return [
            t
            for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.number in {proposal.number for proposal in self._live.values()}
        ]

    def heartbeat(self) -> None:
        """Mark this driver's running trials alive in the storage."""
        record_heartbeats(self.study, [p.trial._trial_id for p in self._live.values()])


def _ray_error(trial: Any) -> BaseException | None:
    """The exception Ray stored beside a failed trial (``error.pkl`` in its local folder; Ray writes
    it before telling the searcher, and uploads it to the trial's storage only later)."""
    path = getattr(trial, "pickled_error_file", None) if trial is not None else None
    if not path or not os.path.isfile(path):
        return None
    try:
        from ray import cloudpickle

        with open(path, "rb") as f:
            error = cloudpickle.load(f)
    except Exception:  # unreadable: say what we know without Ray's words
        return None
    return error if isinstance(error, BaseException) else None


def describe_crash(error: BaseException | None) -> str:
    """One line for a trial whose worker process died: "killed (out of memory?)" when Ray says the
    worker was killed (its memory monitor, the kernel's OOM killer, SIGKILL), with Ray's words."""
    if error is None:
        return "trial process failed (see Ray's trial log)"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    telling = [line for line in lines if any(m in line.lower() for m in ("memory", "kill", "died"))]
    said = (telling or lines or [""])[0][:300]
    killed = any(m in str(error).lower() for m in ("memory", "sigkill", "killed", "died unexpectedly"))
    what = "killed (out of memory?)" if killed else "trial process failed"
    return f"{what}; Ray says: {type(error).__name__}: {said}"


class TrialCrashes(Callback):
    """Hands the searcher Ray's Trial objects, whose stored error says why a process died: Ray
    tells the searcher of a failed trial before it calls ``on_trial_error`` on callbacks."""

    def __init__(self, searcher: StudySearcher) -> None:
        self.searcher = searcher

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.searcher._ray_trials[trial.trial_id] = trial

    def __getstate__(self) -> dict[str, Any]:
        return {"searcher": None}


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
