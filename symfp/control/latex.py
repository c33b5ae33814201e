r"""LaTeX of the control problem and of its adjoint (backward Kolmogorov) equation.

For the controlled Fokker–Planck equation :math:`\partial_t p = \mathcal L^*_{u,B}p =
-\nabla\cdot(b\,p) + \nabla\nabla:(D\,p)` and :math:`J = \Phi(p(T)) + \int_0^T\psi(p)\,dt + C(u, B)`, the
Lagrangian :math:`J - \int_0^T\!\!\int_\Omega \lambda(\partial_t p - \mathcal L^*p)` is stationary in p
when the adjoint solves the backward Kolmogorov equation

.. math:: -\partial_t\lambda = \mathcal L_{u,B}\lambda + \frac{\delta\psi}{\delta p},\qquad
          \lambda(T) = \frac{\delta\Phi}{\delta p},\qquad \mathcal L = b\cdot\nabla + D:\nabla^2,

(zero-flux for p is the reflecting condition :math:`(D\nabla\lambda)\cdot n = 0` for λ), and then
:math:`\partial J/\partial c_j = \partial C/\partial c_j + \int_{I_j}\!\int_\Omega \lambda\,
\partial_{c}\mathcal L^*_{u,B}\,p\;dx\,dt`. The discrete solver differentiates its own time
stepping instead (:mod:`symfp.control.problem`), which is this equation discretised consistently.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from .objectives import (
    ExpectedValue,
    LevelTime,
    RegionMass,
    RunningTracking,
    SampleCost,
    Smoothness,
    TerminalTracking,
)
from .split import BETA, U, monomial_latex


def _terms_latex(problem: Any) -> tuple[list[str], list[str], list[str]]:
    """LaTeX of J's terms, of δΦ/δp and of δψ/δp."""
    J, terminal, running = [], [], []
    for t in problem.density_terms:
        w = t.weight
        ws = "" if w == 1 else ("-" if w == -1 else sp.latex(sp.Float(w, 4)))
        if isinstance(t, RegionMass):
            J.append(rf"{ws}\,P\big[\theta_T \in R\big]")
            terminal.append(rf"{ws}\,\mathbf 1_R")
        elif isinstance(t, ExpectedValue):
            g = sp.latex(sp.sympify(t.g))
            J.append(rf"{ws}\,\mathbb E\big[{g}\big]_{{\theta\sim p(T)}}")
            terminal.append(rf"{ws}\left({g}\right)")
        elif isinstance(t, TerminalTracking):
            J.append(rf"\tfrac{{{ws or 1}}}{{2}}\|p(T) - \rho_T\|^2_{{L^2}}")
            terminal.append(rf"{ws}\,(p(T) - \rho_T)")
        elif isinstance(t, RunningTracking):
            J.append(rf"\tfrac{{{ws or 1}}}{{2}}\int_0^T\|p - \rho_d\|^2_{{L^2}}dt")
            running.append(rf"{ws}\,(p - \rho_d)")
        elif isinstance(t, LevelTime):
            g = sp.latex(sp.sympify(t.g))
            sgn = "" if t.sign > 0 else "-"
            lev, eps = sp.latex(sp.Float(t.level, 4)), sp.latex(sp.Float(t.eps, 3))
            z = rf"{sgn}\big(\mathbb E[{g}]_{{p(t)}} - {lev}\big)/{eps}"
            J.append(rf"{ws}\int_0^T\sigma\!\left({z}\right)dt")
            running.append(rf"{ws}\,{sgn}\sigma'\!\left({z}\right)\left({g}\right)/{eps}")
    for c in problem.costs:
        w = sp.latex(sp.Float(c.weight, 4))
        if isinstance(c, SampleCost):
            J.append(rf"{w}\int_0^T B\,dt")
        elif isinstance(c, Smoothness):
            J.append(rf"\tfrac{{{w}}}{{2}}\sum_j ({c.needs}_{{j+1}} - {c.needs}_j)^2/\Delta\tau")
    return J, terminal, running


def _compact(e: sp.Expr) -> sp.Expr:
    """A coefficient grouped by control monomial, each factor put over a common denominator."""
    try:
        poly = sp.Poly(sp.expand(e), U, BETA)
    except sp.PolynomialError:
        return e
    out = []
    for (i, j), c in zip(poly.monoms(), poly.coeffs(), strict=True):
        out.append(U**i * BETA**j * sp.factor_terms(sp.powsimp(sp.factor(c))))
    return sp.Add(*out)


def control_latex(problem: Any) -> str:
    r"""A LaTeX fragment (``align*``) of the control problem, its adjoint equation and the gradient."""
    coef = problem.ops.coefficients
    state = coef.state
    x = ",".join(sp.latex(s) for s in state)
    Bsym = sp.Symbol("B", positive=True)
    b = sp.Matrix(coef.drift).applyfunc(_compact).xreplace({BETA: 1 / Bsym})
    D = sp.Matrix(coef.diffusion).applyfunc(_compact).xreplace({BETA: 1 / Bsym})
    show = (lambda m: sp.latex(m[0, 0])) if len(state) == 1 else sp.latex
    J, terminal, running = _terms_latex(problem)
    lo, hi = problem.u_bounds
    bounds = [rf"{sp.latex(sp.Float(lo, 4))} \le u(t) \le {sp.latex(sp.Float(hi, 4))}"]
    if "B" in problem.controls:
        blo, bhi = problem.B_bounds
        bounds.append(rf"{sp.latex(sp.Float(blo, 4))} \le B(t) \le {sp.latex(sp.Float(bhi, 4))}")
    parts = " + ".join(monomial_latex(k) + rf"\,\mathcal A_{{{k[0]}{k[1]}}}" for k in problem.ops.parts)
    u_lat = sp.latex(U)
    sep = r",\ "
    lines = [
        r"\begin{align*}",
        rf"&\min_{{u,\,B\ \text{{piecewise constant on }} {problem.grid.n}\text{{ intervals}}}}\ "
        rf"J = {' + '.join(J) or '0'} \quad\text{{s.t. }} {sep.join(bounds)},\\",
        rf"&\partial_t p = -\nabla\cdot\big(b\,p\big) + \nabla\nabla:\big(D\,p\big),\quad "
        rf"p(0) = p_0,\quad (b p - \nabla\cdot(Dp))\cdot n = 0,\quad \eta(t) = "
        rf"{sp.latex(sp.Float(coef.eta_max, 4))}\,{u_lat}(t),\\",
        rf"&b({x}) = {show(b)},\qquad D({x}) = {show(D)},\\",
        rf"&\partial_t p = -\big({parts}\big)\,p \quad\text{{(the operator split by control monomial)}},\\",
        *_stabilisation_line(problem.ops.stabilisation),
        r"&\text{adjoint (backward Kolmogorov): }-\partial_t\lambda = b\cdot\nabla\lambda + D:\nabla^2\lambda"
        + (rf" + {' + '.join(running)}" if running else "")
        + rf",\quad \lambda(T) = {' + '.join(terminal) or '0'},\quad (D\nabla\lambda)\cdot n = 0,\\",
        r"&\frac{\partial J}{\partial u_j} = \frac{\partial C}{\partial u_j} + \int_{I_j}\!\!\int_\Omega "
        r"\lambda\;\partial_u\!\Big(-\nabla\cdot(b\,p) + \nabla\nabla:(D\,p)\Big)\,dx\,dt"
        r"\quad\text{(discretely: } -dt\sum_{n\in I_j}\lambda_{n+1}^\top\partial_u K\,"
        r"(\theta p^{n+1} + (1-\theta)p^n)\text{)}.",
        r"\end{align*}",
    ]
    return "\n".join(lines)


def _stabilisation_line(stab: Any) -> list[str]:
    """The artificial diffusion added to the part multiplying u (none without stabilisation)."""
    if stab is None:
        return []
    K = (r"\frac{b_1b_1^\top}{|b_1|_\delta}" if stab.kind == "streamline" else r"|b_1|_\delta\,I")
    return [rf"&\text{{stabilised ({stab.kind}): }}\mathcal A_{{10}}p \mathrel{{+}}= "
            rf"-\nabla\cdot(K_s\nabla p),"
            rf"\quad K_s = \frac{{\alpha h}}{{2}}{K},\ \alpha = {sp.latex(sp.Float(stab.alpha, 4))},\ "
            rf"h = {sp.latex(sp.Float(stab.h, 4))}\quad\text{{(bias O(h))}},\\"]


def control_document(problem: Any, title: str = "Control problem") -> str:
    """A complete LaTeX document around :func:`control_latex`."""
    return "\n".join([
        r"\documentclass{article}", r"\usepackage{amsmath,amssymb}", r"\usepackage[margin=2cm]{geometry}",
        r"\begin{document}", rf"\section*{{{title}}}", control_latex(problem), r"\end{document}", ""])
