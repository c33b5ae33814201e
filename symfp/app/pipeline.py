"""The steps behind the verbs of ``symfp``: derive, solve, simulate, compare — each returning its objects
and a JSON-ready summary with numbers.

Heavy modules (dolfinx through the FE layer, torch through the particle layer) are imported only inside
the steps that need them, so ``derive`` stays fast.
"""

from __future__ import annotations

import inspect
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, OutputError, SymfpError
from .spec import Spec


def mpi_rank() -> int:
    """This process's MPI rank from the launcher's environment (0 when not under mpirun).

    Read from the environment so that verbs which do not need MPI never import mpi4py.
    """
    for var in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK"):
        if var in os.environ:
            try:
                return int(os.environ[var])
            except ValueError:
                pass
    return 0


def _accepts(func: Any, name: str) -> bool:
    """True when ``func`` takes keyword ``name`` (or ``**kwargs``)."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _matrix_strings(m: Any) -> list[list[str]]:
    return [[str(e) for e in row] for row in m.tolist()]


# ---------------------------------------------------------------------------------------------- derive
def derive(spec: Spec, order: int | None = None, tex: str | Path | None = None, pdf: bool = False) -> dict:
    """The symbolic pipeline: recursion → SDE (modified equation) → Fokker–Planck (→ LaTeX).

    Args:
        spec: the loaded spec.
        order: order of the modified equation (default: the spec's).
        tex: write the LaTeX derivation there when given.
        pdf: also compile it to PDF (needs pdflatex; next to ``tex``).

    Returns:
        A summary with ``sde`` and ``fp`` objects (keys ``_sde``, ``_fp``, not serialised), the drift and
        diffusion as strings, their numeric form with ``params``, the stationary density, the files
        written and the time taken.
    """
    from ..symbolic.stage import timed

    t0 = time.perf_counter()
    order = order or spec.order
    timings: dict[str, float] = {}
    with timed("derive: the SDE" + (f" (SME of order {order})" if spec.given_sde is None else ""), timings):
        sde = spec.sde(order)
    with timed("derive: the Fokker-Planck equation", timings):
        fp = sde.fokker_planck()
    out: dict[str, Any] = {
        "spec": str(spec.path),
        "order": order,
        "state": [str(s) for s in sde.state],
        "drift": [str(e) for e in sde.drift],
        "diffusion": _matrix_strings(sde.diffusion),
        "params": {str(k): v for k, v in spec.params.items()},
        "_sde": sde,
        "_fp": fp,
    }
    try:
        num = sde.subs(spec.params) if spec.params else sde
        out["numeric"] = {
            "drift": [str(e) for e in num.drift],
            "diffusion": _matrix_strings(num.diffusion),
            "is_numeric": bool(num.is_numeric),
        }
    except SymfpError as exc:
        out["numeric"] = {"error": str(exc)}
    try:
        with timed("derive: the stationary density", timings):
            rho = fp.stationary_density()
    except SymfpError as exc:
        rho = None
        out["stationary_reason"] = str(exc)
    out["stationary_density"] = None if rho is None else str(rho)
    if rho is None and getattr(fp, "stationary_reason", None):
        out["stationary_reason"] = str(fp.stationary_reason)
    out["text"] = _derive_text(spec, sde, fp, out)
    if tex is not None:
        with timed("derive: LaTeX" + (" and PDF" if pdf else ""), timings):
            out.update(write_latex(spec, sde, fp, tex, pdf))
    out["timings_s"] = timings
    out["seconds"] = time.perf_counter() - t0
    return out


def _derive_text(spec: Spec, sde: Any, fp: Any, out: dict) -> str:
    lines = [f"spec: {spec.path}"]
    if spec.given_sde is None:
        lines[0] += f"  (stochastic modified equation of order {out['order']})"
    if spec.model is not None:
        rec = getattr(spec.model, "recursion", None)
        lines += ["", "Recursion:", "  " + str(rec if rec is not None else spec.model).replace("\n", "\n  ")]
    lines += ["", str(sde), "", str(fp)]
    if spec.params:
        lines += ["", "With " + ", ".join(f"{k} = {v}" for k, v in out["params"].items()) + ":"]
        num = out["numeric"]
        if "error" in num:
            lines.append("  " + num["error"])
        else:
            for s, b in zip(out["state"], num["drift"], strict=True):
                lines.append(f"  drift[{s}] = {b}")
            rows = ", ".join("[" + ", ".join(row) + "]" for row in num["diffusion"])
            lines.append(f"  D = [{rows}]")
    if out["stationary_density"] is not None:
        lines += ["", f"Stationary density ∝ {out['stationary_density']}"]
    elif out.get("stationary_reason"):
        lines += ["", f"No closed-form stationary density: {out['stationary_reason']}"]
    return "\n".join(lines)


def write_latex(spec: Spec, sde: Any, fp: Any, tex: str | Path, pdf: bool = False) -> dict:
    """Write the LaTeX derivation (and its PDF); returns {"tex": path, "pdf": path or None}."""
    from .. import latex_document
    from ..report.atomic import write_text, write_with

    tex = Path(tex)
    if tex.is_dir():
        raise OutputError(f"cannot write the LaTeX derivation to {tex}: it is a directory; give a file name "
                          f"such as {tex / (spec.name + '.tex')}")
    parts = [p for p in (spec.model, sde, fp) if p is not None]
    doc = latex_document(*parts)
    write_text(tex, doc.source, what="LaTeX derivation")
    result: dict[str, Any] = {"tex": str(tex), "pdf": None}
    if pdf:
        target = tex.with_suffix(".pdf")
        write_with(target, lambda tmp: doc.pdf(str(tmp)), what="PDF derivation")
        result["pdf"] = str(target)
    return result


# ---------------------------------------------------------------------------------------------- solve
def _fe_solver() -> Any:
    """The FE forward solver's signature target (``symfp.fem.dolfinx.forward.solve``, behind ``fp.solve``)."""
    from ..fem.dolfinx import forward

    return forward.solve


def solve(
    spec: Spec, order: int | None = None, snapshots: int = 0, progress: bool = False
) -> tuple[Any, dict]:
    """Finite-element solve of the Fokker–Planck equation with the spec's mesh, p0, t_end, dt.

    The spec's ``observables`` are recorded as ``E[name]`` and its ``basins`` as ``E[basin:name]`` (the
    expectation of the basin's indicator), when the solver takes ``expectations``.

    Args:
        spec: the loaded spec.
        order: order of the modified equation.
        snapshots: store about this many densities over time (for figures and the XDMF series); 0: the
            final one only.
        progress: the solver's progress bar.

    Returns:
        The FE solution and a summary: ``observables`` (every series as lists), ``final`` (t, mass, mean,
        var, basins at the final time), ``seconds``.
    """
    import sympy as sp

    t0 = time.perf_counter()
    t_end, dt = spec.number("t_end", "solve"), spec.number("dt", "solve")
    p0 = spec.require("p0", "solve")
    sde = spec.numeric_sde(order)
    fp = sde.fokker_planck()
    mesh = spec.mesh("solve")
    solver = _fe_solver()
    kwargs: dict[str, Any] = {}
    expect = {str(k): v for k, v in dict(spec.get("observables") or {}).items()}
    for name, rel in dict(spec.get("basins") or {}).items():
        expect[f"basin:{name}"] = sp.Piecewise((1, rel), (0, True))
    if expect and _accepts(solver, "expectations"):
        kwargs["expectations"] = expect
    if _accepts(solver, "progress"):
        kwargs["progress"] = progress
    if snapshots and _accepts(solver, "keep") and _accepts(solver, "output_every"):
        steps = max(1, int(round(t_end / dt)))
        kwargs.update(keep="all", output_every=max(1, steps // snapshots))
    options = spec.get("solve_options") or {}
    if not isinstance(options, dict):
        raise InputError(f"{spec.path}: solve_options must be a dict, e.g. dict(stabilisation='fct', "
                         f"scheme='cn'), got {type(options).__name__}")
    unknown = [k for k in options if not _accepts(solver, str(k))]
    if unknown:
        raise InputError(f"{spec.path}: solve_options {sorted(map(str, unknown))} are not arguments of the "
                         "FE solve; see help(symfp.fem.dolfinx.forward.solve)")
    kwargs.update(options)
    sol = fp.solve(mesh, p0, t_end=t_end, dt=dt, **kwargs)
    obs = dict(sol.observables)
    summary: dict[str, Any] = {
        "spec": str(spec.path),
        "t_end": t_end,
        "dt": dt,
        "observables": obs,
        "final": final_moments(obs),
        "seconds": time.perf_counter() - t0,
    }
    info = getattr(sol, "info", None)
    if info:
        summary["info"] = info
    return sol, summary


def fe_basins(obs: dict) -> dict:
    """{name: (T,) array} of the basin masses recorded as ``E[basin:name]``."""
    return {
        k[len("E[basin:") : -1]: np.asarray(v, float)
        for k, v in obs.items()
        if k.startswith("E[basin:") and k.endswith("]")
    }


def final_moments(obs: dict) -> dict:
    """t, mass, mean and variance (diagonal of cov) at the last output time of FE observables."""
    mean = np.asarray(obs["mean"], float)
    cov = np.asarray(obs["cov"], float)
    d = mean.shape[-1] if mean.ndim > 1 else 1
    out = {
        "t": float(np.asarray(obs["t"])[-1]),
        "mass": float(np.asarray(obs["mass"])[-1]),
        "mean": mean.reshape(len(mean), d)[-1].tolist(),
        "cov": cov.reshape(len(cov), d, d)[-1].tolist(),
    }
    out["var"] = np.diag(np.asarray(out["cov"])).tolist()
    basins = fe_basins(obs)
    if basins:
        out["basins"] = {k: float(v[-1]) for k, v in basins.items()}
    expect = {
        k[2:-1]: float(np.asarray(v)[-1])
        for k, v in obs.items()
        if k.startswith("E[") and not k.startswith("E[basin:")
    }
    if expect:
        out["observables"] = expect
    if obs.get("entropy") is not None:
        out["entropy"] = float(np.asarray(obs["entropy"])[-1])
    return out


# ---------------------------------------------------------------------------------------------- simulate
def simulate(
    spec: Spec, order: int | None = None, n: int | None = None, method: str | None = None,
    progress: bool = False,
) -> tuple[Any, dict]:
    """Particle simulation: the exact recursion (``method="recursion"``) or the SDE (``"sde"``).

    For the recursion, the number of steps is round(t_end/η), so the final time is steps·η. ``n`` and
    ``method`` override the spec's particle count and method.

    Returns:
        The particle cloud and a summary: n, method, steps, t_end, mean/var/cov with standard errors,
        ``expectations`` of the spec's observables and ``basins`` fractions (with stderr), ``seconds``.
    """
    t0 = time.perf_counter()
    cfg = spec.particles("simulate")
    if n is not None:
        cfg["n"] = int(n)
    if method is not None:
        if method not in ("recursion", "sde"):
            raise InputError(f"simulate: method {method!r}: use 'recursion' or 'sde'")
        if method == "recursion" and spec.model is None:
            raise InputError(f"{spec.path}: particles method 'recursion' needs a `model`")
        cfg["method"] = method
        if method == "recursion":
            cfg.pop("scheme", None)
    t_end = spec.number("t_end", "simulate")
    extra = {k: cfg[k] for k in ("device", "batch") if k in cfg}
    if progress:
        extra["progress"] = True
    summary: dict[str, Any] = {
        "spec": str(spec.path),
        "n": cfg["n"],
        "method": cfg["method"],
        "seed": cfg["seed"],
    }
    if cfg["method"] == "recursion":
        model = spec.numeric_model()
        try:
            lr = float(model.lr)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"{spec.path}: the learning rate {model.lr} is not a number; give it in `params`"
            ) from exc
        steps = max(1, int(round(t_end / lr)))
        cloud = model.simulate(n_particles=cfg["n"], steps=steps, init=cfg["init"], seed=cfg["seed"], **extra)
        summary.update(steps=steps, lr=lr, t_end=steps * lr)
    else:
        sde = spec.numeric_sde(order)
        dt = float(cfg.get("dt") or spec.number("dt", "simulate"))
        scheme = cfg.get("scheme", "euler")
        cloud = sde.simulate(
            n_particles=cfg["n"], t_end=t_end, dt=dt, init=cfg["init"], seed=cfg["seed"], method=scheme,
            **extra,
        )
        summary.update(steps=int(round(t_end / dt)), dt=dt, t_end=t_end, scheme=scheme)
    summary.update(cloud_summary(cloud, spec))
    summary["seconds"] = time.perf_counter() - t0
    return cloud, summary


def cloud_summary(cloud: Any, spec: Spec | None = None) -> dict:
    """Mean, covariance, variance with standard errors, and the spec's expectations/basins, of a cloud."""
    theta = np.asarray(cloud.theta, float)
    theta = theta.reshape(len(theta), -1)
    mean, mean_se = (np.asarray(a, float).ravel() for a in cloud.mean(stderr=True))
    cov, cov_se = (np.asarray(a, float) for a in cloud.cov(stderr=True))
    d = theta.shape[1]
    cov, cov_se = cov.reshape(d, d), cov_se.reshape(d, d)
    out: dict[str, Any] = {
        "mean": mean.tolist(),
        "mean_stderr": mean_se.tolist(),
        "cov": cov.tolist(),
        "cov_stderr": cov_se.tolist(),
        "var": np.diag(cov).tolist(),
        "var_stderr": np.diag(cov_se).tolist(),
        "n_finite": int(np.isfinite(theta).all(1).sum()),
    }
    if spec is not None:
        out.update(expectations(theta, spec))
    return out


def expectations(theta: np.ndarray, spec: Spec) -> dict:
    """Sample means (with stderr) of ``observables`` and fractions in ``basins`` of the spec."""
    import sympy as sp

    state = spec.state
    out: dict[str, Any] = {}
    cols = [theta[:, i] for i in range(theta.shape[1])]
    for key in ("observables", "basins"):
        spec_val = spec.get(key)
        if not spec_val:
            continue
        res, err = {}, {}
        for name, expr in dict(spec_val).items():
            f = sp.lambdify(state, sp.sympify(expr), "numpy")
            v = np.broadcast_to(np.asarray(f(*cols), float), (theta.shape[0],))
            res[str(name)] = float(v.mean())
            err[str(name)] = float(v.std(ddof=1) / np.sqrt(len(v)))
        out[key] = res
        out[key + "_stderr"] = err
    return out


# ---------------------------------------------------------------------------------------------- compare
def compare(solution: Any, cloud: Any, *, sme_particles: bool | int = False, init: Any = None,
            spec: Spec | None = None) -> tuple[Any, dict]:
    """``symfp.compare`` of the FE solution and the particles; returns the report and its dict.

    Args:
        solution, cloud: the FE solution and the particle cloud.
        sme_particles: when the FE side solves an SME and the cloud runs the exact recursion, also
            simulate the SME's own particles (True: as many as the cloud) so that the report separates
            the FE error (FE vs SME particles) from the SME's O(η^p) weak error (SME vs SGD particles).
        init: the particles' initial law (default: the spec's ``particles.init``, else the cloud's start).
        spec: the spec the cloud was simulated from (for ``init``).
    """
    from .. import compare as _compare

    if init is None and spec is not None and sme_particles:
        init = spec.particles("compare")["init"]
    report = _compare(solution, cloud, sme_particles=sme_particles, init=init)
    out = {"passed": bool(report.passed), "metrics": report.to_dict(), "text": str(report)}
    for key in ("discretisation", "expansion"):
        if isinstance(report.info.get(key), dict):
            out[key] = report.to_dict()["info"][key]
    return report, out
