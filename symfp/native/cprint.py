r"""C source from SymPy expressions: SymPy's C99 printer, the stable numerical forms, vector math.

:func:`prelude` opens every kernel: ``<math.h>``, the type ``real_t`` (double or float), the
``symfp_sigmoid``/``symfp_softplus`` helpers that the stable forms of
:func:`~symfp.symbolic.datamean.stable_forms` print to (:math:`\sigma(u) = 1/(1+e^{-u})`, which
never forms inf/inf; :math:`\operatorname{softplus}(u) = \max(u, 0) + \log(1 + e^{-|u|})`), and, on
glibc/x86-64, ``simd`` declarations of libm functions that libmvec provides in vector form (≤ 4 ulp),
so that loops over samples calling ``exp``, ``tanh``… vectorise without ``-ffast-math``.
:func:`cse_block` prints a list of expressions with common sub-expressions eliminated, integer powers
expanded into products and non-integer numbers as 17-digit literals; it raises
:class:`~symfp.native.build.NativeError` for an expression without a C form (strict printing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sympy as sp
from sympy.codegen.ast import float32, real
from sympy.codegen.rewriting import create_expand_pow_optimization
from sympy.printing.c import C99CodePrinter

from ..errors import ExpressionError
from .build import NativeError

#: libmvec's vector variants (glibc ≥ 2.22 for the first group, ≥ 2.35 for the second)
_MVEC = ("exp", "log", "sin", "cos", "pow")
_MVEC_235 = ("expm1", "log1p", "tanh", "sinh", "cosh", "atan", "erf", "log2", "log10", "exp2")

_PRELUDE = r"""
#include <stdint.h>
#include <math.h>
#if defined(__GLIBC__) && defined(__x86_64__) && !defined(SYMFP_NO_MVEC)
#define SYMFP_SIMD __attribute__((simd("notinbranch")))
%(mvec)s
#if __GLIBC_PREREQ(2, 35)
%(mvec235)s
#endif
#endif

typedef %(real)s real_t;

static inline real_t symfp_sigmoid(real_t u) { return %(one)s / (%(one)s + exp%(sfx)s(-u)); }
static inline real_t symfp_softplus(real_t u) {
    return fmax%(sfx)s(u, %(zero)s) + log1p%(sfx)s(exp%(sfx)s(-fabs%(sfx)s(u)));
}
"""


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


def prelude(single: bool) -> str:
    """The common head of a kernel: includes, vector-math declarations, ``real_t``, the helpers.

    Args:
        single: float32 (``real_t`` = float, ``expf``…) instead of float64.
    """
    ctype, sfx = ("float", "f") if single else ("double", "")
    decl = lambda fn: f"SYMFP_SIMD {ctype} {fn}{sfx}({', '.join([ctype] * (2 if fn == 'pow' else 1))});"  # noqa: E731
    return _PRELUDE % {"mvec": "\n".join(map(decl, _MVEC)), "mvec235": "\n".join(map(decl, _MVEC_235)),
                       "real": ctype, "sfx": sfx, "one": "1.0F" if single else "1.0",
                       "zero": "0.0F" if single else "0.0"}


class Printer(C99CodePrinter):
    """C99 (strict) with the stable numerical forms of :mod:`symfp.symbolic.datamean` as helpers."""

    def __init__(self, single: bool = False):
        super().__init__({"strict": True, **({"type_aliases": {real: float32}} if single else {})})

    def _print__Sigmoid(self, e: Any) -> str:  # noqa: N802 - SymPy's printer dispatch names
        return f"symfp_sigmoid({self._print(e.args[0])})"

    def _print__Softplus(self, e: Any) -> str:  # noqa: N802
        return f"symfp_softplus({self._print(e.args[0])})"


_EXPAND_POW = create_expand_pow_optimization(8, base_req=lambda b: True)


def _code(printer: Printer, e: sp.Expr) -> str:
    return printer.doprint(_EXPAND_POW(numeric_constants(e)))


def cse_block(printer: Printer, exprs: Sequence[sp.Expr], prefix: str, indent: str) -> tuple[str, list[str]]:
    """C declarations (``const real_t``) of the common sub-expressions of ``exprs`` and the C forms
    of the results.

    Raises:
        NativeError: an expression has no C form.
    """
    try:
        reps, red = sp.cse(list(exprs), symbols=sp.numbered_symbols(f"{prefix}c"), optimizations="basic")
        code = "\n".join(f"{indent}const real_t {s} = {_code(printer, e)};" for s, e in reps)
        return code, [_code(printer, e) for e in red]
    except (ExpressionError, NativeError):
        raise
    except Exception as exc:  # noqa: BLE001 - the printer's errors (unsupported functions) of every kind
        raise NativeError(f"no C form: {str(exc).splitlines()[0]}") from None


def c_names(groups: Sequence[tuple[str, Sequence[sp.Symbol]]]) -> dict[sp.Symbol, sp.Symbol]:
    """Symbols renamed to C identifiers ``<letter><index>`` (e.g. ``("t", state)`` → t0, t1, …)."""
    return {s: sp.Symbol(f"{letter}{j}", real=True) for letter, syms in groups for j, s in enumerate(syms)}


def check_symbols(what: str, exprs: Sequence[sp.Expr], allowed: set[sp.Symbol]) -> None:
    """NativeError when ``exprs`` hold symbols outside ``allowed``."""
    extra = set().union(*(e.free_symbols for e in exprs)) - allowed if exprs else set()
    if extra:
        raise NativeError(f"the {what} has symbols {sorted(map(str, extra))} the kernel does not know")
