"""SymPy → UFL: integrals of translated expressions against SymPy/scipy quadrature; refusals."""

from __future__ import annotations

import pytest
import sympy as sp
from scipy import integrate

from symfp.errors import ExpressionError

pytestmark = pytest.mark.fem
x, y = sp.symbols("x y", real=True)


def _fe_integral(expr, n=24, degree=8):
    """∫_{[0,1]x[0.5,1.5]} expr with the translated UFL expression and a degree-8 quadrature."""
    from symfp.fem.dolfinx import compat
    from symfp.fem.dolfinx.mesh import box
    from symfp.fem.dolfinx.translate import to_ufl

    m = compat.dolfinx_modules()
    msh = box([(0, 1), (0.5, 1.5)], cells=n).mesh
    X = m.ufl.SpatialCoordinate(msh)
    e = to_ufl(expr, (x, y), X)
    dx = m.ufl.dx(domain=msh, metadata={"quadrature_degree": degree})
    return compat.assemble_scalar(compat.form(e * dx), msh.comm)


def _reference(expr):
    f = sp.lambdify((x, y), expr, "numpy")
    val, _ = integrate.dblquad(lambda yy, xx: float(f(xx, yy)), 0, 1, 0.5, 1.5, epsabs=1e-13, epsrel=1e-13)
    return val


SMOOTH = [
    x**3 * y - 2 * x * y**2 + 1,
    (1 + x) / (2 + y**2),
    sp.exp(-x * y) * sp.log(1 + y) + (1 + x) ** sp.Rational(3, 2) + sp.sqrt(y),
    sp.sin(x) * sp.cos(y) + sp.tan(x / 2) + sp.atan(y) + sp.asin(x / 2) + sp.acos(y / 2),
    sp.sinh(x) + sp.cosh(y) + sp.tanh(x - y) + sp.asinh(x) + sp.sech(y) + sp.coth(y + 1),
    sp.erf(x - y) + sp.atan2(y, x + 1) + sp.pi * sp.E + y ** (-2) + (x + 1)**0.7,
]


@pytest.mark.parametrize("expr", SMOOTH, ids=range(len(SMOOTH)))
def test_smooth_expressions_integrate_like_sympy(expr):
    # degree-8 Gauss quadrature on cells of size 1/24 integrates these analytic functions to ~1e-12;
    # the reference is adaptive quadrature at 1e-13.
    assert abs(_fe_integral(expr) - _reference(expr)) < 1e-10 * max(1, abs(_reference(expr)))


# kinks and jumps along the mesh lines x = 0.5, y = 1 (multiples of 1/24 shifted), so quadrature is exact
NONSMOOTH = [
    sp.Abs(x - sp.Rational(1, 2)) * y,
    sp.Min(x, 1 - x) * y + sp.Max(x - sp.Rational(1, 2), 0) * sp.Max(1, y),
    sp.Piecewise((x**2, x < sp.Rational(1, 2)), (y, y >= 1), (1 - x, True)),
    sp.Heaviside(x - sp.Rational(1, 2)) * y + sp.Heaviside(y - 1, 1),
    sp.Piecewise((1, sp.And(x > sp.Rational(1, 2), y < 1)), (2, sp.Or(x < sp.Rational(1, 4), sp.Not(y < 1))),
                 (0, True)),
]


@pytest.mark.parametrize("expr", NONSMOOTH, ids=range(len(NONSMOOTH)))
def test_nonsmooth_expressions_with_kinks_on_mesh_lines(expr):
    pieces = [(a, b, c, d) for a, b in [(0, 0.5), (0.5, 1)] for c, d in [(0.5, 1), (1, 1.5)]]
    ref = sum(_reference_piece(expr, *p) for p in pieces)
    assert abs(_fe_integral(expr) - ref) < 1e-10


def _reference_piece(expr, a, b, c, d):
    f = sp.lambdify((x, y), expr, "numpy")
    val, _ = integrate.dblquad(lambda yy, xx: float(f(xx, yy)), a, b, c, d, epsabs=1e-13, epsrel=1e-13)
    return val


def test_matrices_and_vectors():
    from symfp.fem.dolfinx import compat
    from symfp.fem.dolfinx.mesh import box
    from symfp.fem.dolfinx.translate import to_ufl

    m = compat.dolfinx_modules()
    msh = box([(0, 1), (0.5, 1.5)], cells=4).mesh
    X = m.ufl.SpatialCoordinate(msh)
    b = to_ufl(sp.Matrix([-x, x * y]), (x, y), X)
    D = to_ufl(sp.Matrix([[1, x], [x, y**2]]), (x, y), X)
    assert b.ufl_shape == (2,) and D.ufl_shape == (2, 2)
    # ∫ b·(D b) = ∫ x² − 2x²·xy·... computed symbolically
    bs, Ds = sp.Matrix([-x, x * y]), sp.Matrix([[1, x], [x, y**2]])
    ref = float(sp.integrate((bs.T * Ds * bs)[0], (x, 0, 1), (y, sp.Rational(1, 2), sp.Rational(3, 2))))
    val = compat.assemble_scalar(compat.form(m.ufl.dot(b, D * b) * m.ufl.dx), msh.comm)
    assert abs(val - ref) < 1e-12
    assert to_ufl([x, 2], (x, y), X).ufl_shape == (2,)


def test_untranslatable_is_refused_by_name():
    from symfp.fem.dolfinx import compat
    from symfp.fem.dolfinx.mesh import box
    from symfp.fem.dolfinx.translate import to_ufl

    m = compat.dolfinx_modules()
    X = m.ufl.SpatialCoordinate(box([(0, 1), (0, 1)], cells=1).mesh)
    k = sp.Symbol("k")
    with pytest.raises(ExpressionError, match=r"free symbol k .*\.subs\(\{k: value\}\).*variables: x, y"):
        to_ufl(k * x, (x, y), X)
    with pytest.raises(ExpressionError, match="undefined function g"):
        to_ufl(sp.Function("g")(x), (x, y), X)
    with pytest.raises(ExpressionError, match="function 'gamma'"):
        to_ufl(sp.gamma(x + 1), (x, y), X)
    with pytest.raises(ExpressionError, match="complex"):
        to_ufl(sp.I * x, (x, y), X)
    with pytest.raises(ExpressionError, match="without an otherwise"):
        to_ufl(sp.Piecewise((x, x < 1)), (x, y), X)
