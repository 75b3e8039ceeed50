"""Stopping schedulers fed synthetic result dicts, no cluster (as Ray's test_trial_scheduler.py)."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ray.tune.schedulers import (
    AsyncHyperBandScheduler,
    FIFOScheduler,
    MedianStoppingRule,
    TrialScheduler,
)

from workers.stopping import CurveStopper, make_scheduler

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP
EPOCHS = 20


@dataclass(eq=False)
class _Trial:
    trial_id: str
    config: dict[str, Any] = field(default_factory=dict)


def _trial(name: str, macs: int = 1000, epochs: int = EPOCHS) -> _Trial:
    return _Trial(name, {"cost": {"macs": macs, "params": macs}, "spec": "{}", "number": 0,
                         "train": {"epochs": epochs}})


def _result(epoch: int, acc: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {"epoch": epoch, "training_iteration": epoch, "loss": 1.0}
    if acc is not None:
        out["accuracy"] = acc
    return out


def _curve(top: float, epoch: int, tau: float = 4.0) -> float:
    return top * (1.0 - np.exp(-epoch / tau))


def _finish(s: CurveStopper, trial: _Trial, top: float) -> None:
    """Run a trial through all its epochs; Ray sends the last result to on_trial_complete."""
    s.on_trial_add(None, trial)
    for e in range(1, EPOCHS):
        assert s.on_trial_result(None, trial, _result(e, _curve(top, e))) == CONTINUE
    s.on_trial_complete(None, trial, _result(EPOCHS, _curve(top, EPOCHS)))


def _stopper(**kw: Any) -> CurveStopper:
    kw = {"metric": "accuracy", "mode": "max", "max_epochs": EPOCHS, "grace_period": 3,
          "min_finished": 3, "lower": 0.0, "upper": 1.0, **kw}
    return CurveStopper(**kw)


def _run_until_stop(s: CurveStopper, trial: _Trial, top: float) -> int | None:
    """Epoch at which the stopper stops ``trial``, or None if it runs to the end."""
    s.on_trial_add(None, trial)
    for e in range(1, EPOCHS):
        if s.on_trial_result(None, trial, _result(e, _curve(top, e))) == STOP:
            s.on_trial_complete(None, trial, _result(e, _curve(top, e)))
            return e
    s.on_trial_complete(None, trial, _result(EPOCHS, _curve(top, EPOCHS)))
    return None


@pytest.mark.parametrize(
    ("policy", "cls"),
    [("none", FIFOScheduler), ("curve", CurveStopper), ("asha", AsyncHyperBandScheduler),
     ("median", MedianStoppingRule)],
)
def test_make_scheduler_policies(policy: str, cls: type) -> None:
    assert type(make_scheduler(policy, max_epochs=10)) is cls


def test_make_scheduler_rejects_bad_policy_and_options() -> None:
    with pytest.raises(ValueError, match="'hyperband'"):
        make_scheduler("hyperband", max_epochs=10)
    with pytest.raises(ValueError, match="treshold"):
        make_scheduler("curve", max_epochs=10, options={"treshold": 0.1})
    with pytest.raises(ValueError, match="threshold"):
        make_scheduler("curve", max_epochs=10, options={"threshold": 1.5})
    with pytest.raises(ValueError, match="grace_period"):
        make_scheduler("asha", max_epochs=10, options={"grace_period": 20})
    with pytest.raises(ValueError, match="mode"):
        make_scheduler("curve", max_epochs=10, mode="up")
    s = make_scheduler("curve", max_epochs=10, options={"grace_period": 2, "threshold": 0.1})
    assert s._grace_period == 2 and s._threshold == 0.1


def test_on_trial_add_needs_metric_and_mode() -> None:
    s = CurveStopper(max_epochs=EPOCHS)
    with pytest.raises(ValueError, match="metric"):
        s.on_trial_add(None, _trial("a"))
    assert s.set_search_properties("accuracy", "max")
    s.on_trial_add(None, _trial("a"))
    assert not s.set_search_properties("loss", "min")  # already set


def test_continue_when_metric_missing_in_grace_and_before_min_finished() -> None:
    s = _stopper()
    t = _trial("x")
    s.on_trial_add(None, t)
    assert s.on_trial_result(None, t, _result(5, None)) == CONTINUE
    assert s.on_trial_result(None, t, {"accuracy": 0.1}) == CONTINUE  # no epoch key
    for e in range(1, 8):  # hopeless, but nothing has finished yet
        assert s.on_trial_result(None, t, _result(e, 0.1)) == CONTINUE


def test_single_objective_stops_hopeless_keeps_promising() -> None:
    s = _stopper(objective="single")
    for i, top in enumerate([0.8, 0.85, 0.9]):
        _finish(s, _trial(f"f{i}"), top)
    stop_at = _run_until_stop(s, _trial("bad"), 0.5)
    assert stop_at is not None and 3 <= stop_at < 10
    assert _run_until_stop(s, _trial("good"), 0.95) is None
    assert "bad" in s.stopped_trial_ids
    # the pruned trial did not enter the front; the good one did
    assert "bad" not in s._finished and s._finished["good"][0] == pytest.approx(_curve(0.95, EPOCHS))


def test_grace_period_is_respected() -> None:
    s = _stopper(objective="single", grace_period=6)
    for i, top in enumerate([0.8, 0.85, 0.9]):
        _finish(s, _trial(f"f{i}"), top)
    assert _run_until_stop(s, _trial("bad"), 0.3) == 6


def test_top_k_is_more_lenient_than_best() -> None:
    tops = [0.7, 0.75, 0.8, 0.85, 0.9]
    strict, lenient = _stopper(objective="single"), _stopper(objective="single", top_k=5)
    for s in (strict, lenient):
        for i, top in enumerate(tops):
            _finish(s, _trial(f"f{i}"), top)
    assert _run_until_stop(strict, _trial("mid"), 0.78) is not None
    assert _run_until_stop(lenient, _trial("mid"), 0.78) is None


def test_pareto_keeps_cheap_candidates_that_are_worse() -> None:
    s = _stopper()  # objective auto -> pareto, since trials carry macs
    for i, top in enumerate([0.8, 0.85, 0.9]):
        _finish(s, _trial(f"f{i}", macs=1000), top)
    assert _run_until_stop(s, _trial("cheap", macs=10), 0.5) is None  # nothing finished is cheaper
    assert _run_until_stop(s, _trial("costly", macs=5000), 0.5) is not None  # dominated by f2
    # now 'cheap' is on the front: a slightly cheaper, much worse one is still not barred by it
    assert _run_until_stop(s, _trial("cheap2", macs=20), 0.2) is not None


def test_min_mode_on_loss() -> None:
    s = CurveStopper(metric="loss", mode="min", max_epochs=EPOCHS, grace_period=3, min_finished=3,
                     objective="single")
    def loss(top: float, e: int) -> float:
        return 2.0 * np.exp(-e / 4.0) + top
    for i, floor in enumerate([0.1, 0.15, 0.2]):
        t = _trial(f"f{i}")
        s.on_trial_add(None, t)
        for e in range(1, EPOCHS):
            assert s.on_trial_result(None, t, {"epoch": e, "loss": loss(floor, e)}) == CONTINUE
        s.on_trial_complete(None, t, {"epoch": EPOCHS, "loss": loss(floor, EPOCHS)})
    bad = _trial("bad")
    s.on_trial_add(None, bad)
    decisions = [s.on_trial_result(None, bad, {"epoch": e, "loss": loss(1.5, e)}) for e in range(1, 12)]
    assert STOP in decisions


def test_trial_cut_short_is_not_finished() -> None:
    s = _stopper()
    t = _trial("short")
    s.on_trial_add(None, t)
    for e in range(1, 5):
        s.on_trial_result(None, t, _result(e, 0.9))
    s.on_trial_complete(None, t, _result(5, 0.95))  # errored or stopped by another rule
    assert s._finished == {}


def test_save_restore_round_trip(tmp_path: Path) -> None:
    s = _stopper(objective="single")
    for i, top in enumerate([0.8, 0.85, 0.9]):
        _finish(s, _trial(f"f{i}"), top)
    path = str(tmp_path / "sched.pkl")
    s.save(path)
    fresh = _stopper(objective="single")
    fresh.restore(path)
    assert fresh.debug_string() == s.debug_string()
    assert _run_until_stop(fresh, _trial("bad"), 0.5) == _run_until_stop(s, _trial("bad"), 0.5)


def _load_benchmark() -> Any:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "early_stopping.py"
    spec = importlib.util.spec_from_file_location("early_stopping_bench", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_replay_on_synthetic_curves_saves_epochs_and_keeps_best() -> None:
    """Known ends: curves top * (1 - exp(-t / 6)); the best is trained to the end."""
    bench = _load_benchmark()
    rng = np.random.default_rng(0)
    epochs = np.arange(1.0, 31.0)
    tops = rng.uniform(0.3, 0.9, 40)
    curves = [bench.Curve(epochs, t * (1 - np.exp(-epochs / 6)) + rng.normal(0, 0.002, 30), 1.0)
              for t in tops]
    none = bench.replay(curves, make_scheduler("none", max_epochs=30), workers=4)
    curve = bench.replay(
        curves, make_scheduler("curve", max_epochs=30, options={"objective": "single"}), workers=4
    )
    assert none.epochs == 40 * 30
    assert none.epochs / curve.epochs > 2.0
    assert int(np.argmax(tops)) in curve.finished
    median = bench.replay(curves, make_scheduler("median", max_epochs=30), workers=4)
    assert median.epochs < none.epochs  # the Ray baselines run through the same replay


def test_oracle_rule_keeps_best_and_front_on_synthetic_curves() -> None:
    """The benchmark's ceiling row: the curve rule fed the true finals never drops the best (one
    objective) or a front member (Pareto), and still saves epochs."""
    bench = _load_benchmark()
    rng = np.random.default_rng(1)
    epochs = np.arange(1.0, 21.0)
    tops = rng.uniform(0.3, 0.9, 40)
    costs = rng.uniform(1e3, 1e5, 40)
    curves = [bench.Curve(epochs, t * (1 - np.exp(-epochs / 5)) + rng.normal(0, 0.003, 20), float(c))
              for t, c in zip(tops, costs)]
    finals = np.array([c.final for c in curves])
    truth = {str(i): float(f) for i, f in enumerate(finals)}
    single = bench.replay(curves, bench.OracleStopper(truth, metric="score", mode="max", max_epochs=20,
                                                      objective="single"), workers=4)
    assert int(np.argmax(finals)) in single.finished
    assert single.epochs < 0.6 * 40 * 20
    pareto = bench.replay(curves, bench.OracleStopper(truth, metric="score", mode="max", max_epochs=20),
                          workers=4)
    assert bench.pareto_front(finals, costs) <= set(pareto.finished)
    assert single.epochs < pareto.epochs < 40 * 20
    assert set(bench.policies("val", oracle=True)) - set(bench.policies("val")) == {
        "oracle rule (single)", "oracle rule (pareto)"}


def test_reliability_records_every_decision(capsys: pytest.CaptureFixture[str]) -> None:
    """``--reliability``: one record per prediction the stopper made; the stops are exactly the
    records under the threshold, and good curves (known ends) beat the bar more often."""
    bench = _load_benchmark()
    rng = np.random.default_rng(2)
    epochs = np.arange(1.0, 21.0)
    curves = [bench.Curve(epochs, t * (1 - np.exp(-epochs / 5)) + rng.normal(0, 0.003, 20), 1.0)
              for t in rng.uniform(0.3, 0.9, 60)]
    rec = bench.reliability(curves, 40, 4, range(3), {"objective": "single"})
    assert len(rec) > 100 and np.all((rec[:, 1] >= 0) & (rec[:, 1] <= 1))
    stops = 0
    for seed in range(3):
        sample = [curves[i] for i in np.random.default_rng(seed).choice(60, 40, replace=False)]
        res = bench.replay(sample, make_scheduler("curve", max_epochs=20, options={"objective": "single"}), 4)
        stops += 40 - len(res.finished)
    assert stops == int((rec[:, 1] < 0.09).sum()) > 0
    assert rec[rec[:, 1] >= 0.4, 2].mean() > 0.3 > rec[rec[:, 1] < 0.03, 2].mean()
    assert "P in [0.09, 0.2)" in capsys.readouterr().out


def test_noise_margin_keeps_near_ties() -> None:
    """A candidate just under the best, within the reports' noise, is a tie, not a loser."""
    rng = np.random.default_rng(0)

    def run(noise_margin: float) -> int | None:
        s = _stopper(objective="single", noise_margin=noise_margin, track="last", min_finished=8,
                     min_references=8)
        for i, top in enumerate(np.linspace(0.7, 0.85, 8)):
            t = _trial(f"f{i}")
            s.on_trial_add(None, t)
            for e in range(1, EPOCHS):
                s.on_trial_result(None, t, _result(e, _curve(top, e) + rng.normal(0, 0.01)))
            s.on_trial_complete(None, t, _result(EPOCHS, _curve(top, EPOCHS)))
        assert s._margin_value() == pytest.approx(noise_margin * np.median(s._noise))
        return _run_until_stop(s, _trial("tie"), 0.83)

    assert run(0.0) is not None
    assert run(3.0) is None


def test_track_best_uses_running_maximum() -> None:
    s = _stopper(track="best")
    t = _trial("t")
    s.on_trial_add(None, t)
    for e, acc in enumerate([0.5, 0.7, 0.6, 0.65], start=1):
        s.on_trial_result(None, t, _result(e, acc))
    assert [v for _, v, _ in s._curves["t"]] == [0.5, 0.7, 0.7, 0.7]
    with pytest.raises(ValueError, match="track"):
        _stopper(track="mean")


def test_restored_trial_rereports_epochs() -> None:
    """After a failure Ray restores a trial from its checkpoint and epochs come again."""
    s = _stopper(track="last")
    t = _trial("t")
    s.on_trial_add(None, t)
    for e in (1, 2, 3, 4):
        s.on_trial_result(None, t, _result(e, 0.1 * e))
    s.on_trial_add(None, t)  # re-added on restore: keeps the curve
    s.on_trial_result(None, t, _result(3, 0.35))
    assert [(e, v) for e, v, _ in s._curves["t"]] == [(1, 0.1), (2, 0.2), (3, 0.35)]


def test_stopped_trials_feed_the_population_as_partial_curves() -> None:
    s = _stopper(objective="single")
    for i, top in enumerate([0.8, 0.85, 0.9]):
        _finish(s, _trial(f"f{i}"), top)
    stop_at = _run_until_stop(s, _trial("bad"), 0.3)
    assert stop_at is not None
    pop = s._populations[EPOCHS]
    assert len(pop) == 3 and len(pop._partial) == 1 and pop._partial[0][0][-1] == stop_at
    assert "bad" not in s._finished


def test_benchmark_default_row_is_the_search_default() -> None:
    """`stopping: {policy: curve}` passes no options; the benchmark's default row passes none too."""
    bench = _load_benchmark()
    for kind in ("train", "val"):
        assert bench.policies(kind)["curve (default: pareto)"] == ("curve", {})
    from nas.config import StoppingSection

    assert StoppingSection(policy="curve").options == {}
    s = make_scheduler("curve", max_epochs=50)
    assert (s._threshold, s._grace_period, s._objective) == (None, 3, "auto")
    assert s._threshold_for(_trial("t")) == 0.07 and s._threshold_for(_Trial("t")) == 0.09
