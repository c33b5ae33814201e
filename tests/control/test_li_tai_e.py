r"""Li–Tai–E's optimal learning rate, recovered by the PDE-constrained optimisation.

f = aθ²/2 with gradient noise of variance Σ (B = 1), order-1 SME b = −uaθ, D = u²ηΣ/2. With
m = E f: dm/dt = −2aum + au²ηΣ/2 (dEθ²/dt = −2auEθ² + 2D). The right side is minimised pointwise by
u = 2m/(ηΣ) (capped at 1), and as its minimum −2am²/(ηΣ) increases with m the greedy control is
optimal: u* = 1 while m ≥ ηΣ/2, i.e. until t* = ln(4m₀/(ηΣ) − 1)/(2a) (m(t) = ηΣ/4 + (m₀ − ηΣ/4)e^{−2at}
under u = 1), then dm/dt = −2am²/(ηΣ) gives m = (ηΣ/2)/(1 + a(t − t*)) and u* = 1/(1 + a(t − t*)).

Errors of the discrete optimum: the P1 space O(h²), Crank–Nicolson O(dt²), and the piecewise-constant
control: at the optimum J is stationary, so restricting u to Δτ-constants costs O(Δτ²) in J, and the
optimal constant on an interval is u*(midpoint) + O(Δτ²) (u* smooth on each side of t*; at t* u* is
continuous with a kink). All three scale together here (h = Δτ/5, dt = Δτ/10), so J and u converge
as O(Δτ²): the measured relative J errors are 6.7e-4 (Δτ = 0.2) and 1.5e-4 (Δτ = 0.1), ratio 4.3; the
tolerances below are 0.025 Δτ² (J, relative) and 0.1 Δτ² (u), and the test asserts the ratio ≥ 3.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.control import objectives as ob
from symfp.control.operators import operator_parts
from symfp.control.optimise import ControlWarning, optimise
from symfp.control.problem import ControlProblem
from symfp.control.schedules import match_budget
from symfp.errors import InputError

pytestmark = pytest.mark.fem

th, xi = sp.symbols("theta xi")
A, ETA, SIGMA, S0, T = 1.0, 0.1, 1.0, 1.0, 4.0
M0 = A * S0**2 / 2
ES = ETA * SIGMA
T_STAR = np.log(4 * M0 / ES - 1) / (2 * A)
M_STAR = (ES / 2) / (1 + A * (T - T_STAR))


def u_star(t):
    return np.where(t < T_STAR, 1.0, 1 / (1 + A * (t - T_STAR)))


def model():
    data = symfp.Population({xi: sp.stats.Normal("X", 0, np.sqrt(SIGMA))})
    return symfp.SGD(loss=A * th**2 / 2 + xi * th, params=[th], data=data, lr=ETA)


def problem(n_controls, backend="auto"):
    width = T / n_controls
    # [-6, 6] holds N(0, S0²) to 6σ at t = 0 and the density only narrows afterwards
    ops = operator_parts(model(), symfp.mesh.box([(-6, 6)], cells=int(round(12 / (width / 5)))),
                         backend=backend)
    return ControlProblem(ops, sp.exp(-th**2 / (2 * S0**2)), t_end=T, dt=width / 10, n_controls=n_controls,
                          objective=[ob.ExpectedValue(A * th**2 / 2)], u_bounds=(0.0, 1.0))


@pytest.fixture(scope="module")
def runs():
    out = {}
    for n in (20, 40):
        pr = problem(n)
        out[n] = (pr, optimise(pr, progress=False))
    return out


def test_closed_form_itself():
    """The moment ODE under u* (RK4, fine step) ends at m*(T) and u* = 2m/(ηΣ) after t*."""
    def rhs(t, m):
        u = min(1.0, 2 * m / ES)
        return -2 * A * u * m + A * u**2 * ES / 2

    m, n = M0, 40000
    h = T / n
    for k in range(n):
        t = k * h
        k1 = rhs(t, m)
        k2 = rhs(t + h / 2, m + h / 2 * k1)
        k3 = rhs(t + h / 2, m + h / 2 * k2)
        k4 = rhs(t + h, m + h * k3)
        m += h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    assert abs(m - M_STAR) < 1e-6 * M_STAR


def test_optimum_matches_li_tai_e(runs):
    errs, uerrs = [], []
    for n, (pr, res) in runs.items():
        assert res.converged, res.summary
        width = pr.grid.width
        rel = abs(res.value - M_STAR) / M_STAR
        uerr = np.abs(res.u - u_star(pr.grid.midpoints)).max()
        assert rel <= 0.025 * width**2, (n, rel)
        assert uerr <= 0.1 * width**2, (n, uerr)
        assert abs(pr.mass(res.trajectory.final) - 1) < 1e-12
        errs.append(rel)
        uerrs.append(uerr)
    assert errs[0] / errs[1] >= 3 and uerrs[0] / uerrs[1] >= 3, (errs, uerrs)


def test_same_optimum_with_scikit_fem(runs):
    """The scikit-fem assembler gives the same discrete problem (matrices equal to round-off), so the
    same optimum: u and J agree far inside L-BFGS-B's tolerance, and with the closed form as above."""
    pytest.importorskip("skfem")
    pr_d, res_d = runs[20]
    pr = problem(20, backend="skfem")
    assert pr.ops.backend == "skfem"
    res = optimise(pr, progress=False)
    assert res.converged, res.summary
    assert abs(res.value - res_d.value) <= 1e-8 * res_d.value
    assert np.abs(res.u - res_d.u).max() <= 1e-4  # L-BFGS-B stops at pgtol; same path to round-off
    assert abs(res.value - M_STAR) / M_STAR <= 0.025 * pr.grid.width**2


def test_optimum_beats_families_of_the_same_budget(runs):
    pr, res = runs[20]
    budget = pr.grid.integral(res.u)
    for fam in ("constant", "cosine", "inverse_time"):
        u = match_budget(fam, pr.grid, budget, lo=0.0, hi=1.0)
        assert abs(pr.grid.integral(u) - budget) < 1e-9
        assert pr.solve(u).value > res.value


def test_budget_constraint_is_enforced_and_optimal():
    pr = problem(10)
    res = optimise(pr, progress=False, budget={"u": 2.0})
    assert res.converged, res.summary
    used, allowed = res.budgets["u"]
    assert used <= allowed * (1 + 1e-5) and used >= allowed * (1 - 1e-3)  # active: u* needs 2.73
    for fam in ("constant", "cosine", "inverse_time"):
        assert pr.solve(match_budget(fam, pr.grid, 2.0, lo=0.0, hi=1.0)).value > res.value
    tight = ControlProblem(pr.ops, sp.exp(-th**2 / 2), t_end=T, dt=0.2, n_controls=20,
                           objective=[ob.ExpectedValue(th**2)], u_bounds=(0.2, 1.0))
    with pytest.raises(InputError, match="cannot be met"):  # u >= 0.2 uses at least 0.8
        optimise(tight, progress=False, budget={"u": 0.5})


def test_not_converged_says_so():
    pr = problem(20)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = optimise(pr, progress=False, maxiter=2)
    assert not res.converged
    assert "NOT converged" in res.summary and "2 iterations" in res.summary
    assert "projected gradient" in res.summary and res.projected_gradient > 0
    assert any(issubclass(w.category, ControlWarning) for w in rec)
    assert len(res.history) == 2
