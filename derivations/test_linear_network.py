"""Regression test of derivations/linear_network.py (issue 7, entry 4)."""

import pathlib
from types import SimpleNamespace

import pytest

from symfp.app.spec import load
from symfp.fem.registry import available

HERE = pathlib.Path(__file__).resolve().parent


def _load():
    """The entry as a namespace, loaded like the ``symfp`` command loads a spec."""
    return SimpleNamespace(**load(HERE / "linear_network.py").namespace)


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
    if not available():  # any FE backend (backend="auto"): dolfinx, else the pip-only scikit-fem
        pytest.skip("no finite-element backend is importable (pip install scikit-fem)")
    pytest.importorskip("torch")
    mod = _load()
    return mod, mod.analyse("small")


def test_fe_positive_and_mass_conserving(entry):
    _, r = entry
    assert r["min_relative"] >= -1e-12  # FCT (Zalesak-limited) keeps p ≥ −1e-12·max
    assert r["mass_drift"] < 1e-8  # zero-flux walls (KSP rtol 1e-12, 300 steps: measured 1e-10)
    assert r["escaped"] < 1e-3  # the box holds the particles (measured ≤ 1 in 5·10⁴)


def test_fe_against_particles_of_the_same_sme(entry):
    _, r = entry
    for row, d in zip(r["rows"], r["fe_minus_sde"], strict=True):
        se = row["Eq_sde_se"]  # 2·10⁴ SDE particles: ≈ 0.0013
        # discretisation allowance: weak-2 SDE paths with dt = min(1/40, 1/(800η)) (bias ≤ 2e-3 measured
        # against dt/2) + FCT on 96², which at η = 0.1 smears the density along the valley (E q +0.019
        # against the particles, sd q 0.195 vs 0.135; NOT a discretisation error that refines away: FCT on
        # 192², dt 0.025 gives +0.038 — an engine issue reported to symfp/fem; Galerkin 96² is within 0.005)
        tol = 0.03 if row["eta"] >= 0.1 else 0.005
        assert abs(d) < 4 * se + tol, (row["eta"], d)


def test_sme_vs_sgd_gap_is_order_eta_squared(entry):
    _, r = entry
    gaps, gaps_sde = r["gaps"], r["gaps_sde"]
    # exact SGD drifts faster than its order-1 SME (rate η(V + (u−c)²) vs ηV, (u−c)² = O(η) near the
    # valley): the gap E q_SME − E q_SGD at fixed t is positive, shrinks with η and is O(η²)
    assert all(g > 0 for g in gaps) and gaps[0] > gaps[1] > gaps[2]
    assert all(g > 0 for g in gaps_sde)
    # resolved even at the smallest η: 0.019 against se ≈ 0.0008 (SGD) and 0.0013 (SDE)
    last = r["rows"][-1]
    assert gaps_sde[-1] > 5 * (last["Eq_sgd_se"] + last["Eq_sde_se"])
    # fitted slope of log gap vs log η over η = 0.1, 0.05, 0.025: 2 (the next order steepens it at
    # η = 0.1 while the FE/SDE discretisation biases, ≲ 0.005, flatten it at η = 0.025): 2 ± 0.3
    assert r["gap_slope"] == pytest.approx(2.0, abs=0.3)
    assert r["gap_slope_sde"] == pytest.approx(2.0, abs=0.3)


def test_drift_along_the_valley(entry):
    _, r = entry
    top = r["rows"][0]  # η = 0.1
    # exact SGD: |q| shrinks every step by 1 − η²ĝ² (η|ĝ| < 1 here): 3.75 → 2.16 at t = 15
    assert top["Eq_sgd"] < r["q0"] * 0.7
    # the SME's rate ηE[V] is at least ησ² (V ≥ σ²); −1 % for the log-linear fit
    assert r["rate_fe"] > 0.99 * r["rate_floor"]
