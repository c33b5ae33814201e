r"""``symfp control SPEC --out DIR``: optimal schedules by the discrete adjoint, verified on the exact SGD.

The spec is an ordinary symfp spec (:mod:`symfp.app.spec`) with, besides ``model``, ``mesh``, ``p0``,
``t_end``, ``dt`` and ``particles``:

=============== ==========================================================================================
``objective``   a list of :mod:`symfp.control.objectives` terms (ExpectedValue, RegionMass, TerminalTracking,
                RunningTracking, SampleCost, Smoothness, LevelTime), minimised (a negative weight maximises)
``control``     ``dict(n_controls=20, controls=("u",) | ("B",) | ("u", "B"), u_bounds=(lo, hi),
                B_bounds=(lo, hi), budget=None | {"u": U, "B": ("==", S)} (symfp.control.budgets),
                scheme="cn" | "euler", x0=None, stabilisation=None | "streamline",
                maxiter=500)``
``compare``     families of the same budget to compare with (default constant, cosine, inverse_time; for
                B alone, ∫B dt: constant, exponential — the best growth rate)
``backend``     the FE backend that assembles the operator parts: "auto" (default), "dolfinx", "skfem"
=============== ==========================================================================================

The report folder holds ``schedules.png`` (the schedules, the objective history, the density at T under
each schedule, PDE-predicted against particle-measured objectives with ±2 standard errors),
``control.json`` (every number), ``control.tex`` (the control problem and its adjoint equation) and
``summary.txt``. The folder is assembled in a temporary sibling directory and moved into place at the
end, so an interrupted run leaves the previous report intact.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError


def schedule_figure(out: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Four panels: schedules u(t) (and B(t)), objective history, density at T, predicted vs particles."""
    from ..report import figures

    plt = figures.plt
    pr, res, schedules = out["problem"], out["result"], out["schedules"]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    ax = axes[0, 0]
    edges = pr.grid.edges
    batch_only = pr.controls == ("B",)
    for name, s in schedules.items():
        ax.stairs(s["B"] if batch_only else s["u"], edges, label=name, lw=2.2 if name == "optimal" else 1.2)
    ax.set_xlabel("t = k η_max")
    ax.set_ylabel("B(t)" if batch_only else "u(t) = η(t)/η_max")
    ax.set_title("batch schedules (same ∫B dt)" if batch_only else "schedules (same budget ∫u dt)")
    ax.legend(fontsize=8)
    if "B" in pr.controls and not batch_only:
        ax2 = ax.twinx()
        ax2.stairs(res.B, edges, color="k", ls="--", label="B (optimal)")
        ax2.set_ylabel("B(t)")
    ax = axes[0, 1]
    hist = res.history
    if hist:
        ax.plot([h["iteration"] for h in hist], [h["value"] for h in hist], "o-", ms=3)
    ax.set_xlabel(f"{res.method} iteration")
    ax.set_ylabel("J")
    ax.set_title("objective history" + ("" if res.converged else " (NOT converged)"))
    ax = axes[1, 0]
    X = pr.ops.coordinates
    if X.shape[1] == 1:
        order = np.argsort(X[:, 0])
        for name, s in schedules.items():
            ax.plot(X[order, 0], s["density"][order], label=name, lw=2 if name == "optimal" else 1)
        ax.set_xlabel(str(pr.ops.state[0]))
        ax.set_ylabel("p(θ, T)")
        ax.legend(fontsize=8)
    else:
        sc = ax.tricontourf(X[:, 0], X[:, 1], schedules["optimal"]["density"], levels=20)
        fig.colorbar(sc, ax=ax)
        ax.set_xlabel(str(pr.ops.state[0]))
        ax.set_ylabel(str(pr.ops.state[1]))
    ax.set_title("density at T")
    ax = axes[1, 1]
    names = list(schedules)
    pde = [schedules[n]["objective"] for n in names]
    ax.bar(np.arange(len(names)) - 0.2, pde, 0.4, label="PDE")
    if all("verification" in schedules[n] for n in names):
        meas = [schedules[n]["verification"].measured for n in names]
        err = [2 * schedules[n]["verification"].stderr for n in names]
        ax.bar(np.arange(len(names)) + 0.2, meas, 0.4, yerr=err, label="exact SGD ± 2 se")
    ax.set_xticks(np.arange(len(names)), names, fontsize=8)
    ax.set_ylabel("J")
    ax.set_title("predicted vs particles")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return figures.save(fig, path)


def _text(summary: dict[str, Any]) -> str:
    lines = [summary["optimiser"], ""]
    lines.append(f"{'schedule':<14} {'J (PDE)':>12} {'J (exact SGD)':>16} {'stderr':>9} {'z':>7}")
    for name, row in summary["schedules"].items():
        v = row.get("particles")
        if v:
            lines.append(f"{name:<14} {row['objective']:>12.6g} {v['measured']:>16.6g} {v['stderr']:>9.2g} "
                         f"{v['z']:>7.2f}")
        else:
            lines.append(f"{name:<14} {row['objective']:>12.6g}")
    return "\n".join(lines)


def write_control_report(spec: Any, out: str | os.PathLike[str], *, n: int | None = None,
                         progress: bool = False) -> dict[str, Any]:
    """Run the schedule study of a loaded spec and write the report folder ``out`` (atomically).

    Returns:
        The JSON summary plus ``files`` (the paths written) and ``text``.
    """
    from ..control.latex import control_document
    from ..control.study import schedule_study
    from ..report.jsonable import dumps

    out = Path(out)
    ns = spec.namespace if hasattr(spec, "namespace") else dict(spec)
    study = schedule_study(ns, n_particles=n, progress=progress)
    summary = study["summary"]
    summary["spec"] = str(getattr(spec, "path", ""))
    summary["title"] = str(ns.get("title") or out.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        schedule_figure(study, tmp / "schedules.png")
        np.savez(tmp / "densities.npz", coordinates=study["problem"].ops.coordinates,
                 **{name: s["density"] for name, s in study["schedules"].items()})
        (tmp / "control.tex").write_text(control_document(study["problem"], summary["title"]))
        text = _text(summary)
        (tmp / "summary.txt").write_text(text + "\n")
        (tmp / "control.json").write_text(dumps(summary))
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = sorted(str(out / p) for p in os.listdir(out))
    return {**summary, "files": files, "text": text}


def cmd_control(args: Any) -> int:
    """``symfp control``: the verb (registered in :mod:`symfp.app.cli`)."""
    from .cli import EXIT_OK, _check_writable, _emit, _load

    spec = _load(args)
    out_dir = Path(args.out or Path("results") / f"{spec.name}_control")
    _check_writable(out_dir.parent if not out_dir.exists() else out_dir)
    if "objective" not in spec.namespace:
        raise InputError(f"{spec.path}: a control spec needs `objective` (symfp.control.objectives terms) "
                         "and `control = dict(n_controls=...)`; see symfp/app/control.py")
    data = write_control_report(spec, out_dir, n=getattr(args, "particles", None),
                                progress=not args.json)
    lines = [data["text"], "", f"report: {out_dir}"] + [f"  {f}" for f in data["files"]]
    _emit(args, data, "\n".join(lines))
    return EXIT_OK
