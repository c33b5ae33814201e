"""Time-dependent coefficients (``SDE(time=t)``: learning-rate and noise schedules) in the forward solver.

1-D OU with rate a(t) = 1 + sin(t)/2 and diffusion D(t) = ε(1 + t/2), ε = 0.1: the law stays Gaussian
with m' = −a m, v' = −2a v + 2D (solved by solve_ivp to 1e-12); compared at t = 2. The mesh (1200
cells on [−3, 3], h = 0.005) makes the spatial error ≈ 1e-7, far below the time errors measured
(≥ 2e-5), so the error ratio between dt = 0.1 and 0.05 is the scheme's order in dt.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from scipy.integrate import solve_ivp

import symfp
from symfp.errors import InputError

pytestmark = pytest.mark.fem
x, y, t = sp.symbols("x y t", real=True)
EPS = sp.Rational(1, 10)
M0, V0 = 0.5, 0.05
P0 = sp.exp(-(x - M0) ** 2 / (2 * V0))
LU = {"ksp_type": "preonly", "pc_type": "lu"}


def _sde(time_dependent=True):
    if not time_dependent:
        return symfp.SDE([x], -x, EPS, time=t)  # time symbol set but unused: autonomous
    return symfp.SDE([x], -(1 + sp.sin(t) / 2) * x, EPS * (1 + t / 2), time=t)


def _exact(T=2.0):
    def rhs(s, z):
        a = 1 + np.sin(s) / 2
        return [-a * z[0], -2 * a * z[1] + 2 * 0.1 * (1 + s / 2)]

    return solve_ivp(rhs, (0, T), [M0, V0], rtol=1e-12, atol=1e-14).y[:, -1]


def _error(sol):
    m, v = _exact()
    o = sol.observables
    return max(abs(o["mean"][-1, 0] - m), abs(o["cov"][-1, 0, 0] - v))


def _solve(dt, scheme, stabilisation="none", sde=None):
    return (sde or _sde()).fokker_planck().solve(
        symfp.mesh.box([(-3, 3)], cells=1200), P0, t_end=2.0, dt=dt, scheme=scheme,
        stabilisation=stabilisation, progress=False, petsc_options=LU)


@pytest.mark.parametrize(("scheme", "stabilisation", "order"), [
    ("euler", "none", 1), ("cn", "none", 2), ("bdf2", "none", 2), ("cn", "fct", 2), ("euler", "fct", 1),
    ("bdf2", "fct", 2)])
def test_time_dependent_ou_against_exact_gaussian_at_the_scheme_order(scheme, stabilisation, order):
    sols = [_solve(dt, scheme, stabilisation) for dt in (0.1, 0.05)]
    errs = [_error(s) for s in sols]
    rate = np.log2(errs[0] / errs[1])
    # measured rates 0.997 (euler), 2.001 (cn), 1.948 (bdf2: its BE start), 2.047 (fct cn); errors at
    # dt = 0.05: 2.7e-3, 1.9e-5, 4.4e-5, 1.8e-5 (a frozen K(t_n) would make every scheme first order)
    assert abs(rate - order) < 0.1, (errs, rate)
    assert errs[1] < (3e-3 if order == 1 else 5e-5), errs
    for sol in sols:
        assert sol.info["time_dependent"] is True
        assert sol.info["stabilisation"] == stabilisation
        assert sol.info["operator_assemblies"] == sol.info["steps"] + 1  # t_0 and every t_{n+1}
        assert np.max(np.abs(sol.observables["mass"] - 1)) < 1e-12  # LU: round-off per step


def test_autonomous_sde_assembles_once_and_an_unused_time_symbol_changes_nothing():
    plain = symfp.SDE([x], -x, EPS)
    a = _solve(0.1, "cn", sde=plain)
    b = _solve(0.1, "cn", sde=_sde(time_dependent=False))
    for sol in (a, b):
        assert sol.info["time_dependent"] is False
        assert sol.info["operator_assemblies"] == 1
    np.testing.assert_array_equal(a.observables["mean"], b.observables["mean"])
    np.testing.assert_array_equal(a.observables["cov"], b.observables["cov"])


def test_time_dependent_supg_and_upwind_run_and_conserve_mass():
    for stab, scheme in (("supg", "cn"), ("upwind", "euler")):
        sol = _solve(0.1, scheme, stab)
        assert sol.info["operator_assemblies"] == 21
        assert np.max(np.abs(sol.observables["mass"] - 1)) < 1e-12
        # SUPG: Galerkin-accurate here (Pe < 1 switches it off); upwind: first order in dt and h
        assert _error(sol) < (1e-4 if stab == "supg" else 1e-2)


def test_gibbs_needs_an_autonomous_sde():
    with pytest.raises(InputError, match="gibbs"):
        _solve(0.1, "euler", "gibbs")


def test_steady_solvers_refuse_a_time_dependent_sde():
    from symfp.fem.dolfinx.exit_time import mean_exit_time
    from symfp.fem.dolfinx.spectral import spectrum
    from symfp.fem.dolfinx.stationary import stationary_density

    mesh = symfp.mesh.box([(-3, 3)], cells=20)
    for solver in (mean_exit_time, stationary_density, spectrum):
        with pytest.raises(InputError, match=r"depend explicitly on time t .*fp\.solve"):
            solver(_sde(), mesh)


def test_zalesak_fct_with_a_bdf2_target_still_needs_autonomous_coefficients():
    # its lumped BDF2 predictor is assembled once; the default limiter (target + redistribution) is not
    with pytest.raises(InputError, match=r"method='zalesak' with scheme='bdf2' needs time-independent"):
        _sde().fokker_planck().solve(symfp.mesh.box([(-3, 3)], cells=60), P0, t_end=0.2, dt=0.1,
                                     scheme="bdf2", stabilisation="fct", progress=False,
                                     fct_options={"method": "zalesak"})
    with pytest.raises(InputError, match=r"method='upwind2' is not one of"):
        _sde().fokker_planck().solve(symfp.mesh.box([(-3, 3)], cells=60), P0, t_end=0.2, dt=0.1,
                                     stabilisation="fct", progress=False, fct_options={"method": "upwind2"})
