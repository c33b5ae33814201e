"""A written dolfinx solution loads back and evaluates, also when it was written by 2 MPI ranks.

``Solution.write`` gathers the nodal densities to rank 0 in the global dof numbering
(``density_p1.xdmf``); ``Solution.load`` reads it with meshio alone (a neutral Solution on every rank).
The loaded density is the same P1 function as the solved one, so both evaluate to the same values up
to round-off of the barycentric interpolation (≈ 1e-15 relative; tolerance 1e-12).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.fem.solution import Solution as NodalSolution

pytestmark = [pytest.mark.fem, pytest.mark.mpi]
x, y = sp.symbols("x y", real=True)


def _solve(**kw):
    sde = symfp.SDE(state=[x, y], drift=[-x - y / 2, -y], diffusion=sp.Rational(1, 5))
    mesh = symfp.mesh.box([(-2, 2), (-2, 2)], cells=12)
    p0 = sp.exp(-((x - 0.5) ** 2 + y**2) / sp.Rational(1, 5))
    return sde.fokker_planck().solve(mesh, p0, t_end=0.2, dt=0.05, progress=False, backend="dolfinx", **kw)


def _points():
    rng = np.random.default_rng(7)
    inside = rng.uniform(-1.9, 1.9, size=(40, 2))
    return np.vstack([inside, [[2.5, 0.0]]])  # the last one is outside the mesh


@pytest.mark.parametrize("keep", ["all", "final"])
def test_written_solution_loads_and_evaluates_on_every_rank(tmp_path, comm, keep):
    pytest.importorskip("meshio")  # the nodal copy is written and read by meshio (without it: a warning)
    sol = _solve(keep=keep)
    folder = comm.bcast(str(tmp_path / "run") if comm.rank == 0 else None, root=0)  # one folder for all ranks
    sol.write(folder)
    back = type(sol).load(folder)
    assert isinstance(back, NodalSolution) and back.density is not None  # nodal data, read by meshio
    assert back.info["backend"] == "dolfinx" and back.info["ranks"] == comm.size
    assert len(back.mesh.points) == sol.info["dofs"]  # every dof once, whatever the partition
    np.testing.assert_allclose(back.observables["cov"], sol.observables["cov"], rtol=1e-15)
    pts = _points()
    times = [0.1, 0.2] if keep == "all" else [None]
    for t in times:
        want, got = sol.eval(pts, t=t), back.eval(pts, t=t)
        assert np.isnan(want[-1]) and np.isnan(got[-1])
        np.testing.assert_allclose(got[:-1], want[:-1], rtol=1e-12, atol=1e-12 * np.abs(want[:-1]).max())
    assert back.density.shape == (sol.info["dofs"],)
    if keep == "all":
        assert sorted(back.snapshots) == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])
