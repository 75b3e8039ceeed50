"""`hyper.partial_spearman`: what a proxy knows beyond size, on synthetic data with a known answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from hyper import partial_spearman


def test_shared_size_alone_gives_zero_partial() -> None:
    """x and y both follow z plus independent noise: correlated with each other, not beyond z."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=4000)
    x, y = z + rng.normal(size=4000), z + rng.normal(size=4000)
    assert spearmanr(x, y).statistic > 0.4
    assert abs(partial_spearman(x, y, np.exp(z))) < 0.05  # a monotone control (params, not log) ranks the same


def test_shared_signal_beyond_size_survives() -> None:
    """x and y share a signal s independent of z: the partial recovers it, the size-only part drops out."""
    rng = np.random.default_rng(1)
    z, s = rng.normal(size=4000), rng.normal(size=4000)
    x, y = z + s + 0.3 * rng.normal(size=4000), z + s + 0.3 * rng.normal(size=4000)
    x_size_only = z + rng.normal(size=4000)
    assert partial_spearman(x, y, z) > 0.8
    assert partial_spearman(x, y, z) > partial_spearman(x_size_only, y, z) + 0.5


def test_matches_the_closed_form() -> None:
    """Equals (r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2)) on Spearman coefficients (no ties)."""
    rng = np.random.default_rng(2)
    z = rng.normal(size=50)
    x, y = z + rng.normal(size=50), 0.5 * z - rng.normal(size=50)
    r_xy, r_xz, r_yz = spearmanr(x, y).statistic, spearmanr(x, z).statistic, spearmanr(y, z).statistic
    expected = (r_xy - r_xz * r_yz) / math.sqrt((1 - r_xz**2) * (1 - r_yz**2))
    assert partial_spearman(x, y, z) == pytest.approx(expected, abs=1e-12)
    assert partial_spearman(y, x, z) == pytest.approx(expected, abs=1e-12)


def test_degenerate_and_bad_input() -> None:
    z = np.arange(10.0)
    assert math.isnan(partial_spearman(z * 2, z**3, z))  # nothing left once size is out
    params = np.random.default_rng(3).integers(1_000, 50_000, size=150)  # ties, and rounding in the fit
    assert math.isnan(partial_spearman(params, np.arange(150.0), np.log(params)))  # size given size
    with pytest.raises(ValueError, match="one length"):
        partial_spearman([1, 2, 3], [1, 2], [1, 2, 3])
