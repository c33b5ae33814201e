"""Meshes with named boundary parts and regions: built-in boxes and gmsh files.

- :func:`box` — an interval, rectangle or box ``[(a, b), ...]`` whose faces are named ``xmin``,
  ``xmax``, ``ymin``, ``ymax``, ``zmin``, ``zmax`` (facet tags 1 … 6 in that order).
- :func:`load` — a gmsh ``.msh`` file, or a ``.geo`` file meshed on the fly; physical groups of
  dimension tdim−1 become named boundary parts, those of dimension tdim named regions.
- :func:`as_mesh` — accept a :class:`Mesh`, a raw dolfinx mesh (no names), or a path.

All functions are collective over the communicator.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import MeshError
from ..mesh import check_box
from . import compat

_FACE_NAMES = ("xmin", "xmax", "ymin", "ymax", "zmin", "zmax")


@dataclass(frozen=True, eq=False)
class Mesh:
    """A dolfinx mesh with names for its boundary parts and regions.

    Attributes:
        mesh: the dolfinx mesh.
        boundaries: boundary-part name → facet tag value.
        regions: region name → cell tag value.
        facet_tags: dolfinx MeshTags on facets (or None).
        cell_tags: dolfinx MeshTags on cells (or None).
        source: where it came from (for messages).
    """

    mesh: Any
    boundaries: Mapping[str, int] = field(default_factory=dict)
    regions: Mapping[str, int] = field(default_factory=dict)
    facet_tags: Any = None
    cell_tags: Any = None
    source: str = "dolfinx mesh"
    spec: Any = None  # symfp.fem.mesh.MeshSpec: how it was made (other backends rebuild it from this)

    @property
    def dim(self) -> int:
        """Topological dimension (= number of state variables it can carry)."""
        return self.mesh.topology.dim

    @property
    def comm(self) -> Any:
        """The MPI communicator of the mesh."""
        return self.mesh.comm

    # ---- the backend-neutral mesh protocol (symfp.fem.mesh)
    @property
    def boundary_names(self) -> tuple[str, ...]:
        """Names of the boundary parts."""
        return tuple(self.boundaries)

    @property
    def region_names(self) -> tuple[str, ...]:
        """Names of the regions."""
        return tuple(self.regions)

    def bounds(self) -> np.ndarray:
        """(d, 2) bounding box over all ranks (collective)."""
        MPI = compat.dolfinx_modules().MPI
        x = np.asarray(self.mesh.geometry.x)[:, : self.dim]
        lo = x.min(axis=0) if len(x) else np.full(self.dim, np.inf)
        hi = x.max(axis=0) if len(x) else np.full(self.dim, -np.inf)
        glo, ghi = np.empty_like(lo), np.empty_like(hi)
        self.comm.Allreduce(np.ascontiguousarray(lo), glo, op=MPI.MIN)
        self.comm.Allreduce(np.ascontiguousarray(hi), ghi, op=MPI.MAX)
        return np.stack([glo, ghi], axis=1)

    def locate_cells(self, points: Any) -> np.ndarray:
        """An owned local cell per point, −1 where another rank or nobody has it (collective)."""
        pts = np.asarray(points, dtype=float).reshape(-1, self.dim)
        return compat.locate_points(self.mesh, pts)[1]

    def contains(self, points: Any) -> np.ndarray:
        """Whether each of this rank's points lies in the (distributed) mesh (collective)."""
        pts = np.asarray(points, dtype=float).reshape(-1, self.dim)
        comm = self.comm
        if comm.size == 1:
            return compat.local_cells(self.mesh, pts) >= 0
        MPI = compat.dolfinx_modules().MPI
        parts = comm.allgather(pts)
        found = (compat.local_cells(self.mesh, np.concatenate(parts)) >= 0).astype(np.int32)
        tot = np.empty_like(found)
        comm.Allreduce(found, tot, op=MPI.SUM)
        start = sum(len(q) for q in parts[: comm.rank])
        return tot[start : start + len(pts)] > 0

    def cell_volumes(self) -> np.ndarray:
        """Volumes of the owned cells (bounding-box volume for quadrilaterals/hexahedra)."""
        xs = compat.cell_vertex_coordinates(self.mesh)
        d = self.dim
        if xs.shape[1] > d + 1:
            return np.prod(xs[..., :d].max(axis=1) - xs[..., :d].min(axis=1), axis=1)
        e = xs[:, 1 : d + 1, :d] - xs[:, :1, :d]
        return np.abs(np.linalg.det(e)) / float(np.prod(np.arange(1, d + 1)))

    def boundary_facets(self, name: str) -> np.ndarray:
        """Local facet indices of the boundary part ``name`` (raises MeshError listing the names)."""
        return self._tagged("boundary part", name, self.boundaries, self.facet_tags,
                            "none (the mesh has no named boundary parts)")

    def region_cells(self, name: str) -> np.ndarray:
        """Local cell indices of the region ``name`` (raises MeshError listing the names)."""
        return self._tagged("region", name, self.regions, self.cell_tags, "none")

    def _tagged(self, what: str, name: str, names: dict[str, int], tags: Any, none: str) -> np.ndarray:
        """Local entities tagged ``names[name]`` in ``tags``; MeshError listing ``names`` when unknown."""
        if name not in names:
            have = ", ".join(sorted(names)) or none
            raise MeshError(f"{what} {name!r} is not in mesh '{self.source}'; it has: {have}")
        return tags.indices[tags.values == names[name]]

    def measure(self, kind: str = "dx") -> Any:
        """The UFL measure ``dx`` (with cell tags) or ``ds`` (with facet tags)."""
        ufl = compat.dolfinx_modules().ufl
        if kind == "dx":
            return ufl.Measure("dx", domain=self.mesh, subdomain_data=self.cell_tags)
        if kind == "ds":
            return ufl.Measure("ds", domain=self.mesh, subdomain_data=self.facet_tags)
        raise MeshError(f"measure kind {kind!r} is not 'dx' or 'ds'")

    def volume(self, region: str | None = None) -> float:
        """Volume (length/area) of the mesh or of a named region (collective)."""
        dx = self.measure("dx")
        one = compat.dolfinx_modules().fem.Constant(self.mesh, 1.0)
        return compat.assemble_scalar(compat.form(one * (dx(self.regions[region]) if region else dx)),
                                      self.mesh.comm)

    def boundary_measure(self, name: str | None = None) -> float:
        """Length/area of the whole boundary or of a named part (collective)."""
        if name is not None and name not in self.boundaries:
            self.boundary_facets(name)  # raises with the list of names
        ds = self.measure("ds")
        one = compat.dolfinx_modules().fem.Constant(self.mesh, 1.0)
        return compat.assemble_scalar(compat.form(one * (ds(self.boundaries[name]) if name else ds)),
                                      self.mesh.comm)

    def __repr__(self) -> str:
        return (f"Mesh(dim={self.dim}, source={self.source!r}, boundaries={sorted(self.boundaries)}, "
                f"regions={sorted(self.regions)})")


def _comm(comm: Any) -> Any:
    if comm is None:
        return compat.dolfinx_modules().MPI.COMM_WORLD
    return comm


def box(bounds: Sequence[Sequence[float]], cells: int | Sequence[int] = 32, comm: Any = None,
        cell_type: str = "simplex") -> Mesh:
    """An interval, rectangle or box with faces named ``xmin``, ``xmax``, ``ymin``, … .

    Args:
        bounds: ``[(a1, b1), ..., (ad, bd)]`` with ``a < b``, d ∈ {1, 2, 3}.
        cells: cells per direction (an int for all directions, or one per direction).
        comm: MPI communicator (default COMM_WORLD).
        cell_type: "simplex" (intervals/triangles/tetrahedra) or "quadrilateral"/"hexahedron".

    Returns:
        A :class:`Mesh` with facet tags 1 … 2d for the faces in the order above.
    """
    b, n = check_box(bounds, cells)
    d = b.shape[0]
    m = compat.dolfinx_modules()
    comm = _comm(comm)
    CT = m.mesh.CellType
    if d == 1:
        msh = m.mesh.create_interval(comm, n[0], [b[0, 0], b[0, 1]])
    elif d == 2:
        ct = CT.triangle if cell_type == "simplex" else CT.quadrilateral
        msh = m.mesh.create_rectangle(comm, [b[:, 0], b[:, 1]], n, cell_type=ct)
    else:
        ct = CT.tetrahedron if cell_type == "simplex" else CT.hexahedron
        msh = m.mesh.create_box(comm, [b[:, 0], b[:, 1]], n, cell_type=ct)
    tdim = msh.topology.dim
    tol = 1e-10 * float(np.max(b[:, 1] - b[:, 0]))
    indices, values = [], []
    names: dict[str, int] = {}
    for axis in range(d):
        for side in range(2):
            tag = 2 * axis + side + 1
            names[_FACE_NAMES[2 * axis + side]] = tag
            x0 = b[axis, side]
            facets = m.mesh.locate_entities_boundary(
                msh, tdim - 1, lambda x, a=axis, v=x0: np.abs(x[a] - v) < tol)
            indices.append(facets)
            values.append(np.full(len(facets), tag, dtype=np.int32))
    idx = np.concatenate(indices).astype(np.int32)
    val = np.concatenate(values)
    order = np.argsort(idx, kind="stable")
    idx, val = idx[order], val[order]
    # a facet on two faces (impossible for simplices: facets lie in one face) keeps the first tag
    keep = np.concatenate([[True], idx[1:] != idx[:-1]]) if len(idx) else np.zeros(0, bool)
    ft = m.mesh.meshtags(msh, tdim - 1, idx[keep], val[keep])
    label = "box " + " x ".join(f"[{lo:g}, {hi:g}]" for lo, hi in b)
    from ..mesh import MeshSpec

    spec = MeshSpec("box", tuple((float(lo), float(hi)) for lo, hi in b), tuple(n))
    return Mesh(mesh=msh, boundaries=names, regions={}, facet_tags=ft, cell_tags=None, source=label,
                spec=spec)


def load(path: str | os.PathLike, comm: Any = None, mesh_size: float | None = None) -> Mesh:
    """Read a gmsh ``.msh`` file, or mesh a ``.geo`` file on the fly (collective).

    Physical groups of dimension tdim−1 become named boundary parts and those of dimension tdim
    named regions (an unnamed group gets ``curve<tag>``/``surface<tag>``...).

    Args:
        path: the file.
        comm: MPI communicator (default COMM_WORLD).
        mesh_size: ``.geo`` only: maximum element size passed to gmsh.

    Raises:
        MeshError: missing file, unknown suffix, no physical groups, unreadable.
    """
    path = os.fspath(path)
    if not path.endswith((".msh", ".geo")):
        raise MeshError(f"load: {path!r} is neither a gmsh .msh nor a .geo file; convert it with gmsh")
    if not os.path.exists(path):
        raise MeshError(f"load: mesh file {path!r} does not exist (cwd {os.getcwd()})")
    comm = _comm(comm)
    msh, ct, ft, names = compat.read_gmsh(path, comm, mesh_size=mesh_size)
    tdim = msh.topology.dim
    boundaries = dict(names.get(tdim - 1, {}))
    regions = dict(names.get(tdim, {}))
    from ..mesh import MeshSpec

    return Mesh(mesh=msh, boundaries=boundaries, regions=regions, facet_tags=ft, cell_tags=ct,
                source=os.path.basename(path), spec=MeshSpec("gmsh", path=os.path.abspath(path),
                                                            mesh_size=mesh_size))


def as_mesh(obj: Any) -> Mesh:
    """A :class:`Mesh` from a Mesh, a raw dolfinx mesh, or a path to a gmsh file."""
    if isinstance(obj, Mesh):
        return obj
    spec = getattr(obj, "spec", None)
    if spec is not None and hasattr(obj, "cells"):  # a symfp.fem.mesh.NeutralMesh: rebuilt natively, cached
        cache = getattr(obj, "_cache", {})
        if "dolfinx" not in cache:
            cache["dolfinx"] = (box([list(b) for b in spec.bounds], cells=list(spec.cells))
                                if spec.kind == "box" else load(spec.path, mesh_size=spec.mesh_size))
        return cache["dolfinx"]
    if isinstance(obj, (str, os.PathLike)):
        return load(obj)
    if hasattr(obj, "topology") and hasattr(obj, "geometry"):
        return Mesh(mesh=obj)
    raise MeshError(f"{type(obj).__name__} is not a mesh: use symfp.mesh.box(...), symfp.mesh.load(path) "
                    "or a dolfinx mesh")
