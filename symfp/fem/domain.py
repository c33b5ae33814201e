r"""A default computational domain derived from the problem, and the mass-at-the-wall warning.

When :func:`symfp.fem.dolfinx.forward.solve` gets no mesh (``mesh=None`` or ``"auto"``), :func:`auto_domain`
builds a box that covers where the density is expected to live during the run:

1. **Initial density** :math:`p_0`: a point contributes itself; an expression or callable is sampled
   on a tensor grid (widened until its edges carry nothing, then zoomed onto the support) and
   contributes the box of its marginal quantiles :math:`[q_{\epsilon}, q_{1-\epsilon}]`,
   :math:`\epsilon = \texttt{mass\_tol}/(2d)` per side and axis (so at most ``mass_tol`` is outside;
   the default 1e-9 puts the wall of a 2-D Gaussian 6.2 σ out).
2. **Stationary density** :math:`\rho`, when :meth:`FokkerPlanck.stationary_density` gives a closed
   form: the same quantile box, computed from :math:`\rho` on a grid.
3. Otherwise the **linearisation** at the stable fixed point :math:`x^*` of the drift nearest the
   mean of :math:`p_0` (Newton on :math:`b(x) = 0`): with :math:`A = \partial b/\partial x(x^*)`
   Hurwitz, the stationary covariance of :math:`dX = A(X - x^*)dt + \sqrt{2D(x^*)}dW` solves the
   Lyapunov equation :math:`AS + SA^\top + 2D(x^*) = 0`, and the box is
   :math:`x^*_i \pm k\sqrt{S_{ii}}` with :math:`k = \max(\texttt{min\_std}, \Phi^{-1}(1-\epsilon))`
   (Gaussian tails: :math:`2d\,\Phi(-k) \le \texttt{mass\_tol}`).
4. Without a stable fixed point, the :math:`p_0` box grown by the transport and diffusion over
   ``t_end``: half-widths :math:`+\,|b(m_0)|\,t + k\sqrt{2\lambda_{\max}(D(m_0))\,t}`.

The box is the hull of these. **Resolution**: ``cells_per_std`` cells per smallest standard
deviation :math:`\sigma_{\min}` among the contributing laws (P1 error :math:`O((h/\sigma)^2)`, about
1 % at 8 cells per σ; for a law sampled on a grid σ is the local width :math:`\min(\sigma_i,
I_i^{-1/2})`, :math:`I_i` the Fisher information, so that each mode of a multimodal law is
resolved), at least ``min_cells`` per axis, and capped at ``max_dofs`` nodes (then h grows
uniformly; the estimate says so).

These are heuristics for the transient between :math:`p_0` and :math:`\rho` (exact for OU with
Gaussian data, where every intermediate law lies between the two in mean and covariance, for a
normal drift matrix). The safety net is the **wall monitor** of the solver: at every output time the
largest density on the reflecting boundary relative to the largest density anywhere is recorded as
the observable ``"wall"``, and a :class:`DomainWarning` is issued when it exceeds ``wall_tol``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from ..errors import InputError

#: grid points per axis used to sample a density in d = 1, 2, 3 dimensions
_GRID = {1: 2001, 2: 201, 3: 61}
#: default node budget of the automatic mesh in d = 1, 2, 3 dimensions
MAX_DOFS = {1: 20_001, 2: 250_000, 3: 300_000}


class SymfpWarning(UserWarning):
    """Base class of symfp's warnings (a result was computed but may be compromised)."""


class DomainWarning(SymfpWarning):
    """Probability mass reached the wall of the computational domain."""


@dataclass(frozen=True)
class DomainEstimate:
    """The automatic box and why.

    Attributes:
        bounds: ``[(lo, hi), ...]`` per axis.
        cells: cells per axis.
        sigma_min: the smallest standard deviation used for the resolution.
        parts: ``{source: (lo array, hi array)}`` of each contributing box ("p0", "stationary",
            "linearisation", "transport").
        notes: human-readable lines (what was used, caps applied).
    """

    bounds: tuple[tuple[float, float], ...]
    cells: tuple[int, ...]
    sigma_min: float
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line: the box, the cells and where they came from."""
        box = " x ".join(f"[{lo:.4g}, {hi:.4g}]" for lo, hi in self.bounds)
        return f"auto box {box}, cells {self.cells}; " + "; ".join(self.notes)


def tail_multiple(mass_tol: float, d: int, min_std: float) -> float:
    r""":math:`k = \max(\texttt{min\_std}, \Phi^{-1}(1 - \texttt{mass\_tol}/(2d)))`."""
    from scipy.special import ndtri

    return max(float(min_std), float(ndtri(1.0 - mass_tol / (2 * d))))


def _grid_density(f: Callable[[np.ndarray], np.ndarray], lo: np.ndarray, hi: np.ndarray,
                  log: bool) -> tuple[list[np.ndarray], np.ndarray]:
    d = len(lo)
    axes = [np.linspace(lo[i], hi[i], _GRID[d]) for i in range(d)]
    mesh = np.meshgrid(*axes, indexing="ij")
    X = np.array([g.ravel() for g in mesh])
    with np.errstate(all="ignore"):
        vals = np.broadcast_to(np.asarray(f(X), dtype=float), (X.shape[1],)).copy()
    if log:
        vals[~np.isfinite(vals)] = -np.inf
        top = vals.max()
        if not np.isfinite(top):
            return axes, np.zeros(mesh[0].shape)
        vals = np.exp(vals - top)
    vals[~np.isfinite(vals) | (vals < 0)] = 0.0
    return axes, vals.reshape(mesh[0].shape)


def density_box(f: Callable[[np.ndarray], np.ndarray], center: np.ndarray, half: np.ndarray,
                mass_tol: float, min_std: float, log: bool = False,
                where: str = "auto_domain") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Quantile box of a density known pointwise (unnormalised), by grid sampling.

    The search box ``center ± half`` is doubled (at most 30 times) until the density on its faces is
    below ``1e-3 · mass_tol`` of the maximum, then zoomed twice onto the cells carrying more than
    ``1e-3 · mass_tol`` of the maximum (so that narrow densities are resolved by the grid). On the final
    grid the marginal CDFs give :math:`[q_\epsilon, q_{1-\epsilon}]`, :math:`\epsilon =
    \texttt{mass\_tol}/(2d)`, hulled with mean ± ``min_std`` standard deviations (0: quantiles only).

    Args:
        f: ``f(X)`` with X of shape (d, n) → n values (or log-values with ``log=True``).
        center, half: the first search box.
        mass_tol: total mass allowed outside the box.
        min_std: the box covers at least mean ± min_std standard deviations.

    Returns:
        ``(lo, hi, scale)`` arrays of length d; ``scale`` is the local width
        :math:`\min(\sigma_i, I_i^{-1/2})` with :math:`I_i = E[(\partial_i \ln p)^2]` the Fisher information.

    Raises:
        InputError: the density vanishes on every search grid or does not decay (not normalisable).
    """
    d = len(center)
    lo, hi = center - half, center + half
    thresh = 1e-3 * mass_tol
    for _ in range(30):
        axes, vals = _grid_density(f, lo, hi, log)
        top = vals.max()
        if top > 0:
            faces = max(float(np.take(vals, idx, axis=i).max()) for i in range(d) for idx in (0, -1))
            if faces <= thresh * top:
                break
        w = hi - lo
        lo, hi = lo - w / 2, hi + w / 2
    else:
        raise InputError(f"{where}: the density does not decay within ±{(hi - lo).max() / 2:.3g} of "
                         f"{center.tolist()} (or vanishes there); pass a mesh explicitly")
    for _ in range(2):  # zoom onto the support
        keep = vals > thresh * vals.max()
        new_lo, new_hi = lo.copy(), hi.copy()
        for i in range(d):
            other = tuple(j for j in range(d) if j != i)
            idx = np.nonzero(keep.any(axis=other) if other else keep)[0]
            step = axes[i][1] - axes[i][0]
            new_lo[i] = axes[i][max(idx[0] - 2, 0)] - step
            new_hi[i] = axes[i][min(idx[-1] + 2, len(axes[i]) - 1)] + step
        lo, hi = new_lo, new_hi
        axes, vals = _grid_density(f, lo, hi, log)
    total = vals.sum()
    eps = mass_tol / (2 * d)
    q_lo, q_hi, scale = np.empty(d), np.empty(d), np.empty(d)
    with np.errstate(all="ignore"):
        logv = np.log(np.maximum(vals, 1e-300))
    for i in range(d):
        other = tuple(j for j in range(d) if j != i)
        marg = (vals.sum(axis=other) if other else vals) / total
        cdf = np.cumsum(marg)
        x = axes[i]
        step = x[1] - x[0]
        mean = float((marg * x).sum())
        std = math.sqrt(max(float((marg * (x - mean) ** 2).sum()), 0.0))
        # Fisher information E[(∂_i ln p)²] ≥ 1/Var_i (Cramér–Rao, equality for Gaussians): its
        # inverse square root is the local width, which resolves each mode of a multimodal law
        score = np.gradient(logv, step, axis=i)
        fisher = float((vals * score**2)[vals > 1e-12 * vals.max()].sum() / total)
        scale[i] = min(std, 1.0 / math.sqrt(fisher)) if fisher > 0 else std
        q_lo[i] = x[max(int(np.searchsorted(cdf, eps)) - 1, 0)] - step
        q_hi[i] = x[min(int(np.searchsorted(cdf, 1 - eps)) + 1, len(x) - 1)] + step
        if min_std > 0:
            q_lo[i] = min(q_lo[i], mean - min_std * std)
            q_hi[i] = max(q_hi[i], mean + min_std * std)
    return q_lo, q_hi, scale


def stable_fixed_point(b: Callable[..., Any], J: Callable[..., Any], x0: np.ndarray,
                       iters: int = 60) -> tuple[np.ndarray, np.ndarray] | None:
    """Newton on b(x) = 0 from x0; ``(x*, A)`` when it converges to a point with Hurwitz A, else None."""
    x = np.array(x0, dtype=float)
    for _ in range(iters):
        with np.errstate(all="ignore"):
            bx = np.asarray(b(*x), dtype=float).ravel()
            A = np.asarray(J(*x), dtype=float)
        if not (np.all(np.isfinite(bx)) and np.all(np.isfinite(A))):
            return None
        if np.linalg.norm(bx) <= 1e-12 * (1 + np.linalg.norm(A) * (1 + np.linalg.norm(x))):
            break
        try:
            dx = np.linalg.solve(A, -bx)
        except np.linalg.LinAlgError:
            return None
        x = x + dx
    else:
        return None
    if np.max(np.linalg.eigvals(A).real) >= 0:
        return None
    return x, A


def estimate(fp: Any, p0: Any, t_end: float | None = None, mass_tol: float = 1e-9, min_std: float = 6.0,
             cells_per_std: float = 8.0, min_cells: int = 16, max_dofs: int | None = None) -> DomainEstimate:
    r"""The automatic box for ``fp`` started from ``p0`` (pure numpy/SymPy: no dolfinx).

    Args:
        fp: a numeric :class:`symfp.FokkerPlanck` (or SDE).
        p0: as for :func:`symfp.fem.dolfinx.forward.solve` (point, SymPy expression or callable ``f(X)``).
        t_end: final time (used only when the drift has no stable fixed point).
        mass_tol: probability mass allowed outside the box for each contributing law.
        min_std: the box covers at least ± this many standard deviations of each law.
        cells_per_std: cells per smallest standard deviation.
        min_cells: fewest cells per axis.
        max_dofs: node budget (default :data:`MAX_DOFS` for the dimension).

    Raises:
        InputError: free parameters, or nothing to size the box with (no stable fixed point, no
            stationary density, a point p0 and no t_end).
    """
    from .initial import density_callable, is_point

    if not hasattr(fp, "sde"):
        fp = fp.fokker_planck()
    sde = fp.sde
    state = tuple(sde.state)
    d = len(state)
    if not 1 <= d <= 3:
        raise InputError(f"auto_domain: automatic boxes exist for 1 to 3 state variables, not {d}; "
                         "pass a mesh")
    bvec = sp.Matrix(sde.drift)
    D = sp.Matrix(sde.diffusion)
    free = (bvec.free_symbols | D.free_symbols) - set(state)
    if free:
        raise InputError(f"auto_domain: the SDE has free parameters {sorted(map(str, free))}; "
                         "substitute numbers with .subs({...}) first")
    from .coefficients import numpy_function  # data-means evaluate themselves over the samples

    b_f = numpy_function(bvec, state)
    J_f = numpy_function(bvec.jacobian(state), state)
    D_f = numpy_function(D, state)
    k = tail_multiple(mass_tol, d, min_std)
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    notes: list[str] = []
    sigmas: list[float] = []

    # ---- a first scale: the linearisation (also the search box of the grid samplers)
    point = is_point(p0, d)
    m0 = np.asarray(p0, dtype=float) if point else np.zeros(d)
    lin = stable_fixed_point(b_f, J_f, m0)
    S = None
    if lin is not None:
        from scipy.linalg import solve_continuous_lyapunov

        xs, A = lin
        Dx = np.asarray(D_f(*xs), dtype=float)
        S = solve_continuous_lyapunov(A, -2 * Dx)
        sd = np.sqrt(np.maximum(np.diag(S), 0.0))
        if np.all(sd > 0):
            center, half = xs, np.maximum(k * sd, 1e-12)
        else:
            S = None
    if S is None:
        center, half = m0, np.ones(d)

    # ---- p0
    if point:
        parts["p0"] = (m0.copy(), m0.copy())
        notes.append(f"p0 is the point {m0.tolist()}")
    else:
        f0 = density_callable(p0, state, 0.0, "auto_domain")
        lo, hi, sd0 = density_box(lambda X: f0(np.vstack([X, np.zeros((3 - d, X.shape[1]))])),
                                  center, half, mass_tol, 0.0, where="auto_domain: p0")
        parts["p0"] = (lo, hi)
        sigmas.append(float(sd0.min()))
        m0 = (lo + hi) / 2
        notes.append(f"p0 quantile box (σ_min {sd0.min():.3g})")
        if lin is None:
            lin = stable_fixed_point(b_f, J_f, m0)

    # ---- stationary law: closed form, else linearisation
    try:
        rho = fp.stationary_density()
    except Exception:  # noqa: BLE001 - a closed form is optional
        rho = None
    done = False
    if rho is not None:
        log_rho = sp.expand_log(sp.log(sp.sympify(rho)), force=True)
        lr = sp.lambdify(state, log_rho, "numpy")
        try:
            lo, hi, sdr = density_box(lambda X: lr(*X), center, half, mass_tol, 0.0, log=True,
                                      where="auto_domain: stationary density")
            parts["stationary"] = (lo, hi)
            sigmas.append(float(sdr.min()))
            notes.append(f"closed-form stationary quantile box (σ_min {sdr.min():.3g})")
            done = True
        except InputError:
            notes.append("closed-form stationary density not normalisable on R^d")
    if not done and S is not None:
        xs = lin[0] if lin is not None else center
        sd = np.sqrt(np.diag(S))
        parts["linearisation"] = (xs - k * sd, xs + k * sd)
        sigmas.append(float(sd.min()))
        notes.append(f"linearised stationary covariance at x* = {np.round(xs, 6).tolist()} "
                     f"(±{k:.3g} σ, σ_min {sd.min():.3g})")
        done = True
    if not done:
        if t_end is None:
            raise InputError("auto_domain: no stable fixed point of the drift and no stationary density: "
                             "cannot size a box without t_end; pass a mesh (symfp.mesh.box(...))")
        lo, hi = parts["p0"]
        with np.errstate(all="ignore"):
            speed = float(np.linalg.norm(np.asarray(b_f(*m0), dtype=float)))
            lam = float(np.linalg.eigvalsh(np.asarray(D_f(*m0), dtype=float)).max())
        grow = speed * t_end + k * math.sqrt(max(2 * lam * t_end, 0.0))
        parts["transport"] = (lo - grow, hi + grow)
        sigmas.append(math.sqrt(max(2 * lam * t_end, 1e-300)))
        notes.append(f"no stable fixed point: p0 box grown by |b| t + k sqrt(2 λ t) = {grow:.3g}")

    lo = np.min([p[0] for p in parts.values()], axis=0)
    hi = np.max([p[1] for p in parts.values()], axis=0)
    width = np.maximum(hi - lo, 1e-12)
    sigma = min(sigmas) if sigmas else float(width.min()) / 12
    n = np.maximum(np.ceil(width / (sigma / cells_per_std)).astype(int), min_cells)
    budget = max_dofs or MAX_DOFS[d]
    if np.prod(n + 1.0) > budget:
        scale = (budget / np.prod(n + 1.0)) ** (1.0 / d)
        n = np.maximum((n * scale).astype(int), min_cells)
        notes.append(f"cells capped by max_dofs = {budget} ({sigma / (width / n).max():.3g} cells per σ_min)")
    return DomainEstimate(bounds=tuple((float(a), float(c)) for a, c in zip(lo, hi, strict=True)),
                          cells=tuple(int(c) for c in n), sigma_min=float(sigma), parts=parts,
                          notes=tuple(notes))


def auto_domain(fp: Any, p0: Any, t_end: float | None = None, comm: Any = None,
                **options: Any) -> tuple[Any, DomainEstimate]:
    """The automatic box mesh (:func:`symfp.mesh.box`) and its :class:`DomainEstimate` (collective).

    Every rank computes the same estimate (deterministic numpy), so the mesh is consistent.
    ``options`` go to :func:`estimate`.
    """
    from .dolfinx.mesh import box

    est = estimate(fp, p0, t_end=t_end, **options)
    return box(list(est.bounds), cells=list(est.cells), comm=comm), est


def boundary_dofs(V: Any, msh: Any, exclude: Sequence[str] = ()) -> np.ndarray:
    """Owned local dofs on the exterior boundary, minus the facets of the named parts ``exclude``."""
    m = __import__("symfp.fem.dolfinx.compat", fromlist=["dolfinx_modules"]).dolfinx_modules()
    tdim = msh.mesh.topology.dim
    msh.mesh.topology.create_connectivity(tdim - 1, tdim)
    facets = m.mesh.exterior_facet_indices(msh.mesh.topology)
    if exclude:
        drop = np.concatenate([msh.boundary_facets(n) for n in exclude])
        facets = np.setdiff1d(facets, drop)
    dofs = np.asarray(m.fem.locate_dofs_topological(V, tdim - 1, np.asarray(facets, dtype=np.int32)))
    return dofs[dofs < V.dofmap.index_map.size_local]
