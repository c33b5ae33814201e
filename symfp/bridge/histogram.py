r"""Particle histograms on an FE mesh: a cell-wise (DG0) density comparable with the FE solution.

For each cell K the density is :math:`h_K = n_K / (N |K|)` with :math:`n_K` the particles in K
(all ranks), so :math:`\int h = 1 - \text{escaped mass}`; particles outside the mesh are the escaped
mass, reported (and an error when it exceeds ``max_escaped``). Mass per named region is
:math:`\sum_{K \in R} n_K / N`. Only the mesh protocol of :mod:`symfp.fem.mesh` is used, so the
meshes of every backend work. Collective: the particles of all ranks are gathered, and each rank
counts the ones in the cells it owns.
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
    """Histogram of ``cloud.theta`` on the cells of ``mesh`` (collective; see the module docstring).

    ``mesh`` is any symfp mesh (dolfinx-backed or neutral, :mod:`symfp.fem.mesh`'s protocol) or a raw
    dolfinx mesh.
    """
    from ..mesh import protocol

    m = protocol(mesh)
    if m.dim != cloud.dim:
        raise MeshError(f"histogram_on_mesh: mesh of dimension {m.dim} for particles of dimension "
                        f"{cloud.dim}")
    comm = m.comm
    pts = allgather_rows(np.asarray(cloud.theta, dtype=float), cloud.comm)
    # each point is counted by one rank only (the lowest owning a cell containing it)
    cells = np.asarray(m.locate_cells(pts))
    vol = np.asarray(m.cell_volumes())
    n_owned = len(vol)
    counts = np.bincount(cells[cells >= 0], minlength=n_owned).astype(float)
    n = len(pts)
    found = allsum(float(counts.sum()), comm)
    escaped = 1.0 - found / n
    if escaped > max_escaped:
        raise MeshError(
            f"histogram_on_mesh: {100 * escaped:.3g}% of the particle mass lies outside the mesh "
            f"(allowed {100 * max_escaped:.3g}%); enlarge the mesh or pass max_escaped="
        )
    regions = {}
    for name in m.region_names:
        sel = np.asarray(m.region_cells(name))
        sel = sel[sel < n_owned]
        regions[name] = float(allsum(float(counts[sel].sum()), comm)) / n
    return MeshHistogram(counts / (n * vol), counts, vol, float(escaped), regions, n)
