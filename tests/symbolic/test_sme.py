"""symfp.symbolic.sme: stochastic modified equations from moment matching vs Li–Tai–E and closed forms."""

import itertools

import pytest
import sympy as sp
import sympy.stats as st

import symfp
from symfp.errors import InputError
from symfp.symbolic.recursion import Recursion
from symfp.symbolic.sme import sde_step_moments

w1, w2, x, y, th = sp.symbols("w1 w2 x y theta", real=True)
eta, a, s = sp.symbols("eta a s", positive=True)


def _grad(f, params):
    return sp.Matrix([sp.diff(f, p) for p in params])


def _lte(f, sigma_b, params):
    """Li–Tai–E drifts and diffusion, computed independently of symfp."""
    g = _grad(f, params)
    b1 = -g
    b2 = -_grad(f + eta / 4 * (g.T * g)[0], params)
    return b1, b2, eta / 2 * sigma_b


def _zero(m):
    return sp.Matrix(m).applyfunc(sp.simplify) == sp.zeros(*sp.Matrix(m).shape)


def test_reference_case_2_one_d():
    model = symfp.SGD(a * th**2 / 2 + x * th, [th], symfp.Population({x: st.Normal("X", 0, s)}), lr=eta,
                      constants=[a])
    b1, b2, D = _lte(a * th**2 / 2, sp.Matrix([[s**2]]), [th])
    for order, b in ((1, b1), (2, b2)):
        sde = model.sme(order)
        assert _zero(sde.drift - b) and _zero(sde.diffusion - D)
        assert sde.origin == f"order-{order} stochastic modified equation of SGD" and sde.source is model
        # OU stationary variance D / k with drift -k theta
        k = -sp.diff(sde.drift[0], th)
        var = sde.diffusion[0, 0] / k
        ref = eta * s**2 / (2 * a) if order == 1 else eta * s**2 / (a * (2 + eta * a))
        assert sp.simplify(var - ref) == 0
        num = float(var.subs({a: 1, s: 1, eta: sp.Rational(1, 10)}))
        assert abs(num - (0.05 if order == 1 else 0.0476190)) < 5e-8


def test_order_2_non_quadratic_2d_population():
    loss = w1**4 / 4 + w1 * w2**2 + x * w1 * w2 + y * w2**3 / 3
    pop = symfp.Population({x: st.Normal("X", 0, s), y: st.Uniform("Y", -1, 3)})
    model = symfp.SGD(loss, [w1, w2], pop, lr=eta, constants=[])
    # f and Sigma_1 independently with sympy.stats on the random-variable expression
    lr = loss.xreplace({x: pop.variables[x], y: pop.variables[y]})
    f = sp.simplify(st.E(lr))
    gr = _grad(lr, [w1, w2])
    sig = sp.Matrix(2, 2, lambda i, j: sp.simplify(st.covariance(gr[i], gr[j])))
    b1, b2, D = _lte(f, sig, [w1, w2])
    sde1, sde2 = model.sme(1), model.sme(2)
    assert _zero(sde1.drift - b1) and _zero(sde1.diffusion - D)
    assert _zero(sde2.drift - b2) and _zero(sde2.diffusion - D)
    # consistency: the SDE's one-step moments equal the recursion's through eta^2
    m1, m2 = sde_step_moments(model.state, sde2.drift, sde2.diffusion, eta, 2)
    mom = model.moments()
    assert _zero(m1 - mom.mean)
    low = (m2 - mom.second).applyfunc(lambda e: sp.expand(e).coeff(eta, 1) + sp.expand(e).coeff(eta, 2))
    assert _zero(low)


def test_dataset_without_replacement_symbolic_lr_numeric_b():
    xs, ys = [1, -2, 3, 0, 2, -1], [2, 1, -1, 4, 0, 3]
    loss = (w1 * w2 * x - y) ** 2 / 2
    model = symfp.SGD(loss, [w1, w2], symfp.Dataset({x: xs, y: ys}), lr=eta, batch_size=3, replacement=False)
    sde = model.sme(2)
    g = _grad(loss, [w1, w2])
    gs = [g.subs({x: p, y: q}) for p, q in zip(xs, ys, strict=True)]
    mu = sum(gs, sp.zeros(2, 1)) / 6
    sig1 = sum(((gi - mu) * (gi - mu).T for gi in gs), sp.zeros(2, 2)) / 6
    f = sum((loss.subs({x: p, y: q}) for p, q in zip(xs, ys, strict=True))) / 6
    # the finite-population factor (N-B)/(B(N-1)) = 3/15, via enumeration of all 20 batches
    bm = [sum((gs[i] for i in b), sp.zeros(2, 1)) / 3 for b in itertools.combinations(range(6), 3)]
    sig_b = sum(((m - mu) * (m - mu).T for m in bm), sp.zeros(2, 2)) / 20
    assert _zero(sig_b - sp.Rational(3, 15) * sig1)
    _, b2, D = _lte(f, sig_b, [w1, w2])
    assert _zero(sde.drift - b2) and _zero(sde.diffusion - D)


def test_numeric_lr_substitutes_back():
    model = symfp.SGD(a * th**2 / 2 + x * th, [th], symfp.Population({x: st.Normal("X", 0, 1)}),
                      lr=sp.Rational(1, 10), constants=[a])
    sde = model.sme(2)
    assert _zero(sde.drift - sp.Matrix([-a * th - a**2 * th / 20]))
    assert sde.diffusion == sp.Matrix([[sp.Rational(1, 20)]])


def test_momentum_underdamped_form():
    beta, lam, delta = sp.symbols("beta lambda delta", positive=True)
    loss = w1**4 / 4 - w1**2 / 2 + w2**2 / 2 + x * w1 + y * w2
    pop = symfp.Population({x: st.Normal("X", 0, s), y: st.Normal("Y", 0, 1)})
    model = symfp.SGD(loss, [w1, w2], pop, lr=eta, momentum=beta, weight_decay=lam, noise=delta)
    sde = model.sme(1)
    v = sp.Matrix(model.velocity)
    th2 = sp.Matrix([w1, w2])
    gamma = (1 - beta) / eta
    gradf = _grad(w1**4 / 4 - w1**2 / 2 + w2**2 / 2, [w1, w2])
    expected_b = sp.Matrix.vstack(v, -(gamma * v + gradf + lam * th2))
    assert _zero(sde.drift - expected_b)
    sig = sp.diag(s**2, 1)
    expected_d = sp.diag(sp.zeros(2, 2), eta / 2 * sig + delta * sp.eye(2))
    assert _zero(sde.diffusion - expected_d)
    assert sde.is_degenerate()
    assert any("gamma" in text for text in sde.assumptions)


def test_noisy_sgd():
    """Noise injection: order 1 D = delta + eta Sigma/2; order 2 stationary variance agrees with the exact
    recursion's 2 delta/(a(2 - eta a)) + O(eta^2) (gradient noise off), order 1 only to O(eta)."""
    delta = sp.Symbol("delta", positive=True)
    model = symfp.SGD(a * th**2 / 2 + x * th, [th], symfp.Population({x: st.Normal("X", 0, s)}), lr=eta,
                      noise=delta, constants=[a])
    sde1 = model.sme(1)
    assert _zero(sde1.drift + sp.Matrix([a * th]))
    assert _zero(sde1.diffusion - sp.Matrix([[delta + eta * s**2 / 2]]))
    quiet = model.subs({s: 0})
    exact = 2 * delta / (a * (2 - eta * a))
    for order, good in ((1, 1), (2, 2)):
        sde = quiet.sme(order)
        var = sde.diffusion[0, 0] / (-sp.diff(sde.drift[0], th))
        err = sp.series(var - exact, eta, 0, good + 1).removeO()
        assert sp.expand(err).coeff(eta, 0) == 0 and (good == 1 or sp.expand(err).coeff(eta, 1) == 0)
        assert good == 2 or sp.simplify(sp.expand(err).coeff(eta, 1)) != 0


def test_generic_recursion_sme_and_errors():
    z = sp.Symbol("z", real=True)
    rec = Recursion([th], th - eta * a * th + eta * z, {z: st.Normal("Z", 0, s)}, lr=eta)
    sde1, sde2 = rec.sme(1), rec.sme(2)
    assert _zero(sde1.drift + sp.Matrix([a * th])) and _zero(sde1.diffusion - sp.Matrix([[eta * s**2 / 2]]))
    assert _zero(sde2.drift + sp.Matrix([a * th + eta * a**2 * th / 2]))
    bad = Recursion([th], th / 2 + eta * z, {z: st.Normal("Z", 0, 1)}, lr=eta)
    with pytest.raises(InputError, match=r"E\[Delta\] does not vanish as eta -> 0"):
        bad.sme(1)
    with pytest.raises(InputError, match="must be a symbol appearing in the update"):
        Recursion([th], th - th / 10, {}).sme(1)


@pytest.mark.parametrize("order", [0, 3, "2", 1.5, True])
def test_order_not_supported(order):
    model = symfp.SGD(th**2 / 2, [th], None, lr=eta)
    with pytest.raises(InputError, match=r"order = .* is not supported; use order=1 or order=2"):
        model.sme(order)
