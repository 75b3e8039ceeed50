"""Early stopping for searches: Ray Tune schedulers chosen by the config's ``stopping:`` key.

``make_scheduler("curve" | "asha" | "median" | "none", metric=..., mode=..., max_epochs=...,
options=...)`` is the one entry point the search uses; :class:`CurveStopper` is ours, the others
are Ray's built-in schedulers kept as baselines.
"""

from __future__ import annotations

from ._curve_stopper import CurveStopper
from ._factory import POLICIES, check_options, make_scheduler, oriented_bounds

__all__ = ["POLICIES", "CurveStopper", "check_options", "make_scheduler", "oriented_bounds"]
