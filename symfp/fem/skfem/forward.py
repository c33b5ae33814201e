r"""The forward Fokker–Planck solver of the scikit-fem backend (serial, scipy.sparse).

Space P1 on a :class:`symfp.fem.mesh.NeutralMesh`; the weak form is
:func:`symfp.symbolic.weakform.forward_form`, lowered by :mod:`symfp.fem.skfem.lowering` (flux form,
zero flux natural; absorbing parts get p = 0 by identity rows). Time stepping and monitors are the
shared :mod:`symfp.fem.schemes` and :mod:`symfp.fem.trackers`; the step matrices are factorised once
with SuperLU (``scipy.sparse.linalg.splu``) and each step is two triangular solves.

Stabilisation (``stabilisation=``): ``"none"`` (Galerkin, consistent mass), ``"fct"`` (alias ``"afc"``:
Kuzmin's FEM-FCT, :mod:`symfp.fem.fct`, with a CN, Euler or BDF2 Galerkin target), ``"upwind"``
(alias ``"fitted"``: lumped mass and discrete upwinding, backward Euler) and ``"auto"``, the rule of
:func:`symfp.fem.stabilisation.choose` (FCT when D is degenerate or the cell Péclet number exceeds 1,
else Galerkin). ``"gibbs"`` and ``"supg"`` are dolfinx-only. Default schemes: BDF2 (Galerkin), CN (FCT),
Euler (upwind); ``scheme="bdf2"`` with FCT uses the BDF2 target.

Time-dependent coefficients (``SDE.time``): K is re-assembled at every step at the scheme's time
level (:math:`K(t_{n+1})`; CN the trapezoidal pair) and the step matrices re-factorised.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sympy as sp

from ...errors import InputError
from ..checks import check_fe_problem
from ..coefficients import numpy_function
from ..initial import density_callable, is_point
from ..mesh import NeutralMesh, box
from ..observables import NodalObservables
from ..problem import (
    absorbing_parts,
    as_fokker_planck,
    check_mesh_dimension,
    check_output,
    check_times,
    is_number,
)
from ..problem import fct_options as check_fct_options
from ..schemes import FCTStepper, GalerkinStepper, check_scheme, nd_splu_solver
from ..solution import Solution, solve_info
from ..stabilisation import PecletReport, choose, peclet_of_cells
from ..trackers import (
    MassTracker,
    ObservableTracker,
    PositivityTracker,
    ProgressTracker,
    SnapshotTracker,
    WallTracker,
    run,
)
from . import require_serial, require_skfem
from .coefficients import lambdify
from .lowering import assemble_bilinear, assemble_weighted, mass_matrix
from .mesh import as_skfem

SKFEM_METHODS = ("none", "fct", "upwind")


def peclet(mesh: NeutralMesh, c: sp.Matrix, D: sp.Matrix, state: tuple[sp.Symbol, ...],
           tsym: sp.Symbol | None, t_end: float) -> PecletReport:
    """Cell Péclet report; for time-dependent coefficients the worst over 9 times in [0, t_end]."""
    verts = mesh.points[mesh.cells]
    d = len(state)
    times = [0.0] if tsym is None else list(np.linspace(0.0, t_end, 9))
    out = []
    for t in times:
        cs = c if tsym is None else c.subs(tsym, t)
        Ds = D if tsym is None else D.subs(tsym, t)
        out.append(peclet_of_cells(verts, numpy_function(cs, state), numpy_function(Ds, state), d))
    return PecletReport(max(o[0] for o in out), any(o[1] for o in out))


def initial_nodal(p0: Any, mesh: NeutralMesh, state: tuple[sp.Symbol, ...], ml: np.ndarray,
                  where: str = "solve") -> np.ndarray:
    """Nodal values of ``p0`` (expression, callable or point), checked and scaled to unit mass."""
    d = len(state)
    h = float(mesh.cell_diameters().max())
    if is_point(p0, d) and mesh.locate_cells(np.asarray(p0, dtype=float).reshape(1, d))[0] < 0:
        raise InputError(f"{where}: the initial point {list(np.asarray(p0, float))} is outside the mesh")
    f = density_callable(p0, state, h, where)
    try:
        vals = np.asarray(f(np.ascontiguousarray(mesh.points.T)), dtype=float)
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise InputError(f"{where}: p0 could not be evaluated on the mesh ({exc})") from exc
    bad = int((~np.isfinite(vals)).sum())
    if bad:
        raise InputError(f"{where}: p0 is not finite at {bad} mesh nodes (NaN or inf); check its formula "
                         "and the domain")
    vmax, vmin = float(vals.max()), float(vals.min())
    if vmax <= 0:
        raise InputError(f"{where}: p0 has zero mass (max {vmax:g} on the mesh); give a non-negative "
                         "density that is positive somewhere in the domain")
    if vmin < -1e-12 * vmax:
        raise InputError(f"{where}: p0 is negative (min {vmin:g}, max {vmax:g}); a density must be ≥ 0")
    mass = float(ml @ vals)
    if not mass > 0:
        raise InputError(f"{where}: p0 has zero mass on the mesh (∫ p0 = {mass:g}); is the density "
                         "concentrated outside the domain?")
    return vals / mass


class OperatorUpdate:
    r"""``before_step`` of :func:`symfp.fem.trackers.run` for time-dependent coefficients.

    Before step n, K is re-assembled at :math:`t_{n+1}` = n·dt and handed to the stepper with the
    previous :math:`K(t_n)` (Crank–Nicolson's explicit half); "upwind" gets the upwinded K and its
    lumped mass. ``assemblies`` counts the assemblies of K (1 for the one at t = 0).
    """

    def __init__(self, terms: Any, basis: Any, state: tuple[sp.Symbol, ...], tsym: sp.Symbol | None,
                 stepper: Any, M: Any, K: Any, dt: float, *, upwind: bool):
        self.terms, self.basis, self.state, self.tsym = terms, basis, state, tsym
        self.stepper, self.M, self.K, self.dt, self.upwind = stepper, M, K, float(dt), upwind
        self.assemblies = 1
        self.seconds = 0.0

    def __call__(self, n: int) -> None:
        t0 = time.perf_counter()
        K_new = assemble_bilinear(self.terms, self.basis, self.state, tsym=self.tsym, t=n * self.dt)
        self.assemblies += 1
        if self.upwind:
            from ..fct import discrete_upwind_scipy

            self.stepper.set_operators(self.stepper.M, discrete_upwind_scipy(K_new))
        else:
            self.stepper.set_operators(self.M, K_new, self.K)
        self.K = K_new
        self.seconds += time.perf_counter() - t0


def solve(fp: Any, mesh: Any, p0: Any, t_end: float, dt: float, scheme: str | None = None,
          absorbing: str | Sequence[str] | None = None, output_every: int = 1, stabilisation: str = "auto",
          progress: bool = True, expectations: Mapping[str, Any] | None = None, keep: str = "final",
          mass_tol: float = 1e-9, negative_tol: float = 1e-3, wall_tol: float = 1e-6,
          domain_options: Mapping[str, Any] | None = None, fct_options: Mapping[str, Any] | None = None,
          **ignored: Any) -> Solution:
    r"""Solve the forward Fokker–Planck equation with scikit-fem (arguments as the dolfinx ``solve``).

    ``petsc_options`` is accepted and ignored (no PETSc here; the step matrix is factorised by SuperLU).

    Returns:
        :class:`symfp.fem.solution.Solution`.

    Raises:
        MeshError, InputError, SolverError: as the dolfinx backend; InputError under several MPI ranks.
    """
    from ...symbolic.weakform import forward_form
    from ..domain import estimate

    where = "solve"
    require_serial(where)
    require_skfem(where)
    unknown = set(ignored) - {"petsc_options"}
    if unknown:
        raise InputError(f"{where}: unknown options {sorted(unknown)} for backend='skfem'")
    fp = as_fokker_planck(fp)
    sde = fp.sde
    state = tuple(sde.state)
    d = len(state)
    domain_note = None
    if mesh is None or (isinstance(mesh, str) and mesh == "auto"):
        est = estimate(fp, p0, t_end=float(t_end) if is_number(t_end) else None, **dict(domain_options or {}))
        mesh = box(list(est.bounds), cells=list(est.cells))
        domain_note = est.describe()
    sk = as_skfem(mesh)
    msh = sk.neutral
    check_mesh_dimension(msh.dim, state, where)
    t_end, dt, n_steps = check_times(t_end, dt)
    check_fe_problem(sde, sk, where, t_end=t_end)  # D ⪰ 0 on the mesh over [0, t_end], the SME's stability
    fct_kw = check_fct_options(fct_options)
    if scheme is not None:
        check_scheme(scheme)
    check_output(output_every, keep)
    parts = absorbing_parts(absorbing)
    for name in parts:
        msh.boundary_facets(name)  # raises MeshError listing the names it has
    wf = forward_form(sde)
    if wf.parameters:
        raise InputError(f"{where}: the Fokker–Planck equation still has free parameters "
                         f"{sorted(map(str, wf.parameters))}; substitute numbers with .subs({{...}}) first")
    tsym = None if wf.is_autonomous else wf.time
    t_setup = time.perf_counter()
    D = sp.Matrix(sde.diffusion)
    c = -sp.Matrix(wf.terms("advection")[0].coefficient)
    report = peclet(msh, c, D, state, tsym, t_end)
    try:
        rho = fp.stationary_density()
    except Exception:  # noqa: BLE001 - a closed form is optional
        rho = None
    if stabilisation in ("gibbs", "supg"):
        raise InputError(f"{where}: stabilisation={stabilisation!r} is available on backend='dolfinx' only; "
                         f"backend='skfem' has {', '.join(SKFEM_METHODS)} (and 'auto')")
    method, why = choose(stabilisation, report, rho is not None)
    if scheme is None:
        scheme = "euler" if method == "upwind" else ("cn" if method == "fct" else "bdf2")

    basis = sk.basis(1)
    t0 = time.perf_counter()
    M = mass_matrix(basis)
    K = assemble_bilinear(wf.bilinear, basis, state, tsym=tsym, t=0.0)
    ml = np.asarray(M.sum(axis=1)).ravel()
    assemble_s = time.perf_counter() - t0
    bc = msh.boundary_vertices(parts) if parts else np.zeros(0, dtype=np.int64)

    solver = nd_splu_solver(msh.points)  # P1 dofs are the vertices
    if method == "fct":
        stepper: Any = FCTStepper(scheme, M, K, ml, dt, bc_rows=bc, passes=fct_kw["passes"],
                                  tol=fct_kw["tol"], solver=solver)
    elif method == "upwind":
        import scipy.sparse as sps

        from ..fct import discrete_upwind_scipy

        stepper = GalerkinStepper(scheme, sps.diags(ml).tocsr(), discrete_upwind_scipy(K), dt, bc_rows=bc,
                                  solver=solver)
    else:
        stepper = GalerkinStepper(scheme, M, K, dt, bc_rows=bc, solver=solver)

    update = OperatorUpdate(wf.bilinear, basis, state, tsym, stepper, M, K, dt, upwind=method == "upwind")

    # observables: weight vectors ∫ g φ_i assembled once
    vectors = {"mass": ml}
    for i in range(d):
        vectors[f"x{i}"] = assemble_weighted(state[i], basis, state)
        for j in range(i, d):
            vectors[f"x{i}x{j}"] = assemble_weighted(state[i] * state[j], basis, state)
    expectations = dict(expectations or {})
    for name, expr in expectations.items():
        e = sp.sympify(expr)
        extra = e.free_symbols - set(state)
        if extra:
            raise InputError(f"{where}: expectation {name!r} = {e} has symbols {sorted(map(str, extra))} "
                             "that are not state variables")
        vectors[f"E[{name}]"] = assemble_weighted(e, basis, state)
    skfem = require_skfem(where)
    for name in msh.region_names:
        rb = skfem.Basis(sk.mesh, sk.element(1), elements=msh.region_cells(name), intorder=3)
        vectors[f"region:{name}"] = assemble_weighted(1, rb, state)
    log_nodes = None
    if rho is not None:
        log_rho = sp.expand_log(sp.log(sp.sympify(rho)), force=True)
        with np.errstate(all="ignore"):
            lv = np.asarray(lambdify(log_rho, state)(np.ascontiguousarray(msh.points.T)), dtype=float)
        if np.all(np.isfinite(lv)):
            log_nodes = lv - lv.max()
    recorder = NodalObservables(vectors, d, ml, expectations=list(expectations), regions=msh.region_names,
                                log_stationary=log_nodes)

    u0 = initial_nodal(p0, msh, state, ml)
    wall = np.setdiff1d(msh.boundary_vertices(None), bc)
    obs_tr = ObservableTracker(recorder, every=output_every)
    wall_tr = WallTracker(wall, tol=wall_tol, every=output_every)
    snap_tr = SnapshotTracker(keep=keep, every=output_every)
    trackers = [MassTracker(ml, tol=mass_tol, enabled=not parts,
                            hint="the SuperLU solve should conserve it to round-off: check the coefficients; "
                                 "if the drift is round-off (~1e-14 per step), raise mass_tol"),
                PositivityTracker(tol=negative_tol, method=method), obs_tr, wall_tr, snap_tr,
                ProgressTracker(show=progress)]
    setup_s = time.perf_counter() - t_setup
    timings: dict[str, Any] = {}
    t_loop = time.perf_counter()
    u = run(stepper, u0, n_steps=n_steps, dt=dt, trackers=trackers,
            before_step=update if tsym is not None else None, timings=timings)
    loop_s = time.perf_counter() - t_loop
    observables = recorder.arrays()
    observables["wall"] = np.array(wall_tr.ratios)
    info = solve_info(
        backend="skfem", domain=domain_note or str(msh), wall_ratios=wall_tr.ratios, scheme=scheme,
        method=method, reason=why, report=report, dt=dt, steps=n_steps, iterations=stepper.iterations,
        assemble_seconds=assemble_s + update.seconds, time_dependent=tsym is not None,
        assemblies=update.assemblies, loop_seconds=loop_s, setup_seconds=setup_s, dofs=len(msh.points),
        absorbing=parts, ranks=1)
    info["factorisations"] = stepper.factorisations
    if method == "fct":
        info["fct_mean_alpha"] = stepper.mean_alpha()
        info["fct_cn_fallback_steps"] = stepper.fallback_steps
    return Solution(times=np.array(obs_tr.times), observables=observables, mesh=msh, sde=sde, density=u,
                    snapshots=snap_tr.snapshots, info=info,
                    timings={"setup": setup_s, "assemble": assemble_s, "step": timings.get("step"),
                             "output": timings.get("output")})
