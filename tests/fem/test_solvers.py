"""The linear-solver strategy (symfp.fem.dolfinx.solvers): its choices, the caller's options on top,
and that the direct and the Krylov time steps give the same density (to their tolerances) serially
and on 2 ranks."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.fem.dolfinx import solvers

pytestmark = pytest.mark.fem
x, y = sp.symbols("x y", real=True)


def test_choices_follow_size_ranks_and_constancy():
    ts = solvers.ksp_options
    # one rank, few steps: ILU-GMRES (the factorisation would not pay off)
    assert ts("time_step", ranks=1, dofs=263_169, dim=2, steps=10)["sub_pc_type"] == "ilu"
    # one rank, many steps, constant matrix: MUMPS once
    assert ts("time_step", ranks=1, dofs=263_169, dim=2, steps=500)["pc_type"] == "lu"
    # several ranks: factorise when it fits, the matrix is constant and the run amortises it ...
    assert ts("time_step", ranks=2, dofs=263_169, dim=2, steps=500)["pc_factor_mat_solver_type"] == "mumps"
    # ... a short run, or a matrix that changes every step: rank-independent BiCGStab + Jacobi
    assert ts("time_step", ranks=2, dofs=263_169, dim=2, steps=10)["pc_type"] == "jacobi"
    assert ts("time_step", ranks=2, dofs=263_169, dim=2, constant=False, steps=500)["pc_type"] == "jacobi"
    # 3-D past the direct limit: rank-independent BiCGStab + Jacobi; many ranks in 2-D: GAMG
    assert ts("time_step", ranks=2, dofs=226_981, dim=3)["pc_type"] == "jacobi"
    assert ts("time_step", ranks=64, dofs=10**8, dim=2)["pc_type"] == "gamg"
    # every iterative choice keeps the tight tolerance that conserves mass to round-off
    for o in (ts("time_step", ranks=r, dofs=n, dim=d, constant=False) for r in (1, 2, 64)
              for n in (10**4, 10**8) for d in (2, 3)):
        assert o["ksp_rtol"] == 1e-12
    # steady: MUMPS up to the limit, AMG-preconditioned GMRES beyond
    assert ts("steady", ranks=1, dofs=10**5, dim=3)["pc_type"] == "lu"
    assert ts("steady", ranks=4, dofs=10**7, dim=3)["pc_hypre_type"] == "boomeramg"
    with pytest.raises(ValueError, match="kind must be one of"):
        ts("eigen", ranks=1, dofs=10, dim=2)


def test_caller_options_win_and_a_bare_pc_type_gets_a_krylov_method():
    direct = solvers.ksp_options("time_step", ranks=2, dofs=1000, dim=2, steps=500)
    hyp = solvers.merge(direct, {"pc_type": "hypre"})
    assert hyp["ksp_type"] == "gmres" and hyp["pc_type"] == "hypre" and "pc_factor_mat_solver_type" not in hyp
    assert hyp["ksp_rtol"] == 1e-12
    rich = solvers.merge(direct, {"ksp_type": "richardson", "pc_type": "jacobi"})
    assert rich["ksp_type"] == "richardson" and rich["ksp_rtol"] == 1e-12
    assert solvers.merge(direct, {"ksp_rtol": 1e-6})["ksp_type"] == "preonly"  # still the direct solve
    assert solvers.merge(direct, {"pc_factor_mat_solver_type": "superlu_dist"})["pc_type"] == "lu"
    assert solvers.merge(direct, None) == direct and solvers.merge(direct, None) is not direct


def _solve(petsc_options=None, steps=20):
    A = sp.Matrix([[1, 0.6], [-0.4, 1.5]])
    D = sp.Matrix([[0.05, 0.02], [0.02, 0.03]])
    sde = symfp.SDE(state=[x, y], drift=-A * sp.Matrix([x, y]), diffusion=D)
    p0 = sp.exp(-((x - 0.6) ** 2 + (y + 0.3) ** 2) / 0.02)
    mesh = symfp.mesh.box([(-1, 1.6), (-1.3, 1)], cells=24)
    return sde.fokker_planck().solve(mesh, p0, t_end=steps * 0.01, dt=0.01, scheme="euler",
                                     stabilisation="none", progress=False, negative_tol=1.0,
                                     petsc_options=petsc_options)


@pytest.mark.mpi
def test_direct_and_krylov_time_steps_agree_serially_and_across_ranks(comm):
    # MUMPS (exact up to round-off) against GMRES + ILU/ASM at rtol 1e-12: the densities differ by the
    # Krylov residual, ≤ rtol·‖b‖·cond ≈ 1e-12 · O(10) per step, so 1e-9 relative after 20 steps is loose
    lu = _solve({"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"})
    kr = _solve({"ksp_type": "gmres", "pc_type": "asm" if comm.size > 1 else "bjacobi", "sub_pc_type": "ilu"})
    default = _solve()
    m_lu, m_kr, m_def = (s.observables["mean"][-1] for s in (lu, kr, default))
    np.testing.assert_allclose(m_kr, m_lu, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(m_def, m_lu, rtol=1e-9, atol=1e-12)
    # the direct solve conserves mass to round-off (1ᵀ(M + ΔtK) = 1ᵀM exactly, no residual)
    assert np.max(np.abs(lu.observables["mass"] - 1.0)) < 1e-13
    assert lu.info["ksp_iterations"] == lu.info["steps"]  # preonly: one application per step
    # the same numbers on every rank (the observables are reduced over the ranks)
    assert np.array_equal(comm.bcast(m_def, root=0), m_def)


@pytest.mark.mpi
def test_a_bare_pc_type_is_a_converged_krylov_solve():
    sol = _solve({"pc_type": "jacobi"}, steps=5)
    # GMRES + Jacobi needs several iterations per step to reach rtol 1e-12 (one application would not)
    assert sol.info["ksp_iterations"] > 3 * sol.info["steps"]
    assert np.max(np.abs(sol.observables["mass"] - 1.0)) < 1e-10
