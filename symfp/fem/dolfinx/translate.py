r"""SymPy → UFL: turn drift, diffusion and densities written in SymPy into UFL expressions.

``to_ufl(expr, state, x)`` maps the state symbols :math:`\theta_i` to the components :math:`x_i` of
``ufl.SpatialCoordinate(mesh)`` and rebuilds the expression tree node by node:

- numbers (integers, rationals, floats, :math:`\pi`, :math:`e`) → Python floats;
- ``Add``, ``Mul``, ``Pow`` (integer powers exactly, :math:`a^{1/2}` as ``sqrt``, other real powers
  as ``a**p``);
- ``exp``, ``log``, ``sqrt``, trigonometric (sin, cos, tan, cot, sec, csc, asin, acos, atan, atan2),
  hyperbolic (sinh, cosh, tanh, coth, sech, csch, asinh, acosh, atanh via logarithms), ``erf``;
- ``Abs``, ``sign``, ``Min``, ``Max``, ``Heaviside`` (with :math:`H(0)` as SymPy defines it),
  ``Piecewise`` (nested ``conditional``), relations and ``And``/``Or``/``Not``;
- matrices: a d×1 or 1×d matrix becomes ``as_vector``, an m×n one ``as_matrix``.

A coefficient holding data-means (a drift or diffusion over a data set) is not inlined: it is
evaluated numerically at the degrees of freedom of a P1 space (:mod:`symfp.fem.coefficients`: a
vectorised reduction over the samples) and enters the form as that finite-element function. P1 keeps
an interpolated PSD matrix PSD (convex combinations of the nodal matrices); the interpolation error is
O(h²). The time spent is in :data:`symfp.fem.coefficients.TIMER`, reported in the solution's ``info``.

Anything else (an unknown function, a free parameter that is not a state symbol, an integral) is
refused with an :class:`~symfp.errors.ExpressionError` that names it. Functions that SymPy can
rewrite into the above (``expr.rewrite(exp)``, ``Piecewise``) are rewritten first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sympy as sp

from ...errors import ExpressionError
from ...symbolic.datamean import has_data_nodes


def _ufl():
    import ufl

    return ufl


def to_ufl(expr: Any, state: Sequence[sp.Symbol], x: Any,
           symbols: Mapping[sp.Symbol, Any] | None = None) -> Any:
    """Translate a SymPy expression or matrix into UFL.

    Args:
        expr: a SymPy expression, matrix, Python number, or list of them.
        state: the state symbols; ``state[i]`` becomes ``x[i]``.
        x: ``ufl.SpatialCoordinate(mesh)`` (indexable; a 1-D mesh uses ``x[0]``).
        symbols: further symbols and the UFL objects they become, e.g. the time symbol t →
            a ``dolfinx.fem.Constant`` updated every step (so the form is compiled once).

    Returns:
        A UFL expression (scalar, vector or matrix).

    Raises:
        ExpressionError: a node that cannot be translated, named in the message.
    """
    ufl = _ufl()
    if isinstance(expr, (list, tuple)):
        expr = sp.Matrix(expr)
    if isinstance(expr, sp.MatrixBase):
        m = sp.Matrix(expr)
        if m.shape[1] == 1 or m.shape[0] == 1:
            return ufl.as_vector([to_ufl(e, state, x, symbols) for e in m])
        rows, cols = m.shape
        return ufl.as_matrix([[to_ufl(m[i, j], state, x, symbols) for j in range(cols)] for i in range(rows)])
    try:
        e = sp.sympify(expr)
    except (sp.SympifyError, TypeError) as exc:
        raise ExpressionError(f"to_ufl: {expr!r} is not a SymPy expression") from exc
    if has_data_nodes(e):
        return _data_coefficient(e, tuple(state), x, symbols)
    index = {s: i for i, s in enumerate(state)}
    return ufl.as_ufl(_Translator(index, x, e, symbols).run(e))


_SPACES: dict[int, Any] = {}
_VALUES: dict[tuple[int, sp.Basic], Any] = {}


def _python_mesh(x: Any) -> Any:
    """The dolfinx mesh of a ``SpatialCoordinate`` (0.5.2 stores the C++ mesh as the UFL cargo)."""
    from dolfinx import mesh as dmesh

    domain = x.ufl_domain()
    cargo = domain.ufl_cargo()
    if isinstance(cargo, dmesh.Mesh):
        return cargo
    return dmesh.Mesh(cargo, domain)


def _data_coefficient(e: sp.Expr, state: tuple[sp.Symbol, ...], x: Any,
                      symbols: Mapping[sp.Symbol, Any] | None) -> Any:
    """A data-mean coefficient as a P1 function (values at the local dofs, ghosts included)."""
    from .. import coefficients
    from . import compat

    if symbols and e.free_symbols & set(symbols):
        names = ", ".join(sorted(str(s) for s in e.free_symbols & set(symbols)))
        raise ExpressionError(f"to_ufl: a data-mean coefficient that depends on {names} (e.g. the time) is "
                              "not supported; substitute a number")
    msh = _python_mesh(x)
    key = id(msh.ufl_domain())
    if key not in _SPACES:
        _SPACES[key] = compat.function_space(msh, *coefficients.SPACE)
    V = _SPACES[key]
    if (key, e) not in _VALUES:
        from dolfinx import fem

        pts = V.tabulate_dof_coordinates()[:, : len(state)]
        u = fem.Function(V)
        u.x.array[:] = coefficients.evaluate(e, state, pts)
        _VALUES[(key, e)] = u
        if len(_VALUES) > 256:  # bounded: old meshes' functions go
            _VALUES.pop(next(iter(_VALUES)))
    return _VALUES[(key, e)]


def p1_dof_points(msh: Any, d: int) -> np.ndarray:
    """This rank's P1 dof coordinates (n, d) of a dolfinx mesh: the points where data-mean coefficients
    are evaluated (the same array for the pre-solve checks, the Péclet number and the forms, so that
    the memoised data-mean values are shared)."""
    from .. import coefficients
    from . import compat

    key = id(msh.ufl_domain())
    if key not in _SPACES:
        _SPACES[key] = compat.function_space(msh, *coefficients.SPACE)
    return _SPACES[key].tabulate_dof_coordinates()[:, :d]


def prefetch_data_coefficients(exprs: Any, state: tuple[sp.Symbol, ...], x: Any) -> int:
    """Evaluate the data-means of all coefficient entries at the P1 dofs in one shared pass.

    Call before translating the entries one by one (:func:`to_ufl`): each entry then only evaluates
    its outer expression on the memoised node values (see :func:`symfp.fem.coefficients.prefetch`).
    Local to each rank (no communication). Returns the number of data-mean nodes evaluated.
    """
    from .. import coefficients
    from . import compat

    entries = [e for e in exprs if has_data_nodes(e)]
    if not entries:
        return 0
    msh = _python_mesh(x)
    key = id(msh.ufl_domain())
    if key not in _SPACES:
        _SPACES[key] = compat.function_space(msh, *coefficients.SPACE)
    pts = _SPACES[key].tabulate_dof_coordinates()[:, : len(state)]
    return coefficients.prefetch(entries, state, pts)


def cell_mean_functions(c: sp.Matrix, D: sp.Matrix, state: tuple[sp.Symbol, ...],
                        msh: Any) -> tuple[Any, Any]:
    r"""Data-mean drift and diffusion at the owned cells' centroids, from their P1 interpolants.

    The coefficients the solve uses are the P1 interpolants (nodal values at the dofs, one shared
    pass over the data); at a triangle's centroid the interpolant is the mean of its three nodal
    values, so the cell Péclet number is computed from exactly the coefficients of the forms, without
    a second reduction over the data at the midpoints (which would cost twice the dof pass).

    Returns:
        Two callables ``c(*X)``, ``D(*X)`` in the form :func:`~.stabilise.cell_peclet` expects (the
        coordinates X of the midpoints are not used: the values follow the owned cells' order).
    """
    from .. import coefficients
    from . import compat

    key = id(msh.ufl_domain())
    if key not in _SPACES:
        _SPACES[key] = compat.function_space(msh, *coefficients.SPACE)
    V = _SPACES[key]
    d = len(state)
    pts = V.tabulate_dof_coordinates()[:, :d]
    coefficients.prefetch([c, D], state, pts)
    dm = V.dofmap.list
    cells = (np.asarray(dm.array).reshape(-1, len(dm.links(0))) if hasattr(dm, "links")
             else np.asarray(dm))[: compat.owned_cells(msh)]

    def at_cells(e: sp.Expr) -> np.ndarray:
        return coefficients.evaluate(e, state, pts)[cells].mean(axis=1)

    cv = [at_cells(c[i]) for i in range(d)]
    Dv = [[at_cells(D[i, j]) for j in range(d)] for i in range(d)]
    return (lambda *X: cv), (lambda *X: Dv)


class _Translator:
    def __init__(self, index: dict[sp.Symbol, int], x: Any, whole: sp.Basic,
                 symbols: Mapping[sp.Symbol, Any] | None = None):
        self.index = index
        self.symbols = dict(symbols or {})
        self.x = x
        self.whole = whole
        self.ufl = _ufl()

    def fail(self, node: sp.Basic, why: str) -> ExpressionError:
        return ExpressionError(f"to_ufl: cannot translate {why} {node} (in {self.whole}). {self._hint(node)}")

    def _hint(self, node: sp.Basic) -> str:
        if isinstance(node, sp.Symbol):
            names = ", ".join(str(s) for s in self.index) or "none"
            return (f"Substitute numbers for parameters with .subs({{{node}: value}}); "
                    f"state variables: {names}.")
        return "Rewrite it with elementary functions, Piecewise, Min/Max or Abs."

    def run(self, e: sp.Basic) -> Any:  # noqa: C901 - one dispatch table
        ufl = self.ufl
        if isinstance(e, bool) or e in (sp.true, sp.false):
            raise self.fail(e, "the bare boolean")
        if e.is_number and e.is_real is False:
            raise self.fail(e, "the complex number")
        if e.is_Number or e in (sp.pi, sp.E, sp.EulerGamma):
            if not e.is_real:
                raise self.fail(e, "the complex number")
            v = float(e)
            return v
        if isinstance(e, sp.Symbol):
            if e in self.index:
                return self.x[self.index[e]]
            if e in self.symbols:
                return self.symbols[e]
            raise self.fail(e, "the free symbol")
        args = e.args
        if isinstance(e, sp.Add):
            out = self.run(args[0])
            for a in args[1:]:
                out = out + self.run(a)
            return out
        if isinstance(e, sp.Mul):
            out = self.run(args[0])
            for a in args[1:]:
                out = out * self.run(a)
            return out
        if isinstance(e, sp.Pow):
            base, p = args
            if p == sp.Rational(1, 2):
                return ufl.sqrt(self.run(base))
            if p == -sp.Rational(1, 2):
                return 1.0 / ufl.sqrt(self.run(base))
            if base == sp.E:
                return ufl.exp(self.run(p))
            if p.is_Integer:
                n = int(p)
                b = self.run(base)
                if n == 0:
                    return 1.0
                out = b
                for _ in range(abs(n) - 1):
                    out = out * b
                return out if n > 0 else 1.0 / out
            return self.run(base) ** self.run(p)
        simple = {
            sp.exp: ufl.exp, sp.log: ufl.ln, sp.sin: ufl.sin, sp.cos: ufl.cos, sp.tan: ufl.tan,
            sp.asin: ufl.asin, sp.acos: ufl.acos, sp.atan: ufl.atan, sp.sinh: ufl.sinh,
            sp.cosh: ufl.cosh, sp.tanh: ufl.tanh, sp.erf: ufl.erf, sp.Abs: abs, sp.sign: ufl.sign,
        }
        if e.func in simple and len(args) == 1:
            return simple[e.func](self.run(args[0]))
        if isinstance(e, sp.log) and len(args) == 2:
            return ufl.ln(self.run(args[0])) / ufl.ln(self.run(args[1]))
        if e.func is sp.atan2:
            return ufl.atan2(self.run(args[0]), self.run(args[1])) if hasattr(ufl, "atan2") \
                else ufl.atan_2(self.run(args[0]), self.run(args[1]))
        reciprocal = {sp.cot: ufl.tan, sp.sec: ufl.cos, sp.csc: ufl.sin, sp.coth: ufl.tanh,
                      sp.sech: ufl.cosh, sp.csch: ufl.sinh}
        if e.func in reciprocal:
            return 1.0 / reciprocal[e.func](self.run(args[0]))
        if e.func in (sp.asinh, sp.acosh, sp.atanh):
            return self.run(e.rewrite(sp.log))
        if isinstance(e, (sp.Min, sp.Max)):
            f = ufl.min_value if isinstance(e, sp.Min) else ufl.max_value
            out = self.run(args[0])
            for a in args[1:]:
                out = f(out, self.run(a))
            return out
        if isinstance(e, sp.Heaviside):
            a = self.run(args[0])
            h0 = args[1] if len(args) > 1 else sp.Rational(1, 2)
            if h0 is sp.nan or not h0.is_number:
                h0 = sp.Rational(1, 2)
            return ufl.conditional(ufl.gt(a, 0), 1.0, ufl.conditional(ufl.lt(a, 0), 0.0, float(h0)))
        if isinstance(e, sp.Piecewise):
            return self._piecewise(e)
        if isinstance(e, sp.core.relational.Relational):
            return self._condition(e)
        if isinstance(e, (sp.And, sp.Or, sp.Not)):
            return self._condition(e)
        if isinstance(e, sp.core.function.AppliedUndef):
            raise self.fail(e, "the undefined function")
        # functions SymPy knows how to express with exp/log or Piecewise (e.g. user-defined ones)
        for target in (sp.exp, sp.Piecewise, sp.log):
            try:
                r = e.rewrite(target)
            except Exception:  # noqa: BLE001 - SymPy rewrite may raise anything
                continue
            if r != e:
                return self.run(r)
        try:
            r = e.doit()
        except Exception:  # noqa: BLE001
            r = e
        if r != e:
            return self.run(r)
        raise self.fail(e, f"the function '{e.func.__name__}' in")

    def _piecewise(self, e: sp.Piecewise) -> Any:
        ufl = self.ufl
        pieces = list(e.args)
        last_val, last_cond = pieces[-1]
        if last_cond == sp.true:
            out = self.run(last_val)
            pieces = pieces[:-1]
        else:
            raise self.fail(e, "the Piecewise without an otherwise (True) branch,")
        for val, cond in reversed(pieces):
            if cond == sp.true:
                out = self.run(val)
                continue
            if cond == sp.false:
                continue
            out = ufl.conditional(self._condition(cond), self.run(val), out)
        return out

    def _condition(self, c: sp.Basic) -> Any:
        ufl = self.ufl
        rel = {sp.StrictLessThan: ufl.lt, sp.LessThan: ufl.le, sp.StrictGreaterThan: ufl.gt,
               sp.GreaterThan: ufl.ge, sp.Equality: ufl.eq, sp.Unequality: ufl.ne}
        if c.func in rel:
            return rel[c.func](self.run(c.args[0]), self.run(c.args[1]))
        if isinstance(c, sp.And):
            out = self._condition(c.args[0])
            for a in c.args[1:]:
                out = ufl.And(out, self._condition(a))
            return out
        if isinstance(c, sp.Or):
            out = self._condition(c.args[0])
            for a in c.args[1:]:
                out = ufl.Or(out, self._condition(a))
            return out
        if isinstance(c, sp.Not):
            return ufl.Not(self._condition(c.args[0]))
        raise self.fail(c, "the condition")
