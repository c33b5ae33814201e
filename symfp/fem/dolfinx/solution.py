"""The dolfinx adapter of the forward :class:`symfp.fem.solution.Solution`: density, eval and XDMF.

The attributes, the snapshot lookup, the observables on disk and :meth:`Solution.load` are the
backend-neutral class's; this subclass holds only what needs dolfinx:

- ``density`` is a dolfinx Function; ``snapshots`` are the *owned* nodal values on each rank;
- ``Solution.eval(points, t)`` is collective and returns the same array on every rank;
- ``Solution.write(dir)`` writes ``density.xdmf`` (+ .h5, dolfinx, for ParaView), the nodal copy
  ``density_p1.xdmf`` (inline XML, gathered to rank 0 in the global dof numbering, so a run on any
  number of ranks can be read back by meshio alone) and ``observables.json``/``.csv`` (rank 0);
- ``Solution.load(dir)`` returns the neutral :class:`symfp.fem.solution.Solution`, which evaluates
  and plots like the solution written, without dolfinx or h5py (serially on each rank).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..output import write_observables
from ..solution import NODAL_COPY
from ..solution import Solution as NodalSolution
from . import compat


@dataclass(repr=False)
class Solution(NodalSolution):
    """A forward solution of the dolfinx backend (attributes as :class:`symfp.fem.solution.Solution`).

    Attributes:
        mesh: the :class:`symfp.fem.dolfinx.mesh.Mesh`.
        density: the dolfinx Function of the density at the final time.
        snapshots: ``{t: owned nodal values}`` of the stored densities.
        timings: wall-clock seconds on this rank: ``setup`` (Péclet test, forms, JIT, assembly, KSP
            and observable set-up, p0), ``assemble`` (the operator matrices alone), and per time step
            (arrays of length steps) ``step`` (the whole step: right-hand side, solve, checks,
            observables), ``ksp`` (the linear solves alone) and ``output`` (the trackers: checks and
            observables).
    """

    backend = "dolfinx"

    def _function_at(self, t: float | None) -> Any:
        self._require_density()
        if t is None:
            return self.density
        vals = self._snapshot(t)
        f = compat.dolfinx_modules().fem.Function(self.density.function_space)
        f.x.array[: len(vals)] = vals
        f.x.scatter_forward()
        return f

    def eval(self, points: Any, t: float | None = None) -> np.ndarray:
        """Density at ``points`` (n, d) at the final time or a stored time ``t``; collective.

        Returns:
            (n,) values, the same on every rank; NaN outside the mesh.
        """
        return compat.eval_points(self._function_at(t), points)[:, 0]

    def write(self, directory: str | os.PathLike) -> str:
        """Write ``density.xdmf`` (+ .h5), ``density_p1.xdmf``, ``observables.json``/``.csv``; collective."""
        directory = os.fspath(directory)
        comm = self.mesh.comm if self.mesh is not None else None
        rank = comm.rank if comm is not None else 0
        if rank == 0:
            os.makedirs(directory, exist_ok=True)
        if comm is not None:
            comm.barrier()
        if self.density is not None:
            msh = self.density.function_space.mesh
            with compat.xdmf_file(msh.comm, os.path.join(directory, "density.xdmf"), "w") as xf:
                xf.write_mesh(msh)
                items = sorted(self.snapshots.items()) or [(float(self.times[-1]), None)]
                for t, vals in items:
                    f = self._function_at(t) if vals is not None else self.density
                    f.name = "density"
                    xf.write_function(f, float(t))
            self._write_nodal_copy(os.path.join(directory, NODAL_COPY))
        if rank == 0:
            write_observables(directory, self.observables, {**self.info, "backend": self.backend})
        if comm is not None:
            comm.barrier()
        return directory

    def _write_nodal_copy(self, path: str) -> None:
        """The P1 densities as inline-XML XDMF on rank 0 (collective; skipped without meshio)."""
        try:
            import meshio  # noqa: F401
        except ImportError:
            if self.density.function_space.mesh.comm.rank == 0:
                warnings.warn(f"Solution.write: {NODAL_COPY} (the nodal copy that Solution.load evaluates) "
                              "was not written: meshio is not installed (pip install meshio); the folder "
                              "holds the observables and dolfinx's density.xdmf/.h5 only", stacklevel=3)
            return
        from ..solution import write_xdmf

        items = sorted(self.snapshots.items())
        if not items:
            n = self.density.function_space.dofmap.index_map.size_local
            items = [(float(self.times[-1]), self.density.x.array[:n])]
        gathered = gather_nodal(self.density.function_space, [v for _, v in items])
        if gathered is not None:
            mesh, values = gathered
            write_xdmf(path, mesh, "density", [(t, v) for (t, _), v in zip(items, values, strict=True)])

    @classmethod
    def load(cls, directory: str | os.PathLike) -> NodalSolution:
        """Read a folder written by :meth:`write` (any number of ranks) as a neutral Solution.

        With ``density_p1.xdmf`` (and meshio) it evaluates (``.eval(points, t)``) and plots like the
        solution written, without dolfinx or h5py; otherwise it holds the observables alone.
        """
        try:
            return NodalSolution.load(directory)
        except ImportError:  # meshio missing: the observables alone, and say so
            from ..output import read_observables

            warnings.warn(f"Solution.load: {os.fspath(directory)!r} read without its densities: meshio is "
                          "not installed (pip install meshio); .eval and the density plots need it",
                          stacklevel=2)
            obs, info = read_observables(os.fspath(directory))
            return NodalSolution(times=obs["t"], observables=obs, info=info)


def gather_nodal(V: Any, arrays: list[np.ndarray], root: int = 0) -> tuple[Any, list[np.ndarray]] | None:
    """The P1 dof mesh and owned nodal ``arrays`` of every rank on ``root``, in the global dof numbering.

    Each rank sends its owned dof coordinates and global indices, its owned cells (dofs in global
    numbering: ghost dofs through the index map's ghosts) and its owned values; ``root`` assembles a
    :class:`symfp.fem.mesh.NeutralMesh` over all dofs. On one rank this is the local dof mesh itself.
    Collective.

    Returns:
        ``(mesh, [values, ...])`` on ``root``, None elsewhere.
    """
    from ..mesh import NeutralMesh

    msh = V.mesh
    d = msh.topology.dim
    imap = V.dofmap.index_map
    n = imap.size_local
    r0 = imap.local_range[0]
    local_to_global = np.concatenate([np.arange(r0, r0 + n, dtype=np.int64),
                                      np.asarray(imap.ghosts, dtype=np.int64)])
    dm = V.dofmap.list
    n_cells = msh.topology.index_map(d).size_local
    cells = np.asarray(getattr(dm, "array", dm)).reshape(-1, d + 1)[:n_cells]
    coords = V.tabulate_dof_coordinates()[:n, :d]
    payload = (r0, coords, local_to_global[cells], [np.asarray(a, dtype=float)[:n] for a in arrays])
    parts = msh.comm.gather(payload, root=root)
    if msh.comm.rank != root:
        return None
    total = sum(len(p[1]) for p in parts)
    points = np.empty((total, d))
    values = [np.empty(total) for _ in arrays]
    for start, xs, _, vals in parts:
        points[start:start + len(xs)] = xs
        for out, v in zip(values, vals, strict=True):
            out[start:start + len(xs)] = v
    all_cells = np.concatenate([p[2] for p in parts]).astype(np.int64)
    return NeutralMesh(points=points, cells=all_cells), values
