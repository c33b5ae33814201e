"""Regression test of derivations/linear_network.py (issue 7, entry 4)."""

import importlib.util
import pathlib

import pytest

HERE = pathlib.Path(__file__).resolve().parent


def _load():
    spec = importlib.util.spec_from_file_location("linear_network", HERE / "linear_network.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_rank_one_diffusion_and_its_zero_set():
    import sympy as sp

    mod = _load()
    sym = mod.symbolic()
    assert sym["det"] == 0 and sym["rank"] == 1  # exact identities
    # D = (η/2) V ∇u∇uᵀ with V = Var(rx) = (4/5)(u − c)² + σ² (Var x² = 4/5 for U(−√3, √3))
    assert sym["D_factored"] == sp.zeros(2, 2)
    u = mod.w1 * mod.w2
    assert sp.simplify(sym["V"] - (sp.Rational(4, 5) * (u - mod.c) ** 2 + mod.sigma**2)) == 0
    # kernel ∥ (w1, −w2): tangent to the level sets of u (the valley)
    (k,) = sym["kernel"]
    assert sp.simplify(k[0] * mod.w2 + k[1] * mod.w1) == 0
    # realizable labels (σ = 0): D = 0 exactly on w1 w2 = c (and at w = 0)
    D0 = sym["D"].subs(mod.sigma, 0)
    assert sp.simplify(D0.subs(mod.w2, mod.c / mod.w1)) == sp.zeros(2, 2)
    assert sym["D"].subs({mod.w1: 0, mod.w2: 0}) == sp.zeros(2, 2)


def test_valley_coordinate_has_no_noise():
    mod = _load()
    sym = mod.symbolic()
    assert sym["Lq_minus_closed_form"] == 0  # 𝓛q = −ηV q (and q has no Itô noise: ∇qᵀD∇q = 0)
    assert sym["exact_q_step"] == 0  # q_{k+1} = (1 − η²ĝ²) q_k for the exact SGD step
    import sympy as sp

    gq = sp.Matrix([sp.diff(mod.q, s) for s in (mod.w1, mod.w2)])
    assert sp.simplify((gq.T * sym["D"] * gq)[0]) == 0


@pytest.fixture(scope="module")
def entry():
    pytest.importorskip("dolfinx")
    pytest.importorskip("torch")
    mod = _load()
    return mod, mod.analyse("small")


def test_fe_positive_and_mass_conserving(entry):
    _, r = entry
    assert r["min_relative"] >= -1e-8  # the upwind (M-matrix) scheme keeps p ≥ 0
    assert r["mass_drift"] < 1e-8  # zero-flux walls
    assert r["escaped"] == 0.0  # the box holds every particle


def test_drift_along_the_valley(entry):
    _, r = entry
    # exact SGD: |q| shrinks every step with factor 1 − η²ĝ² (η|ĝ| < 1 here), and the mean rate is at
    # least ησ² (V ≥ σ²); the MC se of E q is 0.002, i.e. 0.1 % of the decrease 3.75 → 2.16
    assert r["Eq_particles_end"] < r["q0"] * 0.7
    assert r["rate_particles"] > r["rate_floor"] + 5 * r["Eq_particles_se"] / r["Eq_particles_end"] / 15
    # the FE densities move the same way and never slower than the floor rate ησ² (−1 % for the fit)
    assert r["rate_galerkin"] > 0.99 * r["rate_floor"]
    assert r["rate_fe"] > 0.99 * r["rate_floor"]
