"""The two-objective front as a staircase: hypervolume, and the score a new point needs to add to it.

Points are ``(score, cost)`` with the score oriented (larger is better: a minimised metric comes
negated) and the cost smaller-is-better (MACs). The staircase ``g(x)`` is the best score of the
points that cost at most ``x``; the hypervolume is the area between ``g`` and the reference score
up to the reference cost. `nas.study.hypervolume_2d` measures studies with it, and
`workers.stopping.CurveStopper` asks `gain_bar` which final score a running trial must reach to
add a given share of that area.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["gain_bar", "hypervolume"]


def hypervolume(points: Iterable[tuple[float, float]], ref_score: float, ref_cost: float) -> float:
    """Area dominated by ``points`` (score up, cost down) and bounded by ``(ref_score, ref_cost)``."""
    useful = sorted((c, s) for s, c in points if s > ref_score and c < ref_cost)
    volume, best = 0.0, ref_score
    for i, (cost, score) in enumerate(useful):
        best = max(best, score)
        next_cost = useful[i + 1][0] if i + 1 < len(useful) else ref_cost
        volume += (next_cost - cost) * (best - ref_score)
    return volume


def gain_bar(
    points: Iterable[tuple[float, float]], cost: float, gain: float, ref_score: float, ref_cost: float
) -> float:
    """The smallest score a new point at ``cost`` needs to add ``gain`` (>= 0) to the hypervolume.

    With ``gain = 0`` that is the staircase at ``cost`` (the best score at no more cost, or the
    reference score): any score above it joins the front. A new point of score ``y`` adds
    ``sum_s w_s * max(0, y - level_s)`` over the staircase's steps between ``cost`` and
    ``ref_cost``; that is increasing and piecewise linear in ``y``, solved step by step. A cost at
    or beyond ``ref_cost`` can add nothing: the bar is infinite.
    """
    if gain < 0:
        raise ValueError(f"gain must be >= 0, got {gain}")
    if cost >= ref_cost:
        return float("inf")
    steps = _steps(points, ref_score, ref_cost, start=cost)
    widths = [next_cost - c for (c, _), (next_cost, _) in zip(steps, steps[1:] + [(ref_cost, None)])]
    levels = [level for _, level in steps]
    width = weighted = 0.0  # over the steps below the bar: sum of w_s and of w_s * level_s
    for i, (w, level) in enumerate(zip(widths, levels)):
        width += w
        weighted += w * level
        bar = (gain + weighted) / width
        if i + 1 == len(levels) or bar <= levels[i + 1]:
            return bar
    raise AssertionError("unreachable: the last step returns")


def _steps(points: Iterable[tuple[float, float]], ref_score: float, ref_cost: float, *, start: float) -> list[tuple[float, float]]:
    """``(cost, level)`` where the staircase rises after ``start`` (up to ``ref_cost``), led by
    ``(start, level at start)``; no level below ``ref_score``."""
    level, rises = ref_score, []
    for c, s in sorted((c, s) for s, c in points if c < ref_cost):
        if c <= start:
            level = max(level, s)
        elif s > (rises[-1][1] if rises else level):
            rises.append((c, s))
    return [(start, level)] + rises
