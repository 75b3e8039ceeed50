"""Fit the family grid to a partial curve and mix the fits into one predictive distribution.

Per grid point the linear part ``(c, a)`` is solved in closed form with its Gaussian
parameter uncertainty (Bayesian linear regression with the plug-in noise ``SSE / dof``). Grid
points are weighted by a tempered profile likelihood with a BIC Occam factor, which is the
weighted-ensemble idea of Domhan et al. without MCMC: one call is a few hundred 2x2 solves in
numpy (about 1 ms, see ``tests/workers/test_curves.py``), not seconds of sampling.

The constants ``TEMPERATURE`` and ``MODEL_ERROR`` widen the spread (epochs are correlated, and
the families are not the truth). They were set by hand on synthetic curves and checked on the
ppuda CIFAR-10 training curves (``benchmarks/early_stopping.py --calibrate``). There the families
under-predict (a cosine learning-rate schedule bends the curves up late), so the scheduler
uses them only until :class:`CurvePopulation` has enough finished curves of its own search.
"""

from __future__ import annotations

import numpy as np

from ._families import FAMILIES, Family, basis
from ._prediction import Prediction

__all__ = ["fit_curve"]

TEMPERATURE = 4.0  # flattens the likelihood: epochs are correlated, not n independent draws
MODEL_ERROR = 0.04  # std of extrapolation error per unit of log(final_epoch / last_epoch)
_MIN_STD = 1e-3
_EPS = 1e-12


def fit_curve(
    epochs: np.ndarray,
    values: np.ndarray,
    final_epoch: int,
    *,
    lower: float = -np.inf,
    upper: float = np.inf,
    temperature: float = TEMPERATURE,
    model_error: float = MODEL_ERROR,
) -> Prediction:
    """Predict the value at ``final_epoch`` of a rising curve seen at ``epochs``.

    Args:
        epochs: 1-based epochs observed, shape ``(n,)``, increasing.
        values: the metric at those epochs, shape ``(n,)``; higher is better (negate a loss).
        final_epoch: the epoch to predict.
        lower, upper: known bounds of the metric (``0, 1`` for accuracy); fits whose
            asymptote or final value exceeds ``upper`` are discarded.
        temperature: divides the log-likelihood; larger spreads weight over more fits.
        model_error: extrapolation error added per unit of ``log(final_epoch / last_epoch)``.

    Returns:
        A :class:`Prediction` (mixture of Gaussians) of the final value.
    """
    x = np.asarray(epochs, dtype=float)
    y = np.asarray(values, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"epochs and values must be 1-D of one length, got {x.shape} and {y.shape}")
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) == 0:
        raise ValueError("fit_curve needs at least one finite value")
    horizon = np.log(max(final_epoch, x[-1]) / x[-1])
    extra = model_error * horizon
    if len(x) < 3 or horizon == 0.0:
        return _last_value(y, extra, lower, upper)

    u = x / final_epoch
    parts = [_fit_family(fam, u, y, upper, temperature) for fam in FAMILIES]
    parts.append(_fit_constant(y, temperature))
    means = np.concatenate([p[0] for p in parts])
    var = np.concatenate([p[1] for p in parts])
    logw = np.concatenate([p[2] for p in parts])
    if not np.isfinite(logw).any():
        return _last_value(y, extra, lower, upper)
    w = np.exp(logw - logw.max())
    w /= w.sum()
    sel = w > 1e-6 * w.max()
    w = w[sel] / w[sel].sum()
    stds = np.sqrt(var[sel] + extra**2 + _MIN_STD**2)
    return Prediction(means[sel], stds, w, lower, upper)


def _fit_family(
    fam: Family, u: np.ndarray, y: np.ndarray, upper: float, temperature: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closed-form fits of ``y = c + b g`` for every grid point (``b = -a <= 0``).

    Returns the predictive mean and variance at ``u = 1`` and the log-weight per grid point
    (``-inf`` for an invalid fit: falling curve, asymptote or final value above ``upper``).
    """
    n = len(y)
    dof = n - fam.n_params
    g = basis(fam, u)  # (G, n)
    g1 = basis(fam, np.ones(1))[:, 0]  # (G,)
    if dof < 1:
        empty = np.full(len(g), -np.inf)
        return np.zeros(len(g)), np.ones(len(g)), empty
    sg, sgg = g.sum(1), (g * g).sum(1)
    sy, syy, sgy = y.sum(), (y * y).sum(), g @ y
    det = n * sgg - sg * sg
    ok = det > _EPS * n * np.maximum(sgg, _EPS)
    det = np.where(ok, det, 1.0)
    b = (n * sgy - sg * sy) / det
    c = (sy - b * sg) / n
    sse = np.maximum(syy - c * sy - b * sgy, _EPS * n)
    sigma2 = sse / dof
    lever = (sgg - 2 * g1 * sg + n * g1 * g1) / det  # x1^T (X^T X)^-1 x1
    mean = c + b * g1
    var = sigma2 * (1.0 + lever)
    ok &= b <= 0
    ok &= mean <= upper
    if fam.asymptotic:
        ok &= c <= upper
    logw = _log_evidence(sse, n, fam.n_params, temperature) - np.log(len(g))
    return mean, var, np.where(ok, logw, -np.inf)


def _fit_constant(y: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The flat curve: the run has converged and the final value is the recent mean."""
    n = len(y)
    sse = max(float(((y - y.mean()) ** 2).sum()), _EPS * n)
    var = sse / (n - 1) * (1.0 + 1.0 / n)
    logw = _log_evidence(np.array([sse]), n, 1, temperature)
    return np.array([y.mean()]), np.array([var]), logw


def _log_evidence(sse: np.ndarray, n: int, n_params: int, temperature: float) -> np.ndarray:
    """Tempered Gaussian profile log-likelihood with a BIC penalty."""
    return (-0.5 * n * np.log(sse / n) - 0.5 * n_params * np.log(n)) / temperature


def _last_value(y: np.ndarray, extra: float, lower: float, upper: float) -> Prediction:
    """Too few points to fit: the last value, with a wide spread."""
    spread = max(float(np.std(y)) if len(y) > 1 else 0.0, 0.05) + extra
    return Prediction(np.array([y[-1]]), np.array([spread]), np.ones(1), lower, upper)
