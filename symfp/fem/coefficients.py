r"""Backend-neutral numerical evaluation of SymPy coefficients (drift, diffusion, ∇·D) at points.

A coefficient that holds data-means (:class:`~symfp.symbolic.datamean.DataMean`,
:class:`~symfp.symbolic.datamean.DataCov`) has no closed form a form compiler could inline: it is
evaluated here, at the nodes of a finite-element space, as a reduction over the samples
(:func:`~symfp.symbolic.datamean.lambdify_datamean`: a C kernel printed from the inner expressions,
:mod:`symfp.native.datamean`, or chunked numpy where no C compiler is found), and a backend brings
the values into its forms as a finite-element function; ``info["coefficient_kernel"]`` says which.

**Space and positivity.** The values are meant for the continuous P1 (piecewise-linear Lagrange)
space: its basis functions are non-negative and sum to one, so the interpolant of a positive
semi-definite matrix field, :math:`D_h(x) = \sum_k \varphi_k(x)\,D(x_k)`, is a convex combination of
PSD matrices and stays PSD everywhere. The interpolation error is :math:`O(h^2)` in the values
(:math:`\|D - D_h\|_\infty \le \tfrac18 h^2 \|\nabla^2 D\|_\infty` per cell). :func:`psd_check`
verifies the nodal matrices (the eigenvalues of the symmetric part), so an indefinite D is caught
before a solve.

Nothing here imports a finite-element backend or torch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from ..errors import InputError
from ..symbolic.datamean import data_nodes, has_data_nodes, lambdify_datamean

__all__ = ["evaluate", "prefetch", "numpy_function", "psd_check", "CoefficientTimer", "TIMER", "SPACE"]

#: the finite-element space data-mean coefficients are interpolated into
SPACE = ("Lagrange", 1)


@dataclass
class CoefficientTimer:
    """Accumulated wall time and number of coefficient evaluations (read and reset by a backend)."""

    seconds: float = 0.0
    evaluations: int = 0
    points: int = 0
    entries: list[str] = field(default_factory=list)
    _seen: dict[str, int] = field(default_factory=dict)

    def take(self) -> dict[str, Any]:
        """The totals since the last call, then reset."""
        from ..symbolic.datamean import REDUCTIONS

        out = {"coefficient_seconds": self.seconds, "coefficient_evaluations": self.evaluations,
               "coefficient_points": self.points}
        ran = {k: v - self._seen.get(k, 0) for k, v in REDUCTIONS.items()}
        if ran["c"] or ran["numpy"]:  # which reduction evaluated the data-means (symfp.native.datamean)
            out["coefficient_kernel"] = "c" if not ran["numpy"] else ("numpy" if not ran["c"] else "c+numpy")
        self._seen = dict(REDUCTIONS)
        self.seconds, self.evaluations, self.points, self.entries = 0.0, 0, 0, []
        return out


#: the process-wide timer of :func:`evaluate`
TIMER = CoefficientTimer()


def numpy_function(expr: Any, state: Sequence[sp.Symbol]) -> Callable[..., Any]:
    """``f(*coords)`` evaluating a scalar or matrix expression of the state with numpy (data-means too).

    Plain expressions go through ``sympy.lambdify``; expressions with data-mean nodes through
    :func:`~symfp.symbolic.datamean.lambdify_datamean` (one reduction over the samples per node).
    """
    state = tuple(state)
    is_mat = isinstance(expr, sp.MatrixBase)
    body = sp.Matrix(expr) if is_mat else sp.sympify(expr)
    extra = body.free_symbols - set(state)
    if extra:
        names = ", ".join(sorted(map(str, extra)))
        raise InputError(f"coefficients: the expression still has free symbols {names}; substitute numbers")
    if has_data_nodes(body):
        return lambdify_datamean(state, body)
    f = sp.lambdify(state, body.tolist() if is_mat else body, "numpy")
    return f


def evaluate(expr: Any, state: Sequence[sp.Symbol], points: Any) -> np.ndarray:
    """A scalar or matrix expression of the state at points (n, d): shape (n,) or (n, rows, cols).

    The time spent is added to :data:`TIMER` (a backend reports it in its solution's ``info``).
    """
    pts = np.asarray(points, dtype=float)
    if pts.ndim == 1:
        pts = pts[:, None]
    d = len(state)
    if pts.shape[1] < d:
        raise InputError(f"coefficients: points have {pts.shape[1]} coordinates, the state has {d}")
    t0 = time.perf_counter()
    f = numpy_function(expr, state)
    n = len(pts)
    vals = f(*[pts[:, k] for k in range(d)])
    if isinstance(expr, sp.MatrixBase):
        rows, cols = sp.Matrix(expr).shape
        arr = np.array(vals, dtype=float)
        arr = np.broadcast_to(arr, (rows, cols, n)) if arr.shape[-1:] != (n,) else arr.reshape(rows, cols, n)
        out = np.moveaxis(np.array(arr), -1, 0)
    else:
        out = np.broadcast_to(np.asarray(vals, dtype=float), (n,)).copy()
    if not np.all(np.isfinite(out)):
        bad = int(np.argmax(~np.isfinite(out.reshape(n, -1)).any(axis=1)))
        raise InputError(f"coefficients: {expr} is not finite at the point {pts[bad].tolist()}")
    TIMER.seconds += time.perf_counter() - t0
    TIMER.evaluations += 1
    TIMER.points += n
    return out


def prefetch(exprs: Sequence[Any], state: Sequence[sp.Symbol], points: Any) -> int:
    r"""Evaluate the data-mean nodes of all ``exprs`` at ``points`` in one shared pass over the data.

    The nodes of every entry (b, D, ∇·D, …) are lowered together: their inner expressions, rewritten
    on hoisted per-sample features, share common sub-expressions (one sigmoid of
    :math:`\theta\cdot x_i y_i` per point and sample serves every mean and covariance), are evaluated
    in cache-sized chunks in float64, and the node values are memoised for these points; a later
    :func:`evaluate` of any entry at the same points only evaluates its outer expression.

    Args:
        exprs: scalar or matrix expressions of the state (entries without data-means are ignored).
        state: the state symbols.
        points: (n, d) coordinates (exactly the array later passed to :func:`evaluate`).

    Returns:
        The number of data-mean nodes evaluated (0: nothing to do). The time is added to :data:`TIMER`.
    """
    entries: list[sp.Expr] = []
    for e in exprs:
        for x in (sp.Matrix(e) if isinstance(e, (sp.MatrixBase, list, tuple)) else [sp.sympify(e)]):
            if has_data_nodes(x) and x not in entries:
                entries.append(x)
    if not entries:
        return 0
    pts = np.asarray(points, dtype=float)
    if pts.ndim == 1:
        pts = pts[:, None]
    state = tuple(state)
    t0 = time.perf_counter()
    nodes = sorted(data_nodes(sp.Matrix(entries)), key=sp.default_sort_key)
    # the nodes themselves (not the entries): one joint reduction, memoised per node and point set
    lambdify_datamean(state, sp.Matrix(nodes))(*[pts[:, k] for k in range(len(state))])
    TIMER.seconds += time.perf_counter() - t0
    return len(nodes)


def psd_check(D: np.ndarray, where: str, *, rtol: float = 1e-8) -> float:
    """Raise unless every matrix of a stack (n, d, d) is PSD to ``rtol``·max|λ|; returns min λ."""
    D = np.asarray(D, dtype=float)
    sym = 0.5 * (D + np.swapaxes(D, -1, -2))
    lam = np.linalg.eigvalsh(sym)
    scale = max(float(np.abs(lam).max()), 1e-300)
    if lam.min() < -rtol * scale:
        k = int(np.argmin(lam.min(axis=-1)))
        raise InputError(f"{where}: the diffusion matrix has a negative eigenvalue {lam.min():.3g} at node "
                         f"{k}; D = σσᵀ/2 must be positive semi-definite")
    return float(lam.min())
