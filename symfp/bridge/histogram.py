r"""Particle histograms on an FE mesh: a cell-wise (DG0) density comparable with the FE solution.

For each cell K the density is :math:`h_K = n_K / (N |K|)` with :math:`n_K` the particles in K
(all ranks), so :math:`\int h = 1 - \text{escaped mass}`; particles outside the mesh are the escaped
mass, reported (and an error when it exceeds ``max_escaped``). Mass per named region is
:math:`\sum_{K \in R} n_K / N`. dolfinx is imported here only. Collective: the particles of all ranks
are gathered, and each rank counts the ones in the cells it owns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import MeshError
from ..particles.mpi import allgather_rows, allsum


@dataclass
class MeshHistogram:
    """Cell densities on this rank's owned cells, escaped mass and mass per region."""

    density: np.ndarray
    counts: np.ndarray
    volumes: np.ndarray
    escaped_mass: float
    region_mass: dict[str, float]
    n: int


def histogram_on_mesh(cloud: Any, mesh: Any, max_escaped: float = 1.0) -> MeshHistogram:
    """Histogram of ``cloud.theta`` on the cells of ``mesh`` (collective; see the module docstring)."""
    from ..fem.dolfinx import compat

    msh = getattr(mesh, "mesh", mesh)
    if msh.topology.dim != cloud.dim:
        raise MeshError(
            f"histogram_on_mesh: mesh of dimension {msh.topology.dim} for particles of dimension {cloud.dim}"
        )
    pts = allgather_rows(np.asarray(cloud.theta, dtype=float), cloud.comm)
    # a point on a shared facet may be found by two ranks: the lowest rank keeps it
    _, cells = compat.locate_points(msh, pts)
    comm = msh.comm
    n_owned = compat.owned_cells(msh)
    counts = np.bincount(cells[cells >= 0], minlength=n_owned).astype(float)
    xs = compat.cell_vertex_coordinates(msh)
    d = cloud.dim
    if d == 1:
        vol = np.abs(xs[:, 1, 0] - xs[:, 0, 0])
    else:
        e = xs[:, 1 : d + 1, :d] - xs[:, :1, :d]
        vol = np.abs(np.linalg.det(e))
        if xs.shape[1] > d + 1:  # quadrilateral/hexahedral cells: use the bounding box volume
            vol = np.prod(xs[..., :d].max(axis=1) - xs[..., :d].min(axis=1), axis=1)
        else:
            vol = vol / float(np.prod(np.arange(1, d + 1)))
    n = len(pts)
    found = allsum(float(counts.sum()), comm)
    escaped = 1.0 - found / n
    if escaped > max_escaped:
        raise MeshError(
            f"histogram_on_mesh: {100 * escaped:.3g}% of the particle mass lies outside the mesh "
            f"(allowed {100 * max_escaped:.3g}%); enlarge the mesh or pass max_escaped="
        )
    regions = {}
    tags = getattr(mesh, "cell_tags", None)
    for name, tag in (getattr(mesh, "regions", None) or {}).items():
        sel = tags.indices[tags.values == tag]
        sel = sel[sel < n_owned]
        regions[name] = float(allsum(float(counts[sel].sum()), comm)) / n
    return MeshHistogram(counts / (n * vol), counts, vol, float(escaped), regions, n)
