"""symfp.symbolic.datamean: data-mean nodes against the expanded N-term sums, and the logistic SME
against a direct numpy computation of Li–Tai–E's drift and diffusion."""

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.errors import InputError
from symfp.symbolic.data import Dataset
from symfp.symbolic.datamean import DataCov, DataMean, expand_data_nodes, lambdify_datamean

w1, w2, x, y = sp.symbols("w1 w2 x y", real=True)
LOGISTIC = sp.log(1 + sp.exp(-y * (w1 * x + w2)))


def _small():
    # N = 7 float samples: their exact rational images make the expanded sums exact
    return Dataset({x: [0.5, -1.25, 2.0, 0.75, -0.3, 1.1, -2.2], y: [1, -1, 1, 1, -1, -1, 1]})


def test_derivative_passes_under_the_mean_exactly():
    d = _small()
    m = d.expect(LOGISTIC)
    assert isinstance(m, DataMean)
    full = m.expanded()
    for s in (w1, w2):
        got = sp.diff(m, s)
        assert len(got.atoms(DataMean)) == 1 and sp.count_ops(got) < 30  # one node, not N terms
        # exact: the derivative of the mean is the mean of the derivatives, as rationals/exp terms
        assert sp.simplify(expand_data_nodes(got) - sp.diff(full, s)) == 0
    assert sp.diff(m, x) == 0  # a data symbol is bound under the mean
    assert x not in m.free_symbols and {w1, w2} <= m.free_symbols


def test_linearity_and_products_of_means_stay_distinct():
    d = _small()
    e = sp.exp(w1 * x)
    m = d.expect(3 * w2 * e + w2**2 + sp.exp(x) * w1)
    # data-free terms leave the mean; a product's data-free factors come out; a sum stays one node
    assert m == w2**2 + DataMean(3 * w2 * e + sp.exp(x) * w1, d)
    assert DataMean(-6 * w2 * e, d) == -6 * w2 * DataMean(e, d)
    assert DataMean(-2 * e - 4 * x, d) == -2 * DataMean(e + 2 * x, d)  # content and sign out
    at = {w1: 0.3, w2: -1.1}
    assert float(m.subs(at)) == pytest.approx(float(expand_data_nodes(m).subs(at)), rel=1e-14)
    prod = DataMean(e, d) ** 2
    mean_sq = DataMean(e**2, d)
    assert prod != mean_sq
    # Jensen: mean(e^2) - mean(e)^2 = Cov(e, e) > 0, the same number evaluated both ways
    at = {w1: 0.4}
    var = DataCov(e, e, d)
    assert float((mean_sq - prod).subs(at)) == pytest.approx(float(var.subs(at)), rel=1e-13)
    assert float(var.subs(at)) > 0


def test_covariance_is_bilinear_symmetric_and_matches_the_expanded_sum():
    d = _small()
    a, b = sp.exp(w1 * x) * y, x * sp.tanh(w2 * x)
    assert DataCov(a, b, d) == DataCov(b, a, d)
    assert DataCov(2 * a + w1 + 5, b, d) == 2 * DataCov(a, b, d)  # data-free terms drop out
    assert DataCov(-3 * w1 * a, b, d) == -3 * w1 * DataCov(a, b, d)
    c = DataCov(a, b, d)
    at = {w1: 0.3, w2: -0.7}
    assert float(c.subs(at)) == pytest.approx(float(c.expanded().subs(at)), rel=1e-13)
    dc = sp.diff(c, w1)
    assert float(dc.subs(at)) == pytest.approx(float(sp.diff(c.expanded(), w1).subs(at)), rel=1e-12)


def test_centred_covariance_is_stable_where_raw_moments_cancel():
    # Var(x) for x = 1e8 + small: raw moments cancel catastrophically, centred ones do not
    rng = np.random.default_rng(1)
    xs = 1e8 + rng.normal(size=1000)
    d = Dataset({x: xs})
    v = DataCov(sp.exp(w1 * 0) * x + w1 * sp.cos(x * 0), x, d)  # forced through the node path
    assert float(v.subs(w1, 1.0)) == pytest.approx(np.var(xs), rel=1e-12)


def test_latex_names_the_sum_and_the_samples():
    d = _small()
    tex = sp.latex(d.expect(LOGISTIC))
    assert r"\frac{1}{N}\sum_{i=1}^{N}" in tex and "{x}_{i}" in tex and "{y}_{i}" in tex
    assert r"\operatorname{Cov}_{i}" in sp.latex(DataCov(x * w1, sp.exp(w1 * x), d))


def test_lowering_matches_the_expanded_sum_at_many_points():
    d = _small()
    expr = d.expect(LOGISTIC) * sp.diff(d.expect(LOGISTIC), w1) + DataCov(sp.exp(w1 * x), x * y, d)
    ref = sp.lambdify([w1, w2], expand_data_nodes(expr), "numpy")
    f = lambdify_datamean([w1, w2], expr, chunk_elements=5)  # tiny chunks: many passes
    g1, g2 = np.meshgrid(np.linspace(-1, 1, 5), np.linspace(-2, 0.5, 3))
    assert np.allclose(f(g1, g2), ref(g1, g2), rtol=1e-13, atol=0)
    assert float(sp.N(expr.subs({w1: 0.2, w2: 0.1}))) == pytest.approx(float(ref(0.2, 0.1)), rel=1e-13)


def test_overflow_is_evaluated_stably_or_named():
    d = Dataset({x: [800.0, -900.0, 1.0]})
    sp_loss = sp.log(1 + sp.exp(-w1 * x))
    # softplus form: log(1 + e^u) = logaddexp(0, u), no overflow at u = 900
    assert float(d.expect(sp_loss).subs(w1, 1.0)) == pytest.approx((0 + 900 + np.log1p(np.exp(-1))) / 3,
                                                                  rel=1e-14)
    # its gradient -x e^{-wx}/(1 + e^{-wx}) overflows in float64 as inf/inf; mpmath gives the number
    g = sp.diff(d.expect(sp_loss), w1)
    sig = np.exp(-np.logaddexp(0, np.array([800.0, -900.0, 1.0])))  # 1/(1 + e^{x}) without overflow
    assert float(g.subs(w1, 1.0)) == pytest.approx(np.mean(-np.array([800.0, -900.0, 1.0]) * sig), rel=1e-13)
    with pytest.raises(InputError, match=r"sample index 1 \(x = -900.0\).*not a finite real number"):
        float(d.expect(sp.exp(-w1 * x) ** 2).subs(w1, 1.0))


def test_quadratic_loss_over_float_data_gives_constant_D_and_a_gaussian():
    # the round-off bug: (w - x)^2/2 over six floats without replacement gave D = c - 5.55e-18 w
    w = sp.Symbol("w", real=True)
    xs = np.random.default_rng(0).normal(size=6) * 0.3 + 0.1
    model = symfp.SGD(loss=(w - x) ** 2 / 2, params=[w], data=Dataset({x: xs}), lr=0.1, batch_size=2,
                      replacement=False)
    for order in (1, 2):
        sde = model.sme(order=order)
        D = sde.diffusion[0]
        assert D.free_symbols == set()
        factor = (6 - 2) / (2 * 5)  # (N - B)/(B (N - 1))
        assert float(D) == pytest.approx(0.1 / 2 * factor * np.var(xs), rel=1e-14)
        rho = sde.fokker_planck().stationary_density()
        logq = sp.Poly(sp.expand(sp.log(rho), force=True), w)
        assert logq.degree() == 2  # a Gaussian
        a = 1 + (0.1 / 2 if order == 2 else 0)  # drift -(1 + eta/2)(w - mean) at order 2
        assert float(logq.coeff_monomial(w**2)) == pytest.approx(-a / (2 * float(D)), rel=1e-12)


def _logistic_model(n, eta, B, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    Y = np.where(X[:, 0] + 0.5 * rng.normal(size=n) > 0, 1.0, -1.0)
    x1, x2 = sp.symbols("x1 x2", real=True)
    loss = sp.log(1 + sp.exp(-y * (w1 * x1 + w2 * x2)))
    data = Dataset({x1: X[:, 0], x2: X[:, 1], y: Y})
    return symfp.SGD(loss=loss, params=[w1, w2], data=data, lr=eta, batch_size=B), X, Y


def _direct(theta, X, Y, eta, B):
    z = Y * (X @ theta)
    s = 1 / (1 + np.exp(z))  # sigma(-z)
    G = -(Y * s)[:, None] * X  # per-sample gradients (N, 2)
    g = G.mean(axis=0)
    H = ((s * (1 - s))[:, None, None] * X[:, :, None] * X[:, None, :]).mean(axis=0)
    drift2 = -g - eta / 4 * 2 * H @ g  # -grad f - (eta/4) grad |grad f|^2
    cov = np.cov(G.T, bias=True)
    return -g, drift2, eta / (2 * B) * cov


def test_logistic_sme_against_direct_numpy():
    eta, B = 0.5, 8
    model, X, Y = _logistic_model(60, sp.Rational(1, 2), B)
    s1, s2 = model.sme(order=1), model.sme(order=2)
    for th in ([0.3, -0.2], [1.5, 0.7], [-2.0, 1.0]):
        at = {w1: th[0], w2: th[1]}
        b1, b2, D = _direct(np.array(th), X, Y, eta, B)
        got1 = np.array(sp.N(s1.drift.subs(at)), dtype=float).ravel()
        got2 = np.array(sp.N(s2.drift.subs(at)), dtype=float).ravel()
        np.testing.assert_allclose(got1, b1, rtol=1e-12)
        np.testing.assert_allclose(got2, b2, rtol=1e-12)
        for sde in (s1, s2):
            gotD = np.array(sde.diffusion.subs(at).evalf(), dtype=float)
            np.testing.assert_allclose(gotD, D, rtol=1e-12)


def test_fokker_planck_of_a_data_mean_sme_decides_numerically():
    # (its cost, once minutes of symbolic determinants, is measured in benchmarks/bench_datamean.py)
    from symfp.symbolic.fokker_planck import _is_singular

    model, X, Y = _logistic_model(400, sp.Rational(1, 2), 8)
    sde = model.sme(order=2)
    assert _is_singular(sp.Matrix(sde.diffusion)) is False
    fp = sde.fokker_planck()
    # the curl of D^{-1}(b - div D) is evaluated numerically; no symbolic determinant or simplify
    assert fp.stationary_density() is None
    assert "not a gradient" in fp.stationary_reason or "no closed form" in fp.stationary_reason
    # a singular data-mean D (both rows equal: one weight direction only) is recognised
    Dsing = sp.Matrix([[1, 1], [1, 1]]) * sde.diffusion[0, 0]
    assert _is_singular(Dsing) is True


def test_one_dimensional_data_mean_sme_has_no_closed_form_density_but_says_why():
    w = sp.Symbol("w", real=True)
    d = Dataset({x: [0.5, -1.0, 2.0, 1.5]})
    model = symfp.SGD(loss=sp.log(1 + sp.exp(-w * x)) + w**2 / 2, params=[w], data=d, lr=0.1, batch_size=1)
    fp = model.sme(order=1).fokker_planck()
    assert fp.stationary_density() is None and "data-means" in fp.stationary_reason


def test_data_mean_nodes_are_public_in_the_symfp_namespace():
    assert symfp.DataMean is DataMean and symfp.DataCov is DataCov
    assert {"DataMean", "DataCov"} <= set(dir(symfp))
    d = _small()
    m = symfp.DataMean(LOGISTIC, d)
    at = {w1: 0.3, w2: -0.2}
    assert float(m.subs(at)) == pytest.approx(float(m.expanded().subs(at)), rel=1e-13)


def test_fast_derivative_of_inner_expressions_equals_sympys():
    from symfp.symbolic.datamean import _fast_diff

    rng = np.random.default_rng(3)
    exprs = [LOGISTIC, (w2 * sp.tanh(w1 * x) - y) ** 2 / 2, sp.sqrt(1 + w1**2 * x**2) * sp.exp(-w2 * y),
             sp.Abs(w1 - x) + sp.Heaviside(w2) * w2, sp.log(1 + sp.exp(w1 * x)) ** 3 / (1 + w2**2)]
    for e in exprs:
        for order in ((w1,), (w1, w2), (w2, w1, w1)):
            fast, ref = e, e
            for s in order:
                fast, ref = _fast_diff(fast, s), sp.diff(ref, s)
            for _ in range(3):
                at = {w1: rng.uniform(-2, 2), w2: rng.uniform(0.1, 2), x: rng.uniform(-2, 2),
                      y: rng.choice([-1.0, 1.0])}
                want = complex(ref.subs(at).evalf())
                assert complex(fast.subs(at).evalf()) == pytest.approx(want, rel=1e-12, abs=1e-14)
    assert _fast_diff(w1 * x, w2) == 0 and _fast_diff(w1, w1) == 1
