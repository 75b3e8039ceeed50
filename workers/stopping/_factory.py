"""``make_scheduler``: the ``stopping:`` key of a search config, as a Ray Tune scheduler.

One list, `POLICIES`: a policy is a callable taking ``metric``, ``mode``, ``max_epochs`` and the
metric's bounds ``lower``/``upper`` (oriented so that larger is better; None where unbounded) and its
options as further keyword arguments, so its signature is the list of options `check_options`
accepts. Adding a policy is one file (the scheduler) and one line here.

Direction and bounds come from the task's metric (`workers.metrics.Metric`: ``direction``,
``lower``, ``upper``), never from the config's options: a loss fed with an accuracy's bounds is a
stopper that never stops (issue 18).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Protocol

from ray.tune.schedulers import (
    AsyncHyperBandScheduler,
    FIFOScheduler,
    MedianStoppingRule,
    TrialScheduler,
)

from workers.trial import config_baseline

from ._curve_stopper import CurveStopper

__all__ = ["POLICIES", "Scoring", "check_options", "make_scheduler", "oriented_bounds"]

# given by the search (from the task's metric), not by the config's options
SUPPLIED = ("metric", "mode", "max_epochs", "lower", "upper", "reference")


class Scoring(Protocol):
    """What the factory reads of a metric (`workers.metrics.Metric` is one)."""

    direction: str  # "maximize" | "minimize"
    lower: float | None
    upper: float | None


def oriented_bounds(scoring: Scoring) -> tuple[float | None, float | None]:
    """``(lower, upper)`` of the metric turned so that larger is better (a minimised metric's
    bounds are negated and swapped); None stays None (unbounded on that side)."""
    if scoring.direction == "maximize":
        return scoring.lower, scoring.upper
    if scoring.direction == "minimize":
        return (None if scoring.upper is None else -scoring.upper), (None if scoring.lower is None else -scoring.lower)
    raise ValueError(f"metric direction must be 'maximize' or 'minimize', got {scoring.direction!r}")


def _none(metric: str, mode: str, max_epochs: int, lower: float | None = None, upper: float | None = None) -> TrialScheduler:
    return FIFOScheduler()


class _BaselinesFinish:
    """Mixin for Ray's schedulers: a baseline trial (its config's ``baseline``) is never stopped --
    the search compares its cells with the known ones trained to the end by the same recipe -- while
    the policy still sees its results (ASHA's rungs, the median rule's running means)."""

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)  # type: ignore[misc]
        if not config_baseline(getattr(trial, "config", None)):
            return decision
        getattr(self, "_stopped_trials", set()).discard(trial)  # the median rule would stop recording it
        return TrialScheduler.CONTINUE


class _ASHA(_BaselinesFinish, AsyncHyperBandScheduler):
    """Ray's ASHA; baselines finish."""


class _Median(_BaselinesFinish, MedianStoppingRule):
    """Ray's median stopping rule; baselines finish."""


def _asha(
    metric: str, mode: str, max_epochs: int, lower: float | None = None, upper: float | None = None, *,
    grace_period: int = 1, reduction_factor: float = 4, brackets: int = 1,
) -> TrialScheduler:
    if not 1 <= grace_period <= max_epochs:
        raise ValueError(f"asha grace_period must be in [1, max_epochs={max_epochs}], got {grace_period}")
    if reduction_factor <= 1:
        raise ValueError(f"asha reduction_factor must be > 1, got {reduction_factor}")
    return _ASHA(
        time_attr="training_iteration", metric=metric, mode=mode, max_t=max_epochs,
        grace_period=grace_period, reduction_factor=reduction_factor, brackets=brackets,
    )


def _median(
    metric: str, mode: str, max_epochs: int, lower: float | None = None, upper: float | None = None, *,
    grace_period: int = 1, min_samples_required: int = 3,
) -> TrialScheduler:
    if grace_period < 0:
        raise ValueError(f"median grace_period must be >= 0, got {grace_period}")
    return _Median(
        time_attr="training_iteration", metric=metric, mode=mode, grace_period=grace_period,
        min_samples_required=min_samples_required,
    )


POLICIES: dict[str, Callable[..., TrialScheduler]] = {
    "none": _none,
    "curve": CurveStopper,
    "asha": _asha,
    "median": _median,
}


def policy_options(policy: str) -> list[str]:
    """The options policy ``policy`` takes (its keyword arguments beyond `SUPPLIED`)."""
    params = inspect.signature(POLICIES[policy]).parameters.values()
    return [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in SUPPLIED]


def check_options(policy: str, options: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming an unknown policy or an option it does not take."""
    if policy not in POLICIES:
        raise ValueError(f"unknown stopping policy {policy!r}; choose one of {sorted(POLICIES)}")
    allowed = policy_options(policy)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for stopping policy {policy!r}; allowed: {sorted(allowed)}")


def make_scheduler(
    policy: str,
    *,
    metric: str = "score",
    mode: str | None = None,
    max_epochs: int,
    scoring: Scoring | None = None,
    reference: float | None = None,
    options: dict | None = None,
) -> TrialScheduler:
    """Build the early-stopping scheduler named by a search config.

    Args:
        policy: ``"curve"`` (:class:`CurveStopper`), ``"asha"`` (Ray's AsyncHyperBandScheduler),
            ``"median"`` (Ray's MedianStoppingRule) or ``"none"`` (FIFOScheduler).
        metric: the result key the trials report.
        mode: ``"max"`` or ``"min"``; taken from ``scoring`` when given (default ``"max"``).
        max_epochs: the training budget of a trial.
        scoring: the task's metric (`workers.metrics.Metric`): its direction sets ``mode`` and its
            bounds, oriented, go to every policy; without it the metric is taken as unbounded.
        reference: the score hypervolumes are measured from, in the metric's own direction (the
            study's ``reference_score``: bits per character of guessing, log2 V); handed, oriented,
            to a policy that weighs the front's hypervolume (the curve stopper). None: its default.
        options: the policy's keyword options (e.g. ``grace_period``, ``threshold``).

    Raises:
        ValueError: naming an unknown policy, an unknown option, a bad value, or a ``mode`` that
            contradicts ``scoring``.
    """
    options = dict(options or {})
    check_options(policy, options)
    lower = upper = None
    if scoring is not None:
        lower, upper = oriented_bounds(scoring)
        implied = "max" if scoring.direction == "maximize" else "min"
        if mode not in (None, implied):
            raise ValueError(f"mode {mode!r} contradicts the metric's direction {scoring.direction!r}")
        mode = implied
    mode = mode or "max"
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if max_epochs < 1:
        raise ValueError(f"max_epochs must be >= 1, got {max_epochs}")
    if reference is not None and "reference" in inspect.signature(POLICIES[policy]).parameters:
        options["reference"] = reference if mode == "max" else -reference
    return POLICIES[policy](metric=metric, mode=mode, max_epochs=max_epochs, lower=lower, upper=upper, **options)
