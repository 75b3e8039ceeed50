"""CurveStopper: stop a trial once its extrapolated curve is unlikely to reach the front.

Two objectives (accuracy up, MACs down): a candidate's MACs are known before it trains, so it
can only join the front if its final accuracy beats the best finished trial that costs no more;
and it only matters if it adds ``min_gain`` (0.5%) of the finished front's hypervolume there, or
beats the best finished trial outright (``_bar``, `workers.front.gain_bar`). One objective: it must
beat the ``top_k``-th best finished trial. The scheduler
stops a trial when ``P(final > bar) < threshold``, using the curves of this search
(:class:`workers.curves.CurvePopulation`: finished ones, and the partial curves of stopped ones
for the early steps of a chained prediction) once enough have finished, and the parametric
ensemble (:func:`workers.curves.fit_curve`) before that.

It decides as soon as the evidence allows (issue 18): from epoch 2 of 40-50 (``grace_period``), once 4
trials have finished (``min_finished``, ``min_references``: the fewest the population model can fit,
3 features + 1; its Student-t widening keeps a prediction from few curves wide). In a replay with
4 workers the first 4 trials finish together, so waiting for a fifth left the next 4 untouched to
their last epoch. With ``threshold`` 0.07 (against one bar and against the front) this reached
3.71x fewer epochs keeping the best in 98.8% of ppuda per-epoch replays (tuning seeds 1000-1079),
against 3.50x / 98.8% for the previous defaults (grace 3, 5 finished, 0.09). A conformal
recalibration of P(final > bar) per epoch fraction, on the predictions the stopper made for trials
that then finished (``calibrate``), did not help: 3.64x / 96.3% against 3.75x / 97.5% without it,
on those seeds with grace 3, 4 finished and 0.09 (finished trials are the survivors, so their
calibration is not the stopped ones'; the under-confidence seen at early epochs is not fixed by it).
The defaults were chosen on replays that the reported benchmark does not use
(``benchmarks/early_stopping.py``).

The front's rule alone ("finish every trial that can still join the front") could not halve a
real search's epochs even with perfect predictions: replays of a 40-trial charlm search's curves
saved at most 1.98x, a 60-trial BasicMotions search's 2.83x (issue 18), because a trial that joins
the front by a hair, next to a cheaper one as good, is still "on the front". What a search is
judged by is the front's hypervolume, so a trial must be able to add a share of it
(``min_gain``). Chosen on replays of our own searches' curves (tuning seeds 1000-1019; BasicMotions
60 x 40 epochs, charlm 40 x 10): ``min_gain`` 0.005, the front's threshold 0.15 and noise margin
1.0 (BasicMotions curves move in steps of 0.025: 0.5 lost more), grace 5% of the budget: BasicMotions
2.51x fewer epochs keeping 98.8% of the hypervolume (the front rule alone: 1.68x, 99.4%), charlm
2.23x keeping 99.5% (1.41x, 100%), median stop 22% and 10% of the budget. Hypervolumes are the
study's (`make_scheduler(..., reference=)`: bits per character from guessing's log2 V); measured from
the worst finished trial instead, charlm's gains looked 5x larger and the stopper saved 1.73x.

Any metric, any direction: values are oriented (larger is better; ``mode="min"`` negates) and
the bounds ``lower``/``upper`` are those of the oriented metric, None where it is unbounded
(``make_scheduler`` takes them from the task's `workers.metrics.Metric`). The curve models see the
values in one frame: ``(value - lower) / (upper - lower)`` when both bounds are known (accuracy
unchanged), else measured from the known bound (or, with none, from the first finished curve's
final value) in units of the range the first finished curve covered (bits per character, MSE: the
families' and the population model's constants -- ridge, floors, model error -- are in units of a
typical curve's rise, and a change of the metric's units changes no decision). A
value reported outside the given bounds means they are wrong, and a stopper under wrong bounds
may never stop anything (a loss fed as ``-loss`` under accuracy's ``[0, 1]``): that is logged as
an error once, not ignored.

Only trials that reached their last epoch count as finished: a trial this scheduler stopped is
reported to ``on_trial_complete`` by Ray too, and must not enter the front or count as a finished
reference curve with its partial value (the mistake of Ray Tune issue 6056, on the searcher side).
"""

from __future__ import annotations

import logging
import math
import pickle
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from ray.tune.result import DEFAULT_METRIC
from ray.tune.schedulers.trial_scheduler import FIFOScheduler, TrialScheduler

from workers.curves import CurvePopulation, Prediction, fit_curve
from workers.front import gain_bar, hypervolume
from workers.trial import config_baseline, config_cost, config_epochs

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

__all__ = ["CurveStopper"]

logger = logging.getLogger(__name__)

# Default thresholds, chosen on ppuda replay seeds 1000+ (benchmarks/early_stopping.py): for the
# front the largest keeping it at least as often as the previous 0.05 did (val curves); for one
# objective, with the earlier decisions (grace 2, 4 finished), the largest of 0.07 / 0.08 / 0.09
# keeping the best in >= 97.5% of train-curve replays 1000-1079 with a replay to spare (0.09: 2 lost).
SINGLE_THRESHOLD = 0.07
# The front's defaults, with ``min_gain``: chosen on replays of our own long-trial searches' curves
# (BasicMotions 40 epochs, charlm 10; seeds 1000-1019), see the module docstring.
PARETO_THRESHOLD = 0.15
PARETO_MIN_GAIN = 0.005
SINGLE_NOISE_MARGIN = 0.5
PARETO_NOISE_MARGIN = 1.0


class CurveStopper(FIFOScheduler):
    """Learning-curve early stopping aware of the Pareto front.

    Args:
        metric: the reported metric (``"accuracy"``).
        mode: ``"max"`` or ``"min"`` (a ``min`` metric is negated inside).
        max_epochs: the final epoch, unless a trial's ``config["train"]["epochs"]`` says otherwise.
        grace_period: never stop before this epoch; ``None``: 5% of ``max_epochs``, at least 1
            (2 of 40 or 50 epochs, 1 of a 10-epoch language model).
        threshold: stop when the probability of reaching the front is below this; ``None``:
            ``SINGLE_THRESHOLD`` for one objective, ``PARETO_THRESHOLD`` for the front.
        margin: count a trial as reaching the front when it comes within ``margin`` of it
            (ties within measurement noise should not be decided by a prediction).
        noise_margin: a further margin, in units of the metric's epoch-to-epoch noise std,
            estimated from the finished curves (robust: MAD of successive differences); ``None``:
            ``SINGLE_NOISE_MARGIN`` for one objective, ``PARETO_NOISE_MARGIN`` for the front.
        min_finished: no stop before this many trials have finished.
        objective: ``"pareto"`` (bar = best finished accuracy at no more MACs), ``"single"``
            (bar = ``top_k``-th best) or ``"auto"`` (pareto when the trial config has a ``cost``).
        top_k: for ``"single"``: the rank a trial must be able to reach.
        cost_key: the key of the compute objective in the trial config's ``cost``.
        lower, upper: the oriented metric's bounds (after negation for ``min``: bits per
            character, >= 0, has ``upper=0``); None where it is unbounded.
        min_references: finished curves before the population model replaces the families.
        time_attr: result key holding the 1-based epoch; ``training_iteration`` if absent.
        track: ``"best"``: a trial's value is the best so far (the search keeps the best epoch's
            weights and tells the study its best accuracy), so the running best curve is
            extrapolated; ``"last"``: the value at the last epoch.
        calibrate: recalibrate P(final > bar) on the finished trials' earlier predictions made
            within ``calibration_window`` (fraction of the budget) of the current epoch, once
            ``min_calibration`` exist (conformal; off by default: it did not pay, see above).
        min_gain: the front: the share of the finished front's hypervolume (scores from
            ``reference``; MACs up to 1.1x the costliest trial seen) a
            trial must be able to add, unless it can beat the best; ``None``: ``PARETO_MIN_GAIN``;
            0: joining the front is enough.
        reference: the oriented score hypervolumes are measured from (`make_scheduler` passes the
            study's: bits per character of guessing, negated); None: ``lower``, or for a metric
            unbounded below the worst finished score.

    Example:
        >>> from workers.stopping import CurveStopper
        >>> stopper = CurveStopper(metric="accuracy", mode="max", max_epochs=20, lower=0.0, upper=1.0)
        >>> stopper.debug_string()
        'CurveStopper: 0 finished, 0 stopped.'
    """

    def __init__(
        self,
        *,
        metric: str | None = None,
        mode: str | None = None,
        max_epochs: int,
        grace_period: int | None = None,
        threshold: float | None = None,
        margin: float = 0.0,
        noise_margin: float | None = None,
        min_finished: int = 4,
        objective: str = "auto",
        top_k: int = 1,
        cost_key: str = "macs",
        upper: float | None = None,
        lower: float | None = None,
        min_references: int = 4,
        time_attr: str = "epoch",
        track: str = "best",
        calibrate: bool = False,
        calibration_window: float = 0.125,
        min_calibration: int = 20,
        min_gain: float | None = None,
        reference: float | None = None,
    ) -> None:
        super().__init__()
        if max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {max_epochs}")
        if grace_period is None:
            grace_period = max(1, max_epochs // 20)
        if not 1 <= grace_period < max_epochs:
            raise ValueError(f"grace_period must be in [1, max_epochs={max_epochs}): at {grace_period} the "
                             "curve stopper could never stop a trial (use policy 'none' for that)")
        if threshold is not None and not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold} (0 never stops a trial: use policy 'none')")
        if lower is not None and upper is not None and not lower < upper:
            raise ValueError(f"lower must be below upper, got lower={lower}, upper={upper}")
        if margin < 0.0 or (noise_margin is not None and noise_margin < 0.0):
            raise ValueError(f"margin and noise_margin must be >= 0, got {margin}, {noise_margin}")
        if min_gain is not None and not 0.0 <= min_gain < 1.0:
            raise ValueError(f"min_gain must be in [0, 1), got {min_gain}")
        if min_finished < 1:
            raise ValueError(f"min_finished must be >= 1, got {min_finished}")
        if objective not in ("auto", "pareto", "single"):
            raise ValueError(f"objective must be 'auto', 'pareto' or 'single', got {objective!r}")
        if track not in ("best", "last"):
            raise ValueError(f"track must be 'best' or 'last', got {track!r}")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if mode is not None and mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self._metric = metric
        self._mode = mode
        self._max_epochs = max_epochs
        self._grace_period = grace_period
        self._threshold = threshold
        self._margin = margin
        self._noise_margin = noise_margin
        self._min_finished = min_finished
        self._objective = objective
        self._top_k = top_k
        self._cost_key = cost_key
        self._upper = upper
        self._lower = lower
        self._min_references = min_references
        self._time_attr = time_attr
        self._track = track
        self._calibrate = calibrate
        self._calibration_window = calibration_window
        self._min_calibration = min_calibration
        self._min_gain = min_gain
        self._reference = reference
        self._max_cost = 0.0  # the largest cost of any trial seen: the hypervolume's reference is 1.1x it
        self._predictions: dict[str, list[tuple[float, Prediction]]] = {}  # a running trial's decisions
        self._pits: list[tuple[float, float]] = []  # (epoch fraction, predicted P(final > truth)) of finished trials
        self._curves: dict[str, list[tuple[float, float, float]]] = {}  # (epoch, value, raw)
        self._finished: dict[str, tuple[float, float]] = {}  # trial_id -> (value, cost)
        self._stopped: set[str] = set()
        self._populations: dict[int, CurvePopulation] = {}  # final epoch -> finished curves
        self._noise: list[float] = []  # per finished curve: noise std of its reports
        self._frame: tuple[float, float] | None = self._bounded_frame()  # (offset, scale) for the models
        self._backlog: list[tuple[int, np.ndarray, np.ndarray, bool]] = []  # curves waiting for a frame
        self._out_of_bounds = 0  # reports outside [lower, upper]: the bounds are wrong

    # ---- Ray contract -------------------------------------------------------------------

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        if (self._metric and metric) or (self._mode and mode):
            return False
        if metric:
            self._metric = metric
        if mode:
            self._mode = mode
        if self._metric is None and self._mode:
            self._metric = DEFAULT_METRIC
        return True

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        if not self._metric or self._mode not in ("min", "max"):
            raise ValueError(
                f"{type(self).__name__} needs a metric ({self._metric!r}) and a mode "
                f"({self._mode!r}) of 'min' or 'max': pass them here or to tune.TuneConfig()"
            )
        self._curves.setdefault(trial.trial_id, [])  # a restored trial keeps its curve
        self._max_cost = max(self._max_cost, self._cost(trial) or 0.0)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        value = self._value(result)
        epoch = self._epoch(result)
        if value is None or epoch is None:
            return TrialScheduler.CONTINUE
        if trial.trial_id in self._stopped:
            return TrialScheduler.STOP
        self._check_bounds(value)
        curve = self._curves.setdefault(trial.trial_id, [])
        _append(curve, epoch, value, self._track)
        final = self._final_epoch(trial)
        if epoch < self._grace_period or epoch >= final or config_baseline(getattr(trial, "config", None)):
            return TrialScheduler.CONTINUE  # a baseline trains to the end and then serves as a reference
        if len(self._finished) < self._min_finished:
            return TrialScheduler.CONTINUE
        bar = self._bar(trial)
        if bar is None:
            return TrialScheduler.CONTINUE
        bar -= self._margin_value(trial)
        pred = self._predict(curve, final)
        if pred is None:  # no frame yet: nothing finished has moved
            return TrialScheduler.CONTINUE
        prob = pred.prob_above(self._to_frame(bar))
        if self._calibrate:
            self._predictions.setdefault(trial.trial_id, []).append((epoch / final, pred))
            prob = self._calibrated(prob, epoch / final)
        threshold = self._threshold_for(trial)
        if prob >= threshold:
            return TrialScheduler.CONTINUE
        logger.debug(
            "CurveStopper: stop %s at epoch %s: P(final > %.4f) = %.4f < %.4f",
            trial.trial_id, epoch, bar, prob, threshold,
        )
        self._stopped.add(trial.trial_id)
        return TrialScheduler.STOP

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict) -> None:
        curve = self._curves.pop(trial.trial_id, [])
        predictions = self._predictions.pop(trial.trial_id, [])
        value, epoch = self._value(result), self._epoch(result)
        if value is not None and epoch is not None and (not curve or curve[-1][0] < epoch):
            _append(curve, epoch, value, self._track)
        final = self._final_epoch(trial)
        if trial.trial_id in self._stopped or not curve or curve[-1][0] < final:
            if curve:  # pruned or cut short: its partial value is not a result, but its shape is data
                epochs, values, _ = np.array(curve).T
                self._add_curve(final, epochs, values, finished=False)
            return
        self._finished[trial.trial_id] = (curve[-1][1], self._cost(trial))
        truth = self._to_frame(curve[-1][1]) if self._frame is not None else None
        for fraction, pred in predictions:
            self._pits.append((fraction, pred.prob_above(truth)))
        epochs, values, raw = np.array(curve).T
        self._add_curve(final, epochs, values, finished=True)
        self._noise.append(_noise_std(raw[len(raw) // 2 :]))

    def _calibrated(self, prob: float, fraction: float) -> float:
        """``prob`` = P(final > bar) as predicted at ``fraction`` of the budget, recalibrated on the
        finished trials: the share of their predictions made near that fraction for which the truth
        was less likely than ``prob`` (conformal: one pseudo-count, so few references never yield
        an overconfident stop). Unchanged until ``min_calibration`` such predictions exist."""
        pits = np.array([u for f, u in self._pits if abs(f - fraction) <= self._calibration_window])
        if len(pits) < self._min_calibration:
            return prob
        return float((np.sum(pits < prob) + 1) / (len(pits) + 1))

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self._curves.pop(trial.trial_id, None)
        self._predictions.pop(trial.trial_id, None)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        self._curves.pop(trial.trial_id, None)
        self._predictions.pop(trial.trial_id, None)

    def debug_string(self) -> str:
        wrong = f" {self._out_of_bounds} reports outside the bounds {self._bounds()}!" if self._out_of_bounds else ""
        return f"CurveStopper: {len(self._finished)} finished, {len(self._stopped)} stopped.{wrong}"

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        if "_frame" not in state:  # saved before bounds came from the metric: keep the ones given now
            state.pop("_lower", None)
            state.pop("_upper", None)
        self.__dict__.update(state)

    @property
    def stopped_trial_ids(self) -> frozenset[str]:
        """Trials this scheduler stopped (they are pruned, not finished)."""
        return frozenset(self._stopped)

    # ---- helpers ------------------------------------------------------------------------

    def _value(self, result: dict) -> float | None:
        """The metric as 'higher is better', or ``None`` when missing or not finite."""
        raw = result.get(self._metric)
        if raw is None or not np.isfinite(raw):
            return None
        return float(raw) if self._mode == "max" else -float(raw)

    def _epoch(self, result: dict) -> float | None:
        epoch = result.get(self._time_attr, result.get("training_iteration"))
        return None if epoch is None else float(epoch)

    def _final_epoch(self, trial: Trial) -> int:
        return config_epochs(getattr(trial, "config", None), self._max_epochs)

    def _cost(self, trial: Trial) -> float | None:
        return config_cost(getattr(trial, "config", None), self._cost_key)

    def _bounds(self) -> tuple[float, float]:
        """The oriented metric's bounds, infinite where it is unbounded."""
        lower = -math.inf if self._lower is None else float(self._lower)
        upper = math.inf if self._upper is None else float(self._upper)
        return lower, upper

    def _bounded_frame(self) -> tuple[float, float] | None:
        """``(lower, upper - lower)`` when both bounds are known; else None until a curve finishes."""
        lower, upper = self._bounds()
        return (lower, upper - lower) if math.isfinite(lower) and math.isfinite(upper) else None

    def _to_frame(self, value: float | np.ndarray) -> float | np.ndarray:
        """A value (or values) in the curve models' frame; needs ``self._frame``."""
        offset, scale = self._frame
        return (value - offset) / scale

    def _add_curve(self, final: int, epochs: np.ndarray, values: np.ndarray, *, finished: bool) -> None:
        """Hand a curve to the population of its budget; before the frame is known (an unbounded
        metric and no finished curve that moved yet) keep it until it is."""
        self._backlog.append((final, epochs, values, finished))
        if self._frame is None:
            span = float(np.ptp(values)) if finished else 0.0
            if not span > 0.0:
                return
            lower, upper = self._bounds()
            offset = lower if math.isfinite(lower) else (upper if math.isfinite(upper) else float(values[-1]))
            self._frame = (offset, span)
        for final_, epochs_, values_, finished_ in self._backlog:
            self._population(final_).add(epochs_, self._to_frame(values_), finished=finished_)
        self._backlog = []

    def _population(self, final: int) -> CurvePopulation:
        if final not in self._populations:
            lower, upper = (self._to_frame(b) for b in self._bounds())
            self._populations[final] = CurvePopulation(
                final, upper=upper, lower=lower, min_curves=self._min_references
            )
        return self._populations[final]

    def _predict(self, curve: list[tuple[float, float, float]], final: int) -> Prediction | None:
        """The final value's distribution in the models' frame (`_to_frame`): the population model
        when enough curves finished at this budget, else the families; None before a frame."""
        if self._frame is None:
            return None
        epochs, values, _ = np.array(curve).T
        values = self._to_frame(values)
        pred = self._population(final).predict(epochs, values)
        if pred is None:
            lower, upper = (self._to_frame(b) for b in self._bounds())
            pred = fit_curve(epochs, values, final, lower=lower, upper=upper)
        return pred

    def _check_bounds(self, value: float) -> None:
        """Say loudly, once, that a report lies outside the bounds: they belong to another metric."""
        lower, upper = self._bounds()
        if lower <= value <= upper:
            return
        self._out_of_bounds += 1
        if self._out_of_bounds == 1:
            message = (
                f"CurveStopper: {self._metric!r} reported {value if self._mode == 'max' else -value!r}, outside "
                f"its bounds (oriented for mode={self._mode!r}: [{lower}, {upper}]); with wrong bounds the "
                "stopper may never stop a trial: pass the task's metric (make_scheduler(..., scoring=metric))"
            )
            logger.error(message)
            warnings.warn(message, RuntimeWarning, stacklevel=3)

    def _margin_value(self, trial: Trial) -> float:
        noise = float(np.median(self._noise)) if self._noise else 0.0
        factor = self._noise_margin
        if factor is None:
            factor = PARETO_NOISE_MARGIN if self._pareto(trial) else SINGLE_NOISE_MARGIN
        return self._margin + factor * noise

    def _pareto(self, trial: Trial) -> bool:
        return self._objective == "pareto" or (self._objective == "auto" and self._cost(trial) is not None)

    def _threshold_for(self, trial: Trial) -> float:
        if self._threshold is not None:
            return self._threshold
        return PARETO_THRESHOLD if self._pareto(trial) else SINGLE_THRESHOLD

    def _bar(self, trial: Trial) -> float | None:
        """The final value the trial must beat to matter, or ``None`` if nothing bars it.

        Pareto: the best finished value at no more cost (any value above it joins the front); with
        ``min_gain`` the value that adds that share of the finished front's hypervolume, or beats
        the best finished value, whichever is lower (`workers.front.gain_bar`)."""
        cost = self._cost(trial)
        if self._pareto(trial):
            if cost is None:
                return None
            points = [(v, c) for v, c in self._finished.values() if c is not None]
            share = PARETO_MIN_GAIN if self._min_gain is None else self._min_gain
            if share > 0.0 and points:
                ref_score, ref_cost = self._reference_score(), 1.1 * max(self._max_cost, cost)
                gain = share * hypervolume(points, ref_score, ref_cost)
                return min(gain_bar(points, cost, gain, ref_score, ref_cost), max(v for v, _ in points))
            cheaper = [v for v, c in points if c <= cost]
            return max(cheaper) if cheaper else None
        values = sorted((v for v, _ in self._finished.values()), reverse=True)
        return values[self._top_k - 1] if len(values) >= self._top_k else None

    def _reference_score(self) -> float:
        """The score hypervolumes are measured from: ``reference`` when given, else the oriented
        metric's lower bound (accuracy: 0), else (bits per character) the worst finished value."""
        if self._reference is not None:
            return float(self._reference)
        lower, _ = self._bounds()
        return lower if math.isfinite(lower) else min(v for v, _ in self._finished.values())


def _append(curve: list[tuple[float, float]], epoch: float, value: float, track: str) -> None:
    """Add ``(epoch, tracked value, raw value)``; with ``track="best"`` the running maximum.

    A trial restored from a checkpoint reports some epochs again: the newer report replaces.
    """
    while curve and curve[-1][0] >= epoch:
        curve.pop()
    raw = value
    if track == "best" and curve:
        value = max(value, curve[-1][1])
    curve.append((epoch, value, raw))


def _noise_std(values: np.ndarray) -> float:
    """Robust noise level of a curve's reports: MAD of successive differences over sqrt(2)."""
    if len(values) < 3:
        return 0.0
    d = np.diff(values)
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))
