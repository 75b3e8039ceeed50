"""The RNN controller: it learns, it resumes bit for bit, it copes with trials in flight."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch

from nas.proposers import RNNControllerSampler
from nas.proposers._rnn_controller import STATE_FILE
from nas.testing.pytest_proposers import run
from search_spaces import Decision, SearchSpace, get_space


@dataclass
class ToySpace(SearchSpace):
    """Three decisions, one conditional; ``decode`` is the identity."""

    def __post_init__(self) -> None:
        self.name = "toy"

    def decisions(self) -> list[Decision]:
        return [
            Decision("a", ("p", "q", "r", "s")),
            Decision("b", ("u", "v", "w"), ("a", ("q", "r"))),
            Decision("c", ("x", "y", "z")),
        ]

    def decode(self, params: dict[str, Any]) -> Any:  # type: ignore[override]
        return dict(params)

    def validate(self, spec: Any) -> None:  # type: ignore[override]
        pass

    def canonical_hash(self, spec: Any) -> str:  # type: ignore[override]
        return repr(sorted(spec.items()))


def toy_reward(params: dict[str, Any]) -> float:
    """Best cell: a=r, b=w, c=y (reward 3)."""
    return float(params["a"] == "r") + float(params.get("b") == "w") + float(params["c"] == "y")


def ask_tell(study: optuna.Study, space: SearchSpace, n: int, reward=toy_reward) -> None:  # noqa: ANN001
    for _ in range(n):
        trial = study.ask()
        space.suggest(trial)
        study.tell(trial, reward(trial.params))


def test_learns_to_prefer_the_best_choice() -> None:
    space = ToySpace()
    sampler = RNNControllerSampler(space=space, seed=0, dedup=False, lr=0.005)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    ask_tell(study, space, 150)
    probs = sampler.probabilities({"a": "r", "b": "w", "c": "y"})
    assert probs["a"][space.decisions()[0].choices.index("r")] > 0.6
    assert probs["b"][space.decisions()[1].choices.index("w")] > 0.6
    assert probs["c"][space.decisions()[2].choices.index("y")] > 0.6
    late = [toy_reward(t.params) for t in study.trials[-30:]]
    early = [toy_reward(t.params) for t in study.trials[:30]]
    assert np.mean(late) > np.mean(early) + 0.8


def test_multi_objective_policy_depends_on_the_weights() -> None:
    """Objective 0 wants c=x, objective 1 wants c=z: the weights steer the learned policy."""
    space = ToySpace()
    sampler = RNNControllerSampler(space=space, seed=1, dedup=False, lr=0.005, log_compute=False)
    study = optuna.create_study(directions=["maximize", "maximize"], sampler=sampler)
    for _ in range(200):
        trial = study.ask()
        space.suggest(trial)
        c = trial.params["c"]
        study.tell(trial, [float(c == "x"), float(c == "z")])
    ix, iz = 0, 2
    p_acc = sampler.probabilities(weights=[0.95, 0.05])["c"]
    p_cost = sampler.probabilities(weights=[0.05, 0.95])["c"]
    assert p_acc[ix] > p_acc[iz] and p_cost[iz] > p_cost[ix]
    weights = [t.system_attrs["rnn_controller:weights"] for t in study.trials]
    assert np.std([w[0] for w in weights]) > 0.1  # a fresh trade-off per sample


def _snapshot(sampler: RNNControllerSampler) -> dict[str, Any]:
    return sampler.state_dict()


def _assert_same_state(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if key in ("policy",):
            for name in a[key]:
                assert torch.equal(a[key][name], b[key][name]), name
        elif key == "optimizer":
            for pid, s in a[key]["state"].items():
                for name, t in s.items():
                    assert torch.equal(t, b[key]["state"][pid][name]), (pid, name)
            assert a[key]["param_groups"] == b[key]["param_groups"]
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize("directions", [["maximize"], ["maximize", "minimize"]])
def test_state_roundtrips_through_save_and_resume(tmp_path: Path, directions: list[str]) -> None:
    """A study stopped and resumed (new process: new sampler from state_dir, study from SQLite)
    proposes exactly what an uninterrupted one does, and ends with identical weights."""
    space = get_space("nb201")
    n_obj = len(directions)

    def reward(params: dict[str, Any]) -> list[float]:
        conv = sum(v == "nor_conv_3x3" for v in params.values())
        return [float(conv), 1.0 + conv + sum(v == "nor_conv_1x1" for v in params.values())][:n_obj]

    def tell_n(study: optuna.Study, n: int) -> None:
        for _ in range(n):
            trial = study.ask()
            space.suggest(trial)
            study.tell(trial, reward(trial.params))

    (tmp_path / "a").mkdir()
    url_a = f"sqlite:///{tmp_path / 'a' / 'study.db'}"
    sampler_a = RNNControllerSampler(space=space, seed=7, state_dir=tmp_path / "a", batch_size=3)
    study_a = optuna.create_study(study_name="s", storage=url_a, directions=directions, sampler=sampler_a)
    tell_n(study_a, 10)  # 10 = 3 updates and one trial pending in the batch

    shutil.copytree(tmp_path / "a", tmp_path / "b")  # the "crash": everything on disk, nothing in memory
    sampler_b = RNNControllerSampler(space=space, seed=None, state_dir=tmp_path / "b", batch_size=3)
    _assert_same_state(_snapshot(sampler_a), _snapshot(sampler_b))
    study_b = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'b' / 'study.db'}", sampler=sampler_b)

    tell_n(study_a, 8)
    tell_n(study_b, 8)
    assert [t.params for t in study_a.trials] == [t.params for t in study_b.trials]
    _assert_same_state(_snapshot(sampler_a), _snapshot(sampler_b))
    assert (tmp_path / "b" / STATE_FILE).is_file() and sampler_b.updates == 6


def test_fresh_sampler_without_state_is_not_the_resumed_policy(tmp_path: Path) -> None:
    space = get_space("nb201")
    a = RNNControllerSampler(space=space, seed=0, state_dir=tmp_path)
    run(a, space, 6)
    fresh = RNNControllerSampler(space=space, seed=0)
    run(fresh, space, 1)
    trained, untrained = a.state_dict()["policy"], fresh.state_dict()["policy"]
    assert not torch.equal(trained["lstm.weight_ih"], untrained["lstm.weight_ih"])


def test_mismatched_state_is_a_clear_error(tmp_path: Path) -> None:
    space = get_space("nb201")
    run(RNNControllerSampler(space=space, seed=0, state_dir=tmp_path), space, 2)
    with pytest.raises(ValueError, match="does not match"):
        RNNControllerSampler(space=space, seed=0, state_dir=tmp_path, hidden_size=8)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_several_trials_in_flight(batch_size: int) -> None:
    """Eight trials run at once and finish newest-first; every result is learned from once."""
    space = get_space("recurrent_cell", num_nodes=3)
    sampler = RNNControllerSampler(space=space, seed=2, batch_size=batch_size)
    study = run(sampler, space, 40, in_flight=8)
    assert sampler.state_dict()["learned"] == list(range(40))
    assert sampler.updates == 40 // batch_size
    for t in study.trials:  # a completed trial re-told (e.g. by a retrying driver) is ignored
        sampler.after_trial(study, t, t.state, t.values)
    assert sampler.updates == 40 // batch_size


def test_pruned_and_failed_trials_are_explicit() -> None:
    space = get_space("nb201")
    sampler = RNNControllerSampler(space=space, seed=3)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for _ in range(3):
        t = study.ask()
        space.suggest(t)
        study.tell(t, 50.0)
    pruned = study.ask()
    space.suggest(pruned)
    pruned.report(10.0, step=3)
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)  # learns from 10.0: a low reward
    failed = study.ask()
    space.suggest(failed)
    study.tell(failed, state=optuna.trial.TrialState.FAIL)  # penalised with the worst seen (10.0)
    early = study.ask()
    study.tell(early, state=optuna.trial.TrialState.FAIL)  # no cell: nothing to learn
    state = sampler.state_dict()
    assert state["learned"] == [0, 1, 2, 3, 4] and state["worst"] == [10.0]

    skipper = RNNControllerSampler(space=space, seed=3, pruned="skip", failed="skip")
    study = optuna.create_study(direction="maximize", sampler=skipper)
    t = study.ask()
    space.suggest(t)
    study.tell(t, state=optuna.trial.TrialState.FAIL)
    assert skipper.state_dict()["learned"] == []


@pytest.mark.parametrize(
    "options, match",
    [
        ({"hidden_size": 0}, "hidden_size"),
        ({"lr": 0.0}, "lr"),
        ({"baseline_decay": 1.0}, "baseline_decay"),
        ({"batch_size": 0}, "batch_size"),
        ({"pruned": "ignore"}, "pruned"),
        ({"failed": "last_value"}, "failed"),
        ({"tanh_constant": -1.0}, "tanh_constant"),
        ({"advantage": "raw"}, "advantage"),
    ],
)
def test_options_are_checked(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RNNControllerSampler(space=get_space("nb201"), **options)


def test_rank_advantage_is_not_dragged_down_by_a_diverged_cell() -> None:
    """One cell at 10% (diverged) among ~88% cells: with the moving-average baseline the next
    ordinary cells all look good; the rank advantage still tells the better from the worse."""
    space = get_space("nb201")
    rewards = [88.0, 89.0, 87.0, 88.5, 10.0, 87.5, 89.5]
    advantages = {}
    for mode in ("rank", "baseline"):
        sampler = RNNControllerSampler(space=space, seed=0, advantage=mode, batch_size=len(rewards) + 1)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for r in rewards:
            t = study.ask()
            space.suggest(t)
            study.tell(t, r)
        advantages[mode] = [adv for _, _, adv in sampler.state_dict()["batch"]]  # pending: no update yet
    assert advantages["baseline"][5] > 0  # 87.5, below every ordinary cell, rewarded after the 10%
    assert advantages["rank"][5] < 0 < advantages["rank"][6]
