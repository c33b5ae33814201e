"""FE ↔ particles: a 2-D FE Fokker–Planck solution and particles of the same SDE pass ``compare``;
particles of a deliberately wrong drift fail it. The density check is against the binomial noise
floor for that N and binning (see symfp.bridge.compare); moments within 4 standard errors.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from sympy.stats import Normal

import symfp
from symfp.bridge.compare import binomial_mad

x, y = sp.symbols("x y", real=True)
S0 = 0.3


def p0():
    return sp.exp(-((x - 0.5) ** 2 + y**2) / (2 * S0**2))


def particles(sde, seed=0, n=20_000):
    init = {x: Normal("X0", 0.5, S0), y: Normal("Y0", 0, S0)}
    return sde.simulate(n_particles=n, t_end=0.5, dt=0.01, init=init, method="weak2", seed=seed)


def test_binomial_mad_matches_simulation():
    # de Moivre's E|X − np| against 2e5 binomial draws (se of the mean |deviation| ≈ 0.003)
    rng = np.random.default_rng(0)
    for n, p in [(50, 0.1), (1000, 0.003), (20, 0.5)]:
        draws = np.abs(rng.binomial(n, p, size=200_000) - n * p)
        assert binomial_mad(n, np.array([p]))[0] == pytest.approx(draws.mean(), abs=4 * draws.std() / 450)


@pytest.mark.fem
@pytest.mark.torch
@pytest.mark.mpi
def test_fe_and_particles_agree_and_wrong_drift_fails():
    sde = symfp.SDE([x, y], [-x + 0.2 * y, -y], [[0.1, 0.02], [0.02, 0.15]])
    mesh = symfp.mesh.box([(-2, 2.5), (-2, 2)], cells=(45, 40))
    sol = sde.fokker_planck().solve(mesh, p0(), t_end=0.5, dt=0.01, progress=False)
    good = symfp.compare(sol, particles(sde))
    assert good.passed, str(good)
    dens = next(m for m in good.metrics if m.name == "density L1")
    assert dens.particles < dens.noise * 1.5 + 0.01
    assert good.info["escaped_mass"] < 1e-3
    wrong = symfp.SDE([x, y], [-1.3 * x + 0.2 * y, -y], [[0.1, 0.02], [0.02, 0.15]])
    wrong_cloud = particles(wrong, seed=1)
    # same dimension and names, another model: refused by model id, not passed on names
    with pytest.raises(symfp.errors.InputError, match=r"different SDE \(model id [0-9a-f]+\).*drift"):
        symfp.compare(sol, wrong_cloud)
    bad = symfp.compare(sol, wrong_cloud, check_model=False)  # the metrics alone must see it
    assert not bad.passed
    assert any(m.name == "mean[x]" and not m.passed for m in bad.metrics)
    text = str(bad)
    assert "FAILED" in text and "density L1" in text and "mean[x]" in text
    assert bad.to_dict()["passed"] is False
    # the density row has no FE value: labelled, and None in JSON rather than a misleading 0
    assert "(ref.)" in text and bad.to_dict()["metrics"][-1]["fe"] is None
    assert "FE error" in text and "not estimated" in good.info["fe_error"]
    assert "same SDE" in good.info["expected"]
    # a coarser solve (twice the cell size) puts the FE error into the tolerance (noise grows)
    coarse = sde.fokker_planck().solve(symfp.mesh.box([(-2, 2.5), (-2, 2)], cells=(23, 20)), p0(),
                                       t_end=0.5, dt=0.01, progress=False)
    withfe = symfp.compare(sol, particles(sde), coarse=coarse)
    for a, b in zip(good.metrics[:-1], withfe.metrics[:-1], strict=True):
        assert b.noise >= a.noise
    assert "Richardson" in withfe.info["fe_error"]
