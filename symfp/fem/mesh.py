r"""A backend-neutral simplex mesh (numpy) and the small protocol every symfp mesh implements.

The **mesh protocol** (what ``compare``, the particle histograms, absorbing mesh complements and the
report use; both :class:`NeutralMesh` and the dolfinx :class:`symfp.fem.dolfinx.mesh.Mesh` have it):

- ``dim`` — the dimension d;
- ``bounds()`` — the (d, 2) bounding box (collective: the same on every rank);
- ``boundary_names`` / ``region_names`` — the named boundary parts and regions;
- ``locate_cells(points)`` — for each point of an (n, d) array, a local owned cell containing it or
  −1 (a point on a shared facet is given to one rank only; collective);
- ``contains(points)`` — whether each of this rank's points lies in the mesh (collective);
- ``cell_volumes()`` — the volumes of the owned cells;
- ``region_cells(name)`` — owned cell indices of a named region;
- ``comm`` — the MPI communicator, or None (serial).

Each backend converts a mesh to its own: :func:`symfp.fem.dolfinx.mesh.as_mesh` and
:func:`symfp.fem.skfem.mesh.as_skfem`. A :class:`NeutralMesh` remembers how it was made
(:attr:`NeutralMesh.spec`: a box or a gmsh file), so that a backend can rebuild it natively.

Cells are simplices (intervals, triangles, tetrahedra). A box of ``cells = (n1, ..., nd)`` is the
tensor grid, each square cut into 2 triangles along its diagonal, each cube into 6 tetrahedra
(Kuhn's subdivision); its faces are named ``xmin``, ``xmax``, ``ymin``, ... . A gmsh file is read
with ``meshio``: physical groups of dimension d−1 become boundary parts, of dimension d regions.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DependencyError, MeshError

FACE_NAMES = ("xmin", "xmax", "ymin", "ymax", "zmin", "zmax")


@dataclass(frozen=True)
class MeshSpec:
    """How a mesh was made: ``kind`` "box" (bounds, cells) or "gmsh" (path, mesh_size)."""

    kind: str
    bounds: tuple[tuple[float, float], ...] = ()
    cells: tuple[int, ...] = ()
    path: str = ""
    mesh_size: float | None = None


def check_box(bounds: Any, cells: Any) -> tuple[np.ndarray, list[int]]:
    """Validated (d, 2) bounds and d cell counts of a box (MeshError on bad input)."""
    try:
        b = np.asarray(bounds, dtype=float)
    except (TypeError, ValueError) as exc:
        raise MeshError(f"box: bounds {bounds!r} are not a list of (min, max) pairs") from exc
    if b.ndim != 2 or b.shape[1] != 2 or not 1 <= b.shape[0] <= 3:
        raise MeshError(f"box: bounds must be 1 to 3 pairs (min, max); got {bounds!r}")
    if not np.all(np.isfinite(b)) or np.any(b[:, 1] <= b[:, 0]):
        raise MeshError(f"box: each pair must be finite with min < max; got {bounds!r}")
    d = b.shape[0]
    try:
        n = [int(cells)] * d if np.isscalar(cells) else [int(c) for c in cells]
    except (TypeError, ValueError) as exc:
        raise MeshError(f"box: cells must be a positive int or {d} positive ints; got {cells!r}") from exc
    if len(n) != d or min(n) < 1:
        raise MeshError(f"box: cells must be a positive int or {d} positive ints; got {cells!r}")
    return b, n


def _kuhn(d: int) -> np.ndarray:
    """Kuhn's subdivision of the unit d-cube into d! simplices, as corner indices (bit k = axis k)."""
    out = []
    for perm in itertools.permutations(range(d)):
        corner, simplex = 0, [0]
        for axis in perm:
            corner |= 1 << axis
            simplex.append(corner)
        out.append(simplex)
    return np.array(out, dtype=np.int64)


@dataclass(eq=False)
class NeutralMesh:
    """A simplex mesh as numpy arrays with named boundary parts and regions (serial).

    Attributes:
        points: vertex coordinates (n, d).
        cells: vertex indices of the simplices (m, d + 1).
        facets: boundary part name → vertex indices of its facets (k, d).
        regions: region name → cell indices.
        source: where it came from (for messages).
        spec: how it was made (a backend may rebuild it natively), or None.
    """

    points: np.ndarray
    cells: np.ndarray
    facets: Mapping[str, np.ndarray] = field(default_factory=dict)
    regions: Mapping[str, np.ndarray] = field(default_factory=dict)
    source: str = "mesh"
    spec: MeshSpec | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    comm = None

    @property
    def dim(self) -> int:
        """The dimension d."""
        return int(self.points.shape[1])

    @property
    def boundary_names(self) -> tuple[str, ...]:
        """Names of the boundary parts."""
        return tuple(self.facets)

    @property
    def region_names(self) -> tuple[str, ...]:
        """Names of the regions."""
        return tuple(self.regions)

    @property
    def boundaries(self) -> dict[str, int]:
        """Boundary-part name → tag (1, 2, ... in order), like the dolfinx mesh's."""
        return {n: i + 1 for i, n in enumerate(self.facets)}

    def bounds(self) -> np.ndarray:
        """(d, 2) bounding box."""
        return np.stack([self.points.min(axis=0), self.points.max(axis=0)], axis=1)

    def boundary_facets(self, name: str) -> np.ndarray:
        """Vertex indices (k, d) of the facets of part ``name`` (MeshError listing the names)."""
        if name not in self.facets:
            have = ", ".join(self.facets) or "none (the mesh has no named boundary parts)"
            raise MeshError(f"boundary part {name!r} is not in mesh '{self.source}'; it has: {have}")
        return self.facets[name]

    def region_cells(self, name: str) -> np.ndarray:
        """Cell indices of region ``name`` (MeshError listing the names)."""
        if name not in self.regions:
            have = ", ".join(self.regions) or "none"
            raise MeshError(f"region {name!r} is not in mesh '{self.source}'; it has: {have}")
        return np.asarray(self.regions[name], dtype=np.int64)

    def boundary_vertices(self, names: Sequence[str] | None = None) -> np.ndarray:
        """Vertex indices on the named parts (None: on the whole boundary), sorted, unique."""
        if names is None:
            return np.unique(self.exterior_facets())
        if not names:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate([self.boundary_facets(n).ravel() for n in names]))

    def exterior_facets(self) -> np.ndarray:
        """Vertex indices (k, d) of every facet that belongs to one cell only."""
        if "exterior" not in self._cache:
            d = self.dim
            faces = np.concatenate([np.delete(self.cells, i, axis=1) for i in range(d + 1)])
            faces = np.sort(faces, axis=1)
            uniq, counts = np.unique(faces, axis=0, return_counts=True)
            self._cache["exterior"] = uniq[counts == 1]
        return self._cache["exterior"]

    def cell_volumes(self) -> np.ndarray:
        """Volumes (lengths, areas) of the cells."""
        if "volumes" not in self._cache:
            v = self.points[self.cells]
            e = v[:, 1:, :] - v[:, :1, :]
            d = self.dim
            self._cache["volumes"] = np.abs(np.linalg.det(e)) / float(np.prod(np.arange(1, d + 1)))
        return self._cache["volumes"]

    def cell_diameters(self) -> np.ndarray:
        """Longest edge of every cell."""
        v = self.points[self.cells]
        diffs = v[:, :, None, :] - v[:, None, :, :]
        return np.sqrt((diffs**2).sum(-1)).max(axis=(1, 2))

    def _inverse_maps(self) -> np.ndarray:
        if "inverse" not in self._cache:
            v = self.points[self.cells]
            e = np.transpose(v[:, 1:, :] - v[:, :1, :], (0, 2, 1))  # (m, d, d): columns v_k - v_0
            self._cache["inverse"] = np.linalg.inv(e)
        return self._cache["inverse"]

    def barycentric(self, points: Any, tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
        """For each point a cell containing it (−1 outside) and its barycentric coordinates (n, d + 1)."""
        pts = np.asarray(points, dtype=float)
        d = self.dim
        pts = pts.reshape(-1, d) if pts.size else np.zeros((0, d))
        n = len(pts)
        cells = np.full(n, -1, dtype=np.int64)
        lam = np.zeros((n, d + 1))
        if not n:
            return cells, lam
        inv = self._inverse_maps()
        v0 = self.points[self.cells[:, 0]]

        def try_cells(idx: np.ndarray, cand: np.ndarray) -> None:
            """Test candidate cells ``cand`` (len(idx), k) for the points ``idx``; keep the first hit."""
            for k in range(cand.shape[1]):
                todo = idx[cells[idx] < 0]
                if not len(todo):
                    return
                c = cand[np.searchsorted(idx, todo), k]
                mu = np.einsum("nij,nj->ni", inv[c], pts[todo] - v0[c])
                full = np.concatenate([1.0 - mu.sum(axis=1, keepdims=True), mu], axis=1)
                hit = np.all(full >= -tol, axis=1)
                cells[todo[hit]] = c[hit]
                lam[todo[hit]] = np.clip(full[hit], 0.0, 1.0)

        if d == 1:
            x = self.points[:, 0]
            lo = np.minimum(x[self.cells[:, 0]], x[self.cells[:, 1]])
            order = np.argsort(lo)
            pos = np.clip(np.searchsorted(lo[order], pts[:, 0], side="right") - 1, 0, len(order) - 1)
            cand = np.stack([order[pos], order[np.maximum(pos - 1, 0)]], axis=1)
            try_cells(np.arange(n), cand)
            return cells, lam
        if d == 2:
            import matplotlib.tri as mtri

            if "finder" not in self._cache:
                tri = mtri.Triangulation(self.points[:, 0], self.points[:, 1], self.cells)
                self._cache["finder"] = tri.get_trifinder()
            found = np.asarray(self._cache["finder"](pts[:, 0], pts[:, 1]), dtype=np.int64)
            inside = np.flatnonzero(found >= 0)
            try_cells(inside, found[inside].reshape(-1, 1))
        from scipy.spatial import cKDTree

        if "tree" not in self._cache:
            self._cache["tree"] = cKDTree(self.points[self.cells].mean(axis=1))
        todo = np.flatnonzero(cells < 0)
        if len(todo):
            k = min(32, len(self.cells))
            _, cand = self._cache["tree"].query(pts[todo], k=k)
            try_cells(todo, np.asarray(cand).reshape(len(todo), k))
        return cells, lam

    def locate_cells(self, points: Any) -> np.ndarray:
        """A cell containing each point, or −1 outside (the protocol's point location)."""
        return self.barycentric(points)[0]

    def contains(self, points: Any) -> np.ndarray:
        """Whether each point lies in the mesh."""
        return self.barycentric(points)[0] >= 0

    def interpolate_p1(self, nodal: np.ndarray, points: Any) -> np.ndarray:
        """The P1 interpolant of vertex values ``nodal`` at ``points`` (NaN outside the mesh)."""
        cells, lam = self.barycentric(points)
        out = np.full(len(cells), np.nan)
        ok = cells >= 0
        out[ok] = np.einsum("nk,nk->n", lam[ok], np.asarray(nodal)[self.cells[cells[ok]]])
        return out

    def __repr__(self) -> str:
        return (f"NeutralMesh(dim={self.dim}, source={self.source!r}, vertices={len(self.points)}, "
                f"cells={len(self.cells)}, boundaries={list(self.facets)}, regions={list(self.regions)})")


def box(bounds: Sequence[Sequence[float]], cells: int | Sequence[int] = 32) -> NeutralMesh:
    """A simplex box mesh with faces named ``xmin``, ``xmax``, ... (see the module docstring)."""
    b, n = check_box(bounds, cells)
    d = len(n)
    axes = [np.linspace(b[k, 0], b[k, 1], n[k] + 1) for k in range(d)]
    grids = np.meshgrid(*axes, indexing="ij")
    points = np.stack([g.ravel() for g in grids], axis=1)
    shape = [m + 1 for m in n]
    strides = np.array([int(np.prod(shape[k + 1:])) for k in range(d)], dtype=np.int64)
    origins = np.stack(np.meshgrid(*[np.arange(m) for m in n], indexing="ij"), axis=-1).reshape(-1, d)
    base = origins @ strides
    corners = np.array([[(c >> k) & 1 for k in range(d)] for c in range(2**d)], dtype=np.int64) @ strides
    simplices = _kuhn(d)
    cells = (base[:, None, None] + corners[simplices][None, :, :]).reshape(-1, d + 1)
    tol = 1e-10 * float(np.max(b[:, 1] - b[:, 0]))
    label = "box " + " x ".join(f"[{lo:g}, {hi:g}]" for lo, hi in b)
    mesh = NeutralMesh(points=points, cells=cells, source=label,
                       spec=MeshSpec("box", tuple((float(lo), float(hi)) for lo, hi in b), tuple(n)))
    ext = mesh.exterior_facets()
    facets: dict[str, np.ndarray] = {}
    for axis in range(d):
        for side in range(2):
            on = np.all(np.abs(points[ext][:, :, axis] - b[axis, side]) < tol, axis=1)
            facets[FACE_NAMES[2 * axis + side]] = ext[on]
    mesh.facets = facets
    return mesh


_GMSH_CELLS = {1: ("line",), 2: ("triangle",), 3: ("tetra",)}
_GMSH_FACETS = {1: ("vertex",), 2: ("line",), 3: ("triangle",)}


def load(path: str | os.PathLike, mesh_size: float | None = None) -> NeutralMesh:
    """Read a gmsh ``.msh`` file with meshio (physical groups → named parts and regions).

    Raises:
        MeshError: missing file, unknown suffix, no simplex cells. DependencyError: meshio missing, or a
        ``.geo`` file without the ``gmsh`` module.
    """
    path = os.fspath(path)
    if not path.endswith((".msh", ".geo")):
        raise MeshError(f"load: {path!r} is neither a gmsh .msh nor a .geo file; convert it with gmsh")
    if not os.path.exists(path):
        raise MeshError(f"load: mesh file {path!r} does not exist (cwd {os.getcwd()})")
    try:
        import meshio
    except ImportError as exc:
        raise DependencyError(f"load: reading {path!r} needs meshio ({exc}); pip install meshio") from exc
    if path.endswith(".geo"):
        path = _mesh_geo(path, mesh_size)
    try:
        m = meshio.read(path)
    except Exception as exc:  # noqa: BLE001 - meshio raises many types
        raise MeshError(f"load: meshio cannot read {path!r}: {exc}") from exc
    dim = max((k for k, types in _GMSH_CELLS.items() if any(c.type in types for c in m.cells)), default=0)
    if not dim:
        raise MeshError(f"load: {path!r} holds no line/triangle/tetrahedron cells")
    points = np.asarray(m.points[:, :dim], dtype=float)
    phys = m.cell_data.get("gmsh:physical")
    # physical tags are numbered per dimension: (tag, dim) → name
    names = {(int(v[0]), int(v[1])): k for k, v in (m.field_data or {}).items()}
    cells_list, cell_tags, facet_blocks = [], [], []
    for i, block in enumerate(m.cells):
        tags = np.asarray(phys[i] if phys is not None else np.zeros(len(block.data)), dtype=np.int64)
        if block.type in _GMSH_CELLS[dim]:
            cells_list.append(np.asarray(block.data, dtype=np.int64))
            cell_tags.append(tags)
        elif block.type in _GMSH_FACETS[dim]:
            facet_blocks.append((np.asarray(block.data, dtype=np.int64).reshape(len(block.data), -1), tags))
    cells = np.concatenate(cells_list)
    ctags = np.concatenate(cell_tags)
    # drop vertices used by no cell (gmsh keeps geometry points)
    used = np.unique(cells)
    remap = -np.ones(len(points), dtype=np.int64)
    remap[used] = np.arange(len(used))
    points, cells = points[used], remap[cells]
    # right-handed simplices (positive determinant) for every backend
    v = points[cells]
    neg = np.linalg.det(v[:, 1:, :] - v[:, :1, :]) < 0
    if dim > 1:
        cells[neg, 0], cells[neg, 1] = cells[neg, 1].copy(), cells[neg, 0].copy()
    facets: dict[str, list[np.ndarray]] = {}
    regions: dict[str, list[np.ndarray]] = {}
    for tag in np.unique(ctags):
        name = names.get((int(tag), dim), f"{('curve', 'surface', 'volume')[dim - 1]}{tag}")
        if tag:
            regions.setdefault(name, []).append(np.flatnonzero(ctags == tag))
    for data, tags in facet_blocks:
        for tag in np.unique(tags):
            if not tag:
                continue
            name = names.get((int(tag), dim - 1), f"{('point', 'curve', 'surface')[dim - 1]}{tag}")
            facets.setdefault(name, []).append(np.sort(remap[data[tags == tag]], axis=1))
    return NeutralMesh(points=points, cells=cells,
                       facets={k: np.concatenate(v) for k, v in facets.items()},
                       regions={k: np.concatenate(v) for k, v in regions.items()},
                       source=os.path.basename(path), spec=MeshSpec("gmsh", path=os.path.abspath(path),
                                                                    mesh_size=mesh_size))


def _mesh_geo(path: str, mesh_size: float | None) -> str:
    """Mesh a ``.geo`` file with the gmsh module into a temporary ``.msh``; returns its path."""
    import tempfile

    try:
        import gmsh
    except ImportError as exc:
        raise DependencyError(f"load: meshing {path!r} needs the gmsh module ({exc}); pip install gmsh, "
                              "or give the .msh file") from exc
    out = os.path.join(tempfile.mkdtemp(prefix="symfp-geo-"), os.path.basename(path)[:-4] + ".msh")
    gmsh.initialize(["-v", "0"])
    try:
        gmsh.open(path)
        if mesh_size is not None:
            gmsh.option.setNumber("Mesh.MeshSizeMax", float(mesh_size))
        gmsh.model.mesh.generate(gmsh.model.getDimension())
        gmsh.option.setNumber("Mesh.MshFileVersion", 4.1)
        gmsh.write(out)
    finally:
        gmsh.finalize()
    return out


def to_neutral(mesh: Any) -> NeutralMesh:
    """A :class:`NeutralMesh` from any symfp mesh: itself, or rebuilt from a dolfinx mesh's spec.

    A dolfinx mesh without a spec (a raw mesh, serial only) is converted from its geometry (no names).
    """
    if isinstance(mesh, NeutralMesh):
        return mesh
    if isinstance(mesh, (str, os.PathLike)):
        return load(mesh)
    spec = getattr(mesh, "spec", None)
    if spec is not None:
        if spec.kind == "box":
            return box([list(b) for b in spec.bounds], cells=list(spec.cells))
        return load(spec.path, mesh_size=spec.mesh_size)
    raw = getattr(mesh, "mesh", mesh)
    if hasattr(raw, "geometry") and hasattr(raw, "topology"):
        comm = getattr(raw, "comm", None)
        if comm is not None and comm.size > 1:
            raise MeshError("to_neutral: a distributed dolfinx mesh cannot be converted to a serial mesh")
        d = raw.topology.dim
        points = np.asarray(raw.geometry.x[:, :d], dtype=float)
        dm = raw.geometry.dofmap
        cells = np.asarray(dm.array if hasattr(dm, "array") else dm, dtype=np.int64).reshape(-1, d + 1)
        return NeutralMesh(points=points, cells=cells, source="dolfinx mesh")
    raise MeshError(f"{type(mesh).__name__} is not a mesh: use symfp.mesh.box(...), symfp.mesh.load(path)")
