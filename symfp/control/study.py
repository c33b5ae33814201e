r"""A schedule study: optimise, compare with families of the same budget, verify each on particles.

:func:`schedule_study` is what ``symfp control`` and the gallery entry run: build the operator parts
and the :class:`~symfp.control.problem.ControlProblem` from a spec's names, optimise with L-BFGS-B,
build the constant, cosine and 1/(1+at) schedules with the same budget :math:`\int u\,dt` as the
optimum (:func:`~symfp.control.schedules.match_budget`), evaluate each on the PDE and on exact-SGD
particles (:func:`~symfp.control.verify.verify`), and return plain numbers (JSON-ready) plus the
objects for figures.

Spec names used (see :mod:`symfp.app.control`): ``model``, ``params``, ``order``, ``mesh``, ``p0``,
``t_end``, ``dt``, ``objective`` (a list of :mod:`symfp.control.objectives` terms), ``control``
(``dict(n_controls=, controls=("u",), u_bounds=, B_bounds=, budget=None, scheme="cn", x0=None,
maxiter=500)``), ``compare`` (families, default constant, cosine, inverse_time), ``particles``
(``dict(n=, seed=)``), ``backend`` (the assembler of :func:`~symfp.control.operators.operator_parts`:
"auto" (default: dolfinx when importable, else scikit-fem), "dolfinx" or "skfem").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import InputError
from .operators import operator_parts
from .optimise import optimise
from .problem import ControlProblem
from .schedules import match_budget
from .verify import verify

CONTROL_KEYS = {"n_controls", "controls", "u_bounds", "B_bounds", "budget", "scheme", "x0", "maxiter",
                "u_fixed", "B_fixed"}
FAMILIES = ("constant", "cosine", "inverse_time")


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
                         backend=str(ns.get("backend") or "auto"))
    names = ("controls", "u_bounds", "B_bounds", "scheme", "u_fixed", "B_fixed")
    kw = {k: opts[k] for k in names if k in opts}
    pr = ControlProblem(ops, _get(ns, "p0"), t_end=float(_get(ns, "t_end")), dt=float(_get(ns, "dt")),
                        n_controls=int(opts["n_controls"]), objective=list(objective), **kw)
    return model, pr, opts


def schedule_study(ns: Mapping[str, Any], *, n_particles: int | None = None, progress: bool = False,
                   verify_particles: bool = True) -> dict[str, Any]:
    """Optimise, compare with the families of the same budget and verify on particles.

    Returns:
        ``{"result": ControlResult, "problem": ..., "schedules": {name: {"u", "B", "predicted",
        "particles"...}}, "summary": {...}}`` — the ``summary`` entry is JSON-ready.
    """
    model, pr, opts = build_problem(ns)
    x0 = opts.get("x0")
    if x0 is not None and np.ndim(x0) == 0:
        x0 = pr.pack(float(x0)) if pr.controls == ("u",) else np.full(pr.size, float(x0))
    budget = opts.get("budget")
    res = optimise(pr, x0, budget=budget, progress=progress, maxiter=int(opts.get("maxiter", 500)))
    schedules: dict[str, dict[str, Any]] = {"optimal": {"u": res.u, "B": res.B}}
    if "u" in pr.controls:
        used = pr.grid.integral(res.u)
        for fam in ns.get("compare") or FAMILIES:
            u = match_budget(fam, pr.grid, used, lo=pr.u_bounds[0], hi=pr.u_bounds[1])
            schedules[fam] = {"u": u, "B": res.B}
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
        "budget_u": pr.grid.integral(res.u), "grid": pr.grid.edges.tolist(), "dt": pr.dt, "scheme": pr.scheme,
        "history": res.history, "undershoot": res.trajectory.undershoot,
        "parts": [list(k) for k in pr.ops.parts],
        "schedules": {name: {"u": np.asarray(s["u"]).tolist(), "B": np.asarray(s["B"]).tolist(),
                             "objective": s["objective"], "terms": s["terms"],
                             **({"particles": s["verification"].as_dict()} if "verification" in s else {})}
                      for name, s in schedules.items()},
    }
    return {"result": res, "problem": pr, "model": model, "schedules": schedules, "summary": summary}
