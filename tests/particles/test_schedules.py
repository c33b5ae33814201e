"""Learning-rate schedules in the exact recursion (``simulate(..., lr_schedule=...)``).

For ℓ = aθ²/2 + ξθ, ξ ~ N(0, s²), B = 1 (REFERENCE_CASES item 2) with rates η_k the exact step is
θ_{k+1} = (1 − η_k a)θ_k − η_k ξ_k, so the moments follow the deterministic recurrences
m_{k+1} = (1 − η_k a)m_k and v_{k+1} = (1 − η_k a)²v_k + η_k²s²: the particles must match them within
4 standard errors (Monte Carlo only; there is no discretisation error to allow for).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from sympy.stats import Normal

import symfp
from symfp.errors import InputError

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
th, xi, k, eta = sp.symbols("theta xi k eta", real=True)


def quadratic(lr=eta, a=1.0, s=1.0, **kw):
    return symfp.SGD(
        loss=a * th**2 / 2 + xi * th,
        params=[th],
        data=symfp.Population({xi: Normal("X", 0, s)}),
        lr=lr,
        batch_size=1,
        **kw,
    )


def exact_moments(etas, m0, v0, a=1.0, s=1.0):
    m, v = m0, v0
    for e in etas:
        m, v = (1 - e * a) * m, (1 - e * a) ** 2 * v + e * e * s * s
    return m, v


@pytest.mark.parametrize("form", ["callable", "sympy", "array"])
def test_decaying_schedule_matches_the_moment_recurrence(form):
    steps = 120
    etas = 0.5 / (1 + np.arange(steps) / 10)  # from 0.5 (far from the order-1 SDE regime) down to 0.04
    schedule = {
        "callable": lambda j: 0.5 / (1 + j / 10),
        "sympy": sp.Rational(1, 2) / (1 + k / 10),
        "array": etas,
    }[form]
    init = {th: Normal("theta0", 1, sp.Rational(1, 10))}
    cloud = quadratic().simulate(n_particles=40_000, steps=steps, init=init, seed=3, lr_schedule=schedule)
    m, v = exact_moments(etas, 1.0, 0.01)
    (mean,), (mse,) = cloud.mean(stderr=True)
    var, vse = cloud.cov(stderr=True)
    assert abs(mean - m) < 4 * mse
    assert abs(var[0, 0] - v) < 4 * vse[0, 0]
    # the time axis is the SGD time t_k = Σ_{j<k} η_j
    assert cloud.times[-1] == pytest.approx(etas.sum(), rel=1e-12)
    assert cloud.info["lr_schedule"]


def test_constant_schedule_is_the_plain_recursion_with_momentum_and_noise():
    model = quadratic(momentum=0.5, noise=0.1).subs({eta: sp.Rational(1, 10)})
    kw = dict(n_particles=3000, steps=40, init=[0.5, 0.0], seed=2, outputs=5)
    plain = model.simulate(**kw)
    sched = model.simulate(**kw, lr_schedule=lambda j: 0.1)
    np.testing.assert_allclose(sched.theta, plain.theta, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sched.times, plain.times, rtol=1e-12)


def test_schedule_on_a_symbolic_recursion():
    # a generic Recursion with lr a symbol of its update: θ ← θ − η θ (no noise): θ_K = Π(1 − η_k) θ_0
    rec = symfp.Recursion([th], [th - eta * th], lr=eta)
    etas = [0.1, 0.2, 0.3]
    c = rec.simulate(4, 3, init=[2.0], lr_schedule=etas)
    np.testing.assert_allclose(c.theta[:, 0], 2.0 * 0.9 * 0.8 * 0.7, rtol=1e-14)


def test_bad_schedules():
    model = quadratic()
    run = lambda s, steps=5: model.simulate(10, steps, init=[0.0], lr_schedule=s)  # noqa: E731
    with pytest.raises(InputError, match="eta_2 = -0.1 at step 2"):
        run([0.1, 0.1, -0.1, 0.1, 0.1])
    with pytest.raises(InputError, match="positive and finite"):
        run(lambda j: float("nan"))
    with pytest.raises(InputError, match="3 values for 5 steps"):
        run([0.1, 0.1, 0.1])
    with pytest.raises(InputError, match="use one symbol"):
        run(k * eta)
    with pytest.raises(InputError, match="callable k -> eta_k"):
        run("fast")
    with pytest.raises(InputError, match="lr to be a symbol"):
        symfp.Recursion([th], [th / 2], lr=0.1).simulate(4, 3, init=[1.0], lr_schedule=[0.1] * 3)
    with pytest.raises(InputError, match="free symbols"):  # the schedule replaces lr, not the rest
        a = sp.Symbol("a", positive=True)
        quadratic(a=a, constants=(a,)).simulate(10, 5, init=[0.0], lr_schedule=[0.1] * 5)
