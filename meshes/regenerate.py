"""Regenerate every meshes/*.msh from its .geo source (deterministic: one thread, fixed options).

Run from anywhere: ``python meshes/regenerate.py``. The .msh files are committed so that users and
tests do not need the gmsh mesher, only its reader.
"""

from __future__ import annotations

import pathlib

import gmsh

HERE = pathlib.Path(__file__).resolve().parent


def regenerate(geo: pathlib.Path) -> pathlib.Path:
    """Mesh ``geo`` in 2-D and write the .msh (format 4.1) beside it."""
    out = geo.with_suffix(".msh")
    gmsh.model.add(geo.stem)
    gmsh.merge(str(geo))
    gmsh.model.mesh.generate(2)
    gmsh.write(str(out))
    print(f"{out.name}: {len(gmsh.model.mesh.getElementsByType(2)[0])} triangles")
    gmsh.model.remove()
    return out


def main() -> None:
    gmsh.initialize()
    gmsh.option.setNumber("General.Terminal", 0)
    gmsh.option.setNumber("General.NumThreads", 1)
    gmsh.option.setNumber("Mesh.MshFileVersion", 4.1)
    gmsh.option.setNumber("Mesh.Algorithm", 6)
    try:
        for geo in sorted(HERE.glob("*.geo")):
            regenerate(geo)
    finally:
        gmsh.finalize()


if __name__ == "__main__":
    main()
