"""Parametric learning-curve families of Domhan et al. (IJCAI 2015), on a grid.

Every family is written as ``y(x) = c - a * g(x; theta)`` with ``g >= 0`` decreasing, so that
``c`` is the asymptote and ``a >= 0`` makes the curve rise. For a fixed nonlinear ``theta`` the
model is linear in ``(c, a)``, so instead of running a nonlinear optimiser per family we put
``theta`` on a small fixed grid and solve every linear problem at once in closed form
(variable projection). The grid doubles as a discrete prior over ``theta``.

``x`` is the epoch divided by the final epoch, so the same grid fits a 10-epoch and a
200-epoch budget.

Families (Domhan et al. Table 1 names): pow3, pow4, exp3 (exponential), Weibull (which also
covers Janoschek, ``exp(-k x^d)`` being the same family re-parametrised), MMF (which covers
log-power and Hill3, ``start = 0``), ilog2 and log-linear.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Family", "FAMILIES", "basis"]


@dataclass(frozen=True)
class Family:
    """One curve family: its name, nonlinear parameter grid and count of free parameters.

    ``grid`` has shape ``(G, q)``: ``G`` grid points of ``q`` nonlinear parameters.
    ``n_params`` counts the linear ``(c, a)`` too; it sets the BIC Occam factor.
    ``asymptotic``: whether ``c`` is a real asymptote (``g -> 0``); log-linear is not.
    """

    name: str
    grid: np.ndarray
    n_params: int
    asymptotic: bool = True


def _mesh(*axes: np.ndarray) -> np.ndarray:
    """Cartesian product of parameter axes as rows ``(G, len(axes))``."""
    return np.stack([m.ravel() for m in np.meshgrid(*axes, indexing="ij")], axis=1)


_RATES = np.geomspace(0.5, 40.0, 10)  # 1/e-time between 2.5% and 200% of the budget
_SHAPES = np.array([0.35, 0.6, 1.0, 1.6, 2.5])

FAMILIES: tuple[Family, ...] = (
    Family("pow3", _mesh(np.geomspace(0.05, 3.0, 14)), 3),
    Family("pow4", _mesh(np.geomspace(0.1, 3.0, 7), np.array([0.02, 0.1, 0.3])), 4),
    Family("exp3", _mesh(_RATES), 3),
    Family("weibull", _mesh(_RATES, _SHAPES), 4),
    Family("mmf", _mesh(_RATES, _SHAPES), 4),
    Family("ilog2", np.zeros((1, 0)), 2),
    Family("loglinear", np.zeros((1, 0)), 2, asymptotic=False),
)


def basis(family: Family, x: np.ndarray) -> np.ndarray:
    """``g(x; theta)`` for every grid point: shape ``(G, len(x))``.

    Args:
        family: the family.
        x: epochs divided by the final epoch, shape ``(n,)``, all > 0.
    """
    th = family.grid
    x = x[None, :]
    if family.name == "pow3":
        return x ** -th[:, :1]
    if family.name == "pow4":
        return (x + th[:, 1:2]) ** -th[:, :1]
    if family.name == "exp3":
        return np.exp(-th[:, :1] * x)
    if family.name == "weibull":
        return np.exp(-((th[:, :1] * x) ** th[:, 1:2]))
    if family.name == "mmf":
        return 1.0 / (1.0 + (th[:, :1] * x) ** th[:, 1:2])
    if family.name == "ilog2":
        return 1.0 / np.log(1.0 + 20.0 * x)  # log(x + 1) on epochs, for a 20-epoch scale
    if family.name == "loglinear":
        return -np.log(x)
    raise ValueError(f"unknown curve family {family.name!r}")
