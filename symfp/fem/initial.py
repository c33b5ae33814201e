r"""Initial densities :math:`p_0`, backend-neutral: an expression, a callable or a point.

``p0`` may be a SymPy expression in the state symbols (a number means uniform), a callable ``p0(X)``
taking the coordinates as an array of shape (d, n) (or (3, n)), or a point of d numbers (a delta
smoothed on the mesh: the Gaussian :math:`\exp(-|x - x_0|^2/(2s^2))`, :math:`s = 2h`).
:func:`density_callable` turns any of them into one vectorised function; each backend interpolates it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy as sp

from ..errors import InputError


def is_point(p0: Any, d: int) -> bool:
    """True when ``p0`` is a list/tuple/array of d plain numbers (a point, not a density)."""
    if isinstance(p0, (sp.Basic, str)) or callable(p0):
        return False
    try:
        arr = np.asarray(p0, dtype=float)
    except (TypeError, ValueError):
        return False
    return arr.ndim == 1 and arr.shape[0] == d


def density_callable(p0: Any, state: Sequence[sp.Symbol], h: float,
                     where: str) -> Callable[[np.ndarray], np.ndarray]:
    """A vectorised ``f(X) -> values`` for ``X`` of shape (3, n) from any accepted form of ``p0``."""
    d = len(state)
    if is_point(p0, d):
        x0 = np.asarray(p0, dtype=float)
        s2 = (2.0 * h) ** 2

        def bump(X: np.ndarray) -> np.ndarray:
            r2 = sum((X[i] - x0[i]) ** 2 for i in range(d))
            return np.exp(-r2 / (2 * s2))

        return bump
    if callable(p0) and not isinstance(p0, sp.Basic):

        def user(X: np.ndarray) -> np.ndarray:
            out = np.asarray(p0(X[:d]), dtype=float)
            return np.broadcast_to(out, (X.shape[1],)).copy()

        return user
    try:
        expr = sp.sympify(p0)
    except (sp.SympifyError, TypeError) as exc:
        raise InputError(f"{where}: p0 {p0!r} is not a SymPy expression, a callable or a point of "
                         f"{d} numbers") from exc
    if isinstance(expr, sp.MatrixBase) or not isinstance(expr, sp.Expr):
        raise InputError(f"{where}: p0 must be a scalar density (or a point of {d} numbers), got {p0!r}")
    extra = expr.free_symbols - set(state)
    if extra:
        raise InputError(f"{where}: p0 has symbols {sorted(map(str, extra))} that are not state variables "
                         f"{[str(s) for s in state]}; substitute numbers for them")
    f = sp.lambdify(state, expr, "numpy")

    def sym(X: np.ndarray) -> np.ndarray:
        out = np.asarray(f(*X[:d]), dtype=float)
        return np.broadcast_to(out, (X.shape[1],)).copy()

    return sym
