"""Meshes for the finite-element solvers (public entry point; imports a backend only when called).

>>> import symfp
>>> m = symfp.mesh.box([(-2, 2), (-2, 2)], cells=(64, 64))   # faces xmin, xmax, ymin, ymax
>>> d = symfp.mesh.load("meshes/disk.msh")                   # gmsh physical groups → names

``backend="auto"`` (default) gives the dolfinx mesh (:mod:`symfp.fem.dolfinx.mesh`) when dolfinx is
importable, else a backend-neutral :class:`symfp.fem.mesh.NeutralMesh` (numpy; gmsh files through
meshio); ``backend="skfem"`` always the neutral one. Both implement the mesh protocol of
:mod:`symfp.fem.mesh` (``dim``, ``bounds()``, ``boundary_names``, ``region_names``,
``locate_cells``, ``contains``, ``cell_volumes``, ``region_cells``, ``comm``) and every backend accepts
either (it rebuilds the mesh from its spec).
"""

from __future__ import annotations

from typing import Any

__all__ = ["box", "load", "as_mesh", "protocol"]  # and Mesh, NeutralMesh, resolved lazily


def _use_dolfinx(backend: str, comm: Any) -> bool:
    from .fem.registry import importable, resolve

    if backend == "auto":  # the neutral mesh needs no backend at all
        name = "dolfinx" if importable("dolfinx") else "skfem"
    elif backend == "skfem":
        name = "skfem"
    else:
        name = resolve(backend, "symfp.mesh")
    if name == "skfem" and comm is not None and getattr(comm, "size", 1) > 1:
        from .errors import InputError

        raise InputError("symfp.mesh: backend='skfem' is serial; a communicator of several ranks needs "
                         "backend='dolfinx'")
    return name == "dolfinx"


def box(bounds, cells=32, comm=None, cell_type: str = "simplex", backend: str = "auto"):
    """An interval/rectangle/box with faces named xmin, xmax, ymin, ... (see the module docstring)."""
    from .fem.checks import check_cells

    cells = check_cells(cells, "symfp.mesh.box")
    if _use_dolfinx(backend, comm):
        from .fem.dolfinx.mesh import box as _box

        return _box(bounds, cells=cells, comm=comm, cell_type=cell_type)
    if cell_type != "simplex":
        from .errors import MeshError

        raise MeshError(f"box: cell_type={cell_type!r} needs backend='dolfinx'; the neutral mesh is "
                        "simplicial")
    from .fem.mesh import box as _box

    return _box(bounds, cells=cells)


def load(path, comm=None, mesh_size: float | None = None, backend: str = "auto"):
    """A gmsh .msh/.geo mesh with named parts (see the module docstring)."""
    if _use_dolfinx(backend, comm):
        from .fem.dolfinx.mesh import load as _load

        return _load(path, comm=comm, mesh_size=mesh_size)
    from .fem.mesh import load as _load

    return _load(path, mesh_size=mesh_size)


def as_mesh(obj: Any):
    """A :class:`symfp.fem.dolfinx.mesh.Mesh` from a Mesh, a neutral mesh, a dolfinx mesh or a path."""
    from .fem.dolfinx.mesh import as_mesh as _as_mesh

    return _as_mesh(obj)


def protocol(obj: Any) -> Any:
    """An object with the mesh protocol for any symfp mesh (a raw dolfinx mesh is wrapped).

    Raises:
        MeshError: ``obj`` is not a mesh.
    """
    if hasattr(obj, "locate_cells") and hasattr(obj, "bounds"):
        return obj
    if hasattr(obj, "topology") and hasattr(obj, "geometry"):
        from .fem.dolfinx.mesh import Mesh

        return Mesh(mesh=obj)
    from .errors import MeshError

    raise MeshError(f"{type(obj).__name__} is not a mesh: use symfp.mesh.box(...) or symfp.mesh.load(path)")


def __getattr__(name: str) -> Any:
    if name == "Mesh":
        from .fem.dolfinx.mesh import Mesh

        return Mesh
    if name == "NeutralMesh":
        from .fem.mesh import NeutralMesh

        return NeutralMesh
    raise AttributeError(f"module 'symfp.mesh' has no attribute {name!r}")
