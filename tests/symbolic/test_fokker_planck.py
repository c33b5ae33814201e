"""Fokker–Planck stage against closed forms (REFERENCE_CASES items 5, 8, 9) and exact identities."""

from __future__ import annotations

import sys
import types

import pytest
import sympy as sp

from symfp.errors import DependencyError, InputError
from symfp.symbolic.fokker_planck import FokkerPlanck
from symfp.symbolic.sde import SDE
from symfp.symbolic.weakform import forward_form

x, y, z = sp.symbols("x y z", real=True)
eps = sp.Symbol("epsilon", positive=True)
a, c = sp.symbols("a c", positive=True)


def grad(f, state):
    return sp.Matrix([sp.diff(f, s) for s in state])


def zero_flux(fp, rho):
    return all(sp.simplify(e) == 0 for e in fp.flux_of(rho))


# ------------------------------------------------------------------ item 5: Gibbs and 1-D densities
def test_double_well_gibbs_density_z_and_second_moment():
    f = x**4 / 4 - x**2 / 2
    fp = FokkerPlanck(SDE([x], -sp.diff(f, x), eps))
    rho = fp.stationary_density()
    assert sp.simplify(rho - sp.exp(-f / eps)) == 0
    assert "Gibbs" in fp.stationary_reason
    num = fp.subs({eps: sp.Rational(1, 10)})
    Z = num.normalization(numeric=True)
    m2 = num.stationary_expectation(x**2, numeric=True)
    assert Z == pytest.approx(15.1702, abs=1e-4)
    assert m2 == pytest.approx(0.871363, abs=1e-6)


def test_gibbs_density_2d_double_well_is_exp_minus_f_over_eps():
    f = (x**2 + y**2) ** 2 / 4 - x**2 / 2 + x * y / 3
    fp = FokkerPlanck(SDE([x, y], -grad(f, (x, y)), eps))
    rho = fp.stationary_density()
    # unique up to a constant factor: the ratio is free of the state
    assert sp.simplify(sp.log(rho) + f / eps).free_symbols <= {eps}
    assert "Gibbs" in fp.stationary_reason
    assert zero_flux(fp, rho)


def test_1d_state_dependent_diffusion_zero_flux_closed_form():
    # D = 1 + x^2, b = -x: rho ∝ D^{-1} exp(∫ b/D) = (1 + x^2)^{-3/2}
    fp = FokkerPlanck(SDE([x], -x, 1 + x**2))
    rho = fp.stationary_density()
    assert sp.simplify(rho - (1 + x**2) ** sp.Rational(-3, 2)) == 0
    assert sp.simplify(fp.flux_of(rho)[0]) == 0  # J ≡ 0 symbolically
    assert sp.simplify(fp.apply(rho)) == 0
    assert fp.normalization() == 2  # ∫ (1+x^2)^{-3/2} dx = 2
    assert "D^-1 exp" in fp.stationary_reason


def test_1d_multiplicative_noise_with_parameters():
    # geometric-type: b = a - x, D = eps x on x > 0 -> rho ∝ x^{a/eps - 1} e^{-x/eps}
    fp = FokkerPlanck(SDE([x], a - x, eps * x))
    rho = fp.stationary_density()
    assert sp.simplify(rho / (x ** (a / eps - 1) * sp.exp(-x / eps))).free_symbols <= {a, eps}
    assert sp.simplify(fp.flux_of(rho)[0]) == 0


# ------------------------------------------------------------------ detailed balance
def test_detailed_balance_2d_state_dependent_diffusion_and_its_potential():
    f = x**2 / 2 + y**2 / 2 + x * y / 4
    D = sp.Matrix([[1 + x**2, 0], [0, 2 + y**2]])
    divD = sp.Matrix([2 * x, 2 * y])
    b = -D * grad(f, (x, y)) + divD
    fp = FokkerPlanck(SDE([x, y], b, D))
    db = fp.detailed_balance()
    assert db.holds and bool(db)
    # ∇Φ = -D^{-1}(b - ∇·D)
    assert sp.simplify(grad(db.potential, (x, y)) + D.inv() * (b - divD)) == sp.zeros(2, 1)
    rho = fp.stationary_density()
    assert zero_flux(fp, rho) and sp.simplify(fp.apply(rho)) == 0
    assert "detailed balance" in fp.stationary_reason


def test_rotational_drift_fails_detailed_balance_with_reason():
    fp = FokkerPlanck(SDE([x, y], [-x - y, x - y], sp.eye(2)))
    db = fp.detailed_balance()
    assert not db.holds and db.potential is None
    assert "curl" in db.reason and "= 2 is not 0" in db.reason
    assert fp.stationary_density() is None
    assert "rotational" in fp.stationary_reason
    with pytest.raises(InputError, match="no closed-form stationary density"):
        fp.normalization()


def test_rotational_drift_3d_and_degenerate_noise_fail():
    fp3 = FokkerPlanck(SDE([x, y, z], [-x, -y + z, -z - y], sp.eye(3)))
    assert not fp3.detailed_balance().holds
    assert "dy F_z - dz F_y" in fp3.detailed_balance().reason
    # momentum SGD: noise only in the velocity -> singular D
    v = sp.Symbol("v", real=True)
    fpm = FokkerPlanck(SDE([x, v], [v, -x - v], sp.Matrix([[0, 0], [0, eps]])))
    assert not fpm.detailed_balance().holds
    assert "singular" in fpm.stationary_reason


def test_float_coefficients_from_data_round_off_is_not_mistaken_for_rotation():
    # SGD on (w1 w2 x - y)^2/2 over a finite data set: Σ_1 ∝ (w2, w1)(w2, w1)^T is rank one, but the
    # empirical moments are floats, so det D is ~1e-19 instead of 0: it must still be seen as singular
    import numpy as np

    import symfp

    w1, w2, xd, yd = sp.symbols("w1 w2 x y", real=True)
    rng = np.random.default_rng(0)
    xs = rng.normal(size=30)
    model = symfp.SGD(
        loss=(w1 * w2 * xd - yd) ** 2 / 2, params=[w1, w2],
        data=symfp.Dataset({xd: xs, yd: 0.5 * xs + 0.1 * rng.normal(size=30)}), lr=0.1, batch_size=4,
    )
    fp = model.sme(order=1).fokker_planck()
    assert not fp.detailed_balance().holds
    assert "singular" in fp.stationary_reason
    # and a float-coefficient gradient drift with isotropic noise passes, with the Gibbs density
    f = 0.1 * x**4 + 0.7 * x * y + 0.3 * y**2 + 0.2 * x**2
    fpg = FokkerPlanck(SDE([x, y], -grad(f, (x, y)) * 0.35, 0.35))
    rho = fpg.stationary_density()
    assert rho is not None
    g = sp.log(rho) + f  # constant: rho ∝ exp(-f)
    assert abs(float(g.subs({x: 0.3, y: -1.2}) - g.subs({x: 0, y: 0}))) < 1e-12


def test_float_zero_test_tolerance():
    from symfp.symbolic.fokker_planck import _cancels

    assert _cancels(0.1 * x + 0.2 * x, 0.3 * x)
    assert not _cancels(0.3 * x, 0.31 * x)
    assert not _cancels(x * eps, x)
    # float rotational drift: rejected by the numeric curl test, with the component named
    rot = FokkerPlanck(SDE([x, y], [-0.5 * x - 0.7 * y, 0.7 * x - 0.5 * y], 0.3))
    assert not rot.detailed_balance().holds
    assert "dx F_y - dy F_x is not 0 (relative size 2 at" in rot.detailed_balance().reason


def test_1d_always_detailed_balance():
    fp = FokkerPlanck(SDE([x], 1 - x**3, 2 + x**2))
    db = fp.detailed_balance()
    assert db.holds
    # Φ' = -(b - D')/D
    assert sp.simplify(sp.diff(db.potential, x) + (1 - x**3 - 2 * x) / (2 + x**2)) == 0
    assert zero_flux(fp, fp.stationary_density())


# ------------------------------------------------------------------ generator, operator, duality
def test_generator_and_operator_are_adjoint_on_the_line_and_plane():
    # ∫ (Lφ) p = ∫ φ (-div J(p)) for p decaying (Gaussian), φ polynomial
    fp = FokkerPlanck(SDE([x], 1 - x**3, 1 + x**2))
    p, phi = sp.exp(-(x**2)), x**3 + x
    lhs = sp.integrate(sp.expand(fp.generator(phi) * p), (x, -sp.oo, sp.oo))
    rhs = sp.integrate(sp.expand(phi * fp.apply(p)), (x, -sp.oo, sp.oo))
    assert sp.simplify(lhs - rhs) == 0 and lhs != 0
    fp2 = FokkerPlanck(SDE([x, y], [-x + y, -y], [[1, x / 2], [x / 2, 1 + y**2]]))
    p2, phi2 = sp.exp(-(x**2) - y**2), x**2 * y + y
    g = sp.expand(fp2.generator(phi2) * p2 - phi2 * fp2.apply(p2))
    assert sp.simplify(sp.integrate(g, (x, -sp.oo, sp.oo), (y, -sp.oo, sp.oo))) == 0


def test_ou_generator_and_expressions():
    # OU: L x^2 = -2 a x^2 + 2 D  (D = σ²/2)
    fp = FokkerPlanck(SDE([x], -a * x, eps))
    assert sp.expand(fp.generator(x**2)) == -2 * a * x**2 + 2 * eps
    p = fp.density
    assert fp.flux[0] == -a * x * p - eps * sp.diff(p, x)
    assert sp.simplify(fp.operator - (sp.diff(a * x * p, x) + eps * sp.diff(p, x, 2))) == 0
    phi = sp.Function("varphi")(x)
    assert sp.simplify(fp.generator.expr - (-a * x * sp.diff(phi, x) + eps * sp.diff(phi, x, 2))) == 0


# ------------------------------------------------------------------ items 8 and 9: exit times
def _residual(fp, tau):
    eq = fp.exit_time_equation()
    T = sp.Function("tau")(*fp.state)
    return sp.simplify(eq.lhs.subs(T, tau).doit() - eq.rhs)


@pytest.mark.parametrize(
    "drift, diff, lo, hi, known",
    [
        (0, eps, 0, 1, (1 - x**2) / (2 * eps)),  # pure diffusion, reflecting at 0
        (-1, 1, 0, 1, sp.E - sp.exp(x) - 1 + x),  # constant drift towards the reflecting end
        (1, x, a, c, (c - x) - a * (sp.log(c) - sp.log(x))),  # state-dependent D = x on [a, c]
    ],
)
def test_1d_exit_time_integral_formula_solves_minus_L_tau_equal_one(drift, diff, lo, hi, known):
    fp = FokkerPlanck(SDE([x], drift, diff))
    tau = fp.mean_exit_time_1d(reflecting=lo, absorbing=hi)
    assert not tau.has(sp.Integral)
    assert _residual(fp, tau) == 0
    assert sp.simplify(tau.subs(x, hi)) == 0  # absorbing
    assert sp.simplify(sp.diff(tau, x).subs(x, lo)) == 0  # reflecting
    assert sp.simplify(tau - known) == 0


@pytest.mark.parametrize("d", [2, 3])
def test_ball_exit_time_solves_minus_eps_laplacian(d):
    state = (x, y, z)[:d]
    R = sp.Symbol("R", positive=True)
    fp = FokkerPlanck(SDE(state, [0] * d, eps))
    r2 = sum(s**2 for s in state)
    tau = (R**2 - r2) / (2 * d * eps)
    assert _residual(fp, tau) == 0
    assert tau.subs(state[0], sp.sqrt(R**2 - sum(s**2 for s in state[1:]))).simplify() == 0


# ------------------------------------------------------------------ delegation and errors
def test_weak_form_delegation_and_symmetrised_default_density():
    f = x**4 / 4 - x**2 / 2
    fp = FokkerPlanck(SDE([x], -sp.diff(f, x), eps))
    assert fp.weak_form() == forward_form(fp.sde)
    assert fp.weak_form("exit_time", absorbing="xmax").dirichlet_parts() == ("xmax",)
    assert fp.weak_form("stationary").constraint.value == 1
    sym = fp.weak_form("symmetrised")
    assert sp.simplify(sym.density_factor - sp.exp(-f / eps)) == 0
    with pytest.raises(InputError, match="unknown kind 'backward'; use one of forward, symmetrised"):
        fp.weak_form("backward")
    rot = FokkerPlanck(SDE([x, y], [-x - y, x - y], sp.eye(2)))
    with pytest.raises(InputError, match="no closed-form zero-flux stationary density: detailed balance"):
        rot.weak_form("symmetrised")


def test_solve_and_exit_time_delegate_to_fem(monkeypatch):
    calls = {}
    fake = types.ModuleType("symfp.fem.dolfinx.forward")
    fake.solve = lambda fp, mesh, p0, t_end, dt, **kw: calls.setdefault("s", (fp, mesh, p0, t_end, dt, kw))
    monkeypatch.setitem(sys.modules, "symfp.fem.dolfinx.forward", fake)
    # backend "auto" resolves to dolfinx (as where it is installed), through the registry
    monkeypatch.setattr("symfp.fem.registry.importable", lambda name: True)
    fp = FokkerPlanck(SDE([x], -x, 1))
    out = fp.solve("MESH", x, 1.0, 0.1, theta=1)
    assert out == (fp, "MESH", x, 1.0, 0.1, {"theta": 1})
    # the import fails like a missing backend
    monkeypatch.setitem(sys.modules, "symfp.fem.dolfinx.exit_time", None)
    with pytest.raises(DependencyError, match="FokkerPlanck.mean_exit_time needs the Python module"):
        fp.mean_exit_time("MESH")


def test_normalization_errors_and_subs():
    fp = FokkerPlanck(SDE([x], 0, 1))
    assert fp.stationary_density() == 1
    with pytest.raises(InputError, match="not integrable"):
        fp.normalization()
    assert fp.normalization(domain=[(-2, 3)]) == 5
    with pytest.raises(InputError, match="domain must be 1"):
        fp.normalization(domain=[(0, 1), (0, 1)])
    fpe = FokkerPlanck(SDE([x], -x, eps))
    with pytest.raises(InputError, match=r"numeric quadrature needs numbers for \['epsilon'\]"):
        fpe.normalization(numeric=True)
    assert sp.simplify(fpe.normalization() - sp.sqrt(2 * sp.pi * eps)) == 0
    assert fpe.subs(epsilon=2).sde.diffusion[0] == 2
    with pytest.raises(InputError, match="expected a symfp.SDE"):
        FokkerPlanck("not an sde")


def test_latex_contains_flux_form_and_expanded_operator():
    fp = FokkerPlanck(SDE([x, y], [-x, -y], eps))
    tex = fp.latex()
    assert r"\partial_t p &= -\nabla\cdot J" in tex and r"\epsilon" in tex and r"b_{x} &= - x" in tex
    assert fp._repr_latex_().startswith("$$")
    assert r"\frac{\partial^{2}}{\partial x^{2}}" in fp.operator_latex()
    assert fp.generator.latex().startswith(r"\mathcal{L}\varphi")


def test_time_dependent_sde_keeps_time_and_has_no_stationary_density():
    th, t = sp.symbols("theta t", real=True)
    fp = FokkerPlanck(SDE([th], -(1 + sp.sin(t)) * th, sp.Rational(1, 10), time=t))
    assert fp.time == t and not fp.is_autonomous
    assert fp.stationary_density() is None
    assert "time t" in fp.stationary_reason
    assert fp.weak_form("forward").time == t
    assert fp.subs({}).time == t
    with pytest.raises(InputError, match="no closed-form zero-flux stationary density"):
        fp.weak_form("symmetrised")
    auto = FokkerPlanck(SDE([th], -th, sp.Rational(1, 10), time=t))
    assert auto.is_autonomous and auto.stationary_density() is not None
