"""One FE suite over every backend present (dolfinx, scikit-fem), against the same closed forms.

OU moments and convergence rates in h and dt, the double-well Gibbs law, degenerate (rank-1)
diffusion with FCT, absorbing parts, exit times in 1-D / disk / annulus, the stationary density, the
spectral gap and gmsh meshes with regions — each with the tolerance of the method's error.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import sympy as sp

import symfp

MESHES = pathlib.Path(__file__).resolve().parents[2] / "meshes"
x, y = sp.symbols("x y", real=True)
A = np.array([[1.0, 0.5], [-0.3, 0.8]])  # non-symmetric drift matrix, b = −A x
DIFF = np.array([[0.3, 0.1], [0.1, 0.2]])  # anisotropic constant D
M0, S0 = np.array([0.5, -0.3]), 0.1
P0 = sp.exp(-((x - M0[0]) ** 2 + (y - M0[1]) ** 2) / (2 * S0))


def ou_moments(t: float) -> tuple[np.ndarray, np.ndarray]:
    """Item 3: m' = −A m, S' = −AS − SAᵀ + 2D (scipy, rtol 1e-12)."""
    from scipy.integrate import solve_ivp

    def rhs(_, z):
        m, S = z[:2], z[2:].reshape(2, 2)
        return np.concatenate([-A @ m, (-A @ S - S @ A.T + 2 * DIFF).ravel()])

    z = solve_ivp(rhs, (0, t), np.concatenate([M0, S0 * np.eye(2).ravel()]), rtol=1e-12, atol=1e-14).y[:, -1]
    return z[:2], z[2:].reshape(2, 2)


def gaussian(pts: np.ndarray, m: np.ndarray, S: np.ndarray) -> np.ndarray:
    r = pts - m
    quad = np.einsum("ni,ij,nj->n", r, np.linalg.inv(S), r)
    return np.exp(-0.5 * quad) / (2 * np.pi * np.sqrt(np.linalg.det(S)))


def ou_solve(backend, n, dt, scheme="bdf2", t_end=1.0, **kw):
    sde = symfp.SDE(state=[x, y], drift=-sp.Matrix(A.tolist()) * sp.Matrix([x, y]),
                    diffusion=sp.Matrix(DIFF.tolist()))
    mesh = symfp.mesh.box([(-3, 3), (-3, 3)], cells=n, backend=backend)
    return sde.fokker_planck().solve(mesh, P0, t_end=t_end, dt=dt, scheme=scheme, progress=False,
                                     backend=backend, **{"stabilisation": "none", "negative_tol": 0.05, **kw})


def test_ou_moments_and_density_converge_at_rate_two_in_h(backend):
    m, S = ou_moments(1.0)
    g = np.linspace(-1.5, 1.5, 13)
    pts = np.array([[a, b] for a in g for b in g])
    errs, cov_errs = [], []
    for n in (16, 32):
        sol = ou_solve(backend, n, 0.01)
        assert sol.info["stabilisation"] == "none"
        # zero flux: mass changes only by the linear-solver residual
        assert np.max(np.abs(sol.observables["mass"] - 1.0)) < 1e-11
        errs.append(np.max(np.abs(sol.eval(pts) - gaussian(pts, m, S))))
        cov_errs.append(np.max(np.abs(sol.observables["cov"][-1] - S)))
    # P1: nodal-point and moment errors O(h²) (BDF2 at dt = 0.01 adds ~1e-5; walls at ≥ 5 sd)
    rate = np.log2(errs[0] / errs[1])
    assert 1.6 < rate < 2.4, (errs, rate)
    assert cov_errs[1] < 2e-3 and 1.6 < np.log2(cov_errs[0] / cov_errs[1]) < 2.4, cov_errs
    np.testing.assert_allclose(sol.observables["mean"][-1], m, atol=2e-3)
    assert sol.observables["mean"].shape == (101, 2) and sol.observables["cov"].shape == (101, 2, 2)


@pytest.mark.parametrize("scheme,order", [("euler", 1), ("cn", 2), ("bdf2", 2)])
def test_ou_time_error_falls_at_the_scheme_order(backend, scheme, order):
    # the space error is the same on one mesh: against BDF2 with dt = 1/320 there, time error alone
    ref = ou_solve(backend, 12, 1 / 320, "bdf2", t_end=0.5).observables["cov"][-1]
    errs = [np.max(np.abs(ou_solve(backend, 12, dt, scheme, t_end=0.5).observables["cov"][-1] - ref))
            for dt in (0.05, 0.025)]
    rate = np.log2(errs[0] / errs[1])
    assert abs(rate - order) < 0.3, (scheme, errs, rate)


@pytest.mark.parametrize("stabilisation,scheme", [("none", "bdf2"), ("fct", "cn"), ("fct", "bdf2")])
def test_the_backends_agree_on_the_same_mesh(stabilisation, scheme):
    # the same triangulation (the box's diagonals run the same way in both), the same weak form and
    # the same scheme: dolfinx (GMRES, rtol 1e-12) and scikit-fem (SuperLU) agree to solver round-off,
    # the limiter included (measured ≈ 4e-12 on the covariance with FCT)
    from symfp.fem.registry import importable

    if not (importable("dolfinx") and importable("skfem")):
        pytest.skip("needs both backends")
    a, b = (ou_solve(be, 12, 0.05, scheme, t_end=0.5, stabilisation=stabilisation)
            for be in ("dolfinx", "skfem"))
    assert a.info["stabilisation"] == b.info["stabilisation"] == stabilisation
    np.testing.assert_allclose(a.observables["cov"], b.observables["cov"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(a.observables["mean"], b.observables["mean"], rtol=0, atol=1e-9)
    pts = np.array([[0.3, -0.2], [1.0, 0.5], [-1.2, 0.7]])
    np.testing.assert_allclose(a.eval(pts), b.eval(pts), rtol=1e-8)


def test_double_well_long_time_matches_gibbs(backend):
    # f = θ⁴/4 − θ²/2, D = ε = 0.1: law exp(−f/ε)/Z, Z = 15.1702, E θ² = 0.871363 (item 5)
    th = sp.Symbol("theta", real=True)
    f = th**4 / 4 - th**2 / 2
    sde = symfp.SDE(state=[th], drift=[-sp.diff(f, th)], diffusion=[[sp.Rational(1, 10)]])
    mesh = symfp.mesh.box([(-2.5, 2.5)], cells=1000, backend=backend)
    sol = sde.fokker_planck().solve(mesh, sp.exp(-th**2), t_end=10.0, dt=0.05, progress=False,
                                    expectations={"theta2": th**2}, negative_tol=1e-2, backend=backend)
    assert sol.info["stabilisation"] == "none"  # cell Péclet ≤ 0.33 on this mesh
    # P1 O(h²) ≈ 1e-5, BDF2 on a decayed transient, e^{-20} residual transient
    assert abs(sol.observables["E[theta2]"][-1] / 0.871363 - 1) < 1e-3
    exact = np.exp(-np.array([-0.25, 0.0]) / 0.1) / 15.1702
    np.testing.assert_allclose(sol.eval(np.array([[1.0], [0.0]])), exact, rtol=2e-3)
    assert sol.observables["relative_entropy"][-1] < 1e-5 < sol.observables["relative_entropy"][0]


@pytest.mark.parametrize("scheme", [None, "bdf2"])
def test_degenerate_rank_one_diffusion_fct_stays_positive_and_conservative(backend, scheme):
    # kinetic Langevin dq = v dt, dv = −(q + v) dt + noise in v only: D = diag(0, 0.2), "auto" → FCT
    q, v = sp.symbols("q v", real=True)
    sde = symfp.SDE(state=[q, v], drift=[v, -q - v], diffusion=sp.Matrix([[0, 0], [0, sp.Rational(1, 5)]]))
    mesh = symfp.mesh.box([(-3, 3), (-3, 3)], cells=24, backend=backend)
    sol = sde.fokker_planck().solve(mesh, (1.0, 0.0), t_end=1.0, dt=0.05, progress=False, scheme=scheme,
                                    backend=backend)
    assert (sol.info["stabilisation"], sol.info["scheme"]) == ("fct", scheme or "cn")
    obs = sol.observables
    assert np.all(obs["min"] >= -1e-8 * obs["max"]), obs["min"].min()
    assert np.max(np.abs(obs["mass"] - 1)) < 1e-12
    # the mean obeys m' = B m exactly for linear drift; FCT adds little diffusion
    from scipy.linalg import expm

    m_exact = expm(np.array([[0, 1], [-1, -1]]) * 1.0) @ np.array([1.0, 0.0])
    np.testing.assert_allclose(obs["mean"][-1], m_exact, atol=0.05)


def test_galerkin_on_degenerate_problem_reports_negative_density(backend):
    q, v = sp.symbols("q v", real=True)
    sde = symfp.SDE(state=[q, v], drift=[v, -q - v], diffusion=sp.Matrix([[0, 0], [0, sp.Rational(1, 5)]]))
    mesh = symfp.mesh.box([(-3, 3), (-3, 3)], cells=12, backend=backend)
    with pytest.raises(symfp.SolverError, match=r"negative density .* time step \d+ .*fct"):
        sde.fokker_planck().solve(mesh, (1.0, 0.0), t_end=1.0, dt=0.05, stabilisation="none", progress=False,
                                  backend=backend)


def test_absorbing_walls_give_the_first_mode_decay(backend):
    # p_t = D p_xx on (0, 1), p = 0 at both ends, p0 = sin(πx): mass(t) = e^{−π² D t}; P1 eigenvalue
    # error (πh)²/12 relative ≈ 2e-4 · π² D t at h = 1/64
    sde = symfp.SDE(state=[x], drift=[0], diffusion=[[sp.Rational(1, 10)]])
    mesh = symfp.mesh.box([(0, 1)], cells=64, backend=backend)
    sol = sde.fokker_planck().solve(mesh, sp.sin(sp.pi * x), t_end=1.0, dt=0.01, absorbing=["xmin", "xmax"],
                                    progress=False, backend=backend)
    np.testing.assert_allclose(sol.observables["mass"], np.exp(-np.pi**2 * 0.1 * sol.times), rtol=2e-3)
    with pytest.raises(symfp.MeshError, match="'left' is not in mesh .* it has: .*xmax"):
        sde.fokker_planck().solve(mesh, sp.sin(sp.pi * x), t_end=0.1, dt=0.01, absorbing="left",
                                  progress=False, backend=backend)


def test_gmsh_regions_write_and_load(backend, tmp_path):
    sde = symfp.SDE(state=[x, y], drift=[x - x**3, -y], diffusion=sp.Rational(1, 4))
    mesh = symfp.mesh.load(MESHES / "double_well.msh", backend=backend)
    assert set(mesh.region_names) == {"left", "right"} and mesh.boundary_names == ("wall",)
    sol = sde.fokker_planck().solve(mesh, (1.0, 0.0), t_end=0.2, dt=0.05, progress=False, keep="all",
                                    backend=backend)
    rm = sol.observables["region_mass"]
    np.testing.assert_allclose(rm.sum(axis=1), sol.observables["mass"], rtol=1e-12)  # basins tile it
    assert rm[0, list(sol.observables["region_names"]).index("right")] > 0.99
    out = sol.write(tmp_path / "run")
    back = type(sol).load(out)
    np.testing.assert_allclose(back.observables["cov"], sol.observables["cov"], rtol=1e-15)
    # the loaded solution evaluates like the fresh one (P1 values at the nodes: exact to round-off;
    # dolfinx writes an inline-XML copy so that no h5py or dolfinx is needed to read it)
    pts = np.array([[1.0, 0.0], [0.7, 0.3], [1.3, -0.2]])
    for t in (0.1, None):
        np.testing.assert_allclose(back.eval(pts, t=t), sol.eval(pts, t=t), rtol=1e-12, atol=1e-14)
    assert (tmp_path / "run" / "density.xdmf").exists() and (tmp_path / "run" / "observables.csv").exists()
    assert sol.eval([[1.0, 0.0]], t=0.1).shape == (1,)
    with pytest.raises(symfp.InputError, match="stored times"):
        sol.eval([[1.0, 0.0]], t=0.123)


# ----------------------------------------------------------------------------------- steady problems
B1 = -x + sp.Rational(1, 2) * sp.sin(2 * x)
D1 = sp.Rational(1, 2) + x**2 / 5
LO, HI = -1.0, 1.5
PTS1 = np.array([-1.0, -0.55, 0.0, 0.75, 1.2])


@pytest.fixture(scope="module")
def tau_ref_1d():
    """Item 8: τ(x) = ∫_x^c s(y) ∫_a^y m(z) dz dy, s = exp(−∫ b/D), m = 1/(D s) (scipy quad)."""
    from scipy.integrate import quad

    bf, Df = sp.lambdify(x, B1), sp.lambdify(x, D1)

    def s(t):
        return np.exp(-quad(lambda z: bf(z) / Df(z), LO, t, epsabs=1e-14, epsrel=1e-13)[0])

    def inner(t):
        return quad(lambda z: 1.0 / (Df(z) * s(z)), LO, t, epsabs=1e-14, epsrel=1e-12)[0]

    return np.array([quad(lambda t: s(t) * inner(t), p, HI, epsabs=1e-14, epsrel=1e-12)[0] for p in PTS1])


def test_exit_time_1d_p1_rate_two_and_p2(backend, tau_ref_1d):
    sde = symfp.SDE([x], B1, D1)
    errs = []
    for n in (100, 200):
        tau = symfp.mean_exit_time(sde, symfp.mesh.box([(LO, HI)], n, backend=backend), absorbing="xmax",
                                   backend=backend)
        errs.append(np.max(np.abs(tau.eval(PTS1.reshape(-1, 1)) - tau_ref_1d) / tau_ref_1d))
    assert errs[1] < 3e-5 and 1.8 < np.log2(errs[0] / errs[1]) < 2.3, errs  # P1 nodal O(h²)
    tau = symfp.mean_exit_time(sde, symfp.mesh.box([(LO, HI)], 60, backend=backend), absorbing="xmax",
                               degree=2, backend=backend)
    # P2: O(h³), measured ≈ 1e-8 relative
    assert np.max(np.abs(tau.eval(PTS1.reshape(-1, 1)) - tau_ref_1d) / tau_ref_1d) < 1e-4


@pytest.mark.parametrize("degree", [1, 2])
def test_exit_time_disk_matches_closed_form(backend, degree):
    eps = 0.25
    sde = symfp.SDE([x, y], [0, 0], eps)
    tau = symfp.mean_exit_time(sde, symfp.mesh.load(MESHES / "disk.msh", backend=backend), degree=degree,
                               backend=backend)
    r, th = np.linspace(0, 0.95, 12), np.linspace(0, 2 * np.pi, 12)
    pts = np.c_[r * np.cos(th), r * np.sin(th)]
    exact = (1 - (pts**2).sum(axis=1)) / (2 * 2 * eps)  # item 9
    # polygonal boundary (lc = 0.06): relative (h/2R)²; P1 adds h²|∇²τ|/8 (see test_exit_time.py)
    lc = 0.06
    tol = (lc / 2) ** 2 + (0 if degree == 2 else lc**2 / 8 * (1 / (2 * eps)))
    assert np.max(np.abs(tau.eval(pts) - exact)) / exact.max() < tol
    assert 0 < exact.max() - tau.max() < tol


def test_exit_time_annulus_absorbing_outer_reflecting_inner(backend):
    # ε Δτ = −1 on 1/2 < r < 1, τ(1) = 0, τ'(1/2) = 0: τ = (1 − r²)/(4ε) + (r₁²/(2ε)) ln r
    eps, r1 = 0.5, 0.5
    sde = symfp.SDE([x, y], [0, 0], eps)
    tau = symfp.mean_exit_time(sde, symfp.mesh.load(MESHES / "annulus.msh", backend=backend),
                               absorbing="outer", degree=2, backend=backend)
    r, th = np.linspace(0.52, 0.98, 10), np.linspace(0.3, 6.0, 10)
    exact = (1 - r**2) / (4 * eps) + r1**2 / (2 * eps) * np.log(r)
    assert np.max(np.abs(tau.eval(np.c_[r * np.cos(th), r * np.sin(th)]) - exact)) < 2e-3 * exact.max()


def test_stationary_density_double_well_against_gibbs(backend):
    from symfp.fem import stationary_density

    sde = symfp.SDE([x], [-(x**3 - x)], sp.Rational(1, 10))
    sol = stationary_density(sde, symfp.mesh.box([(-2.5, 2.5)], 100, backend=backend), degree=2,
                             backend=backend)
    assert abs(sol.mass - 1) < 1e-12
    # Z = 15.1702 to 6 digits; P2 with h = 0.05 gives E θ² to ≈ 4e-8
    assert abs(sol.expect(x**2) / 0.871363 - 1) < 1e-3
    pts = np.linspace(-2, 2, 41).reshape(-1, 1)
    gibbs = np.exp(-(pts[:, 0] ** 4 / 4 - pts[:, 0] ** 2 / 2) / 0.1) / 15.1702
    assert np.max(np.abs(sol.eval(pts) - gibbs)) < 1e-4 * gibbs.max()


def test_spectral_gap_of_ou_is_its_rate(backend):
    from symfp.fem import spectral_gap, spectrum

    # dX = −aX dt + √(2ε) dW: eigenvalues n·a; walls at 12.6 sd do not perturb the first five
    a, eps = 1.25, 0.5
    sde = symfp.SDE([x], -a * x, eps)
    spec = spectrum(sde, symfp.mesh.box([(-8, 8)], 200, backend=backend), k=5, backend=backend)
    assert spec.has_zero and abs(spec.eigenvalues[0]) < 1e-10
    np.testing.assert_allclose(spec.real[1:], a * np.arange(1, 5), rtol=1e-3)
    assert spectral_gap(sde, symfp.mesh.box([(-8, 8)], 200, backend=backend), backend=backend) == \
        pytest.approx(a, rel=1e-3)
    # absorbing walls, pure diffusion on (0, 1): λ_n = ε (nπ)², no zero eigenvalue
    spec = spectrum(symfp.SDE([x], 0, eps), symfp.mesh.box([(0, 1)], 400, backend=backend), k=3,
                    absorbing=None, backend=backend)
    assert not spec.has_zero
    np.testing.assert_allclose(spec.real, eps * (np.pi * np.arange(1, 4)) ** 2, rtol=1e-4)


def test_automatic_domain_and_bad_input(backend, tmp_path):
    # mesh=None: a box from p0 and the stationary law (OU: N(0, ε/a)), mass conserved, the mean decays
    # like e^{−at} (linear drift: exact for the discrete mean up to the domain truncation ~1e-9)
    sde = symfp.SDE([x], [-2 * x], sp.Rational(1, 5))
    sol = sde.fokker_planck().solve(None, sp.exp(-(x - 1) ** 2 / 0.02), t_end=0.5, dt=0.01, progress=False,
                                    backend=backend)
    assert "box" in sol.info["domain"]
    assert np.max(np.abs(sol.observables["mass"] - 1)) < 1e-10
    back = type(sol).load(sol.write(tmp_path / "out"))  # a 1-D solution on disk (XDMF is XYZ)
    pts = np.array([[0.2], [0.4], [0.9]])
    np.testing.assert_allclose(back.eval(pts), sol.eval(pts), rtol=1e-12)
    np.testing.assert_allclose(sol.observables["mean"][-1, 0], np.exp(-1.0), rtol=2e-3)
    mesh = symfp.mesh.box([(0, 1), (0, 1)], 4, backend=backend)
    with pytest.raises(symfp.MeshError, match="the mesh is 2-D but the SDE has 1 state variables"):
        sde.fokker_planck().solve(mesh, 1, t_end=0.1, dt=0.1, progress=False, backend=backend)
    with pytest.raises(symfp.InputError, match="scheme='rk4' is not one of euler, cn, bdf2"):
        sde.fokker_planck().solve(None, (1.0,), t_end=0.1, dt=0.1, scheme="rk4", backend=backend)
    with pytest.raises(symfp.InputError, match="dt = -0.1 must be a positive"):
        sde.fokker_planck().solve(None, (1.0,), t_end=0.1, dt=-0.1, backend=backend)


# ------------------------------------------------------------------ stabilisations on both backends
TH = sp.Symbol("theta", real=True)
F_DW = TH**4 / 4 - TH**2 / 2
DW = symfp.SDE(state=[TH], drift=[-sp.diff(F_DW, TH)], diffusion=[[sp.Rational(1, 10)]])


@pytest.mark.parametrize("stabilisation", ["gibbs", "supg"])
def test_gibbs_and_supg_on_a_coarse_double_well(backend, stabilisation):
    # 100 cells on [−2.5, 2.5]: cell Péclet up to 3.3 (at the walls, where p ~ e^{−98}); law exp(−f/ε)/Z,
    # E θ² = 0.871363 (item 5). Gibbs: its steady state is ρ itself, so only the quadrature of ρθ² on
    # h = 0.05 is left (measured 8.8e-5); SUPG is consistent (δ_K ≈ h²/(12ε) ≈ 2e-3 in the wells), an
    # O(h²) error (measured 4.2e-4), and damps but does not forbid undershoots (min −1.7e-3 of the max,
    # hence negative_tol=1e-2). e^{−20} transient at t = 10. Both conserve the mass exactly.
    mesh = symfp.mesh.box([(-2.5, 2.5)], cells=100, backend=backend)
    sol = DW.fokker_planck().solve(mesh, sp.exp(-TH**2), t_end=10.0, dt=0.1, progress=False,
                                   expectations={"theta2": TH**2}, stabilisation=stabilisation,
                                   negative_tol=1e-2, wall_tol=1e-2, backend=backend)
    assert sol.info["stabilisation"] == stabilisation
    assert abs(sol.observables["E[theta2]"][-1] / 0.871363 - 1) < 1e-3, sol.observables["E[theta2]"][-1]
    assert np.max(np.abs(sol.observables["mass"] - 1)) < 1e-10
    exact = np.exp(-np.array([-0.25, 0.0]) / 0.1) / 15.1702
    np.testing.assert_allclose(sol.eval(np.array([[1.0], [0.0]])), exact, rtol=5e-3)
    assert sol.observables["relative_entropy"][-1] < 1e-4


def test_gibbs_without_detailed_balance_or_beyond_double_precision_is_refused(backend):
    # rotational drift: no zero-flux stationary density, so no Gibbs form
    sde = symfp.SDE([x, y], [-x + y, -x - y], sp.Rational(1, 10))
    mesh = symfp.mesh.box([(-2, 2), (-2, 2)], cells=8, backend=backend)
    with pytest.raises(symfp.InputError, match="gibbs"):
        sde.fokker_planck().solve(mesh, P0, t_end=0.1, dt=0.05, stabilisation="gibbs", progress=False,
                                  backend=backend)
    cold = symfp.SDE(state=[TH], drift=[-sp.diff(F_DW, TH)], diffusion=[[sp.Rational(3, 1000)]])
    with pytest.raises(symfp.InputError, match="decades"):
        cold.fokker_planck().solve(symfp.mesh.box([(-2.5, 2.5)], cells=100, backend=backend),
                                   sp.exp(-TH**2), t_end=0.1, dt=0.05, stabilisation="gibbs", progress=False,
                                   backend=backend)


@pytest.mark.parametrize("stabilisation", ["gibbs", "supg"])
def test_the_backends_agree_on_gibbs_and_supg(stabilisation):
    # the same forms and weights. SUPG: the same quadrature-exact integrands up to the weight δ_K, measured
    # agreement 4e-8 (E θ²) and 1e-7 (density). Gibbs: the ρ-weighted integrals are not polynomial;
    # dolfinx integrates at UFL's estimated degree 8, scikit-fem at GIBBS_INTORDER = 8 with another rule:
    # measured 4e-5 (E θ², early transient) and 9e-6 (density)
    from symfp.fem.registry import importable

    if not (importable("dolfinx") and importable("skfem")):
        pytest.skip("needs both backends")
    a, b = (DW.fokker_planck().solve(symfp.mesh.box([(-2.5, 2.5)], cells=100, backend=be), sp.exp(-TH**2),
                                     t_end=1.0, dt=0.05, progress=False, stabilisation=stabilisation,
                                     expectations={"theta2": TH**2}, negative_tol=1e-2, wall_tol=1e-2,
                                     backend=be)
            for be in ("dolfinx", "skfem"))
    assert a.info["scheme"] == b.info["scheme"]
    tol = {"supg": (1e-6, 1e-6), "gibbs": (2e-4, 1e-4)}[stabilisation]
    np.testing.assert_allclose(a.observables["E[theta2]"], b.observables["E[theta2]"], rtol=tol[0])
    pts = np.array([[-1.0], [0.3], [1.1]])
    np.testing.assert_allclose(a.eval(pts), b.eval(pts), rtol=tol[1])


def _tau_drift(xs, v=1.0, eps=0.01):
    """Exit time of dX = v dt + √(2ε) dW from (0, 1), both ends absorbing (closed form)."""
    return ((1 - np.exp(-v * xs / eps)) / (1 - np.exp(-v / eps)) - xs) / v


def test_exit_time_p2_supg_at_cell_peclet_above_one(backend):
    # v = 1, ε = 0.01, 20 P2 cells: Pe = |a| h / (2 ε · degree) = 1.25 > 1 (an O(ε) layer at x = 0).
    # SUPG with the exact P2 Hessians in its residual: nodally accurate away from the unresolved layer
    # (τ ≈ 1 − x there); plain Galerkin oscillates on this mesh.
    sde = symfp.SDE([x], 1, sp.Rational(1, 100))
    mesh = symfp.mesh.box([(0, 1)], cells=20, backend=backend)
    pts = np.linspace(0.2, 0.95, 16)
    tau = symfp.mean_exit_time(sde, mesh, absorbing=None, degree=2, backend=backend)
    err = np.max(np.abs(tau.eval(pts.reshape(-1, 1)) - _tau_drift(pts)))
    gal = symfp.mean_exit_time(sde, mesh, absorbing=None, degree=2, stabilization=None, backend=backend)
    err_gal = np.max(np.abs(gal.eval(pts.reshape(-1, 1)) - _tau_drift(pts)))
    # measured 2.2e-8 (SUPG) against 1.2e-4 (Galerkin) on both backends
    assert err < 1e-6 and err < err_gal / 100, (err, err_gal)


def test_exit_time_p2_supg_backends_agree():
    # constant coefficients: every SUPG integrand is a polynomial both quadratures integrate exactly,
    # so the two P2 solutions agree to round-off (the Hessian term included)
    from symfp.fem.registry import importable

    if not (importable("dolfinx") and importable("skfem")):
        pytest.skip("needs both backends")
    sde = symfp.SDE([x], 1, sp.Rational(1, 100))
    pts = np.linspace(0.01, 0.99, 23).reshape(-1, 1)
    a, b = (symfp.mean_exit_time(sde, symfp.mesh.box([(0, 1)], cells=20, backend=be), absorbing=None,
                                 degree=2,
                                 backend=be).eval(pts) for be in ("dolfinx", "skfem"))
    np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)


def test_skfem_reuses_factorisations_under_a_piecewise_constant_schedule():
    # OU dx = −x dt + √(2D(t)) dW with D = 0.1 on [0, 0.5), 0.05 after (a two-phase noise schedule):
    # the step matrix takes two values, so two factorisations, not one per step; the moments still
    # follow the scheme's moment recursion
    pytest.importorskip("skfem")
    t = sp.Symbol("t", real=True)
    D = sp.Piecewise((sp.Rational(1, 10), t < sp.Rational(1, 2)), (sp.Rational(1, 20), True))
    sde = symfp.SDE([x], -x, D, time=t)
    p0 = sp.exp(-(x - 0.5) ** 2 / (2 * 0.05))
    sol = sde.fokker_planck().solve(symfp.mesh.box([(-3, 3)], cells=600, backend="skfem"), p0, t_end=1.0,
                                    dt=0.01, scheme="euler", stabilisation="none", progress=False,
                                    backend="skfem")
    info = sol.info
    assert info["time_dependent"] and info["factorisation_requests"] == 101
    assert info["factorisations"] == 2 and info["factorisation_cache_hits"] == 99
    # and K is assembled once per distinct coefficient state (t = 0, then the two phases), not per step
    assert info["operator_assemblies"] == 3
    # backward Euler on the moment ODEs m' = −m, s' = −2s + 2D(t) (s = E x², K at t_{n+1}) gives the exact
    # moments of the time-discrete scheme; the P1 error on top is (h/σ)²/12 ≈ 1.5e-4 (h = 0.01, σ ≥ 0.24)
    m, s = 0.5, 0.05 + 0.25
    for n in range(1, 101):
        m, s = m / 1.01, (s + 0.02 * (0.1 if n < 50 else 0.05)) / 1.02
    assert sol.observables["mean"][-1, 0] == pytest.approx(m, rel=1e-9)  # linear drift: exact in space
    assert sol.observables["cov"][-1, 0, 0] == pytest.approx(s - m * m, rel=2e-4)  # measured 3.7e-5


def test_factorisation_cache_is_exact_and_lru_bounded():
    pytest.importorskip("skfem")
    import scipy.sparse as sps

    from symfp.fem.schemes import splu_solver
    from symfp.fem.skfem.factorisations import FactorisationCache

    cache = FactorisationCache(splu_solver, maxsize=2)
    mats = [sps.diags([k + 2.0, -1.0, -1.0], [0, -1, 1], shape=(5, 5)).tocsr() for k in range(3)]
    b = np.arange(5.0)
    for A in (mats[0], mats[0].copy(), mats[1], mats[0], mats[2], mats[1]):
        np.testing.assert_allclose(A @ cache(A)(b)[0], b, rtol=1e-12)  # the right matrix's solve
    # A0, A0 (hit: same values), A1, A0 (hit), A2 (evicts A1, least recent), A1 (re-factorised)
    assert (cache.factorisations, cache.hits, len(cache)) == (4, 2, 2)
    nearly = mats[0].copy()
    nearly.data[0] += 1e-15  # a different matrix, not an approximate hit
    cache(nearly)
    assert cache.factorisations == 5
    with pytest.raises(symfp.InputError, match="maxsize"):
        FactorisationCache(splu_solver, maxsize=0)


def test_peclet_of_cells_takes_data_mean_coefficients():
    # a non-polynomial data mean (logistic-type gradients) is evaluated as one (rows, cols, n) array, not
    # nested lists: the cell Péclet number (used by both backends' "auto") must read both forms
    from symfp.fem.coefficients import numpy_function
    from symfp.fem.stabilisation import peclet_of_cells

    w, xi = sp.symbols("w xi", real=True)
    samples = np.array([0.5, 1.0, 2.0])
    c = sp.Matrix([symfp.Dataset({xi: samples}).expect(sp.tanh(w * xi))])
    D = sp.Matrix([[sp.Rational(1, 10)]])
    verts = np.array([[[0.0], [0.1]], [[0.1], [0.3]]])
    pe, degenerate = peclet_of_cells(verts, numpy_function(c, (w,)), numpy_function(D, (w,)), 1)
    exact = max(abs(np.tanh(m * samples).mean()) * h / (2 * 0.1) for m, h in ((0.05, 0.1), (0.2, 0.2)))
    assert pe == pytest.approx(exact, rel=1e-12) and not degenerate
