"""A predictive distribution of a curve's final value: a weighted mixture of Gaussians."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

__all__ = ["Prediction"]


@dataclass(frozen=True)
class Prediction:
    """Mixture ``sum_i w_i N(means_i, stds_i^2)`` over a latent ``z``, with the value a map of ``z``.

    With ``log_error=False`` the value is ``z`` clipped to ``[lower, upper]`` (the tail mass sits
    on the bound, as a bounded metric such as accuracy does). With ``log_error=True`` the value
    is ``upper - exp(-z)``: Gaussian in log distance to the bound, so the spread shrinks near
    it, which is how accuracy close to 100% behaves. ``mean``/``std`` are closed form then
    (log-normal moments).
    """

    means: np.ndarray
    stds: np.ndarray
    weights: np.ndarray
    lower: float = -np.inf
    upper: float = np.inf
    log_error: bool = False
    gap_floor: float = 0.0  # log_error: the smallest gap to ``upper`` the model resolves (see `CurvePopulation`)

    @property
    def mean(self) -> float:
        """Mixture mean of the value."""
        if self.log_error:
            gap = np.exp(-self.means + 0.5 * self.stds**2)  # E[exp(-z)]
            return float(self.upper - np.dot(self.weights, gap))
        return float(np.clip(np.dot(self.weights, self.means), self.lower, self.upper))

    @property
    def std(self) -> float:
        """Mixture standard deviation of the value (law of total variance)."""
        if self.log_error:
            first = np.dot(self.weights, np.exp(-self.means + 0.5 * self.stds**2))
            second = np.dot(self.weights, np.exp(-2 * self.means + 2 * self.stds**2))
            return float(np.sqrt(max(second - first * first, 0.0)))
        m = np.dot(self.weights, self.means)
        second = np.dot(self.weights, self.stds**2 + self.means**2)
        return float(np.sqrt(max(second - m * m, 0.0)))

    def prob_above(self, threshold: float) -> float:
        """P(final value > threshold); 0 when the threshold is at or above ``upper``."""
        if threshold >= self.upper:
            return 0.0
        if threshold < self.lower:
            return 1.0
        t = -np.log(max(self.upper - threshold, self.gap_floor)) if self.log_error else threshold
        z = (self.means - t) / self.stds
        return float(np.dot(self.weights, ndtr(z)))

    def quantile(self, q: float) -> float:
        """The ``q`` quantile, by bisection on the mixture CDF (for reports and tests)."""
        lo, hi = self._support()
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if 1.0 - self.prob_above(mid) < q:
                lo = mid
            else:
                hi = mid
        return float(np.clip(0.5 * (lo + hi), self.lower, self.upper))

    def samples(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """``n`` draws from the mixture, clipped to the bounds."""
        rng = rng if rng is not None else np.random.default_rng()
        idx = rng.choice(len(self.weights), size=n, p=self.weights)
        draws = rng.normal(self.means[idx], self.stds[idx])
        if self.log_error:
            draws = self.upper - np.exp(-draws)
        return np.clip(draws, self.lower, self.upper)

    def _support(self) -> tuple[float, float]:
        """An interval of values holding all but ~1e-15 of the mass."""
        lo_z = float(np.min(self.means - 8 * self.stds))
        hi_z = float(np.max(self.means + 8 * self.stds))
        if self.log_error:
            return self.upper - float(np.exp(-lo_z)), self.upper - float(np.exp(-hi_z))
        return lo_z, hi_z
