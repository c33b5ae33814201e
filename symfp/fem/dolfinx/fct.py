r"""Algebraic flux correction (Kuzmin's FEM-FCT) for the forward Fokker–Planck equation (dolfinx/PETSc).

The limiter itself (steps 3–5 below) is backend-neutral numpy, :class:`symfp.fem.fct.FCTLimiter`;
this module reads the PETSc matrices, does the two KSP solves and the ghost exchange.

Semi-discrete Galerkin P1 (high order): :math:`M_C\dot u + K u = 0` with the consistent mass matrix
:math:`M_C` and the operator matrix K (assembled once; :math:`\mathbf 1^\top K = 0`, which is mass
conservation). Low order: :math:`M_L\dot u + K_L u = 0` with the lumped mass :math:`M_L =
\mathrm{diag}(m_i)`, :math:`m_i = \int\varphi_i`, and :math:`K_L = K + \mathcal D`, Kuzmin's discrete
upwinding (:func:`symfp.fem.dolfinx.stabilise.discrete_upwind`): :math:`\mathcal D_{ij} = -d_{ij}`,
:math:`d_{ij} = \max(0, k_{ij}, k_{ji})`, zero row and column sums. :math:`M_L + \Delta t K_L` is an
M-matrix, so backward Euler on the low-order system keeps :math:`u \ge 0`.

**One step** :math:`u^n \mapsto u^{n+1}` (nonlinear FCT with the high-order solution as target; the
default limiter, ``method="redistribute"``, needs only step 2 and its own step 4, so the predictor's
KSP is not used):

1. low-order predictor (backward Euler): :math:`(M_L + \Delta t K_L)\,u^L = M_L u^n`
   (:math:`u^L \ge 0`, :math:`\sum_i m_i u^L_i = \sum_i m_i u^n_i`);
2. high-order target, Galerkin with consistent mass, Crank–Nicolson (θ = ½) or backward Euler
   (θ = 1): :math:`(M_C + \theta\Delta t K)\,u^H = (M_C - (1-\theta)\Delta t K)\,u^n`;
3. raw antidiffusive fluxes: with :math:`\Delta = u^H - u^n`, :math:`\bar u^H = \theta u^H +
   (1-\theta)u^n` and :math:`w = u^L - \bar u^H`, for every matrix edge :math:`i \ne j`

   .. math:: f_{ij} = m_{ij}(\Delta_i - \Delta_j) + \Delta t\, d_{ij}(u^L_i - u^L_j)
             + \Delta t\,(k_{ij} w_j - k_{ji} w_i) = -f_{ji}

   (:math:`m_{ij}` the symmetric consistent-mass entry). Using :math:`((M_L - M_C)\Delta)_i =
   \sum_j m_{ij}(\Delta_i - \Delta_j)`, :math:`(\mathcal D u)_i = \sum_j d_{ij}(u_i - u_j)` and, by
   the zero column sums of K, :math:`(Kw)_i = \sum_{j\ne i}(k_{ij}w_j - k_{ji}w_i)`, one checks
   :math:`\sum_j f_{ij} = m_i(u^H_i - u^L_i)` **exactly**: the fluxes are the local, antisymmetric
   decomposition of the difference between the two solutions;
4. the limiter of :mod:`symfp.fem.fct` chooses symmetric :math:`\alpha_{ij} \in [0, 1]` against the
   local bounds :math:`u_i^{\max} = \max_{j \in N(i)\cup\{i\}} \max(u^L_j, u^n_j)`, :math:`u_i^{\min}`
   likewise; by default *limiting from the target* (start from α ≡ 1 and cut flux only at nodes that
   leave their bounds, see that module for the maths and why Zalesak's worst-case limiter stalled in
   thin oblique valleys), or Zalesak's iterated passes (``method="zalesak"``);
5. correction: :math:`u^{n+1}_i = u^L_i + \frac1{m_i}\sum_j \alpha_{ij} f_{ij}`.

Properties: :math:`u^{\min}_i \le u^{n+1}_i \le u^{\max}_i` (so :math:`u^{n+1} \ge 0` whenever
:math:`u^n \ge 0`, up to round-off and the KSP residual of step 1); :math:`\sum_i m_i u^{n+1}_i =
\sum_i m_i u^L_i` exactly (the limited fluxes stay antisymmetric: every :math:`m_{ij}`,
:math:`d_{ij}`, :math:`k_{ij}` and cut is the same number on both sides of an edge); where the target
is within the bounds :math:`u^{n+1} = u^H`, the second-order Galerkin solution. Cost: two KSP solves
and O(nnz) vector work per step (one sweep per round of bound violations).

**MPI.** Everything is row-wise over the locally owned rows of the PETSc matrices: the CSR of K,
:math:`M_C` and of their transposes (for :math:`k_{ji}`, :math:`m_{ji}` of rows owned elsewhere) is
read once; values at off-process columns (of :math:`u^L, u^n, u^H`, the iterate and the cut fractions)
come through a PETSc ghosted Vec over exactly those columns (not the dolfinx ghost layer: with
``shared_facet`` ghosting a cell that shares only a vertex with the partition is not ghosted, yet its
dofs are in the row). Besides the two KSP solves the collectives are these ghost updates and one
reduction per limiter sweep; the result equals the serial one up to the KSP round-off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..fct import CSRPair, FCTLimiter, lookup, upwind_diffusion
from . import compat

__all__ = ["CSRPair", "FluxCorrectedStep", "csr_with_transpose", "upwind_diffusion"]


def csr_with_transpose(A: Any, pattern: CSRPair | None = None) -> CSRPair:
    """Owned CSR rows of the PETSc matrix ``A``, :math:`a_{ji}` aligned to every :math:`a_{ij}` (collective).

    With ``pattern`` (the :class:`CSRPair` of a matrix with the same sparsity) the values are aligned
    to that pattern's entries (zero where A has none).
    """
    PETSc = compat.dolfinx_modules().PETSc
    At = A.transpose(PETSc.Mat())
    rstart, rend = A.getOwnershipRange()
    n = A.getSize()[1]

    def keyed(M: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        ia, ja, va = M.getValuesCSR()
        rows = np.repeat(np.arange(rstart, rend, dtype=np.int64), np.diff(ia))
        return ia, ja, va, rows * n + ja

    ia, ja, va, key_a = keyed(A)
    _, _, vb, key_b = keyed(At)
    At.destroy()
    if pattern is None:
        rows = np.repeat(np.arange(rstart, rend), np.diff(ia))
        return CSRPair(ia, ja, rows, va, lookup(key_b, vb, key_a), rstart)
    key_p = pattern.rows.astype(np.int64) * n + pattern.ja
    return CSRPair(pattern.ia, pattern.ja, pattern.rows, lookup(key_a, va, key_p), lookup(key_b, vb, key_p),
                   rstart)


class FluxCorrectedStep:
    r"""The FEM-FCT time step of the module docstring, built once from the assembled matrices.

    Args:
        V: the P1 space (its index map gives the ghost layout).
        M: consistent mass matrix :math:`M_C` (PETSc).
        K: Galerkin operator matrix (PETSc, before upwinding).
        ml: lumped mass :math:`m_i = \int\varphi_i` (PETSc Vec, owned entries used).
        dt: time step.
        theta: 0.5 (Crank–Nicolson target) or 1 (backward Euler target).
        solve_low: ``solve_low(b, x)`` solves :math:`(M_L + \Delta t K_L)x = b` (returns iterations).
        solve_high: ``solve_high(b, x)`` solves :math:`(M_C + \theta\Delta t K)x = b`.
        rhs_high: PETSc Mat :math:`M_C - (1-\theta)\Delta t K` (None for θ = 1: :math:`M_C`).
        bc_rows: owned global rows with p = 0 (absorbing): set to 0 after the correction.
        max_iterations, tol, method: the limiter controls of :class:`symfp.fem.fct.FCTLimiter` (default:
            limiting from the target; ``method="zalesak"`` the iterated Zalesak passes).
    """

    def __init__(self, V: Any, M: Any, K: Any, ml: Any, dt: float, theta: float,
                 solve_low: Callable[[Any, Any], int], solve_high: Callable[[Any, Any], int],
                 rhs_high: Any, bc_rows: np.ndarray, max_iterations: int = 50, tol: float = 1e-3,
                 method: str = "redistribute"):
        mods = compat.dolfinx_modules()
        fem = mods.fem
        self._MPI = mods.MPI
        self._comm = V.mesh.comm
        self.dt, self.theta = float(dt), float(theta)
        self.solve_low, self.solve_high = solve_low, solve_high
        self.M, self.rhs_high = M, rhs_high
        Kc = csr_with_transpose(K)
        self._pattern = Kc
        Mc = csr_with_transpose(M, pattern=Kc)
        PETSc = mods.PETSc
        r0, r1 = K.getOwnershipRange()
        self.n_owned = r1 - r0
        # off-process columns of the owned rows: NOT the dolfinx ghosts (with ghost_mode=shared_facet a
        # cell sharing only a vertex across the partition is not ghosted, but its dofs are in the row),
        # so a PETSc ghosted Vec with exactly these columns carries the values (owned, then ghosts)
        cols = Kc.ja.astype(np.int64)
        owned = (cols >= r0) & (cols < r1)
        needed = np.unique(cols[~owned])
        self._gx = PETSc.Vec().createGhost(needed.astype(PETSc.IntType), size=(self.n_owned, PETSc.DECIDE),
                                           comm=K.getComm())
        self._insert, self._forward = PETSc.InsertMode.INSERT, PETSc.ScatterMode.FORWARD
        loc = np.empty(len(cols), dtype=np.int64)
        loc[owned] = cols[owned] - r0
        loc[~owned] = self.n_owned + np.searchsorted(needed, cols[~owned])
        # serial (no off-process columns on any rank): no ghost exchange is needed at all
        self._serial = self._comm.allreduce(len(needed), op=self._MPI.SUM) == 0
        self.limiter = FCTLimiter(Kc, Mc, ml.array[: self.n_owned], loc,
                                  np.asarray(bc_rows, dtype=np.int64) - r0, with_ghosts=self._with_ghosts,
                                  allsum=self._allsum, max_iterations=max_iterations, tol=tol,
                                  method=method)
        # work vectors of the two solves
        self._template = fem.Function(V)  # kept alive: on 0.9 its PETSc Vec dies with it
        self._vec_L = compat.petsc_vec(self._template).duplicate()
        self._vec_H = self._vec_L.duplicate()
        self._b = self._vec_L.duplicate()
        self._prev_uL: np.ndarray | None = None
        self._prev_un: np.ndarray | None = None
        self._bdf2: tuple[Any, ...] | None = None
        self._u_prev: np.ndarray | None = None
        self.fallback_steps = 0

    def set_bdf2(self, solve_low2: Callable[[Any, Any], int], solve_high2: Callable[[Any, Any], int],
                 solve_cn: Callable[[Any, Any], int], rhs_cn: Any) -> None:
        r"""BDF2 target: solvers of :math:`(\tfrac32 M_L + \Delta t K_L)`, :math:`(\tfrac32 M_C + \Delta t K)`
        and the Crank–Nicolson fallback :math:`(M_C + \tfrac12\Delta t K)` with its right-hand side matrix.

        The first step is the θ = 1 step of the constructor; a step whose :math:`r = 2u^n - u^{n-1}/2`
        is negative beyond 1e-10 of its maximum (the lumped BDF2 predictor would not be positive) is
        taken with the CN target (:class:`symfp.fem.schemes.FCTStepper` does the same).
        """
        self._bdf2 = (solve_low2, solve_high2, solve_cn, rhs_cn)

    @property
    def iterations(self) -> int:
        """Limiter passes done so far."""
        return self.limiter.iterations

    def set_operators(self, K: Any, rhs_high: Any) -> None:
        r"""Time-dependent coefficients: the Galerkin K of the new level :math:`t_{n+1}` (same pattern).

        The previous :math:`k_{ij}` are kept as :math:`K(t_n)` (the flux of step 3 gains
        :math:`\Delta t(1-\theta)[(k^{n+1}_{ij} - k^n_{ij})u^n_j - (k^{n+1}_{ji} - k^n_{ji})u^n_i]`, so that
        :math:`\sum_j f_{ij} = m_i(u^H_i - u^L_i)` still holds). ``rhs_high`` is
        :math:`M_C - (1-\theta)\Delta t K^n` (None for θ = 1). The solvers were given the new matrices.
        """
        self.limiter.set_operator(csr_with_transpose(K, pattern=self._pattern), keep_previous=True)
        self.rhs_high = rhs_high

    def _allsum(self, values: np.ndarray) -> np.ndarray:
        arr = np.ascontiguousarray(values, dtype=float)
        if self._comm.size == 1:
            return arr
        out = np.empty_like(arr)
        self._comm.Allreduce(arr, out, op=self._MPI.SUM)  # buffer form: no pickling per limiter round
        return out

    def _with_ghosts(self, owned: np.ndarray) -> np.ndarray:
        """Owned values → owned + off-process column values (collective; a copy in serial)."""
        if self._serial:
            return np.array(owned, dtype=float, copy=True)
        g = self._gx
        g.array[:] = owned
        g.ghostUpdate(addv=self._insert, mode=self._forward)
        with g.localForm() as loc:
            return loc.array.copy()

    def _step_bdf2(self, u: Any, u_vec: Any) -> int | None:
        """The BDF2-target step (None where the θ-step must be taken: first step)."""
        n = self.n_owned
        cur = u_vec.array[:n].copy()
        prev, self._u_prev = self._u_prev, cur
        if prev is None:
            return None
        solve_low2, solve_high2, solve_cn, rhs_cn = self._bdf2
        MPI = self._MPI
        r = 2.0 * cur - 0.5 * prev
        lo = self._comm.allreduce(float(r.min()) if n else np.inf, op=MPI.MIN)
        hi = self._comm.allreduce(float(r.max()) if n else -np.inf, op=MPI.MAX)
        un = self._with_ghosts(cur)
        b = self._b
        if lo < -1e-10 * max(hi, 0.0):
            self.fallback_steps += 1
            b.array[:] = self.limiter.ml * cur
            self._vec_L.array[:] = cur
            its = self.solve_low(b, self._vec_L)
            rhs_cn.mult(u_vec, b)
            self._vec_H.array[:] = self._vec_L.array
            its += solve_cn(b, self._vec_H)
            uL, uH = self._with_ghosts(self._vec_L.array), self._with_ghosts(self._vec_H.array)
            u_vec.array[:] = self.limiter.correct(un, uL, uH, self.dt, 0.5)
        else:
            b.array[:] = self.limiter.ml * r
            self._vec_L.array[:] = cur
            its = solve_low2(b, self._vec_L)
            rv = self._vec_H  # r as a Vec for M_C r (then reused as the target's unknown)
            rv.array[:] = r
            self.M.mult(rv, b)
            self._vec_H.array[:] = self._vec_L.array
            its += solve_high2(b, self._vec_H)
            uL, uH = self._with_ghosts(self._vec_L.array), self._with_ghosts(self._vec_H.array)
            f = self.limiter.fluxes_bdf2(self._with_ghosts(r), uL, uH, self.dt)
            u_vec.array[:] = self.limiter.limit(f, un, uL)
        u.x.scatter_forward()
        return its

    def _step_redistribute(self, u: Any, u_vec: Any) -> int:
        """The target solve (no predictor) and the positivity redistribution of :mod:`symfp.fem.fct`."""
        n = self.n_owned
        cur = u_vec.array[:n].copy()
        b = self._b
        prev, self._u_prev = self._u_prev, cur
        if self._bdf2 is not None and prev is not None:
            rv = self._vec_H  # r = 2u^n - u^{n-1}/2 as a Vec for M_C r (then the target's unknown)
            rv.array[:] = 2.0 * cur - 0.5 * prev
            self.M.mult(rv, b)
            solve = self._bdf2[1]
        else:
            (self.M if self.rhs_high is None else self.rhs_high).mult(u_vec, b)
            solve = self.solve_high
        self._vec_H.array[:] = cur
        its = solve(b, self._vec_H)
        u_vec.array[:] = self.limiter.redistribute(self._with_ghosts(self._vec_H.array),
                                                   self._with_ghosts(cur))
        u.x.scatter_forward()
        return its

    def step(self, u: Any, u_vec: Any) -> int:
        """Advance ``u`` (a dolfinx Function whose PETSc Vec is ``u_vec``) by one step; returns KSP its."""
        if self.limiter.method == "redistribute":
            return self._step_redistribute(u, u_vec)
        if self._bdf2 is not None:
            its = self._step_bdf2(u, u_vec)
            if its is not None:
                return its
        n = self.n_owned
        un = self._with_ghosts(u_vec.array[:n])
        # 1. low-order predictor
        b = self._b
        b.array[:] = self.limiter.ml * u_vec.array[:n]
        # initial guess: the previous step's predictor advanced by the last increment of u (an
        # O(dt²)-accurate guess where u^n alone is O(dt): fewer Krylov iterations, same converged u^L)
        if self._prev_un is not None and self._prev_uL is not None:
            self._vec_L.array[:] = self._prev_uL + (u_vec.array[:n] - self._prev_un)
        else:
            self._vec_L.array[:] = u_vec.array[:n]
        its = self.solve_low(b, self._vec_L)
        self._prev_uL = self._vec_L.array.copy()
        self._prev_un = u_vec.array[:n].copy()
        uL = self._with_ghosts(self._vec_L.array)
        # 2. high-order target (initial guess u^L)
        (self.M if self.rhs_high is None else self.rhs_high).mult(u_vec, b)
        self._vec_H.array[:] = self._vec_L.array
        its += self.solve_high(b, self._vec_H)
        uH = self._with_ghosts(self._vec_H.array)
        # 3.-5. fluxes and the iterated limiter (backend-neutral)
        u_vec.array[:] = self.limiter.correct(un, uL, uH, self.dt, self.theta)
        u.x.scatter_forward()
        return its

    def mean_alpha(self, comm: Any = None) -> float:
        r"""Flux-weighted mean of :math:`\alpha_{ij}` over the run (1: no limiting; collective)."""
        return self.limiter.mean_alpha()
