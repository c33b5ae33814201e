"""Regression test of derivations/momentum_phase_space.py (issue 7, entry 5)."""

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
    return SimpleNamespace(**load(HERE / "momentum_phase_space.py").namespace)


@pytest.fixture(scope="module")
def entry():
    mod = _load()
    return mod, mod.analyse("small")


def test_symbolic_closed_forms():
    import sympy as sp

    mod = _load()
    cf = mod.closed_forms()
    gamma = sp.Symbol("gamma", positive=True)
    on_gamma = {mod.beta: 1 - gamma * mod.eta}
    # SME Lyapunov: Var v = ηs²/(2γ), Var θ = ηs²/(2γa), Cov = 0 (exact identities)
    sme = cf["sme"].subs(on_gamma)
    assert sp.simplify(sme[1, 1] - mod.eta * mod.s**2 / (2 * gamma)) == 0
    assert sp.simplify(sme[0, 0] - mod.eta * mod.s**2 / (2 * gamma * mod.a)) == 0
    assert sp.simplify(sme[0, 1]) == 0
    # exact recursion: Var v = ηs²/(2γ) + η²s²/4 + O(η³) at fixed γ
    ex = cf["exact"].subs(on_gamma)[1, 1]
    series = sp.series(ex, mod.eta, 0, 3).removeO()
    assert sp.simplify(series - (mod.eta * mod.s**2 / (2 * gamma) + mod.eta**2 * mod.s**2 / 4)) == 0


def test_diffusion_is_degenerate(entry):
    _, r = entry
    assert r["rank_D"] == 1  # noise in v only
    assert r["D_vv"] == pytest.approx(0.05, abs=1e-15)  # ηs²/2 = 0.02·5/2


def test_fe_kinetic_energy_against_the_closed_form(entry):
    _, r = entry
    # closed form ηs²/(4γ) = 0.025
    assert r["ke_sme_closed"] == pytest.approx(0.025, abs=1e-15)
    # default FCT (upwind BE predictor, Galerkin CN target, Zalesak limiter), 48² and 96², dt = 0.04:
    # second order, so O(h² + dt²) ≈ 1e-3 relative; measured 7e-4 on both meshes (converged in h)
    assert r["ke_fct"][0] == pytest.approx(r["ke_sme_closed"], rel=2e-3)
    assert r["ke_fct"][1] == pytest.approx(r["ke_sme_closed"], rel=2e-3)
    assert r["ke_fe_end"] == r["ke_fct"][1]
    # the transient deviation from the exact moment ODE stays within 1 % of the peak (0.056)
    assert r["ke_fe_max_dev"] < 5e-4
    # FCT is positive (Zalesak-limited, ≥ −1e-12 of the maximum) and conserves mass (zero-flux walls)
    assert r["min_relative"] >= -1e-12
    assert r["mass_drift"] < 1e-8
    # plain Galerkin + BDF2 on 96²: as accurate, but not positive (tiny undershoots)
    assert r["ke_galerkin"] == pytest.approx(r["ke_sme_closed"], rel=2e-3)
    assert r["min_relative_galerkin"] > -1e-6
    # explicit first-order upwind: O(h) numerical diffusion heats it (KE(h) > KE(h/2) > closed form, the
    # excess roughly halving: 24 % → 12 % measured); Richardson 2KE(h/2) − KE(h) removes the O(h) term,
    # leaving O(h²) on 48²/96² (measured −0.8 %)
    assert r["ke_upwind"][0] > r["ke_upwind"][1] > 1.05 * r["ke_sme_closed"]
    assert r["ke_upwind_extrapolated"] == pytest.approx(r["ke_sme_closed"], rel=1.5e-2)


def test_particles_against_the_exact_recursion(entry):
    _, r = entry
    # η = 0.02: exact value 0.025255, SME 0.025 (1 % apart); particles N = 2·10⁴ with se ≈ 2.5e-4:
    # within 4 se of the exact discrete-Lyapunov value
    assert abs(r["ke_particles"] - r["ke_exact_closed"]) < 4 * r["ke_particles_se"]
    # η = 0.1 (same γ and temperature): the exact value is 5.5 % above the SME one, i.e. ~12 se of the
    # N = 10⁵ particles: they must match the discrete Lyapunov value (4 se) and reject the SME's
    assert abs(r["ke_hot_particles"] - r["ke_hot_exact_closed"]) < 4 * r["ke_hot_particles_se"]
    assert abs(r["ke_hot_particles"] - r["ke_hot_sme_closed"]) > 6 * r["ke_hot_particles_se"]
    # FE (FCT, 96²) vs exact particles at t = 8: every moment within 4 standard errors
    assert r["max_abs_z"] < 4.0
    assert r["compare_passed"]
