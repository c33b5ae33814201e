"""The automatic domain (symfp.fem.domain) and the mass-at-the-wall warning of the forward solver."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sympy as sp
from scipy.linalg import expm

import symfp
from symfp.fem import domain

pytestmark = pytest.mark.fem
x, y = sp.symbols("x y", real=True)
B = np.array([[1.0, 0.3], [0.3, 0.5]])  # symmetric: gradient OU, closed-form stationary law
DIFF = 0.25
S_INF = DIFF * np.linalg.inv(B)  # stationary covariance D B⁻¹ (B and D = ¼ I commute)
M0, S0 = np.array([1.0, 0.0]), 0.1
P0 = sp.exp(-((x - M0[0]) ** 2 + (y - M0[1]) ** 2) / (2 * S0))


def _fp():
    b = -sp.Matrix(B.tolist()) * sp.Matrix([x, y])
    return symfp.SDE(state=[x, y], drift=b, diffusion=sp.Rational(1, 4)).fokker_planck()


def _exact_cov(t: float) -> np.ndarray:
    E = expm(-B * t)
    return E @ (S0 * np.eye(2) - S_INF) @ E.T + S_INF


def test_auto_box_covers_six_std_of_the_stationary_law_and_p0():
    est = domain.estimate(_fp(), P0)
    lo, hi = np.array(est.bounds).T
    six = 6 * np.sqrt(np.diag(S_INF))
    assert np.all(lo <= -six) and np.all(hi >= six), (est.bounds, six)
    # not absurdly large either: the 1e-9 quantile of a 2-D Gaussian is 6.2 σ (+ 2 grid steps)
    assert np.all(hi <= 6.5 * np.sqrt(np.diag(S_INF))), est.bounds
    assert np.all(lo <= M0 - 6 * np.sqrt(S0)) and np.all(hi >= M0 + 6 * np.sqrt(S0))
    # resolution: 8 cells per the smallest local width, the p0 std √0.1
    assert est.sigma_min == pytest.approx(np.sqrt(S0), rel=1e-3)
    np.testing.assert_array_equal(est.cells, np.ceil((hi - lo) / (np.sqrt(S0) / 8)).astype(int))


def test_linearisation_box_without_closed_form():
    # non-symmetric drift matrix: no detailed balance, the box comes from the Lyapunov covariance
    A = np.array([[1.0, 0.5], [-0.3, 0.8]])
    Dm = np.array([[0.3, 0.1], [0.1, 0.2]])
    sde = symfp.SDE(state=[x, y], drift=-sp.Matrix(A.tolist()) * sp.Matrix([x, y]),
                    diffusion=sp.Matrix(Dm.tolist()))
    est = domain.estimate(sde.fokker_planck(), (0.5, -0.3))
    from scipy.linalg import solve_continuous_lyapunov

    S = solve_continuous_lyapunov(-A, -2 * Dm)
    k = domain.tail_multiple(1e-9, 2, 6.0)  # Φ⁻¹(1 − 2.5e-10) = 6.23
    np.testing.assert_allclose(np.array(est.bounds)[:, 1], k * np.sqrt(np.diag(S)), rtol=1e-10)
    assert "linearised" in est.describe()


def test_double_well_box_resolves_each_well():
    th = sp.Symbol("theta", real=True)
    sde = symfp.SDE(state=[th], drift=[-(th**3 - th)], diffusion=[[sp.Rational(1, 10)]])
    est = domain.estimate(sde.fokker_planck(), (1.0,))
    # ρ ∝ exp(−(θ⁴/4 − θ²/2)/0.1) is 1e-10 of its max at |θ| ≈ 2.02; each well has local width
    # (f''(1)/ε)^(-1/2) = 0.22 and the Fisher width is 0.25, far below the marginal std 0.93
    assert 1.9 < est.bounds[0][1] < 2.3
    assert est.bounds[0][0] == pytest.approx(-est.bounds[0][1], abs=1e-3)  # symmetric law, grid step 1e-3
    assert 0.2 < est.sigma_min < 0.3


@pytest.mark.mpi
def test_solve_on_auto_box_gives_the_closed_form_covariance():
    with warnings.catch_warnings():
        warnings.simplefilter("error", domain.DomainWarning)  # the auto box must not warn
        # on the 6σ box the cell Péclet number reaches 1.8 at the walls, where there is no mass:
        # plain Galerkin + BDF2 is asked for so that the comparison is second order in h and dt
        sol = _fp().solve(None, P0, t_end=1.0, dt=0.05, progress=False, scheme="bdf2", stabilisation="none",
                          domain_options={"cells_per_std": 3})
    assert sol.info["domain"].startswith("auto box")
    assert sol.observables["wall"].max() < 1e-8
    # P1 on h ≈ σ_min/3 = 0.105 and BDF2 with dt = 0.05: measured errors 4.2e-4 (cov) and 3.5e-4
    # (mean), O(h² + dt²); 1.5e-3 leaves room for partition-dependent round-off and nothing more
    np.testing.assert_allclose(sol.observables["cov"][-1], _exact_cov(1.0), atol=1.5e-3)
    np.testing.assert_allclose(sol.observables["mean"][-1], expm(-B) @ M0, atol=1.5e-3)
    assert np.max(np.abs(sol.observables["mass"] - 1)) < 1e-11


def test_tight_box_warns_that_mass_reached_the_wall():
    mesh = symfp.mesh.box([(-1.0, 2.0), (-1.0, 1.0)], cells=24)  # ±1.4 σ of the stationary law in y
    with pytest.warns(domain.DomainWarning, match=r"mass reached the wall.*first at t = 0\b"):
        sol = _fp().solve(mesh, P0, t_end=0.5, dt=0.1, progress=False)
    assert sol.observables["wall"].max() > 1e-2
    assert isinstance(domain.DomainWarning("x"), domain.SymfpWarning)
