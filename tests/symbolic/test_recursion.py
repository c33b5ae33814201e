"""symfp.symbolic.recursion: the exact SGD step, its attributes, substitution and bad-input messages."""

import numpy as np
import pytest
import sympy as sp
import sympy.stats as st

import symfp
from symfp.errors import DataError, ExpressionError, InputError
from symfp.symbolic.recursion import BatchMean, Recursion, StandardNormal

w1, w2, x, y, c = sp.symbols("w1 w2 x y c", real=True)
eta, lam, delta, beta = sp.symbols("eta lambda delta beta", positive=True)
LOSS = (w1 * w2 * x - y) ** 2 / 2
DATA = symfp.Dataset({x: [1.0, 2.0, -1.0, 0.5], y: [0.0, 1.0, 2.0, -1.0]})


def test_plain_step_formula_and_attributes():
    m = symfp.SGD(LOSS, [w1, w2], DATA, lr=eta, batch_size=2, weight_decay=lam, noise=delta)
    th = sp.Matrix([w1, w2])
    gh, ze = sp.Matrix(m.batch_symbols), sp.Matrix(m.noise_symbols)
    expected = th - eta * (gh + lam * th) + sp.sqrt(2 * eta * delta) * ze
    assert (m.recursion.update - expected).applyfunc(sp.simplify) == sp.zeros(2, 1)
    assert m.state == (w1, w2) and m.params == (w1, w2) and m.data is DATA
    assert m.grad_sample == sp.Matrix([sp.diff(LOSS, w1), sp.diff(LOSS, w2)])
    spec = m.recursion.randomness[m.batch_symbols]
    assert isinstance(spec, BatchMean) and spec.expr == m.grad_sample and spec.batch_size == 2
    assert spec.replacement is True and spec.data is DATA
    assert isinstance(m.recursion.randomness[m.noise_symbols], StandardNormal)
    assert sp.latex(m.batch_symbols[0]) == r"\hat{g}_{w1}"


def test_momentum_step_formula():
    m = symfp.SGD(LOSS, [w1, w2], DATA, lr=eta, momentum=beta, weight_decay=lam)
    assert len(m.state) == 4 and m.state[:2] == (w1, w2)
    th, v, gh = sp.Matrix([w1, w2]), sp.Matrix(m.velocity), sp.Matrix(m.batch_symbols)
    v_new = beta * v - eta * (gh + lam * th)
    expected = sp.Matrix.vstack(th + eta * v_new, v_new)
    assert (m.recursion.update - expected).applyfunc(sp.expand) == sp.zeros(4, 1)
    assert not m.noise_symbols  # no noise input without noise


def test_loss_from_string_and_callable_and_subs():
    a = symfp.SGD("(w1*w2*x - y)**2/2 + c*w1**2", ["w1", "w2"], DATA, lr=eta, constants=["c"])
    b = symfp.SGD(lambda w1, w2, x, y, c: (w1 * w2 * x - y) ** 2 / 2 + c * w1**2, [w1, w2], DATA,
                  lr=eta, constants=[c])
    assert sp.expand(a.loss - b.loss) == 0 and a.params == (w1, w2)
    num = b.subs({eta: sp.Rational(1, 10), "c": 2})
    assert num.lr == sp.Rational(1, 10) and not num.parameters
    assert sp.expand(num.loss - (LOSS + 2 * w1**2)) == 0
    with pytest.raises(InputError, match="cannot substitute for parameters"):
        b.subs({w1: 1})


def test_generic_recursion():
    th, z, s = sp.symbols("theta z s", real=True)
    rec = Recursion([th], th - eta * th + eta * z, {z: st.Normal("Z", 0, s)}, lr=eta)
    assert rec.inputs == (z,) and rec.parameters == {eta, s}
    assert rec.subs({s: 2}).parameters == {eta}
    with pytest.raises(InputError, match="not a sympy.stats random variable"):
        Recursion([th], th + z, {z: 3})
    with pytest.raises(InputError, match="both state and random inputs"):
        Recursion([th], th, {th: st.Normal("Z", 0, 1)})


@pytest.mark.parametrize(
    "kwargs, err, msg",
    [
        (dict(loss=x * y), ExpressionError, r"does not contain any parameter \(w1, w2\)"),
        (dict(loss=LOSS + c * w1), ExpressionError, r"symbol\(s\) c that are neither.*constants=\(\.\.\.\)"),
        (dict(lr=0), InputError, "lr = 0 must be > 0"),
        (dict(lr=-0.1), InputError, "lr = -0.1 must be > 0"),
        (dict(batch_size=0), InputError, "batch_size = 0 must be > 0"),
        (dict(batch_size=5), InputError, r"batch_size = 5 exceeds the number of samples N = 4"),
        (dict(batch_size=1.5), InputError, "batch_size = 1.5 must be a whole number"),
        (dict(momentum=1), InputError, r"momentum = 1 must lie in \[0, 1\)"),
        (dict(noise=-1), InputError, "noise = -1 must be >= 0"),
        (dict(lr="a+"), InputError, "lr = 'a\\+' is not a number"),
        (dict(data={x: [1, 2]}), DataError, "data must be a symfp.Dataset"),
        (dict(params=[]), InputError, "params is empty"),
        (dict(params=[w1, w1]), InputError, "repeated params"),
        (dict(lr=eta * x), InputError, r"lr = eta\*x contains parameter/data symbols \['x'\]"),
        (dict(loss="w1*w2*x - z"), ExpressionError, "unknown name 'z'"),
    ],
)
def test_bad_input(kwargs, err, msg):
    args = dict(loss=LOSS, params=[w1, w2], data=DATA, lr=0.1)
    args.update(kwargs)
    with pytest.raises(err, match=msg):
        symfp.SGD(**args)


def test_parameter_also_data():
    with pytest.raises(InputError, match=r"\['x'\] are both parameters and data"):
        symfp.SGD(LOSS, [w1, x], DATA, lr=0.1)


def test_numeric_subs_gives_numbers_for_particles():
    m = symfp.SGD(LOSS, [w1, w2], DATA, lr=eta, batch_size=sp.Symbol("B", positive=True))
    num = m.subs({"eta": 0.1, "B": 2})
    assert num.lr == sp.Float(0.1) and num.batch_size == 2
    f = sp.lambdify([w1, w2, *num.batch_symbols], list(num.recursion.update))
    assert np.allclose(f(1.0, 2.0, 0.5, -0.5), [0.95, 2.05])


def test_recursion_with_replaces_lr_momentum_and_noise_and_with_lr_keeps_the_rest():
    m = symfp.SGD(LOSS, [w1, w2], DATA, lr=sp.Rational(1, 10), batch_size=2, weight_decay=lam, noise=delta)
    h = sp.Symbol("h", positive=True)
    th = sp.Matrix([w1, w2])
    gh, ze = sp.Matrix(m.batch_symbols), sp.Matrix(m.noise_symbols)
    rec = m.recursion_with(lr=h)
    assert (rec.update - (th - h * (gh + lam * th) + sp.sqrt(2 * h * delta) * ze)).applyfunc(sp.expand) == \
        sp.zeros(2, 1)
    assert rec.lr == h and rec.randomness[m.batch_symbols] is m.recursion.randomness[m.batch_symbols]
    quiet = m.recursion_with(lr=h, noise=0)  # injected noise off: no standard-normal input
    assert m.noise_symbols not in quiet.randomness and not quiet.update.has(*m.noise_symbols)
    mm = symfp.SGD(LOSS, [w1, w2], DATA, lr=eta, momentum=sp.Rational(9, 10))
    v_new = beta * sp.Matrix(mm.velocity) - eta * sp.Matrix(mm.batch_symbols)
    assert (mm.recursion_with(momentum=beta).update[2:, 0] - v_new).applyfunc(sp.expand) == sp.zeros(2, 1)
    with pytest.raises(TypeError):
        m.recursion_with(h)  # keyword-only
    m2 = m.with_lr(h)
    assert m2.lr == h and (m2.batch_size, m2.weight_decay, m2.noise) == (2, lam, delta)
    assert m2.loss == m.loss and m2.data is DATA and m2.params == m.params
    at = {w1: 0.3, w2: -0.2, lam: 0.5, delta: 0.01}
    D2 = np.array(m2.sme().diffusion.subs({h: sp.Rational(1, 10), **at}).evalf(), dtype=float)
    np.testing.assert_allclose(D2, np.array(m.sme().diffusion.subs(at).evalf(), dtype=float), rtol=1e-12)
