"""The result of a forward Fokker–Planck solve: times, observables, the density, and I/O.

``Solution.eval(points)`` is collective and returns the same array on every rank;
``Solution.write(dir)`` writes ``density.xdmf`` (the stored density snapshots, for ParaView),
``observables.json`` and ``observables.csv`` (rank 0 writes the JSON/CSV);
``Solution.load(dir)`` reads the observables back (no mesh needed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import InputError
from . import compat


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


@dataclass
class Solution:
    """A forward solution.

    Attributes:
        times: output times (T,).
        observables: dict of numpy arrays: ``t``, ``mass``, ``mean`` (T×d), ``cov`` (T×d×d), ``min``,
            ``max``, ``entropy``, ``relative_entropy`` (when the stationary density is known),
            ``E[name]`` for each requested expectation, ``region_mass`` (T×regions) with
            ``region_names``.
        mesh: the :class:`symfp.fem.dolfinx.mesh.Mesh`.
        sde: the SDE solved (or None when loaded from disk).
        density: the dolfinx Function of the density at the final time (None when loaded).
        snapshots: ``{t: owned nodal values}`` of the stored densities.
        info: how it was solved (scheme, stabilisation and why, Péclet number, KSP iterations...).
        timings: wall-clock seconds on this rank: ``setup`` (Péclet test, forms, JIT, assembly, KSP
            and observable set-up, p0), ``assemble`` (the operator matrices alone), and per time step
            (arrays of length steps) ``step`` (the whole step: right-hand side, solve, checks,
            observables), ``ksp`` (the linear solve alone) and ``output`` (observables; 0 when not an
            output step). Empty when loaded from disk.
    """

    times: np.ndarray
    observables: dict[str, np.ndarray]
    mesh: Any = None
    sde: Any = None
    density: Any = None
    snapshots: dict[float, np.ndarray] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)

    def _function_at(self, t: float | None) -> Any:
        if self.density is None:
            raise InputError("Solution.eval: this solution was loaded without its mesh; re-run the solve")
        if t is None:
            return self.density
        key = min(self.snapshots, key=lambda s: abs(s - t)) if self.snapshots else None
        if key is None or abs(key - t) > 1e-9 * max(1.0, abs(t)):
            have = ", ".join(f"{s:g}" for s in sorted(self.snapshots))
            raise InputError(f"Solution.eval: no density stored at t = {t:g}; stored times: {have}. "
                             "Pass keep='all' (or output_every) to solve() to store more")
        f = compat.dolfinx_modules().fem.Function(self.density.function_space)
        n = len(self.snapshots[key])
        f.x.array[:n] = self.snapshots[key]
        f.x.scatter_forward()
        return f

    def eval(self, points: Any, t: float | None = None) -> np.ndarray:
        """Density at ``points`` (n, d) at the final time or a stored time ``t``; collective.

        Returns:
            (n,) values, the same on every rank; NaN outside the mesh.
        """
        f = self._function_at(t)
        return compat.eval_points(f, points)[:, 0]

    def write(self, directory: str | os.PathLike) -> str:
        """Write ``density.xdmf`` (+ .h5) and ``observables.json``/``.csv`` into ``directory``."""
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
            if msh.comm.size == 1:
                self._write_nodal_copy(os.path.join(directory, "density_p1.xdmf"))
        if rank == 0:
            obs = {k: _jsonable(v) for k, v in self.observables.items()}
            meta = {k: _jsonable(v) for k, v in self.info.items() if isinstance(v, (str, int, float, bool))}
            with open(os.path.join(directory, "observables.json"), "w") as fh:
                json.dump({"observables": obs, "info": meta}, fh, indent=1)
            self._write_csv(os.path.join(directory, "observables.csv"))
        if comm is not None:
            comm.barrier()
        return directory

    def _write_nodal_copy(self, path: str) -> None:
        """The P1 densities on the dof mesh as inline-XML XDMF (read back by meshio, no h5py; serial)."""
        try:
            import meshio  # noqa: F401
        except ImportError:
            return
        from ..mesh import NeutralMesh
        from ..solution import write_xdmf

        V = self.density.function_space
        d = V.mesh.topology.dim
        dm = V.dofmap.list
        cells = np.asarray(getattr(dm, "array", dm)).reshape(-1, d + 1)
        mesh = NeutralMesh(points=V.tabulate_dof_coordinates()[:, :d].copy(), cells=cells.astype(np.int64))
        n = len(mesh.points)
        items = sorted(self.snapshots.items()) or [(float(self.times[-1]), self.density.x.array)]
        write_xdmf(path, mesh, "density", [(t, np.asarray(v)[:n]) for t, v in items])

    def _write_csv(self, path: str) -> None:
        from ..output import observables_csv

        with open(path, "w", newline="") as fh:
            fh.write(observables_csv(self.observables))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Any:
        """Read a folder written by :meth:`write`.

        With the serial run's ``density_p1.xdmf`` (inline XML, meshio) the result is a
        :class:`symfp.fem.solution.Solution` that evaluates (``.eval(points, t)``) and plots like the
        solution written, without dolfinx or h5py; otherwise the observables alone.
        """
        if os.path.exists(os.path.join(os.fspath(directory), "density_p1.xdmf")):
            try:
                from ..solution import Solution as NodalSolution

                return NodalSolution.load(directory)
            except ImportError:  # meshio missing: the observables alone
                pass
        path = os.path.join(os.fspath(directory), "observables.json")
        if not os.path.exists(path):
            raise InputError(f"Solution.load: {path!r} does not exist; write a solution with .write(dir)")
        with open(path) as fh:
            data = json.load(fh)
        obs: Mapping[str, Any] = data["observables"]
        arrays = {k: np.array(v, dtype=object if k == "region_names" else None) for k, v in obs.items()}
        return cls(times=arrays["t"], observables=arrays, info=data.get("info", {}))

    def __repr__(self) -> str:
        T = len(self.times)
        return (f"Solution({T} output times up to t = {self.times[-1]:g}, "
                f"stabilisation={self.info.get('stabilisation')!r}, scheme={self.info.get('scheme')!r})")
