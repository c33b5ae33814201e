"""symfp.modified_equation: backward error analysis against reference case 6 and closed forms."""

import pytest
import sympy as sp

import symfp
from symfp.errors import InputError

y, h, lam = sp.symbols("y h lambda")
y1, y2 = sp.symbols("y1 y2")


def test_reference_case_6_euler_y_squared():
    out = symfp.modified_equation(lambda u: u + h * u**2, y, h, order=4)
    coeffs = [sp.Poly(out, h).coeff_monomial(h**k) for k in range(5)]
    ref = [y**2, -(y**3), sp.Rational(3, 2) * y**4, -sp.Rational(8, 3) * y**5, sp.Rational(31, 6) * y**6]
    assert all(sp.expand(c - r) == 0 for c, r in zip(coeffs, ref, strict=True))
    assert sp.degree(out, h) == 4


def test_linear_map_matches_logarithm_series():
    """Euler on y' = lam y: the modified field is exactly log(1 + h lam)/h * y (all orders)."""
    order = 5
    out = symfp.modified_equation(y + h * lam * y, y, h, order)
    exact = sp.series(sp.log(1 + h * lam) / h * y, h, 0, order + 1).removeO()
    assert sp.expand(out - exact) == 0


def test_two_d_general_formula():
    """Vector case: f~ = f - h/2 f'f + h^2/12 (f''(f,f) + 4 f'f'f), f computed independently."""
    state = [y1, y2]
    f = sp.Matrix([y1 * y2, y1 - y2**2])
    J = f.jacobian(state)
    hess_ff = sp.Matrix([(f.T * sp.hessian(f[i], state) * f)[0] for i in range(2)])
    ref = f - h / 2 * J * f + h**2 / 12 * (hess_ff + 4 * J * J * f)
    out = symfp.modified_equation(sp.Matrix(state) + h * f, state, h, order=2)
    assert (out - ref).applyfunc(sp.expand) == sp.zeros(2, 1)


def test_exact_flow_has_no_correction():
    """The exact flow of y' = -y, y -> y e^{-h}, is its own modified equation: f~ = -y at every order."""
    out = symfp.modified_equation(lambda u, hh: u * sp.exp(-hh), y, h, order=4)
    assert sp.expand(out + y) == 0


def test_second_order_method_has_no_h_term():
    """Heun's method (order 2) on y' = y^2: f~ = f + O(h^2), the h coefficient vanishes."""
    step = y + h / 2 * (y**2 + (y + h * y**2) ** 2)
    out = symfp.modified_equation(step, y, h, order=2)
    assert sp.expand(out).coeff(h, 0) == y**2 and sp.expand(out).coeff(h, 1) == 0
    assert sp.expand(out).coeff(h, 2) != 0


@pytest.mark.parametrize(
    "args, msg",
    [
        ((y + h * y, y, h, -1), "order = -1 must be a whole number"),
        ((y + h * y, y, h, 1.5), "order = 1.5 must be a whole number"),
        ((2 * y + h, y, h, 1), r"not the identity \(Phi_0\(y\) - y = \[y\]\)"),
        ((y + h * y, y, 0.1, 1), "h = 0.1 must be a SymPy Symbol"),
        (([y1 + h, y2], [y1, y2, y], h, 1), r"step has shape \(2, 1\), expected \(3, 1\)"),
    ],
)
def test_bad_input(args, msg):
    with pytest.raises(InputError, match=msg):
        symfp.modified_equation(*args)
