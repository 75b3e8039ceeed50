"""Extrapolate a curve from the other curves of the same search (Baker et al. 2018 style).

Parametric families assume a saturating shape, but a learning-rate schedule (cosine, step)
bends every curve of a search the same way: the ppuda CIFAR-10 training curves bend up late, as
under a cosine schedule, and the families under-predict their final accuracy by about 0.09 from
10 of 50 epochs. Curves of the same search carry that shape. Here the value at a later epoch is
regressed on the value at the current epoch and the recent gain (locally weighted Bayesian ridge
regression, Gaussian predictive with Student-t-like widening when few curves weigh in, its noise
shrunk towards the global residual noise). Few trials finish in a search that stops most of
them, so a prediction is chained ``k -> 2k -> 4k -> ... -> final``: a step to an epoch before
the last learns from every curve that got there, stopped ones included, and only the last step
needs finished curves. Measured on ppuda (30 finished reference curves, 10 of 50 epochs): the
median is off by 0.014 on average and the central 90% interval holds the truth 90-96% of the
time (``benchmarks/early_stopping.py --calibrate``); the families are off by 0.10. On the sparse
validation curves with 10 finished and 60 stopped references, from epoch 5, the chained model's
5% tails hold 0-2% of the truths each (the direct model's up to 12%).

Values are modelled as ``z = -log(upper - y)`` (log distance to the bound), where the spread
of final accuracies close to 100% is roughly even; a metric without an upper bound (``upper=inf``)
is modelled as it is, ``z = y``. The ridge penalty and the floors (``_GAP_FLOOR``, the kernel
width's) are absolute: they assume values in units of a typical curve's rise (accuracy), which is
how `workers.stopping.CurveStopper` hands any metric over.

A metric measured on ``n`` examples moves in steps of ``1/n``: 100% on 40 series means "above
97.5%", not "above 99.99%". So the gap to the bound is floored at half the step between the values
seen (`resolution`; at least ``_GAP_FLOOR``). With the fixed 1e-4 floor, the few curves of a
BasicMotions search that reached 100% sat at ``z = 9.2`` among the others' 1-4, widened every
prediction near them, and P(final > bar) = 0.3 came true 5-8% of the time (0.10-0.13 with the
floor; 218 curves of 40 epochs, ``benchmarks/early_stopping.py --reliability``).
"""
from __future__ import annotations

import numpy as np

from ._prediction import Prediction

__all__ = ["CurvePopulation"]

_GAP_FLOOR = 1e-4  # 100% accuracy would be an infinite z; treat it as at least 99.99%


class CurvePopulation:
    """A growing set of curves of one search that predicts where a partial curve ends.

    Finished curves (``add``) reach ``final_epoch``; partial ones (``add(..., finished=False)``:
    trials stopped early) still show how curves go on from epoch ``a`` to a later ``b``. With
    ``chain=True`` a prediction from epoch ``k`` walks anchors ``k, 2k, 4k, ...,
    final_epoch``: each step is regressed on every curve that reached its end, so the early
    steps (where a search stops most trials) learn from many more curves than have finished, and
    only the last, short, step needs finished ones. Uncertainty goes through the chain by
    simulation (``samples`` fixed draws), and the answer is a mixture over the draws.

    Args:
        final_epoch: the epoch every finished curve reached and that ``predict`` targets.
        upper: the metric's bound (``1.0`` for accuracy); values are modelled in log gap to it;
            ``inf``: no bound, values are modelled as they are.
        lower: the metric's floor (``-inf``: none); predictions are clipped to it.
        min_curves: fewest finished curves before ``predict`` answers (else ``None``), and
            fewest curves a chain step needs (else it jumps further).
        max_curves: keep only the most recent this many of each kind (bounds the cost of a fit).
        ridge: L2 penalty of the regression.
        chain: predict step by step through partial curves (else straight to ``final_epoch``).
        samples: draws that carry the uncertainty along the chain.
        pool: prior weight, in curves, of the global residual variance in each local noise
            estimate (a handful of nearby curves can agree by luck and make the tail too thin).
    """

    def __init__(
        self,
        final_epoch: int,
        *,
        upper: float = 1.0,
        lower: float = 0.0,
        min_curves: int = 5,
        max_curves: int = 500,
        ridge: float = 1e-3,
        chain: bool = True,
        samples: int = 32,
        pool: float = 5.0,
    ) -> None:
        if final_epoch < 1:
            raise ValueError(f"final_epoch must be >= 1, got {final_epoch}")
        if min_curves < 4:
            raise ValueError(f"min_curves must be >= 4 (3 features + 1), got {min_curves}")
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        if pool < 0:
            raise ValueError(f"pool must be >= 0, got {pool}")
        self.final_epoch = final_epoch
        self.upper = upper
        self.lower = lower
        self.min_curves = min_curves
        self.max_curves = max_curves
        self.ridge = ridge
        self.chain = chain
        self.samples = samples
        self.pool = pool
        self._curves: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (epochs, values, z)
        self._partial: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._levels = np.zeros(0)  # the distinct values seen (for `resolution`)
        self._z_floor = _GAP_FLOOR  # the gap floor the stored z were computed with

    def __setstate__(self, state: dict) -> None:
        """Unpickle a population saved before partial curves, chaining or raw values existed."""
        state = {"chain": True, "samples": 32, "pool": 5.0, "_partial": [], **state}
        if "_levels" not in state:  # curves were stored as z: back to values
            upper = state["upper"]
            back = (lambda z: upper - np.exp(-z)) if np.isfinite(upper) else (lambda z: z)
            for key in ("_curves", "_partial"):
                state[key] = [(x, back(z), z) for x, z in state[key]]
            state["_levels"] = np.unique(np.concatenate([y for _, y, _ in state["_curves"] + state["_partial"]] or [[]]))
            state["_z_floor"] = _GAP_FLOOR
        self.__dict__.update(state)

    def __len__(self) -> int:
        """Finished curves."""
        return len(self._curves)

    def add(self, epochs: np.ndarray, values: np.ndarray, *, finished: bool = True) -> None:
        """Record a finished curve (its last epoch should be ``final_epoch``) or a partial one."""
        x = np.asarray(epochs, dtype=float)
        y = np.asarray(values, dtype=float)
        keep = np.isfinite(y)
        if keep.sum() == 0:
            return
        self._levels = np.union1d(self._levels, y[keep])
        store = self._curves if finished else self._partial
        store.append((x[keep], y[keep], self._to_z(y[keep])))
        if len(store) > self.max_curves:
            store.pop(0)

    @property
    def resolution(self) -> float:
        """The smallest step between distinct values seen (0 before two exist): a metric measured
        on ``n`` examples moves in steps of ``1/n``."""
        steps = np.diff(self._levels)
        steps = steps[steps > 1e-9]
        return float(steps.min()) if len(steps) else 0.0

    @property
    def gap_floor(self) -> float:
        """The smallest gap to ``upper`` a value is modelled at: half the metric's resolution."""
        return max(_GAP_FLOOR, 0.5 * self.resolution)

    def predict(self, epochs: np.ndarray, values: np.ndarray) -> Prediction | None:
        """Predictive distribution of the final value, or ``None`` with too few curves."""
        if len(self._curves) < self.min_curves:
            return None
        x = np.asarray(epochs, dtype=float)
        z = self._to_z(np.asarray(values, dtype=float))
        keep = np.isfinite(z)
        x, z = x[keep], z[keep]
        if len(x) == 0:
            return None
        k = float(x[-1])
        floor = self.gap_floor if self._log else 0.0
        if k >= self.final_epoch:
            return Prediction(np.array([z[-1]]), np.array([1e-4]), np.ones(1), self.lower, self.upper,
                              log_error=self._log, gap_floor=floor)
        steps = self._steps(k) if self.chain else [(k, float(self.final_epoch))]
        # z at the anchors: observed ones shared, predicted ones one per draw
        known: dict[float, np.ndarray] = {}
        eps = _normal_draws(self.samples)
        mean = var = np.zeros(1)
        for i, (a, b) in enumerate(steps):
            refs = self._reaching(b)
            feats = np.stack([self._features(rx, rz, a) for rx, rz in refs])
            target = np.array([np.interp(b, rx, rz) for rx, rz in refs])
            za, zh = (known.get(e, np.interp(e, x, z, right=np.nan) * np.ones(1)) for e in (a, max(1.0, a / 2)))
            query = np.stack(np.broadcast_arrays(np.ones(1), za, za - zh), axis=1)
            mean, var = _local_ridge_predict(feats, target, query, self.ridge, self.min_curves, self.pool)
            if i < len(steps) - 1:
                known[b] = mean + np.sqrt(var) * eps
        n = len(mean)
        return Prediction(mean, np.sqrt(var), np.full(n, 1.0 / n), self.lower, self.upper, log_error=self._log,
                          gap_floor=floor)

    def _steps(self, k: float) -> list[tuple[float, float]]:
        """Chain ``k -> 2k -> ... -> final``; a step whose end too few curves reached is merged."""
        final = float(self.final_epoch)
        anchors = [k]
        while anchors[-1] * 2 < final:
            anchors.append(anchors[-1] * 2)
        anchors.append(final)
        steps, a = [], anchors[0]
        for b in anchors[1:]:
            if b == final or len(self._stored_reaching(b)) >= 1.5 * max(self.min_curves, len(self._curves)):
                steps.append((a, b))
                a = b
        return steps

    def _reaching(self, epoch: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """Curves (finished, then partial) observed at or past ``epoch``, as ``(epochs, z)``."""
        self._refresh_z()
        return [(x, z) for x, _, z in self._stored_reaching(epoch)]

    def _stored_reaching(self, epoch: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The stored ``(epochs, values, z)`` of the curves observed at or past ``epoch``."""
        if epoch >= self.final_epoch:
            return self._curves
        return self._curves + [c for c in self._partial if c[0][-1] >= epoch]

    def _refresh_z(self) -> None:
        """Recompute every stored curve's z when the gap floor moved (a finer resolution was seen)."""
        floor = self.gap_floor
        if floor != self._z_floor:
            self._curves = [(x, y, self._to_z(y)) for x, y, _ in self._curves]
            self._partial = [(x, y, self._to_z(y)) for x, y, _ in self._partial]
            self._z_floor = floor

    @property
    def _log(self) -> bool:
        """Whether values are modelled in log gap to a finite upper bound."""
        return bool(np.isfinite(self.upper))

    def _to_z(self, y: np.ndarray) -> np.ndarray:
        if not self._log:
            return y
        return -np.log(np.maximum(self.upper - y, self.gap_floor))

    @staticmethod
    def _features(x: np.ndarray, z: np.ndarray, k: float) -> np.ndarray:
        """``[1, z(k), z(k) - z(k/2)]``, read off a curve by linear interpolation."""
        zk = np.interp(k, x, z)
        zh = np.interp(max(1.0, k / 2), x, z)
        return np.array([1.0, zk, zk - zh])


def _normal_draws(n: int) -> np.ndarray:
    """``n`` fixed standard-normal draws (stratified quantiles in a fixed shuffled order)."""
    from scipy.special import ndtri

    q = ndtri((np.arange(n) + 0.5) / n)
    return q[np.random.default_rng(0).permutation(n)]


def _local_ridge_predict(
    X: np.ndarray, y: np.ndarray, q: np.ndarray, ridge: float, neighbours: int, pool: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Locally weighted Bayesian ridge regression: predictive means and variances at rows ``q``.

    References are weighted by a Gaussian kernel on the current value (column 1), its width the
    distance to the ``max(neighbours, n/3)``-th nearest; so a stalled curve is judged by other
    stalled curves, and the noise level is the local one (the spread is not even in ``z``).
    ``q`` has shape ``(m, p)``: one regression per query row, batched. ``pool`` (in curves) is
    the weight of the global residual variance in the noise estimate.
    """
    n, p = X.shape
    dist = np.abs(X[None, :, 1] - q[:, 1:2])  # (m, n)
    m = min(n - 1, max(neighbours, n // 3))
    h = np.maximum(np.partition(dist, m, axis=1)[:, m], 1e-3)
    w = np.exp(-0.5 * (dist / h[:, None]) ** 2)  # (m, n)
    A = np.einsum("mn,ni,nj->mij", w, X, X) + ridge * np.eye(p)
    A_inv = np.linalg.inv(A)
    beta = np.einsum("mij,mj->mi", A_inv, (w * y) @ X)
    res = y[None, :] - beta @ X.T  # (m, n)
    sw = w.sum(1)
    n_eff = sw**2 / (w * w).sum(1)
    s2 = (w * res * res).sum(1) / sw * n_eff / np.maximum(n_eff - p, 1.0)
    if pool > 0:  # shrink the local noise towards the global one: a few close curves can agree by luck
        g_res = y - X @ np.linalg.solve(X.T @ X + ridge * np.eye(p), X.T @ y)
        s2 = (n_eff * s2 + pool * float(g_res @ g_res) / max(n - p, 1)) / (n_eff + pool)
    lever = np.einsum("mi,mij,mj->m", q, A_inv, q)
    var = s2 * (1.0 + lever * sw / n_eff)
    dof = n_eff - p
    var *= np.where(dof > 3.0, dof / np.maximum(dof - 2.0, 1e-9), 3.0)  # Student-t variance: few curves, wider tails
    return np.einsum("mi,mi->m", q, beta), np.maximum(var, 1e-8)
