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
import math
import re
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

#: longest string accepted (characters); a loss is a formula, not a data file
MAX_LENGTH = 100_000
#: deepest nesting of the expression tree (chains of + - and * / do not count: they are flattened)
MAX_DEPTH = 150
#: largest exponent of a power with a symbolic base, and largest power of a number (in bits)
MAX_EXPONENT = 1000
MAX_POWER_BITS = 100_000
_SIGN_RUN = re.compile(r"[+-](?:\s*[+-])+")


def _collapse_signs(text: str) -> str:
    r"""Replace every run of two or more signs by its net sign: ``a - -b`` → ``a + b``, ``---x`` → ``-x``.

    Exact: the first sign of a run is binary or unary, the others unary, and
    a s1 (s2 ... sn b) = a (s1 s2 ... sn) b. Python's own parser recurses once
    per unary sign (5000 of them overflow its stack).
    """
    return _SIGN_RUN.sub(lambda m: "-" if m.group(0).count("-") % 2 else "+", text)


def _check_power(base: sp.Expr, exp: sp.Expr, where: str, token: Callable[[], str]) -> None:
    """Refuse a power that would take minutes (or all memory) to build, before SymPy evaluates it."""
    if not exp.is_Number:
        return
    if base.is_Number:
        if base in (0, 1, -1) or exp.is_zero:
            return
        try:
            bits = abs(float(exp)) * abs(math.log2(abs(float(base))))
        except (OverflowError, ValueError):
            bits = math.inf
        if bits > MAX_POWER_BITS:
            raise ExpressionError(
                f"{where}: the constant power {token()!r} has about {bits / math.log2(10):.3g} decimal "
                "digits; "
                f"symfp refuses constant powers beyond {MAX_POWER_BITS} bits (the number alone would "
                "take minutes to compute). Write the value you mean, or a smaller exponent"
            )
    elif abs(float(exp)) > MAX_EXPONENT:
        raise ExpressionError(
            f"{where}: the exponent of {token()!r} is {exp}, beyond the limit {MAX_EXPONENT} for a power of "
            "a symbolic expression (its derivatives and moments could not be expanded)"
        )


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
    if not isinstance(text, str):
        raise ExpressionError(f"{where}: expected a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"{where}: the string is {len(text)} characters long, beyond the limit of {MAX_LENGTH}; "
            "build a long loss as a SymPy expression or a Python callable instead"
        )
    shown = text if len(text) <= 80 else text[:60] + f"... ({len(text)} characters)"
    text = _collapse_signs(text)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(
            f"{where}: cannot parse {shown!r}: {exc.msg} at column {exc.offset}; "
            "write arithmetic with + - * / ** and function calls"
        ) from exc
    except (RecursionError, MemoryError) as exc:
        raise ExpressionError(
            f"{where}: {shown!r} is nested too deeply for Python's parser; "
            "build it as a SymPy expression or a Python callable instead"
        ) from exc
    _check_depth(tree, where, shown)

    def token(node: ast.AST) -> str:
        return ast.get_source_segment(text.strip(), node) or type(node).__name__

    def refuse(node: ast.AST, what: str) -> ExpressionError:
        return ExpressionError(
            f"{where}: {what} {token(node)!r} is not allowed in {shown!r}; only numbers, the declared "
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
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            return chain(node)
        if isinstance(node, ast.BinOp):
            op = _BINOPS.get(type(node.op))
            if op is None:
                raise ExpressionError(
                    f"{where}: operator {_OP_TOKENS.get(type(node.op), type(node.op).__name__)!r} "
                    f"in {token(node)!r} is not allowed; use + - * / **"
                )
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow):
                _check_power(left, right, where, lambda: token(node))
            return op(left, right)
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

    def chain(node: ast.BinOp) -> sp.Expr:
        """A left-nested chain a ± b ± c … (or a */ b */ c …) without recursing once per operand."""
        additive = isinstance(node.op, (ast.Add, ast.Sub))
        ops = (ast.Add, ast.Sub) if additive else (ast.Mult, ast.Div)
        rest = []
        while isinstance(node, ast.BinOp) and isinstance(node.op, ops):
            rest.append((node.op, node.right))
            node = node.left
        terms = [walk(node)]
        for op, right in reversed(rest):
            r = walk(right)
            if additive:
                terms.append(r if isinstance(op, ast.Add) else -r)
            else:
                terms.append(r if isinstance(op, ast.Mult) else 1 / r)
        return sp.Add(*terms) if additive else sp.Mul(*terms)

    try:
        return walk(tree)
    except RecursionError as exc:
        raise ExpressionError(
            f"{where}: {shown!r} is nested too deeply to build; simplify it or pass a SymPy expression"
        ) from exc


def _check_depth(tree: ast.AST, where: str, shown: str) -> None:
    """Refuse trees nested deeper than :data:`MAX_DEPTH` (+ - * / chains count once), iteratively."""
    chains = (ast.Add, ast.Sub, ast.Mult, ast.Div)
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ExpressionError(
                f"{where}: {shown!r} is nested more than {MAX_DEPTH} levels deep (powers, calls, "
                "parentheses); symfp refuses it rather than overflow the stack. Simplify the expression"
            )
        for child in ast.iter_child_nodes(node):
            same_chain = (
                isinstance(node, ast.BinOp) and isinstance(child, ast.BinOp) and child is node.left
                and isinstance(node.op, chains) and isinstance(child.op, chains)
            )
            stack.append((child, depth if same_chain else depth + 1))


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
