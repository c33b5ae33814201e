"""MPI: particles split over ranks (own seeds), statistics reduced — the same numbers on every rank,
and agreement with the closed form (hence with a serial run) within 4 Monte Carlo standard errors.
Runs serially and under ``mpirun -n 2``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from sympy.stats import Normal

import symfp

pytestmark = [pytest.mark.torch, pytest.mark.mpi]
x, y, th, xi = sp.symbols("x y theta xi", real=True)


def test_sde_split_over_ranks_matches_closed_form(comm):
    sde = symfp.SDE([x, y], [-x, -2 * y], [[0.2, 0.0], [0.0, 0.1]])
    cloud = sde.simulate(n_particles=30_001, t_end=1.0, dt=0.02, init=[1.0, -1.0], method="weak2", seed=4)
    assert comm.allreduce(len(cloud.theta)) == 30_001
    m, mse = cloud.mean(stderr=True)
    c, cse = cloud.cov(stderr=True)
    # same answer on every rank
    assert np.array_equal(comm.bcast(m, root=0), m) and np.array_equal(comm.bcast(c, root=0), c)
    exact_m = np.array([math.exp(-1.0), -math.exp(-2.0)])
    exact_c = np.diag([0.2 * (1 - math.exp(-2.0)), 0.1 / 2 * (1 - math.exp(-4.0))])  # D(1 − e^{−2at})/a
    assert np.all(np.abs(m - exact_m) < 4 * mse)
    assert np.all(np.abs(c - exact_c) < 4 * cse + 1e-12)
    traj = cloud.moments()
    assert np.allclose(traj["mean"][-1], m) and np.allclose(traj["cov"][-1], c)


def test_recursion_split_over_ranks_item2(comm):
    model = symfp.SGD(
        loss=th**2 / 2 + xi * th,
        params=[th],
        data=symfp.Population({xi: Normal("X", 0, 1)}),
        lr=0.1,
        batch_size=1,
    )
    cloud = model.simulate(n_particles=60_000, steps=120, init=0.0, seed=9)
    var, se = cloud.cov(stderr=True)
    assert abs(var[0, 0] - 0.0526316) < 4 * se[0, 0]
    ex_rank_seeds = comm.allgather(float(cloud.theta[0, 0]))
    assert comm.size == 1 or len(set(ex_rank_seeds)) == comm.size  # ranks draw different numbers
