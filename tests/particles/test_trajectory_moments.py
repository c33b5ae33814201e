r"""Trajectory moments accumulated block by block (shifted sums per group, BLAS products in pieces).

Against numpy's two-pass mean and covariance of the whole cloud, for data whose mean is 10⁶ times its
spread (where unshifted one-pass sums lose every digit), whether the rows come as one block or several.
"""

from __future__ import annotations

import numpy as np

from symfp.particles.statistics import TrajectoryMoments


def _cloud(n=50_000):
    rng = np.random.default_rng(3)
    return rng.normal(size=(n, 3)) * [1e-3, 1.0, 5.0] + [1e3, -2.0, 0.0]


def test_block_sums_match_the_two_pass_moments():
    x = _cloud()
    n, edges = len(x), [0, 7000, 18_000, 32_768, 40_001, 50_000]
    ref_mean, ref_cov = x.mean(axis=0), np.cov(x.T, bias=True)
    tr = TrajectoryMoments(2, 3, n)
    tr.add(0, x, 0)  # one block
    for a, b in zip(edges[:-1], edges[1:], strict=True):  # several blocks (chunk_size), in row order
        tr.add(1, x[a:b], a)
    r = tr.result()
    np.testing.assert_allclose(r["mean"], [ref_mean, ref_mean], rtol=1e-14, atol=1e-14)
    # the variance 1e-6 of the first coordinate under a mean of 1e3: the shift keeps its digits;
    # entries compared on the scale sqrt(C_ii C_jj)
    scale = np.sqrt(np.outer(np.diag(ref_cov), np.diag(ref_cov)))
    for c in r["cov"]:
        assert np.max(np.abs(c - ref_cov) / scale) < 1e-10
    # batch-means standard error of the mean: sd/sqrt(n) within the ≈ 1/sqrt(2·31) = 13 % of 32 groups
    np.testing.assert_allclose(r["mean_stderr"][0], x.std(axis=0) / np.sqrt(n), rtol=0.5)
