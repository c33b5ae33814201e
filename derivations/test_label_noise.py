"""Regression tests of derivations/label_noise.py: multiplicative diffusion, tails, blow-up rates.

Seeds are fixed (deterministic). The Hill estimator with k = √n order statistics has standard error
α/√k ≈ 0.17 at n = 10⁵ plus a bias from the slowly varying part of the tail (second-order regular
variation), which is why the tail-index tolerances are ±0.45 (≈ 2.5 s.e.) rather than 3 s.e. alone.
"""

import runpy
from pathlib import Path

import pytest
import sympy as sp

SPEC = runpy.run_path(str(Path(__file__).parent / "label_noise.py"))


def test_symbolic_thresholds_and_diffusion():
    th = SPEC["thresholds"]()
    eta, sigma = SPEC["eta"], SPEC["sigma"]
    u = sp.Symbol("u", real=True)
    assert th["eta_sgd"] == sp.Rational(2, 3)  # E[(1 − ηx²)²] = 1 − 2η + 3η² < 1
    assert th["eta_sde"] == 1  # d E u²/dt = (2η − 2) E u² + ησ²
    assert sp.simplify(th["growth_sgd"] - (3 * eta**2 - 2 * eta)) == 0
    assert sp.expand(th["diffusion"] - eta * (2 * u**2 + sigma**2) / 2) == 0  # D = ηΣ₁/2, Σ₁ = 2u² + σ²


def test_sde_tail_index_closed_form():
    eta = SPEC["eta"]
    assert sp.simplify(SPEC["sde_tail_index"]() - (1 + 1 / eta)) == 0


def test_kesten_index():
    # at η = 1/2: E|1 − x²/2|² = 3/4 < 1 and the index is above 2; root of E|1 − ηx²|^α = 1
    a = SPEC["kesten_index"](0.5)
    assert 2.0 < a < 3.0
    # small η: the root is set by the rare x² > 2/η (a large deviation), not by the diffusive scaling, so
    # exact SGD's tail is much lighter than the SDE's 1 + 1/η = 21 (the SDE is a weak, not a tail, model)
    assert SPEC["kesten_index"](0.05) > 30.0
    # residual of the defining equation by the trapezoid rule on [−14, 14], h = 1e-4 (independent of
    # scipy.quad; O(h²) error at the kinks ±√2 and a Gaussian tail below 1e-40)
    import numpy as np

    t = np.linspace(-14.0, 14.0, 280_001)
    g = np.abs(1 - 0.5 * t**2) ** a * np.exp(-(t**2) / 2) / np.sqrt(2 * np.pi)
    from scipy.integrate import trapezoid  # np.trapz is gone in numpy 2

    assert trapezoid(g, t) == pytest.approx(1.0, abs=1e-6)


@pytest.fixture(scope="module")
def res():
    pytest.importorskip("torch")
    return SPEC["analyse"]("small")


def test_hill_estimates(res):
    assert res["alpha_sde"] == pytest.approx(3.0, abs=1e-12)
    assert res["hill_sde"] == pytest.approx(res["alpha_sde"], abs=0.45)
    assert res["hill_sgd"] == pytest.approx(res["alpha_kesten"], abs=0.45)
    # SGD's tail is heavier than the SDE's: its 99.9 % quantile is larger
    assert res["q_sgd"][-1] > res["q_sde"][-1]


def test_readme_section(res):
    text = SPEC["readme_section"](res)
    assert "figures/label_noise.png" in text and f"{res['alpha_kesten']:.2f}" in text
