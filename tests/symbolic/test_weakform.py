"""The weak-form IR equals the strong form integrated against v (integration by parts, exactly)."""

from __future__ import annotations

import pytest
import sympy as sp

from symfp.errors import InputError, SymfpError
from symfp.symbolic.sde import SDE
from symfp.symbolic.weakform import exit_time_form, forward_form, make_term, stationary_form

x, y = sp.symbols("x y", real=True)
eps = sp.Symbol("epsilon", positive=True)


def flux(u, b, D, state):
    """J = b u - div(D u), written out independently of symfp."""
    d = len(state)
    return sp.Matrix(
        [b[i] * u - sum(sp.diff(D[i, j] * u, state[j]) for j in range(d)) for i in range(d)]
    )


def div(J, state):
    return sum(sp.diff(J[i], s) for i, s in enumerate(state))


def generator(u, b, D, state):
    """L u = b.grad u + D : Hess u."""
    d = len(state)
    return sum(b[i] * sp.diff(u, state[i]) for i in range(d)) + sum(
        D[i, j] * sp.diff(u, state[i], state[j]) for i in range(d) for j in range(d)
    )


def square_boundary(F, v):
    """Outward boundary integral of (F.n) v over the unit square [0,1]^2."""
    g = F * v
    return (
        sp.integrate(g[0].subs(x, 1) - g[0].subs(x, 0), (y, 0, 1))
        + sp.integrate(g[1].subs(y, 1) - g[1].subs(y, 0), (x, 0, 1))
    )


def square(e):
    return sp.integrate(sp.expand(e), (x, 0, 1), (y, 0, 1))


# a 2-D SDE with state-dependent, non-diagonal D and a non-gradient drift
B2 = sp.Matrix([1 - x**2 + y, x * y - 2])
D2 = sp.Matrix([[1 + x**2, x * y / 2], [x * y / 2, 2 + y]])
U2 = x**2 * y + 3 * x - y**3 + 1
V2 = 2 * x * y**2 - x + y**2 + 5


def test_forward_form_is_strong_form_integrated_by_parts_on_square():
    sde = SDE([x, y], B2, D2)
    wf = forward_form(sde)
    J = flux(U2, B2, D2, (x, y))
    # a(u, v) = ∫ (div J) v - ∮ (J.n) v   (strong form ∂t p = -div J tested with v)
    lhs = square(wf.bilinear_integrand(U2, V2))
    rhs = square(div(J, (x, y)) * V2) - square_boundary(J, V2)
    assert sp.simplify(lhs - rhs) == 0
    assert lhs != 0  # the check is not vacuous
    assert wf.mass == 1 and wf.time_dependent
    assert [t.kind for t in wf.bilinear] == ["diffusion", "advection"]
    # zero flux natural, no Dirichlet part
    assert [bc.kind for bc in wf.boundary] == ["natural"] and wf.dirichlet_parts() == ()


def test_forward_form_conserves_mass_v_equal_one():
    sde = SDE([x, y], B2, D2)
    wf = forward_form(sde)
    # ∫ operator against v = 1 vanishes for every u: only the boundary flux can change the mass
    assert sp.expand(wf.bilinear_integrand(U2, sp.S.One)) == 0
    J = flux(U2, B2, D2, (x, y))
    assert sp.simplify(square(div(J, (x, y))) - square_boundary(J, sp.S.One)) == 0


def test_forward_form_1d_interval_with_zero_flux_solution():
    # 1-D: b = -x, D = 1 + x^2/2; J(u) at the ends enters only as a boundary term
    b, D = sp.Matrix([-x]), sp.Matrix([[1 + x**2 / 2]])
    wf = forward_form(SDE([x], b, D))
    u, v = x**3 - 2 * x + 1, x**2 + 3
    J = flux(u, b, D, (x,))[0]
    lhs = sp.integrate(wf.bilinear_integrand(u, v), (x, -1, 2))
    rhs = sp.integrate(sp.diff(J, x) * v, (x, -1, 2)) - ((J * v).subs(x, 2) - (J * v).subs(x, -1))
    assert sp.simplify(lhs - rhs) == 0
    # c = b - D' appears with a minus sign in the advection term
    (adv,) = wf.terms("advection")
    assert sp.simplify(adv.coefficient[0] - (-(b[0] - sp.diff(D[0], x)))) == 0


def test_exit_time_form_is_minus_generator_integrated_by_parts():
    sde = SDE([x, y], B2, D2)
    wf = exit_time_form(sde)
    # a(u, v) = ∫ (-L u) v + ∮ ((D grad u).n) v ;  L(v) = ∫ v
    Dgrad = D2 * sp.Matrix([sp.diff(U2, x), sp.diff(U2, y)])
    lhs = square(wf.bilinear_integrand(U2, V2))
    rhs = square(-generator(U2, B2, D2, (x, y)) * V2) + square_boundary(Dgrad, V2)
    assert sp.simplify(lhs - rhs) == 0
    assert square(wf.linear_integrand(V2)) == square(V2)
    assert wf.mass is None and wf.dirichlet_parts() is None


def test_exit_time_form_absorbing_parts_and_reflection():
    wf = exit_time_form(SDE([x], -x, 1), absorbing="xmax")
    kinds = {bc.kind: bc for bc in wf.boundary}
    assert kinds["dirichlet"].parts == ("xmax",) and kinds["dirichlet"].value == 0
    assert kinds["natural"].parts is None  # the remaining parts reflect
    assert wf.dirichlet_parts() == ("xmax",)
    with pytest.raises(InputError, match="absorbing must be None or boundary part names"):
        exit_time_form(SDE([x], -x, 1), absorbing=[3])


def test_stationary_form_kernel_contains_gibbs_density_and_unit_mass():
    f = x**4 / 4 - x**2 / 2
    rho = sp.exp(-f / eps)
    wf = stationary_form(SDE([x], -sp.diff(f, x), eps))
    # J(rho) = 0, so a(rho, v) = -∫ J(rho) v' vanishes pointwise for any v
    assert sp.simplify(wf.bilinear_integrand(rho, x**5 + x)) == 0
    assert wf.constraint is not None and wf.constraint.value == 1 and wf.constraint.weight == 1
    assert wf.mass is None


def test_symmetrised_form_equals_forward_form_for_p_equal_rho_u_2d():
    # detailed balance by construction: rho = exp(-f), c = D grad rho / rho = -D grad f, b = c + div D
    f = x**2 / 2 + y**2 / 2 + x * y / 4
    D = sp.Matrix([[1 + x**2, 0], [0, 2 + y**2]])
    divD = sp.Matrix([sp.diff(D[0, 0], x) + sp.diff(D[0, 1], y), sp.diff(D[1, 0], x) + sp.diff(D[1, 1], y)])
    b = -D * sp.Matrix([sp.diff(f, x), sp.diff(f, y)]) + divD
    rho = sp.exp(-f)
    sde = SDE([x, y], b, D)
    sym = forward_form(sde, symmetrised=True, density=rho)
    plain = forward_form(sde)
    u, v = x * y + x**2 + 1, y - x**3
    # same bilinear form after p = rho u, and positive symmetric: only a diffusion term
    assert sp.simplify(sym.bilinear_integrand(u, v) - plain.bilinear_integrand(rho * u, v)) == 0
    assert [t.kind for t in sym.bilinear] == ["diffusion"]
    assert sp.simplify(sym.mass - rho) == 0 and sym.density_factor == rho
    K = sym.bilinear[0].coefficient
    assert sp.simplify(K - K.T) == sp.zeros(2, 2)


def test_symmetrised_form_rejects_density_without_zero_flux():
    sde = SDE([x], -x, 1)
    with pytest.raises(InputError, match="does not have zero flux"):
        forward_form(sde, symmetrised=True, density=sp.exp(-(x**2)))  # true one is exp(-x^2/2)


def test_latex_and_subs():
    wf = forward_form(SDE([x, y], B2 * eps, D2))
    tex = wf.latex()
    assert r"\partial_t p" in tex and r"\nabla v" in tex and r"\cdot n = 0" in tex
    assert wf.parameters == {eps}
    num = wf.subs({"epsilon": 2})
    assert num.parameters == set()
    c_num, c_sym = num.terms("advection")[0].coefficient, wf.terms("advection")[0].coefficient
    assert sp.simplify(c_num - c_sym.subs(eps, 2)) == sp.zeros(2, 1)
    et = exit_time_form(SDE([x], -x, 1), absorbing=["xmin", "xmax"]).latex()
    assert r"\tau = 0" in et and r"\Gamma_{\mathrm{xmin,xmax}}" in et


def test_bad_input_messages():
    with pytest.raises(InputError, match="expected a symfp.SDE"):
        forward_form(object())
    with pytest.raises(InputError, match="unknown kind 'convection'; use one of diffusion"):
        make_term("convection", sp.Matrix([1]), 1)
    with pytest.raises(SymfpError, match=r"shape \(1, 1\), expected \(2, 2\)"):
        make_term("diffusion", sp.Matrix([1]), 2)
    wf = forward_form(SDE([x], -x, eps))
    with pytest.raises(InputError, match="cannot substitute for state variables"):
        wf.subs({x: 1})


def test_forward_form_carries_the_time_symbol_of_a_schedule():
    th, t, eta = sp.symbols("theta t eta", real=True)
    sde = SDE([th], -(1 + t) * th, eta * sp.exp(-t), time=t)
    wf = forward_form(sde)
    assert wf.time == t and not wf.is_autonomous
    assert wf.parameters == {eta}  # t is the time level, not a parameter
    sub = wf.subs({eta: sp.Rational(1, 10)})
    assert sub.time == t and sub.parameters == set() and not sub.is_autonomous
    with pytest.raises(InputError, match="time"):
        wf.subs({t: 1})
    assert exit_time_form(sde).time == t and stationary_form(sde).time == t
    auto = forward_form(SDE([th], -th, 1, time=t))
    assert auto.time == t and auto.is_autonomous
    assert forward_form(SDE([th], -th, 1)).time is None
