r"""The one lowering of the weak-form IR (:mod:`symfp.symbolic.weakform`) to UFL for dolfinx.

:func:`lower_terms` maps each term kind to its UFL integrand (the same table as
:mod:`symfp.fem.skfem.lowering` for scikit-fem); the forward, exit-time, stationary and spectral
problems assemble through it. ``symbols`` maps extra SymPy symbols (the time of a schedule) to UFL
objects (a ``dolfinx.fem.Constant``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sympy as sp

from ...errors import InputError
from . import compat


def ufl_matrix(K: sp.MatrixBase, state: Sequence[sp.Symbol], x: Any,
               symbols: Mapping[sp.Symbol, Any] | None = None) -> Any:
    """A d×d SymPy matrix as a UFL matrix (also for d = 1, where ``to_ufl`` would give a vector)."""
    from .translate import to_ufl

    ufl = compat.dolfinx_modules().ufl
    K = sp.Matrix(K)
    return ufl.as_matrix([[to_ufl(K[i, j], state, x, symbols) for j in range(K.shape[1])]
                          for i in range(K.shape[0])])


def ufl_vector(c: sp.MatrixBase, state: Sequence[sp.Symbol], x: Any,
               symbols: Mapping[sp.Symbol, Any] | None = None) -> Any:
    """A d×1 SymPy column as a UFL vector."""
    from .translate import to_ufl

    ufl = compat.dolfinx_modules().ufl
    return ufl.as_vector([to_ufl(e, state, x, symbols) for e in sp.Matrix(c)])


def lower_terms(terms: Iterable[Any], state: Sequence[sp.Symbol], u: Any, v: Any, x: Any,
                symbols: Mapping[sp.Symbol, Any] | None = None) -> Any:
    """The UFL integrand of weak-form IR terms (:mod:`symfp.symbolic.weakform`) for trial ``u``, test ``v``.

    ``diffusion`` K: :math:`(K\\nabla u)\\cdot\\nabla v`; ``advection`` c: :math:`u\\,c\\cdot\\nabla v`;
    ``transport`` c: :math:`(c\\cdot\\nabla u)v`; ``reaction`` r: :math:`ruv`; ``source`` s: :math:`sv`.
    """
    from .translate import to_ufl

    ufl = compat.dolfinx_modules().ufl
    total = None
    for t in terms:
        if t.kind == "diffusion":
            e = ufl.inner(ufl.dot(ufl_matrix(t.coefficient, state, x, symbols), ufl.grad(u)), ufl.grad(v))
        elif t.kind == "advection":
            e = u * ufl.inner(ufl_vector(t.coefficient, state, x, symbols), ufl.grad(v))
        elif t.kind == "transport":
            e = ufl.inner(ufl_vector(t.coefficient, state, x, symbols), ufl.grad(u)) * v
        elif t.kind == "reaction":
            e = to_ufl(t.coefficient, state, x, symbols) * u * v
        elif t.kind == "source":
            e = to_ufl(t.coefficient, state, x, symbols) * v
        else:
            raise InputError(f"lower_terms: unknown weak-form term kind {t.kind!r}")
        total = e if total is None else total + e
    return total
