"""Meshes for the finite-element solver (public entry point; imports dolfinx only when called).

>>> import symfp
>>> m = symfp.mesh.box([(-2, 2), (-2, 2)], cells=(64, 64))   # faces xmin, xmax, ymin, ymax
>>> d = symfp.mesh.load("meshes/disk.msh")                   # gmsh physical groups → names

See :mod:`symfp.fem.dolfinx.mesh` for the details.
"""

from __future__ import annotations

from typing import Any

__all__ = ["box", "load", "as_mesh"]  # and Mesh, resolved lazily


def box(bounds, cells=32, comm=None, cell_type: str = "simplex"):
    """An interval/rectangle/box with faces named xmin, xmax, ymin, ...; :func:`.fem.dolfinx.mesh.box`."""
    from .fem.checks import check_cells
    from .fem.dolfinx.mesh import box as _box

    cells = check_cells(cells, "symfp.mesh.box")
    return _box(bounds, cells=cells, comm=comm, cell_type=cell_type)


def load(path, comm=None, mesh_size: float | None = None):
    """A gmsh .msh/.geo mesh with named parts; see :func:`symfp.fem.dolfinx.mesh.load`."""
    from .fem.dolfinx.mesh import load as _load

    return _load(path, comm=comm, mesh_size=mesh_size)


def as_mesh(obj: Any):
    """A :class:`symfp.fem.dolfinx.mesh.Mesh` from a Mesh, a dolfinx mesh or a path."""
    from .fem.dolfinx.mesh import as_mesh as _as_mesh

    return _as_mesh(obj)


def __getattr__(name: str) -> Any:
    if name == "Mesh":
        from .fem.dolfinx.mesh import Mesh

        return Mesh
    raise AttributeError(f"module 'symfp.mesh' has no attribute {name!r}")
