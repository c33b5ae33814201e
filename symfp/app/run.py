"""``symfp run``: the whole pipeline into a report folder.

The folder holds ``derivation.tex`` and ``derivation.pdf``, ``report.html`` (figures and the comparison
table), ``observables.json``, the FE density series as XDMF (``density/``, from ``Solution.write``) and
the PNG figures ``density.png``, ``observables.png``, ``exit_time.png`` (with an ``exit_time`` study)
and ``weak_error.png`` (with a ``weak_error`` study).

A step whose engine is not installed (an :class:`ImportError`, e.g. dolfinx missing) is skipped and
listed under ``skipped`` with its reason; any other error stops the run.

The folder is owned by the run (:class:`symfp.report.folder.RunFolder`): locked against a concurrent
run, cleaned of an earlier run's outputs, every file written atomically, ``manifest.json`` (spec
hash, options, versions, files with sizes and SHA-256) written last, and an ``INCOMPLETE`` marker
saying why when the run fails or is killed. The report embeds only figures this run wrote.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, OutputError, SymfpError, os_error_text
from ..report.atomic import write_text, write_with
from ..report.folder import RunFolder
from ..report.jsonable import dumps
from . import pipeline
from .spec import Spec


class _Run:
    """Bookkeeping of one report: files written, steps skipped, timings, progress lines."""

    def __init__(self, out: Path, progress: bool, folder: RunFolder | None = None) -> None:
        self.out, self.progress = out, progress
        self.folder = folder
        self.files: list[str] = folder.files if folder is not None else []
        self.skipped: list[str] = []
        self.timings: dict[str, float] = {}
        self.rank0 = pipeline.mpi_rank() == 0

    def step(self, name: str, func: Callable[[], Any]) -> Any:
        """Run one step; on ImportError record it as skipped and return None."""
        if self.progress:
            print(f"[symfp run] {name} ...", file=sys.stderr, flush=True)
        if self.folder is not None:
            self.folder.check_interrupted()
            self.folder.stage = name
        t0 = time.perf_counter()
        try:
            out = func()
            if self.folder is not None:
                self.folder.check_interrupted()
            if self.progress:
                print(f"[symfp run]   {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
            return out
        except OSError as exc:
            if isinstance(exc, (ImportError, SymfpError)):
                raise
            raise OutputError(f"{name}: cannot write the results: {os_error_text(exc)}") from exc
        except ImportError as exc:
            self.skipped.append(f"{name}: {' '.join(str(exc).split())}")
            if self.progress:
                print(f"[symfp run]   skipped ({exc})", file=sys.stderr, flush=True)
            return None
        finally:
            self.timings[name] = time.perf_counter() - t0

    def add(self, path: Path) -> None:
        if path.exists() and str(path) not in self.files:
            self.files.append(str(path))

    def wrote(self, name: str) -> bool:
        """Whether this run wrote ``name`` into the folder."""
        return str(self.out / name) in self.files


def write_report(
    spec: Spec,
    out: str | Path,
    order: int | None = None,
    n: int | None = None,
    pdf: bool = True,
    progress: bool = False,
) -> dict:
    """Derive, solve, simulate, compare (and exit-time / weak-error studies) into the folder ``out``.

    Args:
        spec: the loaded spec.
        out: the report folder (created).
        order: order of the modified equation (default: the spec's).
        n: particle count override.
        pdf: compile the LaTeX derivation.
        progress: print one line per step.

    Returns:
        The observables.json content plus ``files`` (written), ``skipped`` (step: reason) and ``passed``
        (the comparison verdict, None when it did not run).
    """
    out = Path(out)
    validate_spec(spec)
    options = {"order": order, "n": n, "pdf": pdf}
    with RunFolder(out, spec_path=spec.path, options=options, command=f"symfp run {spec.path}") as folder:
        data = _write_report(spec, out, folder, order=order, n=n, pdf=pdf, progress=progress)
    data["files"] = list(folder.files) + ([str(out / "manifest.json")] if folder.rank0 else [])
    return data


def validate_spec(spec: Spec) -> None:
    """Check the whole spec before the first stage (the studies' settings too), so that a typo in the
    last section does not surface after minutes of derive, solve and simulate."""
    check = getattr(spec, "validate", None)
    if callable(check):
        check()
    et = spec.get("exit_time")
    if et:
        if not isinstance(et, dict):
            raise InputError(f"{spec.path}: `exit_time` must be a dict, got {type(et).__name__}")
        unknown = set(et) - {"mesh", "absorbing", "start", "set", "n", "t_max", "seed", "method", "dt"}
        if unknown:
            raise InputError(f"{spec.path}: unknown keys in `exit_time`: {sorted(unknown)}")
        if "start" not in et:
            raise InputError(f"{spec.path}: `exit_time` needs `start` (the particles' start point)")
        if et.get("method", "recursion") not in ("recursion", "sde"):
            raise InputError(f"{spec.path}: exit_time method {et['method']!r}: use 'recursion' or 'sde'")
        ab = et.get("absorbing")
        if ab is not None:
            names = [ab] if isinstance(ab, str) else ab
            if not isinstance(names, (list, tuple)) or not all(isinstance(a, str) for a in names):
                raise InputError(
                    f"{spec.path}: exit_time `absorbing` = {ab!r} must be a boundary-part name or a list of "
                    "names (e.g. 'xmin' or ['xmin', 'xmax'])"
                )
            mesh = et.get("mesh") or spec.get("mesh")
            if callable(mesh) and _boundary_names(mesh) is None:
                mesh = mesh()  # a box is built in milliseconds; a wrong name costs the whole run
            known = _boundary_names(mesh)
            bad = [a for a in names if known is not None and a not in known]
            if bad:
                raise InputError(
                    f"{spec.path}: exit_time `absorbing` names {bad}, which the mesh does not have; its "
                    f"boundary parts are {sorted(known)}"
                )
    we = spec.get("weak_error")
    if we:
        if not isinstance(we, dict):
            raise InputError(f"{spec.path}: `weak_error` must be a dict, got {type(we).__name__}")
        unknown = set(we) - {"lrs", "observable", "t_end", "init", "orders", "n", "substeps", "seed"}
        if unknown:
            raise InputError(f"{spec.path}: unknown keys in `weak_error`: {sorted(unknown)}")
        for key in ("lrs", "observable", "t_end"):
            if key not in we:
                raise InputError(f"{spec.path}: `weak_error` needs `{key}`")


def _boundary_names(mesh: Any) -> set[str] | None:
    """Boundary-part names of a mesh given in a spec (None when unknown without building it)."""
    names = getattr(mesh, "boundaries", None)
    if isinstance(names, dict):
        return set(names)
    if isinstance(mesh, dict) and "bounds" in mesh:
        d = len(mesh["bounds"])
        return {f"{a}{m}" for a in "xyz"[:d] for m in ("min", "max")}
    return None


def _write_report(spec: Spec, out: Path, folder: RunFolder, *, order: int | None, n: int | None, pdf: bool,
                  progress: bool) -> dict:
    from ..report import figures, html

    run = _Run(out, progress, folder)
    data: dict[str, Any] = {"spec": str(spec.path), "title": spec.title}

    # derivation
    def _derive():
        d = pipeline.derive(spec, order=order)
        tex = out / "derivation.tex"
        if run.rank0:
            try:
                d.update(pipeline.write_latex(spec, d["_sde"], d["_fp"], tex, pdf=pdf))
            except SymfpError as exc:  # pdflatex missing or failing: keep the .tex, say so
                if not tex.exists() or isinstance(exc, OutputError):
                    raise
                run.skipped.append(f"derivation.pdf: {' '.join(str(exc).split())}")
            run.add(tex)
            if d.get("pdf"):
                run.add(out / "derivation.pdf")
        return d

    derived = run.step("derive", _derive)
    if derived is not None:
        data["derivation"] = {k: v for k, v in derived.items() if not k.startswith("_")}

    # FE solve
    solved = run.step(
        "solve (finite elements)", lambda: pipeline.solve(spec, order=order, snapshots=20, progress=progress)
    )
    sol = None
    if solved is not None:
        sol, s_out = solved
        data["fe"] = s_out
        run.step("write density (XDMF)", lambda: _write_density(sol, out, folder))
        run.add(out / "density")

    # particles
    simulated = run.step("simulate (particles)",
                         lambda: pipeline.simulate(spec, order=order, n=n, progress=progress))
    cloud = None
    if simulated is not None:
        cloud, p_out = simulated
        data["particles"] = p_out
        data["particles"]["trajectory"] = _trajectory(cloud)

    # comparison
    data["passed"] = None
    if sol is not None and cloud is not None:
        # the SME's own particles beside the exact-SGD ones (when the FE side solves an SME of the recursion):
        # the report then says which part of a gap is the FE error and which the expansion's O(η^p)
        compared = run.step("compare", lambda: pipeline.compare(sol, cloud, sme_particles=True, spec=spec))
        if compared is not None:
            _, c_out = compared
            data["compare"] = c_out
            data["passed"] = c_out["passed"]

    # exit-time study
    if spec.get("exit_time"):
        ex = run.step("exit time (FE and particles)", lambda: exit_time_study(spec, order=order))
        if ex is not None:
            data["exit_time"] = {k: v for k, v in ex.items() if k not in ("times", "exited")}
            if run.rank0:
                fig = figures.exit_time_figure(ex["times"][ex["exited"]], ex["fe_tau"], ex["start"])
                run.add(figures.save(fig, out / "exit_time.png"))

    # weak-error study
    if spec.get("weak_error"):
        we = run.step("weak error (SDE orders vs exact recursion)", lambda: weak_error_study(spec))
        if we is not None:
            data["weak_error"] = we
            if run.rank0:
                fig, _ = figures.weak_error_figure(
                    we["lrs"],
                    {f"order-{p} SDE": e for p, e in we["errors"].items()},
                    {f"order-{p} SDE": e for p, e in we["stderr"].items()},
                )
                run.add(figures.save(fig, out / "weak_error.png"))

    # figures
    figs: list[tuple[str, str]] = []
    if sol is not None:
        snaps = run.step("density snapshots", lambda: density_snapshots(spec, sol, cloud))
        if snaps and run.rank0:
            labels = [str(s) for s in spec.state]
            run.add(figures.save(figures.density_figure(snaps, labels), out / "density.png"))
        if run.rank0:
            fe_obs = fe_series(data["fe"]["observables"])
            part = _particle_series(data.get("particles"))
            fig = figures.observables_figure(fe_obs, part, [str(s) for s in spec.state])
            run.add(figures.save(fig, out / "observables.png"))
    if run.rank0:
        for name, caption in (
            ("density.png", "FE density against the particle histogram"),
            ("observables.png", "observables against time (FE lines, particle points ± 2 s.e.)"),
            ("exit_time.png", "exit times: particle histogram, FE mean exit time"),
            ("weak_error.png", "weak error against the step size"),
        ):
            if run.wrote(name):  # never a stale figure of an earlier run
                figs.append((caption, name))

    data["timings_s"] = run.timings
    data["skipped"] = run.skipped
    if run.rank0:
        obs_path = out / "observables.json"
        write_text(obs_path, dumps(_strip(data)), what="observables")
        run.add(obs_path)
        page = out / "report.html"
        html.write_html(page, spec.title, _sections(spec, data), figs)
        run.add(page)
    data["out"] = str(out)
    return _strip(data)


def _write_density(sol: Any, out: Path, folder: RunFolder) -> None:
    """``sol.write`` (collective) into a temporary folder of the same name on every rank, then rank 0
    renames it to ``density/``: a reader never sees a half-written XDMF/HDF5 pair."""
    tmp = out / f".density.writing-{folder.token}"
    if folder.rank0 and tmp.exists():
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    try:
        sol.write(str(tmp))
        msh = getattr(sol, "mesh", None)
        comm = getattr(getattr(msh, "mesh", msh), "comm", None)
        if comm is not None and comm.size > 1:
            comm.Barrier()  # every rank's part is on disk before rank 0 renames the folder
        if folder.rank0:
            write_with(out / "density", lambda t: os.replace(tmp, t), what="density folder")
    except BaseException as exc:  # a failed write, Ctrl-C or SIGTERM: no half-written folder stays
        if folder.rank0:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, SymfpError) or not isinstance(exc, OSError):
            raise
        raise OutputError(f"cannot write the density to {out / 'density'}: {os_error_text(exc)}") from exc


def _strip(data: dict) -> dict:
    """Drop private objects (keys starting with '_') and text blobs that JSON readers do not need."""
    out = {}
    for k, v in data.items():
        if isinstance(k, str) and k.startswith("_"):
            continue
        out[k] = _strip(v) if isinstance(v, dict) else v
    return out


def _trajectory(cloud: Any) -> dict | None:
    try:
        return {k: np.asarray(v).tolist() for k, v in cloud.moments().items()}
    except (AttributeError, KeyError):
        return None


def _particle_series(p: dict | None) -> dict | None:
    """Particle points for the observables figure: the moment trajectory (or the final time only)."""
    if not p:
        return None
    traj = p.get("trajectory")
    if traj and len(traj.get("t", [])) > 0:
        t = np.asarray(traj["t"], float)
        mean = np.asarray(traj["mean"], float).reshape(len(t), -1)
        d = mean.shape[1]
        cov = np.asarray(traj["cov"], float).reshape(len(t), d, d)
        idx = np.unique(np.linspace(0, len(t) - 1, min(len(t), 12)).round().astype(int))
        out = {"t": t[idx], "mean": mean[idx], "var": np.diagonal(cov, axis1=1, axis2=2)[idx]}
        if "mean_stderr" in traj:
            out["mean_stderr"] = np.asarray(traj["mean_stderr"], float).reshape(len(t), d)[idx]
        if "cov_stderr" in traj:
            cse = np.asarray(traj["cov_stderr"], float).reshape(len(t), d, d)
            out["var_stderr"] = np.diagonal(cse, axis1=1, axis2=2)[idx]
    else:
        out = {
            "t": [p["t_end"]],
            "mean": [p["mean"]],
            "mean_stderr": [p["mean_stderr"]],
            "var": [p["var"]],
            "var_stderr": [p["var_stderr"]],
        }
    if p.get("basins"):  # final time only
        out["basins"] = {k: [v] for k, v in p["basins"].items()}
        out["basins_stderr"] = {k: [v] for k, v in p["basins_stderr"].items()}
        out["basins_t"] = [p["t_end"]]
    return out


def fe_series(obs: dict) -> dict:
    """FE observables for the observables figure: ``E[basin:name]`` series, or ``region_mass``
    (T×regions) with ``region_names``, become ``basins`` {name: (T,)}."""
    out = dict(obs)
    basins = pipeline.fe_basins(obs)
    if basins:
        out["basins"] = basins
    names = obs.get("region_names")
    if "region_mass" in obs and names is not None and len(names) > 0 and "basins" not in out:
        rm = np.asarray(obs["region_mass"], float).reshape(len(obs["t"]), -1)
        out["basins"] = {str(n): rm[:, i] for i, n in enumerate(names)}
    return out


def _mesh_bounds(mesh: Any) -> np.ndarray:
    """(d, 2) bounding box of a symfp/dolfinx mesh over all ranks."""
    from symfp.mesh import protocol

    return np.asarray(protocol(mesh).bounds())


def density_snapshots(spec: Spec, sol: Any, cloud: Any = None) -> list[dict]:
    """The FE density on a grid at up to three stored times (first, one in between, last), with the
    particle samples at the final time (collective: every rank evaluates)."""
    mesh = getattr(sol, "mesh", None) or spec.mesh("run")
    box = _mesh_bounds(mesh)
    d = box.shape[0]
    if d == 1:
        grid = np.linspace(box[0, 0], box[0, 1], 401)
        pts = grid[:, None]
        shape_grid: Any = grid
    elif d == 2:
        xs, ys = np.linspace(*box[0], 81), np.linspace(*box[1], 81)
        X, Y = np.meshgrid(xs, ys, indexing="ij")
        pts = np.column_stack([X.ravel(), Y.ravel()])
        shape_grid = (X, Y)
    else:
        return []
    theta = None if cloud is None else np.asarray(cloud.theta, float).reshape(len(cloud.theta), -1)
    t_final = float(np.asarray(sol.times)[-1])
    stored = sorted(float(t) for t in (getattr(sol, "snapshots", None) or {}))
    if len(stored) > 3:
        stored = [stored[0], stored[len(stored) // 3], stored[-1]]
    snaps = []
    for t in stored or [None]:
        fe = np.asarray(sol.eval(pts) if t is None else sol.eval(pts, t=t), float).reshape(len(pts))
        last = t is None or abs(t - t_final) <= 1e-9 * max(1.0, t_final)
        snaps.append(
            {
                "t": t_final if t is None else t,
                "grid": shape_grid,
                "fe": fe.reshape(np.shape(shape_grid[0]) if d == 2 else -1),
                "samples": theta if last else None,
            }
        )
    if not any(abs(sn["t"] - t_final) <= 1e-9 * max(1.0, t_final) for sn in snaps):
        fe = np.asarray(sol.eval(pts), float).reshape(len(pts))
        snaps.append(
            {
                "t": t_final,
                "grid": shape_grid,
                "fe": fe.reshape(np.shape(shape_grid[0]) if d == 2 else -1),
                "samples": theta,
            }
        )
    return snaps


def exit_time_study(spec: Spec, order: int | None = None) -> dict:
    """FE mean exit time τ(start) against the mean of particle exit times from ``start``.

    Returns:
        {"start", "fe_tau", "particle_mean", "particle_stderr", "censored_fraction", "n", "t_max",
        "times" (numpy), "exited" (numpy bool)}.
    """
    import symfp

    cfg = dict(spec.get("exit_time"))
    unknown = set(cfg) - {"mesh", "absorbing", "start", "set", "n", "t_max", "seed", "method", "dt"}
    if unknown:
        raise InputError(f"{spec.path}: unknown keys in `exit_time`: {sorted(unknown)}")
    if "start" not in cfg:
        raise InputError(f"{spec.path}: `exit_time` needs `start` (the particles' start point)")
    start = np.atleast_1d(np.asarray(cfg["start"], float))
    mesh = cfg.get("mesh") or spec.get("mesh")
    mesh = mesh() if callable(mesh) and not hasattr(mesh, "topology") and not hasattr(mesh, "mesh") else mesh
    sde = spec.numeric_sde(order)
    tau = symfp.mean_exit_time(sde, mesh, absorbing=cfg.get("absorbing"))
    fe_tau = float(np.asarray(tau.eval(start[None, :]), float).ravel()[0])
    absorbing_set = cfg.get("set")
    if absorbing_set is None:
        from symfp.bridge.absorbing import MeshComplement

        absorbing_set = MeshComplement(mesh)
    elif callable(absorbing_set) and not hasattr(absorbing_set, "absorbed"):
        absorbing_set = absorbing_set()
    n = int(cfg.get("n", 2000))
    t_max = float(cfg.get("t_max", 100.0))
    seed = int(cfg.get("seed", 1))
    method = cfg.get("method", "recursion" if spec.model is not None else "sde")
    if method not in ("recursion", "sde"):
        raise InputError(f"{spec.path}: exit_time method {method!r}: use 'recursion' or 'sde'")
    if method == "recursion":
        model = spec.numeric_model()
        steps = max(1, int(round(t_max / float(model.lr))))
        cloud = model.simulate(n_particles=n, steps=steps, init=start, seed=seed, absorbing=absorbing_set)
    else:
        dt = float(cfg.get("dt") or spec.particles("run").get("dt") or spec.number("dt", "run"))
        cloud = sde.simulate(
            n_particles=n, t_end=t_max, dt=dt, init=start, seed=seed, absorbing=absorbing_set
        )
    ex = cloud.exit_times()
    mean, se = ex.mean(stderr=True)
    out = {
        "start": start.tolist(),
        "fe_tau": fe_tau,
        "particle_mean": mean,
        "particle_stderr": se,
        "z": float((mean - fe_tau) / se) if se > 0 else float("inf"),
        "censored_fraction": ex.censored_fraction,
        "n": n,
        "t_max": t_max,
        "method": method,
        "times": np.asarray(ex.times, float),
        "exited": np.asarray(ex.exited, bool),
    }
    out.update(_exit_time_expectation(spec, sde, mesh, cfg, start, method, order))
    return out


def _exit_time_expectation(spec: Spec, sde: Any, mesh: Any, cfg: dict, start: np.ndarray, method: str,
                           order: int | None) -> dict:
    """What the FE/particle exit-time pair is expected to differ by, and the other SME order's τ.

    With particles of the exact recursion and an FE solve of its order-p SME, the two differ by the
    SME's weak error O(η^p) (for exit times from a well, exponentially sensitive to the drift and
    noise, the relative gap can be several times η); the order-2 SME's τ beside the order-1 one shows
    the size of that term. With particles of the SDE itself only the discretisation errors (FE, the
    particles' time step and the Brownian-bridge correction) and the noise remain.
    """
    import symfp

    origin = str(getattr(sde, "origin", ""))
    p = 2 if "order-2" in origin else 1 if "order-1" in origin else None
    lr = getattr(spec.numeric_model(), "lr", None) if spec.model is not None else None
    eta = f"η = {float(lr):g}" if lr is not None and getattr(lr, "is_number", False) else "η"
    out: dict[str, Any] = {}
    if method == "recursion" and p is not None:
        out["expected"] = (
            f"FE solves the order-{p} SME, the particles run the exact recursion: they differ by the SME's "
            f"weak error O(η^{p}) at {eta} (relative, amplified for exit times over a barrier) besides the "
            "Monte Carlo noise; |z| ≫ 1 then measures the SME's error, not a solver's"
        )
    else:
        out["expected"] = ("FE and particles solve the same SDE: only the FE discretisation error, the "
                           "particles' time step (Brownian-bridge corrected) and the noise differ; "
                           "|z| ≲ 3 expected")
    if spec.model is not None and p is not None:
        other = 2 if p == 1 else 1
        try:
            tau2 = symfp.mean_exit_time(spec.numeric_sde(other), mesh, absorbing=cfg.get("absorbing"))
            out[f"fe_tau_order{other}"] = float(np.asarray(tau2.eval(start[None, :]), float).ravel()[0])
        except SymfpError as exc:  # e.g. the order-2 SME is outside its range at this η
            out[f"fe_tau_order{other}"] = None
            out[f"fe_tau_order{other}_note"] = " ".join(str(exc).split())
    return out


def weak_error_study(spec: Spec) -> dict:
    """``symfp.weak_error`` of the spec's model with its ``weak_error`` settings (the learning rate is the
    one parameter left symbolic); returns the result's dict plus slopes refitted by the report."""
    import symfp

    from ..report.figures import fit_slope

    cfg = dict(spec.get("weak_error"))
    unknown = set(cfg) - {"lrs", "observable", "t_end", "init", "orders", "n", "substeps", "seed"}
    if unknown:
        raise InputError(f"{spec.path}: unknown keys in `weak_error`: {sorted(unknown)}")
    if spec.model is None:
        raise InputError(f"{spec.path}: `weak_error` needs a `model` (the recursion to compare with)")
    for key in ("lrs", "observable", "t_end"):
        if key not in cfg:
            raise InputError(f"{spec.path}: `weak_error` needs `{key}`")
    lr = spec.model.lr
    model = spec.model.subs({k: v for k, v in spec.params.items() if str(k) != str(lr)})
    kwargs = {k: cfg[k] for k in ("init", "orders", "substeps", "seed") if k in cfg}
    if "n" in cfg:
        kwargs["n_particles"] = int(cfg["n"])
    res = symfp.weak_error(
        model, observable=cfg["observable"], lrs=cfg["lrs"], t_end=float(cfg["t_end"]), **kwargs
    )
    out = res.to_dict()
    out["slopes_fit"] = {p: fit_slope(out["lrs"], e) for p, e in out["errors"].items()}
    return out


def _sections(spec: Spec, data: dict) -> list[tuple[str, str]]:
    from ..report.html import pre, table

    sec: list[tuple[str, str]] = []
    if spec.description:
        sec.append(("About", f"<p>{spec.description}</p>"))
    if "derivation" in data:
        d = data["derivation"]
        links = " ".join(
            f"<a href='{Path(d[k]).name}'>{Path(d[k]).name}</a>" for k in ("tex", "pdf") if d.get(k)
        )
        sec.append(("Derivation", pre(d.get("text", "")) + (f"<p>{links}</p>" if links else "")))
    rows = []
    if "fe" in data:
        f = data["fe"]["final"]
        rows.append(
            {"method": "finite elements", "t": f["t"], "mass": f["mass"], "mean": f["mean"], "var": f["var"]}
        )
    if "particles" in data:
        p = data["particles"]
        rows.append(
            {
                "method": f"particles ({p['n']}, {p['method']})",
                "t": p["t_end"],
                "mean": p["mean"],
                "± s.e.": p["mean_stderr"],
                "var": p["var"],
                "var ± s.e.": p["var_stderr"],
            }
        )
    if rows:
        sec.append(("Final moments", table(rows)))
    if "compare" in data:
        c = data["compare"]
        verdict = "<p class='pass'>PASSED</p>" if c["passed"] else "<p class='fail'>FAILED</p>"
        metrics = c["metrics"]
        body = verdict + (table(_metric_rows(metrics)) if isinstance(metrics, dict) else "") + pre(c["text"])
        sec.append(("Comparison", body))
    if "exit_time" in data:
        e = data["exit_time"]
        row = {
            "start": e["start"],
            "FE τ": e["fe_tau"],
            f"particles ({e.get('method', '?')})": e["particle_mean"],
            "± s.e.": e["particle_stderr"],
            "z": e.get("z"),
            "censored": e["censored_fraction"],
        }
        for k in ("fe_tau_order1", "fe_tau_order2"):
            if k in e:
                row[f"FE τ, order-{k[-1]} SME"] = e[k] if e[k] is not None else "refused"
        body = table([row])
        if e.get("expected"):
            body += f"<p>Expected difference: {e['expected']}.</p>"
        for k in ("fe_tau_order1_note", "fe_tau_order2_note"):
            if e.get(k):
                body += f"<p>{e[k]}</p>"
        sec.append(("Exit time", body))
    if "weak_error" in data:
        w = data["weak_error"]
        rows = [
            {"η": lr, **{f"error order {p}": w["errors"][p][i] for p in w["errors"]}}
            for i, lr in enumerate(w["lrs"])
        ]
        rows.append({"η": "fitted slope", **{f"error order {p}": w["slopes"][p] for p in w["errors"]}})
        sec.append(("Weak error", table(rows)))
    if data.get("skipped"):
        sec.append(("Skipped", "<ul>" + "".join(f"<li>{s}</li>" for s in data["skipped"]) + "</ul>"))
    sec.append(
        (
            "Files",
            "<ul><li><a href='observables.json'>observables.json</a></li>"
            "<li>density/ (XDMF, open with ParaView)</li></ul>",
        )
    )
    return sec


def _metric_rows(metrics: dict) -> list[dict]:
    """Table rows from a comparison dict: a list under "metrics"/"rows", else one row per key."""
    for key in ("metrics", "rows", "checks"):
        if isinstance(metrics.get(key), list) and all(isinstance(r, dict) for r in metrics[key]):
            return metrics[key]
    return [{"quantity": k, "value": v} for k, v in metrics.items() if not isinstance(v, (dict, list))]
