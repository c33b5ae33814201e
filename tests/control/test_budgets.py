r"""Several budgets at once: ∫u dt ≤ U and ∫B dt = S together, by SLSQP on the exact adjoint gradient.

Independent check. f = aθ²/2 with gradient noise Σ per sample, u and B both controlled, order-1 SME:
m = E f obeys dm/dt = −2aum + au²ηΣ/(2B), so with u, B constant on an interval of width Δ

    m ← e^{−2auΔ} m + (uηΣ/(4B)) (1 − e^{−2auΔ})        (exact),

which gives J(u, B) = m(T) in closed form on the control grid. That closed form, minimised by SciPy's
``trust-constr`` (a different algorithm: a trust-region SQP with finite-difference gradients) under
the same bounds and budgets, is compared with the FE + discrete adjoint + SLSQP optimum. m₀ is the FE
density's, so what separates the two is the FE error of J at fixed controls (P1 O(h²), CN O(dt²):
measured 1.7e-5 relative here) and the two optimisers' tolerances: J agrees to that, the budgets'
multipliers (each budget's price) to 1e-5, and the FE optimum is a KKT point of the closed-form
problem to 1e-5 relative. The schedule itself is only loosely determined (J is flat along the
budgets' level set: measured, schedules 1e-2 apart differ in J by 1e-8), so it is compared loosely.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.control import objectives as ob
from symfp.control.budgets import Budget, parse_budgets
from symfp.control.operators import operator_parts
from symfp.control.optimise import optimise, projected_gradient
from symfp.control.problem import ControlProblem
from symfp.errors import InputError

pytestmark = pytest.mark.fem

th, xi = sp.symbols("theta xi")
A, ETA, SIGMA, S0, T, N = 1.0, 0.1, 1.0, 1.0, 2.0, 4
U_BUDGET, S_BUDGET = 1.0, 12.0
U_BOUNDS, B_BOUNDS = (0.05, 1.0), (1.0, 16.0)


@pytest.fixture(scope="module")
def problem():
    data = symfp.Population({xi: sp.stats.Normal("X", 0, np.sqrt(SIGMA))})
    model = symfp.SGD(loss=A * th**2 / 2 + xi * th, params=[th], data=data, lr=ETA)
    ops = operator_parts(model, symfp.mesh.box([(-6, 6)], cells=240))
    return ControlProblem(ops, sp.exp(-th**2 / (2 * S0**2)), t_end=T, dt=0.01, n_controls=N,
                          controls=("u", "B"), u_bounds=U_BOUNDS, B_bounds=B_BOUNDS,
                          objective=[ob.ExpectedValue(A * th**2 / 2)])


def moment_value(x: np.ndarray, m0: float) -> float:
    """m(T) of the order-1 SME under piecewise-constant (u, B), exactly."""
    u, B = x[:N], x[N:]
    width = T / N
    m = m0
    for uj, bj in zip(u, B, strict=True):
        e = np.exp(-2 * A * uj * width)
        m = e * m + uj * ETA * SIGMA / (4 * bj) * (1 - e)
    return m


def test_two_budgets_against_an_independent_optimisation(problem):
    from scipy.optimize import LinearConstraint, minimize

    res = optimise(problem, problem.pack(0.5, 3.0), budget={"u": U_BUDGET, "B": ("==", S_BUDGET)},
                   progress=False)
    assert res.method == "SLSQP" and res.converged, res.summary
    used_u, _ = res.budgets["u"]
    used_b, _ = res.budgets["B"]
    assert abs(used_u - U_BUDGET) <= 1e-8 and abs(used_b - S_BUDGET) <= 1e-8 * S_BUDGET  # both active
    assert res.multipliers["u"] > 0  # an active '<=' budget: more learning rate would lower J
    x_fe = problem.pack(res.u, res.B)
    m0 = float(problem.ops.load(A * th**2 / 2) @ problem.p0)
    # the FE error of J at fixed controls (what separates the two optima)
    fe_err = abs(res.value - moment_value(x_fe, m0)) / res.value
    assert fe_err <= 1e-4, fe_err
    width = T / N
    rows = np.zeros((2, 2 * N))
    rows[0, :N] = rows[1, N:] = width
    indep = minimize(lambda x: moment_value(x, m0), np.concatenate([np.full(N, 0.5), np.full(N, 3.0)]),
                     method="trust-constr", bounds=[U_BOUNDS] * N + [B_BOUNDS] * N,
                     constraints=[LinearConstraint(rows, [-np.inf, S_BUDGET], [U_BUDGET, S_BUDGET])],
                     options={"gtol": 1e-12, "xtol": 1e-12, "maxiter": 3000})
    j_star = indep.fun
    # the FE optimum is feasible for the moment problem and optimal to its FE error
    assert moment_value(x_fe, m0) >= j_star * (1 - 1e-9)
    assert moment_value(x_fe, m0) - j_star <= 1e-6 * j_star, (moment_value(x_fe, m0), j_star)
    assert abs(res.value - j_star) <= (fe_err + 1e-6) * j_star
    # the multipliers (the price of each budget: dJ*/dU and dJ*/dS up to sign) against trust-constr's
    mu_indep = indep.v[0]
    assert abs(res.multipliers["u"] - mu_indep[0]) <= 1e-4 * abs(mu_indep[0]), (res.multipliers, mu_indep)
    assert abs(res.multipliers["B"] - mu_indep[1]) <= 1e-4 * abs(mu_indep[1]), (res.multipliers, mu_indep)
    # the FE optimum is a KKT point of the closed-form problem to the FE error (gradient by complex step)
    g = np.array([moment_value(x_fe + 1e-30j * e, m0).imag / 1e-30 for e in np.eye(2 * N)])
    lagrangian = g + mu_indep[0] * rows[0] + mu_indep[1] * rows[1]
    assert projected_gradient(x_fe, lagrangian, problem.bounds()) <= 1e-4 * np.abs(g).max()
    # the schedule itself is poorly determined: J is flat along the budgets' level set (SLSQP with ftol
    # 1e-12 and 1e-14 give schedules 7e-3 apart in u with J equal to 3e-8), so only loosely
    assert np.abs(x_fe - indep.x)[:N].max() <= 0.03 and np.abs(x_fe - indep.x)[N:].max() <= 0.3, (
        x_fe, indep.x)
    # KKT: the projected gradient of the Lagrangian, relative to the gradient's size
    assert res.projected_gradient <= 1e-4 * np.abs(problem.value_and_gradient(x_fe)[1]).max()


def test_slsqp_agrees_with_the_multiplier_search_on_one_budget(problem):
    """One '<=' budget: SLSQP and L-BFGS-B's multiplier search are two algorithms for the same KKT point."""
    a = optimise(problem, problem.pack(0.5, 3.0), budget={"u": U_BUDGET}, method="L-BFGS-B", progress=False)
    b = optimise(problem, problem.pack(0.5, 3.0), budget={"u": U_BUDGET}, method="SLSQP", progress=False)
    assert a.converged and b.converged, (a.summary, b.summary)
    assert abs(a.value - b.value) <= 1e-6 * a.value
    assert abs(a.multipliers["u"] - b.multipliers["u"]) <= 1e-2 * a.multipliers["u"]


def test_parse_budgets():
    assert parse_budgets({"u": 2}) == [Budget("u", 2.0, "<=")]
    assert parse_budgets({"B": ("==", 40), "u": [("<=", 2.0), (">=", 1.0)]}) == [
        Budget("B", 40.0, "=="), Budget("u", 2.0, "<="), Budget("u", 1.0, ">=")]
    assert parse_budgets(None) == []
    with pytest.raises(InputError, match="kind '<' is not one of"):
        parse_budgets({"u": ("<", 1.0)})
    with pytest.raises(InputError, match="must be 'u'"):
        parse_budgets({"eta": 1.0})
    with pytest.raises(InputError, match="must be a number"):
        parse_budgets({"u": "lots"})


def test_conflicting_budgets_are_named(problem):
    with pytest.raises(InputError, match=r"∫u dt >= 1.5 needs ∫u dt >= 1.5, but the budget ∫u dt <= 1 "
                                         r"allows at most 1"):
        optimise(problem, budget={"u": [("<=", 1.0), (">=", 1.5)]}, progress=False)
    # u >= 0.05 over T = 2 uses at least 0.1; B <= 16 at most 32
    with pytest.raises(InputError, match=r"bounds 0.05 <= u <= 1 .* needs ∫u dt >= 0.1, but the budget "
                                         r"∫u dt <= 0.05"):
        optimise(problem, budget={"u": 0.05, "B": ("==", 10.0)}, progress=False)
    with pytest.raises(InputError, match=r"the budget ∫B dt == 40 needs ∫B dt >= 40, but the bounds "
                                         r"1 <= B <= 16 .* allows at most 32"):
        optimise(problem, budget={"u": 1.0, "B": ("==", 40.0)}, progress=False)
    with pytest.raises(InputError, match="method='SLSQP'"):
        optimise(problem, budget={"u": 1.0, "B": ("==", 10.0)}, method="L-BFGS-B", progress=False)
    with pytest.raises(InputError, match="method='newton'"):
        optimise(problem, method="newton", progress=False)
