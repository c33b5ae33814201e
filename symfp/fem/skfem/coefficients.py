r"""SymPy coefficients as numpy arrays at quadrature points (``sp.lambdify``), for the scikit-fem forms.

A coefficient :math:`g(x, t)` is lambdified once in the state symbols (and the time symbol, when the
form has one) and evaluated on the global quadrature coordinates ``w.x`` of shape (d, cells, points);
constants are broadcast to that shape. Kept in this backend so that it can be switched to a shared
evaluator of data-mean coefficients later.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy as sp

from ...errors import ExpressionError
from ...symbolic.datamean import has_data_nodes, lambdify_datamean


def _entry(args: Sequence[sp.Symbol], e: sp.Expr) -> Callable[..., Any]:
    """A numpy function of ``args``; data-mean nodes become reductions over their samples."""
    if has_data_nodes(e):
        return lambdify_datamean(args, e)
    return sp.lambdify(args, e, "numpy")


def lambdify(expr: Any, state: Sequence[sp.Symbol], tsym: sp.Symbol | None = None) -> Callable[..., Any]:
    """A numpy function ``f(X, t=0.0)`` of the coordinates ``X`` (d, ...) for a scalar or matrix ``expr``."""
    e = sp.sympify(expr)
    args = list(state) + ([tsym] if tsym is not None else [])
    extra = e.free_symbols - set(args)
    if extra:
        raise ExpressionError(f"coefficient {e} has symbols {sorted(map(str, extra))} that are neither state "
                              "variables nor time; substitute numbers for them with .subs({...})")
    if isinstance(e, sp.MatrixBase):
        entries = [[_entry(args, e[i, j]) for j in range(e.shape[1])]
                   for i in range(e.shape[0])]

        def mat(X: np.ndarray, t: float = 0.0) -> np.ndarray:
            shape = np.shape(X[0])
            ex = [*X, t] if tsym is not None else list(X)
            return np.array([[np.broadcast_to(np.asarray(f(*ex), dtype=float), shape) for f in row]
                             for row in entries])

        return mat
    f = _entry(args, e)

    def scalar(X: np.ndarray, t: float = 0.0) -> np.ndarray:
        ex = [*X, t] if tsym is not None else list(X)
        return np.broadcast_to(np.asarray(f(*ex), dtype=float), np.shape(X[0]))

    return scalar
