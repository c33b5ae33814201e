r"""SymPy matrices → batched torch functions (common subexpressions eliminated once).

A d×k SymPy matrix :math:`M(\theta, u)` becomes a function that takes tensors of shape (n,) for each
argument symbol and returns a tensor of shape (n, d, k) (or (n, d) for a column), so that one call
evaluates the expression for every particle at once.

Two things are done before SymPy's printer sees the expression:

* every numeric sub-expression that is not an integer (:math:`\sqrt5/50`, :math:`\pi`, :math:`e`,
  :math:`2^{1/3}`, rationals) is evaluated once to a 17-digit Float, so the generated code multiplies
  tensors by Python floats (``torch.sqrt(5)`` on an ``int`` is a TypeError) and never re-evaluates a
  constant per step; integer exponents stay integers (``x**2``, not ``x**2.0``);
* the entries are written column by column into one output tensor (preallocated by the caller
  or allocated once per call), instead of broadcasting constants and stacking the columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sympy as sp
import torch

from ..errors import ExpressionError

TensorFn = Callable[..., torch.Tensor]


def numeric_constants(expr: sp.Expr) -> sp.Expr:
    """Replace every maximal numeric, non-integer sub-expression of ``expr`` by a Float.

    Args:
        expr: a SymPy expression.

    Returns:
        The same expression with e.g. ``sqrt(5)/50`` → ``0.0447213595499958``, ``pi`` → ``3.14159…``;
        Integers (and so integer powers) are kept.

    Raises:
        ExpressionError: a numeric sub-expression is not real (e.g. ``sqrt(-1)``).
    """
    expr = sp.sympify(expr)
    if expr.is_Integer or expr.is_Float:
        return expr
    if expr.is_number:
        val = sp.N(expr, 17)
        if not val.is_real:
            raise ExpressionError(f"the constant {expr} = {val} is not a real number")
        return sp.Float(val, 17)
    if not expr.args:
        return expr
    new = [numeric_constants(a) for a in expr.args]
    if all(a is b for a, b in zip(new, expr.args, strict=True)):
        return expr
    return expr.func(*new)


def _entries(expr: Any) -> tuple[list[sp.Expr], tuple[int, ...]]:
    if isinstance(expr, sp.MatrixBase):
        m = sp.Matrix(expr)
        shape = (m.rows,) if m.cols == 1 else (m.rows, m.cols)
        return list(m), shape
    return [sp.sympify(expr)], ()


def torch_function(expr: Any, args: Sequence[sp.Symbol], where: str, pure: bool = False) -> TensorFn:
    """Lambdify ``expr`` to torch with common-subexpression elimination.

    Args:
        expr: a SymPy scalar or matrix in the symbols ``args`` only.
        args: the argument symbols, in call order.
        where: the caller, for error messages.
        pure: build the result with ``torch.stack`` (no ``out``, no in-place writes). Slower
            eagerly, but what ``torch.compile`` fuses into one vectorised loop (column writes into a
            preallocated tensor compile to strided scalar stores, ≈10x slower).

    Returns:
        ``f(*tensors, out=None)`` with each tensor of shape (n,) (or a common broadcastable shape);
        the result has shape (n, *expr.shape) (a column d×1 gives (n, d); a scalar gives (n,)).
        ``out``, when given, is a contiguous tensor of that shape (or of shape (n, d·k)) that receives
        the values; no other allocation of the result takes place.

    Raises:
        ExpressionError: when the expression has symbols outside ``args`` or a non-real constant.
    """
    entries, shape = _entries(expr)
    free = set().union(*(e.free_symbols for e in entries)) - set(args)
    if free:
        names = ", ".join(sorted(map(str, free)))
        raise ExpressionError(
            f"{where}: the expression still has free symbols {names}; substitute numbers for them "
            "first (e.g. with .subs({...}))"
        )
    try:
        entries = [numeric_constants(e) for e in entries]
    except ExpressionError as exc:
        raise ExpressionError(f"{where}: {exc}") from None
    const = [not e.free_symbols for e in entries]
    cvals = [float(e) if c else None for e, c in zip(entries, const, strict=True)]
    live = [i for i, c in enumerate(const) if not c]
    try:
        raw = sp.lambdify(list(args), [entries[i] for i in live], modules="torch", cse=True) if live else None
    except Exception as exc:  # noqa: BLE001 - sympy raises many kinds here
        raise ExpressionError(f"{where}: cannot translate {expr} to torch ({exc})") from exc
    m = len(entries)

    if pure:

        def fp(*tensors: torch.Tensor) -> torch.Tensor:
            ref = tensors[0]
            vals = iter(raw(*tensors)) if raw is not None else iter(())
            cols = [torch.full_like(ref, v) if v is not None else torch.broadcast_to(next(vals), ref.shape)
                    for v in cvals]
            return torch.stack(cols, -1).view(ref.shape + shape)

        fp.expr = expr  # type: ignore[attr-defined]
        fp.is_constant = all(const)  # type: ignore[attr-defined]
        return fp

    def f(*tensors: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        ref = tensors[0]
        if out is None:
            out = torch.empty((*ref.shape, m), dtype=ref.dtype, device=ref.device)
        flat = out.view(*ref.shape, m)
        for i, v in enumerate(cvals):
            if v is not None:
                flat[..., i].fill_(v)
        if raw is not None:
            for i, v in zip(live, raw(*tensors), strict=True):
                flat[..., i] = v
        return flat.view(ref.shape + shape)

    f.expr = expr  # type: ignore[attr-defined]
    f.is_constant = all(const)  # type: ignore[attr-defined]
    return f


def state_function(
    expr: Any, state: Sequence[sp.Symbol], where: str, time: sp.Symbol | None = None
) -> Callable[..., torch.Tensor]:
    """Like :func:`torch_function` for an expression of the state only: takes θ of shape (n, d).

    With ``time`` (the SDE's time symbol t), the function is ``g(theta, t)`` with t a 0-d tensor
    (one scalar time for every particle; see :func:`time_tensor`); without it, ``g(theta)``.
    """
    if time is None:
        f = torch_function(expr, state, where)

        def g(theta: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
            return f(*theta.unbind(-1), out=out)

    else:
        f = torch_function(expr, (*state, time), where)

        def g(theta: torch.Tensor, t: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
            return f(*theta.unbind(-1), t, out=out)

    g.is_constant = f.is_constant  # type: ignore[attr-defined]
    return g


def time_tensor(t: float, like: torch.Tensor) -> torch.Tensor:
    """The time t as a 0-d tensor of ``like``'s dtype and device (torch's ``sin`` etc. reject floats)."""
    return torch.tensor(float(t), dtype=like.dtype, device=like.device)
