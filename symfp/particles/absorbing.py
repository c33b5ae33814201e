r"""Absorbing sets for first-passage times: boxes, balls, half-spaces, sub-level sets, mesh complements.

A particle is absorbed the first time it enters the set A. Each set gives a *margin* m(θ): a signed
distance (or its first-order approximation), positive outside A (alive) and ≤ 0 in A, and the unit
normal n = ∇m. For the SDE, a particle alive at both ends of a step can still have crossed in between;
the Brownian-bridge correction absorbs it with probability

.. math:: p = \exp\!\Big(-\frac{2\, m_0\, m_1}{n^\top (2D)\, n\;\Delta t}\Big),

exact for a flat boundary and constant coefficients over the step (Glasserman, Monte Carlo Methods in
Financial Engineering, §6.4).

Every set has ``complement=True`` to absorb on *leaving* the set instead (exit from a domain).
The complement of an FE mesh, :class:`symfp.bridge.absorbing.MeshComplement`, lives in the bridge
(it needs a mesh); ``symfp.particles.absorbing.MeshComplement`` still resolves to it, lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy as sp
import torch

from ..errors import InputError


class AbsorbingSet:
    """Base class: ``margin(theta)`` (n,), ``normal(theta)`` (n, d); ``complement`` flips the set."""

    dim: int | None = None
    has_margin: bool = True

    def __init__(self, complement: bool = False):
        self.complement = bool(complement)

    def _signed(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(s, ∇s) with s > 0 inside the set itself."""
        raise NotImplementedError

    def margin_normal(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Margin (> 0 alive) and its unit gradient."""
        s, g = self._signed(theta)
        return (s, g) if self.complement else (-s, -g)

    def absorbed(self, theta: torch.Tensor) -> torch.Tensor:
        """Bool (n,): the particle is in the absorbing set."""
        return self.margin_normal(theta)[0] <= 0

    def check_dim(self, d: int) -> None:
        if self.dim is not None and self.dim != d:
            raise InputError(
                f"{type(self).__name__}: set of dimension {self.dim} for a state of dimension {d}"
            )


def _vec(x: Any, what: str) -> np.ndarray:
    v = np.atleast_1d(np.asarray(x, dtype=float))
    if v.ndim != 1 or not np.all(np.isfinite(v)):
        raise InputError(f"absorbing set: {what} must be a finite vector, got {x!r}")
    return v


class Box(AbsorbingSet):
    """The box ∏[lo_k, hi_k] (``bounds = [(lo, hi), ...]``; use ±inf for an unbounded side)."""

    def __init__(self, bounds: Sequence[tuple[float, float]], complement: bool = False):
        super().__init__(complement)
        b = np.asarray(bounds, dtype=float).reshape(-1, 2)
        if np.any(b[:, 0] >= b[:, 1]):
            raise InputError(f"Box: every bound needs lo < hi, got {bounds!r}")
        self.bounds = b
        self.dim = len(b)

    def _signed(self, theta):
        lo = torch.as_tensor(self.bounds[:, 0], dtype=theta.dtype, device=theta.device)
        hi = torch.as_tensor(self.bounds[:, 1], dtype=theta.dtype, device=theta.device)
        dist = torch.cat([theta - lo, hi - theta], dim=1)  # > 0 inside along each face
        s, k = dist.min(dim=1)
        d = theta.shape[1]
        sign = torch.where(k < d, 1.0, -1.0).to(theta.dtype)
        g = torch.zeros_like(theta)
        g[torch.arange(len(theta), device=theta.device), k % d] = sign
        outside = torch.clamp(lo - theta, min=0) + torch.clamp(theta - hi, min=0)
        out_d = outside.norm(dim=1)
        s = torch.where(s < 0, -out_d, s)
        return s, g


class Ball(AbsorbingSet):
    """The closed ball |θ − center| ≤ radius."""

    def __init__(self, center: Sequence[float], radius: float, complement: bool = False):
        super().__init__(complement)
        self.center = _vec(center, "center")
        if not radius > 0:
            raise InputError(f"Ball: radius must be positive, got {radius!r}")
        self.radius = float(radius)
        self.dim = len(self.center)

    def _signed(self, theta):
        r = theta - torch.as_tensor(self.center, dtype=theta.dtype, device=theta.device)
        nr = r.norm(dim=1, keepdim=True)
        return self.radius - nr[:, 0], -r / nr.clamp_min(1e-300)


class HalfSpace(AbsorbingSet):
    """The half-space {θ : normal·θ ≥ offset}."""

    def __init__(self, normal: Sequence[float], offset: float, complement: bool = False):
        super().__init__(complement)
        n = _vec(normal, "normal")
        nn = np.linalg.norm(n)
        if nn == 0:
            raise InputError("HalfSpace: the normal is the zero vector")
        self.normal_vec, self.offset, self.dim = n / nn, float(offset) / nn, len(n)

    def _signed(self, theta):
        n = torch.as_tensor(self.normal_vec, dtype=theta.dtype, device=theta.device)
        return theta @ n - self.offset, n.expand_as(theta)


class SubLevel(AbsorbingSet):
    r"""The sub-level set {θ : g(θ) ≤ level} of a SymPy expression g in the state symbols.

    The margin is the first-order distance :math:`(g-\text{level})/|\nabla g|`.
    """

    def __init__(self, expr: Any, state: Sequence[sp.Symbol], level: float = 0.0, complement: bool = False):
        super().__init__(complement)
        from .lambdify import state_function

        self.expr = sp.sympify(expr)
        self.state = tuple(state)
        self.level = float(level)
        self.dim = len(self.state)
        grad = sp.Matrix([sp.diff(self.expr, s) for s in self.state])
        self._g = state_function(self.expr, self.state, "SubLevel")
        self._grad = state_function(grad, self.state, "SubLevel (gradient)")

    def _signed(self, theta):
        gv = self._g(theta) - self.level
        grad = self._grad(theta)
        nrm = grad.norm(dim=1).clamp_min(1e-300)
        return -gv / nrm, -grad / nrm[:, None]


class Union(AbsorbingSet):
    """Union of absorbing sets: absorbed on entering any of them."""

    def __init__(self, sets: Sequence[AbsorbingSet]):
        super().__init__(False)
        self.sets = list(sets)
        self.has_margin = all(s.has_margin for s in self.sets)

    def check_dim(self, d):
        for s in self.sets:
            s.check_dim(d)

    def absorbed(self, theta):
        out = torch.zeros(len(theta), dtype=torch.bool, device=theta.device)
        for s in self.sets:
            out |= s.absorbed(theta)
        return out

    def margin_normal(self, theta):
        ms, ns = zip(*(s.margin_normal(theta) for s in self.sets), strict=True)
        m, k = torch.stack(ms, 1).min(dim=1)
        n = torch.stack(ns, 1)[torch.arange(len(theta), device=theta.device), k]
        return m, n


def as_absorbing(spec: Any, d: int) -> AbsorbingSet | None:
    """Normalise the ``absorbing=`` argument (a set, a list of sets, or None)."""
    if spec is None:
        return None
    if isinstance(spec, (list, tuple)):
        spec = Union([as_absorbing(s, d) for s in spec])
    if not isinstance(spec, AbsorbingSet):
        if hasattr(spec, "locate_cells") or hasattr(spec, "mesh") or hasattr(spec, "topology"):
            from ..bridge.absorbing import MeshComplement  # the mesh lives in the FE world: the bridge

            spec = MeshComplement(spec)
        else:
            raise InputError(
                f"absorbing={spec!r} is not an absorbing set; use symfp.particles.Box, Ball, HalfSpace, "
                "SubLevel, MeshComplement or a list of them"
            )
    spec.check_dim(d)
    return spec


def bridge_crossed(
    absorbing: AbsorbingSet,
    theta0: torch.Tensor,
    theta1: torch.Tensor,
    diff2: torch.Tensor,
    dt: float,
    uniform: torch.Tensor,
) -> torch.Tensor:
    r"""Bool (n,): alive at both ends but crossed in between (Brownian-bridge probability).

    Args:
        absorbing: the set.
        theta0, theta1: (n, d) positions at the start and end of the step.
        diff2: (n, d, d) the matrix 2D (= σσᵀ) at the start of the step.
        dt: the step.
        uniform: (n,) uniforms deciding the crossing.
    """
    m0, n0 = absorbing.margin_normal(theta0)
    m1, _ = absorbing.margin_normal(theta1)
    var = torch.einsum("ni,nij,nj->n", n0, diff2, n0).clamp_min(1e-300) * dt
    p = torch.exp(-2.0 * m0.clamp_min(0) * m1.clamp_min(0) / var)
    return uniform < p


def __getattr__(name: str):
    if name == "MeshComplement":
        from ..bridge.absorbing import MeshComplement

        return MeshComplement
    raise AttributeError(f"module 'symfp.particles.absorbing' has no attribute {name!r}")
