"""The Gibbs-symmetrised form at small noise: ρ = exp(−(f − f_min)/ε) evaluated through log ρ, and
FCT instead of it when min ρ / max ρ on the mesh is beyond double precision (< 1e-250).

Bug reproduced: double well f = θ⁴/4 − θ²/2, ε = 0.003 on [−2.5, 2.5] (400 cells): ρ spans
e^{−2297} ≈ 10^{−998}, so ρ = 0 at the walls, p/ρ = inf and the first KSP solve failed with ‖b‖ = nan.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.errors import InputError

pytestmark = pytest.mark.fem
th = sp.Symbol("theta", real=True)
EPS = sp.Rational(3, 1000)
F = th**4 / 4 - th**2 / 2
P0 = sp.exp(-(th - 1) ** 2 / (2 * sp.Rational(1, 10) ** 2))
LU = {"ksp_type": "preonly", "pc_type": "lu"}


def _fp(eps=EPS, f=F):
    return symfp.SDE(state=[th], drift=[-sp.diff(f, th)], diffusion=[[eps]]).fokker_planck()


def _solve(box, cells, **kw):
    opts = dict(t_end=0.2, dt=0.02, progress=False, petsc_options=LU, scheme="cn")
    opts.update(kw)
    return _fp().solve(symfp.mesh.box([box], cells=cells), P0, **opts)


def test_auto_takes_fct_when_the_gibbs_weight_underflows_and_matches_a_reference():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the old code divided by rho = 0 here
        sol = _solve((-2.5, 2.5), 400, stabilisation="auto")
    assert sol.info["stabilisation"] == "fct"
    assert "decades" in sol.info["stabilisation_reason"]
    obs = sol.observables
    assert np.max(np.abs(obs["mass"] - 1)) < 1e-12  # LU: antisymmetric fluxes, round-off only
    assert obs["min"].min() >= -1e-12 * obs["max"].max()
    # reference: Gibbs form (weight range e^{-130}, representable) on [0.5, 1.5] where the density
    # is < e^{-12} of its max at the walls, 800 cells, CN dt = 0.005; measured against 1600 cells,
    # dt = 0.0025: mean differs by 2e-5, variance by 7e-4 relative
    ref = _solve((0.5, 1.5), 800, stabilisation="gibbs", dt=0.005)
    assert ref.info["stabilisation"] == "gibbs"
    m_ref, v_ref = ref.observables["mean"][-1, 0], ref.observables["cov"][-1, 0, 0]
    m, v = obs["mean"][-1, 0], obs["cov"][-1, 0, 0]
    # FCT on h = 0.0125 (σ ≈ 0.073: 6 cells per σ), dt = 0.02: measured 2.4e-5 and 1.7e-3
    assert abs(m - m_ref) < 1e-4, (m, m_ref)
    assert abs(v / v_ref - 1) < 5e-3, (v, v_ref)


def test_explicit_gibbs_request_beyond_double_precision_is_refused_with_the_way_out():
    with pytest.raises(InputError, match=r"stabilisation='gibbs' cannot be used.*decades.*'fct'"):
        _solve((-2.5, 2.5), 400, stabilisation="gibbs")


def test_gibbs_weight_is_shifted_by_its_maximum():
    # f + 10 at ε = 0.01: exp(-f/ε) ≤ e^{-975} is 0 in double precision everywhere, but ρ/max ρ spans
    # only e^{-225} on [-2, 2]: the shifted weight is fine and Gibbs is used
    f = F + 10
    sol = _fp(sp.Rational(1, 100), f).solve(symfp.mesh.box([(-2, 2)], cells=100), P0, t_end=0.1, dt=0.05,
                                            stabilisation="gibbs", progress=False, petsc_options=LU)
    assert sol.info["stabilisation"] == "gibbs"
    assert np.all(np.isfinite(sol.observables["mean"]))
    assert np.max(np.abs(sol.observables["mass"] - 1)) < 1e-12


def test_gibbs_log_range_reports_the_dynamic_range():
    from mpi4py import MPI

    from symfp.fem.dolfinx.forward import gibbs_log_range

    x = np.linspace(-2.5, 2.5, 11)[:, None]
    vals, hi, rng = gibbs_log_range(-F / EPS, (th,), x, len(x), MPI.COMM_SELF)
    f = x[:, 0] ** 4 / 4 - x[:, 0] ** 2 / 2
    assert hi == pytest.approx(0.25 / 0.003, rel=1e-14)  # max at θ = ±1
    assert rng == pytest.approx(-(f.max() + 0.25) / 0.003, rel=1e-14)  # −2297
    np.testing.assert_allclose(vals, -f / 0.003, rtol=1e-14)
