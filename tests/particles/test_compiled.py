"""The torch.compile'd SDE step (``compile=True``) against the eager reference and the closed form.

The compiled function receives the same random numbers as the eager step (drawn outside with the
run's generator), so a seeded compiled run equals the eager one up to rounding; its moments are also
checked against the exact moments of the Euler recursion within Monte Carlo error.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.errors import InputError
from symfp.particles import cache
from symfp.particles.compiled import AUTO_MIN_WORK, want_compile
from symfp.particles.lambdify import torch_function

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
x, y = sp.symbols("x y", real=True)


def _ou(a=1.0, eps=0.05):
    return symfp.SDE([x, y], [-a * x, -a * y + x / 2], eps)


def test_want_compile_rule(monkeypatch):
    import sys

    monkeypatch.delitem(sys.modules, "dolfinx", raising=False)
    assert want_compile(True, 1, False, "t") and not want_compile(False, 1e12, True, "t")
    assert not want_compile("auto", AUTO_MIN_WORK / 2, False, "t")
    assert want_compile("auto", AUTO_MIN_WORK, False, "t") and want_compile("auto", 1, True, "t")
    with pytest.raises(InputError, match="compile"):
        want_compile("yes", 1, False, "t")


def test_pure_lambdify_matches():
    f = torch_function(sp.Matrix([x * y, 2, sp.sin(x)]), (x, y), "t")
    g = torch_function(sp.Matrix([x * y, 2, sp.sin(x)]), (x, y), "t", pure=True)
    a, b = torch.randn(7, dtype=torch.float64), torch.randn(7, dtype=torch.float64)
    assert torch.equal(f(a, b), g(a, b))


@pytest.mark.parametrize("method", ["euler", "weak2"])
def test_compiled_equals_eager_and_moments(method):
    # Euler on dθ = Aθ dt + √(2ε) dW, A = [[-1, 0], [1/2, -1]]: θ_{k+1} = (I + hA)θ_k + √(2εh) z, so
    # m_{k+1} = M m_k and C_{k+1} = M C_k Mᵀ + 2εh G Gᵀ exactly (M = I + hA, G = I); weak2 (Heun
    # drift, b(Ῡ) with Ῡ = θ + bh + σΔW) has M = I + hA + h²A²/2 and G = I + hA/2.
    sde = _ou()
    kw = dict(n_particles=40_000, t_end=1.0, dt=0.05, init=[1.0, -0.5], method=method, seed=7, outputs=2)
    eager = sde.simulate(**kw, compile=False)
    comp = sde.simulate(**kw, compile=True)
    assert comp.info["compiled"] and not eager.info["compiled"]
    assert comp.info["compile_time"] is not None
    np.testing.assert_allclose(comp.theta, eager.theta, rtol=0, atol=1e-12)
    A, h, eps = np.array([[-1.0, 0.0], [0.5, -1.0]]), 0.05, 0.05
    M = np.eye(2) + h * A + (h * h * A @ A / 2 if method == "weak2" else 0)
    G = np.eye(2) + (h * A / 2 if method == "weak2" else 0)
    m, C = np.array([1.0, -0.5]), np.zeros((2, 2))
    for _ in range(20):
        m, C = M @ m, M @ C @ M.T + 2 * eps * h * G @ G.T
    mean, se = comp.mean(stderr=True)
    assert np.all(np.abs(mean - m) < 4 * se)
    cov, cse = comp.cov(stderr=True)
    assert np.all(np.abs(cov - C) < 4 * cse)


def test_kernels_stay_apart_under_global_dlopen_flags():
    # ``import dolfinx`` leaves the interpreter's dlopen flags at RTLD_NOW | RTLD_GLOBAL; inductor
    # kernels loaded then each export ``kernel`` globally and later bindings called the first one
    # (weak2 reached 1e35 in 10 steps, or the heap was corrupted). Reproduce the flags, compile two
    # different steps one after the other, and check both against the eager reference.
    import os
    import sys

    cache.clear()
    flags = sys.getdlopenflags()
    sys.setdlopenflags(os.RTLD_NOW | os.RTLD_GLOBAL)
    try:
        sde = symfp.SDE([x, y], [-x, -y - x], [[0.05, 0.01], [0.01, 0.05]])
        kw = dict(n_particles=1000, t_end=0.5, dt=0.01, init=[1.0, 1.0], outputs=2, seed=1, threads=1)
        for method in ("euler", "weak2"):
            comp = sde.simulate(**kw, method=method, compile=True)
            assert comp.info["compiled"], comp.info.get("compile_error")
            eager = sde.simulate(**kw, method=method, compile=False)
            np.testing.assert_allclose(comp.theta, eager.theta, rtol=0, atol=1e-12)
        assert sys.getdlopenflags() == os.RTLD_NOW | os.RTLD_GLOBAL  # the caller's flags are restored
    finally:
        sys.setdlopenflags(flags)
        cache.clear()

def test_compile_failure_falls_back(monkeypatch):
    cache.clear()

    def broken(*a, **k):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    sde = symfp.SDE([x], [-2 * x], 0.1)
    kw = dict(n_particles=1000, t_end=0.2, dt=0.01, init=0.3, seed=3, outputs=2)
    with pytest.warns(RuntimeWarning, match="no compiler here"):
        c = sde.simulate(**kw, compile=True)
    assert not c.info["compiled"] and "no compiler here" in c.info["compile_error"]
    np.testing.assert_array_equal(c.theta, sde.simulate(**kw, compile=False).theta)
    cache.clear()


# ---------------------------------------------------------------------------------------------- exact SGD
w1, w2, x1, x2, lab = sp.symbols("w1 w2 x1 x2 y", real=True)


def _logistic_sgd(replacement=True, N=300, B=8):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(N, 2))
    Y = np.where(X[:, 0] + 0.5 * rng.normal(size=N) > 0, 1.0, -1.0)
    loss = sp.log(1 + sp.exp(-lab * (w1 * x1 + w2 * x2)))
    data = symfp.Dataset({x1: X[:, 0], x2: X[:, 1], lab: Y})
    return symfp.SGD(loss, [w1, w2], data, lr=sp.Rational(1, 2), batch_size=B, replacement=replacement), X, Y


def test_fused_exact_sgd_step_equals_eager_and_has_the_law(monkeypatch):
    r"""The inductor-compiled exact-SGD step (gather of the hoisted features x₁y, x₂y at the indices,
    sigmoid of the margin, batch mean and update in one kernel, on 2 threads) against the eager step on
    1 thread with the same seed: the same indices (each slab's own stream), so the same particles up to
    rounding; and one step's law against numpy: E θ₁ = θ₀ − η ḡ within 4 standard errors and
    Var θ₁ = η²Var_i[g_i]/B within 4 % (the relative standard error of a sample variance of 40000 draws
    is ≈ 0.7 %). The C kernel (``tests/particles/test_native.py``) is switched off, so the inductor
    path (GPUs, no-C fallback) runs."""
    monkeypatch.setenv("SYMFP_NATIVE", "0")
    cache.clear()
    model, X, Y = _logistic_sgd()
    th0, eta, B, n = np.array([0.3, -0.2]), 0.5, 8, 40_000  # > one slab (32768 rows): two slabs' streams
    kw = dict(n_particles=n, steps=1, init=tuple(th0), seed=11, outputs=2)
    comp = model.simulate(**kw, compile=True, threads=2)
    assert comp.info["compiled"], comp.info.get("compile_error")
    eager = model.simulate(**kw, compile=False, threads=1)
    assert not eager.info["compiled"]
    np.testing.assert_allclose(comp.theta, eager.theta, rtol=0, atol=1e-12)
    G = -(Y / (1 + np.exp(Y * (X @ th0))))[:, None] * X
    mean, var = th0 - eta * G.mean(axis=0), eta**2 * G.var(axis=0) / B
    assert np.all(np.abs(comp.mean() - mean) < 4 * np.sqrt(var / n))
    np.testing.assert_allclose(np.diag(comp.cov()), var, rtol=0.04)
    # several steps: still the eager run (the compiled kernel is reused: no new compilation)
    kw.update(steps=6)
    np.testing.assert_allclose(model.simulate(**kw, compile=True, threads=2).theta,
                               model.simulate(**kw, compile=False, threads=1).theta, rtol=0, atol=1e-11)


def test_fused_polynomial_sgd_equals_eager(monkeypatch):
    # a polynomial loss takes the data-monomial path: the fused kernel averages the gathered monomials
    # (the columns ξ², ξ) and applies the update C(θ)·m̄. Slabs of 1000 rows, compiled calls of at
    # most 2000: two groups of two slabs each, each slab with its own index stream
    from symfp.particles import runner, streams

    monkeypatch.setattr(streams, "ROWS", 1000)
    monkeypatch.setattr(runner, "FUSED_ROWS", 2000)
    monkeypatch.setenv("SYMFP_NATIVE", "0")
    cache.clear()
    w, xi = sp.symbols("w xi", real=True)
    data = symfp.Dataset({xi: np.random.default_rng(2).normal(size=500)})
    model = symfp.SGD(loss=(w**2 * xi - 1) ** 2 / 4, params=[w], data=data, lr=0.05, batch_size=16)
    kw = dict(n_particles=4000, steps=8, init=[0.7], seed=4, outputs=3, threads=2)
    comp = model.simulate(**kw, compile=True)
    assert comp.info["compiled"], comp.info.get("compile_error")
    eager = model.simulate(**kw, compile=False)
    np.testing.assert_allclose(comp.theta, eager.theta, rtol=0, atol=1e-12)
    np.testing.assert_allclose(comp.trajectory["mean"], eager.trajectory["mean"], rtol=0, atol=1e-12)


def test_fused_step_only_where_indices_are_the_only_randomness(monkeypatch):
    # without replacement (Floyd's rule), antithetic pairs or a schedule the eager step runs (no compile)
    monkeypatch.setenv("SYMFP_NATIVE", "0")
    cache.clear()
    model, _, _ = _logistic_sgd(replacement=False)
    kw = dict(n_particles=200, steps=2, init=(0.3, -0.2), seed=1, outputs=2, compile=True)
    assert not model.simulate(**kw).info["compiled"]
    model, _, _ = _logistic_sgd()
    assert not model.simulate(**kw, antithetic=True).info["compiled"]
    assert not model.simulate(**kw, lr_schedule=[0.5, 0.25]).info["compiled"]
    with pytest.raises(InputError, match="compile"):
        model.simulate(n_particles=10, steps=1, init=(0.0, 0.0), compile="yes")


def test_long_simulator_options_are_keyword_only():
    from symfp.particles.recursion import simulate_recursion
    from symfp.particles.sde import simulate_sde

    sde = symfp.SDE([x], [-x], 0.1)
    with pytest.raises(TypeError, match="positional"):
        simulate_sde(sde, 10, 0.1, 0.1, 0.0, "euler")
    model, _, _ = _logistic_sgd()
    with pytest.raises(TypeError, match="positional"):
        simulate_recursion(model, 10, 1, (0.0, 0.0), 3)
