"""Under MPI: serial per rank, or on rank 0 and broadcast (comm=); a distributed mesh and a study refused.

Each rank builds its own mesh on ``MPI.COMM_SELF`` and gets the same optimum (the ranks do not
communicate); a mesh on ``COMM_WORLD`` split over several ranks raises the same InputError on all.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.control import objectives as ob
from symfp.control.operators import operator_parts
from symfp.control.optimise import optimise
from symfp.control.problem import ControlProblem
from symfp.errors import InputError

pytestmark = [pytest.mark.fem, pytest.mark.mpi]

th, xi = sp.symbols("theta xi")


def model():
    return symfp.SGD(loss=th**2 / 2 + xi * th, params=[th],
                     data=symfp.Population({xi: sp.stats.Normal("X", 0, 1)}), lr=0.1)


def test_same_optimum_on_every_rank(comm):
    from mpi4py import MPI

    ops = operator_parts(model(), symfp.mesh.box([(-6, 6)], cells=120, comm=MPI.COMM_SELF))
    pr = ControlProblem(ops, sp.exp(-th**2 / 2), t_end=2.0, dt=0.05, n_controls=5,
                        objective=[ob.ExpectedValue(th**2 / 2)])
    res = optimise(pr, progress=False)
    assert res.converged
    values = comm.allgather(np.concatenate([[res.value], res.u]))
    assert all(np.array_equal(values[0], v) for v in values)


def test_distributed_mesh_refused_on_every_rank(comm):
    mesh = symfp.mesh.box([(-6, 6)], cells=120, comm=comm)
    if comm.size == 1:
        assert operator_parts(model(), mesh).n == 121
        return
    with pytest.raises(InputError, match="COMM_SELF"):
        operator_parts(model(), mesh)


def test_optimise_on_rank_zero_and_broadcast(comm):
    """comm=: rank 0 optimises, every rank returns the same result with its own trajectory."""
    from mpi4py import MPI

    ops = operator_parts(model(), symfp.mesh.box([(-6, 6)], cells=120, comm=MPI.COMM_SELF))
    pr = ControlProblem(ops, sp.exp(-th**2 / 2), t_end=2.0, dt=0.05, n_controls=5,
                        objective=[ob.ExpectedValue(th**2 / 2)])
    res = optimise(pr, progress=False, comm=comm)
    assert res.converged, res.summary
    assert res.trajectory is not None and np.array_equal(res.trajectory.u, res.u)
    assert res.trajectory.value == res.value  # the re-solve on ranks > 0 is the same computation
    rows = comm.allgather(np.concatenate([[res.value, res.iterations], res.u]))
    assert all(np.array_equal(rows[0], r) for r in rows)
    # an error on rank 0 is raised on every rank (none is left waiting in the broadcast)
    with pytest.raises(InputError, match="cannot be met"):
        optimise(pr, budget={"u": -1.0}, progress=False, comm=comm)


def test_study_refused_under_several_ranks(comm):
    from symfp.control.study import schedule_study

    if comm.size == 1:
        with pytest.raises(InputError, match="does not define `model`"):
            schedule_study({})
        return
    with pytest.raises(InputError, match=f"launched on {comm.size} MPI ranks.*without mpirun"):
        schedule_study({})
