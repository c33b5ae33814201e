"""Forward solver error paths that need a real solve: a KSP that stops early, and mass drift."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symfp

pytestmark = pytest.mark.fem
x, y = sp.symbols("x y", real=True)
ONE_GMRES_STEP = {"ksp_type": "gmres", "pc_type": "none", "ksp_max_it": 1, "ksp_rtol": 1e-14}


def _fp():
    # b = -x, D = 1/2: stationary density ∝ exp(-(x² + y²))
    return symfp.SDE(state=[x, y], drift=[-x, -y], diffusion=sp.Rational(1, 2)).fokker_planck()


def _mesh():
    return symfp.mesh.box([(-3, 3), (-3, 3)], cells=12)


OFF_CENTRE = sp.exp(-((x - 1) ** 2 + y**2))


@pytest.mark.parametrize("stabilisation", ["none", "gibbs"])
def test_ksp_that_stops_early_raises_with_petsc_reason_and_advice(stabilisation):
    # one unpreconditioned GMRES iteration cannot reduce the residual by 1e-14 on a 169-dof
    # convection–diffusion system: PETSc stops with DIVERGED_ITS (-3) at the first step
    with pytest.raises(symfp.SolverError, match=r"time step 1 \(t = 0\.1\).*DIVERGED_(MAX_)?IT.*"
                                                 r"after 1 iterations.*ksp_max_it.*now 1.*'lu'"):
        _fp().solve(_mesh(), OFF_CENTRE, 0.3, 0.1, progress=False, stabilisation=stabilisation,
                    petsc_options=ONE_GMRES_STEP)


def test_start_at_the_stationary_density_converges_in_zero_iterations():
    # why the check once looked dead: from p0 = stationary the previous step already solves the
    # system (K p0 = 0 up to round-off), PETSc's test ‖r₀‖ ≤ rtol‖b‖ holds before any iteration and
    # the reason is CONVERGED_RTOL: nothing diverged, and the density stays put
    sol = _fp().solve(_mesh(), sp.exp(-(x**2 + y**2)), 0.3, 0.1, progress=False, stabilisation="gibbs",
                      petsc_options=ONE_GMRES_STEP)
    assert sol.info["ksp_iterations"] == 0
    # (the discrete law stays the t = 0 one; its covariance is 0.5 I up to quadrature on h = 0.5)
    np.testing.assert_allclose(sol.observables["cov"][-1], sol.observables["cov"][0], atol=1e-12)


@pytest.mark.parametrize("stabilisation", ["none", "gibbs", "upwind"])
def test_loose_solver_loses_mass_and_raises_with_the_step(stabilisation):
    # the discrete mass 1ᵀMp changes by exactly the summed KSP residual: with rtol 1e-3 the first
    # step changes it by ~5e-4 (measured 2.5e-4 … 5.6e-4 for the three forms), ≫ mass_tol = 1e-9
    with pytest.raises(symfp.SolverError, match=r"mass drifted .* > mass_tol 1e-09\) at time step 1 "
                                                 r"\(t = 0\.1\).*ksp_rtol"):
        _fp().solve(_mesh(), OFF_CENTRE, 0.3, 0.1, progress=False, stabilisation=stabilisation,
                    petsc_options={"ksp_rtol": 1e-3})


def test_mass_check_fires_on_round_off_with_a_tiny_tolerance():
    # with the default rtol 1e-12 the relative mass drift per step is round-off, 1e-15 … 1e-13 here
    # (it is what the default mass_tol = 1e-9 allows); mass_tol = 1e-17 is below one ulp of 1, so any
    # non-zero drift must raise, naming step 1 and advising to raise mass_tol
    sol = _fp().solve(_mesh(), OFF_CENTRE, 0.3, 0.1, progress=False, stabilisation="gibbs")
    drift = np.abs(sol.observables["mass"] - sol.observables["mass"][0])
    assert 0 < drift[1] < 1e-12
    with pytest.raises(symfp.SolverError, match=r"at time step 1 .*raise mass_tol"):
        _fp().solve(_mesh(), OFF_CENTRE, 0.3, 0.1, progress=False, stabilisation="gibbs", mass_tol=1e-17)


def test_absorbing_runs_skip_the_mass_check():
    # mass leaves through absorbing walls on purpose: no mass error even with mass_tol = 0
    sol = _fp().solve(_mesh(), OFF_CENTRE, 0.3, 0.1, progress=False, absorbing="xmax", mass_tol=0.0)
    assert sol.observables["mass"][-1] < 1.0
