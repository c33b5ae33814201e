r"""Turn a user's loss (SymPy expression, Python callable or string) into a SymPy expression.

Three inputs are accepted:

* a SymPy expression, used as is;
* a Python callable, *traced*: it is called with SymPy symbols, by keyword when its argument names
  are declared symbol names, otherwise positionally in the order parameters, data, constants
  (use :mod:`symfp.symbolic.functions` inside, not ``math``/``numpy``);
* a string, parsed **without** ``eval``: Python's :mod:`ast` parses it and a whitelist walker builds
  the SymPy expression from numbers, declared names, ``+ - * / **``, unary ``±`` and calls of the
  known functions (:data:`symfp.symbolic.functions.KNOWN_FUNCTIONS`). Anything else is refused with an
  :class:`~symfp.errors.ExpressionError` naming the offending token. Decimal literals become exact
  rationals (``0.1`` → 1/10).
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sympy as sp

from ..errors import ExpressionError
from .functions import KNOWN_FUNCTIONS

__all__ = ["parse_string", "trace_callable", "to_expression"]

_BINOPS: dict[type, Callable[[sp.Expr, sp.Expr], sp.Expr]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}
_OP_TOKENS = {
    ast.FloorDiv: "//", ast.Mod: "%", ast.BitXor: "^ (use ** for powers)", ast.BitAnd: "&",
    ast.BitOr: "|", ast.LShift: "<<", ast.RShift: ">>", ast.MatMult: "@", ast.Not: "not",
    ast.Invert: "~",
}
_CONSTANTS = {"pi": sp.pi, "E": sp.E}


def parse_string(text: str, names: Mapping[str, sp.Symbol], where: str = "loss") -> sp.Expr:
    """Parse an arithmetic expression string into SymPy without evaluating any Python code.

    Args:
        text: e.g. ``"(w1*w2*x - y)**2/2 + 0.1*log(1 + exp(w1))"``.
        names: the declared symbols by name (parameters, data, constants).
        where: what is being parsed (for messages).

    Raises:
        ExpressionError: a syntax error, an undeclared name, a call of an unknown function or any
            construct outside the whitelist; the message names the token.
    """
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(
            f"{where}: cannot parse {text!r}: {exc.msg} at column {exc.offset}; "
            "write arithmetic with + - * / ** and function calls"
        ) from exc

    def token(node: ast.AST) -> str:
        return ast.get_source_segment(text.strip(), node) or type(node).__name__

    def refuse(node: ast.AST, what: str) -> ExpressionError:
        return ExpressionError(
            f"{where}: {what} {token(node)!r} is not allowed in {text!r}; only numbers, the declared "
            f"names ({', '.join(sorted(names)) or 'none'}), + - * / ** and the functions "
            f"{', '.join(sorted(KNOWN_FUNCTIONS))} are"
        )

    def walk(node: ast.AST) -> sp.Expr:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise refuse(node, "the literal")
            return sp.Integer(v) if isinstance(v, int) else sp.Rational(repr(v))
        if isinstance(node, ast.Name):
            if node.id in names:
                return names[node.id]
            if node.id in _CONSTANTS:
                return _CONSTANTS[node.id]
            raise ExpressionError(
                f"{where}: unknown name {node.id!r} in {text!r}; declare it as a parameter, a data "
                f"symbol or in constants=(...) (declared: {', '.join(sorted(names)) or 'none'})"
            )
        if isinstance(node, ast.BinOp):
            op = _BINOPS.get(type(node.op))
            if op is None:
                raise ExpressionError(
                    f"{where}: operator {_OP_TOKENS.get(type(node.op), type(node.op).__name__)!r} "
                    f"in {token(node)!r} is not allowed; use + - * / **"
                )
            return op(walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return -walk(node.operand)
            if isinstance(node.op, ast.UAdd):
                return walk(node.operand)
            raise ExpressionError(
                f"{where}: operator {_OP_TOKENS.get(type(node.op), type(node.op).__name__)!r} in "
                f"{token(node)!r} is not allowed"
            )
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in KNOWN_FUNCTIONS:
                raise ExpressionError(
                    f"{where}: call of {token(node.func)!r} is not allowed in {text!r}; known functions: "
                    f"{', '.join(sorted(KNOWN_FUNCTIONS))}"
                )
            if node.keywords or len(node.args) != 1:
                raise refuse(node, "the call")
            return KNOWN_FUNCTIONS[node.func.id](walk(node.args[0]))
        kind = {ast.Attribute: "attribute access", ast.Subscript: "subscript", ast.Lambda: "lambda",
                ast.Compare: "comparison", ast.BoolOp: "boolean operator", ast.IfExp: "conditional"}
        raise refuse(node, kind.get(type(node), f"the construct {type(node).__name__}"))

    return walk(tree)


def trace_callable(
    fn: Callable[..., Any], ordered: Sequence[sp.Symbol], where: str = "loss"
) -> sp.Expr:
    """Call ``fn`` with SymPy symbols and return the SymPy expression it builds.

    Arguments are matched by name when every named argument of ``fn`` is a declared symbol name
    (or ``fn`` takes ``**kwargs``); otherwise positionally in the order of ``ordered``.
    """
    by_name = {s.name: s for s in ordered}
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    args: tuple = ()
    kwargs: dict[str, sp.Symbol] = {}
    if sig is None:
        args = tuple(ordered)
    else:
        ps = list(sig.parameters.values())
        named = [p for p in ps if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        has_varkw = any(p.kind == p.VAR_KEYWORD for p in ps)
        has_varpos = any(p.kind == p.VAR_POSITIONAL for p in ps)
        required = [p for p in named if p.default is p.empty]
        if named and all(p.name in by_name for p in named):
            kwargs = {p.name: by_name[p.name] for p in named}
            if has_varkw:
                kwargs = dict(by_name)
        elif has_varkw and not named:
            kwargs = dict(by_name)
        elif len(required) <= len(ordered) and (len(named) >= len(ordered) or has_varpos):
            args = tuple(ordered)
        else:
            unknown = [p.name for p in named if p.name not in by_name]
            raise ExpressionError(
                f"{where}: cannot match the arguments ({', '.join(p.name for p in named)}) of "
                f"{getattr(fn, '__name__', fn)!r} to the declared symbols "
                f"({', '.join(by_name)}); unknown argument name(s) {', '.join(unknown)}. Name the "
                "arguments after the symbols, or take them positionally as parameters, data, constants"
            )
    try:
        out = fn(*args, **kwargs)
    except ExpressionError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure while tracing user code
        raise ExpressionError(
            f"{where}: tracing {getattr(fn, '__name__', fn)!r} with SymPy symbols failed "
            f"({type(exc).__name__}: {exc}); use symfp.exp/log/tanh/sigmoid/... instead of math or "
            "numpy functions, and no Python if/comparisons on the arguments (use symfp.relu)"
        ) from exc
    try:
        expr = sp.sympify(out)
    except (sp.SympifyError, TypeError) as exc:
        raise ExpressionError(f"{where}: the callable returned {out!r}, not a scalar expression") from exc
    if not isinstance(expr, sp.Expr):
        raise ExpressionError(f"{where}: the callable returned {type(out).__name__}, not a scalar expression")
    return expr


def to_expression(obj: Any, ordered: Sequence[sp.Symbol], where: str = "loss") -> sp.Expr:
    """A scalar SymPy expression from an expression, a callable or a string.

    Args:
        obj: the loss (or any scalar function of the declared symbols).
        ordered: the declared symbols, in the positional order parameters, data, constants.
        where: what it is (for messages).
    """
    if isinstance(obj, str):
        return parse_string(obj, {s.name: s for s in ordered}, where)
    if isinstance(obj, sp.MatrixBase):
        raise ExpressionError(f"{where}: expected a scalar expression, got a {obj.shape} matrix")
    if isinstance(obj, sp.Basic):
        if not isinstance(obj, sp.Expr):
            raise ExpressionError(f"{where}: {obj!r} is not a scalar expression")
        return obj
    if callable(obj):
        return trace_callable(obj, ordered, where)
    try:
        return sp.sympify(obj, strict=True)
    except (sp.SympifyError, TypeError) as exc:
        raise ExpressionError(
            f"{where}: {obj!r} is neither a SymPy expression, a callable nor a string"
        ) from exc
