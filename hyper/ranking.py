"""How much a proxy knows beyond a candidate's size: the partial Spearman correlation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def partial_spearman(proxy: Sequence[float], target: Sequence[float], control: Sequence[float]) -> float:
    """Spearman correlation of ``proxy`` and ``target`` with ``control`` (e.g. log parameter count)
    taken out: both are ranked, the linear fit on ``control``'s ranks is subtracted from each, and the
    residuals are correlated (Pearson).

    A proxy that only restates size scores about 0 here however high its plain Spearman is; what it
    scores is what it adds. NaN where a residual is constant (nothing left to correlate).
    """
    from scipy.stats import rankdata  # here: a worker imports this package to warm-start, and scipy.stats costs 0.3-0.7 s

    if not len(proxy) == len(target) == len(control) or len(proxy) < 3:
        raise ValueError(f"partial_spearman: three sequences of one length >= 3 needed, got {len(proxy)}, {len(target)}, {len(control)}")
    z = rankdata(control)
    design = np.column_stack([np.ones_like(z), z])

    def residual(values: Sequence[float]) -> np.ndarray | None:
        r = rankdata(values)
        res = r - design @ np.linalg.lstsq(design, r, rcond=None)[0]
        spread = float(np.linalg.norm(r - r.mean()))
        return None if float(np.linalg.norm(res)) <= 1e-9 * max(spread, 1.0) else res / np.linalg.norm(res)

    a, b = residual(proxy), residual(target)
    return float("nan") if a is None or b is None else float(np.clip(a @ b, -1.0, 1.0))
