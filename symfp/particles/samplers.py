r"""SymPy random variables (``sympy.stats``) → torch samplers built on bulk normals and uniforms.

Every sampler is a transformation of standard normals or uniforms from :class:`Noise`, so it is
seeded, batched and antithetic-aware:

=================  =============================================
Normal(μ, σ)       μ + σ z
LogNormal(μ, σ)    exp(μ + σ z)
Uniform(a, b)      a + (b − a) u
Exponential(λ)     −log(1 − u)/λ
Laplace(μ, b)      μ − b sign(u − ½) log(1 − 2|u − ½|)
Cauchy(x₀, γ)      x₀ + γ tan(π(u − ½))
Logistic(μ, s)     μ + s log(u/(1 − u))
Bernoulli(p, a, b) a if u < p else b
Rademacher         DiscreteUniform / Die with finite support: inverse CDF on the support
=================  =============================================

Other distributions raise an error naming the supported ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import sympy as sp
import torch

from ..errors import DataError
from .noise import Noise

Sampler = Callable[[Noise, tuple[int, ...]], torch.Tensor]


def _num(x: Any, name: str, where: str) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        raise DataError(
            f"{where}: parameter {name} = {x} of the distribution is not a number; substitute numbers first"
        ) from None


def sampler(rv: Any, where: str = "Population") -> Sampler:
    """The torch sampler of a SymPy random variable (or a number, for a degenerate one).

    Returns:
        ``f(noise, shape)`` → tensor of shape (noise.n, *shape).

    Raises:
        DataError: the distribution has no sampler here, or its parameters are not numbers.
    """
    if isinstance(rv, (int, float)) or (isinstance(rv, sp.Basic) and rv.is_number):
        c = float(rv)
        return lambda nz, shape: torch.full((nz.n, *shape), c, dtype=nz.dtype, device=nz.device)
    try:
        dist = rv.pspace.distribution
    except AttributeError:
        raise DataError(f"{where}: {rv!r} is not a sympy.stats random variable") from None
    name = type(dist).__name__.replace("Distribution", "")
    args = dist.args

    def p(i: int, nm: str) -> float:
        return _num(args[i], nm, where)

    if name == "Normal":
        mu, s = p(0, "mean"), p(1, "std")
        return lambda nz, shape: mu + s * nz.normal(*shape)
    if name == "LogNormal":
        mu, s = p(0, "mean"), p(1, "std")
        return lambda nz, shape: torch.exp(mu + s * nz.normal(*shape))
    if name == "Uniform":
        a, b = p(0, "left"), p(1, "right")
        return lambda nz, shape: a + (b - a) * nz.uniform(*shape)
    if name == "Exponential":
        lam = p(0, "rate")
        return lambda nz, shape: -torch.log1p(-nz.uniform(*shape)) / lam
    if name == "Laplace":
        mu, b = p(0, "mu"), p(1, "b")

        def lap(nz, shape):
            v = nz.uniform(*shape) - 0.5
            return mu - b * torch.sign(v) * torch.log1p(-2 * v.abs())

        return lap
    if name == "Cauchy":
        x0, g = p(0, "x0"), p(1, "gamma")
        return lambda nz, shape: x0 + g * torch.tan(math.pi * (nz.uniform(*shape) - 0.5))
    if name == "Logistic":
        mu, s = p(0, "mu"), p(1, "s")
        return lambda nz, shape: mu + s * torch.logit(nz.uniform(*shape).clamp(1e-300, 1 - 1e-16))
    if name == "Bernoulli":
        pr, succ, fail = p(0, "p"), p(1, "succ"), p(2, "fail")
        return lambda nz, shape: torch.where(nz.uniform(*shape) < pr, succ, fail).to(nz.dtype)
    try:
        dens = sp.stats.density(rv).dict
    except Exception:  # noqa: BLE001 - sympy raises various errors for continuous RVs
        dens = None
    if isinstance(dens, dict) and dens:
        vals = [_num(k, "support", where) for k in dens]
        probs = [_num(v, "probability", where) for v in dens.values()]
        order = sorted(range(len(vals)), key=lambda i: vals[i])
        vals_t = torch.tensor([vals[i] for i in order], dtype=torch.float64)
        cdf = torch.tensor(
            [sum(probs[j] for j in order[: k + 1]) for k in range(len(order))], dtype=torch.float64
        )

        def finite(nz, shape):
            u = nz.uniform(*shape).to(torch.float64)
            k = torch.searchsorted(cdf.to(u.device), u.contiguous(), right=True).clamp_max(len(vals) - 1)
            return vals_t.to(u.device)[k].to(nz.dtype)

        return finite
    raise DataError(
        f"{where}: no torch sampler for the distribution {name}{tuple(args)} of {rv}; supported: Normal, "
        "LogNormal, Uniform, Exponential, Laplace, Cauchy, Logistic, Bernoulli and finite discrete ones "
        "(Die, DiscreteUniform, FiniteRV); or give a Dataset of samples instead"
    )
