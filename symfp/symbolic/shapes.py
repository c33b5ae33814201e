"""Validated shapes of the symbolic stages' inputs: a state tuple, a d×1 column, a d×d matrix, and the
(state, drift, diffusion) of an SDE-like object.

Every stage (recursion, SDE, Fokker–Planck, weak forms, modified equations) checks its arguments with
these, so the messages say the same thing everywhere; they depend on SymPy only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sympy as sp

from ..errors import InputError

__all__ = ["as_column", "as_square", "as_state", "sde_parts"]


def as_state(state: Iterable[Any], where: str) -> tuple[sp.Symbol, ...]:
    """Validate a list of state symbols (names are accepted and turned into real symbols)."""
    out = []
    for s in state:
        s = sp.Symbol(s, real=True) if isinstance(s, str) else s
        if not isinstance(s, sp.Symbol):
            raise InputError(f"{where}: state entry {s!r} is not a SymPy Symbol")
        out.append(s)
    if not out:
        raise InputError(f"{where}: the state is empty; give at least one symbol")
    if len(set(out)) != len(out):
        raise InputError(f"{where}: repeated state symbols in {out}")
    return tuple(out)


def as_column(expr: Any, d: int, what: str, where: str) -> sp.Matrix:
    """Turn a scalar (d = 1), a list or a Matrix into a d×1 SymPy column, or raise."""
    try:
        if isinstance(expr, sp.MatrixBase):
            m = sp.Matrix(expr)
        elif isinstance(expr, (list, tuple)):
            m = sp.Matrix([sp.sympify(e) for e in expr])
        else:
            m = sp.Matrix([sp.sympify(expr)])
    except (sp.SympifyError, TypeError, ValueError) as exc:
        raise InputError(f"{where}: {what} {expr!r} is not a SymPy expression") from exc
    if m.shape == (1, d):
        m = m.T
    if m.shape != (d, 1):
        raise InputError(f"{where}: {what} has shape {m.shape}, expected ({d}, 1) for {d} state variables")
    return m


def as_square(expr: Any, d: int, what: str, where: str) -> sp.Matrix:
    """Turn a scalar (d = 1 or isotropic), a nested list or a Matrix into a d×d SymPy matrix."""
    try:
        if isinstance(expr, sp.MatrixBase):
            m = sp.Matrix(expr)
        elif isinstance(expr, (list, tuple)):
            m = sp.Matrix(expr)
        else:
            m = sp.sympify(expr) * sp.eye(d)
    except (sp.SympifyError, TypeError, ValueError) as exc:
        raise InputError(f"{where}: {what} {expr!r} is not a SymPy matrix") from exc
    if not isinstance(m, sp.MatrixBase):  # nan * eye(d) is nan
        raise InputError(f"{where}: the {what} matrix D = [[{expr}]] is not a number or expression")
    if m.shape != (d, d):
        raise InputError(f"{where}: {what} has shape {m.shape}, expected ({d}, {d})")
    return m


def sde_parts(sde: Any, where: str) -> tuple[tuple[sp.Symbol, ...], sp.Matrix, sp.Matrix]:
    """State, drift b and diffusion D of an SDE-like object (duck-typed), with a clear error."""
    try:
        state = tuple(sde.state)
        b = sp.Matrix(sde.drift)
        D = sp.Matrix(sde.diffusion)
    except AttributeError as exc:
        raise InputError(
            f"{where}: expected a symfp.SDE (with .state, .drift, .diffusion), got {type(sde).__name__}; "
            "build one with symfp.SDE(state, drift, diffusion) or model.sme()"
        ) from exc
    return state, b, D

