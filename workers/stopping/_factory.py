"""``make_scheduler``: the ``stopping:`` key of a search config, as a Ray Tune scheduler.

One list, `POLICIES`: a policy is a callable taking ``metric``, ``mode`` and ``max_epochs`` and its
options as further keyword arguments, so its signature is the list of options `check_options`
accepts. Adding a policy is one file (the scheduler) and one line here.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from ray.tune.schedulers import (
    AsyncHyperBandScheduler,
    FIFOScheduler,
    MedianStoppingRule,
    TrialScheduler,
)

from ._curve_stopper import CurveStopper

__all__ = ["POLICIES", "check_options", "make_scheduler"]

SUPPLIED = ("metric", "mode", "max_epochs")  # given by the search, not by the config's options


def _none(metric: str, mode: str, max_epochs: int) -> TrialScheduler:
    return FIFOScheduler()


def _asha(
    metric: str, mode: str, max_epochs: int, *, grace_period: int = 1, reduction_factor: float = 4,
    brackets: int = 1,
) -> TrialScheduler:
    if not 1 <= grace_period <= max_epochs:
        raise ValueError(f"asha grace_period must be in [1, max_epochs={max_epochs}], got {grace_period}")
    if reduction_factor <= 1:
        raise ValueError(f"asha reduction_factor must be > 1, got {reduction_factor}")
    return AsyncHyperBandScheduler(
        time_attr="training_iteration", metric=metric, mode=mode, max_t=max_epochs,
        grace_period=grace_period, reduction_factor=reduction_factor, brackets=brackets,
    )


def _median(
    metric: str, mode: str, max_epochs: int, *, grace_period: int = 1, min_samples_required: int = 3,
) -> TrialScheduler:
    if grace_period < 0:
        raise ValueError(f"median grace_period must be >= 0, got {grace_period}")
    return MedianStoppingRule(
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
    metric: str = "accuracy",
    mode: str = "max",
    max_epochs: int,
    options: dict | None = None,
) -> TrialScheduler:
    """Build the early-stopping scheduler named by a search config.

    Args:
        policy: ``"curve"`` (:class:`CurveStopper`), ``"asha"`` (Ray's AsyncHyperBandScheduler),
            ``"median"`` (Ray's MedianStoppingRule) or ``"none"`` (FIFOScheduler).
        metric, mode: what the trials report and which way is better.
        max_epochs: the training budget of a trial.
        options: the policy's keyword options (e.g. ``grace_period``, ``threshold``).

    Raises:
        ValueError: naming an unknown policy, an unknown option or a bad value.
    """
    options = dict(options or {})
    check_options(policy, options)
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if max_epochs < 1:
        raise ValueError(f"max_epochs must be >= 1, got {max_epochs}")
    return POLICIES[policy](metric=metric, mode=mode, max_epochs=max_epochs, **options)
