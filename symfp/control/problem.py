r"""The discrete control problem: forward θ-scheme on assembled parts, exact gradient by the discrete adjoint.

**Forward.** With :math:`K_n = K(u_{j(n)}, B_{j(n)}) = \sum u^iB^{-j}K_{ij}` the operator of the control
interval :math:`j(n)` holding step n (the interval containing the step's midpoint),

.. math:: A_n p^{n+1} = R_n p^n,\qquad A_n = M + \theta\,dt\,K_n,\quad R_n = M - (1-\theta)\,dt\,K_n,

``scheme="euler"`` (θ = 1, order 1) or ``"cn"`` (θ = ½, order 2). The space discretisation is P1
Galerkin — optionally with the linear artificial diffusion of :mod:`symfp.control.stabilisation`
(``operator_parts(..., stabilisation="streamline")``, a weight of the mesh and model only) — which is
*linear* in p and in the coefficients, so the discrete solution is a smooth
(rational) function of the controls. Flux-corrected transport is not used here: its limiter
(Zalesak's :math:`\alpha_{ij} = \min(1, Q^\pm/P^\pm)`, recomputed from the solution at every step) is
a min/max of solution-dependent ratios — piecewise smooth with kinks wherever a limiter switches, so
the discrete map has no derivative there and an adjoint of it is not the gradient (L-BFGS-B's
curvature pairs break on the kinks). Nor is the discrete upwinding (:math:`\max(0, -k_{ij})`) used:
also a max of coefficient-dependent entries. Use a mesh fine enough for Galerkin (cell Péclet ≲ 1
where the density lives), or the stabilisation at the price of an O(h) bias;
:attr:`Trajectory.undershoot` (the most negative nodal density over the run, relative to the largest)
says whether it was needed.

Mass: :math:`\mathbf 1^\top K_{ij} = 0` (zero-flux natural condition), so :math:`\mathbf 1^\top M p^n` is
conserved exactly by both schemes.

**Objective** :math:`J = \Phi(p^N) + \sum_{n=1}^N \psi_n(p^n) + C(u, B)`.

**Adjoint** (the Lagrangian :math:`J - \sum_n\lambda_{n+1}^\top(A_np^{n+1} - R_np^n)`, stationary in
:math:`p^1..p^N`): backward in n, with the *transposes of the same step matrices*,

.. math:: A_{N-1}^\top\lambda_N = \nabla\Phi(p^N) + \nabla\psi_N(p^N),\qquad
          A_{n-1}^\top\lambda_n = \nabla\psi_n(p^n) + R_n^\top\lambda_{n+1}\quad(n = N-1..1),

— the backward Kolmogorov equation :math:`-\partial_t\lambda = \mathcal L\lambda` discretised
consistently — and the exact gradient of the discrete J is

.. math:: \frac{\partial J}{\partial c_j} = \frac{\partial C}{\partial c_j} - dt\sum_{n: j(n)=j}
          \sum_{(i,k)} \frac{\partial(u^iB^{-k})}{\partial c_j}\;
          \lambda_{n+1}^\top K_{ik}\big(\theta p^{n+1} + (1-\theta)p^n\big),\qquad c = u\text{ or }B.

The LU factors of :math:`A_n` (one per control interval: the control is constant on it) are computed
once in the forward sweep and reused transposed in the adjoint sweep (``splu(...).solve(.., trans="T")``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sps
from scipy.sparse.linalg import splu

from ..errors import InputError, SolverError
from .objectives import ControlCost, DensityTerm
from .operators import OperatorParts
from .schedules import ControlGrid, check_bounds

SCHEMES = {"euler": 1.0, "cn": 0.5}


@dataclass(eq=False)
class Trajectory:
    """A forward solve: densities ``P`` (N+1 × n), the controls, and the LU factors per interval."""

    P: np.ndarray
    u: np.ndarray
    B: np.ndarray
    lus: list[Any]
    RT: list[Any]
    value: float
    terms: dict[str, float]

    @property
    def final(self) -> np.ndarray:
        """The density at T (nodal)."""
        return self.P[-1]

    @property
    def undershoot(self) -> float:
        r""":math:`\max(0, -\min_{n,i} p^n_i)/\max_{n,i} p^n_i`: Galerkin's oscillation, 0 when p ≥ 0."""
        return float(max(0.0, -self.P.min()) / self.P.max())


class ControlProblem:
    r"""Minimise :math:`J(u, B)` over piecewise-constant controls, subject to the discrete FP equation.

    Args:
        ops: :class:`~symfp.control.operators.OperatorParts` (from ``operator_parts``).
        p0: initial density (SymPy expression in the state, callable, or a point).
        t_end: T (in the time :math:`t = k\eta_{\max}`).
        dt: time step; rounded down so that a whole number of steps reaches T.
        n_controls: number of control intervals (≤ the number of steps).
        objective: density terms and control costs (:mod:`symfp.control.objectives`).
        controls: which controls are optimised: ``("u",)``, ``("B",)`` or ``("u", "B")``.
        u_bounds, B_bounds: bounds of the optimised controls.
        u_fixed, B_fixed: the value of a control that is not optimised (B defaults to the model's B).
        scheme: "cn" (default) or "euler".

    Raises:
        InputError: bounds lo > hi, a control grid finer than the time step, an unknown scheme or control,
            a cost of a control that is not optimised nor enters, no objective term depending on the controls.
    """

    def __init__(self, ops: OperatorParts, p0: Any, *, t_end: float, dt: float, n_controls: int,
                 objective: Sequence[Any], controls: Sequence[str] = ("u",),
                 u_bounds: tuple[float, float] = (0.0, 1.0), B_bounds: tuple[float, float] = (1.0, 64.0),
                 u_fixed: float = 1.0, B_fixed: float | None = None, scheme: str = "cn"):
        if scheme not in SCHEMES:
            raise InputError(f"ControlProblem: scheme={scheme!r} is not one of {', '.join(SCHEMES)}")
        self.ops = ops
        self.scheme = scheme
        self.theta = SCHEMES[scheme]
        try:
            t_end, dt = float(t_end), float(dt)
        except (TypeError, ValueError):
            raise InputError(f"ControlProblem: t_end={t_end!r} and dt={dt!r} must be numbers") from None
        if not (dt > 0 and t_end >= dt):
            raise InputError(f"ControlProblem: need 0 < dt = {dt} <= t_end = {t_end}")
        self.N = int(np.ceil(t_end / dt - 1e-9))
        self.dt = t_end / self.N
        self.times = np.linspace(0.0, t_end, self.N + 1)
        self.grid = ControlGrid(t_end, int(n_controls))
        if self.grid.n > self.N:
            raise InputError(
                f"ControlProblem: the control grid ({self.grid.n} intervals of {self.grid.width:g}) "
                f"is finer than "
                f"the time step dt = {self.dt:g} ({self.N} steps): a control would hold no step and have no "
                "effect. Use n_controls <= the number of steps, or a smaller dt")
        mid = 0.5 * (self.times[1:] + self.times[:-1])
        self.interval = np.minimum((mid / self.grid.width).astype(int), self.grid.n - 1)
        self.steps_of = [np.flatnonzero(self.interval == j) for j in range(self.grid.n)]
        controls = tuple(controls)
        if not controls or set(controls) - {"u", "B"} or len(set(controls)) != len(controls):
            raise InputError(f"ControlProblem: controls={controls!r} must be ('u',), ('B',) or ('u', 'B')")
        if "B" in controls and not ops.depends_on_B:
            raise InputError("ControlProblem: the batch size B does not enter this operator (no "
                             "part multiplies "
                             "1/B: the model has no mini-batch noise), so it cannot be a control; "
                             "use controls=('u',)")
        self.controls = controls
        self.u_bounds = check_bounds(*u_bounds, "u")
        self.B_bounds = check_bounds(*B_bounds, "B")
        if self.B_bounds[0] <= 0:
            raise InputError(f"bounds of B: {self.B_bounds} must be positive (B is a batch size)")
        self.u_fixed = float(u_fixed)
        self.B_fixed = float(ops.coefficients.batch_size if B_fixed is None else B_fixed)
        self.p0 = ops.initial(p0)
        self.density_terms = [t for t in objective if isinstance(t, DensityTerm)]
        self.costs = [t for t in objective if isinstance(t, ControlCost)]
        other = [t for t in objective if not isinstance(t, (DensityTerm, ControlCost))]
        if other or not objective:
            raise InputError(f"ControlProblem: objective must be a non-empty list of "
                             f"symfp.control.objectives "
                             f"terms, got {list(objective)!r}")
        for c in self.costs:
            if c.needs not in controls:
                raise InputError(f"ControlProblem: the cost {c.name!r} depends on {c.needs}, which is not a "
                                 f"control here (controls={controls}); it does not depend on the controls. "
                                 f"Add {c.needs!r} to controls= or drop the cost")
        for t in self.density_terms:
            t.setup(ops, self.times)
        self.n_evaluations = 0

    # ------------------------------------------------------------------ packing
    @property
    def size(self) -> int:
        """Number of optimisation variables."""
        return self.grid.n * len(self.controls)

    def bounds(self) -> list[tuple[float, float]]:
        """Per-variable bounds (for L-BFGS-B)."""
        out: list[tuple[float, float]] = []
        for c in self.controls:
            out += [self.u_bounds if c == "u" else self.B_bounds] * self.grid.n
        return out

    def unpack(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(u, B) per interval from the optimisation vector."""
        x = np.asarray(x, dtype=float).ravel()
        if x.size != self.size:
            raise InputError(f"ControlProblem: expected {self.size} control values, got {x.size}")
        n = self.grid.n
        u = np.full(n, self.u_fixed)
        B = np.full(n, self.B_fixed)
        for k, c in enumerate(self.controls):
            (u if c == "u" else B)[:] = x[k * n:(k + 1) * n]
        return u, B

    def pack(self, u: Any = None, B: Any = None) -> np.ndarray:
        """The optimisation vector of given schedules (the fixed values where None)."""
        n = self.grid.n
        vals = {"u": np.broadcast_to(self.u_fixed if u is None else u, (n,)).astype(float),
                "B": np.broadcast_to(self.B_fixed if B is None else B, (n,)).astype(float)}
        return np.concatenate([vals[c] for c in self.controls])

    # ------------------------------------------------------------------ forward
    def solve(self, u: Any, B: Any = None) -> Trajectory:
        """Forward sweep for the schedules ``u``, ``B`` (per control interval); stores every p^n."""
        n = self.grid.n
        u = np.broadcast_to(np.asarray(u, dtype=float), (n,)).copy()
        B = np.broadcast_to(np.asarray(self.B_fixed if B is None else B, dtype=float), (n,)).copy()
        if np.any(B <= 0) or not np.all(np.isfinite(u)) or not np.all(np.isfinite(B)):
            raise InputError("ControlProblem.solve: the schedules must be finite with B > 0")
        M, dt, th = self.ops.M, self.dt, self.theta
        P = np.empty((self.N + 1, self.ops.n))
        P[0] = self.p0
        lus: list[Any] = []
        RT: list[Any] = []
        for j in range(n):
            K = self.ops.K(u[j], B[j])
            try:
                lus.append(splu(sps.csc_matrix(M + th * dt * K)))
            except RuntimeError as exc:
                raise SolverError(f"ControlProblem: the step matrix of interval {j} (u={u[j]:g}, "
                                  f"B={B[j]:g}) is "
                                  f"singular ({exc}); lower dt") from exc
            RT.append(None if th == 1.0 else (M - (1 - th) * dt * K).tocsr())
        for k in range(self.N):
            j = self.interval[k]
            rhs = M @ P[k] if RT[j] is None else RT[j] @ P[k]
            P[k + 1] = lus[j].solve(rhs)
        if not np.all(np.isfinite(P[-1])):
            raise SolverError("ControlProblem: the forward solve produced non-finite values; lower dt")
        RT = [None if R is None else R.T.tocsr() for R in RT]
        value, terms = self._value(P, u, B)
        self.n_evaluations += 1
        return Trajectory(P, u, B, lus, RT, value, terms)

    def _value(self, P: np.ndarray, u: np.ndarray, B: np.ndarray) -> tuple[float, dict[str, float]]:
        terms: dict[str, float] = {}
        for t in self.density_terms:
            v = t.terminal(P[-1])[0]
            if t.has_running:
                v += sum(t.running(k, P[k])[0] for k in range(1, self.N + 1))
            terms[t.name] = v
        for c in self.costs:
            terms[c.name] = c.value_grad(u, B, self.grid.width)[0]
        return float(sum(terms.values())), terms

    def value(self, x: np.ndarray) -> float:
        """J at the optimisation vector x."""
        u, B = self.unpack(x)
        return self.solve(u, B).value

    # ------------------------------------------------------------------ adjoint
    def gradient_of(self, traj: Trajectory) -> tuple[np.ndarray, np.ndarray]:
        """dJ/du and dJ/dB (per interval) by the discrete adjoint of the trajectory's forward sweep."""
        P, u, B, N, dt, th = traj.P, traj.u, traj.B, self.N, self.dt, self.theta
        M = self.ops.M
        n = self.grid.n
        gu = np.zeros(n)
        gB = np.zeros(n)
        for c in self.costs:
            _, a, b = c.value_grad(u, B, self.grid.width)
            gu += a
            gB += b

        def source(k: int) -> np.ndarray:
            g = np.zeros(self.ops.n)
            for t in self.density_terms:
                if k == N:
                    gt = t.terminal(P[N])[1]
                    if gt is not None:
                        g += gt
                if t.has_running:
                    g += t.running(k, P[k])[1]
            return g

        Lam = np.empty((N + 1, self.ops.n))  # Lam[k] = λ_k, k = 1..N
        rhs = source(N)
        for k in range(N, 0, -1):  # λ_k solves A_{k-1}^T λ_k = rhs_k
            j = self.interval[k - 1]
            Lam[k] = traj.lus[j].solve(rhs, trans="T")
            if k > 1:
                R = traj.RT[j]
                rhs = source(k - 1) + (M.T @ Lam[k] if R is None else R @ Lam[k])
        parts = self.ops.parts
        for j in range(n):
            ks = self.steps_of[j]  # steps k: p^k -> p^{k+1} with λ_{k+1}
            W = th * P[ks + 1] + (1 - th) * P[ks]
            L = Lam[ks + 1]
            du, dB = self.ops.dweights(u[j], B[j])
            for key, Kp in parts.items():
                s = float(np.sum(L * (Kp @ W.T).T))
                gu[j] -= dt * du[key] * s
                gB[j] -= dt * dB[key] * s
        return gu, gB

    def value_and_gradient(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """J and dJ/dx (the optimised controls only)."""
        u, B = self.unpack(x)
        traj = self.solve(u, B)
        gu, gB = self.gradient_of(traj)
        return traj.value, np.concatenate([gu if c == "u" else gB for c in self.controls])

    # ------------------------------------------------------------------ diagnostics
    def path_checks(self, traj: Trajectory) -> list[str]:
        """Messages of the level costs whose level the trajectory's E g(θ_t) path never reaches
        (:meth:`~symfp.control.objectives.LevelTime.path_check`); [] when every level is crossed."""
        out = []
        for t in self.density_terms:
            check = getattr(t, "path_check", None)
            if check is not None:
                msg = check(traj.P, self.times)
                if msg:
                    out.append(msg)
        return out

    def mass(self, p: np.ndarray) -> float:
        """:math:`\\int p = \\mathbf 1^\\top Mp`."""
        return float(np.ones(self.ops.n) @ (self.ops.M @ p))
