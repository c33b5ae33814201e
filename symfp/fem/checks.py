r"""Backend-neutral checks of a problem before a finite-element solve (and of mesh arguments).

Each check takes the SDE and a mesh of any backend (its vertex coordinates are read from
``mesh.mesh.geometry.x`` (symfp's dolfinx Mesh), ``mesh.geometry.x`` (a dolfinx mesh), ``mesh.p``
(scikit-fem) or an (n, d) array) and is collective under MPI: every rank raises the same error.

* :func:`check_diffusion_on_mesh`: :math:`D(\theta) \succeq 0` at every vertex (a negative diffusion
  makes the Fokker–Planck equation ill-posed: backward heat equation).
* :func:`check_sme_stability`: for the SME of plain SGD, the linear stability condition of the
  recursion it models, :math:`\eta\,\lambda_{\max}(\nabla^2 f(\theta)) < 2`, on the mesh. Where it
  fails, SGD itself diverges; the SME (a continuous-time ODE plus noise) does not know it.
* :func:`check_cells`: cells per axis are positive whole numbers (``cells=(2.5,)`` is refused).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy as sp

from ..errors import DivergenceError, InputError, MeshError
from .coefficients import numpy_function
from .domain import SymfpWarning

__all__ = ["StabilityWarning", "check_cells", "check_diffusion_on_mesh", "check_fe_problem",
           "check_sme_stability", "mesh_points"]


class StabilityWarning(SymfpWarning):
    """The SGD modelled by an SME is linearly unstable on part of the domain (η·λ_max(∇²f) ≥ 2)."""


def mesh_points(mesh: Any, d: int, points: Any = None) -> tuple[np.ndarray, Any]:
    """This rank's vertex coordinates (n, d) of ``mesh`` and its MPI communicator (or None).

    ``points``: this rank's points to check instead (e.g. the P1 dofs, the vertices in the order the
    FE coefficients are evaluated in, so that data-mean values are shared with them).
    """
    m = getattr(mesh, "mesh", mesh)
    if points is not None:
        return np.asarray(points, dtype=float).reshape(-1, d), getattr(m, "comm", None)
    geo = getattr(m, "geometry", None)
    if geo is not None and hasattr(geo, "x"):
        x = np.asarray(geo.x)[:, :d]
    elif hasattr(m, "p"):
        x = np.asarray(m.p).T[:, :d]
    else:
        x = np.asarray(m, dtype=float).reshape(-1, d)
    return x, getattr(m, "comm", None)


def _gather(comm: Any, value: Any) -> list:
    return comm.allgather(value) if comm is not None and comm.size > 1 else [value]


def check_diffusion_on_mesh(sde: Any, mesh: Any, where: str, *, t_end: Any = None,
                            points: Any = None) -> None:
    """Refuse (on every rank) an SDE whose D is not PSD at some vertex of the mesh.

    Args:
        sde: the SDE.
        mesh: a mesh of any backend, or an (n, d) array of points.
        where: the caller, for the message.
        t_end: the end of the solve's time interval: a time-dependent D (``sde.time``, a schedule) is
            checked over [0, t_end]; without it, at t = 0 only.

    Raises:
        InputError: from :func:`symfp.symbolic.sde.check_diffusion`, naming where D < 0.
    """
    from ..symbolic.sde import check_diffusion

    state = tuple(sde.state)
    pts, comm = mesh_points(mesh, len(state), points)
    msg = None
    try:
        check_diffusion(sde, pts, where, region="the mesh vertices" + (" of this rank" if comm is not None
                                                                        and comm.size > 1 else ""),
                        t_end=t_end)
    except InputError as exc:
        msg = str(exc)
    msgs = [m for m in _gather(comm, msg) if m]
    if msgs:
        raise InputError(msgs[0])


def _sgd_source(sde: Any) -> Any:
    """The plain SGD an SME was derived from (no momentum, numeric lr), or None."""
    from ..symbolic.sde import numeric_source

    if "stochastic modified equation of SGD" not in str(getattr(sde, "origin", "")):
        return None
    src = numeric_source(sde)
    if src is None:
        return None
    if getattr(src, "momentum", None) is not None or not getattr(src, "lr", sp.nan).is_number:
        return None
    return src


def _stability_hessian(src: Any) -> sp.Matrix:
    """∇²f + λI of the SGD's objective (the matrix whose largest eigenvalue times η must stay < 2)."""
    params = tuple(src.params)
    return sp.hessian(src.objective, params) + src.weight_decay * sp.eye(len(params))


def check_sme_stability(sde: Any, mesh: Any, where: str, *, refuse: bool = True,
                        points: Any = None) -> float | None:
    r"""Check :math:`\eta\,\lambda_{\max}(\nabla^2 f + \lambda I) < 2` on the mesh for the SME of SGD.

    Gradient descent :math:`\theta \mapsto \theta - \eta\nabla f(\theta)` is linearly stable at θ
    when every eigenvalue of :math:`I - \eta\nabla^2 f` lies in (−1, 1]. Where
    :math:`\eta\lambda_{\max} \ge 2` the recursion is repelled (the exact SGD diverges from a
    minimum there), while its SME still has a well-behaved solution: the FE number would describe
    an SGD that does not exist.

    Returns:
        The largest valid lr on the mesh, 2 / max λ_max (None when not applicable).

    Raises:
        DivergenceError: (``refuse``) the condition fails at every vertex of the mesh (the SGD
            diverges from everywhere); the message names the valid lr.

    Warns:
        StabilityWarning: the condition fails on part of the mesh only.
    """
    src = _sgd_source(sde)
    if src is None:
        return None
    params = tuple(src.params)
    pts, comm = mesh_points(mesh, len(params), points)
    n, d = len(pts), len(params)
    try:  # the Hessian of the objective at the vertices (skipped if it has no numeric form)
        H = _stability_hessian(src)
        if H.free_symbols - set(params):
            raise ValueError("free symbols")
        fn = numpy_function(H, params)  # data-means too
        with np.errstate(all="ignore"):
            vals = fn(*pts.T)
        m = np.empty((n, d, d))
        for i in range(d):
            for j in range(d):
                m[:, i, j] = np.broadcast_to(np.asarray(vals[i][j], dtype=float), (n,))
        lam = np.linalg.eigvalsh(m)[:, -1] if n else np.zeros(0)
        ok = bool(np.all(np.isfinite(lam)))
    except Exception:  # noqa: BLE001 - e.g. an unexpanded data mean: no check rather than a crash
        lam, ok = np.zeros(0), False
    if not all(_gather(comm, ok)):
        return None
    eta = float(src.lr)
    stats = (float(np.max(lam)) if n else -math.inf, float(np.min(lam)) if n else math.inf,
             int(np.sum(eta * lam >= 2)), n)
    allst = _gather(comm, stats)
    lmax = max(s[0] for s in allst)
    lmin_of_max = min(s[1] for s in allst)
    n_bad, n_all = sum(s[2] for s in allst), sum(s[3] for s in allst)
    valid = 2.0 / lmax if lmax > 0 else math.inf
    if n_bad == 0:
        return valid
    text = (f"{where}: the SGD that this SME models is linearly unstable: lr·λ_max(∇²f) ≥ 2 at "
            f"{100 * n_bad / max(n_all, 1):.3g}% of the mesh vertices (lr = {eta:g}, λ_max(∇²f) up to "
            f"{lmax:.4g}); there the exact recursion is repelled, and the SME's solution describes an "
            f"SGD that diverges.")
    if refuse and n_bad == n_all:
        ok = 2.0 / lmin_of_max if lmin_of_max > 0 else math.inf
        raise DivergenceError(
            text + f" It fails everywhere on the mesh: use lr < {ok:.4g} (stable somewhere) and "
            f"lr < {valid:.4g} for stability on the whole mesh."
        )
    warnings.warn(text + f" Stable on the whole mesh for lr < {valid:.4g}; results where the mass "
                  "reaches the unstable part do not describe the SGD.", StabilityWarning, stacklevel=3)
    return valid


def check_fe_problem(sde: Any, mesh: Any, where: str, *, t_end: Any = None, points: Any = None,
                     prefetch: Sequence[Any] = ()) -> None:
    """The checks every FE entry point runs before assembling: D ⪰ 0 and the SME's stability.

    ``t_end``: the forward solve's end time, so that a time-dependent D is checked over [0, t_end]
    (steady problems and callers that do not pass it check t = 0). ``points``: this rank's points to
    check (default the mesh vertices). ``prefetch``: further expressions of the state (the forms'
    coefficients) whose data-means are evaluated at ``points`` in the same pass over the data as D's
    and the Hessian's (:func:`symfp.fem.coefficients.prefetch`: one reduction, memoised per point set,
    instead of one per check and one for the coefficients).
    """
    if points is not None and getattr(sde, "time", None) is None:
        from ..symbolic.datamean import has_data_nodes
        from .coefficients import prefetch as prefetch_nodes

        exprs = [*sp.Matrix(sde.diffusion), *prefetch]
        src = _sgd_source(sde)
        if src is not None and tuple(src.params) == tuple(sde.state):
            try:
                exprs += list(_stability_hessian(src))
            except Exception:  # noqa: BLE001 - no numeric Hessian: the check skips it too
                pass
        if any(has_data_nodes(e) for e in exprs):
            prefetch_nodes(exprs, tuple(sde.state), np.asarray(points, dtype=float))
    check_diffusion_on_mesh(sde, mesh, where, t_end=t_end, points=points)
    check_sme_stability(sde, mesh, where, points=points)


def check_cells(cells: Any, where: str = "mesh.box") -> Any:
    """Cells per axis as positive whole numbers; refuses ``2.5``, ``0``, ``True``, NaN, strings.

    Returns an int for a scalar ``cells``, else a tuple of ints.
    """
    seq = cells if isinstance(cells, (list, tuple)) else (cells,)
    out = []
    for axis, c in enumerate(seq):
        ok = isinstance(c, (int, np.integer)) and not isinstance(c, bool)
        if not ok and isinstance(c, (float, np.floating)) and math.isfinite(c) and float(c).is_integer():
            ok, c = True, int(c)
        if not ok or int(c) < 1:
            raise MeshError(
                f"{where}: cells[{axis}] = {c!r} is not a positive whole number of cells; give e.g. "
                f"cells={tuple(64 for _ in seq)}"
            )
        out.append(int(c))
    return tuple(out) if isinstance(cells, (list, tuple)) else out[0]
