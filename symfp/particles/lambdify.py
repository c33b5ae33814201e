"""SymPy matrices → batched torch functions (common subexpressions eliminated once).

A d×k SymPy matrix :math:`M(\\theta, u)` becomes a function that takes tensors of shape (n,) for each
argument symbol and returns a tensor of shape (n, d, k) (or (n, d) for a column), so that one call
evaluates the expression for every particle at once. Constant entries are broadcast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sympy as sp
import torch

from ..errors import ExpressionError

TensorFn = Callable[..., torch.Tensor]


def _entries(expr: Any) -> tuple[list[sp.Expr], tuple[int, ...]]:
    if isinstance(expr, sp.MatrixBase):
        m = sp.Matrix(expr)
        shape = (m.rows,) if m.cols == 1 else (m.rows, m.cols)
        return list(m), shape
    return [sp.sympify(expr)], ()


def torch_function(expr: Any, args: Sequence[sp.Symbol], where: str) -> TensorFn:
    """Lambdify ``expr`` to torch with common-subexpression elimination.

    Args:
        expr: a SymPy scalar or matrix in the symbols ``args`` only.
        args: the argument symbols, in call order.
        where: the caller, for error messages.

    Returns:
        ``f(*tensors)`` with each tensor of shape (n,); the result has shape (n, *expr.shape)
        (a column d×1 gives (n, d); a scalar gives (n,)).

    Raises:
        ExpressionError: when the expression has symbols outside ``args``.
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
        raw = sp.lambdify(list(args), entries, modules="torch", cse=True)
    except Exception as exc:  # noqa: BLE001 - sympy raises many kinds here
        raise ExpressionError(f"{where}: cannot translate {expr} to torch ({exc})") from exc
    const = [not e.free_symbols for e in entries]

    def f(*tensors: torch.Tensor) -> torch.Tensor:
        ref = tensors[0]
        vals = raw(*tensors)
        cols = [
            torch.full_like(ref, float(v)) if c else torch.as_tensor(v, dtype=ref.dtype).expand_as(ref)
            for v, c in zip(vals, const, strict=True)
        ]
        out = torch.stack(cols, dim=-1)
        return out.reshape(ref.shape + shape)

    f.expr = expr  # type: ignore[attr-defined]
    f.is_constant = all(const)  # type: ignore[attr-defined]
    return f


def state_function(
    expr: Any, state: Sequence[sp.Symbol], where: str
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Like :func:`torch_function` for an expression of the state only: takes θ of shape (n, d)."""
    f = torch_function(expr, state, where)

    def g(theta: torch.Tensor) -> torch.Tensor:
        return f(*theta.unbind(-1))

    g.is_constant = f.is_constant  # type: ignore[attr-defined]
    return g
