r"""Time-dependent SDEs (schedules) and the rank-one noise factor, against exact moments.

1-D OU with a schedule, :math:`dX = -a(t)X\,dt + \sqrt{2D(t)}\,dW`, :math:`a(t) = 1 + \sin(t)/2`,
:math:`D(t) = \varepsilon(1 + t/2)`: the exact moments solve :math:`m' = -a m`,
:math:`v' = -2 a v + 2 D` (``scipy.integrate.solve_ivp``). Both schemes are linear in (X, ΔW) here,
:math:`X_{k+1} = A_k X_k + B_k\,\Delta W_k`, so their *discrete* moments are known exactly too:

* Euler (stage time t_k): :math:`A = 1 - a_k h`, :math:`B = \sigma_k`;
* weak2 (b at t_k and at t_{k+1} on :math:`\bar\Upsilon`, σ at t_k and t_{k+1}):
  :math:`A = 1 - \tfrac h2 a_k - \tfrac h2 a_{k+1}(1 - a_k h)`,
  :math:`B = \tfrac12(\sigma_k + \sigma_{k+1}) - \tfrac h2 a_{k+1}\sigma_k`,

with :math:`\sigma_k = \sqrt{2D(t_k)}`. The tests check (i) the scheme's mean against its discrete
mean to round-off (antithetic pairs cancel the noise of a linear SDE: this pins the stage times of
the drift), (ii) the Monte Carlo mean and variance against the discrete moments within 4 standard
errors, and (iii) the discrete moments against the ODE within the scheme's bias, which is stated.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

import symfp

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
x, y, t = sp.symbols("x y t", real=True)
EPS, T, X0 = 0.3, 2.0, 1.0


def _a(s):
    return 1 + np.sin(s) / 2


def _D(s):
    return EPS * (1 + s / 2)


def _schedule_sde():
    return symfp.SDE([x], -(1 + sp.sin(t) / 2) * x, EPS * (1 + t / 2), time=t)


def _ode_moments() -> np.ndarray:
    from scipy.integrate import solve_ivp

    sol = solve_ivp(
        lambda s, z: [-_a(s) * z[0], -2 * _a(s) * z[1] + 2 * _D(s)],
        (0.0, T),
        [X0, 0.0],
        rtol=1e-11,
        atol=1e-13,
    )
    return sol.y[:, -1]


def _discrete_moments(method: str, h: float) -> np.ndarray:
    m, v = X0, 0.0
    for k in range(round(T / h)):
        t0, t1 = k * h, (k + 1) * h
        s0, s1 = math.sqrt(2 * _D(t0)), math.sqrt(2 * _D(t1))
        if method == "euler":
            A, B = 1 - _a(t0) * h, s0
        else:
            A = 1 - h / 2 * _a(t0) - h / 2 * _a(t1) * (1 - _a(t0) * h)
            B = (s0 + s1) / 2 - h / 2 * _a(t1) * s0
        m, v = A * m, A * A * v + B * B * h
    return np.array([m, v])


@pytest.mark.parametrize("method,h,bias", [("euler", 0.01, 1.2e-2), ("weak2", 0.05, 1.5e-3)])
def test_schedule_ou_moments(method, h, bias):
    # Exact: m(2) = 0.066665, v(2) = 0.371687. Discrete − exact: Euler (h = 0.01) −1.2e-4 in the
    # mean, +7.9e-3 in the variance (O(h)); weak2 (h = 0.05) 1e-5 and 4e-4 (O(h²)). The standard
    # errors at 4e4 particles are 3.0e-3 (mean) and 2.6e-3 (variance).
    sde = _schedule_sde()
    assert not sde.is_autonomous
    exact, disc = _ode_moments(), _discrete_moments(method, h)
    assert np.all(np.abs(disc - exact) < bias)
    # (i) antithetic pairs: the mean is the discrete mean to round-off (stage times of the drift)
    anti = sde.simulate(2000, T, h, init=X0, method=method, antithetic=True, seed=2, outputs=2)
    assert anti.mean()[0] == pytest.approx(disc[0], rel=1e-10)
    # (ii) Monte Carlo against the discrete moments, (iii) against the ODE within 4 SE + bias
    cloud = sde.simulate(40_000, T, h, init=X0, method=method, seed=1, outputs=2)
    (m,), (mse,) = cloud.mean(stderr=True)
    v, vse = (c[0, 0] for c in cloud.cov(stderr=True))
    assert abs(m - disc[0]) < 4 * mse and abs(v - disc[1]) < 4 * vse
    assert abs(m - exact[0]) < 4 * mse + abs(disc[0] - exact[0])
    assert abs(v - exact[1]) < 4 * vse + abs(disc[1] - exact[1])
    # the schedule matters: the coefficients frozen at t = 0 give v(2) = 0.3(1 − e^{−4}) = 0.2945,
    # > 25 standard errors away (the test can fail)
    assert abs(v - EPS * (1 - math.exp(-4))) > 10 * vse


def test_euler_weak2_bias_orders_with_schedule():
    # dt-halving on the exact discrete moments: Euler's bias halves (order 1), weak2's quarters (order 2)
    exact = _ode_moments()
    for method, ratio in (("euler", 2.0), ("weak2", 4.0)):
        e1 = _discrete_moments(method, 0.02)[1] - exact[1]
        e2 = _discrete_moments(method, 0.01)[1] - exact[1]
        assert e1 / e2 == pytest.approx(ratio, rel=0.1)


def test_autonomous_sde_with_time_keeps_fast_path():
    from symfp.particles.sde import SDEStepper

    # constant diagonal σ: the additive-noise Euler kernel θ + bΔ, the noise added in place
    st = SDEStepper(symfp.SDE([x], -x, 0.1, time=t), 0.1, "euler")
    assert st.time is None and st.det is not None and st.core is not None
    # drift with a schedule and constant D: still that kernel, with t as an argument
    st = SDEStepper(symfp.SDE([x], -(1 + t) * x, 0.1, time=t), 0.1, "euler")
    assert st.time == t and st.det is not None


@pytest.mark.parametrize("method", ["euler", "weak2"])
@pytest.mark.parametrize(
    "D,kind",
    [
        ((1 + t) * sp.Matrix([[1 + x**2, x], [x, 1]]) / 4, "full"),
        ((1 + t) * sp.Matrix([[y**2, x * y], [x * y, x**2]]) / 4, "rank1"),
        (sp.diag(1 + t, 2 + sp.cos(t)) / 4, "diagonal"),
    ],
)
def test_time_dependent_diffusion_kinds_run(D, kind, method):
    sde = symfp.SDE([x, y], [-x, -y], D, time=t)
    cloud = sde.simulate(200, 0.5, 0.05, init=[0.5, -0.5], method=method, seed=0)
    assert cloud.info["noise"] == kind and np.all(np.isfinite(cloud.theta))


def _taylor_one_step(b, D, state, p0, h):
    r"""E[Δ] and Cov[Δ] of one step of the SDE to O(h³): :math:`E f(X_h) = f + hLf + \tfrac{h^2}2 L^2 f`
    with :math:`Lf = b\cdot\nabla f + D:\nabla^2 f`, for f = Δ_i and f = Δ_iΔ_j at θ0."""
    d = len(state)
    z = [sp.Symbol(f"z{i}", real=True) for i in range(d)]
    at = {**dict(zip(z, [p0[s] for s in state], strict=True)), **p0}

    def L(f):
        return sum(b[i] * sp.diff(f, state[i]) for i in range(d)) + sum(
            D[i, j] * sp.diff(f, state[i], state[j]) for i in range(d) for j in range(d)
        )

    def expect(f):
        return float((f + h * L(f) + h * h / 2 * L(L(f))).subs(at))

    dl = [state[i] - z[i] for i in range(d)]
    mean = np.array([expect(dl[i]) for i in range(d)])
    second = np.array([[expect(dl[i] * dl[j]) for j in range(d)] for i in range(d)])
    return mean, second - np.outer(mean, mean)


@pytest.mark.parametrize("method,h", [("euler", 0.01), ("weak2", 0.001)])
def test_rank_one_diffusion_one_step_moments(method, h):
    # D = c(θ) uuᵀ/2 with u = (y, x), c = 1 + (xy − 1)² (linear-network-like, rank one), one step from
    # one point θ0. Euler: Δ is Gaussian with E[Δ] = b(θ0) h and Cov[Δ] = 2D(θ0) h exactly. weak2 has
    # local weak error O(h³): its one-step moments are the SDE's to O(h²) (generator expansion
    # above); the O(h²) terms are ~1e-5 here, 10 standard errors, so the test checks them too (2Dh
    # alone fails). The direction u⊥ = (x0, −y0) gets no noise at all under Euler.
    c = 1 + (x * y - 1) ** 2
    D = sp.expand(c * sp.Matrix([y, x]) * sp.Matrix([y, x]).T / 2)
    b = sp.Matrix([-x + y / 2, -y - x**2 / 4])
    sde = symfp.SDE([x, y], b, D)
    p0 = {x: sp.Rational(3, 10), y: sp.Rational(-6, 5)}
    th0 = np.array([0.3, -1.2])
    if method == "euler":
        mean = np.array(b.subs(p0), dtype=float)[:, 0] * h
        cov = np.array((2 * D).subs(p0), dtype=float) * h
    else:
        mean, cov = _taylor_one_step(b, D, (x, y), p0, h)
    cloud = sde.simulate(200_000, h, h, init=th0, method=method, seed=4, outputs=2)
    assert cloud.info["noise"] == "rank1"
    m, mse = cloud.mean(stderr=True)
    cv, cse = cloud.cov(stderr=True)
    assert np.all(np.abs((m - th0) - mean) < 4 * mse)
    assert np.all(np.abs(cv - cov) < 4 * cse)
    assert np.all(cse < 0.01 * np.abs(cov).max())  # the errors resolve 1 % of 2Dh
    if method == "euler":
        perp = (cloud.theta - th0) @ np.array([th0[0], -th0[1]])
        assert perp.std() < 1e-12
