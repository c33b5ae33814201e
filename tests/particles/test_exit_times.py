"""First-passage times of particles against closed forms (REFERENCE_CASES items 8 and 9) and the FE
mean exit time. Means are compared within 4 standard errors of the particle mean (the FE and
quadrature errors are orders of magnitude smaller); the censoring bias is kept below 0.1 %.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from scipy.integrate import cumulative_trapezoid

import symfp
from symfp.errors import InputError
from symfp.particles import Ball, Box, HalfSpace, SubLevel

pytestmark = pytest.mark.torch
x, y = sp.symbols("x y", real=True)
EPS = 0.3
V = x**4 / 4 - x**2 / 2


def double_well():
    return symfp.SDE([x], -sp.diff(V, x), EPS)


def quadrature_exit_time(x0: float, a: float = -2.5, c: float = 0.5) -> float:
    """Item 8: τ(x0) = ∫_{x0}^c s(y) ∫_a^y m(z) dz dy with s = e^{V/ε}, m = e^{−V/ε}/ε (reflect at a)."""
    z = np.linspace(a, c, 200_001)
    Vz = z**4 / 4 - z**2 / 2
    inner = cumulative_trapezoid(np.exp(-Vz / EPS) / EPS, z, initial=0.0)
    outer = np.exp(Vz / EPS) * inner
    keep = z >= x0
    from scipy.integrate import trapezoid  # np.trapz is gone in numpy 2

    return float(trapezoid(outer[keep], z[keep]))


@pytest.fixture(scope="module")
def well_cloud():
    tau = quadrature_exit_time(-1.0)
    cloud = double_well().simulate(
        n_particles=3000,
        t_end=7 * tau,
        dt=0.01,
        init=-1.0,
        seed=21,
        absorbing=HalfSpace([1.0], 0.5),
        outputs=2,
    )
    return tau, cloud


def test_item8_double_well_exit_time_vs_quadrature(well_cloud):
    tau, cloud = well_cloud
    ex = cloud.exit_times()
    assert ex.censored_fraction < 0.003  # P(τ > 7 E τ) ≈ e^{−7} for a near-exponential exit time
    mean, se = ex.mean(stderr=True)
    assert abs(mean - tau) < 4 * se
    assert se < 0.03 * tau


@pytest.mark.fem
def test_double_well_particles_vs_fe_mean_exit_time(well_cloud):
    tau_q, cloud = well_cloud
    mesh = symfp.mesh.box([(-2.5, 0.5)], cells=600)
    fe = symfp.mean_exit_time(double_well(), mesh, absorbing=["xmax"])
    tau_fe = float(fe.eval(np.array([[-1.0]]))[0])
    assert tau_fe == pytest.approx(tau_q, rel=5e-3)  # the FE solution itself is accurate
    mean, se = cloud.exit_times().mean(stderr=True)
    assert abs(mean - tau_fe) < 4 * se


def test_item9_ball_exit_with_brownian_bridge():
    # Pure diffusion εΔ in the unit disc (d = 2): τ(0) = R²/(2dε) = 0.5 at ε = 0.5. Euler steps of 0.01
    # without the bridge correction overshoot the wall (~0.58 σ√dt) and overestimate τ by ~12 % (many
    # standard errors); with it the mean is within 4 standard errors.
    sde = symfp.SDE([x, y], [0, 0], 0.5)
    res = {}
    for bridge in (True, False):
        cloud = sde.simulate(
            n_particles=4000,
            t_end=4.0,
            dt=0.01,
            init=[0.0, 0.0],
            seed=2,
            outputs=2,
            absorbing=Ball([0, 0], 1.0, complement=True),
            bridge=bridge,
        )
        res[bridge] = cloud.exit_times().mean(stderr=True)
        assert cloud.exit_times().censored_fraction == 0.0
    assert abs(res[True][0] - 0.5) < 4 * res[True][1]
    assert res[False][0] - 0.5 > 6 * res[False][1]


def test_box_sublevel_and_survival():
    # The unit disc as the sub-level set {x² + y² ≤ 1} (absorbed on leaving it): same τ(0) = 0.5 as the
    # Ball, with the first-order distance (g − 1)/|∇g| in the bridge correction.
    sde = symfp.SDE([x, y], [0, 0], 0.5)
    cloud = sde.simulate(
        n_particles=4000,
        t_end=4.0,
        dt=0.01,
        init=[0.0, 0.0],
        seed=3,
        outputs=2,
        absorbing=SubLevel(x**2 + y**2, [x, y], 1.0, complement=True),
    )
    m, se = cloud.exit_times().mean(stderr=True)
    assert abs(m - 0.5) < 4 * se
    # Box: 1-D εΔ leaving (−1, 1) has τ(x) = (1 − x²)/(2ε) = 1 at 0 (item 9 with d = 1).
    sde1 = symfp.SDE([x], 0, 0.5)
    c1 = sde1.simulate(
        n_particles=4000,
        t_end=8.0,
        dt=0.01,
        init=0.0,
        seed=4,
        outputs=2,
        absorbing=Box([(-1.0, 1.0)], complement=True),
    )
    m1, se1 = c1.exit_times().mean(stderr=True)
    assert abs(m1 - 1.0) < 4 * se1
    surv = c1.exit_times().survival([0.0, 100.0])
    assert surv[0] == 1.0 and surv[1] == 0.0


def test_absorbing_errors():
    sde = symfp.SDE([x, y], [0, 0], 0.5)
    with pytest.raises(InputError, match="dimension 1 for a state of dimension 2"):
        sde.simulate(10, 1.0, 0.1, init=[0, 0], absorbing=HalfSpace([1.0], 0.5))
    with pytest.raises(InputError, match="not an absorbing set"):
        sde.simulate(10, 1.0, 0.1, init=[0, 0], absorbing="xmax")
    with pytest.raises(InputError, match="had no absorbing set"):
        sde.simulate(10, 1.0, 0.1, init=[0, 0]).exit_times()


@pytest.mark.fem
@pytest.mark.mpi
def test_mesh_histogram_and_mesh_complement():
    # Histogram mass = 1 − escaped mass; particles of εΔ from 0 leaving the mesh (−1,1) exit at
    # mean time (1 − 0²)/(2ε) = 1 (item 9, d = 1), as with the Box.
    from symfp.particles import MeshComplement

    mesh = symfp.mesh.box([(-1.0, 1.0)], cells=20)
    sde = symfp.SDE([x], 0, 0.5)
    cloud = sde.simulate(n_particles=2000, t_end=0.3, dt=0.01, init=0.0, seed=6, outputs=2)
    h = cloud.histogram(mesh)
    esc = float(np.mean(np.abs(np.concatenate(cloud.comm.allgather(cloud.theta))) > 1.0))
    assert h.escaped_mass == pytest.approx(esc, abs=1e-12)
    total = cloud.comm.allreduce(float((h.density * h.volumes).sum()))
    assert total == pytest.approx(1 - esc, abs=1e-12)
    with pytest.raises(symfp.MeshError, match="outside the mesh"):
        cloud.histogram(symfp.mesh.box([(-0.1, 0.1)], cells=4), max_escaped=0.05)
    c = sde.simulate(
        n_particles=600, t_end=8.0, dt=0.01, init=0.0, seed=7, outputs=2, absorbing=MeshComplement(mesh)
    )
    m, se = c.exit_times().mean(stderr=True)
    assert abs(m - 1.0) < 4 * se + 0.06  # no bridge correction for a mesh: O(√dt) overshoot bias ≈ 5 %
