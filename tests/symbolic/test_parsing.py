"""symfp.symbolic.parsing: losses from expressions, callables and strings (no eval)."""

import pytest
import sympy as sp

import symfp
from symfp.errors import ExpressionError
from symfp.symbolic.parsing import parse_string, to_expression, trace_callable

w, x, y, c = sp.symbols("w x y c", real=True)
NAMES = {"w": w, "x": x, "y": y, "c": c}


def test_string_arithmetic_and_functions():
    e = parse_string("(w*x - y)**2/2 + 0.1*log(1 + exp(-w)) - -c + sigmoid(w)", NAMES)
    ref = (w * x - y) ** 2 / 2 + sp.Rational(1, 10) * sp.log(1 + sp.exp(-w)) + c + 1 / (1 + sp.exp(-w))
    assert sp.simplify(e - ref) == 0
    assert parse_string("pi*w", NAMES) == sp.pi * w


@pytest.mark.parametrize(
    "text, token",
    [
        ("__import__('os').system('ls')", "__import__"),
        ("w.real", "w.real"),
        ("w[0]", "w[0]"),
        ("lambda: 1", "lambda"),
        ("w if x else y", "conditional"),
        ("w ^ 2", "^"),
        ("w // 2", "//"),
        ("foo(w)", "foo"),
        ("z*w", "'z'"),
        ("w < 2", "comparison"),
        ("'a'", "'a'"),
        ("exp(w, 2)", "exp(w, 2)"),
    ],
)
def test_string_refused_names_token(text, token):
    with pytest.raises(ExpressionError) as err:
        parse_string(text, NAMES, "loss")
    assert token in str(err.value)


def test_syntax_error():
    with pytest.raises(ExpressionError, match="cannot parse"):
        parse_string("w*(x", NAMES)


def test_callable_by_keyword_and_position():
    ordered = [w, x, y]
    by_kw = trace_callable(lambda y, w, x: (w * x - y) ** 2, ordered)
    by_pos = trace_callable(lambda a, b, d: (a * b - d) ** 2, ordered)
    assert sp.expand(by_kw - (w * x - y) ** 2) == 0 and sp.expand(by_pos - by_kw) == 0
    traced = trace_callable(lambda w, x: symfp.softplus(-w * x), ordered)
    assert sp.simplify(traced - sp.log(1 + sp.exp(-w * x))) == 0


def test_callable_errors():
    import math

    with pytest.raises(ExpressionError, match="math or numpy"):
        trace_callable(lambda w, x: math.exp(w * x), [w, x])
    with pytest.raises(ExpressionError, match="unknown argument name"):
        trace_callable(lambda w, q, r, s: w, [w, x])
    with pytest.raises(ExpressionError, match="not a scalar"):
        trace_callable(lambda w: [w], [w])


def test_to_expression_dispatch():
    assert to_expression("w*x", [w, x]) == w * x
    assert to_expression(w * x, [w, x]) == w * x
    with pytest.raises(ExpressionError, match="matrix"):
        to_expression(sp.Matrix([w]), [w])
