"""Known cells in every study: enqueued once (resume, a second driver), compared fairly, confirmed
over seeds with mean and s.d."""

from __future__ import annotations

import math

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from nas import confirm
from nas.baselines import (BASELINE_ATTR, Score, best_baseline_within, enqueue_baselines, front_of, is_baseline,
                           nondominated_order, single_run_scores, summary_line)
from nas.cli import main
from nas.config import ConfigError, parse_config
from nas.report import trial_points
from nas.study import default_storage, open_study, pareto_front, recover_trials, running_trials, summarize
from search_spaces import GatedCellSpace
from workers.metrics import METRICS

ACC = METRICS["accuracy"]

SPACE = GatedCellSpace(hidden_sizes=(8, 16))


def _sqlite(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"


def _study(url: str) -> optuna.Study:
    return open_study("s", optuna.storages.RDBStorage(url))


def test_known_cells_are_every_known_cell_at_every_size():
    cells = SPACE.known_cells()
    assert sorted(cells) == sorted(f"{n}-h{h}" for n in ("elman", "mgu", "gru", "lstm") for h in (8, 16))
    assert list(SPACE.known_cells(["gru"])) == ["gru-h8", "gru-h16"]
    assert GatedCellSpace(memory=("none",), hidden_sizes=(8,)).known_cells(["lstm"]) == {}


def test_baselines_are_enqueued_once_across_resume_and_two_drivers(tmp_path):
    url = _sqlite(tmp_path)
    first = _study(url)
    cells = SPACE.known_cells(["elman", "gru"])
    assert enqueue_baselines(first, cells) == list(cells)
    assert enqueue_baselines(first, cells) == []
    second = _study(url)  # another driver on the same study
    assert enqueue_baselines(second, cells) == []
    # the waiting trials run: each gets its known cell's params and its tag
    for _ in cells:
        trial = first.ask()
        spec = SPACE.suggest(trial)
        assert trial.user_attrs["baseline"] in cells
        assert trial.params == cells[trial.user_attrs["baseline"]]
        assert spec.hidden_size == trial.params["hidden"]
        if trial.user_attrs["baseline"] != "gru-h16":
            first.tell(trial, [0.5, 100.0])
    # the driver dies while gru-h16 runs; resume continues it, still tagged, and enqueues nothing new
    trial = running_trials(first)[0]
    trial_attrs = dict(trial.user_attrs)
    optuna.trial.Trial(first, trial._trial_id).set_user_attr("spec", "{}")
    recover_trials(first, running_trials(first))
    assert enqueue_baselines(_study(url), cells) == []
    waiting = first.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs["baseline"] for t in waiting] == [trial_attrs["baseline"]]
    tags = [t.user_attrs.get("baseline") for t in first.get_trials()]
    assert sorted(tags) == sorted([*cells, "gru-h16"])  # the interrupted one and its continuation


def test_compare_picks_the_best_baseline_that_costs_no_more():
    baselines = [Score(0, 100, 0.90, 0.89, baseline="elman-h8"), Score(1, 300, 0.95, 0.94, baseline="gru-h8"),
                 Score(2, 500, 0.97, 0.96, baseline="gru-h16")]
    found = [Score(3, 320, 0.96, 0.95), Score(4, 50, 0.80, 0.80)]
    rival = best_baseline_within(baselines, found[0].macs, ACC)
    assert rival.baseline == "gru-h8" and found[0].val - rival.val == pytest.approx(0.01)
    assert best_baseline_within(baselines, found[1].macs, ACC) is None
    assert [s.number for s in front_of(baselines + found, ACC)] == [2, 3, 1, 0, 4]
    line = summary_line(baselines + found, ACC)
    assert "trial 3" in line and "gru-h16" in line and "trails it by 0.0100" in line and "gru-h8" in line


def test_confirmation_scores_are_means_and_sds_over_the_recorded_seeds(tmp_path):
    study = _study(_sqlite(tmp_path))
    study.enqueue_trial({}, user_attrs={"baseline": "gru-h8"})
    for values in ([0.9, 10.0], [0.8, 5.0]):
        trial = study.ask()
        study.tell(trial, values)
    confirm.record(study, 0, 1, 0.90, 0.88)
    confirm.record(study, 0, 2, 0.94, 0.90)
    confirm.record(study, 0, 2, 0.10, 0.10)  # recorded once: a repeated seed is ignored
    confirm.record(study, 1, 1, 0.80, 0.70)
    confirm.record(study, 1, 2, math.nan, math.nan)  # diverged on one seed
    scores = {s.number: s for s in confirm.scores(study)}
    assert scores[0].seeds == 2 and scores[0].val == pytest.approx(0.92) and scores[0].test == pytest.approx(0.89)
    assert scores[0].val_sd == pytest.approx(math.sqrt(0.0008)) and scores[0].baseline == "gru-h8"
    assert scores[1].val == -math.inf  # a cell that diverged on any seed ranks below every other
    trials = study.get_trials()
    assert confirm.pending(study, trials, [1, 2, 3]) == [(trials[0], 3), (trials[1], 3)]
    assert [is_baseline(t) for t in confirm.targets(study, top=3)] == [False, True]


def test_retrain_is_deterministic_and_seeds_differ():
    from search_spaces import gru

    data = {"name": "digits-seq"}
    train = {"epochs": 1, "batch_size": 128, "lr": 0.01}
    spec = gru(8).to_json()
    one, again, other = (confirm.retrain(spec, data, train, seed) for seed in (1, 1, 2))
    assert one == again and one != other and all(0 < v <= 1 for v in one)


def test_baselines_the_space_cannot_express_are_refused_at_config_time():
    with pytest.raises(ConfigError, match="cannot express"):
        parse_config({"space": {"name": "gated", "memory": ["none"]}, "search": {"baselines": ["lstm"]}})
    with pytest.raises(ConfigError, match="unknown cell"):
        parse_config({"space": {"name": "gated"}, "search": {"baselines": ["gruu"]}})
    assert parse_config({"space": {"name": "gated"}, "search": {"baselines": []}}).search.baselines == []


def _search(tmp_path, name: str, epochs: int, search: dict) -> optuna.Study:
    """``nas search`` of a tiny gated-space config on digits-seq; the study it wrote."""
    config = {"name": name, "data": {"name": "digits-seq"}, "space": {"name": "gated", "hidden_sizes": [8]},
              "train": {"epochs": epochs, "batch_size": 128}, "search": {"max_concurrent": 2, **search}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["search", str(path), "--runs-dir", str(tmp_path / "runs")]) == 0
    return optuna.load_study(study_name=name, storage=default_storage(tmp_path / "runs" / name))


@pytest.mark.slow
def test_search_trains_baselines_first_confirms_and_compares(ray_cluster, tmp_path, capsys):
    search = {"trials": 5, "sampler": "rea", "baselines": ["elman", "gru"], "confirm": 2, "confirm_top": 1}
    study = _search(tmp_path, "base", 2, search)
    runs = str(tmp_path / "runs")
    trials = study.get_trials()
    assert len(trials) == 5
    assert [t.user_attrs.get("baseline") for t in trials[:2]] == ["elman-h8", "gru-h8"]
    assert not any(is_baseline(t) for t in trials[2:])
    scores = confirm.scores(study)
    assert {s.baseline for s in scores} >= {"elman-h8", "gru-h8"}
    assert all(s.seeds == 2 and not math.isnan(s.val_sd) for s in scores)
    out = capsys.readouterr().out
    assert "confirmed Pareto front" in out and "best baseline" in out
    # run again (a resume of a finished study): nothing enqueued or retrained twice
    again = _search(tmp_path, "base", 2, search)
    assert len(again.get_trials()) == 5 and again.user_attrs == study.user_attrs
    assert main(["pareto", "base", "--runs-dir", runs]) == 0
    assert "vs baseline" in capsys.readouterr().out


@pytest.mark.slow
def test_a_time_budget_stops_proposing_and_lets_running_trials_finish(ray_cluster, tmp_path, capsys):
    study = _search(tmp_path, "budget", 1, {"trials": 10_000, "sampler": "random", "baselines": [], "time_budget_s": 4})
    states = [t.state for t in study.get_trials()]
    assert 1 <= len(states) < 1000 and TrialState.RUNNING not in states and TrialState.WAITING not in states
    assert all(s == TrialState.COMPLETE for s in states)


def test_confirmation_retrains_each_found_cell_once(tmp_path):
    """An isomorphic twin carries its twin's results: confirming both would train one cell twice."""
    study = _study(_sqlite(tmp_path))
    for values, key in (([0.9, 10.0], "a"), ([0.9, 10.0], "a"), ([0.8, 5.0], "b")):
        study.enqueue_trial({}, user_attrs={"hash": key})
        study.tell(study.ask(), values)
    assert [t.number for t in confirm.targets(study, top=3)] == [0, 2]


def test_confirmation_names_top_cells_even_when_one_dominates_the_rest(tmp_path):
    """One cheap cell at the best validation score is the whole front; ``confirm_top: 3`` still
    confirms three found cells: the front, then the front of the others, in non-dominated order."""
    study = _study(_sqlite(tmp_path))
    for values in ([0.99, 5.0], [0.98, 50.0], [0.97, 20.0], [0.99, 80.0], [0.90, 10.0]):
        study.tell(study.ask(), values)
    assert [t.number for t in confirm.targets(study, top=1)] == [0]
    # layer 2 (all four non-dominated once trial 0 is gone), best first: 0.99 @ 80, 0.98 @ 50, 0.97 @ 20, 0.90 @ 10
    assert [t.number for t in confirm.targets(study, top=3)] == [0, 3, 1]
    assert [t.number for t in confirm.targets(study, top=10)] == [0, 3, 1, 2, 4]
    scores = [Score(n, m, v, math.nan) for n, (v, m) in enumerate([(0.5, 1), (0.4, 2), (0.6, 3)])]
    assert [s.number for s in nondominated_order(scores, METRICS["mse"], 3)] == [1, 0, 2]  # lower is better


def test_a_repeat_of_a_baseline_is_that_baseline_not_a_found_cell(tmp_path):
    """A proposal that repeats a baseline's cell gets the baseline's results (``duplicate_of``); the
    front, the summary line and confirmation must not present it as a found cell that ties it."""
    study = _study(_sqlite(tmp_path))
    study.enqueue_trial({}, user_attrs={"hash": "mgu", BASELINE_ATTR: "mgu-h128"})
    study.tell(study.ask(), [0.9, 10.0])
    study.enqueue_trial({}, user_attrs={"hash": "mgu", "duplicate_of": 0})  # the repeat
    study.tell(study.ask(), [0.9, 10.0])
    study.enqueue_trial({}, user_attrs={"hash": "new"})
    study.tell(study.ask(), [0.8, 5.0])
    assert [(s.number, s.baseline) for s in single_run_scores(study)] == [(0, "mgu-h128"), (2, None)]
    assert [t.number for t in confirm.targets(study, top=3)] == [2, 0]
    line = summary_line(single_run_scores(study), METRICS["accuracy"])
    assert line is not None and line.startswith("best found cell: trial 2,")
    assert [t.number for t in pareto_front(study)] == [0, 2] and summarize(study).front_size == 2
    assert [p[0] for p in trial_points(study).front] == [2, 0]  # the report draws the cell once
