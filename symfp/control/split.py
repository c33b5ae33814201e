r"""How the controls enter the SME: the Fokker–Planck operator split into parts times control monomials.

A learning-rate schedule :math:`\eta_k = \eta_{\max}\,u(t_k)` and a batch-size schedule :math:`B(t)`
enter the modified equation through its coefficients. Time is measured as :math:`t = k\eta_{\max}`
throughout (one step of SGD is :math:`dt = \eta_{\max}` whatever :math:`u` is). The SME of a step of
size :math:`h` in its own time :math:`t' = kh` has drift :math:`b'(h, B)` and diffusion
:math:`D'(h, B)`; in the fixed time :math:`t` one step advances :math:`dt = \eta_{\max}` while
:math:`dt' = h = u\,\eta_{\max}`, i.e. :math:`dt' = u\,dt`, so

.. math:: b = u\, b'(u\eta_{\max}, B), \qquad D = u\, D'(u\eta_{\max}, B).

For plain SGD at order 1 (:math:`b' = -\nabla f`, :math:`D' = \tfrac h2\Sigma_1/B`) this is
:math:`b = -u\nabla f`, :math:`D = u^2\eta_{\max}\Sigma_1/(2B)` (Li, Tai & E); order 2 adds
:math:`-u^2\tfrac{\eta_{\max}}4\nabla|\nabla f|^2` to the drift. :func:`controlled_coefficients`
derives this from the model: it rebuilds the SGD step with a symbolic step :math:`h` and batch size,
matches moments (:mod:`symfp.symbolic.sme`), then substitutes :math:`h \to u\eta_{\max}` and multiplies
by :math:`u`.

Every coefficient of the weak form (:func:`symfp.symbolic.weakform.forward_form`) is then a polynomial
in :math:`u` and :math:`\beta = 1/B`; :func:`split_terms` collects it by monomial,

.. math:: K(u, B) = \sum_{(i,j)} u^i B^{-j} K_{ij},

so the parts :math:`K_{ij}` are assembled once and combined at every step. For order 1 the
parts are :math:`K_{10}` (drift, :math:`K_b`) and :math:`K_{21}` (mini-batch noise, :math:`K_D`);
injected noise adds to :math:`K_{10}`, order 2 adds :math:`K_{20}` (the :math:`\eta|\nabla f|^2/4`
drift) and, without replacement, the finite-population correction adds :math:`K_{20}` too. A
coefficient that is not a polynomial in :math:`u, 1/B` (a model in which the controls enter
non-polynomially) raises :class:`~symfp.errors.InputError`. Momentum is refused: with
:math:`\beta = 1 - \gamma\eta` the schedule would change the friction law, which the SME's
convention (γ fixed) does not define.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import sympy as sp

from ..errors import InputError

#: the learning-rate control u (η = η_max·u) and the inverse batch size β = 1/B, as SymPy symbols
U = sp.Symbol("u", positive=True)
BETA = sp.Symbol("beta_B", positive=True)
#: the symbols used while deriving (step h and batch size B)
_H = sp.Symbol("h_ctl", positive=True)
_B = sp.Symbol("B_ctl", positive=True)


@dataclass(frozen=True)
class ControlledCoefficients:
    r"""Drift and diffusion of the controlled SME in the time :math:`t = k\eta_{\max}`.

    Attributes:
        state: the state symbols.
        drift: d×1, polynomial in :data:`U` and :data:`BETA` (= 1/B).
        diffusion: d×d, likewise.
        eta_max: :math:`\eta_{\max}` (the model's lr), a float.
        batch_size: the model's nominal batch size (the default of B), a float.
        order: SME order (0 when given as an SDE).
        origin: one line saying where it came from.
    """

    state: tuple[sp.Symbol, ...]
    drift: sp.ImmutableMatrix
    diffusion: sp.ImmutableMatrix
    eta_max: float
    batch_size: float
    order: int
    origin: str

    @property
    def time(self) -> None:  # forward_form asks for the time symbol
        return None


def _number(value: Any, what: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InputError(f"control: the model's {what} = {value} is not a number; substitute it first "
                         f"(model.subs({{...}})) — η_max and the nominal B must be numbers") from None
    if not out > 0:
        raise InputError(f"control: the model's {what} = {out} must be positive")
    return out


def controlled_coefficients(model_or_sde: Any, *, order: int = 1,
                            controls: Mapping[str, Any] | None = None) -> ControlledCoefficients:
    r"""The SME's drift and diffusion with the controls :data:`U` and :data:`BETA` in them.

    Args:
        model_or_sde: a :class:`symfp.SGD` (numeric lr and batch size: :math:`\eta_{\max}` and the nominal
            B), or a :class:`symfp.SDE` whose drift and diffusion contain the control symbols named in
            ``controls``.
        order: the SME order (1 or 2) for a model.
        controls: for an SDE: ``{"u": symbol, "B": symbol}`` (either may be absent), the symbols of the
            learning-rate factor and the batch size in its coefficients (B must appear as 1/B).

    Raises:
        InputError: momentum (the controls' law is not defined), an order other than 1 or 2, an SDE
            without the control symbols, non-numeric η or B, free parameters left.
    """
    if hasattr(model_or_sde, "recursion_with") and hasattr(model_or_sde, "loss"):
        return _from_model(model_or_sde, order)
    if all(hasattr(model_or_sde, a) for a in ("state", "drift", "diffusion")):
        return _from_sde(model_or_sde, controls or {})
    raise InputError(f"control: expected a symfp.SGD model or a symfp.SDE, got {type(model_or_sde).__name__}")


def _from_model(model: Any, order: int) -> ControlledCoefficients:
    from ..symbolic.recursion import SGD

    if order not in (1, 2) or isinstance(order, bool):
        raise InputError(f"control: SME order = {order!r}; the controls enter the order-1 and order-2 "
                         "SMEs only: use order=1 or order=2")
    if model.momentum is not None:
        raise InputError(
            "control: the model has momentum; with a learning-rate schedule β = 1 − γη would change the "
            "friction γ with u, which the SME's convention (γ fixed as η → 0) does not define, so the "
            "controls cannot enter the operator. Use SGD without momentum.")
    eta_max = _number(model.lr, "lr (η_max)")
    b_nom = _number(model.batch_size, "batch_size")
    sym = SGD(loss=model.loss, params=list(model.params), data=model.data, lr=_H, batch_size=_B,
              replacement=model.replacement, weight_decay=model.weight_decay, noise=model.noise,
              constants=list(model.constants))
    sde = sym.sme(order=order)
    free = (sp.Matrix(sde.drift).free_symbols | sp.Matrix(sde.diffusion).free_symbols) - set(sde.state)
    free -= {_H, _B}
    if free:
        raise InputError(f"control: the SME has free parameters {sorted(map(str, free))}; "
                         "substitute numbers into the model first (model.subs({...}))")
    back = {_H: U * eta_max, _B: 1 / BETA}
    b = (U * sp.Matrix(sde.drift).xreplace(back)).applyfunc(sp.expand)
    D = (U * sp.Matrix(sde.diffusion).xreplace(back)).applyfunc(sp.expand)
    return ControlledCoefficients(tuple(sde.state), sp.ImmutableMatrix(b), sp.ImmutableMatrix(D), eta_max,
                                  b_nom, order, f"order-{order} SME of SGD, η = {eta_max:g}·u(t), batch B(t)")


def _from_sde(sde: Any, controls: Mapping[str, Any]) -> ControlledCoefficients:
    unknown = set(controls) - {"u", "B"}
    if unknown:
        raise InputError(f"control: controls= has unknown keys {sorted(unknown)}; use 'u' and/or 'B'")
    u_sym = controls.get("u")
    b_sym = controls.get("B")
    b = sp.Matrix(sde.drift)
    D = sp.Matrix(sde.diffusion)
    rep = {}
    if u_sym is not None:
        rep[sp.sympify(u_sym)] = U
    if b_sym is not None:
        rep[sp.sympify(b_sym)] = 1 / BETA
    b = b.xreplace(rep).applyfunc(sp.expand)
    D = D.xreplace(rep).applyfunc(sp.expand)
    syms = b.free_symbols | D.free_symbols
    if not syms & {U, BETA}:
        raise InputError(
            "control: the SDE's drift and diffusion do not contain the control symbols "
            f"(controls={dict(controls)!r}), so the controls cannot enter the operator; pass "
            "controls={'u': u, 'B': B} naming the symbols of the learning-rate factor and batch size, or "
            "give an SGD model")
    free = syms - set(sde.state) - {U, BETA}
    if free:
        raise InputError(f"control: the SDE has free parameters {sorted(map(str, free))}; substitute numbers")
    return ControlledCoefficients(tuple(sde.state), sp.ImmutableMatrix(b), sp.ImmutableMatrix(D), 1.0, 1.0, 0,
                                  "SDE given with control symbols")


def split_terms(coef: ControlledCoefficients) -> dict[tuple[int, int], list[Any]]:
    r"""The forward weak form's bilinear terms grouped by control monomial :math:`u^iB^{-j}`.

    Returns:
        ``{(i, j): [Term, ...]}`` with the monomial factored out of each coefficient.

    Raises:
        InputError: a coefficient that is not a polynomial in u and 1/B (the operator does not split).
    """
    from ..symbolic.weakform import Term, forward_form

    ns = SimpleNamespace(state=coef.state, drift=coef.drift, diffusion=coef.diffusion, time=None)
    wf = forward_form(ns)
    out: dict[tuple[int, int], list[Any]] = {}
    for term in wf.bilinear:
        mat = sp.Matrix(term.coefficient)
        pieces: dict[tuple[int, int], sp.Matrix] = {}
        for idx in range(len(mat)):
            e = sp.expand(mat[idx])
            if e == 0:
                continue
            try:
                poly = sp.Poly(e, U, BETA)
            except sp.PolynomialError:
                poly = None
            if poly is None or any(g.has(U, BETA) for g in poly.coeffs()):
                raise InputError(
                    f"control: the {term.kind} coefficient {e} is not a polynomial in u and 1/B, so the "
                    "operator does not split as sum u^i B^-j K_ij; such a model is not supported "
                    "(use order=1, "
                    "or an SDE whose coefficients are polynomial in the controls)")
            for (i, j), c in zip(poly.monoms(), poly.coeffs(), strict=True):
                pieces.setdefault((i, j), sp.zeros(*mat.shape))[idx] = c
        for key, m in pieces.items():
            out.setdefault(key, []).append(Term(term.kind, sp.ImmutableMatrix(m)))
    if not any(i > 0 or j > 0 for i, j in out):
        raise InputError("control: no part of the operator depends on u or B; the controls cannot enter")
    return dict(sorted(out.items()))


def monomial_latex(key: tuple[int, int]) -> str:
    """LaTeX of :math:`u^iB^{-j}`."""
    i, j = key
    num = "" if i == 0 else ("u" if i == 1 else f"u^{{{i}}}")
    if j == 0:
        return num or "1"
    den = "B" if j == 1 else f"B^{{{j}}}"
    return rf"\frac{{{num or '1'}}}{{{den}}}"
