"""The front's staircase: hypervolume and the score a new point needs to add a given share of it."""

from __future__ import annotations

import numpy as np
import pytest

from workers.front import gain_bar, hypervolume

FRONT = [(0.5, 1.0), (0.8, 3.0), (0.9, 6.0), (0.6, 4.0)]  # (score up, cost down); the last is dominated


def test_hypervolume_is_the_staircase_area() -> None:
    assert hypervolume(FRONT, 0.0, 10.0) == pytest.approx(0.5 * 2 + 0.8 * 3 + 0.9 * 4)
    assert hypervolume(FRONT, 0.7, 10.0) == pytest.approx(0.1 * 3 + 0.2 * 4)  # below the reference counts nothing
    assert hypervolume([], 0.0, 10.0) == 0.0


@pytest.mark.parametrize("cost", [0.0, 0.5, 2.0, 3.0, 5.0, 9.0])
@pytest.mark.parametrize("gain", [0.0, 0.01, 0.1, 1.0, 5.0])
def test_a_point_at_the_bar_adds_exactly_the_gain(cost: float, gain: float) -> None:
    bar = gain_bar(FRONT, cost, gain, 0.0, 10.0)
    before = hypervolume(FRONT, 0.0, 10.0)
    assert hypervolume([*FRONT, (bar, cost)], 0.0, 10.0) - before == pytest.approx(gain)
    assert hypervolume([*FRONT, (bar - 1e-6, cost)], 0.0, 10.0) - before < gain or gain == 0.0


def test_zero_gain_is_the_best_score_at_no_more_cost() -> None:
    assert gain_bar(FRONT, 2.0, 0.0, 0.0, 10.0) == 0.5
    assert gain_bar(FRONT, 5.0, 0.0, 0.0, 10.0) == 0.8
    assert gain_bar(FRONT, 0.5, 0.0, 0.0, 10.0) == 0.0  # nothing cheaper: the reference score


def test_the_same_gain_asks_more_of_an_expensive_point() -> None:
    """At the same step of the staircase, a costlier point covers less width, so it must rise more."""
    bars = [gain_bar(FRONT, c, 0.1, 0.0, 10.0) for c in (6.0, 7.5, 9.0)]
    assert bars == pytest.approx([0.9 + 0.1 / 4, 0.9 + 0.1 / 2.5, 0.9 + 0.1 / 1])
    assert gain_bar(FRONT, 10.0, 0.0, 0.0, 10.0) == float("inf")  # at the reference cost nothing is added


def test_random_fronts_against_a_brute_force_search() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        points = [(float(s), float(c)) for s, c in zip(rng.uniform(-3, 1, 6), rng.uniform(0, 9, 6))]
        cost, gain, ref = float(rng.uniform(0, 9)), float(rng.uniform(0, 2)), -3.0
        base = hypervolume(points, ref, 10.0)
        grid = np.linspace(-3, 3, 6001)
        first = next(y for y in grid if hypervolume([*points, (y, cost)], ref, 10.0) - base >= gain - 1e-12)
        assert gain_bar(points, cost, gain, ref, 10.0) == pytest.approx(first, abs=1e-3)


def test_negative_gain_is_refused() -> None:
    with pytest.raises(ValueError, match="gain"):
        gain_bar(FRONT, 1.0, -0.1, 0.0, 10.0)
