"""FEM-FCT (``stabilisation="fct"``): positivity, exact mass, second-order accuracy where upwinding is
first order or worse, the momentum phase-space stationary law, and 1 vs 2 MPI ranks."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.fem.dolfinx.gaussian import l2_error_2d, ou_moments

pytestmark = pytest.mark.fem
x, y = sp.symbols("x y", real=True)
A = np.array([[1.0, 0.5], [-0.3, 0.8]])  # non-symmetric drift matrix, b = -A x
PHI = sp.pi / 6  # rank-1 diffusion along (cos 30°, sin 30°): not aligned with any mesh edge
N_DIR = np.array([np.cos(np.pi / 6), np.sin(np.pi / 6)])
DIFF = 0.25 * np.outer(N_DIR, N_DIR)
M0, S0 = np.array([0.5, -0.3]), 0.1
P0 = sp.exp(-((x - M0[0]) ** 2 + (y - M0[1]) ** 2) / (2 * S0))
# direct solves (MUMPS, also in parallel): the mass then moves by round-off only, not by a KSP residual
LU = {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}


def _rank1_ou():
    n = sp.Matrix([sp.cos(PHI), sp.sin(PHI)])
    return symfp.SDE(state=[x, y], drift=-sp.Matrix(A.tolist()) * sp.Matrix([x, y]),
                     diffusion=sp.Rational(1, 4) * n * n.T)


def _exact(t: float):
    """Gaussian law of the degenerate OU (S stays > 0 from S0 I)."""
    return ou_moments(A, DIFF, M0, S0 * np.eye(2), t)


def _l2_error(sol, t):
    return l2_error_2d(sol.density, sol.mesh.mesh, *_exact(t))


def _solve(n, stabilisation, t_end=1.0, dt=0.01, comm=None, **kw):
    mesh = symfp.mesh.box([(-2, 2), (-2, 2)], cells=n, comm=comm)
    # the wall at 4.7 initial standard deviations: density there ~1e-5 of the max (truncation ≪ errors)
    return _rank1_ou().fokker_planck().solve(mesh, P0, t_end=t_end, dt=dt, stabilisation=stabilisation,
                                             progress=False, wall_tol=1e-3, **{"negative_tol": 1.0, **kw})


def _positive(obs, rel=1e-12):
    return float(np.min(obs["min"] / obs["max"])) >= -rel


def test_auto_chooses_fct_for_degenerate_diffusion_and_keeps_upwind_on_request():
    sol = _rank1_ou().fokker_planck().solve(symfp.mesh.box([(-2, 2), (-2, 2)], cells=8), P0, t_end=0.02,
                                            dt=0.01, progress=False, wall_tol=1.0)
    assert sol.info["stabilisation"] == "fct" and sol.info["scheme"] == "cn"
    assert "degenerate" in sol.info["stabilisation_reason"]
    up = _solve(8, "upwind", t_end=0.02)
    assert up.info["stabilisation"] == "upwind" and up.info["scheme"] == "euler"
    assert _solve(8, "afc", t_end=0.02).info["stabilisation"] == "fct"
    # BDF2 target (lumped BDF2 predictor): positive and conservative like the CN target
    b2 = _solve(8, "fct", t_end=0.05, scheme="bdf2", petsc_options=LU)
    assert b2.info["scheme"] == "bdf2" and _positive(b2.observables)
    assert np.max(np.abs(b2.observables["mass"] - 1)) < 1e-12


def test_rank1_ou_fct_is_second_order_where_upwind_is_not():
    # L² error at t = 1 against the exact Gaussian, h = 4/16, 4/32, 4/64, dt = 0.01 (CN time error
    # O(dt²) ~ 1e-5, far below the space errors 2e-1 … 1.6e-2). Measured:
    #   fct      1.98e-1, 6.76e-2, 1.60e-2   rates 1.55, 2.08
    #   upwind   4.69e-1, 4.12e-1, 3.84e-1   rates 0.19, 0.10 (the artificial diffusion that removes the
    #            positive off-diagonal entries of the oblique rank-1 stiffness is O(|D|), not O(h))
    #   Galerkin 1.39e-1, 4.10e-2, 1.09e-2   (BDF2; min −2.9e-2 of the max on 16²)
    errs = {}
    for stab in ("fct", "upwind"):
        errs[stab] = []
        for n in (16, 32, 64):
            sol = _solve(n, stab)
            assert _positive(sol.observables), (stab, n)
            errs[stab].append(_l2_error(sol, 1.0))
    e_fct, e_up = np.array(errs["fct"]), np.array(errs["upwind"])
    r_fct, r_up = np.log2(e_fct[:-1] / e_fct[1:]), np.log2(e_up[:-1] / e_up[1:])
    assert r_fct[-1] > 1.8, (e_fct, r_fct)  # asymptotic P1 rate 2 (first pair pre-asymptotic)
    assert r_up[-1] < 1.3, (e_up, r_up)
    assert e_fct[-1] < e_up[-1] / 10
    gal = _l2_error(_solve(64, "none", scheme="cn"), 1.0)
    assert e_fct[-1] < 2.0 * gal  # the limiter costs less than a factor 2 against Galerkin


def test_rank1_rotated_diffusion_positive_and_mass_exact_where_galerkin_undershoots():
    # coarse mesh: Galerkin (CN) undershoots by 0.3 % of the max by t = 0.5; FCT stays ≥ 0 to round-off
    # (bounds of the positive low-order predictor) and keeps the lumped mass to round-off (LU solves,
    # antisymmetric limited fluxes)
    gal = _solve(16, "none", t_end=0.5, scheme="cn", petsc_options=LU)
    assert np.min(gal.observables["min"] / gal.observables["max"]) < -1e-3
    sol = _solve(16, "fct", t_end=0.5, petsc_options=LU)
    obs = sol.observables
    assert _positive(obs)
    assert np.max(np.abs(obs["mass"] - 1.0)) < 1e-12
    assert 0.5 < sol.info["fct_mean_alpha"] <= 1.0


def test_momentum_phase_space_stationary_kinetic_energy():
    # momentum SGD (a = 1, s² = 5, η = 0.02, β = 0.98 → γ = 1) in phase space: noise in v only.
    # Stationary E[v²]/2 = ηs²/(4γ) = 0.025. On 48² (h = 0.058) with dt = 0.04 up to t = 8 FCT gives
    # 0.025016 (+0.07 %; upwind: 0.0279 on 96²). 1 % covers O(h²) + O(dt²) + the e^{-γ t} transient.
    th, v = sp.symbols("theta v", real=True)
    gamma, eta, s2 = 1.0, 0.02, 5.0
    sde = symfp.SDE(state=[th, v], drift=[v, -gamma * v - th], diffusion=sp.diag(0, eta * s2 / 2))
    p0 = sp.exp(-((th - 0.5) ** 2 + v**2) / (2 * 0.01)) / (2 * sp.pi * 0.01)
    mesh = symfp.mesh.box([(-1.4, 1.4), (-1.4, 1.4)], cells=48)
    sol = sde.fokker_planck().solve(mesh, p0, t_end=8.0, dt=0.04, progress=False, petsc_options=LU,
                                    expectations={"kinetic": v**2 / 2})
    assert sol.info["stabilisation"] == "fct"
    obs = sol.observables
    assert obs["E[kinetic]"][-1] == pytest.approx(eta * s2 / (4 * gamma), rel=1e-2)
    assert _positive(obs)
    assert np.max(np.abs(obs["mass"] - 1.0)) < 1e-12


@pytest.mark.mpi
def test_fct_one_and_two_ranks_agree(comm):
    # the same problem on COMM_SELF (serial, on every rank) and on COMM_WORLD: the limiter works on
    # owned rows with ghost values (stencil masses, request fractions, debts) and global sums, so the
    # observables agree to the LU round-off
    from mpi4py import MPI

    kw = dict(t_end=0.3, dt=0.02, petsc_options=LU, expectations={"x2y": x**2 * y})
    par_sol = _solve(24, "fct", comm=comm, **kw)
    par, ser = par_sol.observables, _solve(24, "fct", comm=MPI.COMM_SELF, **kw).observables
    # the redistribution acted (the Galerkin target undershoots here), so its ghost exchanges were used
    assert par_sol.info["fct_mean_alpha"] < 1.0
    for key in ("mass", "mean", "cov", "E[x2y]", "max", "min"):
        np.testing.assert_allclose(par[key], ser[key], rtol=1e-10, atol=1e-14 * float(ser["max"].max()),
                                   err_msg=key)
    assert _positive(par)


def _valley():
    """The linear-network SME at η = 0.1 (derivations/linear_network.py): b = -(u - 1)∇u,
    D = (η/2)V(u)∇u∇uᵀ, u = w1 w2: rank 1, across the curved valley w1 w2 = 1 (oblique to the mesh)."""
    w1, w2 = sp.symbols("w1 w2", real=True)
    u = w1 * w2
    gu = sp.Matrix([w2, w1])
    V = sp.Rational(4, 5) * (u - 1) ** 2 + sp.Rational(1, 4)
    sde = symfp.SDE(state=[w1, w2], drift=-(u - 1) * gu, diffusion=sp.Rational(1, 20) * V * gu * gu.T)
    p0 = sp.exp(-((w1 - 2) ** 2 + (w2 - sp.Rational(1, 2)) ** 2) / (2 * sp.Rational(1, 400)))
    return sde.fokker_planck(), p0, w1**2 - w2**2


def _valley_eq(n, stab="fct", backend="skfem", **kw):
    fp, p0, q = _valley()
    sol = fp.solve(symfp.mesh.box([(1.1, 2.3), (0.0, 1.2)], cells=n, backend=backend), p0, t_end=5.0, dt=0.05,
                   scheme="cn", progress=False, stabilisation=stab, negative_tol=1.0, wall_tol=1.0,
                   expectations={"q": q}, output_every=10, backend=backend, **kw)
    obs = sol.observables
    if stab == "fct":
        assert float(np.min(obs["min"])) >= 0.0, n  # the redistribution clips at 0 exactly
        assert np.max(np.abs(obs["mass"] - 1.0)) < 1e-9, n  # round-off of the solves over 100 steps
    return float(obs["E[q]"][-1])


def test_fct_converges_under_refinement_in_the_thin_oblique_valley():
    pytest.importorskip("skfem")  # the study runs on scikit-fem (SuperLU once per run); dolfinx roots lack it
    # issue 12: E q, q = w1² − w2², at t = 5 (dt = 0.05, CN target). Reference: Galerkin CN at the same dt
    # on 96² and 192², Richardson-extrapolated (O(h²)): 3.234148, its own error ≈ |G192 − G96|/3 ≈ 4e-5.
    # Measured |E q − ref| (scikit-fem; the dolfinx backend gives the same numbers, checked below):
    #   default limiter (redistribute)   1.01e-2  3.15e-3  6.87e-4  (192²: 7.5e-5)   rates 1.7, 2.2 (3.2)
    #   Zalesak's passes (old default)   1.08e-2  6.18e-3  8.64e-3                     growing
    # Expected: the Galerkin rate 2 (P1, smooth solution) once the clipped mass of the undershoots, which
    # falls like h^1.6 (1.6e-3 → 5.1e-4 of the mass per step, 48² → 96²) and is moved by O(h) (a few
    # stencil rings), is negligible; the first halving is pre-asymptotic. Asserted: each halving divides
    # the error by ≥ 2^1.5 (rate ≥ 1.5), and on 96² the error is within 1e-3 (Zalesak's was 8.6e-3).
    g96, g192 = _valley_eq(96, "none"), _valley_eq(192, "none")
    ref = g192 + (g192 - g96) / 3.0
    assert abs(g192 - g96) / 3.0 < 1e-4  # the reference's own error, ≪ the errors tested
    errs = np.array([abs(_valley_eq(n) - ref) for n in (24, 48, 96)])
    rates = np.log2(errs[:-1] / errs[1:])
    assert np.all(rates > 1.5), (errs, rates)
    assert errs[-1] < 1e-3, errs


def test_fct_valley_dolfinx_equals_skfem():
    pytest.importorskip("skfem")
    # the limiter is shared: the dolfinx path (PETSc solves, its ghost layout) gives the scikit-fem number
    # as closely as the two backends' Galerkin solutions agree (they differ by 5.0e-7 on 24², the
    # assembly of p0 and of the observables; FCT measured 3.9e-8)
    d_gal = abs(_valley_eq(24, "none", backend="dolfinx") - _valley_eq(24, "none"))
    d_fct = abs(_valley_eq(24, backend="dolfinx") - _valley_eq(24))
    assert d_fct <= max(2.0 * d_gal, 1e-9) and d_fct < 1e-6, (d_fct, d_gal)
    with pytest.raises(symfp.InputError, match="fct_options"):
        _valley_eq(8, fct_options={"sweeps": 3})


def test_fct_with_an_absorbing_side_stays_positive():
    # Zalesak's R± are 1 at absorbing nodes (p = 0 is imposed afterwards); their unlimited value used to
    # stay in the iterate and lower the bounds of their neighbours in the next limiter pass: −1.2e-3 of
    # the maximum at step 2 here. Now min p ≥ 0 up to round-off (measured ≥ −4e-21 of the max)
    x, y = sp.symbols("x y", real=True)
    fp = symfp.SDE(state=[x, y], drift=[-x, -y], diffusion=sp.Rational(1, 2)).fokker_planck()
    sol = fp.solve(symfp.mesh.box([(-3, 3), (-3, 3)], cells=12), sp.exp(-((x - 1) ** 2 + y**2)), 0.3, 0.1,
                   progress=False, absorbing="xmax", stabilisation="fct", negative_tol=1.0)
    assert np.min(sol.observables["min"] / sol.observables["max"]) > -1e-14
    assert sol.observables["mass"][-1] < sol.observables["mass"][0]
