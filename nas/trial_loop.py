"""`TrialLoop`: the one propose/record pair every search in this package runs.

``propose`` asks the study for a trial, lets the space suggest a cell through it (so any Optuna
sampler proposes it), validates it, costs it, hashes it and deduplicates it: an invalid proposal is
told FAIL, an equivalent of a finished candidate gets that candidate's values (so the sampler still
learns, with ``duplicate_of`` naming it; an equivalent of one an early-stopping policy stopped is told
PRUNED with its partial curve), and a proposal the caller's ``settle`` hook skips is told PRUNED; the
first proposal that survives is returned. A proposer that only repeats evaluated cells ends the
search (``exhausted`` says so): a small space, or the proposer's corner of it, has been searched.
``complete``, ``prune`` and ``fail`` record the outcome of a trained proposal. The Ray searcher (`nas.ray_bridge`), the NAS-Bench-201 simulator
(`nas.benchmark`) and the benchmark scripts all call it; `distinct_samples` is its counterpart for
random cells outside a study (the hypernetwork commands).
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from nas.study import DUPLICATE_ATTR, counted_trials, record_heartbeats, set_user_attrs, study_metric
from search_spaces import SearchSpace, SpecError, Task
from workers.faults import maybe_die

logger = logging.getLogger(__name__)

MAX_INVALID_PROPOSALS = 50
# what a duplicate copies from the trial it repeats, besides the values
TWIN_ATTRS = ("curve", "best_epoch", "test_score", "epochs", "checkpoint")

# (trial, spec) -> (attributes to record, reason to skip the proposal or None)
Settle = Callable[[optuna.Trial, Any], tuple[dict[str, Any], str | None]]


@dataclass
class SearchCounts:
    """What this loop has seen this session, for the progress display and benchmark logs."""

    started: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    invalid: int = 0
    duplicates: int = 0
    best_score: float | None = None  # the best validation score told so far (in the metric's direction)
    last_error: str | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def running(self) -> int:
        return self.started - self.complete - self.pruned - self.failed


@dataclass(frozen=True)
class Proposal:
    """A proposal that survived validation and deduplication: train it, then record the outcome."""

    trial: optuna.Trial
    spec: Any  # a `search_spaces.Spec` (or a tabular cell, for the NAS-Bench-201 simulator)
    key: str  # the canonical hash
    cost: dict[str, int]

    @property
    def number(self) -> int:
        return self.trial.number


class TrialLoop:
    """ask -> suggest -> validate -> cost -> hash -> dedupe -> tell, over one study.

    Args:
        study: the study to ask and tell.
        space: turns a trial into a cell, validates, costs and hashes it.
        task: the dataset's task, for the cost (None for tabular spaces).
        budget: trials the whole study should hold (every driver's); once it does, ``propose``
            returns None, and a trial numbered after a full study is closed as FAIL, not counted.
        attrs: attributes recorded on every proposal (e.g. the driver's host and pid).
        settle: a hook for proposals that survived deduplication: extra attributes and a reason to
            skip it (told PRUNED with ``skipped``), e.g. the hypernetwork proxy.
        dedupe: tell an equivalent of a finished candidate its values instead of training it.
        fail_in_flight: also tell FAIL (``duplicate_of``) to an equivalent of a proposal still
            training (batch searches that train a batch at once); else it trains again.
        max_invalid: proposals in a row that may be invalid before the loop gives up.
        deadline: a ``time.monotonic()`` instant after which ``propose`` returns None (running
            trials finish): a search with a fixed wall-time budget.
    """

    def __init__(
        self,
        study: optuna.Study,
        space: SearchSpace,
        task: Task | None,
        *,
        budget: int | None = None,
        attrs: dict[str, Any] | None = None,
        settle: Settle | None = None,
        dedupe: bool = True,
        fail_in_flight: bool = False,
        max_invalid: int = MAX_INVALID_PROPOSALS,
        deadline: float | None = None,
    ) -> None:
        self.study, self.space, self.task = study, space, task
        self.metric = study_metric(study)
        self.deadline = deadline
        self.budget, self.attrs, self.settle = budget, dict(attrs or {}), settle
        self.dedupe, self.fail_in_flight, self.max_invalid = dedupe, fail_in_flight, max_invalid
        self.counts = SearchCounts()
        self.gave_up: str | None = None
        self.exhausted: str | None = None
        self._done_by_hash: dict[str, int] | None = None  # canonical hash -> a COMPLETE trial
        self._stopped_by_hash: dict[str, int] | None = None  # canonical hash -> a trial a policy stopped
        self._repeats = 0  # proposals that repeated an evaluated cell (not one in flight)
        self._in_flight: dict[str, int] = {}  # canonical hash -> a proposal being trained

    # ---- propose ----------------------------------------------------------------------------------
    def propose(self) -> Proposal | None:
        """The next proposal to train, or None: the budget is full, ``max_invalid`` in a row failed
        (``gave_up`` says so), or as many in a row repeated evaluated cells (``exhausted``)."""
        repeats = self._repeats
        for _ in range(self.max_invalid):
            if self._budget_filled() or self.exhausted:
                return None
            with warnings.catch_warnings():  # Optuna's heartbeat note assumes Study.optimize; we beat ourselves
                warnings.filterwarnings("ignore", message="Heartbeat of storage")
                trial = self.study.ask()
            if self._over_budget(trial):
                return None
            # beat at once: should this driver die while proposing, other drivers see the trial go stale
            record_heartbeats(self.study, [trial._trial_id])
            maybe_die("propose")
            proposal = self._settle(trial, dict(self.attrs))
            if proposal is not None:
                self.counts.started += 1
                return proposal
        if self._repeats - repeats == self.max_invalid:
            self.exhausted = (
                f"the proposer repeated cells already evaluated {self.max_invalid} times in a row "
                f"({len(self._distinct())} distinct cells evaluated), so the search stopped asking: the "
                "space, or the proposer's part of it, has been searched; widen the space to go on"
            )
            return None
        self.gave_up = (
            f"{self.max_invalid} proposals in a row were invalid or made the proposer fail, so the "
            "search stopped asking; see the `error` of the last failed trials (nas status NAME)"
        )
        return None

    def _settle(self, trial: optuna.Trial, attrs: dict[str, Any]) -> Proposal | None:
        try:
            spec = self.space.suggest(trial)
            self.space.validate(spec)
            cost = self.space.cost(spec, self.task)
        except (SpecError, ValueError) as exc:
            self._reject(trial, TrialState.FAIL, {**attrs, "error": f"invalid proposal: {exc}"})
            self.counts.invalid += 1
            return None
        except Exception as exc:  # a proposer that breaks on one trial must not end the search
            logger.warning("proposer failed on trial %d: %r", trial.number, exc)
            self._reject(trial, TrialState.FAIL, {**attrs, "error": f"proposer error: {type(exc).__name__}: {exc}"})
            return None
        key = self.space.canonical_hash(spec)
        attrs.update(spec=_cell_json(spec), hash=key, macs=cost["macs"], params=cost["params"])
        if self.dedupe and self._reuse_duplicate(trial, key, attrs):
            return None
        if self.settle is not None:
            extra, skip = self.settle(trial, spec)
            attrs.update(extra)
            if skip is not None:
                self._reject(trial, TrialState.PRUNED, {**attrs, "skipped": skip})
                return None
        self.write(trial, attrs)
        self._in_flight.setdefault(key, trial.number)
        return Proposal(trial, spec, key, cost)

    def _budget_filled(self) -> bool:
        """Checked before asking, so that a full study gets no extra (over-budget) trial; past the
        ``deadline`` nothing new is proposed either."""
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
        self.write(trial, {"interrupted": "over budget: other drivers filled the study first"})
        self.study.tell(trial, state=TrialState.FAIL)
        return True

    def _reuse_duplicate(self, trial: optuna.Trial, key: str, attrs: dict[str, Any]) -> bool:
        """An equivalent candidate (same canonical hash: an isomorphic cell, an activation written
        another way) that already completed or was stopped is not trained again: its outcome is told
        for this trial (`_repeat`), so the sampler still learns, with ``duplicate_of`` naming it."""
        if self._done_by_hash is None:
            self._done_by_hash = {
                t.user_attrs["hash"]: t.number
                for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if "hash" in t.user_attrs
            }
        number = self._done_by_hash.get(key, self._stopped().get(key))
        if number is not None:
            self._repeat(trial, number, attrs)
            return True
        if self.fail_in_flight and key in self._in_flight:
            self._reject(trial, TrialState.FAIL, {**attrs, DUPLICATE_ATTR: self._in_flight[key]})
            self.counts.duplicates += 1
            return True
        return False

    def _repeat(self, trial: optuna.Trial, number: int, attrs: dict[str, Any]) -> None:
        """Finish ``trial`` as its evaluated twin ``number`` ended, untrained: completed with its values,
        or stopped with its partial curve (training is deterministic per seed, so a stopped cell would
        only retrace that curve; proposers learn from it, `partial_values`). It records what the twin
        reached (`TWIN_ATTRS`) and ``duplicate_of``."""
        storage = self.study._storage
        twin = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number))
        copied = {a: twin.user_attrs[a] for a in TWIN_ATTRS if a in twin.user_attrs}
        self.write(trial, {**attrs, **copied, DUPLICATE_ATTR: number})
        if twin.state == TrialState.COMPLETE:
            self.study.tell(trial, values=twin.values)
            self.counts.complete += 1
        else:
            self.study.tell(trial, state=TrialState.PRUNED)
            self.counts.pruned += 1
        self.counts.started += 1
        self.counts.duplicates += 1
        self._repeats += 1

    def _stopped(self) -> dict[str, int]:
        """Cells an early-stopping policy stopped (PRUNED with a partial ``curve``; not a proposal the
        ``settle`` hook skipped), by canonical hash; read from the study once, then kept by `prune`."""
        if self._stopped_by_hash is None:
            self._stopped_by_hash = {}
            for t in self.study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)):
                if "hash" in t.user_attrs and t.user_attrs.get("curve") and "skipped" not in t.user_attrs:
                    self._stopped_by_hash.setdefault(t.user_attrs["hash"], t.number)
        return self._stopped_by_hash

    def _distinct(self) -> set[str]:
        """Canonical hashes of the cells this study has evaluated (completed or stopped)."""
        return set(self._done_by_hash or {}) | set(self._stopped())

    def _reject(self, trial: optuna.Trial, state: TrialState, attrs: dict[str, Any]) -> None:
        """Finish a proposal without training it (invalid, proposer error, skipped, duplicate)."""
        self.write(trial, attrs)
        self.study.tell(trial, state=state)
        self.counts.started += 1
        if state == TrialState.PRUNED:
            self.counts.pruned += 1
        else:
            self.counts.failed += 1

    def write(self, trial: optuna.Trial, attrs: dict[str, Any]) -> None:
        """Record ``attrs`` on an unfinished trial, in one transaction."""
        set_user_attrs(self.study, trial._trial_id, attrs)

    # ---- record -----------------------------------------------------------------------------------
    def complete(self, proposal: Proposal, values: Sequence[float], attrs: dict[str, Any] | None = None) -> None:
        """The proposal trained to the end: record ``attrs`` and tell ``values`` (the score first)."""
        self._finish(proposal, attrs)
        self._tell(proposal.number, TrialState.COMPLETE, list(values))
        if self._done_by_hash is not None:
            self._done_by_hash.setdefault(proposal.key, proposal.number)
        self.counts.complete += 1
        score = float(values[0])
        if self.counts.best_score is None or self.metric.better(score, self.counts.best_score):
            self.counts.best_score = score

    def prune(self, proposal: Proposal, attrs: dict[str, Any] | None = None) -> None:
        """The proposal was stopped early."""
        self._finish(proposal, attrs)
        self._tell(proposal.number, TrialState.PRUNED)
        if self._stopped_by_hash is not None and (attrs or {}).get("curve"):
            self._stopped_by_hash.setdefault(proposal.key, proposal.number)
        self.counts.pruned += 1

    def fail(self, proposal: Proposal, error: str, attrs: dict[str, Any] | None = None) -> None:
        """The proposal's training failed with ``error``."""
        self._finish(proposal, {**(attrs or {}), "error": error})
        self._tell(proposal.number, TrialState.FAIL)
        self.counts.failed += 1
        self.counts.last_error = error
        self.counts.errors.append(f"trial {proposal.number}: {error}")

    def _finish(self, proposal: Proposal, attrs: dict[str, Any] | None) -> None:
        if self._in_flight.get(proposal.key) == proposal.number:
            del self._in_flight[proposal.key]
        if attrs:
            self.write(proposal.trial, attrs)

    def _tell(self, number: int, state: TrialState, values: list[float] | None = None) -> None:
        maybe_die("tell")
        self.study.tell(number, values=values, state=state, skip_if_finished=True)
        logger.debug("trial %d -> %s %s", number, state.name, values)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled with Ray's searcher state: bookkeeping only (the study is persistent)."""
        state = self.__dict__.copy()
        state.update(study=None, settle=None, _done_by_hash=None, _stopped_by_hash=None, _in_flight={})
        return state


def _cell_json(cell: Any) -> str:
    """A Spec's JSON; a tabular cell (NAS-Bench-201) has a plain dict instead."""
    return cell.to_json() if hasattr(cell, "to_json") else json.dumps(cell.to_dict())


def distinct_samples(space: SearchSpace, n: int, rng: np.random.Generator, *, tries_per_sample: int = 20) -> list[Any]:
    """Up to ``n`` random cells of ``space``, no two equivalent (by the space's canonical hash), in
    ``n * tries_per_sample`` draws at most (a small space may hold fewer than ``n``)."""
    cells, seen = [], set()
    for _ in range(n * tries_per_sample):
        if len(cells) == n:
            break
        cell = space.sample(rng)
        if (key := space.canonical_hash(cell)) not in seen:
            seen.add(key)
            cells.append(cell)
    return cells
