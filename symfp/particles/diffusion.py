r"""The noise factor σ(θ) with σσᵀ = 2D(θ), batched, for any positive semi-definite D.

σ is the symmetric PSD square root :math:`\sigma = V\,\mathrm{diag}(\sqrt{\max(\lambda_i, 0)})\,V^\top`
of :math:`2D = V\,\mathrm{diag}(\lambda)\,V^\top` (``torch.linalg.eigh``; eigenvalues clamped at 0), so a
rank-deficient D (momentum SGD: noise in the velocity only) is fine, and tiny negative eigenvalues
from round-off are ignored. It is smooth wherever the rank of D is locally constant, which the weak
order-2 scheme needs. Three cases are recognised symbolically, cheapest first:

* constant D: σ is computed once (numpy, float64);
* diagonal D: :math:`\sigma = \mathrm{diag}(\sqrt{2D_{ii}})` entry-wise;
* general D: the batched eigen-decomposition above.

A clearly negative eigenvalue (below −1e-8·max|λ|) means D is not a diffusion matrix: that raises.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sympy as sp
import torch

from ..errors import InputError
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
        diffusion: the d×d SymPy matrix D in the state symbols.
        state: the state symbols.
    """

    def __init__(self, diffusion: sp.MatrixBase, state: Sequence[sp.Symbol]):
        D = sp.Matrix(diffusion)
        self.d = D.rows
        self.state = tuple(state)
        off = [D[i, j] for i in range(self.d) for j in range(self.d) if i != j]
        if not D.free_symbols & set(self.state):
            self.kind = "constant"
            self._sig = psd_sqrt_numpy(np.array(2 * D, dtype=float), "SDE simulation")
        elif all(sp.simplify(e) == 0 for e in off):
            self.kind = "diagonal"
            self._diag = state_function(
                sp.Matrix([2 * D[i, i] for i in range(self.d)]), self.state, "SDE diffusion"
            )
        else:
            self.kind = "full"
            self._full = state_function(2 * D, self.state, "SDE diffusion")
        self._cache: dict = {}

    def _const(self, theta: torch.Tensor) -> torch.Tensor:
        key = (theta.dtype, theta.device)
        if key not in self._cache:
            self._cache[key] = torch.as_tensor(self._sig, dtype=theta.dtype, device=theta.device)
        return self._cache[key]

    def two_d(self, theta: torch.Tensor) -> torch.Tensor:
        """2D(θ) = σσᵀ as (n, d, d)."""
        if self.kind == "constant":
            s = self._const(theta)
            return (s @ s.T).expand(len(theta), self.d, self.d)
        if self.kind == "diagonal":
            return torch.diag_embed(self._diag(theta).clamp_min(0))
        return self._full(theta)

    def sigma(self, theta: torch.Tensor) -> torch.Tensor:
        """σ(θ) as (n, d, d)."""
        if self.kind == "constant":
            return self._const(theta).expand(len(theta), self.d, self.d)
        if self.kind == "diagonal":
            return torch.diag_embed(self._diag(theta).clamp_min(0).sqrt())
        return psd_sqrt(self._full(theta))

    def apply(self, theta: torch.Tensor, dw: torch.Tensor) -> torch.Tensor:
        """σ(θ) dw for dw of shape (n, d), without forming σ when it is constant or diagonal."""
        if self.kind == "constant":
            return dw @ self._const(theta).T
        if self.kind == "diagonal":
            return self._diag(theta).clamp_min(0).sqrt() * dw
        return (psd_sqrt(self._full(theta)) @ dw[..., None])[..., 0]
