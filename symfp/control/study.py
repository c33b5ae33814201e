r"""A schedule study: optimise, compare with families of the same budget, verify each on particles.

:func:`schedule_study` is what ``symfp control`` and the gallery entries run: build the operator parts
and the :class:`~symfp.control.problem.ControlProblem` from a spec's names, optimise
(:func:`~symfp.control.optimise.optimise`: L-BFGS-B, or SLSQP for several budgets), build the
constant, cosine and 1/(1+at) schedules with the same budget :math:`\int u\,dt` as the optimum
(:func:`~symfp.control.schedules.match_budget`) — or, when B is the only control, the constant and
the best exponential-growth batch schedules with the same :math:`\int B\,dt`
(:func:`~symfp.control.schedules.match_batch_budget`) — evaluate each on the PDE and on exact-SGD
particles (:func:`~symfp.control.verify.verify`), and return plain numbers (JSON-ready) plus the
objects for figures. It is serial: refused under several MPI ranks (:mod:`symfp.control.parallel`).

Spec names used (see :mod:`symfp.app.control`): ``model``, ``params``, ``order``, ``mesh``, ``p0``,
``t_end``, ``dt``, ``objective`` (a list of :mod:`symfp.control.objectives` terms), ``control``
(``dict(n_controls=, controls=("u",), u_bounds=, B_bounds=, budget=None, scheme="cn", x0=None,
maxiter=500, stabilisation=None, method="auto")``), ``compare`` (families, default constant, cosine,
inverse_time; for B alone constant, exponential), ``particles`` (``dict(n=, seed=)``), ``backend`` (the
assembler of :func:`~symfp.control.operators.operator_parts`: "auto" (default: dolfinx when importable, else
scikit-fem), "dolfinx" or "skfem").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import InputError
from .operators import operator_parts
from .optimise import optimise
from .parallel import require_serial
from .problem import ControlProblem
from .schedules import match_batch_budget, match_budget
from .verify import verify

CONTROL_KEYS = {"n_controls", "controls", "u_bounds", "B_bounds", "budget", "scheme", "x0", "maxiter",
                "u_fixed", "B_fixed", "stabilisation", "method"}
FAMILIES = ("constant", "cosine", "inverse_time")
#: batch-size families compared when B is the only control (same ∫B dt as the optimum)
BATCH_FAMILIES = ("constant", "exponential")


def _get(ns: Mapping[str, Any], name: str) -> Any:
    value = ns.get(name)
    if value is None:
        raise InputError(f"control: the spec does not define `{name}`; a control study needs model, mesh, "
                         "p0, t_end, dt, objective and control=dict(n_controls=...)")
    return value() if callable(value) and name == "mesh" else value


def build_problem(ns: Mapping[str, Any]) -> tuple[Any, ControlProblem, dict[str, Any]]:
    """The numeric model, the problem and the control options from a spec namespace."""
    model = _get(ns, "model")
    params = ns.get("params") or {}
    if params:
        model = model.subs(params)
    opts = dict(ns.get("control") or {})
    unknown = set(opts) - CONTROL_KEYS
    if unknown:
        raise InputError(f"control: control= has unknown keys {sorted(unknown)}; "
                         f"known: {sorted(CONTROL_KEYS)}")
    if "n_controls" not in opts:
        raise InputError("control: control= must give n_controls (the number of control intervals)")
    objective = _get(ns, "objective")
    if not isinstance(objective, (list, tuple)):
        objective = [objective]
    ops = operator_parts(model, _get(ns, "mesh"), order=int(ns.get("order", 1) or 1),
                         backend=str(ns.get("backend") or "auto"), stabilisation=opts.get("stabilisation"))
    names = ("controls", "u_bounds", "B_bounds", "scheme", "u_fixed", "B_fixed")
    kw = {k: opts[k] for k in names if k in opts}
    pr = ControlProblem(ops, _get(ns, "p0"), t_end=float(_get(ns, "t_end")), dt=float(_get(ns, "dt")),
                        n_controls=int(opts["n_controls"]), objective=list(objective), **kw)
    return model, pr, opts


def _batch_family(pr: ControlProblem, family: str, budget: float) -> np.ndarray:
    r"""The member of a batch family with :math:`\int B\,dt` = budget; "exponential": the growth rate r
    that minimises the PDE objective (bounded scalar search over :math:`|r|T \le 2\ln(\text{hi}/\text{lo})`),
    so that the optimum is compared with the best exponential schedule, not an arbitrary one."""
    from scipy.optimize import minimize_scalar

    lo, hi = pr.B_bounds
    if family != "exponential":
        return match_batch_budget(family, pr.grid, budget, lo=lo, hi=hi)
    r_max = 2 * np.log(max(hi / lo, 1.0 + 1e-9)) / pr.grid.t_end

    def value(r: float) -> float:
        return pr.solve(pr.u_fixed, match_batch_budget("exponential", pr.grid, budget, lo=lo, hi=hi,
                                                       rate=r)).value

    best = minimize_scalar(value, bounds=(-r_max, r_max), method="bounded", options={"xatol": 1e-3 * r_max})
    return match_batch_budget("exponential", pr.grid, budget, lo=lo, hi=hi, rate=float(best.x))


def schedule_study(ns: Mapping[str, Any], *, n_particles: int | None = None, progress: bool = False,
                   verify_particles: bool = True) -> dict[str, Any]:
    """Optimise, compare with the families of the same budget and verify on particles.

    Returns:
        ``{"result": ControlResult, "problem": ..., "schedules": {name: {"u", "B", "predicted",
        "particles"...}}, "summary": {...}}`` — the ``summary`` entry is JSON-ready.
    """
    require_serial("control")
    model, pr, opts = build_problem(ns)
    x0 = opts.get("x0")
    if x0 is not None and np.ndim(x0) == 0:
        x0 = pr.pack(float(x0)) if pr.controls == ("u",) else np.full(pr.size, float(x0))
    budget = opts.get("budget")
    res = optimise(pr, x0, budget=budget, progress=progress, maxiter=int(opts.get("maxiter", 500)),
                   method=str(opts.get("method", "auto")))
    schedules: dict[str, dict[str, Any]] = {"optimal": {"u": res.u, "B": res.B}}
    if "u" in pr.controls:
        used = pr.grid.integral(res.u)
        for fam in ns.get("compare") or FAMILIES:
            u = match_budget(fam, pr.grid, used, lo=pr.u_bounds[0], hi=pr.u_bounds[1])
            schedules[fam] = {"u": u, "B": res.B}
    if pr.controls == ("B",):
        used_b = pr.grid.integral(res.B)
        for fam in ns.get("compare") or BATCH_FAMILIES:
            schedules[fam] = {"u": res.u, "B": _batch_family(pr, fam, used_b)}
    part = dict(ns.get("particles") or {})
    n = int(n_particles or part.get("n", 20_000))
    seed = int(part.get("seed", 0))
    for name, s in schedules.items():
        traj = res.trajectory if name == "optimal" else pr.solve(s["u"], s["B"])
        s["objective"] = traj.value
        s["terms"] = traj.terms
        s["density"] = traj.final
        if verify_particles:
            v = verify(model, pr, s["u"], s["B"] if "B" in pr.controls else None, name=name, n_particles=n,
                       seed=seed, init=part.get("init"))
            s["verification"] = v
    summary = {
        "converged": res.converged, "optimiser": res.summary, "iterations": res.iterations,
        "projected_gradient": res.projected_gradient, "objective": res.value,
        "budget_u": pr.grid.integral(res.u), "budget_B": pr.grid.integral(res.B),
        "budgets": {k: list(v) for k, v in res.budgets.items()}, "multipliers": res.multipliers,
        "method": res.method,
        "stabilisation": pr.ops.stabilisation.label if pr.ops.stabilisation is not None else None,
        "grid": pr.grid.edges.tolist(), "dt": pr.dt, "scheme": pr.scheme,
        "history": res.history, "undershoot": res.trajectory.undershoot,
        "parts": [list(k) for k in pr.ops.parts],
        "schedules": {name: {"u": np.asarray(s["u"]).tolist(), "B": np.asarray(s["B"]).tolist(),
                             "objective": s["objective"], "terms": s["terms"],
                             **({"particles": s["verification"].as_dict()} if "verification" in s else {})}
                      for name, s in schedules.items()},
    }
    return {"result": res, "problem": pr, "model": model, "schedules": schedules, "summary": summary}
