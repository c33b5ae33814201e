"""Regression tests of derivations/quadratic_views.py (REFERENCE_CASES.md items 2 and 4).

Seeds are fixed, so the Monte Carlo checks are deterministic; their tolerances are 3 standard errors
(a 0.27 % chance per check of a false alarm when the seed changes).
"""

import runpy
from pathlib import Path

import pytest
import sympy as sp

from symfp.fem.registry import available

pytest.importorskip("torch")
# any FE backend: dolfinx when importable, else the pip-only scikit-fem (backend="auto")
if not available():
    pytest.skip("no finite-element backend is importable (pip install scikit-fem)", allow_module_level=True)

SPEC = runpy.run_path(str(Path(__file__).parent / "quadratic_views.py"))


@pytest.fixture(scope="module")
def res():
    return SPEC["analyse"]("small")


def test_closed_forms_derived_from_the_model():
    a, s, eta = SPEC["a"], SPEC["s"], SPEC["eta"]
    got = SPEC["stationary_variances"]()
    assert sp.simplify(got["sgd"] - eta * s**2 / (a * (2 - eta * a))) == 0
    assert sp.simplify(got["sde1"] - eta * s**2 / (2 * a)) == 0
    assert sp.simplify(got["sde2"] - eta * s**2 / (a * (2 + eta * a))) == 0


def test_reference_numbers(res):
    # REFERENCE_CASES item 2 to the 7 digits given there
    assert res["exact"]["sgd"] == pytest.approx(0.0526316, abs=5e-8)
    assert res["exact"]["sde1"] == pytest.approx(0.05, abs=5e-8)
    assert res["exact"]["sde2"] == pytest.approx(0.0476190, abs=5e-8)


@pytest.mark.parametrize("view", ["sgd", "sde1", "sde2"])
def test_particle_variances_within_three_standard_errors(res, view):
    # time-discretisation bias of the weak order-2 SDE paths ~1e-4 relative, well below 1 s.e. (~6e-3)
    assert abs(res["particles"][view] - res["exact"][view]) < 3 * res["stderr"][view]


@pytest.mark.parametrize("view", ["sde1", "sde2"])
def test_fe_stationary_variances(res, view):
    # P1 on h = 0.01 against σ ≈ 0.22: quadrature/interpolation error O((h/σ)²/12) ≈ 2e-4 relative
    assert res["fe"][view] == pytest.approx(res["exact"][view], rel=1e-3)


def test_the_three_views_are_resolved(res):
    # the particle estimates are separated by more than 5 s.e.: the test distinguishes the views
    p, se = res["particles"], res["stderr"]
    assert p["sgd"] - p["sde1"] > 5 * se["sgd"] and p["sde1"] - p["sde2"] > 5 * se["sde1"]


def test_weak_error_slopes(res):
    # item 4: errors 1.920e-2 / 1.259e-3 at η = 0.1 (antithetic pairs: s.e. ~1e-17 on a linear observable)
    assert res["weak"]["err1"][0] == pytest.approx(1.920e-2, rel=0.02)
    assert res["weak"]["err2"][0] == pytest.approx(1.259e-3, rel=0.02)
    assert res["weak"]["slope1"] == pytest.approx(1.0, abs=0.15)
    assert res["weak"]["slope2"] == pytest.approx(2.0, abs=0.15)


def test_breakdown_as_eta_a_goes_to_2(res):
    for b in res["breakdown"]:
        assert abs(b["var"] - b["exact"]) < 3 * b["stderr"], b
        assert b["sde2"] < b["sde1"] <= 1.0  # the SDE variances stay below ηs²/(2a) ≤ 1
    # closed-form ratio 2/(2 − ηa) at ηa = 1.98: 100; SGD variance at 1.8 is ten times the SDE's
    assert res["ratio_sde1"][-1] == pytest.approx(100.0, rel=1e-9)
    assert res["breakdown"][-1]["var"] / res["breakdown"][-1]["sde1"] > 9.5


def test_readme_section_numbers_come_from_results(res):
    text = SPEC["readme_section"](res)
    assert "figures/quadratic_views.png" in text
    assert f"{res['weak']['slope1']:.2f}" in text and f"{res['exact']['sgd']:.7f}" in text
