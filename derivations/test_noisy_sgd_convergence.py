"""Regression test of derivations/noisy_sgd_convergence.py (issue 7, entry 6)."""

import math
import pathlib
from types import SimpleNamespace

import pytest

from symfp.app.spec import load
from symfp.fem.registry import available

# any FE backend: dolfinx when importable, else the pip-only scikit-fem (backend="auto")
if not available():
    pytest.skip("no finite-element backend is importable (pip install scikit-fem)", allow_module_level=True)
pytest.importorskip("torch")

HERE = pathlib.Path(__file__).resolve().parent


def _load():
    """The entry as a namespace, loaded like the ``symfp`` command loads a spec."""
    return SimpleNamespace(**load(HERE / "noisy_sgd_convergence.py").namespace)


@pytest.fixture(scope="module")
def entry():
    mod = _load()
    return mod, mod.analyse("small")


def test_diffusion_is_made_non_degenerate_by_the_noise(entry):
    mod, r = entry
    # D = diag(δ + ηs²/2, δ) exactly (order-1 SME), η s²/2 = 0.1, δ = 0.1
    assert [x for row in r["D"] for x in row] == pytest.approx([0.2, 0.0, 0.0, 0.1], abs=1e-14)
    # without δ the θ₂ row of D vanishes: the mini-batch covariance has rank 1
    import sympy as sp

    D0 = mod.model.subs({**mod.params, mod.delta: 0}).sme(order=1).diffusion
    assert sp.Matrix(D0).rank() == 1


def test_stationary_density_is_the_closed_form(entry):
    mod, _ = entry
    import sympy as sp

    sde = mod.model.subs(mod.params).sme(order=1)
    rho = sde.fokker_planck().stationary_density()
    # π ∝ exp(−f₁/0.2 − f₂/0.1): compare log-ratios (normalisation free)
    f1, f2 = mod.theta1**2 / 2 + mod.theta1**4 / 4, mod.theta2**2
    expected = -f1 / sp.Rational(1, 5) - f2 / sp.Rational(1, 10)
    diff = sp.simplify(sp.expand_log(sp.log(rho), force=True) - expected)
    assert diff.free_symbols == set()


def test_spectrum_against_closed_form_and_1d_factor(entry):
    _, r = entry
    # λ₂ = f₂'' = 2 exactly (Ornstein–Uhlenbeck factor in θ₂); P1 eigenvalue error O(h²) ≈ 1e-5 here
    assert r["lambda2"] == pytest.approx(2.0, rel=1e-3)
    # λ₁ is the θ₁ factor's gap, computed independently on a fine 1-D mesh (h = 0.004):
    # the 2-D P1 value on the ellipse (h ≈ 0.035 at the centre) agrees to O(h²) ≈ 1e-3
    assert r["lambda1"] == pytest.approx(r["gap_1d"], rel=2e-3)
    # Poincaré from Bakry–Émery: λ₁ ≥ κ = 1, and strictly here (the quartic stiffens the θ₁ well)
    assert r["lambda1"] > r["kappa"] * 1.2


def test_entropy_decays_at_twice_the_gap_and_above_bakry_emery(entry):
    _, r = entry
    assert r["H_monotone"]  # dH/dt = −(Fisher information) < 0
    assert r["be_bound_holds"]  # H(t) ≤ H(0) e^{−2κt} at every output time
    assert r["rate"] > r["bakry_emery_rate"]
    # late-time H ∝ e^{−2λ₁t}(1 + b e^{−(λ₂−λ₁)t} + …): on the window t ∈ [1.5, 3] the next mode adds
    # b(λ₂−λ₁)e^{−(λ₂−λ₁)t} ≲ 0.64·0.38·b to the local rate, a few % for b ≲ 0.5; BDF2 (dt = 0.02)
    # and the FE floor (H_end ≈ 1e-3 ≫ h²-size floor) add much less. So 5 %.
    assert r["rate"] == pytest.approx(r["two_lambda1"], rel=0.05)
    # the fit must not be the Bakry–Émery rate: it is 35 % above it
    assert not math.isclose(r["rate"], r["bakry_emery_rate"], rel_tol=0.2)


def test_fe_conserves_mass_and_matches_noisy_sgd(entry):
    _, r = entry
    assert r["mass_drift"] < 1e-8  # zero-flux walls: mass kept to the KSP tolerance
    assert r["min_relative"] >= -1e-8
    # exact noisy SGD (η = 1/80) vs the order-1 SME at t = 3: moment z-scores with N = 2·10⁴
    # (O(η) bias ≈ 1 % of the variances, below the MC error 1 %·√2) within 4 standard errors
    assert r["max_abs_z"] < 4.0
    assert r["density_passed"]
