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

The stepping is the shared loop :func:`symfp.fem.trackers.run` (the same for the scikit-fem backend)
driving a PETSc stepper of :mod:`symfp.fem.dolfinx.steppers` (the schemes above on PETSc matrices and
KSPs; FCT through :class:`symfp.fem.dolfinx.fct.FluxCorrectedStep`); time-dependent operators come from
:class:`OperatorUpdate` before each step. The monitors are trackers: after every step the mass (when
nothing absorbs) and the positivity are checked (a relative mass change above ``mass_tol`` or a nodal
density below ``-negative_tol × max p`` raises :class:`~symfp.errors.SolverError` naming the step);
observables (:class:`symfp.fem.observables.NodalObservables` with the weight vectors of
:mod:`symfp.fem.dolfinx.observables`), the wall ratio and snapshots are recorded every
``output_every`` steps and at the end; a progress bar on rank 0.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from ...errors import InputError
from ...symbolic.datamean import has_data_nodes
from ..checks import check_fe_problem
from ..domain import auto_domain, boundary_dofs
from ..problem import (
    as_fokker_planck,
    check_forward_options,
    check_mesh_dimension,
    check_times,
    is_number,
)
from ..schemes import SCHEMES
from ..solution import solve_info
from ..stabilisation import GIBBS_MIN_RATIO
from ..trackers import (
    MassTracker,
    ObservableTracker,
    PositivityTracker,
    ProgressTracker,
    SnapshotTracker,
    WallTracker,
    run,
)
from . import compat, solvers
from .initial import interpolate_density
from .lowering import lower_terms
from .mesh import Mesh, as_mesh
from .observables import observable_recorder
from .solution import Solution
from .stabilise import PecletReport, cell_peclet, choose, discrete_upwind
from .steppers import FCTStepper, GalerkinStepper, StepSystems
from .translate import cell_mean_functions, p1_dof_points, prefetch_data_coefficients, to_ufl

__all__ = ["GIBBS_MIN_RATIO", "SCHEMES", "gibbs_log_range", "solve"]

#: what the mass tracker's error suggests (the KSP residual is what changes the discrete mass)
MASS_HINT = ("tighten the solver (petsc_options={'ksp_rtol': 1e-14}) or use a direct solver ('ksp_type': "
             "'preonly', 'pc_type': 'lu'); if the drift is round-off (~1e-14 per step), raise mass_tol")

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
            "fct" the scheme is that of the Galerkin target: "cn" (default), "euler" or "bdf2" (with
            ``fct_options={"method": "zalesak"}`` its lumped BDF2 predictor,
            :meth:`symfp.fem.fct.FCTLimiter.fluxes_bdf2`, needs time-independent coefficients).
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
        fct_options: limiter controls of ``"fct"`` (:class:`symfp.fem.dolfinx.fct.FluxCorrectedStep`,
            :func:`symfp.fem.problem.fct_options`): ``method`` — ``"redistribute"`` (default: the
            Galerkin target, its negative values clipped and their mass taken from the neighbouring
            positive mass; exact mass, p ≥ 0, converges under refinement, one solve per step) or
            ``"zalesak"`` (lumped upwind predictor and iterated Zalesak passes: local extremum bounds,
            but the passes stagnate on degenerate oblique diffusion and the error grows under
            refinement, see :mod:`symfp.fem.fct`); ``passes`` and ``tol`` bound the limiter's rounds.

    Returns:
        :class:`symfp.fem.dolfinx.solution.Solution`.

    Raises:
        MeshError: dimension mismatch, unknown absorbing part (the message lists the parts).
        InputError: dt ≤ 0, t_end < dt, unknown scheme/stabilisation, bad p0, free parameters.
        SolverError: KSP divergence (PETSc's reason), mass loss or negativity beyond tolerance (step).
    """
    from ...symbolic.weakform import row_divergence

    fp = as_fokker_planck(fp)
    sde = fp.sde
    state = tuple(sde.state)
    domain_note = None
    if mesh is None or (isinstance(mesh, str) and mesh == "auto"):
        mesh, est = auto_domain(fp, p0, t_end=float(t_end) if is_number(t_end) else None,
                                **dict(domain_options or {}))
        domain_note = est.describe()
    msh: Mesh = as_mesh(mesh)
    check_mesh_dimension(msh.dim, state, "solve")
    t_end, dt, n_steps = check_times(t_end, dt)
    check_points, coefficient_exprs = None, []
    if sde.time is None and has_data_nodes(sp.Matrix([*sde.drift, *sde.diffusion])):
        # data-mean coefficients: the checks, the Péclet number and the forms evaluate them at the P1
        # dofs, in one shared pass over the data (the drift's and ∇·D's nodes with D's and ∇²f's)
        check_points = p1_dof_points(msh.mesh, len(state))
        coefficient_exprs = [*sde.drift, *row_divergence(sp.Matrix(sde.diffusion), state)]
    # a time-dependent D is checked over [0, t_end]
    check_fe_problem(sde, msh, "solve", t_end=t_end, points=check_points, prefetch=coefficient_exprs)
    # tsym: explicit time dependence (schedules), a dolfinx Constant set at every step
    fct_kw, parts, wf, tsym = check_forward_options(sde, msh, scheme=scheme, output_every=output_every,
                                                    keep=keep, absorbing=absorbing, fct_options=fct_options)

    t_setup = time.perf_counter()
    V = compat.function_space(msh.mesh)
    choice = _choose_method(fp, wf, msh, V, stabilisation, tsym, t_end)
    method = choice.method
    if scheme is None:
        # lumped M-matrix systems keep p ≥ 0 under backward Euler only (BDF2's 2p^n - p^{n-1}/2 and
        # CN's explicit half step can undershoot): the positivity-preserving methods default to it
        scheme = "euler" if method in ("upwind", "gibbs") else ("cn" if method == "fct" else "bdf2")
    if method == "fct" and scheme == "bdf2" and tsym is not None and fct_kw["method"] == "zalesak":
        raise InputError("solve: fct_options method='zalesak' with scheme='bdf2' needs time-independent "
                         "coefficients (its lumped BDF2 predictor); with a schedule use the default "
                         "method='redistribute', or scheme='cn' or 'euler'")
    forms = _forward_forms(sde, wf, V, msh, choice, tsym)
    ops = _assemble_operators(forms, method, V)
    bc_rows = _absorbing_rows(msh, V, parts)

    opts = solvers.ksp_options(
        "time_step", ranks=msh.comm.size, dofs=compat.num_global_dofs(V), dim=msh.dim, constant=tsym is None,
        steps=n_steps,
    )
    if method == "gibbs":
        # the weight rho spans many decades: scale the system symmetrically by its diagonal so that
        # ILU's zero-pivot test and the Krylov residual see an O(1) matrix
        opts.update(ksp_diagonal_scale=True, ksp_diagonal_scale_fix=True)
    opts = solvers.merge(opts, petsc_options)
    systems = StepSystems(msh.comm, opts, bc_rows=bc_rows, absorbing=bool(parts), dt=dt, n_steps=n_steps)
    try:
        return _run(fp, msh, V, p0, choice, forms, ops, systems, scheme=scheme, dt=dt, n_steps=n_steps,
                    parts=parts, fct_kw=fct_kw, output_every=output_every, keep=keep, progress=progress,
                    expectations=expectations, mass_tol=mass_tol, negative_tol=negative_tol,
                    wall_tol=wall_tol, domain_note=domain_note, t_setup=t_setup)
    finally:
        systems.destroy()


@dataclass
class MethodChoice:
    """The stabilisation chosen, why, the Péclet report and the stationary density's nodal logarithm."""

    method: str
    why: str
    report: PecletReport
    log_rho: sp.Expr | None = None
    log_vals: np.ndarray | None = None  # ln rho at all local dofs
    shift: float = 0.0  # its global maximum


def _choose_method(fp: Any, wf: Any, msh: Mesh, V: Any, stabilisation: str, tsym: sp.Symbol | None,
                   t_end: float) -> MethodChoice:
    """The stabilisation by the cell Péclet number (:func:`symfp.fem.stabilisation.choose`; collective)."""
    from ...symbolic.weakform import forward_form

    sde = fp.sde
    state = tuple(sde.state)
    D = sp.Matrix(sde.diffusion)
    c = -sp.Matrix(wf.terms("advection")[0].coefficient)
    report = _peclet(msh.mesh, c, D, state, tsym, t_end)
    convective = report.max_peclet > 1 and not report.degenerate
    dofx = V.tabulate_dof_coordinates()[:, : len(state)]
    n_owned = V.dofmap.index_map.size_local
    # the closed-form stationary density, through log rho shifted by its maximum on the mesh (exp(-f/eps)
    # itself underflows at small eps: see gibbs_log_range)
    try:
        rho = fp.stationary_density()
    except Exception:  # noqa: BLE001 - a closed form is optional
        rho = None
    choice = MethodChoice("", "", report)
    log_range = 0.0
    if rho is not None:
        choice.log_rho = sp.expand_log(sp.log(sp.sympify(rho)), force=True)
        choice.log_vals, choice.shift, log_range = gibbs_log_range(choice.log_rho, state, dofx, n_owned,
                                                                   msh.comm)
    gibbs_wf = gibbs_note = None
    if stabilisation == "gibbs" or (stabilisation == "auto" and convective):
        try:
            gibbs_wf = forward_form(sde, symmetrised=True)
        except InputError as exc:
            if stabilisation == "gibbs":
                raise InputError(f"solve: stabilisation='gibbs' is not available: {exc}") from exc
        if gibbs_wf is not None and choice.log_rho is not None and log_range < GIBBS_MIN_LOG_RATIO:
            gibbs_note = (f"the Gibbs weight rho spans {-log_range / math.log(10):.0f} decades on the mesh "
                          f"(min rho / max rho = 10^{log_range / math.log(10):.0f} < {GIBBS_MIN_RATIO:g}), "
                          "beyond double precision")
            if stabilisation == "gibbs":
                raise InputError(
                    f"solve: stabilisation='gibbs' cannot be used here: {gibbs_note}, so p = rho u and the "
                    "rho-weighted matrices underflow (zero rows, division by 0). Use stabilisation='fct' "
                    "(positive, conservative; what 'auto' picks here), a smaller domain, or a larger noise")
            gibbs_wf = None
    choice.method, choice.why = choose(stabilisation, report, gibbs_wf is not None, gibbs_note)
    return choice


@dataclass
class ForwardForms:
    """The compiled operator and mass forms, the time Constant, and the Gibbs weight (p = rho u)."""

    a_op: Any
    a_mass: Any
    time: Any = None  # dolfinx Constant of the time symbol, or None
    mass_depends_on_time: bool = False  # SUPG's test function carries c(t)
    weight: Any = None  # UFL rho / max rho (Gibbs form), or None
    rho_nodes: np.ndarray | None = None  # its values at all local dofs
    log_rho_owned: np.ndarray | None = None  # owned ln rho − max (relative entropy), or None


def _forward_forms(sde: Any, wf: Any, V: Any, msh: Mesh, choice: MethodChoice,
                   tsym: sp.Symbol | None) -> ForwardForms:
    """The UFL forms of the forward operator for the chosen method, compiled once."""
    m = compat.dolfinx_modules()
    ufl, fem = m.ufl, m.fem
    state = tuple(sde.state)
    d = len(state)
    method = choice.method
    D = sp.Matrix(sde.diffusion)
    c = -sp.Matrix(wf.terms("advection")[0].coefficient)
    n_owned = V.dofmap.index_map.size_local
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
    out = ForwardForms(None, None, time=t_c, mass_depends_on_time=tsym is not None and method == "supg")
    if choice.log_rho is not None:
        out.log_rho_owned = choice.log_vals[:n_owned] - choice.shift
        if method == "gibbs":
            out.weight = ufl.exp(to_ufl(choice.log_rho, state, x) - choice.shift)
            out.rho_nodes = np.exp(choice.log_vals - choice.shift)
    if method == "gibbs":
        a_mass = out.weight * u * v * ufl.dx
        a_op = out.weight * ufl.inner(Dm * ufl.grad(u), ufl.grad(v)) * ufl.dx
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
    # forms compiled once; with explicit time dependence re-assembled at every step (time updated)
    out.a_op, out.a_mass = compat.form(a_op), compat.form(a_mass)
    return out


@dataclass
class Operators:
    r"""Assembled matrices: M (lumped diagonal for the lumped methods), K (upwinded for upwind/FCT), the
    Galerkin K and consistent mass (FCT's target), the lumped mass vector ml, the assembly seconds."""

    M: Any
    K: Any
    K_galerkin: Any
    M_consistent: Any = None
    ml: Any = None
    seconds: float = 0.0


def _assemble_operators(forms: ForwardForms, method: str, V: Any) -> Operators:
    """Assemble the matrices at t = 0 (collective)."""
    ufl = compat.dolfinx_modules().ufl
    t0 = time.perf_counter()
    if forms.time is not None:
        forms.time.value = 0.0
    K = compat.assemble_matrix(forms.a_op)
    ops = Operators(None, K, K)
    if method == "fct":
        # the Galerkin pair (target) is kept; the low-order pair (lumped, upwinded) is built below
        ops.M_consistent = compat.assemble_matrix(forms.a_mass)
    if method in ("upwind", "gibbs", "fct"):
        # lumped (row-sum) mass: diagonal, positive, and with column sums equal to the mass weights
        # ∫ w φ_i used by the observables, so the recorded mass is conserved to the KSP residual
        if method in ("upwind", "fct"):
            ops.K = discrete_upwind(K)
        v = ufl.TestFunction(V)
        w = forms.weight if forms.weight is not None else 1.0
        ops.ml = compat.assemble_vector(compat.form(w * v * ufl.dx))
        M = ops.K.duplicate(copy=False)
        M.zeroEntries()
        M.setDiagonal(ops.ml)
        M.assemble()
        ops.M = M
    else:
        ops.M = compat.assemble_matrix(forms.a_mass)
    ops.seconds = time.perf_counter() - t0
    return ops


def _absorbing_rows(msh: Mesh, V: Any, parts: tuple[str, ...]) -> np.ndarray:
    """Owned dofs (global numbering) on the absorbing parts."""
    fem = compat.dolfinx_modules().fem
    if not parts:
        return np.zeros(0, dtype=np.int32)
    d = msh.dim
    n_owned = V.dofmap.index_map.size_local
    facets = np.concatenate([msh.boundary_facets(n) for n in parts]).astype(np.int32)
    msh.mesh.topology.create_connectivity(d - 1, d)
    local = np.asarray(fem.locate_dofs_topological(V, d - 1, np.unique(facets)))
    local = local[local < n_owned]
    return (local + V.dofmap.index_map.local_range[0]).astype(np.int32)


class OperatorUpdate:
    r"""``before_step`` of :func:`symfp.fem.trackers.run` for time-dependent coefficients.

    Before step n the operator form is re-assembled at :math:`t_{n+1}` = n·dt (one assembly of K per step;
    :math:`K(t_n)` is the previous step's) and handed to the stepper, which forms its scheme's step
    matrices: :math:`K(t_{n+1})` for backward Euler and BDF2, the trapezoidal pair for Crank–Nicolson
    (with SUPG's time-dependent mass matrix at the midpoint), the same for FCT's Galerkin target and
    :math:`K_L(t_{n+1})` for its predictor.
    """

    def __init__(self, forms: ForwardForms, ops: Operators, method: str, stepper: Any, dt: float):
        self.forms, self.method, self.stepper, self.dt = forms, method, stepper, float(dt)
        self.M, self.K, self.K_galerkin = ops.M, ops.K, ops.K_galerkin
        self.assemblies = 1  # the one at t = 0
        self.seconds = 0.0

    def __call__(self, n: int) -> None:
        t0 = time.perf_counter()
        M0, K0, K0_gal = self.M, self.K, self.K_galerkin
        self.forms.time.value = n * self.dt
        K_gal = compat.assemble_matrix(self.forms.a_op)
        self.assemblies += 1
        M = compat.assemble_matrix(self.forms.a_mass) if self.forms.mass_depends_on_time else M0
        K = discrete_upwind(K_gal) if self.method in ("upwind", "fct") else K_gal
        if self.method == "fct":
            self.stepper.set_operators(M, K_gal, K0_gal)
        else:
            self.stepper.set_operators(M, K, K0, M0 if self.forms.mass_depends_on_time else None)
        self.M, self.K, self.K_galerkin = M, K, K_gal
        self.seconds += time.perf_counter() - t0


class GibbsDensity:
    """The nodal density of the Gibbs form's unknown, :math:`p_i = \\rho(x_i) u_i` (owned entries)."""

    def __init__(self, rho_owned: np.ndarray):
        self.rho = np.asarray(rho_owned, dtype=float)

    def __call__(self, u: np.ndarray) -> np.ndarray:
        return u * self.rho


def _run(fp: Any, msh: Mesh, V: Any, p0: Any, choice: MethodChoice, forms: ForwardForms, ops: Operators,
         systems: StepSystems, *, scheme: str, dt: float, n_steps: int, parts: tuple[str, ...],
         fct_kw: Mapping[str, Any], output_every: int, keep: str, progress: bool,
         expectations: Mapping[str, Any] | None, mass_tol: float, negative_tol: float, wall_tol: float,
         domain_note: str | None, t_setup: float) -> Solution:
    """Stepper, recorder and trackers; the shared time loop; the Solution (collective)."""
    fem = compat.dolfinx_modules().fem
    sde = fp.sde
    state = tuple(sde.state)
    method = choice.method
    n_owned = V.dofmap.index_map.size_local
    p_init = interpolate_density(p0, V, state, where="solve")
    uh = fem.Function(V)
    uh.name = "density"
    uh.x.array[:] = p_init.x.array / forms.rho_nodes if method == "gibbs" else p_init.x.array
    template = compat.petsc_vec(uh)
    if method == "fct":
        stepper: Any = FCTStepper(scheme, V, ops.M, ops.ml, ops.M_consistent, ops.K_galerkin, dt,
                                  systems=systems, passes=fct_kw["passes"], tol=fct_kw["tol"],
                                  method=fct_kw["method"])
    else:
        stepper = GalerkinStepper(scheme, ops.M, ops.K, dt, systems=systems, template=template)
    update = OperatorUpdate(forms, ops, method, stepper, dt) if forms.time is not None else None

    regions = dict(msh.regions) if msh.cell_tags is not None else {}
    rho_owned = None if forms.rho_nodes is None else forms.rho_nodes[:n_owned]
    recorder = observable_recorder(V, state, weight=forms.weight, expectations=expectations, regions=regions,
                                   cell_tags=msh.cell_tags, log_stationary=forms.log_rho_owned,
                                   nodal_weight=rho_owned,
                                   mass_weights=None if ops.ml is None else ops.ml.array[:n_owned])
    red = recorder.reductions
    # unit mass of the discrete density actually evolved (for Gibbs ∫ rho I_h(p0/rho) ≠ ∫ I_h(p0) exactly)
    u0 = np.array(template.array[:n_owned], dtype=float)
    u0 *= 1.0 / red.scalar_sum(float(recorder.mass_weights @ u0))
    density = GibbsDensity(rho_owned) if rho_owned is not None else None
    wall_tr = WallTracker(boundary_dofs(V, msh, exclude=parts), tol=wall_tol, every=output_every,
                          allmax=red.max, stacklevel=5)  # finish, run, _run, solve: its caller
    obs_tr = ObservableTracker(recorder, every=output_every)
    snap_tr = SnapshotTracker(keep=keep, every=output_every)
    mass_tr = MassTracker(recorder.mass_weights, tol=mass_tol, enabled=not parts, allsum=red.scalar_sum,
                          hint=MASS_HINT)
    positivity = PositivityTracker(tol=negative_tol, method=method, minmax=red.minmax)
    progress_tr = ProgressTracker(show=progress and msh.comm.rank == 0)
    trackers = [mass_tr, positivity, obs_tr, wall_tr, snap_tr, progress_tr]
    setup_s = time.perf_counter() - t_setup
    timings: dict[str, Any] = {}
    t_loop = time.perf_counter()
    u = run(stepper, u0, n_steps=n_steps, dt=dt, trackers=trackers, density=density, before_step=update,
            timings=timings)
    loop_s = time.perf_counter() - t_loop

    final = fem.Function(V)
    final.name = "density"
    pn = u if density is None else density(u)
    final.x.array[: len(pn)] = pn
    final.x.scatter_forward()
    observables = recorder.arrays()
    observables["wall"] = np.array(wall_tr.ratios)
    assemble_s = ops.seconds + (update.seconds if update is not None else 0.0)
    info = solve_info(
        backend="dolfinx", domain=domain_note or str(msh), wall_ratios=wall_tr.ratios, scheme=scheme,
        method=method, reason=choice.why, report=choice.report, dt=dt, steps=n_steps,
        iterations=stepper.iterations, assemble_seconds=assemble_s, time_dependent=forms.time is not None,
        assemblies=update.assemblies if update is not None else 1, loop_seconds=loop_s, setup_seconds=setup_s,
        dofs=compat.num_global_dofs(V), absorbing=parts, ranks=msh.comm.size)
    from .. import coefficients  # data-mean coefficients: evaluated at the P1 dofs, timed

    info.update(coefficients.TIMER.take())
    if info["coefficient_evaluations"]:
        info["coefficient_space"] = (f"P{coefficients.SPACE[1]} (Lagrange), interpolated at the dofs: "
                                     "PSD kept, error O(h^2)")
    if method == "fct":
        info["fct_mean_alpha"] = stepper.mean_alpha()
        info["fct_cn_fallback_steps"] = stepper.fallback_steps
    return Solution(times=np.array(obs_tr.times), observables=observables, mesh=msh, sde=sde, density=final,
                    snapshots=snap_tr.snapshots, info=info,
                    timings={"setup": setup_s, "assemble": assemble_s, "step": timings["step"],
                             "ksp": systems.solve_seconds.copy(), "output": timings["output"]})
