"""`TrialLoop`: the one propose/record pair (ask, suggest, validate, cost, hash, dedupe, tell)."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from nas.trial_loop import TrialLoop, distinct_samples
from search_spaces import RecurrentCellSpace, SpecError, Task

TASK = Task(input_size=8, seq_len=8, output_size=10)
SPACE = RecurrentCellSpace(num_nodes=2, hidden_sizes=(16,), activations=("tanh",), combine_ops=("add",))


def _study(**params: object) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    if params:
        study.enqueue_trial(params)
    return study


def _complete_the_next(loop: TrialLoop, count: int) -> None:
    """Propose up to ``count`` more cells, completing each trained one with a poor score."""
    for _ in range(count):
        if (p := loop.propose()) is None:
            break
        loop.complete(p, [0.1, 1.0])


def test_complete_records_values_and_the_proposal() -> None:
    loop = TrialLoop(_study(), SPACE, TASK, attrs={"driver": "me"})
    p = loop.propose()
    assert p is not None and p.cost == SPACE.cost(p.spec, TASK)
    loop.complete(p, [0.9, p.cost["macs"]], {"curve": [0.5, 0.9]})
    t = loop.study.trials[0]
    assert t.state == TrialState.COMPLETE and t.values == [0.9, p.cost["macs"]]
    assert t.user_attrs["driver"] == "me" and t.user_attrs["hash"] == p.key and t.user_attrs["curve"] == [0.5, 0.9]
    assert (loop.counts.started, loop.counts.complete, loop.counts.best_score) == (1, 1, 0.9)


def test_a_duplicate_of_a_finished_cell_gets_its_values_untrained() -> None:
    loop = TrialLoop(_study(), SPACE, TASK)
    first = loop.propose()
    loop.complete(first, [0.8, 100.0], {"curve": [0.8], "test_score": 0.7})
    _complete_the_next(loop, 40)  # the tiny space has few distinct cells: one repeats the first
    dups = [t for t in loop.study.trials if t.user_attrs.get("duplicate_of") == first.number]
    assert dups, "no proposal repeated the first cell"
    assert all(t.values == [0.8, 100.0] and t.user_attrs["test_score"] == 0.7 for t in dups)
    assert loop.counts.duplicates == sum(1 for t in loop.study.trials if "duplicate_of" in t.user_attrs)


def test_an_in_flight_duplicate_fails_when_asked_to() -> None:
    single = RecurrentCellSpace(num_nodes=1, hidden_sizes=(16,), activations=("tanh",), combine_ops=("add",))
    loop = TrialLoop(_study(), single, TASK, fail_in_flight=True, max_invalid=3)
    first = loop.propose()
    assert loop.propose() is None and "3 proposals in a row" in loop.gave_up
    failed = [t for t in loop.study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 3 and all(t.user_attrs["duplicate_of"] == first.number for t in failed)
    loop.fail(first, "boom")
    assert loop.study.trials[0].user_attrs["error"] == "boom" and loop.counts.errors == ["trial 0: boom"]


def test_invalid_proposals_fail_and_settle_can_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = iter([SpecError("no good"), None, None])

    def validate(spec: object) -> None:
        if (exc := next(calls)) is not None:
            raise exc

    monkeypatch.setattr(SPACE, "validate", validate)
    verdicts = iter([({"proxy": 0.1}, "too weak"), ({"proxy": 0.9}, None)])
    loop = TrialLoop(_study(), SPACE, TASK, settle=lambda trial, spec: next(verdicts), dedupe=False)
    p = loop.propose()
    invalid, skipped, kept = loop.study.trials
    assert invalid.state == TrialState.FAIL and invalid.user_attrs["error"] == "invalid proposal: no good"
    assert skipped.state == TrialState.PRUNED and skipped.user_attrs == {**skipped.user_attrs, "skipped": "too weak", "proxy": 0.1}
    assert p.number == kept.number and kept.user_attrs["proxy"] == 0.9
    assert (loop.counts.invalid, loop.counts.failed, loop.counts.pruned, loop.counts.running) == (1, 1, 1, 1)


def test_budget_stops_asking() -> None:
    loop = TrialLoop(_study(), SPACE, TASK, budget=2, dedupe=False)
    a, b = loop.propose(), loop.propose()
    assert a is not None and b is not None and loop.propose() is None
    loop.prune(a)
    assert loop.propose() is None and len(loop.study.trials) == 2  # pruned trials count too


def test_distinct_samples_are_distinct_and_bounded() -> None:
    rng = np.random.default_rng(0)
    cells = distinct_samples(RecurrentCellSpace(num_nodes=3, hidden_sizes=(16, 32)), 10, rng)
    assert len(cells) == 10 and len({c.to_json() for c in cells}) == 10
    single = RecurrentCellSpace(num_nodes=1, hidden_sizes=(16,), activations=("tanh",), combine_ops=("add",))
    assert len(distinct_samples(single, 5, rng)) == 1  # one cell exists: the draws run out, no endless loop


def test_a_repeat_of_a_stopped_cell_is_stopped_untrained() -> None:
    """Training is deterministic per seed: a repeat of a cell an early-stopping policy stopped would
    only retrace its curve. It is told PRUNED with that curve, which proposers learn from."""
    loop = TrialLoop(_study(), SPACE, TASK)
    first = loop.propose()
    loop.prune(first, {"curve": [0.3, 0.4], "epochs": 2})
    _complete_the_next(loop, 40)
    repeats = [t for t in loop.study.trials if t.user_attrs.get("duplicate_of") == first.number]
    assert repeats, "no proposal repeated the stopped cell"
    assert all(t.state == TrialState.PRUNED and t.user_attrs["curve"] == [0.3, 0.4] for t in repeats)
    assert loop.counts.pruned == 1 + len(repeats)


def test_a_proposer_that_only_repeats_ends_the_search() -> None:
    """A space smaller than the budget: once every proposal repeats an evaluated cell, ``max_invalid``
    times in a row, the loop stops asking and says why; that is the end of a search, not an error."""
    loop = TrialLoop(_study(), SPACE, TASK, max_invalid=10)
    trained = 0
    while (p := loop.propose()) is not None:
        loop.complete(p, [0.5, 1.0]) if trained % 2 else loop.prune(p, {"curve": [0.2]})
        trained += 1
        assert trained < 200, "the loop never noticed the space was searched"
    assert loop.gave_up is None and "repeated cells already evaluated 10 times in a row" in loop.exhausted
    distinct = {t.user_attrs["hash"] for t in loop.study.trials}
    assert trained == len(distinct) and f"({len(distinct)} distinct cells evaluated)" in loop.exhausted
    assert loop.study.trials[-10:] == [t for t in loop.study.trials[-10:] if "duplicate_of" in t.user_attrs]
