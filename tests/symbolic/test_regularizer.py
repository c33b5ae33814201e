"""SGD.implicit_regularizer: reference case 7 against enumeration of all epoch partitions."""

import pytest
import sympy as sp
import sympy.stats as st

import symfp
from symfp.errors import InputError

w1, w2, x, y = sp.symbols("w1 w2 x y", real=True)
eps, lam = sp.symbols("epsilon lambda", positive=True)
XS, YS = [1, -2, 3, 0, 2, -1], [2, 1, -1, 4, 0, 3]


def _partitions(items, size):
    """All ways to split ``items`` into unordered blocks of ``size``."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    from itertools import combinations

    for others in combinations(rest, size - 1):
        block = (first, *others)
        left = [i for i in rest if i not in others]
        for tail in _partitions(left, size):
            yield [block, *tail]


@pytest.mark.parametrize("params, loss", [
    ([w1], (w1 * x - y) ** 2 / 2 + w1**4 * x / 4),
    ([w1, w2], (w1 * w2 * x - y) ** 2 / 2 + w1 * x**2),
])
def test_reference_case_7_against_all_partitions(params, loss):
    B = 2
    model = symfp.SGD(loss, params, symfp.Dataset({x: XS, y: YS}), lr=eps, batch_size=B, weight_decay=lam)
    got = model.implicit_regularizer()
    th = sp.Matrix(params)

    def batch_loss(block):
        return sum(loss.subs({x: XS[i], y: YS[i]}) for i in block) / len(block) + lam * (th.T * th)[0] / 2

    def sqgrad(e):
        g = sp.Matrix([sp.diff(e, p) for p in params])
        return (g.T * g)[0]

    C = batch_loss(range(6))
    parts = list(_partitions(list(range(6)), B))
    assert len(parts) == 15
    m = 6 // B
    avg = sum(sum(sqgrad(batch_loss(b)) for b in part) for part in parts) / len(parts)
    brute = C + eps / (4 * m) * avg
    assert sp.expand(got - brute) == 0
    # and the closed form of REFERENCE_CASES item 7
    g = sp.Matrix([sp.diff(loss, p) for p in params])
    gs = [g.subs({x: a, y: b}) for a, b in zip(XS, YS, strict=True)]
    mu = sum(gs, sp.zeros(len(params), 1)) / 6
    tr = sum(((gi - mu).T * (gi - mu))[0] for gi in gs) / 6
    closed = C + eps / 4 * sqgrad(C) + sp.Rational(6 - B, 5) * eps / (4 * B) * tr
    assert sp.expand(got - closed) == 0


def test_population_and_errors():
    s = sp.Symbol("s", positive=True)
    B = sp.Symbol("B", positive=True, integer=True)
    model = symfp.SGD(w1**2 / 2 + x * w1, [w1], symfp.Population({x: st.Normal("X", 0, s)}), lr=eps,
                      batch_size=B)
    assert sp.simplify(model.implicit_regularizer() - (w1**2 / 2 + eps / 4 * (w1**2 + s**2 / B))) == 0
    with pytest.raises(InputError, match="derived for plain SGD"):
        symfp.SGD(w1**2, [w1], None, lr=eps, momentum=0.5).implicit_regularizer()
