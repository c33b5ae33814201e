"""Meshes: named box faces in 1-D/2-D/3-D, gmsh files from meshes/ with named parts, bad input."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

import symfp
from symfp.errors import MeshError

pytestmark = pytest.mark.fem
MESHES = pathlib.Path(__file__).resolve().parents[2] / "meshes"


@pytest.mark.mpi
@pytest.mark.parametrize("bounds,cells", [([(0, 2)], 8), ([(-1, 1), (0, 3)], (4, 6)),
                                          ([(0, 1), (0, 2), (0, 3)], 2)])
def test_box_faces_are_named_and_measured(bounds, cells):
    m = symfp.mesh.box(bounds, cells=cells)
    d = len(bounds)
    lengths = np.array([b - a for a, b in bounds])
    assert m.dim == d
    assert sorted(m.boundaries) == sorted(["xmin", "xmax", "ymin", "ymax", "zmin", "zmax"][: 2 * d])
    assert abs(m.volume() - np.prod(lengths)) < 1e-12
    for axis, name in enumerate(["x", "y", "z"][:d]):
        # a face normal to axis i has measure prod_{j != i} L_j (a point counts 1 in 1-D)
        face = np.prod(np.delete(lengths, axis))
        for side in ("min", "max"):
            assert abs(m.boundary_measure(name + side) - face) < 1e-12


@pytest.mark.mpi
def test_gmsh_disk_area_perimeter_and_names():
    m = symfp.mesh.load(MESHES / "disk.msh")
    assert m.dim == 2 and "boundary" in m.boundaries and "disk" in m.regions
    # inscribed polygon with edges h ≤ lc = 0.06: π − area ≈ π h²/6 ≤ 1.9e-3 and
    # 2π − perimeter ≈ 2π h²/24 ≤ 9.5e-4; both from below.
    area, length = m.volume(), m.boundary_measure("boundary")
    assert 0 < np.pi - area < np.pi * 0.06**2 / 6 * 1.2
    assert 0 < 2 * np.pi - length < 2 * np.pi * 0.06**2 / 24 * 1.2
    assert abs(m.volume("disk") - area) < 1e-12


@pytest.mark.mpi
def test_gmsh_meshes_in_repository_have_their_parts():
    ann = symfp.mesh.load(MESHES / "annulus.msh")
    assert set(ann.boundaries) == {"inner", "outer"}
    assert abs(ann.volume() - 0.75 * np.pi) < 0.75 * np.pi * 0.05**2 / 6 * 1.2 * 2
    lsh = symfp.mesh.load(MESHES / "lshape.msh")
    # straight edges: exact area 3, outer sides 6, notch 2 (to round-off)
    assert abs(lsh.volume() - 3) < 1e-12 and abs(lsh.boundary_measure("notch") - 2) < 1e-12
    assert abs(lsh.boundary_measure("outer") - 6) < 1e-12
    dw = symfp.mesh.load(MESHES / "double_well.msh")
    assert set(dw.regions) == {"left", "right"} and set(dw.boundaries) == {"wall"}
    # ellipse area π a b with a = 2.2, b = 1.6, split in two mirror-image basins (mesh not symmetric)
    assert abs(dw.volume() - np.pi * 2.2 * 1.6) < 0.01
    assert abs(dw.volume("left") - dw.volume("right")) < 0.01


def test_geo_is_meshed_on_the_fly(tmp_path):
    geo = tmp_path / "sq.geo"
    geo.write_text("Point(1)={0,0,0,0.25};Point(2)={2,0,0,0.25};Point(3)={2,1,0,0.25};Point(4)={0,1,0,0.25};"
                   "Line(1)={1,2};Line(2)={2,3};Line(3)={3,4};Line(4)={4,1};"
                   "Curve Loop(1)={1,2,3,4};Plane Surface(1)={1};"
                   'Physical Curve("bottom")={1};Physical Curve("rest")={2,3,4};Physical Surface(7)={1};\n')
    m = symfp.mesh.load(geo)
    assert abs(m.volume() - 2) < 1e-12 and abs(m.boundary_measure("bottom") - 2) < 1e-12
    assert "surface7" in m.regions  # an unnamed group gets a generated name


def test_bad_mesh_input_messages(tmp_path):
    with pytest.raises(MeshError, match="min < max"):
        symfp.mesh.box([(1, 0)], cells=4)
    with pytest.raises(MeshError, match="1 to 3 pairs"):
        symfp.mesh.box([(0, 1)] * 4, cells=2)
    with pytest.raises(MeshError, match="positive int"):
        symfp.mesh.box([(0, 1), (0, 1)], cells=(3,))
    with pytest.raises(MeshError, match="does not exist"):
        symfp.mesh.load(tmp_path / "none.msh")
    with pytest.raises(MeshError, match="neither a gmsh"):
        symfp.mesh.load(tmp_path / "x.stl")
    m = symfp.mesh.box([(0, 1)], cells=2)
    with pytest.raises(MeshError, match="it has: xmax, xmin"):
        m.boundary_facets("left")
    with pytest.raises(MeshError, match="is not a mesh"):
        symfp.mesh.as_mesh(3.0)


def test_raw_dolfinx_mesh_is_accepted():
    raw = symfp.mesh.box([(0, 1), (0, 1)], cells=2).mesh
    m = symfp.mesh.as_mesh(raw)
    assert m.dim == 2 and m.boundaries == {} and abs(m.volume() - 1) < 1e-14
