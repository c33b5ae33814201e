"""Mean exit time −𝓛τ = 1 against closed forms (REFERENCE_CASES items 8 and 9) and quadrature."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.errors import InputError, MeshError

pytestmark = pytest.mark.fem
MESHES = pathlib.Path(__file__).resolve().parents[2] / "meshes"
x, y = sp.symbols("x y", real=True)

# 1-D: non-trivial drift, state-dependent D; reflecting at a, absorbing at c
A, C = -1.0, 1.5
B1 = -x + sp.Rational(1, 2) * sp.sin(2 * x)
D1 = sp.Rational(1, 2) + x**2 / 5
PTS1 = np.array([-1.0, -0.55, 0.0, 0.75, 1.2])  # nodes of the n = 100 and 200 meshes


def quadrature_tau(points: np.ndarray) -> np.ndarray:
    """Item 8: τ(x) = ∫_x^c s(y) ∫_a^y m(z) dz dy, s = exp(−∫_a b/D), m = 1/(D s), by scipy quad."""
    from scipy.integrate import quad

    bf, Df = sp.lambdify(x, B1), sp.lambdify(x, D1)

    def s(t):
        return np.exp(-quad(lambda z: bf(z) / Df(z), A, t, epsabs=1e-14, epsrel=1e-13)[0])

    def inner(t):
        return quad(lambda z: 1.0 / (Df(z) * s(z)), A, t, epsabs=1e-14, epsrel=1e-12)[0]

    return np.array([quad(lambda t: s(t) * inner(t), p, C, epsabs=1e-14, epsrel=1e-12)[0] for p in points])


@pytest.fixture(scope="module")
def tau_ref_1d():
    return quadrature_tau(PTS1)


def _same_on_all_ranks(values: np.ndarray) -> None:
    from mpi4py import MPI

    allv = MPI.COMM_WORLD.allgather(np.asarray(values))
    for v in allv[1:]:
        np.testing.assert_array_equal(v, allv[0])


@pytest.mark.mpi
def test_exit_time_1d_matches_quadrature_p2(tau_ref_1d):
    sde = symfp.SDE([x], B1, D1)
    tau = symfp.mean_exit_time(sde, symfp.mesh.box([(A, C)], 60), absorbing="xmax", degree=2)
    got = tau.eval(PTS1.reshape(-1, 1))
    _same_on_all_ranks(got)
    # P2: error O(h^3) globally with h = 2.5/60; measured ≈ 1e-8 relative, the issue asks < 1e-4
    assert np.max(np.abs(got - tau_ref_1d) / tau_ref_1d) < 1e-4
    # τ is decreasing towards the absorbing end and maximal at the reflecting end
    assert abs(tau.max() - quadrature_tau(np.array([A]))[0]) < 1e-4 * tau.max()


def test_exit_time_1d_p1_converges_at_rate_two(tau_ref_1d):
    sde = symfp.SDE([x], B1, D1)
    errs = []
    for n in (100, 200):
        tau = symfp.mean_exit_time(sde, symfp.mesh.box([(A, C)], n), absorbing=["xmax"], degree=1)
        errs.append(np.max(np.abs(tau.eval(PTS1.reshape(-1, 1)) - tau_ref_1d) / tau_ref_1d))
    rate = np.log2(errs[0] / errs[1])
    # P1 nodal error is O(h²) (measured 6.8e-5 → 1.7e-5 with SUPG)
    assert errs[1] < 3e-5
    assert 1.8 < rate < 2.3, (errs, rate)


def test_exit_time_drift_dominated_supg_has_no_overshoot():
    # −bτ' − Dτ'' = 1 on (0, 1), τ(0) = τ(1) = 0: τ = (1−x)/b − (e^{−bx/D} − e^{−b/D})/(b(1 − e^{−b/D}))
    b, D, n = 1.0, 0.005, 20  # cell Péclet b h/(2D) = 5
    sde = symfp.SDE([x], b, D)
    nodes = np.linspace(0, 1, n + 1).reshape(-1, 1)
    z = nodes[:, 0]
    exact = (1 - z) / b - (np.exp(-b * z / D) - np.exp(-b / D)) / (b * (1 - np.exp(-b / D)))
    mesh = symfp.mesh.box([(0, 1)], n)
    supg = symfp.mean_exit_time(sde, mesh).eval(nodes)
    plain = symfp.mean_exit_time(sde, mesh, stabilization=None).eval(nodes)
    # plain Galerkin oscillates (overshoot ≈ 70 % of max τ); SUPG stays below max τ = 1/b and within
    # 5 % nodally (its weight is the asymptotic, not the optimal coth one: measured 2.9 %)
    assert np.max(plain) > 1.3 * np.max(exact)
    assert np.min(supg) >= -1e-12 and np.max(supg) <= 1 / b
    assert np.max(np.abs(supg - exact)) < 0.05 * np.max(exact)


@pytest.mark.mpi
@pytest.mark.parametrize("degree", [1, 2])
def test_exit_time_disk_matches_closed_form(degree):
    eps = 0.25
    sde = symfp.SDE([x, y], [0, 0], eps)
    mesh = symfp.mesh.load(MESHES / "disk.msh")
    tau = symfp.mean_exit_time(sde, mesh, degree=degree)
    r = np.linspace(0, 0.95, 12)
    th = np.linspace(0, 2 * np.pi, 12)
    pts = np.c_[r * np.cos(th), r * np.sin(th)]
    exact = (1 - (pts**2).sum(axis=1)) / (2 * 2 * eps)  # item 9, R = 1, d = 2
    got = tau.eval(pts)
    _same_on_all_ranks(got)
    # the inscribed polygon (edges h ≤ lc = 0.06) lies within R(1 − h²/8R²) of the centre, and the
    # maximum principle bounds the domain error by τ there: relative (h/2R)² = 9e-4. P2 represents the
    # quadratic exactly; P1 adds its interpolation error h²|∇²τ|/8 = 9e-4 of τ(0) = 1.
    lc = 0.06
    tol = (lc / 2) ** 2 + (0 if degree == 2 else lc**2 / 8 * (1 / (2 * eps)))
    assert np.max(np.abs(got - exact)) / exact.max() < tol
    assert 0 < exact.max() - tau.max() < tol


@pytest.mark.mpi
def test_exit_time_annulus_absorbing_outer_reflecting_inner():
    # ε Δτ = −1 on 1/2 < r < 1, τ(1) = 0, τ'(1/2) = 0: τ = (1 − r²)/(4ε) + (r₁²/(2ε)) ln r
    eps, r1 = 0.5, 0.5
    sde = symfp.SDE([x, y], [0, 0], eps)
    tau = symfp.mean_exit_time(sde, symfp.mesh.load(MESHES / "annulus.msh"), absorbing="outer", degree=2)
    r = np.linspace(0.52, 0.98, 10)
    th = np.linspace(0.3, 6.0, 10)
    exact = (1 - r**2) / (4 * eps) + r1**2 / (2 * eps) * np.log(r)
    got = tau.eval(np.c_[r * np.cos(th), r * np.sin(th)])
    # polygonal boundaries (lc = 0.05): relative (lc/2)² ≈ 6e-4 on each circle; measured below 1e-3
    assert np.max(np.abs(got - exact)) < 2e-3 * exact.max()


def test_exit_time_mean_over_and_write(tmp_path):
    eps = 0.25
    sde = symfp.SDE([x, y], [0, 0], eps)
    tau = symfp.mean_exit_time(sde, symfp.mesh.load(MESHES / "disk.msh"), degree=2)
    # uniform average of (1 − r²)/(4ε) over the unit disk is 1/(8ε) = 0.5 (geometry error ~1e-3)
    assert abs(tau.mean_over() - 0.5) < 2e-3
    # average against ρ = 1 − r²: ∫(1−r²)²/(4ε) / ∫(1−r²) = (π/3)/(4ε) / (π/2) = 2/3
    assert abs(tau.mean_over(1 - x**2 - y**2) - 2 / 3) < 3e-3
    path = tau.write(tmp_path / "out")
    assert pathlib.Path(path).exists() and (tmp_path / "out" / "exit_time.h5").exists()
    summary = json.loads((tmp_path / "out" / "exit_time.json").read_text())
    assert summary["max"] == pytest.approx(tau.max(), rel=1e-12)


def test_exit_time_bad_input_messages():
    sde = symfp.SDE([x], -x, 1)
    mesh = symfp.mesh.box([(-1, 1)], 8)
    with pytest.raises(MeshError, match=r"absorbing part 'top' is unknown.*it has: xmax, xmin"):
        symfp.mean_exit_time(sde, mesh, absorbing="top")
    with pytest.raises(MeshError, match=r"mesh is 2-D but the SDE has 1 state variables"):
        symfp.mean_exit_time(sde, symfp.mesh.box([(0, 1), (0, 1)], 2))
    a = sp.Symbol("a")
    with pytest.raises(InputError, match=r"free symbols a; give them numbers first"):
        symfp.mean_exit_time(symfp.SDE([x], -a * x, 1), mesh)
    with pytest.raises(InputError, match=r"stabilization='upwind' is unknown"):
        symfp.mean_exit_time(sde, mesh, stabilization="upwind")
