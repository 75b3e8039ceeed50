"""Learning-curve extrapolation: from the first epochs, a predictive distribution of the last.

Example:
    >>> import numpy as np
    >>> from workers.curves import fit_curve
    >>> epochs = np.arange(1, 11)
    >>> pred = fit_curve(epochs, 0.9 - 0.5 * epochs ** -0.7, final_epoch=50, upper=1.0)
    >>> bool(abs(pred.mean - (0.9 - 0.5 * 50 ** -0.7)) < 0.05)
    True
"""

from __future__ import annotations

from ._ensemble import fit_curve
from ._population import CurvePopulation
from ._prediction import Prediction

__all__ = ["CurvePopulation", "Prediction", "fit_curve"]
