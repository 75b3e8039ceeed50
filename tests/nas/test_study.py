"""Heartbeats through the study's cached storage: a driver on another host that stops beating has
its RUNNING trials recognised as stale; a live one's are not."""

from __future__ import annotations

import time

import optuna
import pytest

from nas import study as study_mod
from nas.study import make_storage, record_heartbeats, set_user_attrs, stale_trials


@pytest.fixture
def study(tmp_path, monkeypatch):
    monkeypatch.setattr(study_mod, "GRACE_PERIOD", 1)
    storage = make_storage(f"sqlite:///{tmp_path}/study.db")
    return optuna.create_study(storage=storage, directions=["maximize", "minimize"])


def _running_on_other_host(study: optuna.Study) -> optuna.Trial:
    trial = study.ask()
    trial.set_user_attr("driver", {"host": "another-host", "pid": 1})
    return trial


def test_heartbeats_reach_the_storage_behind_optunas_cache(study):
    assert not isinstance(study._storage, optuna.storages.RDBStorage)  # Optuna wraps it
    trial = _running_on_other_host(study)
    record_heartbeats(study, [trial._trial_id])
    assert trial._trial_id not in study._storage._get_stale_trial_ids(study._study_id)
    time.sleep(2.5)  # SQLite timestamps have 1-s resolution
    assert trial._trial_id in study._storage._get_stale_trial_ids(study._study_id)


def test_a_silent_remote_driver_is_stale_a_beating_one_is_not(study):
    silent, beating = _running_on_other_host(study), _running_on_other_host(study)
    never = _running_on_other_host(study)  # no heartbeat yet: its driver may still be starting
    record_heartbeats(study, [silent._trial_id, beating._trial_id])
    time.sleep(2.5)  # SQLite timestamps have 1-s resolution
    record_heartbeats(study, [beating._trial_id])
    assert [t.number for t in stale_trials(study)] == [silent.number]
    assert never.number not in [t.number for t in stale_trials(study)]


@pytest.mark.parametrize("kind", ["sqlite", "in-memory"])
def test_set_user_attrs_writes_them_all_in_either_storage(tmp_path, kind):
    storage = make_storage(f"sqlite:///{tmp_path}/study.db") if kind == "sqlite" else None
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    trial = study.ask()
    attrs = {"spec": '{"a": 1}', "macs": 1234, "driver": {"host": "h", "pid": 7}, "curve": [0.1, 0.2]}
    set_user_attrs(study, trial._trial_id, attrs)
    set_user_attrs(study, trial._trial_id, {"macs": 99})  # overwrites, like set_user_attr
    assert study._storage.get_trial_user_attrs(trial._trial_id) == {**attrs, "macs": 99}


def test_recover_continues_proposed_trials_and_only_fails_unproposed_ones(tmp_path):
    from nas.study import interrupted, recover_trials

    study = optuna.create_study(storage=make_storage(f"sqlite:///{tmp_path}/study.db"),
                                directions=["maximize", "minimize"])
    proposed = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    proposed.set_user_attr("spec", "{}")
    unproposed = study.ask()  # the driver died between ask and the proposal
    frozen = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    assert recover_trials(study, frozen) == [proposed.number]
    trials = study.get_trials(deepcopy=False)
    assert all(interrupted(trials[n]) for n in (proposed.number, unproposed.number))
    waiting = [t for t in trials if t.state == optuna.trial.TrialState.WAITING]
    assert len(waiting) == 1 and waiting[0].user_attrs["resumed_from"] == proposed.number
    continued = study.ask()  # the enqueued trial comes back with the interrupted one's params
    assert continued.suggest_float("x", 0, 1) == proposed.params["x"]
