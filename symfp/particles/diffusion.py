r"""The noise factor σ(θ) with σσᵀ = 2D(θ), batched, for any positive semi-definite D.

σ is the symmetric PSD square root :math:`\sigma = V\,\mathrm{diag}(\sqrt{\max(\lambda_i, 0)})\,V^\top`
of :math:`2D = V\,\mathrm{diag}(\lambda)\,V^\top` (``torch.linalg.eigh``; eigenvalues clamped at 0), so a
rank-deficient D (momentum SGD: noise in the velocity only) is fine, and tiny negative eigenvalues
from round-off are ignored. It is smooth wherever the rank of D is locally constant, which the weak
order-2 scheme needs. Three cases are recognised symbolically, cheapest first:

* constant D: σ is computed once (numpy, float64);
* diagonal D: :math:`\sigma = \mathrm{diag}(\sqrt{2D_{ii}})` entry-wise;
* rank-one D, :math:`2D = c\,uu^\top` found by SymPy (:func:`rank_one_factor`): the single column
  :math:`\sigma = \sqrt{c}\,u` (e.g. plain SGD with one-dimensional per-sample gradient noise, the
  linear network);
* general D: the batched square root above (closed form for d ≤ 2, eigen-decomposition beyond).

When D depends explicitly on time (``time`` given and present in D), "constant" is not used: a
D(t) of the time only is "diagonal" or "full", and every lambdified factor takes the time as an
extra 0-d tensor argument: ``sigma(theta, t)``, ``apply(theta, dw, t)``, ``two_d(theta, t)``. For an
autonomous D the ``t`` argument is ignored (and nothing about the fast paths changes).

A clearly negative eigenvalue (below −1e-8·max|λ|) means D is not a diffusion matrix: that raises.

A D holding data-mean nodes (a covariance over a data set) is never simplified or factorised
symbolically (that work grows with the expression): it is "constant" when free of the state,
"diagonal" when its off-diagonal entries are structurally 0, else "full" (batched square root of the
numerically evaluated, centred covariance, PSD to round-off).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sympy as sp
import torch

from ..errors import InputError
from ..symbolic.datamean import has_data_nodes
from .lambdify import state_function


def psd_sqrt(m: torch.Tensor) -> torch.Tensor:
    r"""Symmetric PSD square root of a batch (n, d, d) of symmetric matrices (eigenvalues clamped ≥ 0).

    For d = 2 the closed form :math:`\sqrt{M} = (M + sI)/t`, :math:`s = \sqrt{\det M}`,
    :math:`t = \sqrt{\operatorname{tr} M + 2s}` is used
    (also right for rank one: :math:`M/\sqrt{\operatorname{tr}M}`; 0 for M = 0);
    otherwise ``torch.linalg.eigh``.
    """
    if m.shape[-1] == 1:
        return m.clamp_min(0).sqrt()
    if m.shape[-1] == 2:
        a, b, c = m[..., 0, 0], 0.5 * (m[..., 0, 1] + m[..., 1, 0]), m[..., 1, 1]
        s = (a * c - b * b).clamp_min(0).sqrt()
        t = (a + c + 2 * s).clamp_min(0).sqrt()
        inv = torch.where(t > 0, 1.0 / t.clamp_min(1e-300), torch.zeros_like(t))
        row0 = torch.stack([(a + s) * inv, b * inv], -1)
        row1 = torch.stack([b * inv, (c + s) * inv], -1)
        return torch.stack([row0, row1], -2)
    lam, v = torch.linalg.eigh(m)
    return (v * lam.clamp_min(0).sqrt()[..., None, :]) @ v.transpose(-1, -2)


def psd_sqrt_numpy(m: np.ndarray, where: str) -> np.ndarray:
    """Symmetric PSD square root of one matrix, raising if it is clearly indefinite."""
    lam, v = np.linalg.eigh(m)
    if lam.min() < -1e-8 * max(1.0, np.abs(lam).max()):
        raise InputError(
            f"{where}: the diffusion matrix D has a negative eigenvalue {lam.min():.3g}; "
            "D = σσᵀ/2 must be positive semi-definite"
        )
    return (v * np.sqrt(np.clip(lam, 0, None))) @ v.T


class NoiseFactor:
    """σ(θ) for an SDE's D(θ): ``sigma(theta)`` (n, d, d), ``apply(theta, dw)`` = σ dw, ``two_d``.

    Args:
        diffusion: the d×d SymPy matrix D in the state symbols (and the time).
        state: the state symbols.
        time: the time symbol t when D may depend on it (``SDE.time``), else None.
    """

    def __init__(self, diffusion: sp.MatrixBase, state: Sequence[sp.Symbol], time: sp.Symbol | None = None):
        D = sp.Matrix(diffusion)
        self.d = D.rows
        self.state = tuple(state)
        self.time = time if time is not None and time in D.free_symbols else None
        self.timed = self.time is not None
        args = (*self.state, self.time) if self.timed else self.state
        off = [D[i, j] for i in range(self.d) for j in range(self.d) if i != j]
        nodes = has_data_nodes(D)
        if not D.free_symbols & set(args):
            self.kind = "constant"
            self._sig = psd_sqrt_numpy(np.array(2 * D, dtype=float), "SDE simulation")
        elif all(e == 0 for e in off) or (not nodes and all(sp.simplify(e) == 0 for e in off)):
            self.kind = "diagonal"
            self._diag = self._fn(sp.Matrix([2 * D[i, i] for i in range(self.d)]), "SDE diffusion")
        elif nodes:  # data-means: no symbolic factorisation; the batched PSD square root, per particle
            self.kind = "full"
            self._full = self._fn(2 * D, "SDE diffusion")
        elif (r1 := rank_one_factor(2 * D, args)) is not None:
            self.kind = "rank1"
            c, u = r1
            self.factor = (c, u)
            self._r1 = self._fn(sp.Matrix([c, *u]), "SDE diffusion (rank one)")
        else:
            self.kind = "full"
            self._full = self._fn(2 * D, "SDE diffusion")
        self._cache: dict = {}

    def _fn(self, expr: sp.Matrix, where: str):
        """θ ↦ expr(θ), or (θ, t) ↦ expr(θ, t) for a time-dependent D (t ignored when autonomous)."""
        f = state_function(expr, self.state, where, self.time)
        if self.timed:
            return f
        return lambda theta, t=None: f(theta)

    def _const(self, theta: torch.Tensor) -> torch.Tensor:
        key = (theta.dtype, theta.device)
        if key not in self._cache:
            self._cache[key] = torch.as_tensor(self._sig, dtype=theta.dtype, device=theta.device)
        return self._cache[key]

    @property
    def constant_sigma(self) -> np.ndarray | None:
        """σ (d×d numpy) when D is constant, else None."""
        return self._sig if self.kind == "constant" else None

    def _column(self, theta: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """Rank one: the single noise column √c(θ)·u(θ) as (n, d)."""
        cu = self._r1(theta, t)
        return cu[:, 1:] * cu[:, :1].clamp_min(0).sqrt()

    def two_d(self, theta: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """2D(θ, t) = σσᵀ as (n, d, d) (t: a 0-d tensor, needed only for a time-dependent D)."""
        if self.kind == "constant":
            s = self._const(theta)
            return (s @ s.T).expand(len(theta), self.d, self.d)
        if self.kind == "diagonal":
            return torch.diag_embed(self._diag(theta, t).clamp_min(0))
        if self.kind == "rank1":
            v = self._column(theta, t)
            return v[:, :, None] * v[:, None, :]
        return self._full(theta, t)

    def sigma(self, theta: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """σ(θ, t) as (n, d, d) (rank one: the column √c·u then zero columns)."""
        if self.kind == "constant":
            return self._const(theta).expand(len(theta), self.d, self.d)
        if self.kind == "diagonal":
            return torch.diag_embed(self._diag(theta, t).clamp_min(0).sqrt())
        if self.kind == "rank1":
            sig = theta.new_zeros((len(theta), self.d, self.d))
            sig[:, :, 0] = self._column(theta, t)
            return sig
        return psd_sqrt(self._full(theta, t))

    def apply(self, theta: torch.Tensor, dw: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """σ(θ, t) dw for dw of shape (n, d), without forming σ when constant, diagonal or rank one."""
        if self.kind == "constant":
            return dw @ self._const(theta).T
        if self.kind == "diagonal":
            return self._diag(theta, t).clamp_min(0).sqrt() * dw
        if self.kind == "rank1":
            cu = self._r1(theta, t)
            return cu[:, 1:] * (cu[:, 0].clamp_min(0).sqrt() * dw[:, 0])[:, None]
        return (psd_sqrt(self._full(theta, t)) @ dw[..., None])[..., 0]


def rank_one_factor(m: sp.Matrix, state: Sequence[sp.Symbol]) -> tuple[sp.Expr, list[sp.Expr]] | None:
    r"""Write a symmetric matrix as :math:`M = c\,u u^\top` symbolically, or return None.

    With j the first index whose diagonal entry is not identically 0, column j is
    :math:`M_{:,j} = c\,u_j\,u`; dividing it by the polynomial gcd g of its entries gives u (up to a
    constant factor) and :math:`c = M_{jj}/u_j^2`. The factorisation is accepted only when
    :math:`M - c\,uu^\top` simplifies to 0. Then :math:`\sigma = \sqrt{c}\,u` (one noise column)
    satisfies :math:`\sigma\sigma^\top = M` and is smooth wherever c > 0 (no eigen-decomposition
    per particle, and a well-defined factor for the weak order-2 scheme).

    Args:
        m: the d×d symmetric matrix 2D(θ).
        state: the state symbols.

    Returns:
        (c, u) with u a list of d expressions, or None when M is not of that form (or SymPy cannot
        tell quickly).
    """
    d = m.rows
    try:
        j = next(i for i in range(d) if sp.simplify(m[i, i]) != 0)
        col = [sp.cancel(sp.together(m[i, j])) for i in range(d)]
        g = sp.gcd_list([e for e in col if e != 0])
        if g == 0:
            return None
        u = [sp.cancel(e / g) for e in col]
        c = sp.cancel(m[j, j] / u[j] ** 2)
        if c.is_number and c <= 0:
            return None
        rest = (m - c * sp.Matrix(u) * sp.Matrix(u).T).applyfunc(lambda e: sp.cancel(sp.expand(e)))
        if any(e != 0 for e in rest):
            return None
        if not (sp.Matrix([c, *u]).free_symbols <= set(state)):
            return None
        return c, u
    except (sp.PolynomialError, StopIteration, TypeError, ZeroDivisionError):
        return None
