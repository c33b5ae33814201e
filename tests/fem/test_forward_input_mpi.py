"""Forward solver: bad input messages, and identical observables on 1 and 2 MPI ranks."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symfp

pytestmark = pytest.mark.fem
x, y = sp.symbols("x y", real=True)


def _fp():
    return symfp.SDE(state=[x, y], drift=[-x, -y], diffusion=sp.Rational(1, 2)).fokker_planck()


def test_bad_input_messages():
    fp = _fp()
    m2 = symfp.mesh.box([(-3, 3), (-3, 3)], cells=6)
    p0 = sp.exp(-(x**2 + y**2))
    with pytest.raises(symfp.MeshError, match="1-D but the SDE has 2 state variables"):
        fp.solve(symfp.mesh.box([(0, 1)], cells=4), p0, 1.0, 0.1, progress=False)
    with pytest.raises(symfp.InputError, match="dt = -0.1 must be a positive"):
        fp.solve(m2, p0, 1.0, -0.1, progress=False)
    with pytest.raises(symfp.InputError, match="t_end = 0.05 must be at least dt"):
        fp.solve(m2, p0, 0.05, 0.1, progress=False)
    with pytest.raises(symfp.MeshError, match="'left' is not in mesh.*it has: xmax, xmin, ymax, ymin"):
        fp.solve(m2, p0, 1.0, 0.1, absorbing="left", progress=False)
    with pytest.raises(symfp.InputError, match="p0 is negative"):
        fp.solve(m2, x, 1.0, 0.1, progress=False)
    with pytest.raises(symfp.InputError, match="zero mass"):
        fp.solve(m2, 0 * x, 1.0, 0.1, progress=False)
    with pytest.raises(symfp.InputError, match="not finite"):
        fp.solve(m2, 1 / x**2, 1.0, 0.1, progress=False)
    with pytest.raises(symfp.InputError, match="outside the mesh"):
        fp.solve(m2, (5.0, 0.0), 1.0, 0.1, progress=False)
    k = sp.Symbol("k")
    with pytest.raises(symfp.InputError, match=r"free parameters \['k'\]"):
        symfp.SDE(state=[x, y], drift=[-k * x, -y], diffusion=1).fokker_planck().solve(m2, p0, 1, 0.1)


@pytest.mark.mpi
def test_observables_match_closed_form_and_agree_across_ranks(comm):
    # isotropic OU, b = -x, D = 1/2 from N((0.5, 0), 0.2 I): mean 0.5 e^{-t}, var 0.5 + (0.2 - 0.5) e^{-2t}.
    # Galerkin P1 on h = 6/48 with dt = 0.05: moments within 5e-3 (O(h² + dt)) on 1 or 2 ranks,
    # and bitwise-close (1e-10 relative) to what every other rank computed.
    fp = _fp()
    mesh = symfp.mesh.box([(-3, 3), (-3, 3)], cells=48)
    p0 = sp.exp(-((x - sp.Rational(1, 2)) ** 2 + y**2) / (2 * sp.Rational(1, 5)))
    sol = fp.solve(mesh, p0, t_end=0.5, dt=0.05, progress=False, stabilisation="none")
    obs = sol.observables
    t = obs["t"]
    np.testing.assert_allclose(obs["mean"][:, 0], 0.5 * np.exp(-t), atol=5e-3)
    np.testing.assert_allclose(obs["cov"][:, 0, 0], 0.5 - 0.3 * np.exp(-2 * t), atol=5e-3)
    assert np.max(np.abs(obs["mass"] - 1)) < 1e-11
    vals = sol.eval([[0.0, 0.0], [0.5, 0.1]])
    for other_obs, other_vals in comm.allgather((obs["cov"], vals)):
        np.testing.assert_allclose(other_obs, obs["cov"], rtol=1e-10)
        np.testing.assert_array_equal(other_vals, vals)
