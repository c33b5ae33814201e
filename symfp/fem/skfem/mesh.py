"""symfp meshes as scikit-fem meshes with named boundary facets and regions (serial)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import MeshError
from ..mesh import NeutralMesh, to_neutral
from . import require_skfem


@dataclass(eq=False)
class SkMesh:
    """A :class:`symfp.fem.mesh.NeutralMesh` with its scikit-fem mesh and facet numbering.

    Attributes:
        neutral: the neutral mesh (vertex numbering shared: P1 dof i is vertex i).
        mesh: the scikit-fem mesh (MeshLine1/MeshTri1/MeshTet1).
        facet_ids: boundary part name → scikit-fem facet indices.
    """

    neutral: NeutralMesh
    mesh: Any
    facet_ids: dict[str, np.ndarray] = field(default_factory=dict)
    _bases: dict[int, Any] = field(default_factory=dict, repr=False)

    @property
    def dim(self) -> int:
        return self.neutral.dim

    def element(self, degree: int) -> Any:
        """The Lagrange element of ``degree`` (1 or 2) on this cell type."""
        skfem = require_skfem("the finite-element solve")
        table = {1: (skfem.ElementLineP1, skfem.ElementTriP1, skfem.ElementTetP1),
                 2: (skfem.ElementLineP2, skfem.ElementTriP2, skfem.ElementTetP2)}
        if degree not in table:
            raise MeshError(f"degree={degree!r}: the scikit-fem backend has Lagrange degrees 1 and 2")
        return table[degree][self.dim - 1]()

    def basis(self, degree: int = 1) -> Any:
        """The (cached) cell basis of Lagrange ``degree`` (quadrature exact for degree 2·degree)."""
        if degree not in self._bases:
            skfem = require_skfem("the finite-element solve")
            self._bases[degree] = skfem.Basis(self.mesh, self.element(degree), intorder=2 * degree + 1)
        return self._bases[degree]

    def facets_of(self, parts: Sequence[str] | None, where: str) -> np.ndarray:
        """scikit-fem facet indices of the named parts (None: the whole boundary)."""
        if parts is None:
            return np.asarray(self.mesh.boundary_facets())
        out = []
        for name in parts:
            if name not in self.facet_ids:
                have = ", ".join(self.facet_ids) or "none (the mesh has no named boundary parts)"
                raise MeshError(f"{where}: boundary part {name!r} is not in mesh '{self.neutral.source}'; "
                                f"it has: {have}. Pass absorbing=None for the whole boundary.")
            out.append(self.facet_ids[name])
        return np.unique(np.concatenate(out)) if out else np.zeros(0, dtype=np.int64)

    def dirichlet_dofs(self, basis: Any, parts: Sequence[str] | None, where: str) -> np.ndarray:
        """Global dofs of ``basis`` on the named parts (None: the whole boundary)."""
        facets = self.facets_of(parts, where)
        if not len(facets):
            return np.zeros(0, dtype=np.int64)
        return np.asarray(basis.get_dofs(facets).flatten(), dtype=np.int64)


def as_skfem(mesh: Any) -> SkMesh:
    """A :class:`SkMesh` from a neutral mesh, a dolfinx-backed symfp mesh (by its spec) or a path."""
    skfem = require_skfem("the finite-element solve")
    if isinstance(mesh, SkMesh):
        return mesh
    neutral = to_neutral(mesh)
    cached = neutral._cache.get("skfem")
    if cached is not None:
        return cached
    cls = {1: skfem.MeshLine1, 2: skfem.MeshTri1, 3: skfem.MeshTet1}[neutral.dim]
    sk = cls(np.ascontiguousarray(neutral.points.T), np.ascontiguousarray(neutral.cells.T))
    # facet numbering: match each named facet's sorted vertices against scikit-fem's facets
    fac = np.sort(np.asarray(sk.facets).T, axis=1).astype(np.int64)
    n = len(neutral.points)
    base = n ** np.arange(fac.shape[1] - 1, -1, -1, dtype=np.int64) if fac.shape[1] > 1 else np.array([1])
    keys = fac @ base
    order = np.argsort(keys)
    ids: dict[str, np.ndarray] = {}
    for name, verts in neutral.facets.items():
        k = np.sort(np.asarray(verts, dtype=np.int64).reshape(len(verts), -1), axis=1) @ base
        pos = np.clip(np.searchsorted(keys[order], k), 0, len(order) - 1)
        hit = keys[order][pos] == k
        if not np.all(hit):
            raise MeshError(f"mesh '{neutral.source}': {int((~hit).sum())} facets of part {name!r} are not "
                            "facets of its cells")
        ids[name] = order[pos]
    out = SkMesh(neutral=neutral, mesh=sk, facet_ids=ids)
    neutral._cache["skfem"] = out
    return out
