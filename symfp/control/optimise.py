r"""Optimisation of the schedules with SciPy on the exact adjoint gradient: L-BFGS-B or SLSQP.

The objective is scaled by :math:`|J(x_0)|` inside the optimiser (so that ``gtol`` and ``ftol`` are
relative); the history keeps every accepted iterate's J and projected-gradient norm
:math:`\|P(x - \nabla J) - x\|_\infty` (zero exactly at a KKT point of the box). A run that stops
for any reason other than SciPy's convergence tests (iteration or evaluation limit, line-search
failure, abnormal termination) gives ``converged = False`` and a :class:`ControlWarning` naming the
reason, the iterations and the projected-gradient norm; :attr:`ControlResult.summary` says it too.

**Budgets** (:mod:`symfp.control.budgets`): linear constraints :math:`a_k\cdot x\;\{\le,=,\ge\}\;v_k`
on :math:`\int u\,dt` and :math:`\int B\,dt`, checked for feasibility together before any solve.

* One "≤" budget (``method="auto"``: L-BFGS-B). L-BFGS-B takes bounds only, so the budget is enforced
  through its multiplier: L-BFGS-B minimises :math:`J + \lambda\,a\cdot x` over the box, and
  :math:`\lambda \ge 0` is found by bracketing and Illinois regula falsi (in :math:`\log\lambda`,
  warm-started) so that the budget is met (:math:`\lambda = 0` when it is inactive).
* Several budgets, or an equality or "≥" one (``method="auto"``: SLSQP). SciPy's SLSQP takes the
  bounds and every budget as linear constraints with their exact (constant) Jacobian rows, the
  objective with its adjoint gradient; its quasi-Newton SQP meets linear constraints to round-off at
  every iterate after the first. ``method="SLSQP"`` forces it for one budget as well.

The multipliers :math:`\mu_k` reported are those that make the Lagrangian
:math:`J + \sum_k\mu_k(a_k\cdot x - v_k)` stationary on the variables strictly inside their bounds
(least squares, :func:`scipy.optimize.lsq_linear`, with :math:`\mu_k \ge 0` for an active "≤",
:math:`\le 0` for an active "≥", free for "=", 0 for an inactive budget), and the KKT residual
:attr:`ControlResult.projected_gradient` is the projected gradient of that Lagrangian (L-BFGS-B: of
:math:`J + \lambda a\cdot x` with the λ found).
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import InputError
from .budgets import Budget, budget_rows, parse_budgets
from .problem import ControlProblem, Trajectory

METHODS = ("auto", "L-BFGS-B", "SLSQP")


class ControlWarning(UserWarning):
    """An optimisation stopped without converging (the schedule found is not known to be optimal)."""


@dataclass(eq=False)
class ControlResult:
    """The optimised schedules and how the optimisation went.

    Attributes:
        u, B: per control interval.
        value: J at the result; terms: J's terms.
        converged: SciPy's convergence test passed (and the budgets hold).
        reason: SciPy's message (or the budget loop's).
        iterations: iterations (all outer rounds together); evaluations: forward+adjoint solves.
        projected_gradient: ∞-norm of the projected gradient of the Lagrangian at the result (unscaled J).
        history: list of dicts (iteration, value, projected_gradient).
        trajectory: the forward solve at the result.
        budgets: ``{name: (used, allowed)}``, name the control ("u", "B") or, with several budgets on
            one control, the budget's label.
        multipliers: ``{name: μ}`` of the budgets (see the module docstring).
        method: "L-BFGS-B" or "SLSQP".
        path_notes: the level costs whose level the result's path never reaches (see
            :meth:`~symfp.control.objectives.LevelTime.path_check`).
    """

    u: np.ndarray
    B: np.ndarray
    value: float
    terms: dict[str, float]
    converged: bool
    reason: str
    iterations: int
    evaluations: int
    projected_gradient: float
    history: list[dict[str, float]] = field(default_factory=list)
    trajectory: Trajectory | None = None
    budgets: dict[str, tuple[float, float]] = field(default_factory=dict)
    multipliers: dict[str, float] = field(default_factory=dict)
    method: str = "L-BFGS-B"
    path_notes: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """One line: converged or NOT, with reason, iterations and the projected-gradient norm."""
        state = "converged" if self.converged else "NOT converged (the schedule is not shown optimal)"
        return (f"{self.method} {state}: {self.reason}; {self.iterations} iterations, {self.evaluations} "
                f"gradient evaluations, projected gradient {self.projected_gradient:.3g}, "
                f"J = {self.value:.8g}")


def projected_gradient(x: np.ndarray, g: np.ndarray, bounds: list[tuple[float, float]]) -> float:
    r""":math:`\|\min(\max(x - g, lo), hi) - x\|_\infty`."""
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    return float(np.abs(np.clip(x - g, lo, hi) - x).max()) if x.size else 0.0


def _names(budgets: list[Budget]) -> list[str]:
    """The key of each budget in :attr:`ControlResult.budgets`: the control, or the label if repeated."""
    count = {c: sum(b.of == c for b in budgets) for c in ("u", "B")}
    return [b.of if count[b.of] == 1 else b.label for b in budgets]


def _choose(method: str, budgets: list[Budget]) -> str:
    if method not in METHODS:
        raise InputError(f"optimise: method={method!r} is not one of {', '.join(METHODS)}")
    simple = len(budgets) <= 1 and all(b.kind == "<=" for b in budgets)
    if method == "L-BFGS-B" and not simple:
        raise InputError("optimise: method='L-BFGS-B' enforces at most one '<=' budget (by its multiplier); "
                         f"got {', '.join(b.label for b in budgets)}. Use method='SLSQP' (or 'auto')")
    if method == "auto":
        return "L-BFGS-B" if simple else "SLSQP"
    return method


def multipliers(x: np.ndarray, g: np.ndarray, rows: list[tuple[Budget, np.ndarray]],
                bounds: list[tuple[float, float]], *, tol: float = 1e-6) -> np.ndarray:
    r"""Budget multipliers :math:`\mu` that make :math:`g + \sum_k\mu_ka_k` vanish on the free variables.

    A budget with slack above ``tol``·max(|v|, 1) is inactive (μ = 0); an active "≤" has μ ≥ 0, "≥"
    μ ≤ 0, "=" any sign (the sign conditions of the KKT system for a minimum).
    """
    from scipy.optimize import lsq_linear

    if not rows:
        return np.zeros(0)
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    span = np.maximum(hi - lo, 1e-300)
    free = (x - lo > 1e-9 * span) & (hi - x > 1e-9 * span)
    sign_range = {"<=": (0.0, np.inf), ">=": (-np.inf, 0.0), "==": (-np.inf, np.inf)}
    active = [k for k, (b, a) in enumerate(rows)
              if b.kind == "==" or abs(a @ x - b.value) <= tol * max(abs(b.value), 1.0)]
    mu = np.zeros(len(rows))
    if not active or not free.any():
        return mu
    A = np.array([rows[k][1] for k in active]).T[free]
    lb = np.array([sign_range[rows[k][0].kind][0] for k in active])
    ub = np.array([sign_range[rows[k][0].kind][1] for k in active])
    mu[active] = lsq_linear(A, -g[free], bounds=(lb, ub)).x
    return mu


class _Run:
    """The state shared by the optimiser's callbacks: cache of the last evaluation, history, bar."""

    def __init__(self, problem: ControlProblem, bounds: list[tuple[float, float]], scale: float,
                 progress: bool, method: str):
        self.problem, self.bounds, self.scale = problem, bounds, scale
        self.cache: dict[str, Any] = {}
        self.history: list[dict[str, float]] = []
        self.iterations = 0
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=None, desc=f"control {method}", file=sys.stderr, leave=False)

    def evaluate(self, xv: np.ndarray) -> tuple[float, np.ndarray]:
        J, g = self.problem.value_and_gradient(xv)
        self.cache.update(x=xv.copy(), J=J, g=g)
        return J, g

    def record(self, xk: np.ndarray, shift: np.ndarray | None = None) -> None:
        self.iterations += 1
        if np.array_equal(self.cache.get("x"), xk):
            J, g = self.cache["J"], self.cache["g"]
        else:  # SciPy passes the last evaluated point except after a line search's last trial
            J, g = self.problem.value_and_gradient(xk)
        if shift is not None:
            g = g + shift
        self.history.append({"iteration": self.iterations, "value": float(J),
                             "projected_gradient": projected_gradient(xk, g, self.bounds)})
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(J=f"{J:.6g}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _lbfgsb(run: _Run, x: np.ndarray, rows: list[tuple[Budget, np.ndarray]], g0: np.ndarray, *,
            maxiter: int, gtol: float, ftol: float, budget_tol: float) -> tuple[Any, np.ndarray, float, str]:
    """L-BFGS-B, with the multiplier search of one '<=' budget; returns (result, x, λ, note)."""
    from scipy.optimize import minimize

    a_row = rows[0][1] if rows else None

    def inner(x_start: np.ndarray, lam: float) -> Any:
        """L-BFGS-B on J + lam·(a·x) from x_start."""
        def fun(xv: np.ndarray) -> tuple[float, np.ndarray]:
            J, g = run.evaluate(xv)
            if a_row is not None:
                return (J + lam * (a_row @ xv)) / run.scale, (g + lam * a_row) / run.scale
            return J / run.scale, g / run.scale

        def callback(xk: np.ndarray, *_: Any) -> None:
            run.record(xk, None if a_row is None else lam * a_row)

        return minimize(fun, x_start, jac=True, method="L-BFGS-B", bounds=run.bounds, callback=callback,
                        options={"maxiter": maxiter, "gtol": gtol, "ftol": ftol, "maxcor": 20})

    lam = 0.0
    res = inner(x, 0.0)
    x = res.x
    note = ""
    if not rows:
        return res, x, lam, note
    b, a = rows[0]
    allowed = b.value
    tol = budget_tol * max(abs(allowed), 1.0)
    if a @ x <= allowed + tol:
        return res, x, lam, note
    # the budget is active: find the multiplier lam >= 0 with a·x(lam) = allowed. usage(λ) = a·x(λ)
    # falls as λ grows (close to a power law): bracket in log λ by factors of 4, then Illinois regula
    # falsi on log usage − log allowed, inner solves warm-started
    hi_l = max(np.abs(g0).max() / max(np.abs(a).max(), 1e-300), 1e-12)
    lo_l, lo_x, lo_use = 0.0, x, a @ x
    for _ in range(60):
        r = inner(lo_x, hi_l)
        if a @ r.x <= allowed + tol:
            res, x = r, r.x
            break
        lo_l, lo_x, lo_use, hi_l = hi_l, r.x, a @ r.x, 4 * hi_l
    if lo_l == 0.0:  # the first λ was already feasible: bracket from below
        lo_l = hi_l / 4
        for _ in range(60):
            r = inner(x, lo_l)
            if a @ r.x > allowed + tol:
                lo_x, lo_use = r.x, a @ r.x
                break
            hi_l, res, x = lo_l, r, r.x
            lo_l /= 4

    def resid(use: float) -> float:
        return float(np.log(max(use, 1e-300)) - np.log(max(allowed, 1e-300)))

    f_lo, f_hi = resid(lo_use), resid(a @ x)
    side = 0
    for _ in range(60):
        if abs(a @ x - allowed) <= tol or lo_l <= 0 or hi_l / lo_l < 1 + 1e-12:
            break
        s_lo, s_hi = np.log(lo_l), np.log(hi_l)
        s_new = s_hi - f_hi * (s_hi - s_lo) / (f_hi - f_lo) if f_hi != f_lo else 0.5 * (s_lo + s_hi)
        s_new = float(np.clip(s_new, s_lo + 1e-3 * (s_hi - s_lo), s_hi - 1e-3 * (s_hi - s_lo)))
        r = inner(x, float(np.exp(s_new)))
        f_new = resid(a @ r.x)
        if a @ r.x > allowed + tol:
            lo_l, f_lo = float(np.exp(s_new)), f_new
            f_hi = f_hi / 2 if side == -1 else f_hi
            side = -1
        else:
            hi_l, f_hi, res, x = float(np.exp(s_new)), f_new, r, r.x
            f_lo = f_lo / 2 if side == 1 else f_lo
            side = 1
    lam = hi_l
    if abs(a @ x - allowed) > tol:
        note = f"; the budget multiplier search stopped with ∫{b.of} dt = {a @ x:.6g} (allowed {allowed:g})"
    return res, x, lam, note


def _slsqp(run: _Run, x: np.ndarray, rows: list[tuple[Budget, np.ndarray]], *, maxiter: int,
           ftol: float) -> Any:
    """SLSQP with the bounds and every budget as a linear constraint (exact Jacobian rows)."""
    from scipy.optimize import minimize

    cons = []
    for b, a in rows:
        s = max(abs(b.value), 1.0)  # constraints of order one
        sign = -1.0 if b.kind == "<=" else 1.0  # SciPy's 'ineq' is fun(x) >= 0
        cons.append({"type": "eq" if b.kind == "==" else "ineq",
                     "fun": lambda xv, a=a, v=b.value, sg=sign, s=s: sg * (a @ xv - v) / s,
                     "jac": lambda xv, a=a, sg=sign, s=s: sg * a / s})

    def fun(xv: np.ndarray) -> tuple[float, np.ndarray]:
        J, g = run.evaluate(xv)
        return J / run.scale, g / run.scale

    def callback(xk: np.ndarray) -> None:
        run.record(xk)

    return minimize(fun, x, jac=True, method="SLSQP", bounds=run.bounds, constraints=cons,
                    callback=callback, options={"maxiter": maxiter, "ftol": ftol})


def _on_rank_zero(problem: ControlProblem, comm: Any, kw: dict[str, Any]) -> ControlResult:
    """Rank 0 optimises; the result (without its LU factors) is broadcast; each rank re-solves at it."""
    payload: tuple[str, Any] | None = None
    own = None
    if comm.Get_rank() == 0:
        try:
            own = optimise(problem, comm=None, **{**kw, "warn": False})
            payload = ("ok", replace(own, trajectory=None))
        except Exception as exc:  # raised on every rank below, not only on rank 0
            payload = ("error", exc)
    kind, obj = comm.bcast(payload, root=0)
    if kind == "error":
        raise obj
    res = own if own is not None else replace(obj, trajectory=problem.solve(obj.u, obj.B))
    if kw.get("warn", True) and (not res.converged or res.path_notes):
        warnings.warn(res.summary, ControlWarning, stacklevel=3)
    return res


def optimise(problem: ControlProblem, x0: Any = None, *, maxiter: int = 500, gtol: float = 1e-7,
             ftol: float = 1e-12, budget: Any = None, budget_tol: float = 1e-5, method: str = "auto",
             progress: bool = True, warn: bool = True, comm: Any = None) -> ControlResult:
    """Minimise the problem's J over the controls in their bounds and budgets (exact gradients).

    Args:
        problem: a :class:`~symfp.control.problem.ControlProblem`.
        x0: the starting controls (the optimisation vector; default: the upper bound of u, the
            geometric mean of B's bounds).
        maxiter: iterations (L-BFGS-B: per inner solve when a budget is active).
        gtol, ftol: L-BFGS-B's ``pgtol`` and ``ftol`` on the scaled objective J/|J(x0)|; SLSQP uses
            ``ftol`` (its only test: the change of the scaled objective).
        budget: budgets on ∫u dt and ∫B dt (see :mod:`symfp.control.budgets`): ``{"u": U}``,
            ``{"u": U, "B": ("==", S)}``, ...
        budget_tol: allowed relative violation of a budget.
        method: "auto" (L-BFGS-B for at most one '<=' budget, else SLSQP), "L-BFGS-B" or "SLSQP".
        progress: tqdm bar on stderr.
        warn: emit a :class:`ControlWarning` when not converged or a level cost never reaches its level.
        comm: an mpi4py communicator: with several ranks, rank 0 optimises and every rank returns the
            broadcast result (:mod:`symfp.control.parallel`); None: this process alone.

    Raises:
        InputError: budgets no schedule in the bounds can meet (together); the objective does not depend
            on the controls (zero gradient at x0 while J is non-zero); an unknown method.
    """
    if comm is not None and comm.Get_size() > 1:
        return _on_rank_zero(problem, comm, dict(x0=x0, maxiter=maxiter, gtol=gtol, ftol=ftol, budget=budget,
                                                 budget_tol=budget_tol, method=method, progress=progress,
                                                 warn=warn))
    bounds = problem.bounds()
    budgets = parse_budgets(budget)
    rows = budget_rows(problem, budgets)
    method = _choose(method, budgets)
    if x0 is None:
        x0 = problem.pack(problem.u_bounds[1], float(np.sqrt(np.prod(problem.B_bounds))))
    x = np.clip(np.asarray(x0, dtype=float).ravel(), [b[0] for b in bounds], [b[1] for b in bounds])
    traj0 = problem.solve(*problem.unpack(x))
    J0 = traj0.value
    gu0, gB0 = problem.gradient_of(traj0)
    g0 = np.concatenate([gu0 if c == "u" else gB0 for c in problem.controls])
    if warn:
        for msg in problem.path_checks(traj0):
            warnings.warn(f"optimise, at the start x0: {msg}", ControlWarning, stacklevel=2)
    # relative sensitivity max_j |∂J/∂x_j|·scale_j/|J|: at round-off level the objective does not depend
    # on the controls (the discrete solution's round-off alone gives ~1e-12)
    span = np.array([max(abs(xv), hi - lo) for xv, (lo, hi) in zip(x, bounds, strict=True)])
    sensitivity = float(np.abs(g0 * span).max()) / max(abs(J0), 1e-300) if abs(J0) > 0 else float(
        np.abs(g0 * span).max())
    if sensitivity <= 1e-9:
        raise InputError(
            f"optimise: the objective does not depend on the controls (relative sensitivity "
            f"{sensitivity:.1e} at the start, round-off level), e.g. an observable the schedule "
            "cannot change (the mean under a linear drift does not see the noise, so not B); "
            "change the objective")
    run = _Run(problem, bounds, max(abs(J0), 1e-300), progress, method)
    try:
        if method == "L-BFGS-B":
            res, x, lam, note = _lbfgsb(run, x, rows, g0, maxiter=maxiter, gtol=gtol, ftol=ftol,
                                        budget_tol=budget_tol)
        else:
            res = _slsqp(run, x, rows, maxiter=maxiter, ftol=ftol)
            x, note = np.clip(res.x, [b[0] for b in bounds], [b[1] for b in bounds]), ""
    finally:
        run.close()
    traj = problem.solve(*problem.unpack(x))
    gu, gB = problem.gradient_of(traj)
    g = np.concatenate([gu if c == "u" else gB for c in problem.controls])
    names = _names([b for b, _ in rows])
    budgets_used = {name: (float(a @ x), b.value) for name, (b, a) in zip(names, rows, strict=True)}
    budget_ok = all(b.residual(float(a @ x)) <= budget_tol * max(abs(b.value), 1.0) for b, a in rows)
    if method == "L-BFGS-B":
        mu = np.array([lam] * len(rows))
    else:
        mu = multipliers(x, g, rows, bounds, tol=max(budget_tol, 1e-6))
    shift = sum((m * a for m, (_, a) in zip(mu, rows, strict=True)), np.zeros_like(x))
    pg = projected_gradient(x, g + shift, bounds)
    converged = bool(res.success) and budget_ok and not note
    reason = str(res.message) + note
    if not budget_ok and not note:
        reason += "; a budget is violated: " + ", ".join(
            f"{b.label} (used {a @ x:.6g})" for b, a in rows
            if b.residual(float(a @ x)) > budget_tol * max(abs(b.value), 1.0))
    path_notes = problem.path_checks(traj)
    if path_notes:
        reason += "; at the result: " + "; ".join(path_notes)
    if rows:
        reason += "; budget multipliers " + ", ".join(
            f"{name}: {m:.4g}" for name, m in zip(names, mu, strict=True))
    out = ControlResult(u=traj.u, B=traj.B, value=traj.value, terms=traj.terms, converged=converged,
                        reason=reason, iterations=run.iterations, evaluations=problem.n_evaluations,
                        projected_gradient=pg, history=run.history, trajectory=traj, budgets=budgets_used,
                        multipliers={name: float(m) for name, m in zip(names, mu, strict=True)},
                        method=method, path_notes=path_notes)
    if warn and (not converged or path_notes):  # a level never reached is said even when converged
        warnings.warn(out.summary, ControlWarning, stacklevel=2)
    return out
