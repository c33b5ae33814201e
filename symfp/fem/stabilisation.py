r"""Stabilisation choice and the cell Péclet number, backend-neutral (numpy).

The cell Péclet number of the forward operator (effective drift :math:`c = b - \nabla\cdot D`)

.. math:: \mathrm{Pe}_K = \frac{|c(x_K)|\, h_K}{2\,\lambda_{\min}(D(x_K))}

at the cell midpoints :math:`x_K` (:math:`h_K` the longest edge) is computed once here
(:func:`peclet_of_cells`) for every backend; :func:`choose` is the rule of ``stabilisation="auto"``
(see :mod:`symfp.fem.dolfinx.stabilise` for what each method does and the measurements behind it).
:func:`supg_weight` is the one SUPG weight of the steady problems.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError

CHOICES = ("auto", "none", "gibbs", "fct", "afc", "upwind", "fitted", "supg")

#: smallest min ρ / max ρ on the mesh for which the Gibbs-symmetrised form p = ρu is used (both
#: backends): below it ρ spans more than double precision and an explicit "gibbs" is refused
GIBBS_MIN_RATIO = 1e-250


@dataclass(frozen=True)
class PecletReport:
    """Cell Péclet numbers on this mesh (global over ranks).

    Attributes:
        max_peclet: :math:`\\max_K \\mathrm{Pe}_K` (inf where D is degenerate).
        degenerate: True when :math:`\\lambda_{\\min}(D) \\le 10^{-12} \\lambda_{\\max}(D)` in some cell.
    """

    max_peclet: float
    degenerate: bool


def peclet_of_cells(verts: np.ndarray, c: Callable[..., Any], D: Callable[..., Any],
                    d: int) -> tuple[float, bool]:
    """(max cell Péclet, degenerate) over cells with vertex coordinates ``verts`` (m, k, ≥d); local.

    Args:
        verts: vertex coordinates of the cells.
        c: lambdified effective drift, ``c(*x)`` → d values (each scalar or array).
        D: lambdified diffusion, ``D(*x)`` → d×d nested values.
        d: dimension.
    """
    if not len(verts):
        return 0.0, False
    mid = verts.mean(axis=1)
    diffs = verts[:, :, None, :] - verts[:, None, :, :]
    h = np.sqrt((diffs**2).sum(-1)).max(axis=(1, 2))
    X = [mid[:, i] for i in range(d)]
    n = len(mid)
    cv = np.array(_entries(c(*X), d, n))
    Dv = np.array(_entries(D(*X), d * d, n))
    Dv = Dv.reshape(d, d, n)
    lam = np.linalg.eigvalsh(np.moveaxis(Dv, -1, 0))  # (n, d) ascending
    lmin, lmax = lam[:, 0], lam[:, -1]
    degenerate = bool(np.any(lmin <= 1e-12 * np.maximum(lmax, 1e-300)))
    speed = np.sqrt((cv**2).sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        pe = np.where(speed > 0, speed * h / (2 * np.maximum(lmin, 0.0)), 0.0)
    pe = np.nan_to_num(pe, nan=np.inf, posinf=np.inf)
    return float(pe.max()), degenerate


def supg_weight(a2: Any, kappa: Any, h: Any, sqrt: Callable[[Any], Any] = np.sqrt) -> Any:
    r"""The SUPG weight :math:`\delta_K = ((2|a|/h)^2 + (12\kappa/h^2)^2)^{-1/2}` (numpy or UFL).

    ``a2`` is :math:`|a|^2`, ``kappa`` = :math:`a^\top D a/|a|^2` the diffusion along the streamline,
    ``h`` the cell size over the degree; ``sqrt`` the square root of the algebra used (``ufl.sqrt``).
    The weight interpolates between :math:`h/(2|a|)` (Pe ≫ 1) and :math:`h^2/(12\kappa)` (Pe ≪ 1).
    """
    return 1.0 / sqrt(4.0 * a2 / h**2 + (12.0 * kappa / h**2) ** 2 + 1e-300)


def _entries(values: Any, count: int, n: int) -> list[np.ndarray]:
    """The ``count`` entries of a lambdified vector or matrix at ``n`` points, each an (n,) array.

    ``sympy.lambdify`` gives nested lists of scalars or arrays; a data-mean coefficient
    (:func:`~symfp.symbolic.datamean.lambdify_datamean`) one array (rows, cols, n).
    """
    if isinstance(values, np.ndarray) and values.ndim >= 2 and values.size == count * n:
        return list(np.asarray(values, dtype=float).reshape(count, n))
    return [np.broadcast_to(np.asarray(e, dtype=float), (n,)) for e in _flat(values)]


def _flat(nested: Any) -> list[Any]:
    """Entries of a lambdified nested list (each a scalar or an array over the points), row-major."""
    if isinstance(nested, (list, tuple)):
        return [e for item in nested for e in _flat(item)]
    return [nested]


def choose(requested: str, report: PecletReport, gibbs_available: bool,
           gibbs_note: str | None = None) -> tuple[str, str]:
    """The stabilisation to use and why (for the solution's ``info``).

    Args:
        requested: the user's ``stabilisation=``.
        report: the cell Péclet numbers.
        gibbs_available: whether the Gibbs-symmetrised form can be used (only quoted in the reason:
            ``"auto"`` no longer picks it, see the module docstring).
        gibbs_note: why it cannot although a closed-form density exists (e.g. the weight's dynamic range
            exceeds double precision), quoted in the reason.
    """
    if requested not in CHOICES:
        raise InputError(f"solve: stabilisation={requested!r} is not one of {', '.join(CHOICES)}")
    if requested == "fitted":
        requested = "upwind"
    if requested == "afc":
        requested = "fct"
    pe = report.max_peclet
    if requested != "auto":
        return requested, f"requested by the user (max cell Péclet {pe:.3g})"
    if report.degenerate:
        return "fct", ("diffusion is degenerate (rank-deficient D): flux-corrected transport keeps p ≥ 0 "
                       "and mass exact, and is Galerkin (second order) where the limiter is inactive")
    if pe <= 1.0:
        return "none", f"max cell Péclet {pe:.3g} ≤ 1: plain Galerkin is monotone enough and second order"
    if gibbs_available:
        return "fct", (f"max cell Péclet {pe:.3g} > 1: flux-corrected transport (positive, conservative, "
                       "second order where smooth); the Gibbs-symmetrised form also applies here (detailed "
                       "balance) but is less accurate in transients: stabilisation='gibbs' to use it")
    if gibbs_note:
        return "fct", (f"max cell Péclet {pe:.3g} > 1 and the Gibbs-symmetrised form is unusable "
                       f"({gibbs_note}): flux-corrected transport (positive, conservative, second order "
                       "where smooth)")
    return "fct", (f"max cell Péclet {pe:.3g} > 1 and no closed-form stationary density: flux-corrected "
                   "transport (positive, conservative, second order where smooth)")
