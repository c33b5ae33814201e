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

import threading
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
    r"""Accumulates mean and covariance of the particles at output times, in groups for error bars.

    Each :meth:`add` (a block, or one slab from a worker thread of the slab pool, right after its
    step while its rows are in cache) stores, per group its rows touch, the part's count n, mean
    :math:`\bar x` and centred second moment :math:`M_2 = \sum (x-\bar x)(x-\bar x)^\top` (two
    passes over the rows: no cancellation). :meth:`result` merges the parts of each group in the order
    of their first rows with Chan, Golub & LeVeque's pairwise update
    :math:`\delta = \bar x_b - \bar x_a`, :math:`\bar x = \bar x_a + \delta\,n_b/n`,
    :math:`M_2 = M_{2,a} + M_{2,b} + \delta\delta^\top n_a n_b/n`: stable, and the same numbers
    whichever thread added which part first. Parts of disjoint rows may be added concurrently.
    """

    PIECE = 4096  # rows per piece of the centred copy (L1/L2-sized)

    def __init__(self, n_out: int, d: int, n_local: int, groups: int = 32, pair: bool = False):
        self.d = d
        self.n_out = n_out
        self.n_local = n_local
        self.groups = max(1, min(groups, n_local // (2 if pair else 1)))
        self.pair = pair
        self._parts: dict[tuple[int, int], list[tuple[int, int, np.ndarray, np.ndarray]]] = {}
        self._runs: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
        self._local = threading.local()  # per-thread scratch (workers add concurrently)

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

    def _scratch(self, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        loc = self._local
        if getattr(loc, "ones", None) is None or len(loc.ones) < n:
            loc.ones = np.ones(n)
        if getattr(loc, "y", None) is None or loc.y.size < size:
            loc.y = np.empty(size)
        return loc.ones, loc.y

    def add(self, k: int, theta: np.ndarray, offset: int) -> None:
        r"""Add the rows ``offset…`` (of this rank) at output index ``k``.

        Per group run: the mean :math:`\mathbf 1^\top X/n` and :math:`M_2 = Y^\top Y` of the centred
        rows :math:`Y = X - \bar x`, as BLAS products in cache-sized pieces (one flat subtraction each:
        numpy's broadcast over a length-d inner axis is ≈10x slower); 2·10⁵ particles, d = 2: ≈2 ms.
        A torch tensor (a slab, from a worker of the slab pool) is reduced with torch on the calling
        thread: numpy's BLAS called from two threads at once serialises (measured ≈2 ms per slab of
        32 768 rows against ≈0.3 ms).
        """
        if hasattr(theta, "numpy") and not isinstance(theta, np.ndarray):
            self._add_tensor(k, theta, offset)
            return
        theta = np.ascontiguousarray(theta, dtype=float)
        n, d = theta.shape
        if n == 0:
            return
        rows = self.PIECE
        ones, buf = self._scratch(n, rows * d)
        flat = theta.reshape(-1)
        parts = []
        for g, a, b in self._group_runs(offset, n):
            cnt = b - a
            mean = ones[:cnt] @ theta[a:b] / cnt
            tile = np.tile(mean, min(rows, cnt))
            m2 = np.zeros((d, d))
            for lo in range(a, b, rows):
                hi = min(b, lo + rows)
                m = (hi - lo) * d
                y = np.subtract(flat[lo * d : hi * d], tile[:m], out=buf[:m]).reshape(hi - lo, d)
                m2 += y.T @ y
            parts.append((g, cnt, mean, m2))
        self._parts[(k, offset)] = parts  # one dict store: safe from the pool's threads (GIL)

    def _add_tensor(self, k: int, theta: Any, offset: int) -> None:
        """:meth:`add` for a (CPU or GPU) torch tensor, with torch's own reductions."""
        x = theta.double().contiguous()
        n, d = x.shape
        rows, parts = self.PIECE, []
        flat = x.view(-1)
        for g, a, b in self._group_runs(offset, n):
            cnt = b - a
            mean = x[a:b].sum(0) / cnt
            tile = mean.repeat(min(rows, cnt))
            m2 = None
            for lo in range(a, b, rows):
                hi = min(b, lo + rows)
                y = (flat[lo * d : hi * d] - tile[: (hi - lo) * d]).view(hi - lo, d)
                m2 = y.T @ y if m2 is None else m2 + y.T @ y
            parts.append((g, cnt, mean.cpu().numpy(), m2.cpu().numpy()))
        self._parts[(k, offset)] = parts

    def _merged(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per output time and group: count, mean and covariance (M₂/n), parts merged in row order."""
        G, d = self.groups, self.d
        count = np.zeros((self.n_out, G))
        mean = np.zeros((self.n_out, G, d))
        m2 = np.zeros((self.n_out, G, d, d))
        for k, off in sorted(self._parts):
            for g, nb, mb, m2b in self._parts[(k, off)]:
                na = count[k, g]
                if na == 0:
                    count[k, g], mean[k, g], m2[k, g] = nb, mb, m2b
                    continue
                tot = na + nb
                delta = mb - mean[k, g]
                mean[k, g] += delta * (nb / tot)
                m2[k, g] += m2b + np.outer(delta, delta) * (na * nb / tot)
                count[k, g] = tot
        return count, mean, m2 / np.maximum(count, 1)[..., None, None]

    def result(self, comm: Any = None) -> dict[str, np.ndarray]:
        """Mean, covariance and their batch-means standard errors at each output time (collective)."""
        cnt, gm, gc = self._merged()
        count = np.moveaxis(allgather_rows(np.moveaxis(cnt, 1, 0), comm), 0, 1)
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
