"""Grid tabulation of an SDE's drift and diffusion (symfp.particles.tabulate): the logistic SME with
b and 2D tabulated and interpolated against the exact per-particle data-mean evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.errors import InputError
from symfp.particles import GridSpec

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
w1, w2, x1, x2, y = sp.symbols("w1 w2 x1 x2 y", real=True)
BOX = [(-1.0, 1.5), (-1.5, 1.0)]


def _logistic_sme(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    Y = np.where(X[:, 0] + 0.5 * rng.normal(size=n) > 0, 1.0, -1.0)
    loss = sp.log(1 + sp.exp(-y * (w1 * x1 + w2 * x2)))
    model = symfp.SGD(loss=loss, params=[w1, w2], data=symfp.Dataset({x1: X[:, 0], x2: X[:, 1], y: Y}),
                      lr=sp.Rational(1, 10), batch_size=4)
    return model.sme(order=1)


def test_tabulated_logistic_sme_matches_the_direct_path():
    r"""Same seed, so the same normals: the tabulated and the exact run differ only through the
    interpolation. With ε_b and ε_D the measured absolute errors of b and 2D (stated in info), one Euler
    step moves a particle by at most hε_b + √h|z|·√ε_D more (|Δσ| ≤ √|Δ(2D)| for PSD square roots); over
    t = 0.5 (contracting drift, Lipschitz growth ≤ 2x) the mean differs by at most
    2(tε_b + √t·√ε_D·E|z|·√2) plus 4 standard errors of the paired difference."""
    sde = _logistic_sme()
    kw = dict(n_particles=4000, t_end=0.5, dt=0.1, init=(0.4, -0.3), seed=3, outputs=2)
    direct = sde.simulate(**kw)
    grid = GridSpec(bounds=BOX, points=65, tol=1e-3)
    tab = sde.simulate(**kw, tabulate=grid)
    info = tab.info["tabulation"]
    assert info["grid"] == [65, 65] and info["diffusion_tabulated"] == "2D"
    assert 0 < info["drift_error"] <= 1e-3 and 0 < info["diffusion_error"] <= 1e-3
    diff = tab.theta - direct.theta
    se = diff.std(axis=0, ddof=1) / np.sqrt(len(diff))
    t = 0.5
    bound = 2 * (t * info["drift_abs_error"] + np.sqrt(t) * np.sqrt(info["diffusion_abs_error"]) * 2)
    assert np.all(np.abs(diff.mean(axis=0)) < 4 * se + bound)
    assert np.abs(diff).max() < 10 * bound  # and path by path, not only on average
    np.testing.assert_allclose(np.cov(tab.theta.T), np.cov(direct.theta.T), rtol=0.02, atol=1e-6)
    # the interpolation error falls like h^2: 33 points per axis (h twice as large) give ≈ 4x the error
    coarse = sde.simulate(**{**kw, "n_particles": 10}, tabulate=GridSpec(bounds=BOX, points=33, tol=1e-2))
    ratio = coarse.info["tabulation"]["drift_error"] / info["drift_error"]
    assert 2.5 < ratio < 6


def test_tabulation_refuses_particles_off_the_grid_and_coarse_grids():
    sde = _logistic_sme()
    kw = dict(n_particles=100, t_end=0.2, dt=0.1, init=(0.4, -0.3), seed=3, outputs=2)
    with pytest.raises(InputError, match=r"left the tabulation grid in w1 \(\[-0.2, 0.2\]"):
        sde.simulate(**kw, tabulate=GridSpec(bounds=[(-0.2, 0.2), (-1.0, 1.0)], points=33))
    with pytest.raises(InputError, match="relative error .* > tol"):
        sde.simulate(**kw, tabulate=GridSpec(bounds=BOX, points=3, tol=1e-8))
    with pytest.raises(InputError, match="GridSpec"):
        sde.simulate(**kw, tabulate=True)
    with pytest.raises(InputError, match="one pair per coordinate"):
        sde.simulate(**kw, tabulate=GridSpec(bounds=[(-1.0, 1.0)]))


def test_tabulated_constant_noise_drift_is_exact_for_a_linear_drift():
    # a linear drift is reproduced exactly by multilinear interpolation: same particles as the exact run
    sde = symfp.SDE([w1, w2], [-w1 + w2 / 2, -w2], 0.05)
    kw = dict(n_particles=500, t_end=0.3, dt=0.05, init=(0.5, 0.2), seed=2, outputs=2, compile=False)
    tab = sde.simulate(**kw, tabulate=GridSpec(bounds=[(-3, 3), (-3, 3)], points=5))
    assert tab.info["tabulation"]["drift_error"] < 1e-14
    np.testing.assert_allclose(tab.theta, sde.simulate(**kw).theta, rtol=0, atol=1e-12)
