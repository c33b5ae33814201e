"""Forward Fokker–Planck solver against closed forms: OU Gaussians, the double-well Gibbs law,
a degenerate (rank-1 diffusion) case, absorbing walls; convergence rates in h and dt."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.fem.dolfinx.gaussian import l2_error_2d, ou_moments

pytestmark = pytest.mark.fem
x, y = sp.symbols("x y", real=True)
A = np.array([[1.0, 0.5], [-0.3, 0.8]])  # non-symmetric drift matrix, b = -A x
DIFF = np.array([[0.3, 0.1], [0.1, 0.2]])  # anisotropic constant D
M0, S0 = np.array([0.5, -0.3]), 0.1


def _ou_sde():
    b = -sp.Matrix(A.tolist()) * sp.Matrix([x, y])
    return symfp.SDE(state=[x, y], drift=b, diffusion=sp.Matrix(DIFF.tolist()))


def _ou_exact(t: float):
    """Mean and covariance of the OU law (symfp.fem.dolfinx.gaussian: scipy, rtol 1e-12)."""
    return ou_moments(A, DIFF, M0, S0 * np.eye(2), t)


P0 = sp.exp(-((x - M0[0]) ** 2 + (y - M0[1]) ** 2) / (2 * S0))


def _l2_error_to_gaussian(sol, t):
    return l2_error_2d(sol.density, sol.mesh.mesh, *_ou_exact(t))


def _ou_solve(n, dt, scheme="bdf2", t_end=1.0, **kw):
    mesh = symfp.mesh.box([(-2.5, 2.5), (-2.5, 2.5)], cells=n)
    return _ou_sde().fokker_planck().solve(mesh, P0, t_end=t_end, dt=dt, scheme=scheme, stabilisation="none",
                                           progress=False, **{"negative_tol": 0.05, **kw})


def test_ou_2d_density_converges_at_rate_two_in_h_and_conserves_mass():
    # BDF2 with dt = 0.01 has a time error ~1e-5, far below the P1 space error (≥ 5e-4 here)
    errs = [_l2_error_to_gaussian(_ou_solve(n, 0.01), 1.0) for n in (16, 32, 64)]
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    # P1 L² error ∝ h²; the pre-asymptotic coarse level lowers the first rate a little
    assert 1.8 < rates[-1] < 2.2, (errs, rates)
    sol = _ou_solve(32, 0.02)
    # zero flux: the discrete mass changes only by the KSP residual (rtol 1e-12)
    assert np.max(np.abs(sol.observables["mass"] - 1.0)) < 1e-12
    m, S = _ou_exact(1.0)
    # moments of the P1 density: O(h²) ≈ 1e-3 at h = 5/32 (domain truncation ~1e-6 is negligible)
    np.testing.assert_allclose(sol.observables["mean"][-1], m, atol=3e-3)
    np.testing.assert_allclose(sol.observables["cov"][-1], S, atol=5e-3)
    assert sol.observables["mean"].shape == (51, 2) and sol.observables["cov"].shape == (51, 2, 2)


@pytest.mark.parametrize("scheme,order", [("euler", 1), ("cn", 2), ("bdf2", 2)])
def test_ou_time_error_falls_at_the_scheme_order(scheme, order):
    from symfp.fem.dolfinx import compat

    # time error isolated on a fixed mesh: against BDF2 with dt = 1/320 on the same mesh
    ref = _ou_solve(16, 1 / 320, "bdf2", t_end=0.5).density
    errs = []
    for dt in (0.05, 0.025):
        p = _ou_solve(16, dt, scheme, t_end=0.5).density
        # the same box built twice: identical dofs, but separate mesh objects (dolfinx ≥ 0.9 refuses
        # forms mixing two meshes), so carry the reference values over after checking the layout
        V = p.function_space
        coords = ref.function_space.tabulate_dof_coordinates()
        np.testing.assert_array_equal(V.tabulate_dof_coordinates(), coords)
        r = p.copy()
        r.x.array[:] = ref.x.array
        errs.append(np.sqrt(compat.scalar_integral((p - r) ** 2, V.mesh)))
    rate = np.log2(errs[0] / errs[1])
    assert abs(rate - order) < 0.25, (scheme, errs, rate)


def test_double_well_long_time_matches_gibbs_reference():
    # f = θ⁴/4 − θ²/2, D = ε = 0.1: stationary law exp(−f/ε)/Z, Z = 15.1702, E θ² = 0.871363 (item 5).
    th = sp.Symbol("theta", real=True)
    f = th**4 / 4 - th**2 / 2
    sde = symfp.SDE(state=[th], drift=[-sp.diff(f, th)], diffusion=[[sp.Rational(1, 10)]])
    mesh = symfp.mesh.box([(-2.5, 2.5)], cells=1000)
    # symmetric start: the slow inter-well mode is not excited; the next one decays like e^{-2t}
    # consistent-mass Galerkin undershoots ~1e-3 of the max in the early transient at the walls
    sol = sde.fokker_planck().solve(mesh, sp.exp(-th**2), t_end=10.0, dt=0.05, progress=False,
                                    expectations={"theta2": th**2}, negative_tol=1e-2)
    assert sol.info["stabilisation"] == "none"  # cell Péclet ≤ 0.33 on this mesh
    e2 = sol.observables["E[theta2]"][-1]
    # P1 error O(h²) ≈ 1e-5, BDF2 O(dt²) on a decayed transient, e^{-20} residual transient
    assert abs(e2 / 0.871363 - 1) < 1e-3, e2
    pts = np.array([[1.0], [0.0]])
    exact = np.exp(-np.array([-0.25, 0.0]) / 0.1) / 15.1702
    np.testing.assert_allclose(sol.eval(pts), exact, rtol=2e-3)
    assert sol.observables["relative_entropy"][-1] < 1e-5 < sol.observables["relative_entropy"][0]


def test_double_well_coarse_mesh_gibbs_form_on_request_still_matches():
    # "auto" used to pick the Gibbs form here (Pe > 1, detailed balance); it now takes FCT, which was
    # measured 1.4–5× more accurate in transients (table in symfp.fem.dolfinx.stabilise). The Gibbs form stays
    # available by request, and its steady state is still the exact law.
    th = sp.Symbol("theta", real=True)
    f = th**4 / 4 - th**2 / 2
    sde = symfp.SDE(state=[th], drift=[-sp.diff(f, th)], diffusion=[[sp.Rational(1, 10)]])
    mesh = symfp.mesh.box([(-2.5, 2.5)], cells=100)  # cell Péclet up to 3.3 at the walls
    for stabilisation, expected in (("gibbs", "gibbs"), ("auto", "fct")):
        sol = sde.fokker_planck().solve(mesh, sp.exp(-th**2), t_end=10.0, dt=0.1, progress=False,
                                        expectations={"theta2": th**2}, stabilisation=stabilisation)
        assert sol.info["stabilisation"] == expected
        # Gibbs: quadrature of ρθ² on h = 0.05; FCT: P1 O(h²) ≈ 1e-4 relative (coarse), e^{-20} transient
        assert abs(sol.observables["E[theta2]"][-1] / 0.871363 - 1) < 1e-3, (stabilisation, sol.observables)
        assert np.max(np.abs(sol.observables["mass"] - 1)) < 1e-10


def test_gibbs_relative_entropy_uses_the_conserved_mass_and_decays_like_fct():
    # noisy-SGD SME of derivations/noisy_sgd_convergence.py on the gmsh ellipse (Pe 4.6). The Gibbs
    # form's KL used the vertex weights ∫φ_i, whose Σ m_i ρ_i u_i is not the conserved Σ u_i ∫ρφ_i: a
    # term linear in p − π bent ln H (late rate 2.51 vs FCT's 2.79). With ∫ρφ_i/ρ_i both agree.
    import pathlib

    t1, t2 = sp.symbols("theta1 theta2", real=True)
    sde = symfp.SDE(state=[t1, t2], drift=[-(t1 + t1**3), -2 * t2],
                    diffusion=[[sp.Rational(1, 5), 0], [0, sp.Rational(1, 10)]])
    mesh = symfp.mesh.load(pathlib.Path(__file__).resolve().parents[2] / "meshes" / "ellipse.msh")
    p0 = sp.exp(-((t1 - 1) ** 2 + (t2 - sp.Rational(1, 2)) ** 2) / (2 * 0.15**2))
    rates = {}
    for stabilisation in ("gibbs", "fct"):
        sol = sde.fokker_planck().solve(mesh, p0, t_end=3.0, dt=0.02, progress=False, scheme="cn",
                                        stabilisation=stabilisation)
        t, H = sol.observables["t"], sol.observables["relative_entropy"]
        assert np.all(H > 0) and np.all(np.diff(H) < 0)
        win = t >= 1.5 - 1e-9
        rates[stabilisation] = -np.polyfit(t[win], np.log(H[win]), 1)[0]
    # measured 2.805 (gibbs, cn) vs 2.789 (fct): the two P1 discretisations differ by ~0.6 %; the bug
    # gave a 10 % gap
    assert rates["gibbs"] == pytest.approx(rates["fct"], rel=0.02), rates
    assert rates["fct"] == pytest.approx(2.789, rel=5e-3), rates


@pytest.mark.parametrize("stabilisation,expected", [("auto", ("fct", "cn")), ("upwind", ("upwind", "euler"))])
def test_degenerate_rank_one_diffusion_stays_positive_and_conservative(stabilisation, expected):
    # kinetic (momentum) Langevin: dq = v dt, dv = −(q + v) dt + noise in v only: D = diag(0, 0.2)
    q, v = sp.symbols("q v", real=True)
    sde = symfp.SDE(state=[q, v], drift=[v, -q - v], diffusion=sp.Matrix([[0, 0], [0, sp.Rational(1, 5)]]))
    mesh = symfp.mesh.box([(-3, 3), (-3, 3)], cells=24)
    sol = sde.fokker_planck().solve(mesh, (1.0, 0.0), t_end=1.0, dt=0.05, progress=False,
                                    stabilisation=stabilisation)
    assert (sol.info["stabilisation"], sol.info["scheme"]) == expected
    obs = sol.observables
    assert np.all(obs["min"] >= -1e-8 * obs["max"]), obs["min"].min()
    assert np.max(np.abs(obs["mass"] - 1)) < 1e-12
    # the mean obeys m' = B m exactly for linear drift; upwinding adds O(h) diffusion only (FCT less)
    B = np.array([[0, 1], [-1, -1]])
    from scipy.linalg import expm

    m_exact = expm(B * 1.0) @ np.array([1.0, 0.0])
    np.testing.assert_allclose(obs["mean"][-1], m_exact, atol=0.05)


def test_galerkin_on_degenerate_problem_reports_negative_density_with_step():
    q, v = sp.symbols("q v", real=True)
    sde = symfp.SDE(state=[q, v], drift=[v, -q - v], diffusion=sp.Matrix([[0, 0], [0, sp.Rational(1, 5)]]))
    mesh = symfp.mesh.box([(-3, 3), (-3, 3)], cells=12)
    with pytest.raises(symfp.SolverError, match=r"negative density .* time step \d+ .*fct"):
        sde.fokker_planck().solve(mesh, (1.0, 0.0), t_end=1.0, dt=0.05, stabilisation="none", progress=False)


def test_absorbing_walls_give_the_first_mode_decay():
    # p_t = D p_xx on (0, 1), p = 0 at both ends, p0 = sin(πx): mass(t) = e^{−π² D t} (exactly the
    # first Dirichlet mode). P1 eigenvalue error (π h)²/12·π² D t ≈ 3e-4 relative at h = 1/64.
    sde = symfp.SDE(state=[x], drift=[0], diffusion=[[sp.Rational(1, 10)]])
    mesh = symfp.mesh.box([(0, 1)], cells=64)
    sol = sde.fokker_planck().solve(mesh, sp.sin(sp.pi * x), t_end=1.0, dt=0.01, absorbing=["xmin", "xmax"],
                                    progress=False)
    decay = np.exp(-np.pi**2 * 0.1 * sol.times)
    np.testing.assert_allclose(sol.observables["mass"], decay, rtol=2e-3)


def test_regions_entropy_and_write_load(tmp_path):
    th = sp.Symbol("theta", real=True)
    sde = symfp.SDE(state=[x, y], drift=[x - x**3, -y], diffusion=sp.Rational(1, 4))
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    mesh = symfp.mesh.load(root / "meshes" / "double_well.msh")
    sol = sde.fokker_planck().solve(mesh, (1.0, 0.0), t_end=0.2, dt=0.05, progress=False, keep="all")
    rm = sol.observables["region_mass"]
    assert list(sol.observables["region_names"]) == list(mesh.regions)
    np.testing.assert_allclose(rm.sum(axis=1), sol.observables["mass"], rtol=1e-12)  # basins tile the domain
    right = list(mesh.regions).index("right")
    assert rm[0, right] > 0.99  # started at the right minimum
    out = sol.write(tmp_path / "run")
    back = type(sol).load(out)
    np.testing.assert_allclose(back.observables["cov"], sol.observables["cov"], rtol=1e-15)
    assert (tmp_path / "run" / "density.xdmf").exists() and (tmp_path / "run" / "observables.csv").exists()
    assert sol.eval([[1.0, 0.0]], t=0.1).shape == (1,)
    with pytest.raises(symfp.InputError, match="stored times"):
        sol.eval([[1.0, 0.0]], t=0.123)
    del th
