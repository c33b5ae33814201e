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
    bad = symfp.compare(sol, particles(wrong, seed=1))
    assert not bad.passed
    assert any(m.name == "mean[x]" and not m.passed for m in bad.metrics)
    text = str(bad)
    assert "FAILED" in text and "density L1" in text and "mean[x]" in text
    assert bad.to_dict()["passed"] is False
