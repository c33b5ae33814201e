"""How the controls enter the SME: the monomial split of the Fokker–Planck operator (pure SymPy)."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.control.split import BETA, U, controlled_coefficients, split_terms
from symfp.errors import InputError

th, xi = sp.symbols("theta xi")
A, S2, ETA = 2, 3, sp.Rational(1, 10)


def close(e1, e2):
    """Equal as functions (η_max enters as a float): compared at a few points of (θ, u, 1/B)."""
    f = sp.lambdify((th, U, BETA), sp.sympify(e1) - sp.sympify(e2))
    return all(abs(f(*p)) < 1e-12 for p in [(0.3, 0.7, 0.2), (-1.1, 0.4, 1.0), (2.0, 1.0, 0.5)])


def quadratic(**kw):
    data = symfp.Population({xi: sp.stats.Normal("X", 0, sp.sqrt(S2))})
    return symfp.SGD(loss=A * th**2 / 2 + xi * th, params=[th], data=data, lr=ETA, **kw)


def test_order1_li_tai_e_coefficients():
    """b = −u∇f, D = u²ηΣ/(2B): derived from the model by lr → uη_max and dt' = u dt."""
    c = controlled_coefficients(quadratic(), order=1)
    assert close(c.drift[0], (-U * A * th))
    assert close(c.diffusion[0], U**2 * ETA * S2 * BETA / 2)
    parts = split_terms(c)
    assert set(parts) == {(1, 0), (2, 1)}  # K_b (drift, ∝ u) and K_D (noise, ∝ u²/B)
    (adv,) = parts[(1, 0)]
    (dif,) = parts[(2, 1)]
    assert adv.kind == "advection" and close(adv.coefficient[0], A * th)
    assert dif.kind == "diffusion" and close(dif.coefficient[0], ETA * S2 / 2)


def test_order2_adds_u_squared_drift():
    """Order 2: b = −u∇f − u²(η/4)∇|∇f|², i.e. a part ∝ u² (no 1/B) with coefficient ηa²θ/2."""
    parts = split_terms(controlled_coefficients(quadratic(), order=2))
    assert set(parts) == {(1, 0), (2, 0), (2, 1)}
    (t,) = parts[(2, 0)]
    assert close(t.coefficient[0], ETA * A**2 * th / 2)


def test_without_replacement_splits_finite_population_correction():
    """Σ_B = (N−B)/(B(N−1))Σ₁ = (N/(N−1))Σ₁/B − Σ₁/(N−1): parts ∝ u²/B and u²."""
    x = sp.Symbol("x")
    xs = np.linspace(-1, 1, 9)
    model = symfp.SGD(loss=(th - x) ** 2 / 2, params=[th], data=symfp.Dataset({x: xs}), lr=0.1,
                      batch_size=2, replacement=False)
    c = controlled_coefficients(model, order=1)
    var = float(np.var(xs))
    N = len(xs)
    want = U**2 * 0.1 * var * (N / (N - 1) * BETA - 1 / (N - 1)) / 2
    assert abs(float(sp.expand(c.diffusion[0] - want).subs({U: 0.7, BETA: 0.3}))) < 1e-12
    assert set(split_terms(c)) == {(1, 0), (2, 0), (2, 1)}


def test_sde_with_control_symbols():
    u, B = sp.symbols("u_c B_c", positive=True)
    sde = symfp.SDE([th], [-u * th], [[u**2 / (2 * B)]])
    parts = split_terms(controlled_coefficients(sde, controls={"u": u, "B": B}))
    assert set(parts) == {(1, 0), (2, 1)}


def test_bad_models_refused():
    with pytest.raises(InputError, match="momentum"):
        controlled_coefficients(quadratic(momentum=0.9), order=1)
    with pytest.raises(InputError, match="order"):
        controlled_coefficients(quadratic(), order=3)
    with pytest.raises(InputError, match="do not contain the control symbols"):
        controlled_coefficients(symfp.SDE([th], [-th], [[1]]), controls={})
    u = sp.Symbol("u_c", positive=True)
    with pytest.raises(InputError, match="not a polynomial"):
        split_terms(controlled_coefficients(symfp.SDE([th], [-sp.exp(u) * th], [[u]]), controls={"u": u}))
    with pytest.raises(InputError, match="not a number"):
        controlled_coefficients(symfp.SGD(loss=th**2 / 2, params=[th], data=None, lr=sp.Symbol("eta")))
