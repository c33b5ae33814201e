"""Regression tests of derivations/double_well_regimes.py (REFERENCE_CASES.md items 5, 8).

Seeds are fixed (deterministic); Monte Carlo tolerances are 3 standard errors plus the stated bias.
"""

import math
import runpy
from pathlib import Path

import pytest

from symfp.fem.registry import available

pytest.importorskip("torch")
# any FE backend: dolfinx when importable, else the pip-only scikit-fem (backend="auto")
if not available():
    pytest.skip("no finite-element backend is importable (pip install scikit-fem)", allow_module_level=True)

SPEC = runpy.run_path(str(Path(__file__).parent / "double_well_regimes.py"))


@pytest.fixture(scope="module")
def res():
    return SPEC["analyse"]("small")


def test_drift_regime_mass_split(res):
    d = res["drift"]
    # more mass started right (mean 0.2) and the drift keeps it there; particles of exact SGD vs FE
    assert 0.6 < d["mass_right_t2"] < 0.75
    assert abs(d["particles_right_t2"] - d["mass_right_t2"]) < 3 * d["particles_right_t2_stderr"] + 0.005


def test_concentration_rate(res):
    d = res["drift"]
    # linearisation at +1: variance relaxes like e^{−2f''(1)t} = e^{−4t}; nonlinear (cubic) corrections
    # of relative size O(ε) and P1 on h = 0.0025 (σ ≥ 0.022) give 3.8; allow ±10 %
    assert d["rate"] == pytest.approx(4.0, rel=0.1)
    # floor ≈ ε/f″(1) = ε/2 up to O(ε) anharmonic corrections
    assert d["floor"] == pytest.approx(d["floor_linear"], rel=0.05)
    # from the straddling density the late approach is set by the saddle, rate |f''(0)| = 1
    assert d["mean_rate"] == pytest.approx(1.0, rel=0.25)


def test_exit_times_fe_vs_particles(res):
    for r in res["exit"]:
        if "sde" not in r:
            continue
        assert r["sde_censored"] < 1e-3 and r["sgd_censored"] < 1e-3
        # Euler paths (dt = 0.01, Brownian-bridge exits): O(dt) bias ≲ 2 %
        assert abs(r["sde"] - r["fe"]) < 3 * r["sde_stderr"] + 0.02 * r["fe"], r
        # exact SGD at η = 0.1 differs from its order-1 SDE by O(η): allow 10 %
        assert abs(r["sgd"] - r["fe"]) < 3 * r["sgd_stderr"] + 0.10 * r["fe"], r


def test_eyring_kramers_and_arrhenius(res):
    rows = res["exit"]
    ratios = [r["fe"] / r["ek"] for r in rows]
    # the Eyring–Kramers prefactor has an O(ε) relative correction: ratio within 30 % and → 1
    assert all(1.0 < q < 1.3 for q in ratios)
    assert ratios[-1] < ratios[1]
    assert res["delta_v_fit"] == pytest.approx(0.25, abs=0.015)
    reduced = [r["eps_log_reduced"] for r in rows]
    assert all(a > b for a, b in zip(reduced, reduced[1:], strict=False))  # decreasing towards ΔV
    assert reduced[-1] == pytest.approx(0.25, abs=0.02)
    assert rows[0]["ek"] == pytest.approx(math.sqrt(2) * math.pi * math.exp(1.0), rel=1e-12)


def test_tilted_well_gibbs_limit(res):
    g = res["tilted"]
    assert g["left_early"] < 0.5 < g["left_gibbs"]  # the early split favours the right, Gibbs the left
    # relaxation to Gibbs is exponential at rate ~1/(right-well exit time ≈ 20): residual < 0.01 at t = 100
    assert abs(g["left_final"] - g["left_gibbs"]) < 0.01
    # exact SGD at η = 0.1 (O(η) shift of its stationary law) vs FE
    assert abs(g["particles_left_final"] - g["left_final"]) < 3 * g["particles_left_final_stderr"] + 0.01
    assert g["left_gibbs_untilted"] == pytest.approx(0.5, abs=1e-9)


def test_readme_section(res):
    text = SPEC["readme_section"](res)
    assert "figures/double_well_regimes.png" in text and f"{res['delta_v_fit']:.3f}" in text
