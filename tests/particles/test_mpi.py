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


def _union_equals_serial(simulate, comm):
    from mpi4py import MPI

    here = np.asarray(simulate(None).theta)
    union = np.concatenate(comm.allgather(here))
    serial = np.asarray(simulate(MPI.COMM_SELF).theta)
    return here, union, serial


def test_slab_aligned_split_reproduces_the_serial_run_bit_for_bit(comm):
    # 8 slabs (ROWS = 32768) per rank or more: ranks get whole slabs, each seeded by its global first
    # row as in a serial run, so the ranks' particles together are the serial particles exactly; the
    # SDE (Euler, diagonal noise) and the exact SGD recursion (mini-batch indices + normals) alike
    from symfp.particles.mpi import share_of
    from symfp.particles.streams import ROWS

    n = 16 * ROWS + 123
    assert sum(share_of(n, r, 2) for r in range(2)) == n and share_of(n, 0, 2) == 8 * ROWS
    sde = symfp.SDE([x, y], [-x, -2 * y], [[0.2, 0.0], [0.0, 0.1]])
    here, union, serial = _union_equals_serial(
        lambda c: sde.simulate(n_particles=n, t_end=0.06, dt=0.02, init=[1.0, -1.0], seed=3, threads=1,
                               comm=c, outputs=2), comm)
    assert len(here) == (n if comm.size == 1 else share_of(n, comm.rank, comm.size))
    np.testing.assert_array_equal(union, serial)
    model = symfp.SGD(loss=(th - xi) ** 2 / 2, params=[th], data=symfp.Dataset({xi: np.linspace(-1, 1, 50)}),
                      lr=0.1, batch_size=4)
    _, union, serial = _union_equals_serial(
        lambda c: model.simulate(n_particles=n, steps=3, init=0.5, seed=5, threads=1, comm=c, outputs=2),
        comm)
    np.testing.assert_array_equal(union, serial)
    assert np.unique(serial[:, 0]).size > 1000  # the mini-batches differ across particles
