"""Exact-recursion particles against closed forms (REFERENCE_CASES item 2 and one-step moments).

Monte Carlo comparisons are within 3 standard errors of the cloud's own estimate (4 where several
numbers are checked at once); sizes are chosen so the compared alternatives differ by ≥ 8 standard
errors.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from scipy.linalg import solve_discrete_lyapunov
from sympy.stats import Gamma, Normal

import symfp
from symfp.errors import DataError, DivergenceError, InputError

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
th, xi, x, y, w1, w2 = sp.symbols("theta xi x y w1 w2", real=True)


def quadratic(lr=0.1, a=1.0, s=1.0, **kw):
    """Item 2: ℓ = aθ²/2 + ξθ, ξ ~ N(0, s²), B = 1."""
    return symfp.SGD(
        loss=a * th**2 / 2 + xi * th,
        params=[th],
        data=symfp.Population({xi: Normal("X", 0, s)}),
        lr=lr,
        batch_size=1,
        **kw,
    )


@pytest.mark.parametrize("device", DEVICES)
def test_item2_exact_sgd_stationary_variance(device):
    # ηs²/(a(2 − ηa)) = 0.0526316 at a = s = 1, η = 0.1; the order-1 SDE value 0.05 is 11 standard
    # errors away (se ≈ 0.00024 at 1e5 particles), so the test separates the recursion from its SDE.
    cloud = quadratic().simulate(n_particles=100_000, steps=150, init=0.0, seed=0, device=device)
    var, se = cloud.cov(stderr=True)
    assert abs(var[0, 0] - 0.0526316) < 3 * se[0, 0]
    assert abs(var[0, 0] - 0.05) > 8 * se[0, 0]
    assert cloud.times[-1] == pytest.approx(15.0)  # t = kη


def test_weight_decay_and_injected_noise_follow_the_update():
    # θ' = θ − η((a+λ)θ + ξ) + √(2ηδ) ζ: stationary variance (η²s² + 2ηδ)/(1 − (1 − η(a+λ))²).
    eta, a, lam, delta = 0.2, 1.0, 0.5, 0.05
    model = quadratic(lr=eta, a=a, weight_decay=lam, noise=delta)
    cloud = model.simulate(n_particles=60_000, steps=80, init=1.0, seed=2)
    var, se = cloud.cov(stderr=True)
    exact = (eta**2 + 2 * eta * delta) / (1 - (1 - eta * (a + lam)) ** 2)
    assert abs(var[0, 0] - exact) < 3 * se[0, 0]


def test_momentum_stationary_covariance_vs_lyapunov():
    # Heavy ball: v' = βv − η(aθ + ξ), θ' = θ + ηv' — linear, θ_{k+1} = A θ_k + c ξ_k, so the
    # stationary covariance solves the discrete Lyapunov equation P = A P Aᵀ + c cᵀ (scipy).
    eta, beta, a = 0.1, 0.5, 1.0
    model = quadratic(lr=eta, a=a, momentum=beta)
    assert len(model.state) == 2
    A = np.array([[1 - eta**2 * a, eta * beta], [-eta * a, beta]])
    c = np.array([[-(eta**2)], [-eta]])
    P = solve_discrete_lyapunov(A, c @ c.T)
    cloud = model.simulate(n_particles=50_000, steps=400, init=[0.0, 0.0], seed=4)
    cov, se = cloud.cov(stderr=True)
    assert np.all(np.abs(cov - P) < 4 * se)


@pytest.mark.parametrize("mode,factor", [("with", 1.0), ("without", 6 / 9), ("reshuffle", 6 / 9)])
def test_one_step_batch_covariance_factor(mode, factor):
    # One step from θ0 = 0 of ℓ = θ²/2 + ξθ on N = 10 samples, B = 4: θ1 = −η ĝ, so
    # Var θ1 = η² σ²/B · factor, factor = 1 with replacement and (N−B)/(N−1) = 6/9 without (or for the
    # first batch of a reshuffled epoch). 4e4 particles: se ≈ 0.7 % of the variance, the two factors
    # differ by 33 %.
    data = symfp.Dataset({xi: np.arange(10.0) ** 1.5})
    sig2 = np.var(data.arrays[xi])
    model = symfp.SGD(
        loss=th**2 / 2 + xi * th, params=[th], data=data, lr=0.5, batch_size=4, replacement=(mode == "with")
    )
    cloud = model.simulate(n_particles=40_000, steps=1, init=0.0, seed=11, reshuffle=(mode == "reshuffle"))
    var, se = cloud.cov(stderr=True)
    assert abs(var[0, 0] - 0.25 * sig2 / 4 * factor) < 3 * se[0, 0]
    mean, mse = cloud.mean(stderr=True)
    assert abs(mean[0] + 0.5 * np.mean(data.arrays[xi])) < 3 * mse[0]


def test_torch_index_path_of_gpus_gives_the_same_law(monkeypatch):
    # On a GPU the batch indices come from torch.randint (no numpy generator): run that branch on the CPU
    # by withholding the numpy generators, and check the with-replacement law as above (factor 1).
    import symfp.particles.runner as runner

    real = runner.slab_generators
    monkeypatch.setattr(runner, "slab_generators", lambda seq, dev: (real(seq, dev)[0], None))
    data = symfp.Dataset({xi: np.arange(10.0) ** 1.5})
    sig2 = np.var(data.arrays[xi])
    model = symfp.SGD(loss=th**2 / 2 + xi * th, params=[th], data=data, lr=0.5, batch_size=4)
    cloud = model.simulate(n_particles=40_000, steps=1, init=0.0, seed=12)
    var, se = cloud.cov(stderr=True)
    assert abs(var[0, 0] - 0.25 * sig2 / 4) < 3 * se[0, 0]
    mean, mse = cloud.mean(stderr=True)
    assert abs(mean[0] + 0.5 * np.mean(data.arrays[xi])) < 3 * mse[0]


def test_reshuffling_visits_every_sample_once_per_epoch():
    # ℓ = ξθ: over one epoch (N/B = 3 batches) θ moves by exactly −(η/B) Σ ξ_i for every particle.
    vals = np.array([0.3, -1.0, 2.0, 5.0, 0.1, -0.7, 1.1, 4.0, -2.5, 0.0, 0.6, 9.0])
    model = symfp.SGD(
        loss=xi * th, params=[th], data=symfp.Dataset({xi: vals}), lr=0.1, batch_size=4, replacement=False
    )
    cloud = model.simulate(n_particles=500, steps=3, init=1.0, reshuffle=True, seed=3)
    np.testing.assert_allclose(cloud.theta[:, 0], 1.0 - 0.1 / 4 * vals.sum(), rtol=0, atol=1e-12)
    iid = model.simulate(n_particles=500, steps=3, init=1.0, seed=3)
    assert np.ptp(iid.theta) > 0.1  # independent batches do not


def test_two_parameter_model_one_step_moments():
    # ℓ = (w1 w2 x − y)²/2 on a data set (the polynomial fast path): one step from θ0 has
    # E θ1 = θ0 − η ∇f(θ0) and Cov θ1 = η² Σ1/B (with replacement), Σ1 from numpy on the data.
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=50), rng.normal(size=50)
    model = symfp.SGD(
        loss=(w1 * w2 * x - y) ** 2 / 2,
        params=[w1, w2],
        data=symfp.Dataset({x: xs, y: ys}),
        lr=0.1,
        batch_size=8,
    )
    t0 = np.array([0.7, -1.2])
    r = t0[0] * t0[1] * xs - ys
    grads = np.stack([r * t0[1] * xs, r * t0[0] * xs], axis=1)
    cloud = model.simulate(n_particles=40_000, steps=1, init=t0, seed=5)
    mean, mse = cloud.mean(stderr=True)
    cov, cse = cloud.cov(stderr=True)
    assert np.all(np.abs(mean - (t0 - 0.1 * grads.mean(0))) < 4 * mse)
    assert np.all(np.abs(cov - 0.01 * np.cov(grads.T, bias=True) / 8) < 4 * cse)


def test_non_polynomial_loss_general_path():
    # Logistic loss log(1 + exp(−y θ x)): not polynomial in the data, so per-sample gradients are
    # evaluated on the gathered batch. One step: E θ1 = θ0 − η mean_n ∇ℓ(θ0; ξ_n).
    rng = np.random.default_rng(1)
    xs, ys = rng.normal(size=30), np.sign(rng.normal(size=30))
    model = symfp.SGD(
        loss=sp.log(1 + sp.exp(-y * th * x)),
        params=[th],
        data=symfp.Dataset({x: xs, y: ys}),
        lr=0.5,
        batch_size=5,
        replacement=False,
    )
    grad = -ys * xs / (1 + np.exp(ys * 0.3 * xs))
    cloud = model.simulate(n_particles=20_000, steps=1, init=0.3, seed=8)
    mean, mse = cloud.mean(stderr=True)
    var, vse = cloud.cov(stderr=True)
    assert abs(mean[0] - (0.3 - 0.5 * grad.mean())) < 3 * mse[0]
    assert abs(var[0, 0] - 0.25 * grad.var() / 5 * 25 / 29) < 3 * vse[0, 0]


def test_divergence_reports_step_fraction_and_quantity():
    with pytest.raises(
        DivergenceError,
        match=r"diverged at step \d+ \(t = .*\): \d+% of the particles.*"
        r"quantity is theta.*learning rate",
    ):
        quadratic(lr=2.5).simulate(n_particles=100, steps=2000, init=1.0)


def test_bad_input():
    with pytest.raises(DataError, match="no torch sampler for the distribution Gamma"):
        symfp.SGD(
            loss=th**2 / 2 + xi * th,
            params=[th],
            data=symfp.Population({xi: Gamma("G", 2, 1)}),
            lr=0.1,
            batch_size=1,
        ).simulate(10, 1, init=0.0)
    with pytest.raises(InputError, match="free symbols eta"):
        quadratic(lr=sp.Symbol("eta", positive=True)).simulate(10, 1, init=0.0)
    with pytest.raises(InputError, match="n_particles must be a positive integer"):
        quadratic().simulate(-3, 1, init=0.0)
    with pytest.raises(InputError, match="init point has 2 entries"):
        quadratic().simulate(10, 1, init=[0.0, 1.0])
    with pytest.raises(InputError, match="reshuffle=True needs a finite Dataset"):
        quadratic().simulate(10, 1, init=0.0, reshuffle=True)


# ------------------------------------------------------------------------------ learning-rate schedules
# For item 2 with rates η_k the exact step is θ_{k+1} = (1 − η_k a)θ_k − η_k ξ_k, so the moments follow
# m_{k+1} = (1 − η_k a)m_k and v_{k+1} = (1 − η_k a)²v_k + η_k²s²: the particles must match them within
# 4 standard errors (Monte Carlo only; no discretisation error to allow for).
k, eta = sp.symbols("k eta", real=True)


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
    model = quadratic(lr=eta)
    cloud = model.simulate(n_particles=40_000, steps=steps, init=init, seed=3, lr_schedule=schedule)
    m, v = exact_moments(etas, 1.0, 0.01)
    (mean,), (mse,) = cloud.mean(stderr=True)
    var, vse = cloud.cov(stderr=True)
    assert abs(mean - m) < 4 * mse
    assert abs(var[0, 0] - v) < 4 * vse[0, 0]
    # the time axis is the SGD time t_k = Σ_{j<k} η_j
    assert cloud.times[-1] == pytest.approx(etas.sum(), rel=1e-12)
    assert cloud.info["lr_schedule"]


def test_constant_schedule_is_the_plain_recursion_with_momentum_and_noise():
    model = quadratic(lr=eta, momentum=0.5, noise=0.1).subs({eta: sp.Rational(1, 10)})
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
    model = quadratic(lr=eta)
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
        quadratic(lr=eta, a=a, constants=(a,)).simulate(10, 5, init=[0.0], lr_schedule=[0.1] * 5)
