r"""Trajectory moments from parts (blocks, or slabs added by the pool's threads), merged in row order.

Against numpy's two-pass mean and covariance of the whole cloud, for data whose mean is 10⁶ times its
spread (where one-pass sums lose every digit); and the merged numbers do not depend on the order, or
the threads, in which the parts arrived.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from symfp.particles.statistics import TrajectoryMoments

torch = pytest.importorskip("torch")


def _cloud(n=50_000):
    rng = np.random.default_rng(3)
    return rng.normal(size=(n, 3)) * [1e-3, 1.0, 5.0] + [1e3, -2.0, 0.0]


def test_parts_merge_to_the_two_pass_moments_in_any_order():
    x = _cloud()
    n, edges = len(x), [0, 7000, 18_000, 32_768, 40_001, 50_000]
    ref_mean, ref_cov = x.mean(axis=0), np.cov(x.T, bias=True)

    def run(order, threads):
        tr = TrajectoryMoments(2, 3, n)
        tr.add(0, x, 0)  # one numpy block
        parts = [(a, torch.from_numpy(x[a:b].copy())) for a, b in zip(edges[:-1], edges[1:], strict=True)]
        with ThreadPoolExecutor(threads) as ex:
            list(ex.map(lambda p: tr.add(1, p[1], p[0]), [parts[i] for i in order]))
        return tr.result()

    a = run([0, 1, 2, 3, 4], 1)
    b = run([4, 2, 0, 3, 1], 2)
    for key in ("mean", "cov", "mean_stderr", "cov_stderr"):
        np.testing.assert_array_equal(a[key], b[key])  # order and threads do not change a bit
    for r in (a["mean"], b["mean"]):
        np.testing.assert_allclose(r, [ref_mean, ref_mean], rtol=1e-14, atol=1e-14)
    # the variance 1e-6 of the first coordinate under a mean of 1e3: two-pass accuracy (a one-pass
    # Σx² − n x̄² would keep no digit of it); entries compared on the scale sqrt(C_ii C_jj)
    scale = np.sqrt(np.outer(np.diag(ref_cov), np.diag(ref_cov)))
    for c in (a["cov"][0], a["cov"][1]):
        assert np.max(np.abs(c - ref_cov) / scale) < 1e-10
    # batch-means standard error of the mean: sd/sqrt(n) within the ≈ 1/sqrt(2·31) = 13 % of 32 groups
    np.testing.assert_allclose(a["mean_stderr"][0], x.std(axis=0) / np.sqrt(n), rtol=0.5)
