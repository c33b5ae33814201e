"""Lowering of data-mean nodes to torch (particles): against numpy, the expanded sums and one
Euler–Maruyama step of the logistic SME."""

import numpy as np
import pytest
import sympy as sp
import torch

import symfp
import symfp.particles.lambdify as lam
from symfp.particles.diffusion import NoiseFactor
from symfp.symbolic.data import Dataset
from symfp.symbolic.datamean import DataCov, expand_data_nodes, lambdify_datamean

w1, w2, x, y = sp.symbols("w1 w2 x y", real=True)
LOSS = sp.log(1 + sp.exp(-y * (w1 * x + w2)))


@pytest.mark.parametrize("native", ["1", "0"])  # the C reduction on CPU, and the torch one
def test_torch_reduction_matches_numpy_and_the_expanded_sum(monkeypatch, native):
    monkeypatch.setenv("SYMFP_NATIVE", native)
    d = Dataset({x: [0.5, -1.25, 2.0, 0.75, -0.3, 1.1, -2.2], y: [1, -1, 1, 1, -1, -1, 1]})
    f = d.expect(LOSS)
    expr = sp.Matrix([sp.diff(f, w1) * f + w2, DataCov(sp.diff(LOSS, w1), sp.diff(LOSS, w2), d)])
    monkeypatch.setattr(lam, "DATA_CHUNK_ELEMENTS", 10)  # one particle per chunk: the chunk loop
    g = lam.torch_function(expr, (w1, w2), "test")
    th = torch.tensor([[0.3, -0.2], [1.5, 0.7], [-2.0, 1.0]], dtype=torch.float64)
    got = g(*th.unbind(-1)).numpy()
    ref = np.array([[float(e) for e in expand_data_nodes(expr).subs({w1: a, w2: b})] for a, b in th.tolist()])
    np.testing.assert_allclose(got, ref, rtol=1e-13)
    np.testing.assert_allclose(lambdify_datamean([w1, w2], expr)(th[:, 0].numpy(), th[:, 1].numpy())[:, 0].T,
                               ref, rtol=1e-13)


@pytest.mark.parametrize("native", ["1", "0"])
def test_torch_reduction_is_stable_where_exp_overflows(monkeypatch, native):
    monkeypatch.setenv("SYMFP_NATIVE", native)
    d = Dataset({x: [800.0, -900.0, 1.0], y: [1.0, 1.0, -1.0]})
    gexpr = sp.diff(d.expect(LOSS), w1)
    g = lam.torch_function(gexpr, (w1, w2), "test")
    val = g(torch.tensor([1.0], dtype=torch.float64), torch.tensor([0.0], dtype=torch.float64))
    xs, ys = np.array([800.0, -900.0, 1.0]), np.array([1.0, 1.0, -1.0])
    ref = np.mean(-ys * xs * np.exp(-np.logaddexp(0, ys * xs)))
    assert float(val) == pytest.approx(ref, rel=1e-14)


def _logistic(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    Y = np.where(X[:, 0] + 0.5 * rng.normal(size=n) > 0, 1.0, -1.0)
    x1, x2 = sp.symbols("x1 x2", real=True)
    loss = sp.log(1 + sp.exp(-y * (w1 * x1 + w2 * x2)))
    return symfp.SGD(loss=loss, params=[w1, w2], data=Dataset({x1: X[:, 0], x2: X[:, 1], y: Y}),
                     lr=sp.Rational(1, 10), batch_size=4), X, Y


def test_noise_factor_of_a_data_covariance_is_full_and_exact():
    model, X, Y = _logistic()
    sde = model.sme(order=1)
    nf = NoiseFactor(sde.diffusion, sde.state)
    assert nf.kind == "full"
    th = np.array([0.4, -0.3])
    s = 1 / (1 + np.exp(Y * (X @ th)))
    G = -(Y * s)[:, None] * X
    two_d = 0.1 / 4 * np.cov(G.T, bias=True)  # 2D = eta Sigma_1 / B
    got = nf.two_d(torch.tensor(th[None], dtype=torch.float64))[0].numpy()
    np.testing.assert_allclose(got, two_d, rtol=1e-12)
    sig = nf.sigma(torch.tensor(th[None], dtype=torch.float64))[0].numpy()
    np.testing.assert_allclose(sig @ sig.T, two_d, rtol=1e-10)


def test_one_euler_maruyama_step_of_the_logistic_sme():
    model, X, Y = _logistic()
    sde = model.sme(order=1)
    th0 = np.array([0.4, -0.3])
    n, dt = 20000, 0.1
    cloud = sde.simulate(n_particles=n, t_end=dt, dt=dt, init=tuple(th0), seed=3)
    s = 1 / (1 + np.exp(Y * (X @ th0)))
    G = -(Y * s)[:, None] * X
    mean = th0 - G.mean(axis=0) * dt
    cov = 2 * (0.1 / (2 * 4)) * np.cov(G.T, bias=True) * dt
    se = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(cloud.mean() - mean) < 4 * se)  # 4 standard errors
    # sample covariance: relative standard error sqrt(2/n) = 1% per variance; 5% is 5 of them
    np.testing.assert_allclose(np.diag(cloud.cov()), np.diag(cov), rtol=0.05)


@pytest.mark.parametrize("replacement", [True, False])
def test_one_exact_sgd_step_on_the_logistic_loss_matches_numpy(replacement):
    r"""One exact-SGD step θ₁ = θ₀ − η ĝ (B = 8 of N = 300 samples, through the hoisted data features
    f = (x₁y, x₂y)): E θ₁ = θ₀ − η ḡ and Cov θ₁ = η² Cov_i[g_i]/B (times (N−B)/(N−1) without
    replacement), against numpy, within Monte Carlo error."""
    rng = np.random.default_rng(5)
    N, B, eta, n = 300, 8, 0.5, 40000
    X = rng.normal(size=(N, 2))
    Y = np.where(X[:, 0] + 0.5 * rng.normal(size=N) > 0, 1.0, -1.0)
    x1, x2 = sp.symbols("x1 x2", real=True)
    loss = sp.log(1 + sp.exp(-y * (w1 * x1 + w2 * x2)))
    model = symfp.SGD(loss, [w1, w2], Dataset({x1: X[:, 0], x2: X[:, 1], y: Y}), lr=sp.Rational(1, 2),
                      batch_size=B, replacement=replacement)
    th0 = np.array([0.3, -0.2])
    cloud = model.simulate(n_particles=n, steps=1, init=tuple(th0), seed=11)
    G = -(Y / (1 + np.exp(Y * (X @ th0))))[:, None] * X  # per-sample gradients
    mean = th0 - eta * G.mean(axis=0)
    var = eta**2 * G.var(axis=0) / B * (1.0 if replacement else (N - B) / (N - 1))
    assert np.all(np.abs(cloud.mean() - mean) < 4 * np.sqrt(var / n))  # 4 standard errors
    # the sample variance of n draws: relative standard error ≈ sqrt(2/n) = 0.7%; 4% is > 5 of them
    np.testing.assert_allclose(np.diag(cloud.cov()), var, rtol=0.04)
    assert cloud.theta.shape == (n, 2) and np.all(np.isfinite(cloud.theta))
