r"""Smooth linear stabilisation for the optimisation: streamline or isotropic artificial diffusion.

Plain P1 Galerkin of the Fokker–Planck operator oscillates (negative nodal densities) where the cell
Péclet number :math:`|b|h/(2|D|)` exceeds about 1. The stabilisation here adds, to the part
:math:`K_{10}` that multiplies u (as the drift does: :math:`b = u\,b_1 + \dots`), the diffusion term

.. math:: \int (K_s\nabla p)\cdot\nabla v,\qquad
          K_s = \frac{\alpha h}{2}\,\frac{b_1 b_1^\top}{|b_1|_\delta}\ \text{(streamline)}\quad\text{or}\quad
          \frac{\alpha h}{2}\,|b_1|_\delta\,I\ \text{(isotropic)},

:math:`|b_1|_\delta = \sqrt{|b_1|^2 + \delta^2}` (δ = 10⁻³ max |b₁| at the nodes, so that the
coefficient is smooth where :math:`b_1 = 0`), h the longest cell edge, α the weight (α = 1: in 1-D
the diffusion of full upwinding, :math:`h|b|/2`).

**Why this one is differentiable.** Its weight depends on the mesh and the model only — not on p, nor
on the controls — so the discrete operator stays :math:`K(u, B) = \sum u^iB^{-j}K_{ij}`, linear in p
and polynomial in the controls, and the discrete adjoint of :mod:`symfp.control.problem` is the exact
gradient of the stabilised discrete J (Taylor remainder slope 2 as without it). An FCT limiter or the
discrete upwinding :math:`\max(0, -k_{ij})` are not (min/max of solution- or coefficient-dependent
quantities: kinks).

**What it costs.** It is not consistent: the stabilised equation is the FP equation with the extra
diffusion :math:`uK_s = O(h)`, so the objective's bias against the unstabilised discrete J (and the
PDE) is O(h) — first order in h, where Galerkin is O(h²) — and vanishes as h → 0 at that rate.
Use it where Galerkin's undershoot (:attr:`~symfp.control.problem.Trajectory.undershoot`) is
unacceptable and the mesh cannot be refined; report the bias by solving once without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from ..errors import InputError
from .split import BETA, ControlledCoefficients, U

KINDS = ("streamline", "isotropic")


@dataclass(frozen=True)
class Stabilisation:
    """What was added: ``kind``, weight ``alpha``, the mesh size ``h`` and the smoothing ``delta``."""

    kind: str
    alpha: float
    h: float
    delta: float

    @property
    def label(self) -> str:
        return f"{self.kind} artificial diffusion, α = {self.alpha:g}, h = {self.h:.4g}"


def parse(stabilisation: Any) -> tuple[str, float] | None:
    """(kind, alpha) of ``stabilisation=`` (None, "streamline", "isotropic" or a dict(kind=, alpha=)).

    Raises:
        InputError: an unknown kind or key, or α not a positive number.
    """
    if stabilisation is None or stabilisation is False:
        return None
    if isinstance(stabilisation, str):
        spec: dict[str, Any] = {"kind": stabilisation}
    elif isinstance(stabilisation, Mapping):
        spec = dict(stabilisation)
        unknown = set(spec) - {"kind", "alpha"}
        if unknown:
            raise InputError(f"stabilisation: unknown keys {sorted(unknown)}; use kind= and alpha=")
    else:
        raise InputError(f"stabilisation={stabilisation!r}: give None, 'streamline', 'isotropic' or "
                         "dict(kind=..., alpha=...)")
    kind = spec.get("kind", "streamline")
    if kind not in KINDS:
        raise InputError(f"stabilisation: kind {kind!r} is not one of {', '.join(KINDS)}")
    try:
        alpha = float(spec.get("alpha", 1.0))
    except (TypeError, ValueError):
        raise InputError(f"stabilisation: alpha={spec.get('alpha')!r} must be a number") from None
    if not (np.isfinite(alpha) and alpha > 0):
        raise InputError(f"stabilisation: alpha={alpha!r} must be positive (0 is no stabilisation: "
                         "pass stabilisation=None)")
    return kind, alpha


def drift_of_u(coef: ControlledCoefficients) -> sp.Matrix:
    r""":math:`b_1`: the coefficient of :math:`u^1B^0` in the drift (order 1: :math:`-\nabla f`)."""
    out = []
    for e in coef.drift:
        e = sp.expand(e)
        out.append(sp.Poly(e, U, BETA).coeff_monomial(U) if e.has(U, BETA) else sp.Integer(0))
    return sp.Matrix(out)


def stabilisation_term(coef: ControlledCoefficients, kind: str, alpha: float, h: float,
                       nodal: Any) -> tuple[Any, Stabilisation]:
    """The diffusion Term to add to the part (1, 0), and what it is.

    Args:
        coef: the controlled SME.
        kind, alpha: from :func:`parse`.
        h: the longest cell edge.
        nodal: the assembler's nodal interpolation (for max |b₁| at the nodes).

    Raises:
        InputError: the drift has no part proportional to u (nothing to stabilise).
    """
    from ..symbolic.weakform import Term

    b1 = drift_of_u(coef)
    if all(e == 0 for e in b1):
        raise InputError("stabilisation: the drift has no part proportional to u (b₁ = 0), so there is no "
                         "advection to stabilise; pass stabilisation=None")
    norm2 = sp.expand((b1.T * b1)[0, 0])
    bmax = float(np.sqrt(np.max(nodal(norm2))))
    delta = 1e-3 * bmax if bmax > 0 else 1.0
    bn = sp.sqrt(norm2 + sp.Float(delta) ** 2)
    w = sp.Float(alpha * h / 2)
    d = len(coef.state)
    K = w * (b1 * b1.T) / bn if kind == "streamline" else w * bn * sp.eye(d)
    return Term("diffusion", sp.ImmutableMatrix(K)), Stabilisation(kind, alpha, h, delta)
