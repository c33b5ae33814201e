"""symfp.symbolic.functions: SymPy-backed elementary functions for traced losses."""

import pytest
import sympy as sp

import symfp
from symfp.errors import ExpressionError

x = sp.Symbol("x", real=True)


def test_closed_forms():
    assert sp.simplify(symfp.sigmoid(x) - 1 / (1 + sp.exp(-x))) == 0
    assert sp.simplify(symfp.softplus(x) - sp.log(1 + sp.exp(x))) == 0
    # softplus' = sigmoid, sigmoid' = sigmoid (1 - sigmoid): exact identities
    assert sp.simplify(sp.diff(symfp.softplus(x), x) - symfp.sigmoid(x)) == 0
    s = symfp.sigmoid(x)
    assert sp.simplify(sp.diff(s, x) - s * (1 - s)) == 0
    assert symfp.relu(x).subs(x, -2) == 0 and symfp.relu(x).subs(x, 3) == 3
    assert symfp.sqrt(4) == 2 and symfp.exp(0) == 1 and symfp.log(1) == 0
    assert symfp.tanh(0) == 0 and symfp.sin(0) == 0 and symfp.cos(0) == 1


def test_numeric_values():
    assert float(symfp.sigmoid(0)) == 0.5
    assert abs(float(symfp.softplus(0)) - 0.6931471805599453) < 1e-15


def test_bad_argument():
    with pytest.raises(ExpressionError, match="symfp.exp: argument"):
        symfp.exp(object())
