r"""Monte Carlo statistics of particle clouds, with standard errors, reduced over MPI ranks.

* Sample means: :math:`\hat\mu = \frac1n\sum_i x_i`, standard error :math:`\hat s/\sqrt{n}` where
  :math:`\hat s^2` is the sample variance of the independent units (particles, or antithetic pair
  means — see :mod:`symfp.particles.noise`).
* Covariance: :math:`\hat C_{ij} = \frac1{n}\sum (x_i-\hat\mu_i)(x_j-\hat\mu_j)`; its standard error is
  that of the mean of the products :math:`(x_i-\hat\mu_i)(x_j-\hat\mu_j)` (delta method, exact to
  leading order in 1/n, no Gaussian assumption).
* Trajectories of moments at output times are accumulated in ``G`` groups of particles per rank;
  their standard errors are batch-means estimates :math:`\mathrm{sd}_g/\sqrt{G}`.
* Hill's tail index from the k largest values :math:`x_{(1)}\ge\dots\ge x_{(k+1)}`:
  :math:`\hat\alpha = \big(\frac1k\sum_{i\le k}\log x_{(i)} - \log x_{(k+1)}\big)^{-1}`, standard
  error :math:`\hat\alpha/\sqrt k`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from .mpi import allgather_rows, allsum


def units(values: np.ndarray, antithetic: bool) -> np.ndarray:
    """The independent Monte Carlo units: the rows, or the means of adjacent antithetic pairs."""
    if not antithetic:
        return values
    return values.reshape((values.shape[0] // 2, 2) + values.shape[1:]).mean(axis=1)


def mean_stderr(
    values: np.ndarray, antithetic: bool = False, comm: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean over axis 0 (all ranks) and its standard error.

    Args:
        values: (n, ...) array of this rank's particles.
        antithetic: rows come in antithetic pairs.
        comm: MPI communicator or None.

    Returns:
        (mean, stderr), each of shape values.shape[1:].
    """
    u = units(np.asarray(values, dtype=np.float64), antithetic)
    count = allsum(float(u.shape[0]), comm)
    if count < 2:
        raise InputError("particle statistics need at least two independent particles (or pairs)")
    shift = allsum(u.sum(axis=0), comm) / count
    c = u - shift
    s1 = allsum(c.sum(axis=0), comm)
    s2 = allsum((c * c).sum(axis=0), comm)
    mean = shift + s1 / count
    var = (s2 - s1 * s1 / count) / (count - 1)
    return mean, np.sqrt(np.maximum(var, 0.0) / count)


def moments(theta: np.ndarray, antithetic: bool = False, comm: Any = None) -> dict[str, np.ndarray]:
    """Mean and covariance of (n, d) particles with standard errors (collective under MPI)."""
    mean, mean_se = mean_stderr(theta, antithetic, comm)
    c = theta - mean
    prods = c[:, :, None] * c[:, None, :]
    cov, cov_se = mean_stderr(prods, antithetic, comm)
    return {"mean": mean, "mean_stderr": mean_se, "cov": cov, "cov_stderr": cov_se}


class TrajectoryMoments:
    """Accumulates mean and covariance of the particles at output times, in groups for error bars.

    Shifted sums :math:`\\sum (x-c_t)`, :math:`\\sum (x-c_t)(x-c_t)^\\top` are kept per output time
    and group, with :math:`c_t` the mean of the first block seen at that time (for round-off).
    """

    PIECE = 4096  # rows per piece of the shifted copy (L1/L2-sized)

    def __init__(self, n_out: int, d: int, n_local: int, groups: int = 32, pair: bool = False):
        self.d = d
        self.n_local = n_local
        self.groups = max(1, min(groups, n_local // (2 if pair else 1)))
        self.pair = pair
        self.count = np.zeros((n_out, self.groups))
        self.s1 = np.zeros((n_out, self.groups, d))
        self.s2 = np.zeros((n_out, self.groups, d, d))
        self.shift = np.full((n_out, d), np.nan)
        self._runs: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
        self._ones = np.ones(0)
        self._y = np.empty(0)

    def _group_runs(self, offset: int, n: int) -> list[tuple[int, int, int]]:
        """(group, first row, end row) of each group's contiguous run of rows offset…offset+n."""
        key = (offset, n)
        if key not in self._runs:
            idx = np.arange(offset, offset + n)
            unit = idx // 2 if self.pair else idx
            n_units = self.n_local // 2 if self.pair else self.n_local
            g = (unit * self.groups) // max(n_units, 1)  # non-decreasing in the row
            starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
            ends = np.r_[starts[1:], n]
            self._runs[key] = [(int(g[a]), int(a), int(b)) for a, b in zip(starts, ends, strict=True)]
        return self._runs[key]

    def add(self, k: int, theta: np.ndarray, offset: int) -> None:
        r"""Add a block of particles (rows ``offset…``) at output index ``k``.

        Per group the sum :math:`\mathbf 1^\top Y_g` and the Gram product :math:`Y_g^\top Y_g` of its
        contiguous rows as BLAS products: no (n, d, d) temporary of outer products, and no numpy
        reduction along the short axis (200 000 particles, d = 2: 27 → 2.4 ms per output).
        """
        theta = np.ascontiguousarray(theta, dtype=float)
        n = theta.shape[0]
        if len(self._ones) < n:
            self._ones = np.ones(n)
        ones = self._ones
        if np.isnan(self.shift[k, 0]):
            self.shift[k] = ones[:n] @ theta / max(n, 1)
        d, rows = theta.shape[1], self.PIECE
        if self._y.size < rows * d:
            self._y = np.empty(rows * d)
        # y = θ − c in cache-sized pieces (a block-sized temporary evicts what the next step reads), as
        # one flat subtraction each (numpy's broadcast over a length-d inner axis is ≈10x slower)
        tile = np.tile(self.shift[k], rows)
        flat = theta.reshape(-1)
        for g, a, b in self._group_runs(offset, n):
            self.count[k, g] += b - a
            for lo in range(a, b, rows):
                hi = min(b, lo + rows)
                m = (hi - lo) * d
                y = np.subtract(flat[lo * d : hi * d], tile[:m], out=self._y[:m]).reshape(hi - lo, d)
                self.s1[k, g] += ones[: hi - lo] @ y
                self.s2[k, g] += y.T @ y

    def result(self, comm: Any = None) -> dict[str, np.ndarray]:
        """Mean, covariance and their batch-means standard errors at each output time (collective)."""
        # groups of different ranks have different shifts: move everything to rank 0's shift... by
        # converting each group to its own (mean, cov) first, which needs no common shift.
        cnt = self.count[:, :, None]
        gm = self.s1 / np.maximum(cnt, 1)
        gc = self.s2 / np.maximum(cnt[..., None], 1) - gm[..., :, None] * gm[..., None, :]
        gm = gm + self.shift[:, None, :]
        count = np.moveaxis(allgather_rows(np.moveaxis(self.count, 1, 0), comm), 0, 1)
        gm = np.moveaxis(allgather_rows(np.moveaxis(gm, 1, 0), comm), 0, 1)
        gc = np.moveaxis(allgather_rows(np.moveaxis(gc, 1, 0), comm), 0, 1)
        w = count / count.sum(axis=1, keepdims=True)
        mean = np.einsum("tg,tgi->ti", w, gm)
        dm = gm - mean[:, None, :]
        cov = np.einsum("tg,tgij->tij", w, gc + dm[..., :, None] * dm[..., None, :])
        G = count.shape[1]
        if G > 1:
            mean_se = np.sqrt(np.einsum("tg,tgi->ti", w, dm**2) / (G - 1))
            dc = gc + dm[..., :, None] * dm[..., None, :] - cov[:, None]
            cov_se = np.sqrt(np.einsum("tg,tgij->tij", w, dc**2) / (G - 1))
        else:
            mean_se = np.full_like(mean, np.inf)
            cov_se = np.full_like(cov, np.inf)
        return {"mean": mean, "cov": cov, "mean_stderr": mean_se, "cov_stderr": cov_se}


def hill_tail_index(values: np.ndarray, k: int | None = None, comm: Any = None) -> tuple[float, float]:
    r"""Hill estimator of the tail index α of |values| (P(|X| > x) ~ x^{-α}) and its standard error.

    Args:
        values: samples (any shape; flattened, absolute values used).
        k: number of order statistics (default ⌈√n⌉).
        comm: MPI communicator; the largest values of all ranks are gathered.
    """
    x = np.abs(np.asarray(values, dtype=np.float64).ravel())
    n = int(allsum(float(x.size), comm))
    k = int(k or max(10, int(np.sqrt(n))))
    if k + 1 > n:
        raise InputError(f"hill_tail_index: k = {k} needs at least k + 1 = {k + 1} samples, got {n}")
    top = np.sort(x)[-(k + 1) :]
    top = np.sort(allgather_rows(top, comm))[-(k + 1) :]
    if top[0] <= 0:
        raise InputError("hill_tail_index: the (k+1)-th largest |value| is 0; use a smaller k")
    alpha = 1.0 / np.mean(np.log(top[1:]) - np.log(top[0]))
    return float(alpha), float(alpha / np.sqrt(k))
