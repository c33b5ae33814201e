r"""Moments of one step of a recursion: :math:`\mathbb E[\Delta]`, :math:`\mathbb E[\Delta\Delta^\top]`.

For :math:`\theta_{k+1} = \theta_k + \Delta(\theta_k, u_k)` with random inputs :math:`u_k`, the
increment is expanded as a polynomial in the inputs and each monomial is replaced by its moment;
independent groups of inputs multiply:

* :class:`~symfp.symbolic.recursion.BatchMean` :math:`\hat g`: :math:`\mathbb E\hat g_i = \bar g_i`,
  :math:`\mathbb E\hat g_i\hat g_j = \bar g_i\bar g_j + (\Sigma_B)_{ij}` with
  :math:`\Sigma_B = \Sigma_1/B` (with replacement, or a Population) or
  :math:`\Sigma_B = \frac{N-B}{B(N-1)}\Sigma_1` (without replacement from N samples);
* :class:`~.recursion.StandardNormal` :math:`\zeta`: :math:`\mathbb E\zeta^k = (k-1)!!` (k even);
* a ``sympy.stats`` variable X: :math:`\mathbb E X^k` exactly.

The results are symbolic in θ, η, B and the constants.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sympy as sp
import sympy.stats as st

from ..errors import InputError
from .datamean import settle_rationals
from .randomness import BatchMean, StandardNormal, random_symbols
from .stage import Stage, latex_broken_sum, sympify_mapping

__all__ = ["OneStepMoments", "expect_inputs", "one_step_moments"]


def _group_moment(spec: Any, exps: tuple[int, ...], where: str) -> sp.Expr:
    deg = sum(exps)
    if deg == 0:
        return sp.Integer(1)
    if isinstance(spec, StandardNormal):
        out = sp.Integer(1)
        for k in exps:
            out *= 0 if k % 2 else sp.factorial2(k - 1)
        return out
    if isinstance(spec, BatchMean):
        idx = [i for i, k in enumerate(exps) for _ in range(k)]
        m = spec.mean
        if deg == 1:
            return m[idx[0]]
        if deg == 2:
            i, j = idx
            return m[i] * m[j] + spec.covariance[i, j]
        raise InputError(
            f"{where}: the increment has a monomial of degree {deg} in the mini-batch means "
            f"{spec.symbols}; only degrees ≤ 2 have closed-form moments (write the step linear in them)"
        )
    # a sympy.stats random variable (one input symbol)
    (k,) = exps
    return sp.simplify(st.E(spec**k))


def expect_inputs(expr: Any, randomness: Mapping[Any, Any], where: str = "moments") -> sp.Expr:
    r""":math:`\mathbb E_u[e(\theta, u)]` over the random inputs ``u`` of a recursion.

    Args:
        expr: a scalar expression in the state, the inputs and parameters.
        randomness: the recursion's ``{input symbol(s): spec}``.
        where: for messages.
    """
    expr = sp.sympify(expr)
    rs = random_symbols(randomness)
    used = [s for s in rs if expr.has(s)]
    if not used:
        return expr
    try:
        poly = sp.Poly(expr, *rs)
        ok = not any(c.has(*rs) for c in poly.coeffs())
    except sp.PolynomialError:
        ok = False
    if not ok:
        rv_only = {k: v for k, v in randomness.items() if not isinstance(v, (BatchMean, StandardNormal))}
        if all(s in rv_only for s in used):
            return sp.simplify(st.E(expr.xreplace(rv_only)))
        raise InputError(
            f"{where}: {expr} is not polynomial in the random inputs {', '.join(map(str, used))}; "
            "mini-batch and standard-normal inputs need a step polynomial in them"
        )
    # position of each input in the monomial exponent tuple
    slices = []
    pos = 0
    for key, spec in randomness.items():
        n = len(key) if isinstance(key, tuple) else 1
        slices.append((spec, pos, pos + n))
        pos += n
    cache: dict[tuple, sp.Expr] = {}
    total = []
    for monom, coeff in poly.terms():
        val = sp.Integer(1)
        for spec, a, b in slices:
            e = tuple(monom[a:b])
            key = (id(spec), e)
            if key not in cache:
                cache[key] = _group_moment(spec, e, where)
            val *= cache[key]
            if val == 0:
                break
        if val != 0:
            total.append(coeff * val)
    return sp.Add(*total)


@dataclass(frozen=True, eq=False)
class OneStepMoments(Stage):
    r"""The first two moments of one step :math:`\Delta = \theta_{k+1} - \theta_k` given :math:`\theta_k`.

    Attributes:
        state: the state symbols.
        mean: :math:`\mathbb E[\Delta]` (d×1).
        second: :math:`\mathbb E[\Delta\Delta^\top]` (d×d).
    """

    state: tuple[sp.Symbol, ...]
    mean: sp.ImmutableMatrix
    second: sp.ImmutableMatrix

    @property
    def cov(self) -> sp.ImmutableMatrix:
        r"""Cov[Δ] :math:`= \mathbb E[\Delta\Delta^\top] - \mathbb E\Delta\,\mathbb E\Delta^\top`."""
        m = sp.Matrix(self.mean)
        return sp.ImmutableMatrix((sp.Matrix(self.second) - m * m.T).applyfunc(sp.expand))

    def subs(self, mapping: Mapping[Any, Any] | None = None, **kwargs: Any) -> OneStepMoments:
        """Substitute numbers for parameters."""
        syms = (self.mean.free_symbols | self.second.free_symbols) - set(self.state)
        m = sympify_mapping({**(mapping or {}), **kwargs}, "OneStepMoments.subs", syms)
        return OneStepMoments(self.state, self.mean.subs(m), self.second.subs(m))

    def latex(self) -> str:
        r"""LaTeX of both moments, entry by entry (``aligned`` rows; long sums broken into lines)."""
        names = [sp.latex(s) for s in self.state]
        rows = [(rf"\mathbb E[\Delta_{{{names[i]}}}]", self.mean[i]) for i in range(len(names))]
        rows += [
            (rf"\mathbb E[\Delta_{{{names[i]}}}\Delta_{{{names[j]}}}]", self.second[i, j])
            for i in range(len(names)) for j in range(i, len(names))
        ]
        # exact data moments are shown as 15-digit floats (display only)
        return " \\\\\n".join(f"{lhs} &= {latex_broken_sum(settle_rationals(e))}" for lhs, e in rows)


def one_step_moments(rec: Any) -> OneStepMoments:
    r"""Exact :math:`\mathbb E[\Delta]` and :math:`\mathbb E[\Delta\Delta^\top]` of a recursion.

    Args:
        rec: a :class:`~symfp.symbolic.recursion.Recursion` (its ``state``, ``dim``, ``increment`` and
            ``randomness`` are read).
    """
    delta = sp.Matrix(rec.increment)
    d = rec.dim
    mean = delta.applyfunc(lambda e: expect_inputs(e, rec.randomness, "one-step mean"))
    second = sp.zeros(d, d)
    for i in range(d):
        for j in range(i, d):
            second[i, j] = second[j, i] = expect_inputs(
                sp.expand(delta[i] * delta[j]), rec.randomness, "one-step second moment"
            )
    return OneStepMoments(rec.state, sp.ImmutableMatrix(mean), sp.ImmutableMatrix(second))
