"""Regression tests of derivations/logistic_regression.py (real data, data-mean SMEs vs exact SGD).

Seeds are fixed. Tolerances: the SGD mean has a Monte Carlo s.e. of 2e-4 .. 1.4e-3 (reported by the
cloud); the FE solves (P1, 64², dt = 0.0125) add ≈ 5e-4 to the mean (the order-2 error at η = 0.05,
where the SME's own weak error is O(η²) ≈ 1e-4). The weak errors to check: order 1 O(η), order 2 O(η²).
"""

import runpy
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from symfp.fem.registry import available

SPEC = runpy.run_path(str(Path(__file__).parent / "logistic_regression.py"))


def test_data_file_and_minimiser():
    data = SPEC["data"]
    assert data.n == 569 and set(np.unique(data.arrays[SPEC["y"]])) == {-1.0, 1.0}
    for s in (SPEC["x1"], SPEC["x2"]):  # standardised z-scores
        assert abs(data.arrays[s].mean()) < 1e-9 and abs(data.arrays[s].std() - 1) < 1e-9
    w = SPEC["minimiser"]()
    # the gradient of f as a data-mean node, evaluated at Newton's minimiser: 0 to round-off
    f = data.expect(SPEC["model"].loss)
    g = [float(sp.diff(f, p).subs({SPEC["w1"]: w[0], SPEC["w2"]: w[1]})) for p in (SPEC["w1"], SPEC["w2"])]
    assert np.max(np.abs(g)) < 1e-12


@pytest.fixture(scope="module")
def res():
    pytest.importorskip("torch")
    if not available():  # any FE backend (backend="auto"): dolfinx, else the pip-only scikit-fem
        pytest.skip("no finite-element backend is importable (pip install scikit-fem)")
    return SPEC["analyse"]("small")


def test_sme_accuracy_small_and_large_eta(res):
    r = res["runs"]
    small, mid, large = r["0.05"], r["0.5"], r["2.0"]
    for row in (small, mid, large):
        for p in (1, 2):
            assert row[f"sme{p}_mass"] == pytest.approx(1.0, abs=1e-6)  # zero-flux walls, FCT conservative
    # small eta: both SMEs within 1 % of the distance travelled (FE + MC error ~ 5e-4 + 2 s.e.)
    assert small["sme1_mean_rel"] < 0.01 and small["sme2_mean_rel"] < 0.01
    # order 1 has an O(eta) weak error: 10x eta gives 4..20x the error (one run; MC/FE floor ~ 5e-4)
    assert 4 < mid["sme1_mean_err"] / small["sme1_mean_err"] < 20
    # order 2 removes most of it at eta = 0.5 and stays better at eta = 2
    assert mid["sme2_mean_err"] < 0.2 * mid["sme1_mean_err"]
    assert large["sme2_mean_err"] < 0.5 * large["sme1_mean_err"]
    assert large["sme1_mean_rel"] > 0.05  # the SME is not accurate at large eta
    # covariance: within 10 % at small eta (sample covariance s.e. ~ 1 % at n = 4e4, plus FE)
    assert small["sme1_cov_rel"] < 0.1 and small["sme2_cov_rel"] < 0.1


def test_readme_section(res):
    text = SPEC["readme_section"](res)
    assert "figures/logistic_regression.png" in text
    assert "SME order 1: accurate at η = 0.05, not at η = 0.5, 2.0" in text
