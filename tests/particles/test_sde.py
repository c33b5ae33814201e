"""SDE particle simulator against closed forms (REFERENCE_CASES items 2, 3) and weak-order checks.

Tolerances: Monte Carlo quantities are compared within 3 or 4 of their own standard errors (from the
cloud); scheme biases are made negligible by the step size (the bias is stated in each test).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from sympy.stats import Normal

import symfp
from symfp.errors import InputError

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
x, y = sp.symbols("x y", real=True)
S1 = sp.Rational(1, 2)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("order,expected", [(1, 0.05), (2, 0.0476190)])
def test_item2_sde_stationary_variance(order, expected, device):
    # Item 2, a = s = 1, eta = 0.1: order-1 SME dθ = −aθ dt + sqrt(η) s dW (var ηs²/(2a)),
    # order-2 SME drift −(a + ηa²/2)θ (var ηs²/(a(2+ηa))). weak2 at dt = 0.05 biases the variance by
    # ~6e-4 relative, far below the standard error (~0.45 % at 1e5 particles).
    a, s, eta = 1.0, 1.0, 0.1
    drift = -a * x if order == 1 else -(a + eta * a**2 / 2) * x
    sde = symfp.SDE([x], drift, eta * s**2 / 2)
    assert sde.simulate(10, 0.1, 0.1, init=0.0).n == 10
    cloud = sde.simulate(
        n_particles=100_000, t_end=6.0, dt=0.05, init=0.0, method="weak2", seed=1, device=device
    )
    var, se = cloud.cov(stderr=True)
    assert abs(var[0, 0] - expected) < 3 * se[0, 0]
    assert se[0, 0] < 0.006 * expected  # the test can tell 0.05 from 0.0476 (5 %)
    m, mse = cloud.mean(stderr=True)
    assert abs(m[0]) < 3 * mse[0]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_item3_ou_transient(dtype):
    # Item 3: dX = −aX dt + σ dW, X0 ~ N(1, 0.5²):
    # E X_t = e^{−at}, Var X_t = σ²(1−e^{−2at})/(2a) + e^{−2at}/4.
    # weak2 at dt = 0.02: relative bias O(dt²) ~ 1e-4; compared at 11 output times within 4 batch-means
    # standard errors.
    a, sig = 1.5, 0.8
    sde = symfp.SDE([x], -a * x, sig**2 / 2)
    cloud = sde.simulate(
        n_particles=40_000,
        t_end=2.0,
        dt=0.02,
        init={x: Normal("X0", 1, 0.5)},
        method="weak2",
        seed=3,
        outputs=11,
        dtype=dtype,
    )
    mom = cloud.moments()
    t = mom["t"]
    assert len(t) == 11 and t[-1] == pytest.approx(2.0)
    mean = np.exp(-a * t)
    var = sig**2 * (1 - np.exp(-2 * a * t)) / (2 * a) + np.exp(-2 * a * t) * 0.25
    assert np.all(np.abs(mom["mean"][:, 0] - mean) < 4 * mom["mean_stderr"][:, 0] + 1e-6)
    assert np.all(np.abs(mom["cov"][:, 0, 0] - var) < 4 * mom["cov_stderr"][:, 0, 0] + 1e-6)
    assert cloud.theta.dtype == (np.float32 if dtype == "float32" else np.float64)


def _rotated_gbm(s2: float):
    # u = Q θ with du_i = −u_i dt + s_i u_i dW_i: D(θ) = Qᵀ diag(s_i² u_i²/2) Q is state dependent and
    # not diagonal; s2 = 0 makes it rank one (degenerate). E u1(T)² = u1(0)² e^{(−2 + s1²) T}.
    c, s = sp.Rational(3, 5), sp.Rational(4, 5)
    Q = sp.Matrix([[c, s], [-s, c]])
    u = Q * sp.Matrix([x, y])
    Du = sp.diag(S1**2 * u[0] ** 2 / 2, sp.nsimplify(s2) ** 2 * u[1] ** 2 / 2)
    return symfp.SDE([x, y], -sp.Matrix([x, y]), Q.T * Du * Q), np.array(Q, dtype=float)


@pytest.mark.parametrize("s2", [0.0, 0.7])
def test_weak2_general_diffusion_beats_euler(s2):
    # E u1(1)² = e^{−2+s1²} = e^{−1.75} for s1 = 1/2. With dt = 0.1, Euler's bias is
    # ((1−h)² + h s1²)^{10} − e^{−1.75} = −0.00929; weak2's is O(h²). At 4e4 particles the standard
    # error is ~0.0011: Euler is off by > 4 standard errors, weak2 within 3 (+ a 3e-4 bias allowance).
    # The degenerate case (s2 = 0, D of rank one) must work as well.
    sde, Q = _rotated_gbm(s2)
    assert sde.is_degenerate() == (s2 == 0)
    init = Q.T @ np.array([1.0, 1.0])
    exact = math.exp(-1.75)
    res = {}
    for method in ("euler", "weak2"):
        cloud = sde.simulate(
            n_particles=40_000, t_end=1.0, dt=0.1, init=init, method=method, seed=5, outputs=2
        )
        u1 = cloud.theta @ Q[0]
        m, se = symfp.particles.statistics.mean_stderr(u1[:, None] ** 2)
        res[method] = (m[0] - exact, se[0])
    assert abs(res["weak2"][0]) < 3 * res["weak2"][1] + 3e-4
    assert abs(res["euler"][0]) > 4 * res["euler"][1]
    assert res["euler"][0] == pytest.approx(0.835**10 - exact, abs=4 * res["euler"][1])


def test_seed_reproducible_and_chunking_bounded():
    sde = symfp.SDE([x, y], [-x, -y], [[0.2, 0.1], [0.1, 0.3]])
    a = sde.simulate(1000, 0.5, 0.05, init=[0.0, 1.0], seed=7)
    b = sde.simulate(1000, 0.5, 0.05, init=[0.0, 1.0], seed=7)
    c = sde.simulate(1000, 0.5, 0.05, init=[0.0, 1.0], seed=8)
    np.testing.assert_array_equal(a.theta, b.theta)
    assert not np.allclose(a.theta, c.theta)
    # chunks of 300 draw the same law: compare the covariance with the exact OU covariance
    ch = sde.simulate(20_000, 3.0, 0.01, init=[0.0, 1.0], seed=9, chunk_size=3000, method="weak2")
    cov, se = ch.cov(stderr=True)
    exact = np.array([[0.2, 0.1], [0.1, 0.3]]) * (1 - math.exp(-6.0))  # Var = D(1 − e^{−2t}) for b = −θ
    assert np.all(np.abs(cov - exact) < 4 * se)


def test_antithetic_pairs_cancel_noise_for_linear_dynamics():
    # For linear dynamics the mean of an antithetic pair has no noise: the mean is e^{−t} to round-off.
    sde = symfp.SDE([x], -x, 0.5)
    cloud = sde.simulate(1000, 1.0, 0.01, init=1.0, antithetic=True, method="weak2")
    m, se = cloud.mean(stderr=True)
    h = 0.01
    assert m[0] == pytest.approx((1 - h + h * h / 2) ** 100, rel=1e-12)
    assert se[0] < 1e-12


def test_bad_input_messages():
    sde = symfp.SDE([x, y], [-x, -y], 0.1)
    with pytest.raises(InputError, match="n_particles must be a positive integer"):
        sde.simulate(0, 1.0, 0.1, init=[0, 0])
    with pytest.raises(InputError, match="init point has 1 entries, the state .* has 2"):
        sde.simulate(10, 1.0, 0.1, init=[0.0])
    with pytest.raises(InputError, match="unknown method"):
        sde.simulate(10, 1.0, 0.1, init=[0, 0], method="rk4")
    with pytest.raises(InputError, match="free symbols eta"):
        symfp.SDE([x], -x, sp.Symbol("eta")).simulate(10, 1.0, 0.1, init=0)
    with pytest.raises(InputError, match="not available on this machine.*fallback=True"):
        sde.simulate(10, 1.0, 0.1, init=[0, 0], device="cuda:7")
    cloud = sde.simulate(10, 1.0, 0.1, init=[0, 0], device="cuda:7", fallback=True)
    assert cloud.info["device"] == "cpu" or cloud.info["device"].startswith("cuda")
    with pytest.raises(InputError, match="negative eigenvalue"):
        symfp.SDE([x], -x, -0.1).simulate(10, 1.0, 0.1, init=0)


def test_divergence_is_reported_not_nan():
    sde = symfp.SDE([x, y], [x**3, -y], 0.01)
    with pytest.raises(
        symfp.DivergenceError, match=r"diverged at step \d+ .*100% of the particles.*quantity is x"
    ):
        sde.simulate(100, 10.0, 0.1, init=[2.0, 0.0])


def test_save_load_roundtrip(tmp_path):
    sde = symfp.SDE([x], -x, 0.1)
    cloud = sde.simulate(100, 1.0, 0.1, init=1.0, absorbing=symfp.particles.HalfSpace([1.0], 1.2))
    cloud.save(tmp_path / "c.npz")
    back = symfp.particles.ParticleCloud.load(tmp_path / "c.npz")
    np.testing.assert_array_equal(back.theta, cloud.theta)
    np.testing.assert_array_equal(back.moments()["cov"], cloud.moments()["cov"])
    np.testing.assert_array_equal(back.exit_times().times, cloud.exit_times().times)
    assert back.info["method"] == cloud.info["method"] and back.state == ["x"]


def test_rank_one_noise_factor_is_symbolic_and_exact():
    # linear-network-like D = c(θ)·uuᵀ/2 with u = (w2, w1): σ = √c·u, no eigen-decomposition
    from symfp.particles.diffusion import NoiseFactor, rank_one_factor

    a, b = sp.symbols("a b", real=True)
    c = 1 + (a * b - 1) ** 2
    D = c * sp.Matrix([b, a]) * sp.Matrix([b, a]).T / 2
    cu = rank_one_factor(2 * sp.expand(D), (a, b))
    assert cu is not None
    nf = NoiseFactor(sp.expand(D), (a, b))
    assert nf.kind == "rank1"
    th = torch.tensor([[0.3, -1.2], [2.0, 0.5], [0.0, 0.0]], dtype=torch.float64)
    ref = torch.stack([torch.tensor(np.array(2 * D.subs({a: p, b: q}), dtype=float)) for p, q in th.tolist()])
    assert torch.allclose(nf.two_d(th), ref, atol=1e-14)
    sig = nf.sigma(th)
    assert torch.allclose(sig @ sig.transpose(1, 2), ref, atol=1e-14)
    assert rank_one_factor(sp.Matrix([[1 + a**2, a], [a, 2]]), (a, b)) is None  # full rank
