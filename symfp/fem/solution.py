"""Forward solutions, backend-neutral: :class:`Solution` (eval, write, load) and the run's ``info``.

The scikit-fem backend returns this class; the dolfinx backend a subclass
(:class:`symfp.fem.dolfinx.solution.Solution`) whose adapters are the dolfinx-specific parts only
(density as a dolfinx Function, collective ``eval`` on the dolfinx mesh, XDMF through dolfinx);
:meth:`Solution.load` restores a written solution of either backend (also of a run on several MPI
ranks) without dolfinx or h5py. :func:`solve_info` is the ``info`` dict of both backends' forward solves.

``eval(points)`` interpolates the nodal values (P1: barycentric on the neutral mesh; P2 through
scikit-fem's probes), NaN outside the mesh. ``write(dir)`` writes ``density.xdmf`` (XML data, no HDF5:
read back by meshio without h5py) and ``observables.json``/``.csv``; :meth:`Solution.load` restores a
solution that evaluates and plots like a fresh one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from .mesh import NeutralMesh
from .output import read_observables, write_observables

#: the XML (meshio-readable) copy of the nodal densities that a dolfinx solution writes beside its XDMF
NODAL_COPY = "density_p1.xdmf"


def solve_info(*, backend: str, domain: str, wall_ratios: Any, scheme: str, method: str, reason: str,
               report: Any, dt: float, steps: int, iterations: int, assemble_seconds: float,
               time_dependent: bool, assemblies: int, loop_seconds: float, setup_seconds: float, dofs: int,
               absorbing: Any, ranks: int) -> dict[str, Any]:
    """The ``info`` of a forward solve (both backends; each adds its own entries, e.g. FCT's).

    Keys: backend, domain, max_wall_ratio, scheme, stabilisation (and _reason), max_cell_peclet,
    degenerate_diffusion, dt, steps, ksp_iterations, assemble_seconds, time_dependent,
    operator_assemblies, loop_seconds, seconds_per_step, setup_seconds, dofs, absorbing (comma
    separated part names), ranks.
    """
    peclet = float(report.max_peclet)
    return {
        "backend": backend,
        "domain": domain,
        "max_wall_ratio": float(max(wall_ratios)) if len(wall_ratios) else 0.0,
        "scheme": scheme,
        "stabilisation": method,
        "stabilisation_reason": reason,
        "max_cell_peclet": float("inf") if peclet != peclet else peclet,  # NaN: no finite estimate
        "degenerate_diffusion": report.degenerate,
        "dt": dt,
        "steps": steps,
        "ksp_iterations": int(iterations),
        "assemble_seconds": assemble_seconds,
        "time_dependent": time_dependent,
        "operator_assemblies": assemblies,
        "loop_seconds": loop_seconds,
        "seconds_per_step": loop_seconds / steps,
        "setup_seconds": setup_seconds,
        "dofs": int(dofs),
        "absorbing": ",".join(absorbing),
        "ranks": ranks,
    }

_CELL_TYPES = {1: "line", 2: "triangle", 3: "tetra"}


def write_xdmf(path: str, mesh: NeutralMesh, name: str, series: list[tuple[float, np.ndarray]]) -> None:
    import meshio

    tmp = path + ".tmp.xdmf"
    cells = [(_CELL_TYPES[mesh.dim], mesh.cells)]
    pts = np.zeros((len(mesh.points), 3))  # XDMF geometry is XYZ (meshio refuses 1-D points)
    pts[:, : mesh.dim] = mesh.points
    with meshio.xdmf.TimeSeriesWriter(tmp, data_format="XML") as w:
        w.write_points_cells(pts, cells)
        for t, vals in series:
            w.write_data(float(t), point_data={name: np.asarray(vals, dtype=float)})
    os.replace(tmp, path)


def read_xdmf(path: str) -> tuple[NeutralMesh, list[tuple[float, np.ndarray]]]:
    import meshio

    with meshio.xdmf.TimeSeriesReader(path) as r:
        points, cells = r.read_points_cells()
        series = []
        for k in range(r.num_steps):
            t, pd, _ = r.read_data(k)
            series.append((float(t), np.asarray(next(iter(pd.values())), dtype=float)))
    d = {"line": 1, "triangle": 2, "tetra": 3}[cells[0].type]
    return NeutralMesh(points=np.asarray(points)[:, :d], cells=np.asarray(cells[0].data, dtype=np.int64),
                       source=os.path.basename(path)), series


def _is_xml_xdmf(path: str) -> bool:
    """True for an XDMF file with inline XML data (HDF5-backed files need h5py to read)."""
    with open(path) as fh:
        return 'Format="HDF"' not in fh.read()


@dataclass
class Solution:
    """A forward solution (the scikit-fem backend's, and a loaded one of either backend).

    Attributes:
        times: output times (T,).
        observables: dict of numpy arrays: ``t``, ``mass``, ``mean`` (T×d), ``cov`` (T×d×d), ``min``,
            ``max``, ``entropy``, ``relative_entropy`` (when the stationary density is known),
            ``E[name]`` for each requested expectation, ``region_mass`` (T×regions) with
            ``region_names``, ``wall``.
        mesh: a :class:`NeutralMesh` (the dolfinx subclass: a dolfinx-backed mesh).
        sde: the SDE solved (None when loaded).
        density: the final nodal values (the dolfinx subclass: a dolfinx Function).
        snapshots: ``{t: nodal values}`` of the stored densities.
        info: how it was solved (:func:`solve_info`).
        timings: wall-clock seconds (empty when loaded).
    """

    times: np.ndarray
    observables: dict[str, np.ndarray]
    mesh: Any = None
    sde: Any = None
    density: Any = None
    snapshots: dict[float, np.ndarray] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)

    backend = "skfem"

    def _require_density(self) -> None:
        if self.density is None or self.mesh is None:
            raise InputError("Solution.eval: this solution has no density stored (loaded from observables "
                             "alone); write it with .write(dir) and load the folder")

    def _snapshot(self, t: float) -> np.ndarray:
        """The stored nodal values at time ``t`` (InputError listing the stored times otherwise)."""
        key = min(self.snapshots, key=lambda s: abs(s - t)) if self.snapshots else None
        if key is None or abs(key - t) > 1e-9 * max(1.0, abs(t)):
            have = ", ".join(f"{s:g}" for s in sorted(self.snapshots))
            raise InputError(f"Solution.eval: no density stored at t = {t:g}; stored times: {have}. "
                             "Pass keep='all' (or output_every) to solve() to store more")
        return self.snapshots[key]

    def _values_at(self, t: float | None) -> np.ndarray:
        self._require_density()
        return self.density if t is None else self._snapshot(t)

    def eval(self, points: Any, t: float | None = None) -> np.ndarray:
        """Density at ``points`` (n, d) at the final time or a stored time ``t``; NaN outside."""
        pts = np.asarray(points, dtype=float).reshape(-1, self.mesh.dim)
        return self.mesh.interpolate_p1(self._values_at(t), pts)

    def write(self, directory: str | os.PathLike) -> str:
        """Write ``density.xdmf`` (all stored times) and ``observables.json``/``.csv`` into ``directory``."""
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        if self.density is not None:
            items = sorted(self.snapshots.items()) or [(float(self.times[-1]), self.density)]
            write_xdmf(os.path.join(directory, "density.xdmf"), self.mesh, "density", items)
        write_observables(directory, self.observables, {**self.info, "backend": self.backend})
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Solution:
        """Read a folder written by :meth:`write`: observables, and the mesh and densities (XDMF)."""
        directory = os.fspath(directory)
        if not os.path.exists(os.path.join(directory, "observables.json")):
            raise InputError(f"Solution.load: {directory!r} has no observables.json; write a solution with "
                             ".write(dir)")
        obs, info = read_observables(directory)
        mesh = density = None
        snaps: dict[float, np.ndarray] = {}
        path = os.path.join(directory, "density.xdmf")
        nodal = os.path.join(directory, NODAL_COPY)  # a dolfinx solution's XML copy
        if os.path.exists(nodal):
            path = nodal
        if os.path.exists(path) and _is_xml_xdmf(path):
            mesh, series = read_xdmf(path)
            snaps = dict(series)
            density = series[-1][1]
        return cls(times=obs["t"], observables=obs, mesh=mesh, density=density, snapshots=snaps, info=info)

    def __repr__(self) -> str:
        return (f"Solution({len(self.times)} output times up to t = {self.times[-1]:g}, "
                f"backend={self.backend!r}, "
                f"stabilisation={self.info.get('stabilisation')!r}, scheme={self.info.get('scheme')!r})")
