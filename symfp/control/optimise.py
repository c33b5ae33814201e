r"""Optimisation of the schedules: SciPy's L-BFGS-B with bounds on the exact adjoint gradient.

The objective is scaled by :math:`|J(x_0)|` inside the optimiser (so that ``gtol`` and ``ftol`` are
relative); the history keeps every accepted iterate's J and projected-gradient norm
:math:`\|P(x - \nabla J) - x\|_\infty` (zero exactly at a KKT point of the box). A run that stops
for any reason other than SciPy's convergence tests (iteration or evaluation limit, line-search
failure, abnormal termination) gives ``converged = False`` and a :class:`ControlWarning` naming the
reason, the iterations and the projected-gradient norm; :attr:`ControlResult.summary` says it too.

**Budgets.** ``budget={"u": U}`` (:math:`\int_0^T u\,dt \le U`) or ``{"B": S}``
(:math:`\int_0^T B\,dt \le S`, samples in units of :math:`\eta_{\max}`), one at a time, is a linear
inequality :math:`a\cdot x \le U`; L-BFGS-B takes bounds only, so it is enforced through its
multiplier: L-BFGS-B minimises :math:`J + \lambda\,a\cdot x` over the box, and :math:`\lambda \ge 0` is
found by bracketing and Illinois regula falsi (in :math:`\log\lambda`, warm-started) so that the budget is met
(:math:`\lambda = 0` when it is inactive). The KKT residual reported is the projected gradient of
:math:`J + \lambda a\cdot x`. A budget that no schedule inside the bounds meets (its lower bound
already exceeds it) raises :class:`~symfp.errors.InputError` before any solve.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from .problem import ControlProblem, Trajectory


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
        iterations: L-BFGS-B iterations (all outer rounds together); evaluations: forward+adjoint solves.
        projected_gradient: ∞-norm of the projected gradient at the result (unscaled J).
        history: list of dicts (iteration, value, projected_gradient).
        trajectory: the forward solve at the result.
        budgets: ``{name: (used, allowed)}``.
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

    @property
    def summary(self) -> str:
        """One line: converged or NOT, with reason, iterations and the projected-gradient norm."""
        state = "converged" if self.converged else "NOT converged (the schedule is not shown optimal)"
        return (f"L-BFGS-B {state}: {self.reason}; {self.iterations} iterations, {self.evaluations} "
                f"gradient evaluations, projected gradient {self.projected_gradient:.3g}, "
                f"J = {self.value:.8g}")


def projected_gradient(x: np.ndarray, g: np.ndarray, bounds: list[tuple[float, float]]) -> float:
    r""":math:`\|\min(\max(x - g, lo), hi) - x\|_\infty`."""
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    return float(np.abs(np.clip(x - g, lo, hi) - x).max()) if x.size else 0.0


def _budget_rows(problem: ControlProblem,
                 budget: Mapping[str, float] | None) -> list[tuple[str, np.ndarray, float]]:
    """Each budget as (name, a, allowed) with the constraint a·x <= allowed."""
    rows = []
    n, w = problem.grid.n, problem.grid.width
    if budget and len(budget) > 1:
        raise InputError(f"optimise: one budget at a time, got {dict(budget)}; drop all but one")
    for name, allowed in (budget or {}).items():
        if name not in ("u", "B"):
            raise InputError(f"optimise: budget key {name!r} must be 'u' (∫u dt) or 'B' (∫B dt)")
        if name not in problem.controls:
            raise InputError(f"optimise: a budget on {name} but {name} is not a control "
                             f"(controls={problem.controls}); it would not depend on the controls")
        k = problem.controls.index(name)
        a = np.zeros(problem.size)
        a[k * n:(k + 1) * n] = w
        lo = (problem.u_bounds if name == "u" else problem.B_bounds)[0]
        if lo * problem.grid.t_end > float(allowed) * (1 + 1e-12):
            raise InputError(
                f"optimise: the budget ∫{name} dt <= {allowed:g} cannot be met by any schedule within the "
                f"bounds: the smallest, {name} = {lo:g} throughout, uses {lo * problem.grid.t_end:g}. Raise "
                f"the budget or lower the bound of {name}")
        rows.append((name, a, float(allowed)))
    return rows


def optimise(problem: ControlProblem, x0: Any = None, *, maxiter: int = 500, gtol: float = 1e-7,
             ftol: float = 1e-12, budget: Mapping[str, float] | None = None, budget_tol: float = 1e-5,
             progress: bool = True, warn: bool = True) -> ControlResult:
    """Minimise the problem's J over the controls in their bounds (L-BFGS-B, exact gradients).

    Args:
        problem: a :class:`~symfp.control.problem.ControlProblem`.
        x0: the starting controls (the optimisation vector; default: the upper bound of u, the
            geometric mean of B's bounds).
        maxiter: L-BFGS-B iterations (per inner solve when a budget is active).
        gtol, ftol: L-BFGS-B's ``pgtol`` and ``ftol`` on the scaled objective J/|J(x0)|.
        budget: ``{"u": U}`` or ``{"B": S}`` (see the module docstring).
        budget_tol: allowed relative violation of a budget.
        progress: tqdm bar on stderr.
        warn: emit a :class:`ControlWarning` when not converged.

    Raises:
        InputError: a budget no schedule in the bounds can meet; the objective does not depend on the
            controls (zero gradient at x0 while J is non-zero).
    """
    from scipy.optimize import minimize

    bounds = problem.bounds()
    rows = _budget_rows(problem, budget)
    if x0 is None:
        x0 = problem.pack(problem.u_bounds[1], float(np.sqrt(np.prod(problem.B_bounds))))
    x = np.clip(np.asarray(x0, dtype=float).ravel(), [b[0] for b in bounds], [b[1] for b in bounds])
    J0, g0 = problem.value_and_gradient(x)
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
    scale = max(abs(J0), 1e-300)
    history: list[dict[str, float]] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=None, desc="control L-BFGS-B", file=sys.stderr, leave=False)
    cache: dict[str, Any] = {}
    total_it = 0
    a_row = rows[0][1] if rows else None

    def inner(x_start: np.ndarray, lam: float) -> Any:
        """L-BFGS-B on J + lam·(a·x) from x_start."""
        def fun(xv: np.ndarray) -> tuple[float, np.ndarray]:
            J, g = problem.value_and_gradient(xv)
            cache.update(x=xv.copy(), J=J, g=g)
            if a_row is not None:
                return (J + lam * (a_row @ xv)) / scale, (g + lam * a_row) / scale
            return J / scale, g / scale

        def callback(xk: np.ndarray, *_: Any) -> None:
            nonlocal total_it
            total_it += 1
            if np.array_equal(cache.get("x"), xk):
                J, g = cache["J"], cache["g"]
            else:  # pragma: no cover - SciPy passes the last evaluated point
                J, g = problem.value_and_gradient(xk)
            if a_row is not None:
                g = g + lam * a_row
            history.append({"iteration": total_it, "value": float(J),
                            "projected_gradient": projected_gradient(xk, g, bounds)})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(J=f"{J:.6g}")

        return minimize(fun, x_start, jac=True, method="L-BFGS-B", bounds=bounds, callback=callback,
                        options={"maxiter": maxiter, "gtol": gtol, "ftol": ftol, "maxcor": 20})

    lam = 0.0
    res = inner(x, 0.0)
    x = res.x
    budget_note = ""
    if rows:
        name, a, allowed = rows[0]
        tol = budget_tol * max(abs(allowed), 1.0)
        if a @ x > allowed + tol:
            # the budget is active: find the multiplier lam >= 0 with a·x(lam) = allowed (usage falls as
            # lam grows); bracket by doubling, then bisect in log lam with the inner solves warm-started
            # usage(λ) = a·x(λ) falls as λ grows (close to a power law): bracket in log λ by factors of 4,
            # then Illinois regula falsi on log usage − log allowed, inner solves warm-started
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
                budget_note = (f"; the budget multiplier search stopped with ∫{name} dt = {a @ x:.6g} "
                               f"(allowed {allowed:g})")
    if bar is not None:
        bar.close()
    traj = problem.solve(*problem.unpack(x))
    gu, gB = problem.gradient_of(traj)
    g = np.concatenate([gu if c == "u" else gB for c in problem.controls])
    budgets = {name: (float(a @ x), allowed) for name, a, allowed in rows}
    budget_ok = all(used <= allowed + budget_tol * max(abs(allowed), 1.0)
                    for used, allowed in budgets.values())
    # the projected gradient of the Lagrangian J + lam·(a·x − allowed) is the KKT residual
    pg = projected_gradient(x, g + lam * a_row if a_row is not None else g, bounds)
    converged = bool(res.success) and budget_ok and not budget_note
    reason = str(res.message) + budget_note
    if rows:
        reason += f"; budget multiplier {lam:.4g}"
    out = ControlResult(u=traj.u, B=traj.B, value=traj.value, terms=traj.terms, converged=converged,
                        reason=reason, iterations=total_it, evaluations=problem.n_evaluations,
                        projected_gradient=pg, history=history, trajectory=traj, budgets=budgets)
    if not converged and warn:
        warnings.warn(out.summary, ControlWarning, stacklevel=2)
    return out
