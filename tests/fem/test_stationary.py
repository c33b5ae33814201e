"""Stationary Fokker–Planck density with unit mass against Gibbs closed forms (REFERENCE_CASES item 5)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.errors import InputError, MeshError, SolverError
from symfp.fem.dolfinx.stationary import stationary_density

pytestmark = pytest.mark.fem
x, y = sp.symbols("x y", real=True)
EPS = 0.1
F = x**4 / 4 - x**2 / 2
Z = 15.1702  # item 5: ∫ exp(−f/ε), ε = 0.1
EX2 = 0.871363  # item 5: E θ²


def gibbs(z: np.ndarray) -> np.ndarray:
    return np.exp(-(z**4 / 4 - z**2 / 2) / EPS) / Z


def _same_on_all_ranks(values: np.ndarray) -> None:
    from mpi4py import MPI

    allv = MPI.COMM_WORLD.allgather(np.asarray(values))
    for v in allv[1:]:
        np.testing.assert_array_equal(v, allv[0])


@pytest.mark.mpi
def test_double_well_1d_against_gibbs():
    sde = symfp.SDE([x], [-sp.diff(F, x)], EPS)
    # [−2.5, 2.5]: exp(−f(2.5)/ε) ≈ 1e-29, the truncation is far below round-off
    sol = stationary_density(sde, symfp.mesh.box([(-2.5, 2.5)], 100), degree=2)
    assert abs(sol.mass - 1) < 1e-12
    # Z = 15.1702 is given to 6 digits (5e-6 relative); P2 with h = 0.05 gives E θ² to 4e-8
    assert abs(sol.expect(x**2) / EX2 - 1) < 1e-3
    assert abs(sol.cov[0, 0] + sol.mean[0] ** 2 - sol.expect(x**2)) < 1e-12
    assert abs(sol.mean[0]) < 1e-6  # symmetric well (mesh symmetric too)
    pts = np.linspace(-2, 2, 41).reshape(-1, 1)
    got = sol.eval(pts)
    _same_on_all_ranks(got)
    # density error: measured 1e-5 of the max (Z's 6 digits contribute 5e-6)
    assert np.max(np.abs(got - gibbs(pts[:, 0]))) < 1e-4 * gibbs(np.array([1.0]))[0]
    assert sol.observables["min_relative"] > -1e-12


def test_double_well_1d_p1_density_converges_at_rate_two():
    sde = symfp.SDE([x], [-sp.diff(F, x)], EPS)
    pts = np.linspace(-2, 2, 41).reshape(-1, 1)  # nodes of both meshes
    errs = []
    for n in (200, 400):
        sol = stationary_density(sde, symfp.mesh.box([(-2.5, 2.5)], n))
        errs.append(np.max(np.abs(sol.eval(pts) - gibbs(pts[:, 0]))))
    rate = np.log2(errs[0] / errs[1])
    # P1: O(h²) (measured 4.9e-4 → 1.2e-4 relative to the max); Z's 6 digits floor is 5e-6
    assert 1.8 < rate < 2.2, (errs, rate)


@pytest.mark.mpi
def test_double_well_2d_with_quadratic_y():
    # f + y²/2: ρ = exp(−f/ε) exp(−y²/(2ε)) / (Z √(2πε)); y is N(0, ε) independent of θ
    sde = symfp.SDE([x, y], [-sp.diff(F, x), -y], EPS)
    sol = stationary_density(sde, symfp.mesh.box([(-2.5, 2.5), (-1.5, 1.5)], (50, 30)), degree=2)
    assert abs(sol.mass - 1) < 1e-12
    # P2 on h = 0.1: E θ² to 2e-6 measured; |y| > 1.5 = 4.7 sd is lost mass ≈ 3e-6
    assert abs(sol.expect(x**2) / EX2 - 1) < 1e-3
    assert abs(sol.cov[1, 1] / EPS - 1) < 1e-3
    assert abs(sol.cov[0, 1]) < 1e-5
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.2], [0.5, -0.3], [1.3, 0.1]])
    exact = gibbs(pts[:, 0]) * np.exp(-pts[:, 1] ** 2 / (2 * EPS)) / np.sqrt(2 * np.pi * EPS)
    got = sol.eval(pts)
    _same_on_all_ranks(got)
    assert np.max(np.abs(got - exact)) < 1e-3 * exact.max()


def test_state_dependent_diffusion_zero_flux_density(tmp_path):
    # item 5, 1-D zero flux: ρ ∝ D⁻¹ exp(∫ b/D); b = −x, D = 1/2 + x²/4 gives ρ ∝ D⁻³. Zero flux holds
    # pointwise, so on [−4, 4] with reflecting walls the answer is ρ restricted and renormalised.
    from scipy.integrate import quad

    sde = symfp.SDE([x], -x, sp.Rational(1, 2) + x**2 / 4)
    sol = stationary_density(sde, symfp.mesh.box([(-4, 4)], 80), degree=2)

    def rho(z):
        return (0.5 + z * z / 4) ** -3

    z_norm = quad(rho, -4, 4, epsabs=1e-13)[0]
    pts = np.linspace(-4, 4, 17).reshape(-1, 1)
    # P2, h = 0.1: measured 6e-7 of the max
    assert np.max(np.abs(sol.eval(pts) - rho(pts[:, 0]) / z_norm)) < 1e-5 * rho(0) / z_norm
    var = quad(lambda z: z * z * rho(z), -4, 4, epsabs=1e-13)[0] / z_norm
    assert abs(sol.cov[0, 0] / var - 1) < 1e-5
    sol.write(tmp_path)
    data = json.loads((tmp_path / "stationary.json").read_text())
    assert data["mass"] == pytest.approx(1.0, abs=1e-12) and (tmp_path / "stationary.xdmf").exists()


def test_stationary_bad_input_and_negative_density():
    mesh = symfp.mesh.box([(-1, 1)], 8)
    with pytest.raises(MeshError, match=r"mesh is 1-D but the SDE has 2 state variables"):
        stationary_density(symfp.SDE([x, y], [-x, -y], 1), mesh)
    with pytest.raises(InputError, match=r"negative_tol must be ≥ 0"):
        stationary_density(symfp.SDE([x], -x, 1), mesh, negative_tol=-1)
    # cell Péclet 40·1·0.25/(2·0.002) = 2500: plain Galerkin oscillates; reported, not returned
    with pytest.raises(SolverError, match=r"density is negative down to .* refine it"):
        stationary_density(symfp.SDE([x], -40 * x, 0.002), mesh)
