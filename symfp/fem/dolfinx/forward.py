r"""The forward Fokker–Planck solver: :math:`\partial_t p = -\nabla\cdot J`, :math:`J = bp - \nabla\cdot(Dp)`.

Space: P1 Lagrange on the mesh; the weak form comes from :func:`symfp.symbolic.weakform.forward_form`
(flux form :math:`\int \partial_t p\, v + \int (D\nabla p)\cdot\nabla v - \int p\, c\cdot\nabla v = 0`,
:math:`c = b - \nabla\cdot D`). Zero flux is the natural condition (nothing is imposed, mass is
conserved); absorbing boundary parts, named, get :math:`p = 0` (rows of the system replaced by the
identity). Stabilisation is chosen by the cell Péclet number (see :mod:`symfp.fem.dolfinx.stabilise`);
``"fct"`` runs its own two-solve step (:mod:`symfp.fem.dolfinx.fct`).

Time: with mass matrix M and operator matrix K (assembled once),

- ``"euler"`` (backward Euler, order 1): :math:`(M + \Delta t K) p^{n+1} = M p^n`;
- ``"cn"`` (Crank–Nicolson, order 2):
  :math:`(M + \tfrac{\Delta t}2 K) p^{n+1} = (M - \tfrac{\Delta t}2 K)p^n`;
- ``"bdf2"`` (order 2, L-stable): :math:`(\tfrac32 M + \Delta t K)p^{n+1} = M(2p^n - \tfrac12 p^{n-1})`,
  started by one backward-Euler step (local error :math:`O(\Delta t^2)`, so the order stays 2).

One KSP per system matrix, built once and reused every step (GMRES + block Jacobi/ILU by default: the
time-step matrix is well conditioned, and this measured 4× faster than BoomerAMG on 2.6·10⁵ dofs);
``petsc_options`` override the defaults. The tolerance is tight (rtol 1e-12) because the discrete
mass :math:`\mathbf 1^\top M p` changes exactly by the summed residual: it is what keeps mass at
round-off. A time-homogeneous SDE needs no re-assembly during the run (``info["operator_assemblies"]``
is 1). When ``SDE.time`` is set and drift or diffusion depend on it (learning-rate or noise schedules),
the time symbol is a ``dolfinx.fem.Constant`` in the UFL forms (compiled once) and the operator matrix
is re-assembled once per step at the time level of the scheme: :math:`K(t_{n+1})` for backward Euler
and BDF2, the trapezoidal pair :math:`(M + \tfrac{\Delta t}2K^{n+1})p^{n+1} = (M - \tfrac{\Delta t}2K^n)p^n`
for Crank–Nicolson (second order), likewise FCT's target with its predictor at :math:`t_{n+1}`; the KSP
is kept and given the new operator. The Péclet test then takes the worst of 9 times in [0, t_end].

After every step the mass (when nothing absorbs) and the positivity are checked: a relative mass
change above ``mass_tol`` or a nodal density below ``-negative_tol × max p`` raises
:class:`~symfp.errors.SolverError` naming the step. Observables are recorded every ``output_every``
steps and at the end (:mod:`symfp.fem.dolfinx.observables`).
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sympy as sp

from ...errors import InputError, SolverError
from ...symbolic.datamean import has_data_nodes
from ..checks import check_fe_problem
from ..domain import DomainWarning, auto_domain, boundary_dofs
from ..problem import check_mesh_dimension
from . import compat, solvers
from .fct import FluxCorrectedStep
from .initial import interpolate_density
from .lowering import lower_terms
from .mesh import Mesh, as_mesh
from .observables import ObservableRecorder
from .solution import Solution
from .stabilise import PecletReport, cell_peclet, choose, discrete_upwind
from .translate import cell_mean_functions, prefetch_data_coefficients, to_ufl

SCHEMES = ("euler", "cn", "bdf2")

#: unique PETSc option prefixes for the time-step KSPs of every solve in this process
_KSP_PREFIXES = itertools.count(1)


def _as_fokker_planck(fp: Any) -> Any:
    if hasattr(fp, "stationary_density") and hasattr(fp, "sde"):
        return fp
    if hasattr(fp, "fokker_planck"):
        return fp.fokker_planck()
    raise InputError(f"solve: expected a symfp.FokkerPlanck or symfp.SDE, got {type(fp).__name__}")


def _check_times(t_end: Any, dt: Any) -> tuple[float, float, int]:
    try:
        t_end, dt = float(t_end), float(dt)
    except (TypeError, ValueError) as exc:
        raise InputError(f"solve: t_end and dt must be numbers, got t_end={t_end!r}, dt={dt!r}") from exc
    if not (math.isfinite(dt) and dt > 0):
        raise InputError(f"solve: dt = {dt!r} must be a positive finite number")
    if not math.isfinite(t_end):
        raise InputError(f"solve: t_end = {t_end!r} must be a finite time; for the long-time law use "
                         "symfp.fem.dolfinx.stationary.stationary_density(sde, mesh)")
    if t_end < dt * (1 - 1e-12):
        raise InputError(f"solve: t_end = {t_end!r} must be at least dt = {dt!r}; lower dt or raise t_end")
    n = max(1, int(round(t_end / dt)))
    return t_end, t_end / n, n


def _is_number(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _ufl_coefficients(D: sp.Matrix, c: sp.Matrix, state: tuple[sp.Symbol, ...], x: Any,
                      symbols: Mapping[sp.Symbol, Any] | None = None) -> tuple[Any, Any]:
    ufl = compat.dolfinx_modules().ufl
    d = len(state)
    Dm = ufl.as_matrix([[to_ufl(D[i, j], state, x, symbols) for j in range(d)] for i in range(d)])
    cm = ufl.as_vector([to_ufl(c[i], state, x, symbols) for i in range(d)])
    return Dm, cm


def _lambdified(expr: sp.Matrix, state: tuple[sp.Symbol, ...], tsym: sp.Symbol | None = None,
                t: float = 0.0) -> Any:
    from ..coefficients import numpy_function  # data-means evaluate over the samples

    if tsym is None:
        return _as_lists(numpy_function(sp.Matrix(expr), state))
    return _as_lists(numpy_function(sp.Matrix(expr).subs(tsym, t), state))


def _as_lists(f: Any) -> Any:
    """``f`` returning nested lists like ``sp.lambdify(state, M.tolist())`` does."""
    def g(*args: Any) -> Any:
        out = f(*args)
        if isinstance(out, np.ndarray) and out.ndim >= 2:  # (rows, cols, *points)
            return [[out[i, j] for j in range(out.shape[1])] for i in range(out.shape[0])]
        return out
    return g


def _peclet(msh: Any, c: sp.Matrix, D: sp.Matrix, state: tuple[sp.Symbol, ...], tsym: sp.Symbol | None,
            t_end: float) -> Any:
    """Cell Péclet report; for time-dependent coefficients the worst over 9 times in [0, t_end]."""
    d = len(state)
    if tsym is None:
        if has_data_nodes(c) or has_data_nodes(D):  # from the P1 interpolants: no pass at the midpoints
            return cell_peclet(msh, *cell_mean_functions(c, D, state, msh), d)
        return cell_peclet(msh, _lambdified(c, state), _lambdified(D, state), d)
    reports = [cell_peclet(msh, _lambdified(c, state, tsym, t), _lambdified(D, state, tsym, t), d)
               for t in np.linspace(0.0, t_end, 9)]
    return PecletReport(max(r.max_peclet for r in reports), any(r.degenerate for r in reports))


#: smallest min ρ / max ρ on the mesh for which the Gibbs-symmetrised form is used (see gibbs_log_range)
GIBBS_MIN_RATIO = 1e-250
GIBBS_MIN_LOG_RATIO = math.log(GIBBS_MIN_RATIO)


def gibbs_log_range(log_rho: sp.Expr, state: tuple[sp.Symbol, ...], dofx: np.ndarray, n_owned: int,
                    comm: Any) -> tuple[np.ndarray, float, float]:
    r"""Nodal :math:`\ln\rho`, its maximum and its range :math:`\min\ln\rho - \max\ln\rho` (collective).

    The Gibbs weight is evaluated as :math:`\rho/\max\rho = \exp(\ln\rho - \max_h \ln\rho)`, e.g.
    :math:`\exp(-(f - f_{\min})/\varepsilon)`, never as :math:`e^{-f/\varepsilon}` (which under- or
    overflows once :math:`|f|/\varepsilon \gtrsim 708`). Even shifted, the weight is representable only
    while :math:`\min\rho/\max\rho` stays well inside double precision (smallest normal ≈ 2.2e-308; the
    unknown :math:`u = p/\rho` and the diagonal scaling of the KSP also need head-room): below
    :data:`GIBBS_MIN_RATIO` = 1e-250 an explicit ``"gibbs"`` is refused. E.g. the double well
    :math:`f = \theta^4/4 - \theta^2/2` on [-2.5, 2.5] has :math:`f_{\max} - f_{\min} = 6.89`, so
    :math:`\varepsilon = 0.003` gives a range :math:`e^{-2297} \approx 10^{-998}`.

    Returns:
        (values at all local dofs, global maximum over owned dofs, global min − max over owned dofs).
    """
    MPI = compat.dolfinx_modules().MPI
    lr = sp.lambdify(state, log_rho, "numpy")
    with np.errstate(all="ignore"):
        vals = np.broadcast_to(np.asarray(lr(*dofx.T), dtype=float), (len(dofx),)).copy()
    own = vals[:n_owned]
    finite = own[np.isfinite(own)]
    hi = comm.allreduce(float(finite.max()) if len(finite) else -np.inf, op=MPI.MAX)
    # a non-finite log rho (rho = 0 or inf at a node) is an infinite range
    lo = -np.inf if len(finite) < len(own) else (float(own.min()) if len(own) else np.inf)
    lo = comm.allreduce(lo, op=MPI.MIN)
    return vals, hi, lo - hi


def solve(
    fp: Any,
    mesh: Any,
    p0: Any,
    t_end: float,
    dt: float,
    scheme: str | None = None,
    absorbing: str | Sequence[str] | None = None,
    petsc_options: Mapping[str, Any] | None = None,
    output_every: int = 1,
    stabilisation: str = "auto",
    progress: bool = True,
    expectations: Mapping[str, Any] | None = None,
    keep: str = "final",
    mass_tol: float = 1e-9,
    negative_tol: float = 1e-3,
    wall_tol: float = 1e-6,
    domain_options: Mapping[str, Any] | None = None,
    fct_options: Mapping[str, Any] | None = None,
) -> Solution:
    r"""Solve the forward Fokker–Planck equation of ``fp`` on ``mesh`` from ``p0`` up to ``t_end``.

    Args:
        fp: a :class:`symfp.FokkerPlanck` (or a :class:`symfp.SDE`), numeric (no free parameters).
        mesh: a :class:`symfp.fem.dolfinx.mesh.Mesh`, a dolfinx mesh or a gmsh file path; its dimension must
            equal the number of state variables. ``None`` or ``"auto"``: a box derived from p0 and the
            stationary law (:func:`symfp.fem.domain.auto_domain`; ``info["domain"]`` says how).
        p0: initial density: SymPy expression in the state, callable ``f(X)`` with X of shape (d, n), or
            a point (smoothed delta); normalised to unit mass.
        t_end: final time (≥ dt); dt is adjusted down so that a whole number of steps reaches t_end.
        dt: time step (> 0).
        scheme: "bdf2" (default), "cn" or "euler"; with the "upwind" and "gibbs" stabilisations
            (lumped mass) the default is "euler", the only one of the three that keeps p ≥ 0. With
            "fct" the scheme is that of the high-order target: "cn" (default) or "euler" (the
            low-order predictor is backward Euler), or "bdf2" (lumped BDF2 predictor and BDF2 target,
            :meth:`symfp.fem.fct.FCTLimiter.fluxes_bdf2`; time-independent coefficients).
        absorbing: boundary part name(s) where p = 0 (the process is killed); the rest reflects.
        petsc_options: PETSc options for the time-step KSP, merged over the strategy that
            :func:`symfp.fem.dolfinx.solvers.ksp_options` chooses by ranks, size and dimension.
        output_every: record observables every this many steps (and at the final time).
        stabilisation: "auto", "none", "gibbs", "fct" (alias "afc"), "upwind" (alias "fitted") or
            "supg"; see
            :mod:`symfp.fem.dolfinx.stabilise` for what each does and when "auto" picks it.
        progress: show a tqdm progress bar on rank 0 (runs of 200 steps or more).
        expectations: ``{name: SymPy expression in the state}`` recorded as ``E[name]``.
        keep: "final" stores the final density; "all" stores it at every output time (for
            ``Solution.eval(points, t)`` and the XDMF series).
        mass_tol: allowed relative mass change (no absorbing parts) before a SolverError.
        negative_tol: allowed negative nodal density relative to the maximum before a SolverError
            (consistent-mass Galerkin undershoots by ~1e-4 of the maximum in steep transients).
        wall_tol: at every output time the largest density on the reflecting boundary over the largest
            density is recorded (observable ``"wall"``); above ``wall_tol`` a
            :class:`symfp.fem.domain.DomainWarning` says the domain is too small. (1e-6 is the value of
            a Gaussian ≈ 5.3 σ from its mean: the mass beyond the wall is then ≲ 1e-7.)
        domain_options: options of :func:`symfp.fem.domain.estimate` for the automatic box
            (``mass_tol``, ``min_std``, ``cells_per_std``, ``min_cells``, ``max_dofs``).
        fct_options: limiter controls of ``"fct"`` (:class:`symfp.fem.dolfinx.fct.FluxCorrectedStep`):
            ``passes`` (most Zalesak passes per step, default 50) and ``tol`` (stop when a pass moves,
            or leaves, less than ``tol`` × the raw flux; default 1e-3). ``{"passes": 100, "tol": 0}``
            runs the iterated limiter to (near) convergence: more accurate where the passes stagnate
            (thin oblique valleys, see ``docs/internals.md``), several times the limiter's cost.

    Returns:
        :class:`symfp.fem.dolfinx.solution.Solution`.

    Raises:
        MeshError: dimension mismatch, unknown absorbing part (the message lists the parts).
        InputError: dt ≤ 0, t_end < dt, unknown scheme/stabilisation, bad p0, free parameters.
        SolverError: KSP divergence (PETSc's reason), mass loss or negativity beyond tolerance (step).
    """
    from ...symbolic.weakform import forward_form

    m = compat.dolfinx_modules()
    ufl, fem = m.ufl, m.fem
    fp = _as_fokker_planck(fp)
    sde = fp.sde
    state = tuple(sde.state)
    d = len(state)
    domain_note = None
    if mesh is None or (isinstance(mesh, str) and mesh == "auto"):
        mesh, est = auto_domain(fp, p0, t_end=float(t_end) if _is_number(t_end) else None,
                                **dict(domain_options or {}))
        domain_note = est.describe()
    msh: Mesh = as_mesh(mesh)
    check_mesh_dimension(msh.dim, state, "solve")
    check_fe_problem(sde, msh, "solve")
    t_end, dt, n_steps = _check_times(t_end, dt)
    fct_kw = {"passes": 50, "tol": 1e-3}
    unknown = set(fct_options or {}) - set(fct_kw)
    if unknown:
        raise InputError(f"solve: fct_options has unknown keys {sorted(unknown)} (known: passes, tol)")
    fct_kw.update(fct_options or {})
    if not (isinstance(fct_kw["passes"], int) and fct_kw["passes"] >= 1 and _is_number(fct_kw["tol"])
            and float(fct_kw["tol"]) >= 0):
        raise InputError(f"solve: fct_options={dict(fct_options or {})!r}: passes must be an int ≥ 1 and "
                         "tol a number ≥ 0")
    if scheme is not None and scheme not in SCHEMES:
        raise InputError(f"solve: scheme={scheme!r} is not one of {', '.join(SCHEMES)}")
    if not isinstance(output_every, int) or output_every < 1:
        raise InputError(f"solve: output_every={output_every!r} must be a positive int (steps)")
    if keep not in ("final", "all"):
        raise InputError(f"solve: keep={keep!r} must be 'final' or 'all'")
    parts = () if absorbing is None else ((absorbing,) if isinstance(absorbing, str) else tuple(absorbing))
    for name in parts:
        msh.boundary_facets(name)  # raises MeshError listing the names it has
    wf = forward_form(sde)
    if wf.parameters:
        raise InputError(f"solve: the Fokker–Planck equation still has free parameters "
                         f"{sorted(map(str, wf.parameters))}; substitute numbers with .subs({{...}}) first")
    D = sp.Matrix(sde.diffusion)
    c = -sp.Matrix(next(t for t in wf.bilinear if t.kind == "advection").coefficient)
    # explicit time dependence (schedules): the time symbol becomes a dolfinx Constant set at every step
    tsym = None if wf.is_autonomous else wf.time

    t_setup = time.perf_counter()
    # ---- stabilisation choice by the cell Péclet number
    report = _peclet(msh.mesh, c, D, state, tsym, t_end)
    gibbs_wf = None
    gibbs_note = None
    convective = report.max_peclet > 1 and not report.degenerate
    V = compat.function_space(msh.mesh)
    dofx = V.tabulate_dof_coordinates()[:, :d]
    n_owned = V.dofmap.index_map.size_local
    # the closed-form stationary density, through log rho shifted by its maximum on the mesh (exp(-f/eps)
    # itself underflows at small eps: see gibbs_log_range)
    try:
        rho = fp.stationary_density()
    except Exception:  # noqa: BLE001 - a closed form is optional
        rho = None
    log_rho = shift = log_vals = None
    if rho is not None:
        log_rho = sp.expand_log(sp.log(sp.sympify(rho)), force=True)
        log_vals, shift, log_range = gibbs_log_range(log_rho, state, dofx, n_owned, msh.comm)
    if stabilisation == "gibbs" or (stabilisation == "auto" and convective):
        try:
            gibbs_wf = forward_form(sde, symmetrised=True)
        except InputError as exc:
            if stabilisation == "gibbs":
                raise InputError(f"solve: stabilisation='gibbs' is not available: {exc}") from exc
        if gibbs_wf is not None and log_rho is not None and log_range < GIBBS_MIN_LOG_RATIO:
            gibbs_note = (f"the Gibbs weight rho spans {-log_range / math.log(10):.0f} decades on the mesh "
                          f"(min rho / max rho = 10^{log_range / math.log(10):.0f} < {GIBBS_MIN_RATIO:g}), "
                          "beyond double precision")
            if stabilisation == "gibbs":
                raise InputError(
                    f"solve: stabilisation='gibbs' cannot be used here: {gibbs_note}, so p = rho u and the "
                    "rho-weighted matrices underflow (zero rows, division by 0). Use stabilisation='fct' "
                    "(positive, conservative; what 'auto' picks here), a smaller domain, or a larger noise")
            gibbs_wf = None
    method, why = choose(stabilisation, report, gibbs_wf is not None, gibbs_note)
    if scheme is None:
        # lumped M-matrix systems keep p ≥ 0 under backward Euler only (BDF2's 2p^n - p^{n-1}/2 and
        # CN's explicit half step can undershoot): the positivity-preserving methods default to it
        scheme = "euler" if method in ("upwind", "gibbs") else ("cn" if method == "fct" else "bdf2")
    if method == "fct" and scheme == "bdf2" and tsym is not None:
        raise InputError("solve: stabilisation='fct' with scheme='bdf2' needs time-independent coefficients; "
                         "with a schedule use scheme='cn' (the default for FCT) or 'euler'")

    # ---- spaces, coefficients, stationary density (for relative entropy)
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    x = ufl.SpatialCoordinate(msh.mesh)
    t_c = None
    symbols: dict[sp.Symbol, Any] = {}
    if tsym is not None:
        t_c = fem.Constant(msh.mesh, 0.0)
        symbols[tsym] = t_c
    divs = [sum(sp.diff(c[i], s) for i, s in enumerate(state))] + [
        sum(sp.diff(D[i, j], state[j]) for j in range(d)) for i in range(d)] if method == "supg" else []
    prefetch_data_coefficients([*D, *c, *divs], state, x)  # data-means of all entries in one pass
    Dm, cm = _ufl_coefficients(D, c, state, x, symbols)
    log_rho_nodes = None
    rho_nodes = None
    weight = None
    if log_rho is not None:
        log_rho_nodes = log_vals[:n_owned] - shift
        if method == "gibbs":
            weight = ufl.exp(to_ufl(log_rho, state, x) - shift)
            rho_nodes = np.exp(log_vals - shift)

    # ---- forms and matrices (assembled once)
    if method == "gibbs":
        a_mass = weight * u * v * ufl.dx
        a_op = weight * ufl.inner(Dm * ufl.grad(u), ufl.grad(v)) * ufl.dx
    else:
        a_mass = u * v * ufl.dx
        # the IR's terms (diffusion D, advection −c), lowered once (symfp.fem.dolfinx.lowering)
        a_op = lower_terms(wf.bilinear, state, u, v, x, symbols) * ufl.dx
        if method == "supg":
            # the one SUPG weight (symfp.fem.stabilisation.supg_weight), as for the exit time
            from ..stabilisation import supg_weight

            a2 = ufl.inner(cm, cm)
            tau = supg_weight(a2, ufl.inner(cm, Dm * cm) / (a2 + 1e-300), ufl.CellDiameter(msh.mesh),
                              sqrt=ufl.sqrt)
            divc = to_ufl(sum(sp.diff(c[i], s) for i, s in enumerate(state)), state, x, symbols)
            divD = ufl.as_vector([to_ufl(sum(sp.diff(D[i, j], state[j]) for j in range(d)), state, x, symbols)
                                  for i in range(d)])
            test = tau * ufl.inner(cm, ufl.grad(v))
            a_mass = a_mass + test * u * ufl.dx
            residual = ufl.inner(cm, ufl.grad(u)) + divc * u - ufl.inner(divD, ufl.grad(u))
            a_op = a_op + test * residual * ufl.dx
    t0 = time.perf_counter()
    # forms compiled once; with explicit time dependence re-assembled at every step (t_c updated)
    a_op_c, a_mass_c = compat.form(a_op), compat.form(a_mass)
    mass_td = tsym is not None and method == "supg"  # SUPG's test function carries c(t)
    if t_c is not None:
        t_c.value = 0.0
    K = compat.assemble_matrix(a_op_c)
    n_assemblies = 1
    ml = None
    K_high = M_high = None
    K_galerkin = K
    if method == "fct":
        # the Galerkin pair (target) is kept; the low-order pair (lumped, upwinded) is built below
        K_high = K
        M_high = compat.assemble_matrix(a_mass_c)
    if method in ("upwind", "gibbs", "fct"):
        # lumped (row-sum) mass: diagonal, positive, and with column sums equal to the mass weights
        # ∫ w φ_i used by the observables, so the recorded mass is conserved to the KSP residual
        if method in ("upwind", "fct"):
            K = discrete_upwind(K)
        ml = compat.assemble_vector(compat.form((weight if weight is not None else 1.0) * v * ufl.dx))
        M = K.duplicate(copy=False)
        M.zeroEntries()
        M.setDiagonal(ml)
        M.assemble()
    else:
        M = compat.assemble_matrix(a_mass_c)
    assemble_s = time.perf_counter() - t0

    # absorbing parts: owned dofs, global numbering
    bc_rows = np.zeros(0, dtype=np.int32)
    if parts:
        facets = np.concatenate([msh.boundary_facets(n) for n in parts]).astype(np.int32)
        msh.mesh.topology.create_connectivity(d - 1, d)
        local = fem.locate_dofs_topological(V, d - 1, np.unique(facets))
        local = np.asarray(local)[np.asarray(local) < n_owned]
        bc_rows = (local + V.dofmap.index_map.local_range[0]).astype(np.int32)

    def system(alpha: float, beta: float) -> Any:
        A = M.copy()
        A.scale(alpha)
        A.axpy(beta, K)
        if parts:  # collective: every rank calls it, possibly with no rows
            A.zeroRows(bc_rows, diag=1.0)
        return A

    opts = solvers.ksp_options(
        "time_step", ranks=msh.comm.size, dofs=compat.num_global_dofs(V), dim=d, constant=tsym is None,
        steps=n_steps,
    )
    if method == "gibbs":
        # the weight rho spans many decades: scale the system symmetrically by its diagonal so that
        # ILU's zero-pivot test and the Krylov residual see an O(1) matrix
        opts.update(ksp_diagonal_scale=True, ksp_diagonal_scale_fix=True)
    opts = solvers.merge(opts, petsc_options)

    def ksp_for(A: Any) -> Any:
        ksp = compat.make_ksp(A, msh.comm, opts, prefix=f"symfp_fp{next(_KSP_PREFIXES)}_")
        if ksp.getType() != "preonly":
            ksp.setInitialGuessNonzero(True)
        return ksp

    def fct_systems(K_new: Any, K_old: Any) -> tuple[Any, Any, Any]:
        r"""FCT's matrices from :math:`K^{n+1}` = ``K_new`` and :math:`K^n` = ``K_old`` (Galerkin).

        Returns:
            predictor :math:`M_L + \Delta t K_L`, target :math:`M_C + \theta\Delta t K^{n+1}` (absorbing
            rows replaced), its right-hand side :math:`M_C - (1-\theta)\Delta t K^n` (None at θ = 1).
        """
        A_hi = M_high.copy()
        A_hi.axpy(theta * dt, K_new)
        if parts:
            A_hi.zeroRows(bc_rows, diag=1.0)
        B_hi = None
        if theta < 1:
            B_hi = M_high.copy()
            B_hi.axpy(-(1 - theta) * dt, K_old)
        return system(1.0, dt), A_hi, B_hi

    fct_step = None
    bdf2_ksps: list[Any] = []
    if method == "fct":
        theta = 0.5 if scheme == "cn" else 1.0
        A_low, A_high, B_high = fct_systems(K_high, K_high)
        ksp_low, ksp_high = ksp_for(A_low), ksp_for(A_high)
        fct_counter = [0]

        def _fct_solver(ksp: Any) -> Any:
            def run(rhs: Any, x_vec: Any) -> int:
                if parts:
                    rhs.setValues(bc_rows, np.zeros(len(bc_rows)))
                    rhs.assemble()
                return _solve_step(ksp, rhs, x_vec, fct_counter[0], dt, opts)
            return run

    if method == "fct":
        A_main = A_low
        rhs_ops = [(M, 1.0)]
    elif scheme == "euler":
        A_main = system(1.0, dt)
        rhs_ops = [(M, 1.0)]
    elif scheme == "cn":
        A_main = system(1.0, 0.5 * dt)
        B = M.copy()
        B.axpy(-0.5 * dt, K)
        rhs_ops = [(B, 1.0)]
    else:
        A_main = system(1.5, dt)
        rhs_ops = [(M, 2.0), (M, -0.5)]
    if method == "fct":
        ksp_main = ksp_first = ksp_low
    else:
        ksp_main = ksp_for(A_main)
        ksp_first = ksp_for(system(1.0, dt)) if scheme == "bdf2" else ksp_main

    def advance_operators(step: int) -> None:
        r"""Time-dependent coefficients: the matrices of the step to :math:`t_{n+1}` = step·dt.

        Backward Euler and BDF2 use :math:`K(t_{n+1})`; Crank–Nicolson the trapezoidal pair
        :math:`(M + \tfrac{\Delta t}2 K(t_{n+1}))p^{n+1} = (M - \tfrac{\Delta t}2 K(t_n))p^n` (with SUPG's
        time-dependent mass matrix at the midpoint :math:`\tfrac12(M(t_n) + M(t_{n+1}))`); FCT the same
        for its Galerkin target and :math:`K_L(t_{n+1})` for its backward-Euler predictor. One
        assembly of K per step (K(t_n) is the previous step's); the form was compiled once.
        """
        nonlocal K, M, K_galerkin, n_assemblies, rhs_ops
        K0, M0, K0_gal = K, M, K_galerkin
        t_c.value = step * dt
        K_galerkin = compat.assemble_matrix(a_op_c)
        n_assemblies += 1
        if mass_td:
            M = compat.assemble_matrix(a_mass_c)
        K = discrete_upwind(K_galerkin) if method in ("upwind", "fct") else K_galerkin
        if method == "fct":
            A_low, A_high, B_high = fct_systems(K_galerkin, K0_gal)
            ksp_low.setOperators(A_low)
            ksp_high.setOperators(A_high)
            fct_step.set_operators(K_galerkin, B_high)
            return
        first = scheme == "bdf2" and step == 1
        if scheme == "cn":
            Mbar = M
            if mass_td:
                Mbar = M0.copy()
                Mbar.scale(0.5)
                Mbar.axpy(0.5, M)
            A = Mbar.copy()
            A.axpy(0.5 * dt, K)
            if parts:
                A.zeroRows(bc_rows, diag=1.0)
            B_cn = Mbar.copy()
            B_cn.axpy(-0.5 * dt, K0)
            rhs_ops = [(B_cn, 1.0)]
        elif scheme == "euler" or first:
            A = system(1.0, dt)
            rhs_ops = [(M, 1.0)]
        else:
            A = system(1.5, dt)
            rhs_ops = [(M, 2.0), (M, -0.5)]
        (ksp_first if first else ksp_main).setOperators(A)

    # ---- initial state
    p_init = interpolate_density(p0, V, state, where="solve")
    uh = fem.Function(V)
    uh.name = "density"
    if method == "gibbs":
        uh.x.array[:] = p_init.x.array / rho_nodes
    else:
        uh.x.array[:] = p_init.x.array
    u_vec = compat.petsc_vec(uh)
    u_prev = u_vec.copy()
    b = u_vec.duplicate()
    tmp = u_vec.duplicate()

    regions = dict(msh.regions) if msh.cell_tags is not None else {}
    rec = ObservableRecorder(V, state, weight=weight, expectations=expectations, regions=regions,
                             cell_tags=msh.cell_tags, log_stationary=log_rho_nodes,
                             nodal_weight=None if rho_nodes is None else rho_nodes[:n_owned])
    if ml is not None:
        rec.set_mass_weights(ml)
    mass_w = rec.mass_weights

    def nodal_density() -> np.ndarray:
        arr = u_vec.array  # the owned entries
        return arr * rho_nodes[:n_owned] if rho_nodes is not None else arr

    snapshots: dict[float, np.ndarray] = {}
    times: list[float] = []
    wall_idx = boundary_dofs(V, msh, exclude=parts)
    wall: list[float] = []

    def output(step: int) -> None:
        t = step * dt
        pn = nodal_density()
        row = rec.record(t, u_vec, pn)
        # density on the reflecting walls relative to the maximum (one reduction per output)
        # (the positive part: Galerkin undershoots are the business of negative_tol)
        on_wall = msh.comm.allreduce(max(float(pn[wall_idx].max()), 0.0) if len(wall_idx) else 0.0,
                                     op=m.MPI.MAX)
        wall.append(on_wall / row["max"] if row["max"] > 0 else 0.0)
        times.append(t)
        if keep == "all" or step == n_steps:
            snapshots[t] = pn.copy()

    # unit mass of the discrete density actually evolved (for Gibbs ∫ rho I_h(p0/rho) ≠ ∫ I_h(p0) exactly)
    u_vec.scale(1.0 / mass_w.dot(u_vec))
    uh.x.scatter_forward()
    mass0 = mass_w.dot(u_vec)
    if method == "fct":
        fct_step = FluxCorrectedStep(V, M_high, K_high, ml, dt, theta, _fct_solver(ksp_low),
                                     _fct_solver(ksp_high), B_high, bc_rows,
                                     max_iterations=fct_kw["passes"], tol=fct_kw["tol"])
        if scheme == "bdf2":
            # BDF2 pair (lumped BDF2 predictor, Galerkin BDF2 target) and the CN fallback target
            A_hi2 = M_high.copy()
            A_hi2.scale(1.5)
            A_hi2.axpy(dt, K_high)
            A_cn = M_high.copy()
            A_cn.axpy(0.5 * dt, K_high)
            if parts:
                A_hi2.zeroRows(bc_rows, diag=1.0)
                A_cn.zeroRows(bc_rows, diag=1.0)
            B_cn = M_high.copy()
            B_cn.axpy(-0.5 * dt, K_high)
            bdf2_ksps = [ksp_for(system(1.5, dt)), ksp_for(A_hi2), ksp_for(A_cn)]
            fct_step.set_bdf2(*(_fct_solver(k) for k in bdf2_ksps), B_cn)
    output(0)
    iterations = 0
    bar = None
    if progress and msh.comm.rank == 0 and n_steps >= 200:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_steps, desc="Fokker-Planck", unit="step", leave=False)
    setup_s = time.perf_counter() - t_setup
    clock = time.perf_counter
    step_s = np.zeros(n_steps)
    ksp_s = np.zeros(n_steps)
    output_s = np.zeros(n_steps)
    t_loop = clock()
    try:
        for step in range(1, n_steps + 1):
            t_step = clock()
            first = scheme == "bdf2" and step == 1
            if tsym is not None:
                t_as = clock()
                advance_operators(step)
                assemble_s += clock() - t_as
            if fct_step is not None:
                fct_counter[0] = step
                t_ksp = clock()
                iterations += fct_step.step(uh, u_vec)
                ksp_s[step - 1] = clock() - t_ksp  # both solves and the flux correction
            else:
                if first:
                    M.mult(u_vec, b)
                else:
                    op, coef = rhs_ops[0]
                    op.mult(u_vec, b)
                    if coef != 1.0:
                        b.scale(coef)
                    if len(rhs_ops) > 1:
                        op2, coef2 = rhs_ops[1]
                        op2.mult(u_prev, tmp)
                        b.axpy(coef2, tmp)
                if parts:
                    b.setValues(bc_rows, np.zeros(len(bc_rows)))
                    b.assemble()
                if scheme == "bdf2":
                    u_vec.copy(u_prev)
                ksp = ksp_first if first else ksp_main
                t_ksp = clock()
                iterations += _solve_step(ksp, b, u_vec, step, dt, opts)
                ksp_s[step - 1] = clock() - t_ksp
                uh.x.scatter_forward()
            _check_step(step, dt, mass_w.dot(u_vec), mass0, nodal_density(), msh.comm, parts, mass_tol,
                        negative_tol, method)
            if step % output_every == 0 or step == n_steps:
                t_out = clock()
                output(step)
                output_s[step - 1] = clock() - t_out
            step_s[step - 1] = clock() - t_step
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    loop_s = time.perf_counter() - t_loop
    wall_arr = np.array(wall)
    if len(wall_arr) and wall_arr.max() > wall_tol:
        i = int(np.argmax(wall_arr > wall_tol))
        warnings.warn(DomainWarning(
            f"solve: probability mass reached the wall of the domain: the density on the reflecting "
            f"boundary is {wall_arr.max():.2e} of its maximum (> wall_tol {wall_tol:g}; first at t = "
            f"{times[i]:g}), so the zero-flux wall changes the law. Use a larger domain (mesh='auto' sizes "
            "one from p0 and the stationary law) or raise wall_tol; see observables['wall']"), stacklevel=2)

    density = fem.Function(V)
    density.name = "density"
    pn = nodal_density()
    density.x.array[: len(pn)] = pn
    density.x.scatter_forward()
    observables = rec.arrays()
    observables["wall"] = wall_arr
    info = {
        "domain": domain_note or str(msh),
        "max_wall_ratio": float(wall_arr.max()) if len(wall_arr) else 0.0,
        "scheme": scheme,
        "stabilisation": method,
        "stabilisation_reason": why,
        "max_cell_peclet": report.max_peclet,
        "degenerate_diffusion": report.degenerate,
        "dt": dt,
        "steps": n_steps,
        "ksp_iterations": iterations,
        "assemble_seconds": assemble_s,
        "time_dependent": tsym is not None,
        "operator_assemblies": n_assemblies,
        "loop_seconds": loop_s,
        "seconds_per_step": loop_s / n_steps,
        "setup_seconds": setup_s,
        "dofs": compat.num_global_dofs(V),
        "absorbing": ",".join(parts),
        "ranks": msh.comm.size,
    }
    from .. import coefficients  # data-mean coefficients: evaluated at the P1 dofs, timed

    info.update(coefficients.TIMER.take())
    if info["coefficient_evaluations"]:
        info["coefficient_space"] = (f"P{coefficients.SPACE[1]} (Lagrange), interpolated at the dofs: "
                                     "PSD kept, error O(h^2)")
    if fct_step is not None:
        info["fct_mean_alpha"] = fct_step.mean_alpha(msh.comm)
        info["fct_cn_fallback_steps"] = fct_step.fallback_steps
        ksp_high.destroy()
        for k in bdf2_ksps:
            k.destroy()
    for ksp in {id(ksp_main): ksp_main, id(ksp_first): ksp_first}.values():
        ksp.destroy()
    return Solution(times=np.array(times), observables=observables, mesh=msh, sde=sde, density=density,
                    snapshots=snapshots, info=info,
                    timings={"setup": setup_s, "assemble": assemble_s, "step": step_s, "ksp": ksp_s,
                             "output": output_s})


def _ksp_advice(reason_name: str, opts: Mapping[str, Any]) -> str:
    """What to try when the time-step KSP stopped with ``reason_name`` under options ``opts``."""
    direct = "a direct solver (petsc_options={'ksp_type': 'preonly', 'pc_type': 'lu'})"
    if reason_name in ("DIVERGED_ITS", "DIVERGED_MAX_IT"):
        return (f"raise petsc_options['ksp_max_it'] (now {opts.get('ksp_max_it')}) or loosen 'ksp_rtol' "
                f"(now {opts.get('ksp_rtol')}; mass is conserved only to about that), use a stronger "
                f"preconditioner than pc_type={opts.get('pc_type')!r} (e.g. 'bjacobi' with 'sub_pc_type': "
                f"'ilu', or 'hypre'), or {direct}")
    if reason_name in ("DIVERGED_PC_FAILED", "DIVERGED_INDEFINITE_PC", "DIVERGED_BREAKDOWN",
                       "DIVERGED_BREAKDOWN_BICG"):
        return (f"the preconditioner {opts.get('pc_type')!r} failed (a zero pivot?): use {direct}, or "
                "'ksp_diagonal_scale': True, or a smaller dt")
    return f"use {direct}, a smaller dt, or a finer mesh; check that p0 and the coefficients are finite"


def _solve_step(ksp: Any, b: Any, u_vec: Any, step: int, dt: float, opts: Mapping[str, Any]) -> int:
    r"""One KSP solve of a time step; SolverError with PETSc's reason and advice when it fails.

    PETSc never raises on its own when a Krylov solve stops early (``ksp_error_if_not_converged`` is
    off), so the converged reason is read after every solve: a negative reason (``DIVERGED_ITS`` when
    ``ksp_max_it`` is reached before :math:`\|r\| \le \max(\mathrm{rtol}\,\|b\|, \mathrm{atol})`,
    ``DIVERGED_PC_FAILED``, ``DIVERGED_NANORINF``, ...) is an error. Note that a solve whose initial
    guess (the previous step) already satisfies the test converges in 0 iterations with a positive
    reason, whatever ``ksp_max_it`` is: e.g. a run started at the stationary density.
    """
    ksp.solve(b, u_vec)
    reason = ksp.getConvergedReason()
    its = ksp.getIterationNumber()
    if reason < 0:
        name = compat.ksp_reason_name(reason)
        rnorm = ksp.getResidualNorm()
        raise SolverError(
            f"solve: the time-step linear solver did not converge at time step {step} (t = {step * dt:g}): "
            f"PETSc reason {name} after {its} iterations (residual norm {rnorm:.3e}, ‖b‖ = {b.norm():.3e}, "
            f"ksp_type={ksp.getType()!r}, pc_type={ksp.getPC().getType()!r}). What to try: "
            f"{_ksp_advice(name, opts)}")
    return its


def _check_step(step: int, dt: float, mass: float, mass0: float, p_nodal: np.ndarray, comm: Any,
                parts: tuple[str, ...], mass_tol: float, negative_tol: float, method: str) -> None:
    """Raise SolverError on mass drift (no absorbing parts) or negativity beyond tolerance."""
    MPI = compat.dolfinx_modules().MPI
    if not parts and abs(mass - mass0) > mass_tol * abs(mass0):
        raise SolverError(
            f"solve: mass drifted from {mass0:.15g} to {mass:.15g} (relative "
            f"{abs(mass - mass0) / abs(mass0):.2e} > mass_tol {mass_tol:g}) at time step {step} "
            f"(t = {step * dt:g}) with no absorbing boundary part, where the zero-flux scheme conserves mass "
            f"up to the linear-solver residual. Tighten the solver (petsc_options={{'ksp_rtol': 1e-14}}) or "
            "use a direct solver ('ksp_type': 'preonly', 'pc_type': 'lu'); if the drift is round-off "
            "(~1e-14 per step), raise mass_tol")
    lo = np.array([-(p_nodal.min() if len(p_nodal) else np.inf), p_nodal.max() if len(p_nodal) else -np.inf])
    glob = np.empty(2)
    comm.Allreduce(lo, glob, op=MPI.MAX)
    pmin, pmax = -glob[0], glob[1]
    if pmin < -negative_tol * pmax:
        hint = ("use stabilisation='fct' (positivity preserving, second order where smooth)"
                if method not in ("upwind", "fct") else "use scheme='euler', or a smaller dt")
        raise SolverError(
            f"solve: negative density {pmin:.3e} (max {pmax:.3e}, relative {-pmin / pmax:.2e} > negative_tol "
            f"{negative_tol:g}) at time step {step} (t = {step * dt:g}) with stabilisation '{method}'; "
            f"{hint}, refine the mesh, or raise negative_tol")
