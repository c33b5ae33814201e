"""symfp.symbolic.moments: one-step moments against brute-force enumeration and closed forms."""

import itertools

import pytest
import sympy as sp
import sympy.stats as st

import symfp
from symfp.errors import InputError
from symfp.symbolic.moments import expect_inputs
from symfp.symbolic.recursion import Recursion

w1, w2, x, y = sp.symbols("w1 w2 x y", real=True)
eta = sp.Symbol("eta", positive=True)
XS, YS = [1, -2, 3, 0, 2, -1], [2, 1, -1, 4, 0, 3]  # N = 6, integers: exact rational moments
LOSS = (w1 * w2 * x - y) ** 2 / 2 + w1 * x**2


def _brute_batch_cov(g, batches):
    """Exact mean and covariance of the batch-mean gradient over equally likely batches."""
    means = [sum((g.subs({x: XS[i], y: YS[i]}) for i in b), sp.zeros(2, 1)) / len(b) for b in batches]
    mu = sum(means, sp.zeros(2, 1)) / len(means)
    cov = sum(((m - mu) * (m - mu).T for m in means), sp.zeros(2, 2)) / len(means)
    return mu, cov


@pytest.mark.parametrize("B", [2, 3])
@pytest.mark.parametrize("replacement", [False, True])
def test_minibatch_covariance_against_enumeration(B, replacement):
    model = symfp.SGD(LOSS, [w1, w2], symfp.Dataset({x: XS, y: YS}), lr=eta, batch_size=B,
                      replacement=replacement)
    mom = model.moments()
    if replacement:
        batches = list(itertools.product(range(6), repeat=B))  # ordered draws, all equally likely
    else:
        batches = list(itertools.combinations(range(6), B))
    mu, cov = _brute_batch_cov(model.grad_sample, batches)
    assert (mom.mean + eta * mu).applyfunc(sp.expand) == sp.zeros(2, 1)
    assert (mom.cov - eta**2 * cov).applyfunc(sp.expand) == sp.zeros(2, 2)
    # and the factor itself: (N-B)/(B(N-1)) without replacement, 1/B with
    spec = model.recursion.randomness[model.batch_symbols]
    assert spec.factor == (sp.Rational(6 - B, B * 5) if not replacement else sp.Rational(1, B))


def test_symbolic_batch_size_population():
    s = sp.Symbol("s", positive=True)
    B = sp.Symbol("B", positive=True, integer=True)
    model = symfp.SGD(w1**2 / 2 + x * w1, [w1], symfp.Population({x: st.Normal("X", 0, s)}), lr=eta,
                      batch_size=B)
    mom = model.moments()
    assert sp.simplify(mom.mean[0] + eta * w1) == 0
    assert sp.simplify(mom.cov[0] - eta**2 * s**2 / B) == 0


def test_stationary_variance_of_exact_sgd_from_moments():
    """Reference case 2: Var_inf = eta s^2 / (a (2 - eta a)) from the linear recursion's moments."""
    th = sp.Symbol("theta", real=True)
    a, s, v = sp.symbols("a s v", positive=True)
    model = symfp.SGD(a * th**2 / 2 + x * th, [th], symfp.Population({x: st.Normal("X", 0, s)}), lr=eta,
                      constants=[a])
    mom = model.moments()
    # E[theta'^2 | theta] = theta^2 + 2 theta E[Delta] + E[Delta^2], a quadratic in theta
    second = sp.Poly(sp.expand(th**2 + 2 * th * mom.mean[0] + mom.second[0, 0]), th)
    mean_map = sp.Poly(sp.expand(th + mom.mean[0]), th)
    assert mean_map.coeff_monomial(1) == 0  # E theta' = (1 - eta a) theta: stationary mean 0
    # stationarity with E theta = 0: v = c2 v + c0
    c2, c1, c0 = (second.coeff_monomial(th**k) for k in (2, 1, 0))
    assert c1 == 0
    var = sp.solve(sp.Eq(v, c2 * v + c0), v)[0]
    assert sp.simplify(var - eta * s**2 / (a * (2 - eta * a))) == 0
    assert abs(float(var.subs({a: 1, s: 1, eta: sp.Rational(1, 10)})) - 0.0526316) < 5e-8


def test_momentum_and_noise_moments():
    beta, delta, lam = sp.symbols("beta delta lambda", positive=True)
    model = symfp.SGD(w1**2 / 2 + x * w1, [w1], symfp.Population({x: st.Normal("X", 0, 1)}), lr=eta,
                      momentum=beta, noise=delta, weight_decay=lam)
    mom = model.moments()
    v = model.velocity[0]
    g = (1 + lam) * w1
    assert sp.expand(mom.mean[1] - ((beta - 1) * v - eta * g)) == 0
    assert sp.expand(mom.mean[0] - eta * (beta * v - eta * g)) == 0
    # Var(v') = eta^2 Var(ghat) + 2 eta delta ; Cov(theta', v') = eta Var(v')
    assert sp.expand(mom.cov[1, 1] - (eta**2 + 2 * eta * delta)) == 0
    assert sp.expand(mom.cov[0, 1] - eta * (eta**2 + 2 * eta * delta)) == 0


def test_expect_inputs_errors_and_rv():
    th, z = sp.symbols("theta z", real=True)
    rec = Recursion([th], th + eta * z**2, {z: st.Normal("Z", 0, 2)}, lr=eta)
    assert sp.expand(rec.moments().mean[0] - 4 * eta) == 0
    model = symfp.SGD(w1**2 / 2 + x * w1, [w1], symfp.Population({x: st.Normal("X", 0, 1)}), lr=eta)
    g = model.batch_symbols[0]
    with pytest.raises(InputError, match="degree 3 in the mini-batch means"):
        expect_inputs(g**3, model.recursion.randomness)
    with pytest.raises(InputError, match="not polynomial in the random inputs ghat_w1"):
        expect_inputs(sp.exp(g), model.recursion.randomness)
