r"""The exact-SGD C kernel (``symfp.particles.native``) against numpy, the eager step and closed forms.

The kernel draws the mini-batch indices itself, with numpy's own algorithm for the slab's SFC64
stream, so a seeded native run sees the eager run's indices and equals it up to rounding; its law is
also checked on its own against the exact moments of SGD on a quadratic loss.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.particles import cache
from symfp.particles.native import NativeError, NativeStep, compiler, kernel_source

pytestmark = [pytest.mark.torch,
              pytest.mark.skipif(compiler() is None, reason="no C compiler (CI installs gcc)")]
torch = pytest.importorskip("torch")
w, w1, w2, x, x1, x2, lab = sp.symbols("w w1 w2 x x1 x2 y", real=True)


@pytest.fixture(autouse=True)
def _fresh(monkeypatch, tmp_path):
    monkeypatch.setenv("SYMFP_CACHE_DIR", str(tmp_path / "kernels"))
    cache.clear()
    yield
    cache.clear()


def _logistic(N=300, B=8, **kw):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(N, 2))
    Y = np.where(X[:, 0] + 0.5 * rng.normal(size=N) > 0, 1.0, -1.0)
    loss = sp.log(1 + sp.exp(-lab * (w1 * x1 + w2 * x2)))
    data = symfp.Dataset({x1: X[:, 0], x2: X[:, 1], lab: Y})
    return symfp.SGD(loss, [w1, w2], data, lr=sp.Rational(1, 2), batch_size=B, **kw), X, Y


def _draw_kernel() -> NativeStep:
    f = sp.Symbol("f0")
    return NativeStep(kernel_source(state=[w], features=[f], per_sample=[f], means=[sp.Symbol("g")],
                                    update=[w - sp.Symbol("g")], lr=None, dtype=torch.float64),
                      torch.float64)


@pytest.mark.parametrize("N", [1, 2, 3, 1000, 100_000, 3 * 2**29 + 1, 2**31 - 1])
def test_draws_are_numpys_bounded_integers(N):
    # N = 3·2^29 + 1 rejects ≈ 1/4 of the 32-bit draws (Lemire's threshold), 2^31 − 1 ≈ 1/2; odd counts
    # leave SFC64's 32-bit half buffer full between calls: the kernel must carry it as numpy does
    k = _draw_kernel()
    a = np.random.Generator(np.random.SFC64(np.random.SeedSequence([7, N])))
    b = np.random.Generator(np.random.SFC64(np.random.SeedSequence([7, N])))
    for count in (1, 7, 4096, 5001, 2):
        np.testing.assert_array_equal(k.draw(a, N, count), b.integers(0, N, size=count, dtype=np.int32))
        # interleave: numpy continues the stream the kernel advanced
        np.testing.assert_array_equal(a.integers(0, N, size=3, dtype=np.int32),
                                      b.integers(0, N, size=3, dtype=np.int32))
    sa, sb = a.bit_generator.state, b.bit_generator.state
    np.testing.assert_array_equal(sa["state"]["state"], sb["state"]["state"])
    assert (sa["has_uint32"], sa["uinteger"]) == (sb["has_uint32"], sb["uinteger"])


def test_native_logistic_equals_eager_on_any_thread_count():
    # 40 000 particles = two slabs (32 768 rows each at most), each with its own stream
    model, X, Y = _logistic()
    kw = dict(n_particles=40_000, steps=5, init=(0.3, -0.2), seed=11, outputs=3)
    nat = model.simulate(**kw, compile=True, threads=2)
    assert nat.info["compiled"] and nat.info["kernel"] == "c", nat.info.get("compile_error")
    eager = model.simulate(**kw, compile=False, threads=1)
    assert not eager.info["compiled"] and "kernel" not in eager.info
    np.testing.assert_allclose(nat.theta, eager.theta, rtol=0, atol=1e-12)
    np.testing.assert_allclose(nat.trajectory["mean"], eager.trajectory["mean"], rtol=0, atol=1e-12)
    one = model.simulate(**kw, compile=True, threads=1)
    assert torch.equal(torch.as_tensor(one.theta), torch.as_tensor(nat.theta))  # threads do not matter


def test_native_one_step_law_logistic():
    r"""One step from θ₀: E θ₁ = θ₀ − η ḡ within 4 standard errors, Var θ₁ = η² Var_i[g_i]/B within 4 %
    (the relative standard error of a sample variance of 40 000 draws is ≈ 0.7 %)."""
    model, X, Y = _logistic()
    th0, eta, B, n = np.array([0.3, -0.2]), 0.5, 8, 40_000
    c = model.simulate(n_particles=n, steps=1, init=tuple(th0), seed=3, outputs=2, compile=True)
    assert c.info["kernel"] == "c"
    G = -(Y / (1 + np.exp(Y * (X @ th0))))[:, None] * X
    mean, var = th0 - eta * G.mean(axis=0), eta**2 * G.var(axis=0) / B
    assert np.all(np.abs(c.mean() - mean) < 4 * np.sqrt(var / n))
    np.testing.assert_allclose(np.diag(c.cov()), var, rtol=0.04)


def test_native_quadratic_moments_closed_form():
    r"""f_i = (w − x_i)²/2, w_{k+1} = (1−η) w_k + η x̄_B: E w_k = x̄ + (1−η)^k (w_0 − x̄) and
    Var w_{k+1} = (1−η)² Var w_k + η² σ²/B (σ² the data's population variance), exactly."""
    data = np.random.default_rng(1).normal(1.0, 2.0, size=200)
    eta, B, K, n, w0 = 0.2, 4, 12, 60_000, 3.0
    model = symfp.SGD((w - x) ** 2 / 2, [w], symfp.Dataset({x: data}), lr=eta, batch_size=B)
    c = model.simulate(n_particles=n, steps=K, init=[w0], seed=5, outputs=2, compile=True)
    assert c.info["kernel"] == "c"
    mean = data.mean() + (1 - eta) ** K * (w0 - data.mean())
    var = sum((1 - eta) ** (2 * j) for j in range(K)) * eta**2 * data.var() / B
    assert abs(c.mean()[0] - mean) < 4 * np.sqrt(var / n)
    assert abs(c.cov()[0, 0] / var - 1) < 4 * np.sqrt(2 / n)


def test_native_tanh_network_momentum_and_float32():
    # a 2-weight tanh network with heavy-ball momentum (state (w1, w2, v1, v2)); float64 to 1e-12, and the
    # float32 kernel against the float32 eager step to float32 rounding
    rng = np.random.default_rng(2)
    X = rng.normal(size=120)
    Y = np.tanh(0.8 * X) + 0.1 * rng.normal(size=120)
    loss = (w2 * sp.tanh(w1 * x) - lab) ** 2 / 2
    model = symfp.SGD(loss, [w1, w2], symfp.Dataset({x: X, lab: Y}), lr=0.1, batch_size=6, momentum=0.5)
    kw = dict(n_particles=5000, steps=8, init=(0.5, 0.5, 0.0, 0.0), seed=2, outputs=2)
    nat = model.simulate(**kw, compile=True)
    assert nat.info["kernel"] == "c", nat.info.get("compile_error")
    np.testing.assert_allclose(nat.theta, model.simulate(**kw, compile=False).theta, rtol=0, atol=1e-12)
    n32 = model.simulate(**kw, compile=True, dtype="float32")
    e32 = model.simulate(**kw, compile=False, dtype="float32")
    assert n32.info["kernel"] == "c" and n32.theta.dtype == np.float32
    np.testing.assert_allclose(n32.theta, e32.theta, rtol=0, atol=2e-5)
    assert np.abs(n32.theta - nat.theta).max() > 1e-9  # really computed in float32


def test_native_schedules_equal_eager():
    # lr and batch-size schedules are arguments of the kernel (η_k and B_k per call)
    model, _, _ = _logistic()
    kw = dict(n_particles=3000, steps=4, init=(0.3, -0.2), seed=8, outputs=2,
              lr_schedule=[0.5, 0.4, 0.3, 0.2], batch_schedule=[2, 4, 8, 16])
    nat = model.simulate(**kw, compile=True)
    assert nat.info["kernel"] == "c"
    np.testing.assert_allclose(nat.theta, model.simulate(**kw, compile=False).theta, rtol=0, atol=1e-12)


def test_without_a_compiler_the_torch_step_runs_with_one_warning(monkeypatch):
    monkeypatch.setenv("CC", "/nonexistent/cc")
    model, _, _ = _logistic()
    kw = dict(n_particles=500, steps=3, init=(0.3, -0.2), seed=1, outputs=2)
    with pytest.warns(RuntimeWarning, match="C kernel .* not available .*no C compiler") as rec:
        c = model.simulate(**kw, compile=True)
    assert len([r for r in rec if "kernel" in str(r.message) or "compile" in str(r.message)]) == 1
    assert not c.info["compiled"] and "no C compiler" in c.info["compile_error"]
    np.testing.assert_array_equal(c.theta, model.simulate(**kw, compile=False).theta)


def test_not_taken_where_it_does_not_apply():
    # without replacement (Floyd's rule), antithetic pairs or "auto" on a short run: the torch step
    model, _, _ = _logistic(replacement=False)
    kw = dict(n_particles=200, steps=2, init=(0.3, -0.2), seed=1, outputs=2)
    assert "kernel" not in model.simulate(**kw, compile=True).info
    model, _, _ = _logistic()
    assert "kernel" not in model.simulate(**kw, compile=True, antithetic=True).info
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "kernel" not in model.simulate(**kw, compile="auto").info


def test_kernel_source_refuses_what_has_no_c_form():
    class Opaque(sp.Function):
        pass

    f, g = sp.Symbol("f"), sp.Symbol("g")
    with pytest.raises(NativeError, match="no C form"):
        kernel_source(state=[w], features=[f], per_sample=[Opaque(w * f)], means=[g], update=[w - g],
                      lr=None, dtype=torch.float64)
    with pytest.raises(NativeError, match="symbols"):
        kernel_source(state=[w], features=[f], per_sample=[w * f * x], means=[g], update=[w - g],
                      lr=None, dtype=torch.float64)
    with pytest.raises(NativeError, match="float64 and float32"):
        kernel_source(state=[w], features=[f], per_sample=[f], means=[g], update=[w - g], lr=None,
                      dtype=torch.float16)
