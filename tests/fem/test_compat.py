"""The dolfinx compatibility layer: a Poisson convergence rate, point evaluation, gathering, gmsh."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.fem


def _poisson_l2_error(n: int) -> float:
    """P1 solve of −Δu = 2π² sin(πx) sin(πy), u = 0 on ∂[0,1]²; L² error against the exact u."""
    from symfp.fem.dolfinx import compat
    from symfp.fem.dolfinx.mesh import box

    m = compat.dolfinx_modules()
    ufl, fem = m.ufl, m.fem
    msh = box([(0, 1), (0, 1)], cells=n).mesh
    V = compat.function_space(msh)
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    x = ufl.SpatialCoordinate(msh)
    exact = ufl.sin(ufl.pi * x[0]) * ufl.sin(ufl.pi * x[1])
    a = compat.form(ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx)
    L = compat.form(2 * ufl.pi**2 * exact * v * ufl.dx)
    facets = m.mesh.locate_entities_boundary(msh, 1, lambda X: np.full(X.shape[1], True))
    dofs = fem.locate_dofs_topological(V, 1, facets)
    bc = fem.dirichletbc(m.PETSc.ScalarType(0.0), dofs, V)
    A = compat.assemble_matrix(a, [bc])
    b = compat.assemble_vector(L)
    compat.apply_dirichlet(b, a, [bc])
    uh = fem.Function(V)
    ksp = compat.make_ksp(A, msh.comm, {"ksp_type": "cg", "pc_type": "gamg", "ksp_rtol": 1e-12},
                          prefix="test_poisson_")
    compat.solve_checked(ksp, b, compat.petsc_vec(uh), "test")
    uh.x.scatter_forward()
    err2 = compat.scalar_integral((uh - exact) ** 2, msh)
    return float(np.sqrt(err2))


@pytest.mark.mpi
def test_poisson_p1_l2_rate_is_two():
    # P1 L² error is C h² + O(h³); between n = 16 and 32 the observed rate is within 0.05 of 2
    # (the h³ term shifts it by ~h ≈ 0.03 at most on this smooth solution).
    e16, e32 = _poisson_l2_error(16), _poisson_l2_error(32)
    rate = np.log2(e16 / e32)
    assert abs(rate - 2.0) < 0.05, (e16, e32, rate)
    assert e32 < 2e-3  # sanity: C ≈ 0.6 for this solution, h = 1/32


def _interpolated(msh, f):
    from symfp.fem.dolfinx import compat

    V = compat.function_space(msh)
    u = compat.dolfinx_modules().fem.Function(V)
    u.interpolate(f)
    return u


@pytest.mark.mpi
def test_eval_points_is_exact_for_linear_and_same_on_every_rank(comm):
    from symfp.fem.dolfinx import compat
    from symfp.fem.dolfinx.mesh import box

    msh = box([(-1, 2), (0, 1)], cells=(9, 7)).mesh
    u = _interpolated(msh, lambda X: 1.0 + X[0] - 2.0 * X[1])
    rng = np.random.default_rng(4)  # same points on every rank
    pts = np.column_stack([rng.uniform(-1, 2, 50), rng.uniform(0, 1, 50)])
    pts = np.vstack([pts, [[-1, 0], [2, 1], [0.5, 0.5], [5.0, 0.5]]])  # corners and an outside point
    vals = compat.eval_points(u, pts)
    assert vals.shape == (54, 1)
    exact = 1.0 + pts[:, 0] - 2.0 * pts[:, 1]
    # a linear function is reproduced exactly by P1: only round-off
    np.testing.assert_allclose(vals[:53, 0], exact[:53], rtol=0, atol=1e-12)
    assert np.isnan(vals[53, 0])
    allv = comm.allgather(vals)
    for other in allv:
        np.testing.assert_array_equal(np.nan_to_num(other, nan=-7.0), np.nan_to_num(vals, nan=-7.0))
    one = compat.eval_points(u, [0.25, 0.75])  # a single point (d,) is reshaped to (1, 1)
    assert one.shape == (1, 1) and abs(one[0, 0] - (1.25 - 1.5)) < 1e-12


@pytest.mark.mpi
def test_gather_function_holds_every_dof_once_with_exact_values(comm):
    from symfp.fem.dolfinx import compat
    from symfp.fem.dolfinx.mesh import box

    msh = box([(0, 1), (0, 1)], cells=(6, 5)).mesh
    u = _interpolated(msh, lambda X: np.sin(3 * X[0]) * np.exp(X[1]))
    got = compat.gather_function(u, order="coords")
    if comm.rank != 0:
        assert got is None
        return
    coords, values = got
    assert coords.shape == (7 * 6, 2) and values.shape == (42, 1)
    assert len(np.unique(np.round(coords, 12), axis=0)) == 42
    # nodal interpolation: the dof values are the function at the dof coordinates (partition-free)
    np.testing.assert_allclose(values[:, 0], np.sin(3 * coords[:, 0]) * np.exp(coords[:, 1]), atol=1e-12)
    assert np.all(np.diff(coords[:, 0]) >= 0)  # lexicographic order by x first


def test_create_vector_and_petsc_vec_share_layout():
    from symfp.fem.dolfinx import compat
    from symfp.fem.dolfinx.mesh import box

    m = compat.dolfinx_modules()
    msh = box([(0, 1)], cells=10).mesh
    V = compat.function_space(msh)
    v = m.ufl.TestFunction(V)
    L = compat.form(v * m.ufl.dx)
    b = compat.assemble_vector(L)
    # ∫ φ_i dx = h for interior nodes, h/2 at the ends: the sum is the length 1
    assert abs(b.sum() - 1.0) < 1e-14
    u = m.fem.Function(V)
    assert compat.petsc_vec(u).getSize() == b.getSize() == 11
    W = compat.function_space(msh, shape=(1,))
    assert W.dofmap.index_map_bs == 1


def test_make_ksp_reports_divergence_with_reason():
    from symfp.errors import SolverError
    from symfp.fem.dolfinx import compat
    from symfp.fem.dolfinx.mesh import box

    m = compat.dolfinx_modules()
    msh = box([(0, 1), (0, 1)], cells=16).mesh
    V = compat.function_space(msh)
    u, v = m.ufl.TrialFunction(V), m.ufl.TestFunction(V)
    A = compat.assemble_matrix(compat.form((m.ufl.inner(m.ufl.grad(u), m.ufl.grad(v)) + u * v) * m.ufl.dx))
    b = compat.assemble_vector(compat.form(v * m.ufl.dx))
    ksp = compat.make_ksp(A, msh.comm, {"ksp_type": "cg", "pc_type": "none", "ksp_max_it": 2,
                                        "ksp_rtol": 1e-14}, prefix="test_div_")
    with pytest.raises(SolverError, match=r"DIVERGED_(MAX_)?ITS?.*direct solver"):
        compat.solve_checked(ksp, b, A.createVecRight(), "test solve")


def test_read_gmsh_missing_file_and_no_groups(tmp_path):
    from symfp.errors import MeshError
    from symfp.fem.dolfinx import compat

    m = compat.dolfinx_modules()
    with pytest.raises(MeshError, match="does not exist"):
        compat.read_gmsh(str(tmp_path / "nope.msh"), m.MPI.COMM_SELF)
    geo = tmp_path / "square.geo"
    geo.write_text("Point(1)={0,0,0,0.5};Point(2)={1,0,0,0.5};Point(3)={1,1,0,0.5};Point(4)={0,1,0,0.5};"
                   "Line(1)={1,2};Line(2)={2,3};Line(3)={3,4};Line(4)={4,1};"
                   "Curve Loop(1)={1,2,3,4};Plane Surface(1)={1};\n")
    with pytest.raises(MeshError, match="no physical groups"):
        compat.read_gmsh(str(geo), m.MPI.COMM_SELF)


@pytest.mark.mpi
def test_assemble_matrix_sets_the_dirichlet_diagonal_and_lifting_uses_x0():
    # the Dirichlet-row keyword is diagonal= up to 0.9 and diag= from 0.10 (detected): the bc rows of
    # the mass matrix must carry exactly the value asked for, on every version and partition.
    # apply_dirichlet with x0 sets b = g - x0 on the bc rows (the system of the correction u - x0).
    from symfp.fem.dolfinx import compat
    from symfp.fem.dolfinx.mesh import box

    m = compat.dolfinx_modules()
    ufl, fem = m.ufl, m.fem
    msh = box([(0, 1), (0, 1)], cells=6).mesh
    V = compat.function_space(msh)
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    facets = m.mesh.locate_entities_boundary(msh, 1, lambda X: np.isclose(X[0], 0.0))
    dofs = fem.locate_dofs_topological(V, 1, facets)
    bc = fem.dirichletbc(m.PETSc.ScalarType(3.0), dofs, V)
    a = compat.form(u * v * ufl.dx)
    for value in (2.5, 0.0):
        A = compat.assemble_matrix(a, [bc], diagonal=value)
        diag = A.getDiagonal()
        n = V.dofmap.index_map.size_local
        owned = np.asarray(dofs)[np.asarray(dofs) < n]
        np.testing.assert_array_equal(diag.array[owned], value)
        # the other rows keep the P1 mass diagonal Σ_T |T|/6 over the ≤ 6 cells (|T| = 1/72) at a node
        others = np.setdiff1d(np.arange(n), owned)
        assert np.all(diag.array[others] > 0) and np.all(diag.array[others] <= 6 / 72 / 6 + 1e-15)
        A.destroy()
    x0 = fem.Function(V)
    x0.x.array[:] = 1.0
    b = compat.assemble_vector(compat.form(v * ufl.dx))
    compat.apply_dirichlet(b, a, [bc], x0=compat.petsc_vec(x0))
    n = V.dofmap.index_map.size_local
    owned = np.asarray(dofs)[np.asarray(dofs) < n]
    np.testing.assert_allclose(b.array[owned], 3.0 - 1.0, rtol=0, atol=1e-14)
