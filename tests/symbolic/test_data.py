"""symfp.symbolic.data: Dataset and Population expectations against brute force / closed forms."""

import math

import numpy as np
import pytest
import sympy as sp
import sympy.stats as st

from symfp.errors import DataError
from symfp.symbolic.data import Dataset, Population
from symfp.symbolic.datamean import DataMean

w1, w2, x, y = sp.symbols("w1 w2 x y", real=True)
LOSS = (w1 * w2 * x - y) ** 2 / 2 + w1**2 * x**3 / 4


def _brute_mean(expr, cols, point):
    f = sp.lambdify([w1, w2, *cols], expr, "numpy")
    return np.mean(f(*point, *cols.values()))


def test_integer_data_exact_against_sum():
    xs, ys = [1, -2, 3, 0, 5, 2], [2, 1, -1, 4, 0, 3]
    d = Dataset({x: xs, y: ys})
    got = d.expect(LOSS)
    brute = sum(LOSS.subs({x: a, y: b}) for a, b in zip(xs, ys, strict=True)) / 6
    assert sp.expand(got - brute) == 0  # exact rationals
    g = sp.Matrix([sp.diff(LOSS, w1), sp.diff(LOSS, w2)])
    cov = d.covariance(g)
    gs = [g.subs({x: a, y: b}) for a, b in zip(xs, ys, strict=True)]
    mean = sum(gs, sp.zeros(2, 1)) / 6
    brute_cov = sum(((gi - mean) * (gi - mean).T for gi in gs), sp.zeros(2, 2)) / 6
    assert (cov - brute_cov).applyfunc(sp.expand) == sp.zeros(2, 2)


def test_float_data_against_numpy_and_size_is_flat_in_n():
    rng = np.random.default_rng(0)
    sizes = {}
    for n in (10, 10_000):
        cols = {x: rng.normal(size=n), y: rng.normal(size=n)}
        d = Dataset(cols)
        e = d.expect(LOSS)
        sizes[n] = sp.count_ops(e)
        pt = (0.7, -1.3)
        ref = _brute_mean(LOSS, cols, pt)
        # float64 sums of O(1) terms: relative error ~ 1e-15 * condition; 1e-10 is generous
        assert abs(float(e.subs({w1: pt[0], w2: pt[1]})) - ref) < 1e-10 * max(1, abs(ref))
        g = sp.Matrix([sp.diff(LOSS, w1), sp.diff(LOSS, w2)])
        cov = d.covariance(g)
        gf = sp.lambdify([w1, w2, x, y], list(g), "numpy")
        samples = np.array(gf(*pt, cols[x], cols[y]))
        ref_cov = np.cov(samples, bias=True)
        got = np.array(cov.subs({w1: pt[0], w2: pt[1]}), dtype=float)
        assert np.allclose(got, ref_cov, rtol=1e-9, atol=1e-12)
    assert sizes[10] == sizes[10_000]  # moments, not sums: the expression does not grow with N


def test_non_polynomial_is_a_data_mean_without_size_limit():
    xs = [0.5, -1.0, 2.0]
    d = Dataset({x: xs})
    e = d.expect(sp.log(1 + sp.exp(-w1 * x)))
    assert isinstance(e, DataMean)
    ref = np.mean(np.log1p(np.exp(-0.3 * np.array(xs))))
    assert abs(float(e.subs(w1, 0.3)) - ref) < 1e-14
    big = np.linspace(-1, 1, 200_000)  # far above the old max_exact_sum = 500
    e = Dataset({x: big}).expect(sp.exp(w1 * x))
    assert sp.count_ops(e) < 10
    assert abs(float(e.subs(w1, 1)) - np.mean(np.exp(big))) < 1e-13


def test_float_moments_are_exact_rationals_of_the_float_sums():
    xs = np.array([0.1, 0.7, -0.3])
    m = Dataset({x: xs}).expect(x)
    assert isinstance(m, sp.Rational) and float(m) == math.fsum(xs) / 3


def test_same_column_twice_is_refused():
    xx = sp.Symbol("x")  # no assumptions: a different Symbol with the same name as the real x
    with pytest.raises(DataError, match="column x is given twice"):
        Dataset({"x": [1.0, 2.0], xx: [3.0, 4.0]})
    with pytest.raises(DataError, match="column x is given twice"):
        Dataset({x: [1.0, 2.0], "x": [3.0, 4.0]})


def test_population_exact():
    p = Population({x: st.Normal("X", 0, 2), y: st.Bernoulli("Y", sp.Rational(1, 3))})
    assert sp.expand(p.expect((w1 * x - y) ** 2) - (4 * w1**2 + sp.Rational(1, 3))) == 0
    # Var(w1 x^2) = w1^2 (E x^4 - (E x^2)^2) = w1^2 (3*16 - 16) = 32 w1^2 ; Cov(x^2, x) = 0
    cov = p.covariance(sp.Matrix([w1 * x**2, x]))
    assert cov == sp.Matrix([[32 * w1**2, 0], [0, 4]])
    # non-polynomial: E exp(w X) = exp(2 w^2) for X ~ N(0, 2)
    assert sp.simplify(p.expect(sp.exp(w1 * x)) - sp.exp(2 * w1**2)) == 0


@pytest.mark.parametrize(
    "cols, msg",
    [
        ({x: [1, 2, 3], y: [1, 2]}, r"unequal lengths \{'x': 3, 'y': 2\}"),
        ({x: [1, np.nan, 3]}, r"column x has 1 non-finite value.*index 1"),
        ({x: [1, 2, np.inf]}, r"column x has 1 non-finite.*index 2"),
        ({x: [[1, 2], [3, 4]]}, r"column x has shape \(2, 2\); give a 1-D array"),
        ({x: []}, "column x is empty"),
        ({x: ["a", "b"]}, "column x is not an array of numbers"),
        ({}, "non-empty mapping"),
        ({3: [1.0]}, "key 3 is not a SymPy Symbol"),
    ],
)
def test_dataset_bad_input(cols, msg):
    with pytest.raises(DataError, match=msg):
        Dataset(cols)


def test_population_bad_input():
    with pytest.raises(DataError, match=r"entry for x is 3, not a random variable.*Normal\('x', 0, 1\)"):
        Population({x: 3})
    with pytest.raises(DataError, match="entry for y is y"):
        Population({y: y})


def test_population_parameters_are_distribution_parameters_only():
    s, m = sp.symbols("s m", positive=True)
    # the Population's own random variables are not parameters; their distribution parameters are
    assert Population({x: st.Normal("X", 0, s)}).parameters == {s}
    assert Population({x: 2 * st.Normal("X", 0, s) + m}).parameters == {s, m}
    assert Population({x: st.Normal("X", 0, 2), y: st.Bernoulli("Y", sp.Rational(1, 3))}).parameters == set()


def test_population_without_closed_form_uses_gauss_hermite_with_an_error_estimate():
    from scipy.integrate import quad

    p = Population({x: st.Normal("X", 0.5, 2)})
    loss = sp.log(1 + sp.exp(-w1 * x))
    e = p.expect(loss)  # sympy.stats has no closed form: a data-mean over the quadrature nodes
    assert isinstance(e, DataMean) and e.dataset.weights is not None
    for w in (0.3, -1.7):
        ref = quad(lambda t, w=w: np.logaddexp(0, -w * t) * np.exp(-((t - 0.5) ** 2) / 8)
                   / np.sqrt(8 * np.pi), -np.inf, np.inf, epsabs=1e-13)[0]
        # the stated error (40 vs 80 points) bounds the true one: |E_40 - E| <= 1.5 |E_40 - E_80|
        est = p.quadrature_error(loss, {w1: w})
        assert abs(float(e.subs(w1, w)) - ref) <= 1.5 * est + 1e-13
        assert est < 1e-5  # softplus is analytic in a strip: geometric convergence in the points
    # a polynomial expectation keeps the exact moments
    assert p.expect(x**2) == 4.25  # sympy.stats, exactly: 0.5^2 + 2^2
    # the covariance of a non-polynomial gradient: against the quadrature of the centred product
    g = sp.Matrix([sp.diff(loss, w1)])
    cov = float(p.covariance(g)[0, 0].subs(w1, 0.3))
    def gf(w, t):  # d/dw log(1 + e^{-wt}) = -t / (1 + e^{wt}), without overflow
        return -t * np.exp(-np.logaddexp(0, w * t))

    dens = lambda t: np.exp(-((t - 0.5) ** 2) / 8) / np.sqrt(8 * np.pi)  # noqa: E731
    m = quad(lambda t: gf(0.3, t) * dens(t), -np.inf, np.inf, epsabs=1e-13)[0]
    v = quad(lambda t: (gf(0.3, t) - m) ** 2 * dens(t), -np.inf, np.inf, epsabs=1e-13)[0]
    assert cov == pytest.approx(v, rel=1e-9)


def test_weighted_dataset_moments():
    d = Dataset({x: [0.0, 1.0, 3.0]}, weights=[1, 2, 1])
    assert float(d.expect(x)) == pytest.approx((0 + 2 + 3) / 4, rel=1e-15)
    assert float(d.expect(sp.exp(x))) == pytest.approx((1 + 2 * np.e + np.exp(3)) / 4, rel=1e-14)
    with pytest.raises(DataError, match="weights must be 3 positive"):
        Dataset({x: [0.0, 1.0, 3.0]}, weights=[1, -2, 1])
