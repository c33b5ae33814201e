r"""Stochastic modified equations by matching one-step moments.

For a recursion with increment :math:`\Delta` of size O(η) we look for an Itô SDE
:math:`d\theta = b\,dt + \sigma\,dW`, :math:`D = \tfrac12\sigma\sigma^\top`, whose solution over one
step :math:`dt = \eta` has the same first two moments to a given order. With the generator
:math:`\mathcal L\varphi = b\cdot\nabla\varphi + D:\nabla\nabla\varphi`, the weak Itô–Taylor expansion

.. math::
    \mathbb E[\varphi(X_\eta)\mid X_0 = \theta] = \sum_{n\ge 0}\frac{\eta^n}{n!}(\mathcal L^n\varphi)(\theta)

applied to :math:`\varphi = \Delta_i` and :math:`\varphi = \Delta_i\Delta_j` gives the SDE's one-step
moments. With the ansatz :math:`b = \sum_k \eta^k b_k`, :math:`D = \sum_k \eta^k D_k`, the coefficient
of :math:`\eta^{k+1}` contains :math:`b_k` and :math:`2D_k` linearly (plus known lower-order terms), so
equating it to the recursion's :math:`\mathbb E[\Delta]` and :math:`\mathbb E[\Delta\Delta^\top]`
determines :math:`b_k, D_k` order by order (:func:`match_moments`). For SGD this yields Li–Tai–E:
order 1 :math:`b = -\nabla f`, :math:`D = \tfrac\eta2\Sigma_B`; order 2
:math:`b = -\nabla(f + \tfrac\eta4|\nabla f|^2)`, same D.

Conventions (stated as the SDE's assumptions):

* order p keeps :math:`b_0..b_{p-1}` and :math:`D_0..D_{p-1}` (moments matched through
  :math:`\eta^p`), except that order 1 adds the leading mini-batch noise
  :math:`\eta D_1` matched at :math:`\eta^2` with injected noise switched off (for plain SGD
  :math:`D_0 = 0` and this is :math:`\tfrac\eta2\Sigma_B`);
* momentum :math:`\beta = 1 - \gamma\eta` with :math:`\gamma` held fixed as :math:`\eta\to0`.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from ..errors import InputError
from .datamean import settle_rationals
from .moments import one_step_moments
from .sde import SDE

__all__ = ["sde_step_moments", "match_moments", "sgd_sme", "recursion_sme"]


def _coeffs(expr: sp.Expr, h: sp.Symbol, kmax: int) -> list[sp.Expr]:
    r"""Coefficients of :math:`h^0..h^{kmax}` of ``expr`` (a polynomial in h, or its Taylor series)."""
    e = sp.expand(expr)
    if not e.is_polynomial(h):
        e = sp.expand(sp.series(e, h, 0, kmax + 1).removeO())
    return [e.coeff(h, k) for k in range(kmax + 1)]


def sde_step_moments(
    state: tuple[sp.Symbol, ...], b: sp.Matrix, D: sp.Matrix, h: sp.Symbol, kmax: int
) -> tuple[sp.Matrix, sp.Matrix]:
    r"""The SDE's one-step :math:`\mathbb E[\Delta]`, :math:`\mathbb E[\Delta\Delta^\top]` through h^kmax.

    ``b`` and ``D`` may themselves depend on h (the modified equation's series); terms beyond
    :math:`h^{kmax}` are dropped at every application of :math:`\mathcal L`. When b and D are
    polynomial in the state and h the computation runs in SymPy's polynomial rings (fast);
    otherwise on general expressions.
    """
    d = len(state)
    y = sp.symbols(f"_y0:{d}", real=True)
    gens = (*state, *y, h)
    try:
        # one common coefficient domain for all polynomials: no conversions in the loop
        polys, _ = sp.parallel_poly_from_expr([*b, *D, sp.Integer(1)], *gens)
        dom = polys[0].domain
        fast = not any(set(p.free_symbols_in_domain) & set(gens) for p in polys)
        bp = polys[:d]
        Dp = [[polys[d + i * d + j] for j in range(d)] for i in range(d)]
    except (sp.PolynomialError, sp.GeneratorsNeeded):
        fast = False
    hpos = len(gens) - 1

    if fast:
        def gen(phi: sp.Poly) -> sp.Poly:
            out = sp.Poly(0, *gens, domain=dom)
            for i in range(d):
                gi = phi.diff(state[i])
                if gi.is_zero:
                    continue
                out += bp[i] * gi
                for j in range(d):
                    if not Dp[i][j].is_zero:
                        out += Dp[i][j] * gi.diff(state[j])
            return out

        def trunc(p: sp.Poly, kmax: int) -> sp.Poly:
            return sp.Poly.from_dict({m: c for m, c in p.terms() if m[hpos] <= kmax}, *gens,
                                     domain=p.domain) if not p.is_zero else p

        def lift(e: sp.Expr) -> sp.Poly:
            return sp.Poly(e, *gens, domain=dom)

        def lower(p: sp.Poly) -> sp.Expr:
            return p.as_expr()
    else:
        def gen(phi: sp.Expr) -> sp.Expr:
            out = sp.Integer(0)
            for i in range(d):
                gi = sp.diff(phi, state[i])
                if gi == 0:
                    continue
                out += b[i] * gi
                for j in range(d):
                    if D[i, j] != 0:
                        out += D[i, j] * sp.diff(gi, state[j])
            return out

        def trunc(e: sp.Expr, kmax: int) -> sp.Expr:
            return sp.Add(*[c * h**k for k, c in enumerate(_coeffs(e, h, kmax))])

        lift = lower = sp.sympify

    to_y = dict(zip(state, y, strict=True))
    back = dict(zip(y, state, strict=True))

    def expand_phi(phi: sp.Expr) -> sp.Expr:
        total = sp.Integer(0)
        term = lift(phi)
        for n in range(1, kmax + 1):
            term = trunc(gen(term), kmax - n)
            if term.is_zero:
                break
            total += h**n / sp.factorial(n) * lower(term).xreplace(to_y)  # at x = x0
        return sp.expand(total).xreplace(back)

    delta = [s - to_y[s] for s in state]
    m1 = sp.Matrix([expand_phi(delta[i]) for i in range(d)])
    m2 = sp.zeros(d, d)
    for i in range(d):
        for j in range(i, d):
            m2[i, j] = m2[j, i] = expand_phi(delta[i] * delta[j])
    return m1, m2


def match_moments(
    state: tuple[sp.Symbol, ...], mean: Any, second: Any, h: sp.Symbol, n_orders: int
) -> tuple[list[sp.Matrix], list[sp.Matrix]]:
    r"""Solve for :math:`b_k, D_k`, k < n_orders, by matching the :math:`h^{k+1}` coefficients of the moments.

    Args:
        state: the state symbols.
        mean: the recursion's :math:`\mathbb E[\Delta]` (d×1), a function of h.
        second: its :math:`\mathbb E[\Delta\Delta^\top]` (d×d).
        h: the step size (dt = h).
        n_orders: how many orders of b and D to determine.

    Returns:
        ``([b_0, b_1, ...], [D_0, D_1, ...])``.
    """
    d = len(state)
    mean_c = [_coeffs(e, h, n_orders) for e in sp.Matrix(mean)]
    second = sp.Matrix(second)
    pairs = [(i, j) for i in range(d) for j in range(i, d)]
    second_c = {(i, j): _coeffs(second[i, j], h, n_orders) for (i, j) in pairs}
    bs: list[sp.Matrix] = []
    Ds: list[sp.Matrix] = []
    pb = sp.Matrix(sp.symbols(f"_pb0:{d}"))
    pd_syms = {(i, j): sp.Symbol(f"_pd{i}_{j}") for (i, j) in pairs}
    pd = sp.zeros(d, d)
    for (i, j), sym in pd_syms.items():
        pd[i, j] = pd[j, i] = sym
    unknowns = [*pb, *pd_syms.values()]
    for k in range(n_orders):
        b = sum((h**j * bs[j] for j in range(k)), sp.zeros(d, 1)) + h**k * pb
        D = sum((h**j * Ds[j] for j in range(k)), sp.zeros(d, d)) + h**k * pd
        m1, m2 = sde_step_moments(state, b, D, h, k + 1)
        eqs = [sp.expand(m1[i]).coeff(h, k + 1) - mean_c[i][k + 1] for i in range(d)]
        eqs += [sp.expand(m2[i, j]).coeff(h, k + 1) - second_c[(i, j)][k + 1] for (i, j) in pairs]
        A, rhs = sp.linear_eq_to_matrix(eqs, unknowns)
        if A.det() == 0:  # pragma: no cover - the structure makes A diagonal (1 and 2)
            raise InputError(f"moment matching: singular system at order {k}")
        sol = A.LUsolve(rhs).applyfunc(sp.expand)
        bs.append(sp.Matrix(sol[:d]))
        Dk = sp.zeros(d, d)
        for n, (i, j) in enumerate(pairs):
            Dk[i, j] = Dk[j, i] = sol[d + n]
        Ds.append(Dk)
    return bs, Ds


def _check_order(order: Any) -> int:
    if order not in (1, 2) or isinstance(order, bool):
        raise InputError(f"sme: order = {order!r} is not supported; use order=1 or order=2")
    return int(order)


def _step_symbol(lr: Any) -> tuple[sp.Symbol, dict]:
    """The symbol used for η while matching, and the substitution back to the user's lr."""
    lr = sp.sympify(lr)
    if isinstance(lr, sp.Symbol):
        return lr, {}
    h = sp.Dummy("eta", positive=True)
    return h, {h: lr}


def sgd_sme(model: Any, order: int = 1) -> SDE:
    r"""The order-1 or order-2 stochastic modified equation of an :class:`~symfp.symbolic.recursion.SGD`.

    Matches the exact step's moments (:func:`match_moments`); see the module docstring for the
    conventions. Returns an :class:`~symfp.symbolic.sde.SDE` whose ``source`` is the model.
    """
    p = _check_order(order)
    h, back = _step_symbol(model.lr)
    beta = None
    assumptions = [
        "time t = k*eta: one step of the recursion is dt = eta (Ito calculus, D = sigma sigma^T / 2)",
        f"weak moment matching of E[Delta] and E[Delta Delta^T] through O(eta^{p})",
    ]
    if model.momentum is not None:
        gam = sp.simplify((1 - model.momentum) / model.lr)
        if gam.has(*model.lr.free_symbols) and model.lr.free_symbols:
            g_sym = sp.Dummy("gamma", positive=True)
            back[g_sym] = gam
            gam = g_sym
        beta = 1 - gam * h
        assumptions.append("momentum beta = 1 - gamma*eta with gamma = (1 - beta)/eta held fixed as eta -> 0")
    rec = model.recursion_with(lr=h, momentum=beta)
    mom = one_step_moments(rec)
    bs, Ds = match_moments(rec.state, mom.mean, mom.second, h, p)
    D = Ds[0] + (h * Ds[1] if p == 2 else sp.zeros(rec.dim, rec.dim))
    if p == 1:
        rec0 = model.recursion_with(lr=h, momentum=beta, noise=0)
        mom0 = one_step_moments(rec0)
        _, Ds0 = match_moments(rec0.state, mom0.mean, mom0.second, h, 2)
        D = D + h * Ds0[1]
        assumptions.append(
            "order 1 keeps the leading mini-batch noise eta*D_1 (matched at O(eta^2), injected noise off)"
        )
    if model.data is not None and rec.randomness:
        spec = next((s for s in rec.randomness.values() if hasattr(s, "factor")), None)
        if spec is not None:
            assumptions.append(f"mini-batch covariance Sigma_B = {spec.factor} * Sigma_1")
    b = sum((h**k * bs[k] for k in range(p)), sp.zeros(rec.dim, 1))
    # exact arithmetic up to here (data moments are exact rationals): now 15-digit floats for display
    b = settle_rationals(b.xreplace(back).applyfunc(sp.expand))
    D = settle_rationals(D.xreplace(back).applyfunc(sp.expand))
    return SDE(
        rec.state, b, D,
        origin=f"order-{p} stochastic modified equation of SGD",
        assumptions=tuple(assumptions),
        source=model,
    )


def recursion_sme(rec: Any, order: int = 1, lr: Any = None) -> SDE:
    r"""The stochastic modified equation of a generic :class:`~symfp.symbolic.recursion.Recursion`.

    Args:
        rec: the recursion; its increment must be O(lr) in mean and O(lr) in second moment.
        order: 1 or 2.
        lr: the step symbol η (dt = η); defaults to ``rec.lr``.
    """
    p = _check_order(order)
    lr = rec.lr if lr is None else sp.sympify(lr)
    if lr is None or not isinstance(lr, sp.Symbol) or not rec.update.has(lr):
        raise InputError(
            f"Recursion.sme: the step size lr={lr} must be a symbol appearing in the update (the small "
            "parameter, dt = lr); build the recursion with a symbolic step and substitute numbers after"
        )
    mom = one_step_moments(rec)
    for what, mat in (("E[Delta]", mom.mean), ("E[Delta Delta^T]", mom.second)):
        lead = sp.Matrix(mat).applyfunc(lambda e: sp.simplify(_coeffs(e, lr, 0)[0]))
        if any(e != 0 for e in lead):
            raise InputError(
                f"Recursion.sme: {what} does not vanish as {lr} -> 0 ({lead.tolist()}); the increment "
                "must be O(lr) for a modified equation (rescale the step or the state)"
            )
    bs, Ds = match_moments(rec.state, mom.mean, mom.second, lr, max(p, 2))
    b = sum((lr**k * bs[k] for k in range(p)), sp.zeros(rec.dim, 1))
    if p == 2:
        D = Ds[0] + lr * Ds[1]
    else:
        D = Ds[0] if any(e != 0 for e in Ds[0]) else lr * Ds[1]
    return SDE(
        rec.state, b.applyfunc(sp.expand), D.applyfunc(sp.expand),
        origin=f"order-{p} stochastic modified equation of a recursion",
        assumptions=(
            f"time t = k*{lr}: one step is dt = {lr}",
            f"weak moment matching of E[Delta] and E[Delta Delta^T] through O({lr}^{p})",
        ),
        source=rec,
    )
