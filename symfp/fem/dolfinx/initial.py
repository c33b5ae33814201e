r"""Initial densities :math:`p_0` for the forward solver: expressions, callables and points.

``p0`` may be

- a SymPy expression in the state symbols (e.g. ``exp(-(x-1)**2)``; a number means uniform);
- a callable ``p0(X)`` taking the coordinates as an array of shape (d, n) and returning n values;
- a point (a list/tuple/array of d numbers): a delta smoothed on the mesh, the Gaussian
  :math:`\exp(-|x - x_0|^2 / (2 s^2))` with :math:`s = 2h` (h the largest cell diameter), the
  narrowest bump the mesh resolves with a few nodes per standard deviation.

The nodal interpolant is checked (finite, not negative beyond round-off, positive mass) and scaled to
unit mass :math:`\int_\Omega p_0 = 1`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy as sp

from ...errors import InputError
from ..initial import density_callable, is_point
from . import compat

__all__ = ["density_callable", "interpolate_density", "is_point"]


def interpolate_density(p0: Any, V: Any, state: Sequence[sp.Symbol], where: str = "solve",
                        negative_tol: float = 1e-12) -> Any:
    """Interpolate ``p0`` into the P1 space ``V``, check it and scale it to unit mass.

    Raises:
        InputError: not finite, negative beyond ``negative_tol`` × max, zero mass, or a point outside
            the mesh.
    """
    m = compat.dolfinx_modules()
    msh = V.mesh
    comm = msh.comm
    d = len(state)
    verts = compat.cell_vertex_coordinates(msh)
    h_loc = 0.0
    if len(verts):
        diffs = verts[:, :, None, :] - verts[:, None, :, :]
        h_loc = float(np.sqrt((diffs**2).sum(-1)).max())
    h = comm.allreduce(h_loc, op=m.MPI.MAX)
    if is_point(p0, d):
        inside, _ = compat.locate_points(msh, np.asarray(p0, dtype=float).reshape(1, d))
        if comm.allreduce(int(inside.sum()), op=m.MPI.SUM) == 0:
            raise InputError(f"{where}: the initial point {list(np.asarray(p0, float))} is outside the mesh")
    f = density_callable(p0, state, h, where)
    p = m.fem.Function(V)
    try:
        p.interpolate(f)
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise InputError(f"{where}: p0 could not be evaluated on the mesh ({exc})") from exc
    p.x.scatter_forward()
    vals = p.x.array[: V.dofmap.index_map.size_local]
    # dolfinx 0.10+ interpolates at pushed-forward reference points (x = 1e-16 where the node is at 0):
    # a pole on a node is then finite but huge, so check p0 at the exact node coordinates as well
    with np.errstate(all="ignore"):
        at_nodes = np.asarray(f(np.ascontiguousarray(msh.geometry.x.T)), dtype=float)
    bad = comm.allreduce(max(int((~np.isfinite(vals)).sum()), int((~np.isfinite(at_nodes)).sum())),
                         op=m.MPI.SUM)
    if bad:
        raise InputError(f"{where}: p0 is not finite at {bad} mesh nodes (NaN or inf); check its formula "
                         "and the domain")
    vmax = comm.allreduce(float(vals.max()) if len(vals) else -np.inf, op=m.MPI.MAX)
    vmin = comm.allreduce(float(vals.min()) if len(vals) else np.inf, op=m.MPI.MIN)
    if vmin < -negative_tol * max(vmax, 0.0) or vmax <= 0:
        if vmax <= 0:
            what = ("is negative everywhere on the mesh" if vmax < 0
                    else "has zero mass: it is 0 everywhere on the mesh")
            raise InputError(f"{where}: p0 {what} (max {vmax:g}, min {vmin:g}); give a non-negative "
                             "density that is positive somewhere in the domain (check its sign)")
        raise InputError(f"{where}: p0 is negative (min {vmin:g}, max {vmax:g}); a density must be ≥ 0")
    mass = compat.scalar_integral(p, msh)
    if not mass > 0:
        raise InputError(f"{where}: p0 has zero mass on the mesh (∫ p0 = {mass:g}); is the density "
                         "concentrated outside the domain?")
    p.x.array[:] /= mass
    return p
