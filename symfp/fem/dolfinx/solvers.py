r"""Linear-solver strategy of the dolfinx backend: which PETSc KSP/PC for which system, size and comm.

One function, :func:`ksp_options`, returns the PETSc options (without prefix) of a problem *kind*:

- ``"time_step"``: :math:`M + \theta\Delta t K` (backward Euler, Crank–Nicolson, BDF2, and FCT's two
  systems: the lumped-upwind predictor :math:`M_L + \Delta t K_L` and the Galerkin target), assembled
  once and solved every step. Non-symmetric (the drift), well conditioned (the mass matrix dominates),
  solved to ``rtol 1e-12`` because the discrete mass changes exactly by the summed residual.
- ``"steady"``: the stationary density (a pinned singular operator) and the mean exit time (an elliptic
  operator with Dirichlet rows): one solve, no mass matrix, so badly conditioned (:math:`O(h^{-2})`).

Choice, by measurement (``benchmarks/bench_scaling.py``; 2-D OU, 512² P1 = 2.6·10⁵ dofs, Δt = 0.01,
iterations per step at rtol 1e-12, one rank → two ranks):

===========================  =============  ===============================================
KSP + PC                     its/step       note
===========================  =============  ===============================================
GMRES + block Jacobi/ILU(0)  21 → 44        one block per rank: the coupling across the
                                            partition is lost, iterations double
GMRES + ASM(1)/ILU(0)        21 → 34        overlap helps, not enough
BiCGStab + block Jacobi/ILU  12 → 26        (each iteration two products) same loss
BiCGStab + point Jacobi      43 → 43        rank-independent, cheap, many iterations
BiCGStab + GAMG              7 → 7          rank-independent, costly V-cycles
GMRES + hypre BoomerAMG      6 → 6          rank-independent, costliest set-up and cycle
MUMPS LU (factorise once)    —              exact; triangular solves per step
===========================  =============  ===============================================

One rank, same load, interleaved: a MUMPS triangular-solve step took 0.66× an ILU-GMRES step at
2.6·10⁵ dofs (222 vs 335 ms) and 0.61× at 10⁶ (4.6 vs 7.5 s, 43 ILU iterations per step; factor
2.4 GB peak RSS); the factorisation cost ≈ 40 (2.6·10⁵) and ≈ 22 (10⁶) of its solves. 3-D, 61³ P1
(2.3·10⁵ dofs): ILU-GMRES 6 → ASM 8 iterations per step from 1 to 2 ranks, BiCGStab + Jacobi 7 → 7;
MUMPS did not factorise within 5 minutes. So the time-step default (:func:`ksp_options`) is

- a **constant matrix that fits** (:data:`DIRECT_TIME_STEP_DOFS`) in a run of at least
  :data:`DIRECT_MIN_STEPS` steps (where the factorisation is amortised), on any number of ranks:
  MUMPS, factorised once and reused every step; exact, so the mass is conserved to round-off;
- otherwise **one rank**: GMRES + ILU(0) (the previous default, fastest iterative one on one core);
- otherwise **several ranks**: BiCGStab + point Jacobi (rank-independent iterations, no set-up, the
  per-iteration cost halves on 2 ranks: 1.83×) in 3-D and in 2-D up to :data:`JACOBI_MAX_RANKS` ranks,
  BiCGStab + GAMG beyond in 2-D (7 iterations whatever the ranks and the mesh, set up once per matrix).

Quiet machine, ms per step 1 → 2 ranks with these defaults: 261 → 146 (1.79×) at 2.6·10⁵ 2-D dofs,
2073 → 705 (2.94×) at 10⁶, 79 → 52–62 (1.27–1.52×) in 3-D at 2.3·10⁵; two processes get 1.82× one
process's memory bandwidth on this VM, the ceiling of a bandwidth-bound solve (``docs/scaling.md``
has the profile).

FCT's two systems (lumped predictor and Galerkin target) get the same choice: both are constant
unless the coefficients depend on time.

The steady solves (stationary density, mean exit time): MUMPS LU up to :data:`DIRECT_STEADY_DOFS`
(robust for the singular/non-symmetric operators, one solve); beyond, GMRES(100) + hypre BoomerAMG.

A matrix handed to a KSP once is factorised/set up once: the KSP of the time stepping is built once and
reused (PETSc redoes the set-up only when ``setOperators`` is given a new matrix, as the time-dependent
coefficients do each step — there a factorisation would be redone every step, so ``constant=False``
never picks a direct solver).

Explicit ``petsc_options`` of the caller are applied on top of these (they win).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: time-step systems: the largest global size (dofs) solved by a once-factorised MUMPS LU on several
#: ranks, per space dimension (2-D fill grows like n log n, 3-D like n^{4/3}; memory of the factor
#: ≈ 0.5 GB at 2.6·10⁵ 2-D dofs)
DIRECT_TIME_STEP_DOFS: dict[int, int] = {1: 10**7, 2: 1_200_000, 3: 60_000}

#: steady solves: MUMPS LU up to this many dofs per space dimension, AMG-preconditioned GMRES beyond
DIRECT_STEADY_DOFS: dict[int, int] = {1: 10**7, 2: 2_000_000, 3: 150_000}

_TIGHT: dict[str, Any] = {"ksp_rtol": 1e-12, "ksp_atol": 1e-50, "ksp_max_it": 2000}

#: one rank: the previous default (GMRES + ILU(0) in one block)
SERIAL_TIME_STEP: dict[str, Any] = {"ksp_type": "gmres", "pc_type": "bjacobi", "sub_pc_type": "ilu", **_TIGHT}

#: a factorisation (≈ 30–40 triangular solves' time, measured at 2.6·10⁵ and 10⁶ 2-D dofs on 1 and 2
#: ranks) pays off against ILU-GMRES / BiCGStab-Jacobi (a triangular-solve step took 0.66× resp. 0.63×
#: their step) after ≈ 80–100 steps: factorise from this many steps on, on any number of ranks, as long
#: as the size allows and the matrix is constant (a 10-step run on 2 ranks: 4.6 s of factorisation +
#: 9 × 0.15 s against 10 × 0.23 s with Jacobi)
DIRECT_MIN_STEPS = 200

#: 2-D on several ranks without a direct solve: BiCGStab + point Jacobi up to this many ranks (42
#: iterations on 1 and 2 ranks at 2.6·10⁵ dofs, 5.4 ms per iteration on 2 ranks against ASM(1)/ILU's
#: 9.4 ms and 33 iterations: 233 vs 308 ms per step), GAMG beyond (7 iterations whatever the ranks,
#: and its iterations stay flat under refinement where Jacobi's grow like h⁻¹)
JACOBI_MAX_RANKS = 16

#: rank-independent AMG for many ranks (the smoothed-aggregation set-up is done once per matrix)
AMG_TIME_STEP: dict[str, Any] = {"ksp_type": "bcgs", "pc_type": "gamg", **_TIGHT}

#: MUMPS LU, factorised at the first solve and reused while the matrix is unchanged
DIRECT_LU: dict[str, Any] = {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}

#: several ranks, past the direct limit: rank-independent iteration counts
PARALLEL_ITERATIVE_TIME_STEP: dict[str, Any] = {"ksp_type": "bcgs", "pc_type": "jacobi", **_TIGHT}

#: steady solves past the direct limit
AMG_STEADY: dict[str, Any] = {
    "ksp_type": "gmres", "ksp_gmres_restart": 100, "pc_type": "hypre", "pc_hypre_type": "boomeramg",
    "pc_hypre_boomeramg_strong_threshold": 0.5, "pc_hypre_boomeramg_coarsen_type": "HMIS",
    "pc_hypre_boomeramg_interp_type": "ext+i", "ksp_rtol": 1e-10, "ksp_atol": 1e-50, "ksp_max_it": 1000,
}

KINDS = ("time_step", "steady")


def ksp_options(kind: str, *, ranks: int, dofs: int, dim: int, constant: bool = True,
                steps: int = 1) -> dict[str, Any]:
    """The default PETSc options (no prefix) of a linear system of ``kind``.

    Args:
        kind: ``"time_step"`` (M + θΔt K and FCT's systems, solved every step) or ``"steady"``
            (stationary density, mean exit time: one solve).
        ranks: the size of the mesh communicator.
        dofs: the global number of unknowns.
        dim: the space dimension (1, 2 or 3): it sets the direct solver's memory limit.
        constant: whether the matrix stays the same over the run (a factorisation is then reused);
            time-dependent coefficients re-assemble it every step.
        steps: the number of time steps (one rank factorises only when they amortise the set-up).

    Returns:
        A fresh dict of PETSc options.

    Raises:
        ValueError: an unknown ``kind``.
    """
    if kind not in KINDS:
        raise ValueError(f"ksp_options: kind must be one of {KINDS}, got {kind!r}")
    dim = min(max(int(dim), 1), 3)
    if kind == "steady":
        return dict(DIRECT_LU if dofs <= DIRECT_STEADY_DOFS[dim] else AMG_STEADY)
    if constant and dofs <= DIRECT_TIME_STEP_DOFS[dim] and steps >= DIRECT_MIN_STEPS:
        return dict(DIRECT_LU)
    if ranks <= 1:
        return dict(SERIAL_TIME_STEP)
    if dim == 3 or ranks <= JACOBI_MAX_RANKS:
        return dict(PARALLEL_ITERATIVE_TIME_STEP)
    return dict(AMG_TIME_STEP)


def merge(defaults: Mapping[str, Any], user: Mapping[str, Any] | None) -> dict[str, Any]:
    """The caller's ``petsc_options`` on top of the defaults.

    When the default is a direct solve (``ksp_type=preonly``) and the caller asks for a Krylov method
    (a ``ksp_type`` other than preonly, or a ``pc_type`` other than lu without a ``ksp_type``), the
    Krylov defaults are put under the caller's keys: GMRES, rtol 1e-12 (what conserves mass) and no
    factorisation keys, so that ``{"pc_type": "hypre"}`` means GMRES + BoomerAMG to 1e-12, never a
    single preconditioner application nor PETSc's loose default rtol.
    """
    user = dict(user or {})
    base = dict(defaults)
    krylov = user.get("ksp_type", "gmres" if user.get("pc_type", "lu") != "lu" else "preonly") != "preonly"
    if base.get("ksp_type") == "preonly" and krylov:
        base = {k: v for k, v in base.items() if not k.startswith("pc_factor")}
        base.update(ksp_type="gmres", **_TIGHT)
    base.update(user)
    return base


def describe(options: dict[str, Any]) -> str:
    """A short human-readable name of a solver configuration, e.g. ``"gmres+bjacobi/ilu"``."""
    ksp, pc = options.get("ksp_type", "gmres"), options.get("pc_type", "ilu")
    if pc == "lu":
        return f"{options.get('pc_factor_mat_solver_type', 'petsc')} LU"
    if pc == "hypre":
        return f"{ksp}+{options.get('pc_hypre_type', 'boomeramg')}"
    if pc in ("bjacobi", "asm"):
        return f"{ksp}+{pc}/{options.get('sub_pc_type', 'ilu')}"
    return f"{ksp}+{pc}"
