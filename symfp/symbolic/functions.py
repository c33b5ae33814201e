r"""Elementary functions usable inside a plain-Python loss callable.

A loss written as ``lambda w, x: symfp.log(1 + symfp.exp(-w * x))`` is *traced*: symfp calls it
with SymPy symbols, so every function used inside must accept SymPy expressions. These wrappers do
(and accept plain numbers too, returning exact SymPy numbers):

.. math::
    \operatorname{sigmoid}(x) = \frac{1}{1 + e^{-x}}, \qquad
    \operatorname{softplus}(x) = \log(1 + e^{x}), \qquad
    \operatorname{relu}(x) = \max(0, x).

``math.exp`` or ``numpy.exp`` would fail on a symbol; use these instead.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from ..errors import ExpressionError

__all__ = ["exp", "log", "tanh", "sigmoid", "softplus", "relu", "sqrt", "sin", "cos", "KNOWN_FUNCTIONS"]


def _arg(x: Any, name: str) -> sp.Expr:
    try:
        out = sp.sympify(x, strict=True)
    except (sp.SympifyError, TypeError) as exc:
        raise ExpressionError(
            f"symfp.{name}: argument {x!r} is not a number or SymPy expression; "
            "pass symbols or numbers (e.g. from a traced loss callable)"
        ) from exc
    if not isinstance(out, sp.Expr):
        raise ExpressionError(f"symfp.{name}: argument {x!r} is not a scalar expression")
    return out


def exp(x: Any) -> sp.Expr:
    r"""The exponential :math:`e^x`."""
    return sp.exp(_arg(x, "exp"))


def log(x: Any) -> sp.Expr:
    r"""The natural logarithm :math:`\log x`."""
    return sp.log(_arg(x, "log"))


def tanh(x: Any) -> sp.Expr:
    r"""The hyperbolic tangent :math:`\tanh x`."""
    return sp.tanh(_arg(x, "tanh"))


def sigmoid(x: Any) -> sp.Expr:
    r"""The logistic function :math:`\sigma(x) = 1/(1 + e^{-x})`."""
    return 1 / (1 + sp.exp(-_arg(x, "sigmoid")))


def softplus(x: Any) -> sp.Expr:
    r"""The softplus :math:`\log(1 + e^{x})` (a smooth relu)."""
    return sp.log(1 + sp.exp(_arg(x, "softplus")))


def relu(x: Any) -> sp.Expr:
    r"""The rectifier :math:`\max(0, x)` (not differentiable at 0)."""
    return sp.Max(0, _arg(x, "relu"))


def sqrt(x: Any) -> sp.Expr:
    r"""The principal square root :math:`\sqrt{x}`."""
    return sp.sqrt(_arg(x, "sqrt"))


def sin(x: Any) -> sp.Expr:
    r"""The sine :math:`\sin x`."""
    return sp.sin(_arg(x, "sin"))


def cos(x: Any) -> sp.Expr:
    r"""The cosine :math:`\cos x`."""
    return sp.cos(_arg(x, "cos"))


#: name -> function, the functions a loss *string* may call (see :mod:`symfp.symbolic.parsing`).
KNOWN_FUNCTIONS = {
    "exp": exp,
    "log": log,
    "tanh": tanh,
    "sigmoid": sigmoid,
    "softplus": softplus,
    "relu": relu,
    "sqrt": sqrt,
    "sin": sin,
    "cos": cos,
}
