r"""The forward Fokker–Planck solver of the scikit-fem backend (serial, scipy.sparse).

Space P1 on a :class:`symfp.fem.mesh.NeutralMesh`; the weak form is
:func:`symfp.symbolic.weakform.forward_form`, lowered by :mod:`symfp.fem.skfem.lowering` (flux form,
zero flux natural; absorbing parts get p = 0 by identity rows). Time stepping and monitors are the
shared :mod:`symfp.fem.schemes` and :mod:`symfp.fem.trackers`; the step matrices are factorised once
with SuperLU (``scipy.sparse.linalg.splu``) and each step is two triangular solves.

Stabilisation (``stabilisation=``), the same methods as the dolfinx backend: ``"none"`` (Galerkin,
consistent mass), ``"fct"`` (alias ``"afc"``: Kuzmin's FEM-FCT, :mod:`symfp.fem.fct`, with a CN, Euler
or BDF2 Galerkin target), ``"upwind"`` (alias ``"fitted"``: lumped mass and discrete upwinding,
backward Euler), ``"gibbs"`` (the Gibbs-symmetrised form p = ρu with lumped ρ-weighted mass,
backward Euler; :mod:`symfp.fem.skfem.stabilise`), ``"supg"`` (streamline-upwind Petrov–Galerkin on
the whole residual, the one weight of :func:`symfp.fem.stabilisation.supg_weight`) and ``"auto"``,
the rule of :func:`symfp.fem.stabilisation.choose` (FCT when D is degenerate or the cell Péclet
number exceeds 1, else Galerkin). Default schemes: BDF2 (Galerkin, SUPG), CN (FCT), Euler (upwind,
Gibbs); ``scheme="bdf2"`` with FCT uses the BDF2 target.

Time-dependent coefficients (``SDE.time``): K (and SUPG's mass matrix) is re-assembled at every step
at the scheme's time level (:math:`K(t_{n+1})`; CN the trapezoidal pair), except when the coefficient
values at the quadrature points repeat (:func:`symfp.fem.skfem.lowering.coefficient_key`; the last 8
operators are kept; not for SUPG, whose weight needs more than the IR's coefficients). Step matrices are
factorised through :class:`symfp.fem.skfem.factorisations.FactorisationCache`: a matrix that repeats
exactly (a piecewise-constant schedule) reuses its factorisation (``info["factorisations"]`` counts
the ones computed, ``info["factorisation_cache_hits"]`` the reuses).
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
from ..observables import NodalObservables, weight_vectors
from ..problem import (
    as_fokker_planck,
    check_forward_options,
    check_mesh_dimension,
    check_times,
    is_number,
)
from ..schemes import FCTStepper, GalerkinStepper, nd_splu_solver
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
from .factorisations import FactorisationCache
from .lowering import assemble_bilinear, assemble_weighted, coefficient_key, mass_matrix
from .mesh import as_skfem
from .stabilise import gibbs_weight, supg_forward

SKFEM_METHODS = ("none", "fct", "upwind", "gibbs", "supg")
#: quadrature order of the Gibbs-weighted integrals (exp of a quartic: the degree UFL estimates, 8)
GIBBS_INTORDER = 8


def _gibbs(sde: Any, rho: Any, tsym: sp.Symbol | None, msh: NeutralMesh,
           where: str) -> tuple[sp.Expr, np.ndarray]:
    """The Gibbs weight w = ρ/max ρ (SymPy) and its nodal values, or an InputError saying why not."""
    from ...symbolic.weakform import forward_form

    if tsym is not None:
        raise InputError(f"{where}: stabilisation='gibbs' needs time-independent coefficients (its weight is "
                         "the stationary density); with a schedule use 'fct' or 'supg'")
    try:
        forward_form(sde, symmetrised=True)  # checks the zero flux D∇ρ = cρ (detailed balance)
    except InputError as exc:
        raise InputError(f"{where}: stabilisation='gibbs' is not available: {exc}") from exc
    return gibbs_weight(rho, tuple(sde.state), msh.points, where)


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
    lumped mass; "supg" also moves its mass matrix (its test function carries c(t)) and is assembled
    every step (its weight needs div c, div D). Otherwise the matrix is keyed by the coefficient values
    at the quadrature points (:func:`~symfp.fem.skfem.lowering.coefficient_key`): a piecewise-constant
    schedule's phase re-uses its K (at most ``cache`` kept, oldest dropped) and so its factorisation.
    ``assemblies`` counts the assemblies of K (1 for the one at t = 0).
    """

    def __init__(self, terms: Any, basis: Any, state: tuple[sp.Symbol, ...], tsym: sp.Symbol | None,
                 stepper: Any, M: Any, K: Any, dt: float, *, method: str, supg: Any = None,
                 cache: int = 8):
        self.terms, self.basis, self.state, self.tsym = terms, basis, state, tsym
        self.stepper, self.M, self.K, self.dt, self.method = stepper, M, K, float(dt), method
        self.M_galerkin = M if supg is None else supg[0]
        self.supg = supg  # (M_galerkin, c, D, cell diameters) for "supg"
        self.keyer = coefficient_key(terms, basis, state, tsym=tsym) if tsym is not None else None
        self.assembled: dict[Any, Any] = {}
        self.cache = int(cache)
        self.assemblies = 1
        self.seconds = 0.0

    def _K(self, t: float) -> Any:
        if self.method == "supg" or self.keyer is None:
            self.assemblies += 1
            return assemble_bilinear(self.terms, self.basis, self.state, tsym=self.tsym, t=t)
        key = self.keyer(t)
        K = self.assembled.get(key)
        if K is None:
            K = assemble_bilinear(self.terms, self.basis, self.state, tsym=self.tsym, t=t)
            self.assembled[key] = K
            self.assemblies += 1
            if len(self.assembled) > self.cache:
                self.assembled.pop(next(iter(self.assembled)))
        return K

    def __call__(self, n: int) -> None:
        t0 = time.perf_counter()
        t = n * self.dt
        K_new = self._K(t)
        M_new = self.M
        if self.method == "supg":
            M_g, c, D, h = self.supg
            Sm, Sk = supg_forward(c, D, self.state, self.basis, h, tsym=self.tsym, t=t)
            M_new, K_new = M_g + Sm, K_new + Sk
        if self.method == "upwind":
            from ..fct import discrete_upwind_scipy

            self.stepper.set_operators(self.stepper.M, discrete_upwind_scipy(K_new))
        else:
            self.stepper.set_operators(M_new, K_new, self.K, self.M if self.method == "supg" else None)
        self.K, self.M = K_new, M_new
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
    from ...symbolic.weakform import Term
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
    fct_kw, parts, wf, tsym = check_forward_options(sde, msh, scheme=scheme, output_every=output_every,
                                                    keep=keep, absorbing=absorbing, fct_options=fct_options,
                                                    where=where)
    t_setup = time.perf_counter()
    D = sp.Matrix(sde.diffusion)
    c = -sp.Matrix(wf.terms("advection")[0].coefficient)
    report = peclet(msh, c, D, state, tsym, t_end)
    try:
        rho = fp.stationary_density()
    except Exception:  # noqa: BLE001 - a closed form is optional
        rho = None
    gibbs = _gibbs(sde, rho, tsym, msh, where) if stabilisation == "gibbs" else None
    method, why = choose(stabilisation, report, rho is not None)
    if scheme is None:
        scheme = "euler" if method in ("upwind", "gibbs") else ("cn" if method == "fct" else "bdf2")

    basis = sk.basis(1)
    t0 = time.perf_counter()
    M = mass_matrix(basis)
    ml_plain = np.asarray(M.sum(axis=1)).ravel()
    gb = basis  # the Gibbs weight varies by decades across a cell: a higher-order rule (UFL's estimate)
    if gibbs is not None:  # p = ρu: lumped ∫wφ_i and ∫w(D∇u)·∇v, w = ρ/max ρ (skfem.stabilise)
        import scipy.sparse as sps

        gb = require_skfem(where).Basis(sk.mesh, sk.element(1), intorder=GIBBS_INTORDER)
        ml = assemble_weighted(gibbs[0], gb, state)
        M = sps.diags(ml).tocsr()
        K = assemble_bilinear([Term("diffusion", sp.ImmutableMatrix(gibbs[0] * D))], gb, state)
    else:
        K = assemble_bilinear(wf.bilinear, basis, state, tsym=tsym, t=0.0)
        ml = ml_plain
    M_galerkin = M
    if method == "supg":
        Sm, Sk = supg_forward(c, D, state, basis, msh.cell_diameters(), tsym=tsym, t=0.0)
        M, K = M + Sm, K + Sk
    assemble_s = time.perf_counter() - t0
    bc = msh.boundary_vertices(parts) if parts else np.zeros(0, dtype=np.int64)

    # P1 dofs are the vertices; each distinct step matrix is factorised once (a repeating schedule
    # reuses its factorisations: skfem.factorisations)
    solver = FactorisationCache(nd_splu_solver(msh.points))
    if method == "fct":
        stepper: Any = FCTStepper(scheme, M, K, ml, dt, bc_rows=bc, passes=fct_kw["passes"],
                                  tol=fct_kw["tol"], method=fct_kw["method"], solver=solver)
    elif method == "upwind":
        import scipy.sparse as sps

        from ..fct import discrete_upwind_scipy

        stepper = GalerkinStepper(scheme, sps.diags(ml).tocsr(), discrete_upwind_scipy(K), dt, bc_rows=bc,
                                  solver=solver)
    else:
        stepper = GalerkinStepper(scheme, M, K, dt, bc_rows=bc, solver=solver)

    update = OperatorUpdate(wf.bilinear, basis, state, tsym, stepper, M, K, dt, method=method,
                            supg=(M_galerkin, c, D, msh.cell_diameters()) if method == "supg" else None)

    def weighted(g: Any, b: Any = None) -> np.ndarray:
        """∫ g φ_i; for the Gibbs form ∫ w g φ_i (the recorder dots it with the unknown u, p = w u)."""
        if gibbs is None:
            return assemble_weighted(g, basis if b is None else b, state)
        return assemble_weighted(sp.sympify(g) * gibbs[0], gb if b is None else b, state)

    # observables: weight vectors ∫ g φ_i assembled once (dotted with u); the entropies' vertex
    # weights m_i = ∫ w φ_i / w_i act on the nodal density p
    expectations = {name: sp.sympify(expr) for name, expr in dict(expectations or {}).items()}
    for name, e in expectations.items():
        extra = e.free_symbols - set(state)
        if extra:
            raise InputError(f"{where}: expectation {name!r} = {e} has symbols {sorted(map(str, extra))} "
                             "that are not state variables")
    skfem = require_skfem(where)
    regions = {name: weighted(1, skfem.Basis(sk.mesh, sk.element(1), elements=msh.region_cells(name),
                                             intorder=3 if gibbs is None else GIBBS_INTORDER))
               for name in msh.region_names}
    vectors = weight_vectors(ml, weighted, list(state), expectations, regions)
    log_nodes = None
    if rho is not None:
        log_rho = sp.expand_log(sp.log(sp.sympify(rho)), force=True)
        with np.errstate(all="ignore"):
            lv = np.asarray(lambdify(log_rho, state)(np.ascontiguousarray(msh.points.T)), dtype=float)
        if np.all(np.isfinite(lv)):
            log_nodes = lv - lv.max()
    recorder = NodalObservables(vectors, d, ml if gibbs is None else ml / gibbs[1],
                                expectations=list(expectations),
                                regions=msh.region_names,
                                log_stationary=log_nodes)

    u0 = initial_nodal(p0, msh, state, ml_plain)
    if gibbs is not None:  # the unknown u = p/w, at unit mass of the density actually evolved (Σ ml_i u_i)
        u0 = u0 / gibbs[1]
        u0 = u0 / float(ml @ u0)
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
            before_step=update if tsym is not None else None, timings=timings,
            density=None if gibbs is None else (lambda v: v * gibbs[1]))
    density = u if gibbs is None else u * gibbs[1]
    loop_s = time.perf_counter() - t_loop
    observables = recorder.arrays()
    observables["wall"] = np.array(wall_tr.ratios)
    info = solve_info(
        backend="skfem", domain=domain_note or str(msh), wall_ratios=wall_tr.ratios, scheme=scheme,
        method=method, reason=why, report=report, dt=dt, steps=n_steps, iterations=stepper.iterations,
        assemble_seconds=assemble_s + update.seconds, time_dependent=tsym is not None,
        assemblies=update.assemblies, loop_seconds=loop_s, setup_seconds=setup_s, dofs=len(msh.points),
        absorbing=parts, ranks=1)
    info["factorisations"] = solver.factorisations
    info["factorisation_requests"] = stepper.factorisations
    info["factorisation_cache_hits"] = solver.hits
    if method == "fct":
        info["fct_mean_alpha"] = stepper.mean_alpha()
        info["fct_cn_fallback_steps"] = stepper.fallback_steps
    return Solution(times=np.array(obs_tr.times), observables=observables, mesh=msh, sde=sde,
                    density=density,
                    snapshots=snap_tr.snapshots, info=info,
                    timings={"setup": setup_s, "assemble": assemble_s, "step": timings.get("step"),
                             "output": timings.get("output")})
