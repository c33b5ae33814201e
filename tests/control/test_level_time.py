r"""The "time to reach a level" cost: adjoint gradient, Taylor remainder, the time it approximates, bad input.

Closed form (Li–Tai–E's quadratic, f = aθ²/2, gradient-noise variance Σ, B = 1, u = 1): with m = E f,
dm/dt = −2am + aηΣ/2, so m(t) = m_∞ + (m₀ − m_∞)e^{−2at}, m_∞ = ηΣ/4, and m reaches ℓ at
t_ℓ = ln((m₀ − m_∞)/(ℓ − m_∞))/(2a). The surrogate Σ_n dt σ((m_n − ℓ)/ε) differs from t_ℓ by the
right-endpoint rule, −dt/2 (σ falls from 1 to 0), the smoothing, O(ε²) (σ − H is odd about a transversal
crossing; the O(ε²) term is ∝ m̈/|ṁ|³), and the FE error of m (CN O(dt²), P1 O(h²)) divided by |ṁ(t_ℓ)|.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.control import objectives as ob
from symfp.control.latex import control_latex
from symfp.control.operators import operator_parts
from symfp.control.problem import ControlProblem
from symfp.errors import InputError

pytestmark = pytest.mark.fem

th, xi = sp.symbols("theta xi")
w1, w2, x1, x2 = sp.symbols("w1 w2 x1 x2")
A, ETA, SIGMA = 1.0, 0.1, 1.0
M0, M_INF = 0.5, ETA * SIGMA / 4


def model():
    data = symfp.Population({xi: sp.stats.Normal("X", 0, np.sqrt(SIGMA))})
    return symfp.SGD(loss=A * th**2 / 2 + xi * th, params=[th], data=data, lr=ETA)


@pytest.fixture(scope="module", params=["dolfinx", "skfem"])
def ops1(request):
    if request.param == "skfem":
        pytest.importorskip("skfem")
    return operator_parts(model(), symfp.mesh.box([(-6, 6)], cells=240), backend=request.param)


def _check(pr, x, seed):
    """Central FD (relative ≤ 1e-6) and the Taylor remainder's slope (2.0 ± 0.1); returns the numbers."""
    rng = np.random.default_rng(seed)
    J, g = pr.value_and_gradient(x)
    h = 1e-5
    fd = np.array([(pr.value(x + h * e) - pr.value(x - h * e)) / (2 * h) for e in np.eye(x.size)])
    # central differences: truncation h²|J'''| ~ 1e-10 · (1/ε)² with ε = 0.05, round-off 1e-16/h
    err = np.abs(fd - g).max() / np.abs(g).max()
    assert err <= 1e-6, err
    d = rng.standard_normal(x.size)
    hs = 0.01 * 2.0 ** -np.arange(5)  # ε = 0.02..0.05: the remainder is asymptotic below ~0.02
    rem = [abs(pr.value(x + s * d) - J - s * (g @ d)) for s in hs]
    slopes = np.diff(np.log(rem)) / np.diff(np.log(hs))
    assert np.all(np.abs(slopes - 2.0) <= 0.1), slopes
    return err, slopes


def test_gradient_1d(ops1):
    """u and B controls; the level is crossed inside [0, T] for the schedules tried."""
    term = ob.LevelTime(th**2 / 2, 0.1, eps=0.02)
    pr = ControlProblem(ops1, sp.exp(-th**2 / 2), t_end=2.0, dt=0.02, n_controls=8, controls=("u", "B"),
                        objective=[term, ob.ExpectedValue(th**2 / 2, weight=0.1)])
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(0.5, 1, 8), rng.uniform(1, 3, 8)])
    traj = pr.solve(*pr.unpack(x))
    m = traj.P[1:] @ term.c
    assert m.max() > 0.1 > m.min()  # the crossing is in the run: the gradient is not the trivial one
    _check(pr, x, 0)


def test_gradient_2d_time_below():
    """2-D, ``above=False`` (time with E g below ℓ: maximising the time spent in a region's spread)."""
    data = symfp.Population({x1: sp.stats.Normal("X1", 0, 1), x2: sp.stats.Normal("X2", 0, 1)})
    m = symfp.SGD(loss=(w1**2 + 2 * w2**2 + w1 * w2) / 2 + x1 * w1 + x2 * w2, params=[w1, w2], data=data,
                  lr=0.2)
    ops = operator_parts(m, symfp.mesh.box([(-4, 4), (-4, 4)], cells=(20, 20)))
    pr = ControlProblem(ops, sp.exp(-((w1 - 1) ** 2 + (w2 + 0.5) ** 2) / 0.5), t_end=1.0, dt=0.05,
                        n_controls=5, controls=("u", "B"),
                        objective=[ob.LevelTime(w1**2 + 2 * w2**2, 0.8, eps=0.05, above=False, weight=-1)])
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(0.3, 1, 5), rng.uniform(1, 4, 5)])
    _check(pr, x, 1)


def t_level(level):
    return np.log((M0 - M_INF) / (level - M_INF)) / (2 * A)


def test_approximates_the_time_to_reach_the_level(ops1):
    """u = 1: surrogate + dt/2 − t_ℓ = the smoothing bias (π²/6)ε²m̈/|ṁ|³ + O(ε⁴) + FE error of m.

    The bias: with y = m − ℓ, t(y) = y/ṁ − m̈y²/(2ṁ³) + …, so ∫(σ(y/ε) − H(y)) dt = (m̈/|ṁ|³)·ε²·
    2∫₀^∞ y(1 − σ(y)) dy = (π²/6) ε² m̈/|ṁ|³ (ṁ = −2a(ℓ − m_∞), m̈ = 4a²(ℓ − m_∞) at t_ℓ). Measured on
    h = 0.05, dt = 0.005: errors 1.70e-2, 3.99e-3, 1.13e-3 for ε = 0.01, 0.005, 0.0025 against the
    predicted 1.46e-2, 3.66e-3, 9.1e-4; what is left at the smallest ε (2.2e-4) is the P1 error of m
    divided by |ṁ| (5.4e-5 on h/2: O(h²)).
    """
    level, dt = 0.1, 0.005
    want = t_level(level)  # 0.9229
    md, mdd = -2 * A * (level - M_INF), 4 * A**2 * (level - M_INF)
    errs, bias = [], []
    for eps in (0.01, 0.005, 0.0025):
        term = ob.LevelTime(A * th**2 / 2, level, eps=eps)
        pr = ControlProblem(ops1, sp.exp(-th**2 / 2), t_end=2.0, dt=dt, n_controls=1, objective=[term])
        traj = pr.solve(np.ones(1))
        errs.append(traj.value + dt / 2 - want)
        bias.append(np.pi**2 / 6 * eps**2 * mdd / abs(md) ** 3)
        assert abs(term.exact(traj.P) - want) <= dt  # the unsmoothed count: within one step
    errs, bias = np.array(errs), np.array(bias)
    assert np.all(np.abs(errs - bias) <= 0.2 * bias + 3e-4), (errs, bias)  # O(ε⁴) ≈ 0.17 b at ε = 0.01
    assert abs(errs[-1]) <= 1.5e-3 and errs[0] / errs[1] >= 3.5, errs  # O(ε²)


def test_fastest_descent_is_optimal(ops1):
    """Minimising the time above ℓ = 0.1 ≥ ηΣ/2: while m > ηΣ/2 the pointwise fastest decrease of m is
    u = 1 (dm/dt = −2aum + au²ηΣ/2, minimised at u = min(1, 2m/(ηΣ))), so the earliest crossing needs
    u = 1 until t_ℓ = 0.92: L-BFGS-B from u = 0.5 finds u = 1 on the intervals before t_ℓ, and the
    optimum is J(u ≡ 1) (what u does after t_ℓ changes J by less than e^{-(ℓ-m)/ε}·dt)."""
    from symfp.control.optimise import optimise

    pr = ControlProblem(ops1, sp.exp(-th**2 / 2), t_end=2.0, dt=0.01, n_controls=10,
                        objective=[ob.LevelTime(A * th**2 / 2, 0.1, eps=0.005)])
    res = optimise(pr, np.full(10, 0.5), progress=False)
    assert res.converged, res.summary
    assert np.all(res.u[pr.grid.midpoints + pr.grid.width / 2 < t_level(0.1)] >= 1 - 1e-6), res.u
    assert abs(res.value - pr.solve(np.ones(10)).value) <= 1e-6
    assert pr.solve(np.full(10, 0.5)).value > res.value + 0.3


def test_latex_names_the_cost(ops1):
    pr = ControlProblem(ops1, sp.exp(-th**2 / 2), t_end=1.0, dt=0.1, n_controls=2,
                        objective=[ob.LevelTime(th**2 / 2, 0.1, eps=0.02)])
    tex = control_latex(pr)
    assert r"\sigma" in tex and r"\mathbb E[\frac{\theta^{2}}{2}]" in tex


def test_bad_input(ops1):
    for eps in (0, -0.1, float("nan"), "wide"):
        with pytest.raises(InputError, match="eps="):
            ob.LevelTime(th**2, 0.1, eps=eps)
    base = dict(t_end=1.0, dt=0.1, n_controls=2)
    # θ²/2 on [-6, 6] ranges over [0, 18]: E[θ²/2] can never cross −0.1 or 20
    for level in (-0.1, 20.0):
        with pytest.raises(InputError, match="outside the range .* never crosses it"):
            ControlProblem(ops1, sp.exp(-th**2), objective=[ob.LevelTime(th**2 / 2, level, eps=0.01)], **base)
    with pytest.raises(InputError, match="is constant"):
        ControlProblem(ops1, sp.exp(-th**2), objective=[ob.LevelTime(sp.Integer(2), 1.0, eps=0.1)], **base)
    with pytest.raises(InputError, match="not state variables"):
        ControlProblem(ops1, sp.exp(-th**2), objective=[ob.LevelTime(th * xi, 0.1, eps=0.1)], **base)


def test_level_never_reached_on_the_path_is_said(ops1):
    """ℓ = 0.01 is inside the range of θ²/2 on the mesh (the setup check passes) but below the floor
    m ≥ uηΣ/4 ≥ 0.0125 of every schedule with u ≥ 0.5 (m(t) = uηΣ/4 + (m₀ − uηΣ/4)e^{−2aut} under a
    constant u): E f(θ_t) stays above ℓ for the whole run, so the cost is ≈ T and measures no crossing.
    The path check says so, at the start and at the result, with the closest approach (the minimum of
    m_n on the path); a path that does cross gives no message."""
    import warnings

    from symfp.control.optimise import ControlWarning, optimise

    term = ob.LevelTime(A * th**2 / 2, 0.01, eps=0.005)
    pr = ControlProblem(ops1, sp.exp(-th**2 / 2), t_end=2.0, dt=0.02, n_controls=4, objective=[term],
                        u_bounds=(0.5, 1.0))
    traj = pr.solve(np.full(4, 0.8))
    m = traj.P @ term.c
    msg = term.path_check(traj.P, pr.times)
    assert msg is not None and "stays above the level 0.01" in msg
    assert f"closest approach {m.min():.6g} at t = {pr.times[np.argmin(m)]:g}" in msg
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = optimise(pr, np.full(4, 0.8), progress=False)
    said = [str(w.message) for w in rec if issubclass(w.category, ControlWarning)]
    assert any(s.startswith("optimise, at the start x0") and "closest approach" in s for s in said), said
    assert res.path_notes and "closest approach" in res.reason
    assert any("at the result" in s for s in said), said
    crossing = ob.LevelTime(A * th**2 / 2, 0.1, eps=0.005)
    crossing.setup(ops1, pr.times)
    assert crossing.path_check(pr.solve(np.ones(4)).P, pr.times) is None
