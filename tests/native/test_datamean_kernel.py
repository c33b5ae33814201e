r"""The C reduction of data-means and data-covariances (``symfp.native.datamean``).

Checked against the chunked numpy path (``SYMFP_NATIVE=0``) and against direct numpy formulas of the
logistic SME (drift −∇f, diffusion (η/2B)·Cov_i[∇ℓ_i]), on plain and weighted data sets; overflowing
points fall back to the careful path, which names the sample; without a compiler the numpy path runs.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.errors import InputError
from symfp.native import datamean as native_dm
from symfp.native.build import NativeError, compiler
from symfp.native.datamean import reduction_source
from symfp.symbolic import datamean as dm

pytestmark = pytest.mark.skipif(compiler() is None, reason="no C compiler (CI installs gcc)")
w1, w2, x, x1, x2, lab = sp.symbols("w1 w2 x x1 x2 y", real=True)


@pytest.fixture(autouse=True)
def _fresh(monkeypatch, tmp_path):
    monkeypatch.setenv("SYMFP_CACHE_DIR", str(tmp_path / "kernels"))
    for c in (dm._MEMO, dm._JOINT_CACHE, native_dm._CACHE, native_dm.ERRORS):
        c.clear()
    yield
    for c in (dm._MEMO, dm._JOINT_CACHE, native_dm._CACHE):
        c.clear()


def _values(expr, pts, monkeypatch, native: bool):
    monkeypatch.setenv("SYMFP_NATIVE", "1" if native else "0")
    dm._MEMO.clear()
    return dm.lambdify_datamean([w1, w2], expr)(*pts)


def _logistic(N=400, weights=None):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(N, 2))
    Y = np.where(X[:, 0] - 0.3 * X[:, 1] + 0.5 * rng.normal(size=N) > 0, 1.0, -1.0)
    loss = sp.log(1 + sp.exp(-lab * (w1 * x1 + w2 * x2)))
    data = symfp.Dataset({x1: X[:, 0], x2: X[:, 1], lab: Y}, weights=weights)
    return symfp.SGD(loss, [w1, w2], data, lr=sp.Rational(1, 4), batch_size=8), X, Y


@pytest.mark.parametrize("weighted", [False, True])
def test_logistic_sme_coefficients_native_numpy_and_closed_form(monkeypatch, weighted):
    N = 400
    wts = np.random.default_rng(9).uniform(0.5, 1.5, size=N) if weighted else None
    model, X, Y = _logistic(N, wts)
    sde = model.sme(order=1)
    expr = sp.Matrix([*sde.drift, *sde.diffusion])
    pts = np.random.default_rng(4).normal(size=(2, 300))
    nat = _values(expr, pts, monkeypatch, True)
    assert native_dm._CACHE and all(v is not None for v in native_dm._CACHE.values()), native_dm.ERRORS
    ref = _values(expr, pts, monkeypatch, False)
    np.testing.assert_allclose(nat, ref, rtol=1e-12, atol=1e-15)
    # independent: g_i = −y_i x_i σ(−y_i θ·x_i), drift −Σ w_i g_i, D = (η/2B) Σ w_i (g_i − ḡ)(g_i − ḡ)ᵀ
    w = np.full(N, 1 / N) if wts is None else wts / wts.sum()
    for p in (0, 77, 299):
        th = pts[:, p]
        g = -(Y / (1 + np.exp(Y * (X @ th))))[:, None] * X
        gbar = w @ g
        D = (0.25 / 16) * ((g - gbar).T * w) @ (g - gbar)
        np.testing.assert_allclose(nat[:2, 0, p] if nat.ndim == 3 else nat[:2, p], -gbar, rtol=1e-12)
        np.testing.assert_allclose(nat[2:, 0, p] if nat.ndim == 3 else nat[2:, p], D.ravel(), rtol=1e-11)


def test_tanh_network_covariances(monkeypatch):
    rng = np.random.default_rng(1)
    xs = rng.normal(size=250)
    ys = np.tanh(0.7 * xs) + 0.1 * rng.normal(size=250)
    model = symfp.SGD((w2 * sp.tanh(w1 * x) - lab) ** 2 / 2, [w1, w2], symfp.Dataset({x: xs, lab: ys}),
                      lr=sp.Rational(1, 10), batch_size=4)
    sde = model.sme(order=2)
    expr = sp.Matrix([*sde.drift, *sde.diffusion])
    pts = rng.normal(size=(2, 120))
    np.testing.assert_allclose(_values(expr, pts, monkeypatch, True), _values(expr, pts, monkeypatch, False),
                               rtol=1e-11, atol=1e-14)


def test_overflowing_points_take_the_careful_path(monkeypatch):
    # e^{-2wx} overflows at x = -900: the kernel returns inf there, the careful path names the sample;
    # the stable softplus gradient stays finite in C (σ form) and equals the mpmath-backed value
    d = symfp.Dataset({x: [800.0, -900.0, 1.0]})
    monkeypatch.setenv("SYMFP_NATIVE", "1")
    g = sp.diff(d.expect(sp.log(1 + sp.exp(-w1 * x))), w1)
    f = dm.lambdify_datamean([w1], g)
    sig = np.exp(-np.logaddexp(0, np.array([800.0, -900.0, 1.0])))
    assert f(np.array([1.0]))[0] == pytest.approx(np.mean(-np.array([800.0, -900.0, 1.0]) * sig), rel=1e-13)
    with pytest.raises(InputError, match=r"sample index 1 \(x = -900.0\).*not a finite real number"):
        dm.lambdify_datamean([w1], d.expect(sp.exp(-w1 * x) ** 2))(np.array([1.0, 0.5]))


def test_without_a_compiler_or_a_c_form_numpy_runs(monkeypatch):
    model, X, Y = _logistic(50)
    expr = sp.Matrix(model.sme(order=1).diffusion)
    pts = np.random.default_rng(4).normal(size=(2, 20))
    ref = _values(expr, pts, monkeypatch, False)
    monkeypatch.setenv("CC", "/nonexistent/cc")
    np.testing.assert_allclose(_values(expr, pts, monkeypatch, True), ref, rtol=1e-14)
    assert any("no C compiler" in e for e in native_dm.ERRORS.values())

    class Opaque(sp.Function):
        pass

    with pytest.raises(NativeError, match="no C form"):
        reduction_source(args=[w1], features=[x], inners=[Opaque(w1 * x)], pairs=[])
