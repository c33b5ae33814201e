r"""The time steppers of the dolfinx backend: the schemes of :mod:`symfp.fem.schemes` on PETSc objects.

Both backends drive their stepping through one protocol and one loop (:func:`symfp.fem.trackers.run`):
a stepper has ``step(u, u_prev, n) -> u_new`` (numpy arrays; here the *owned* entries of the unknown,
so the loop, the trackers and the observables never see PETSc) and ``set_operators(M, K_new, K_old,
M_old)`` for time-dependent coefficients, and counts its linear-solver ``iterations``. The schemes are
those of :mod:`symfp.fem.schemes`:

- ``"euler"``: :math:`(M + \Delta t K) u^{n+1} = M u^n`;
- ``"cn"``: :math:`(\bar M + \tfrac{\Delta t}2 K^{n+1}) u^{n+1} = (\bar M - \tfrac{\Delta t}2 K^n) u^n`
  (:math:`\bar M = \tfrac12(M^n + M^{n+1})` when the mass matrix depends on time, SUPG's);
- ``"bdf2"``: :math:`(\tfrac32 M + \Delta t K) u^{n+1} = M(2u^n - \tfrac12 u^{n-1})`, started by one
  backward-Euler step.

What is backend code here is only what scipy's CSR cannot do under MPI: the step matrices
:math:`\alpha M + \beta K` with the absorbing rows replaced by the identity (PETSc ``Mat``, collective),
one KSP per step matrix (:func:`symfp.fem.dolfinx.solvers.ksp_options` chooses it; built once, reused,
given the new matrix when the coefficients change) and the checked solve. :class:`StepSystems` holds
them; :class:`GalerkinStepper` and :class:`FCTStepper` (the dolfinx FEM-FCT step,
:class:`symfp.fem.dolfinx.fct.FluxCorrectedStep`, behind the same protocol) use it. The numpy copies
between the loop's arrays and the PETSc vectors are O(n) per step, next to a Krylov solve of
:math:`O(n\cdot\text{iterations})`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from ...errors import SolverError
from ..schemes import check_scheme
from . import compat
from .stabilise import discrete_upwind

#: unique PETSc option prefixes for the time-step KSPs of every solve in this process
_KSP_PREFIXES = itertools.count(1)


def ksp_advice(reason_name: str, opts: Mapping[str, Any]) -> str:
    """What to try when the time-step KSP stopped with ``reason_name`` under options ``opts``."""
    direct = "a direct solver (petsc_options={'ksp_type': 'preonly', 'pc_type': 'lu'})"
    if reason_name in ("DIVERGED_ITS", "DIVERGED_MAX_IT"):
        return (f"raise petsc_options['ksp_max_it'] (now {opts.get('ksp_max_it')}) or loosen 'ksp_rtol' "
                f"(now {opts.get('ksp_rtol')}; mass is conserved only to about that), use a stronger "
                f"preconditioner than pc_type={opts.get('pc_type')!r} (e.g. 'bjacobi' with 'sub_pc_type': "
                f"'ilu', or 'hypre'), or {direct}")
    if reason_name in ("DIVERGED_PC_FAILED", "DIVERGED_INDEFINITE_PC", "DIVERGED_BREAKDOWN",
                       "DIVERGED_BREAKDOWN_BICG"):
        return (f"the preconditioner {opts.get('pc_type')!r} failed (a zero pivot?): use {direct}, or "
                "'ksp_diagonal_scale': True, or a smaller dt")
    return f"use {direct}, a smaller dt, or a finer mesh; check that p0 and the coefficients are finite"


class StepSystems:
    r"""Step matrices, their KSPs and the checked solves of one run (the backend half of the schemes).

    Args:
        comm: the mesh communicator.
        options: PETSc options of the time-step KSPs (without prefix).
        bc_rows: owned global rows with u = 0 (absorbing parts).
        absorbing: whether any rank has absorbing parts (the row operations are collective).
        dt: the time step (for error messages).
        n_steps: number of steps (for the per-step solve timings).
    """

    def __init__(self, comm: Any, options: Mapping[str, Any], *, bc_rows: np.ndarray, absorbing: bool,
                 dt: float, n_steps: int):
        self.comm, self.options = comm, dict(options)
        self.bc_rows = np.asarray(bc_rows, dtype=np.int32)
        self.absorbing, self.dt = bool(absorbing), float(dt)
        self.step = 0  # the step being taken, for the messages
        self.iterations = 0
        self.solve_seconds = np.zeros(n_steps)
        self._ksps: list[Any] = []

    def combine(self, M: Any, alpha: float, K: Any, beta: float) -> Any:
        r""":math:`\alpha M + \beta K` with the absorbing rows replaced by the identity (collective)."""
        A = M.copy()
        A.scale(alpha)
        A.axpy(beta, K)
        self.dirichlet_rows(A)
        return A

    def dirichlet_rows(self, A: Any) -> Any:
        """Replace the absorbing rows of ``A`` by rows of the identity (collective; no-op without parts)."""
        if self.absorbing:  # every rank calls it, possibly with no rows
            A.zeroRows(self.bc_rows, diag=1.0)
        return A

    def zero_rows(self, b: Any) -> Any:
        """Zero the absorbing rows of the right-hand side ``b`` (collective; no-op without parts)."""
        if self.absorbing:
            b.setValues(self.bc_rows, np.zeros(len(self.bc_rows)))
            b.assemble()
        return b

    def ksp(self, A: Any) -> Any:
        """A KSP for ``A`` with the run's options and a fresh prefix; destroyed by :meth:`destroy`."""
        ksp = compat.make_ksp(A, self.comm, self.options, prefix=f"symfp_fp{next(_KSP_PREFIXES)}_")
        if ksp.getType() != "preonly":
            ksp.setInitialGuessNonzero(True)  # the previous step is the guess
        self._ksps.append(ksp)
        return ksp

    def solve(self, ksp: Any, b: Any, x: Any) -> int:
        r"""Solve with ``ksp`` into ``x`` (its content is the initial guess); SolverError when it fails.

        PETSc never raises on its own when a Krylov solve stops early (``ksp_error_if_not_converged`` is
        off), so the converged reason is read after every solve: a negative reason (``DIVERGED_ITS``
        when ``ksp_max_it`` is reached before :math:`\|r\| \le \max(\mathrm{rtol}\,\|b\|,
        \mathrm{atol})`, ``DIVERGED_PC_FAILED``, ``DIVERGED_NANORINF``, ...) is an error. A solve whose
        initial guess (the previous step) already satisfies the test converges in 0 iterations with a
        positive reason, whatever ``ksp_max_it`` is: e.g. a run started at the stationary density.
        """
        t0 = time.perf_counter()
        ksp.solve(b, x)
        if 1 <= self.step <= len(self.solve_seconds):
            self.solve_seconds[self.step - 1] += time.perf_counter() - t0
        reason = ksp.getConvergedReason()
        its = ksp.getIterationNumber()
        if reason < 0:
            name = compat.ksp_reason_name(reason)
            step, dt = self.step, self.dt
            raise SolverError(
                f"solve: the time-step linear solver did not converge at time step {step} "
                f"(t = {step * dt:g}): "
                f"PETSc reason {name} after {its} iterations (residual norm {ksp.getResidualNorm():.3e}, "
                f"‖b‖ = {b.norm():.3e}, ksp_type={ksp.getType()!r}, pc_type={ksp.getPC().getType()!r}). "
                f"What to try: {ksp_advice(name, self.options)}")
        self.iterations += its
        return its

    def destroy(self) -> None:
        """Free the KSPs of the run."""
        for ksp in self._ksps:
            ksp.destroy()
        self._ksps.clear()


class KspSolve:
    """``solve(b, x) -> iterations`` with one KSP: absorbing rows of ``b`` zeroed, then the checked solve.

    The callable that :class:`symfp.fem.dolfinx.fct.FluxCorrectedStep` is given for each of its systems.
    """

    def __init__(self, systems: StepSystems, ksp: Any):
        self.systems, self.ksp = systems, ksp

    def __call__(self, b: Any, x: Any) -> int:
        self.systems.zero_rows(b)
        return self.systems.solve(self.ksp, b, x)


class GalerkinStepper:
    r"""Euler / CN / BDF2 on :math:`M\dot u + Ku = 0` with PETSc matrices (the Stepper protocol).

    Args:
        scheme: "euler", "cn" or "bdf2".
        M, K: PETSc mass and operator matrices (lumped/upwinded already where the method says so).
        dt: the time step.
        systems: the run's :class:`StepSystems`.
        template: a PETSc Vec of the unknown's layout (work vectors are duplicated from it).
    """

    def __init__(self, scheme: str, M: Any, K: Any, dt: float, *, systems: StepSystems, template: Any):
        self.scheme = check_scheme(scheme)
        self.dt = float(dt)
        self.systems = systems
        self._x, self._b, self._tmp = template.duplicate(), template.duplicate(), template.duplicate()
        self._prev = template.duplicate()
        self.M = M
        S = systems
        if scheme == "euler":
            self._main = S.ksp(S.combine(M, 1.0, K, dt))
            self._rhs = M
        elif scheme == "cn":
            self._main = S.ksp(S.combine(M, 1.0, K, 0.5 * dt))
            B = M.copy()
            B.axpy(-0.5 * dt, K)
            self._rhs = B
        else:
            self._main = S.ksp(S.combine(M, 1.5, K, dt))
            self._first = S.ksp(S.combine(M, 1.0, K, dt))
            self._rhs = M
        self._pending: tuple[Any, Any, Any, Any] | None = None

    @property
    def iterations(self) -> int:
        """KSP iterations so far."""
        return self.systems.iterations

    def set_operators(self, M: Any, K_new: Any, K_old: Any | None = None, M_old: Any | None = None) -> None:
        r"""The matrices of the next step: :math:`K(t_{n+1})`, and :math:`K(t_n)` (and :math:`M(t_n)`) for
        CN's explicit half; the step matrix is formed when the step is taken (BDF2's first step differs)."""
        self._pending = (M, K_new, K_old, M_old)

    def _apply_pending(self, first: bool) -> None:
        M, K, K0, M0 = self._pending
        self._pending = None
        S, dt = self.systems, self.dt
        self.M = M
        if self.scheme == "cn":
            Mbar = M
            if M0 is not None:
                Mbar = M0.copy()
                Mbar.scale(0.5)
                Mbar.axpy(0.5, M)
            A = Mbar.copy()
            A.axpy(0.5 * dt, K)
            S.dirichlet_rows(A)
            B = Mbar.copy()
            B.axpy(-0.5 * dt, K if K0 is None else K0)
            self._rhs = B
            self._main.setOperators(A)
        elif self.scheme == "euler" or first:
            self._rhs = M
            (self._first if first else self._main).setOperators(S.combine(M, 1.0, K, dt))
        else:
            self._rhs = M
            self._main.setOperators(S.combine(M, 1.5, K, dt))

    def step(self, u: np.ndarray, u_prev: np.ndarray | None, n: int) -> np.ndarray:
        """The owned unknown at step ``n`` from those at ``n − 1`` (and ``n − 2`` for BDF2)."""
        first = self.scheme == "bdf2" and u_prev is None
        if self._pending is not None:
            self._apply_pending(first)
        self.systems.step = n
        x, b = self._x, self._b
        x.array[:] = u
        if self.scheme == "bdf2" and not first:
            self.M.mult(x, b)
            b.scale(2.0)
            self._prev.array[:] = u_prev
            self.M.mult(self._prev, self._tmp)
            b.axpy(-0.5, self._tmp)
        else:
            self._rhs.mult(x, b)
        self.systems.zero_rows(b)
        self.systems.solve(self._first if first else self._main, b, x)
        return x.array.copy()


class FCTStepper:
    r"""The dolfinx FEM-FCT step (:class:`symfp.fem.dolfinx.fct.FluxCorrectedStep`) as a Stepper.

    Predictor :math:`M_L + \Delta t K_L` (lumped mass, discrete upwinding of the Galerkin K), target
    :math:`M_C + \theta\Delta t K` (θ = ½ for "cn", 1 for "euler" and "bdf2"), right-hand side
    :math:`M_C - (1-\theta)\Delta t K^n`; with "bdf2" the lumped BDF2 predictor, the BDF2 target and the
    Crank–Nicolson fallback (see :meth:`~symfp.fem.dolfinx.fct.FluxCorrectedStep.set_bdf2`).

    Args:
        scheme: target scheme.
        V: the P1 space.
        ML: lumped mass matrix (PETSc, diagonal); ml: its diagonal (PETSc Vec).
        M: consistent mass; K: Galerkin operator (PETSc).
        dt: the time step.
        systems: the run's :class:`StepSystems`.
        passes, tol: the limiter controls.
    """

    def __init__(self, scheme: str, V: Any, ML: Any, ml: Any, M: Any, K: Any, dt: float, *,
                 systems: StepSystems, passes: int, tol: float, method: str = "redistribute"):
        from .fct import FluxCorrectedStep

        self.scheme = check_scheme(scheme)
        self.dt = float(dt)
        self.theta = 0.5 if scheme == "cn" else 1.0
        self.systems = systems
        self.ML, self.M = ML, M
        self.method = method
        S = systems
        self._uh = compat.dolfinx_modules().fem.Function(V)  # the Function FluxCorrectedStep advances
        self._u_vec = compat.petsc_vec(self._uh)
        A_low, A_high, B_high = self._systems(K, K)
        # the lumped upwind predictor is Zalesak's only ("redistribute" limits the target itself)
        self._ksp_low = S.ksp(A_low) if A_low is not None else None
        self._ksp_high = S.ksp(A_high)
        self.fct = FluxCorrectedStep(V, M, K, ml, dt, self.theta,
                                     KspSolve(S, self._ksp_low) if self._ksp_low is not None else None,
                                     KspSolve(S, self._ksp_high), B_high, S.bc_rows,
                                     max_iterations=passes, tol=tol, method=method)
        self._ksp_bdf2: list[Any] = []
        if scheme == "bdf2":
            B_cn = M.copy()
            B_cn.axpy(-0.5 * dt, K)
            if method == "zalesak":
                self._ksp_bdf2 = [S.ksp(S.combine(ML, 1.5, discrete_upwind(K), dt)),
                                  S.ksp(S.combine(M, 1.5, K, dt)), S.ksp(S.combine(M, 1.0, K, 0.5 * dt))]
                self.fct.set_bdf2(*(KspSolve(S, k) for k in self._ksp_bdf2), B_cn)
            else:  # only the BDF2 target 1.5 M + Δt K is solved (after the first, backward-Euler step)
                self._ksp_bdf2 = [S.ksp(S.combine(M, 1.5, K, dt))]
                target = KspSolve(S, self._ksp_bdf2[0])
                self.fct.set_bdf2(None, target, None, B_cn)

    def _systems(self, K_new: Any, K_old: Any) -> tuple[Any, Any, Any]:
        r"""Predictor :math:`M_L + \Delta t K_L`, target :math:`M_C + \theta\Delta t K^{n+1}`, and the
        target's right-hand side :math:`M_C - (1-\theta)\Delta t K^n` (None at θ = 1)."""
        S, dt, th = self.systems, self.dt, self.theta
        B_high = None
        if th < 1:
            B_high = self.M.copy()
            B_high.axpy(-(1 - th) * dt, K_old)
        A_low = S.combine(self.ML, 1.0, discrete_upwind(K_new), dt) if self.method == "zalesak" else None
        return A_low, S.combine(self.M, 1.0, K_new, th * dt), B_high

    @property
    def iterations(self) -> int:
        """KSP iterations so far (both solves of every step)."""
        return self.systems.iterations

    @property
    def fallback_steps(self) -> int:
        """BDF2 steps taken with the Crank–Nicolson target."""
        return self.fct.fallback_steps

    def mean_alpha(self) -> float:
        """Flux-weighted mean limiter coefficient over the run (collective)."""
        return self.fct.mean_alpha(self.systems.comm)

    def set_operators(self, M: Any, K_new: Any, K_old: Any | None = None, M_old: Any | None = None) -> None:
        r"""Time-dependent coefficients: the Galerkin :math:`K(t_{n+1})` (same pattern) and :math:`K(t_n)`."""
        A_low, A_high, B_high = self._systems(K_new, K_new if K_old is None else K_old)
        if self._ksp_low is not None:
            self._ksp_low.setOperators(A_low)
        self._ksp_high.setOperators(A_high)
        if self.scheme == "bdf2" and self.method != "zalesak":  # the BDF2 target at t_{n+1}
            self._ksp_bdf2[0].setOperators(self.systems.combine(self.M, 1.5, K_new, self.dt))
        self.fct.set_operators(K_new, B_high)

    def step(self, u: np.ndarray, u_prev: np.ndarray | None, n: int) -> np.ndarray:
        """One flux-corrected step of the owned unknown."""
        self.systems.step = n
        self._u_vec.array[:] = u
        self.fct.step(self._uh, self._u_vec)
        return self._u_vec.array.copy()
