r"""Backward error analysis: the modified equation of a deterministic one-step map.

Given a one-step map :math:`y_{n+1} = \Phi_h(y_n)` consistent with some ODE, find the modified vector
field

.. math::
    \tilde f(y) = f_0(y) + h f_1(y) + h^2 f_2(y) + \dots

whose exact time-h flow reproduces :math:`\Phi_h` to all orders kept. The exact flow of
:math:`y' = \tilde f(y)` is
:math:`\varphi_h(y) = y + \sum_{n\ge1}\frac{h^n}{n!}(\mathcal D^{n-1}\tilde f)(y)`,
with the Lie derivative :math:`\mathcal D g = g'\,\tilde f` (Jacobian times field). The coefficient of
:math:`h^{k+1}` in :math:`\varphi_h - \Phi_h` is :math:`f_k` plus terms in :math:`f_0..f_{k-1}`, so the
:math:`f_k` follow order by order. For explicit Euler :math:`\Phi_h(y) = y + h f(y)`:
:math:`\tilde f = f - \frac h2 f'f + \frac{h^2}{12}(f''(f,f) + 4f'f'f) + O(h^3)`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import sympy as sp

from ..errors import InputError
from .shapes import as_column, as_state

__all__ = ["modified_equation"]


def _coeff(expr: sp.Expr, h: sp.Symbol, k: int) -> sp.Expr:
    e = sp.expand(expr)
    if not e.is_polynomial(h):
        e = sp.expand(sp.series(expr, h, 0, k + 1).removeO())
    return e.coeff(h, k)


def _step_column(step: Any, state: tuple[sp.Symbol, ...], h: sp.Symbol) -> sp.Matrix:
    if callable(step) and not isinstance(step, sp.Basic):
        try:
            n_args = len(inspect.signature(step).parameters)
        except (TypeError, ValueError):
            n_args = 1
        y = state[0] if len(state) == 1 else sp.Matrix(state)
        try:
            out = step(y, h) if n_args >= 2 else step(y)
        except Exception as exc:  # noqa: BLE001 - user code traced with symbols
            raise InputError(f"modified_equation: calling step with SymPy symbols failed ({exc})") from exc
    else:
        out = step
    return as_column(out, len(state), "step", "modified_equation")


def modified_equation(
    step: Any | Callable[..., Any], state: Any, h: sp.Symbol, order: int
) -> sp.Expr | sp.Matrix:
    r"""The modified vector field :math:`\tilde f = \sum_{k=0}^{order} h^k f_k` of a one-step map.

    Args:
        step: :math:`\Phi_h(y)` as an expression/list/matrix in the state and h, or a callable
            ``step(y)`` or ``step(y, h)`` (y a symbol, or a column matrix of symbols).
        state: a symbol (scalar map) or a sequence of symbols.
        h: the step-size symbol.
        order: the highest power of h kept in :math:`\tilde f` (0 gives the consistent ODE).

    Returns:
        A SymPy expression (scalar state) or a d×1 matrix, polynomial in h of degree ``order``.

    Raises:
        InputError: non-integer or negative order, h not a symbol, or a map that is not consistent
            (:math:`\Phi_0(y) \ne y`).
    """
    scalar = isinstance(state, (sp.Symbol, str))
    st = as_state([state] if scalar else list(state), "modified_equation")
    if not isinstance(h, sp.Symbol):
        raise InputError(f"modified_equation: h = {h!r} must be a SymPy Symbol (the step size)")
    if isinstance(order, bool) or not isinstance(order, int) or order < 0:
        raise InputError(f"modified_equation: order = {order!r} must be a whole number >= 0")
    phi = _step_column(step, st, h)
    d = len(st)
    lead = [sp.simplify(_coeff(phi[i], h, 0) - st[i]) for i in range(d)]
    if any(e != 0 for e in lead):
        raise InputError(
            f"modified_equation: the step at h = 0 is not the identity (Phi_0(y) - y = {lead}); give a "
            "consistent one-step map y -> y + h*(...)"
        )
    target = [[_coeff(phi[i], h, k + 1) for i in range(d)] for k in range(order + 1)]
    fs: list[sp.Matrix] = []
    for k in range(order + 1):
        field = sum((h**j * fs[j] for j in range(k)), sp.zeros(d, 1))
        known = _flow_coefficient(field, st, h, k + 1) if k else sp.zeros(d, 1)
        fs.append(sp.Matrix([sp.expand(target[k][i] - known[i]) for i in range(d)]))
    out = sum((h**k * fs[k] for k in range(order + 1)), sp.zeros(d, 1))
    return out[0] if scalar else sp.ImmutableMatrix(out)


def _flow_coefficient(field: sp.Matrix, state: Sequence[sp.Symbol], h: sp.Symbol, m: int) -> sp.Matrix:
    r"""The coefficient of :math:`h^m` in the exact time-h flow of :math:`y' = \text{field}(y; h)`."""
    d = len(state)
    total = sp.zeros(d, 1)
    term = field
    for n in range(1, m + 1):
        # term = D^{n-1} field; contributes h^n/n! * term; we need its h^{m-n} coefficient
        total += sp.Matrix([_coeff(term[i], h, m - n) for i in range(d)]) / sp.factorial(n)
        if n < m:
            term = sp.Matrix(term).jacobian(list(state)) * field
            term = term.applyfunc(lambda e, n=n: _truncate(e, h, m - n - 1))
    return total


def _truncate(expr: sp.Expr, h: sp.Symbol, kmax: int) -> sp.Expr:
    e = sp.expand(expr)
    return sp.Add(*[e.coeff(h, k) * h**k for k in range(kmax + 1)])
