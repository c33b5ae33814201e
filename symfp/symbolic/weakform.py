r"""Weak forms as a small pure-SymPy intermediate representation (no dolfinx).

A :class:`WeakForm` stands for the variational problem: find :math:`u` such that, for every test
function :math:`v` vanishing on the Dirichlet parts,

.. math::

    \int_\Omega m\,\partial_t u\, v\,dx + a(u, v) = L(v),

where :math:`m` is :attr:`WeakForm.mass` (``None`` for a steady problem), :math:`a` is the sum of the
bilinear :class:`Term` s and :math:`L` the sum of the linear ones. Every term says which integrand it
is (``kind``) and carries its SymPy coefficient in the state symbols:

=============  ==================================================  =====================
kind           integrand                                           coefficient
=============  ==================================================  =====================
``diffusion``  :math:`(K\nabla u)\cdot\nabla v`                      K, d×d matrix
``advection``  :math:`u\, c\cdot\nabla v`                          c, d×1 matrix
``transport``  :math:`(c\cdot\nabla u)\, v`                        c, d×1 matrix
``reaction``   :math:`r\,u\,v`                                     r, scalar
``source``     :math:`s\,v` (linear)                               s, scalar
=============  ==================================================  =====================

Signs live in the coefficients (the forward form holds ``advection`` with coefficient :math:`-c`).
Boundary conditions are explicit :class:`BoundaryCondition` s: ``natural`` (a flux prescribed weakly,
zero here, so no boundary integral appears) or ``dirichlet`` (the value imposed strongly) on named
boundary parts (``None``: every part not named by another condition). A :class:`Constraint`
:math:`\int_\Omega w\,u\,dx = \text{value}` closes problems whose operator has a kernel
(the stationary Fokker–Planck problem).

The forms the pipeline builds (with :math:`c = b - \nabla\cdot D`, :math:`(\nabla\cdot D)_i =
\sum_j \partial_j D_{ij}` the row-wise divergence, so that the flux is :math:`J = b p - \nabla\cdot(Dp)
= c\,p - D\nabla p`):

* :func:`forward_form`: :math:`\int \partial_t p\, v + \int (D\nabla p)\cdot\nabla v - \int p\,c\cdot
  \nabla v = 0`, natural zero flux :math:`J\cdot n = 0` (mass is conserved: take :math:`v = 1`).
* :func:`forward_form` with ``symmetrised=True``: when the stationary density :math:`\rho` has zero
  flux (:math:`D\nabla\rho = c\rho`, detailed balance), :math:`p = \rho u` gives
  :math:`J = -\rho D\nabla u` and :math:`\int \rho\,\partial_t u\, v + \int \rho (D\nabla u)\cdot
  \nabla v = 0` — symmetric and positive, so well suited to drift-dominated problems.
* :func:`exit_time_form`: :math:`-\mathcal L\tau = 1` with :math:`\mathcal L\tau = b\cdot\nabla\tau +
  D:\nabla^2\tau = \nabla\cdot(D\nabla\tau) - (\nabla\cdot D - b)\cdot\nabla\tau`, hence
  :math:`\int (D\nabla\tau)\cdot\nabla v + \int ((\nabla\cdot D) - b)\cdot\nabla\tau\, v = \int v`,
  :math:`\tau = 0` on the absorbing parts, :math:`(D\nabla\tau)\cdot n = 0` (reflection) elsewhere.
* :func:`stationary_form`: the forward operator equal to zero with :math:`\int p = 1`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sympy as sp

from ..errors import InputError
from .shapes import sde_parts
from .stage import Stage, sympify_mapping

#: bilinear term kinds and the shape of their coefficient ("matrix", "vector", "scalar")
BILINEAR_KINDS: dict[str, str] = {
    "diffusion": "matrix",
    "advection": "vector",
    "transport": "vector",
    "reaction": "scalar",
}
#: linear term kinds
LINEAR_KINDS: dict[str, str] = {"source": "scalar"}
#: boundary condition kinds
BOUNDARY_KINDS = ("natural", "dirichlet")


def gradient(expr: sp.Expr, state: Sequence[sp.Symbol]) -> sp.Matrix:
    r"""Column gradient :math:`\nabla e = (\partial_{x_1} e, \dots, \partial_{x_d} e)^\top`."""
    return sp.Matrix([sp.diff(expr, s) for s in state])


def divergence(vec: sp.MatrixBase, state: Sequence[sp.Symbol]) -> sp.Expr:
    r"""Divergence :math:`\nabla\cdot c = \sum_i \partial_{x_i} c_i` of a d×1 column."""
    return sp.Add(*[sp.diff(vec[i], s) for i, s in enumerate(state)])


def row_divergence(mat: sp.MatrixBase, state: Sequence[sp.Symbol]) -> sp.Matrix:
    r"""Row-wise divergence of a d×d matrix: :math:`(\nabla\cdot D)_i = \sum_j \partial_{x_j} D_{ij}`."""
    d = len(state)
    return sp.Matrix([sp.Add(*[sp.diff(mat[i, j], state[j]) for j in range(d)]) for i in range(d)])


def _coefficient(value: Any, shape: str, d: int, where: str) -> sp.Basic:
    """Validate a term coefficient against its expected shape; returns an immutable SymPy object."""
    try:
        if shape == "scalar":
            if isinstance(value, sp.MatrixBase):
                if value.shape != (1, 1):
                    raise InputError(f"{where}: expected a scalar coefficient, got shape {value.shape}")
                value = value[0, 0]
            return sp.sympify(value)
        m = sp.Matrix(value) if not isinstance(value, sp.MatrixBase) else sp.Matrix(value)
    except (sp.SympifyError, TypeError, ValueError) as exc:
        raise InputError(f"{where}: coefficient {value!r} is not a SymPy expression or matrix") from exc
    want = (d, d) if shape == "matrix" else (d, 1)
    if shape == "vector" and m.shape == (1, d):
        m = m.T
    if m.shape != want:
        raise InputError(f"{where}: coefficient has shape {m.shape}, expected {want} in {d} dimensions")
    return sp.ImmutableMatrix(m)


@dataclass(frozen=True)
class Term:
    r"""One integral of a weak form: ``kind`` (see the module table) and its coefficient.

    Attributes:
        kind: ``diffusion``, ``advection``, ``transport``, ``reaction`` (bilinear) or ``source``.
        coefficient: K (d×d), c (d×1), r or s (scalar), SymPy in the state symbols and parameters.
    """

    kind: str
    coefficient: Any

    @property
    def is_bilinear(self) -> bool:
        """True for terms in the trial function (left-hand side)."""
        return self.kind in BILINEAR_KINDS

    def integrand(self, u: Any, v: Any, state: Sequence[sp.Symbol]) -> sp.Expr:
        r"""The integrand for trial ``u`` and test ``v`` (SymPy expressions in ``state``).

        For a linear term ``u`` is ignored. E.g. ``diffusion``: :math:`(K\nabla u)\cdot\nabla v`.
        """
        c = self.coefficient
        if self.kind == "diffusion":
            return (gradient(v, state).T * c * gradient(u, state))[0, 0]
        if self.kind == "advection":
            return u * (c.T * gradient(v, state))[0, 0]
        if self.kind == "transport":
            return (c.T * gradient(u, state))[0, 0] * v
        if self.kind == "reaction":
            return c * u * v
        if self.kind == "source":
            return c * v
        raise InputError(f"Term: unknown kind {self.kind!r}")  # pragma: no cover - guarded in __init__

    def latex(self, u: str = "u", v: str = "v") -> str:
        """LaTeX of the integral (without the leading sign handling: the coefficient carries it)."""
        c = self.coefficient
        cl = sp.latex(c[0, 0] if isinstance(c, sp.MatrixBase) and c.shape == (1, 1) else c)
        if self.kind == "diffusion":
            body = rf"\left({cl}\,\nabla {u}\right)\cdot\nabla {v}"
        elif self.kind == "advection":
            body = rf"{u}\,{cl}\cdot\nabla {v}"
        elif self.kind == "transport":
            body = rf"\left({cl}\cdot\nabla {u}\right) {v}"
        elif self.kind == "reaction":
            body = rf"\left({cl}\right) {u}\, {v}"
        else:
            body = rf"\left({cl}\right) {v}"
        return rf"\int_\Omega {body}\,dx"

    def subs(self, mapping: Mapping[sp.Basic, Any]) -> Term:
        """The term with ``mapping`` substituted into its coefficient."""
        return Term(self.kind, self.coefficient.subs(mapping))


def make_term(kind: str, coefficient: Any, d: int) -> Term:
    """Build a :class:`Term` with its coefficient checked against ``kind`` (raises InputError)."""
    shape = BILINEAR_KINDS.get(kind) or LINEAR_KINDS.get(kind)
    if shape is None:
        kinds = ", ".join([*BILINEAR_KINDS, *LINEAR_KINDS])
        raise InputError(f"weak form term: unknown kind {kind!r}; use one of {kinds}")
    return Term(kind, _coefficient(coefficient, shape, d, f"weak form {kind} term"))


@dataclass(frozen=True)
class BoundaryCondition:
    r"""A boundary condition on named boundary parts.

    Attributes:
        kind: ``natural`` (the flux ``flux`` has zero normal component; no boundary integral) or
            ``dirichlet`` (``u = value`` imposed strongly; test functions vanish there).
        parts: boundary part names (mesh facet groups), or ``None`` for every part that no other
            condition of the form names.
        value: the Dirichlet value (SymPy), or 0 for a natural condition.
        meaning: a human-readable statement, e.g. ``"zero flux J·n = 0"``.
        flux_latex: LaTeX of the quantity whose normal component vanishes (natural conditions).
    """

    kind: str
    parts: tuple[str, ...] | None
    value: Any = sp.S.Zero
    meaning: str = ""
    flux_latex: str = ""

    def latex(self, u: str = "u") -> str:
        """LaTeX of the condition, e.g. :math:`\\tau = 0` on the absorbing parts."""
        where = (
            r"\partial\Omega"
            if self.parts is None
            else r"\Gamma_{\mathrm{" + ",".join(p.replace("_", r"\_") for p in self.parts) + "}}"
        )
        if self.kind == "dirichlet":
            return rf"{u} = {sp.latex(self.value)} \ \text{{on }} {where}"
        return rf"\left({self.flux_latex}\right)\cdot n = 0 \ \text{{on }} {where}"


@dataclass(frozen=True)
class Constraint:
    r"""An integral constraint :math:`\int_\Omega w\,u\,dx = \text{value}` (e.g. unit mass)."""

    weight: Any = sp.S.One
    value: Any = sp.S.One

    def latex(self, u: str = "u") -> str:
        """LaTeX of the constraint."""
        w = "" if self.weight == 1 else rf"\left({sp.latex(self.weight)}\right)"
        return rf"\int_\Omega {w}{u}\,dx = {sp.latex(self.value)}"


@dataclass(frozen=True)
class WeakForm(Stage):
    r"""Find :math:`u` with :math:`\int m\,\partial_t u\,v + a(u,v) = L(v)` for all admissible v.

    Attributes:
        kind: ``forward``, ``forward_symmetrised``, ``exit_time``, ``stationary`` or user-defined.
        state: the state symbols (the spatial coordinates of the PDE).
        unknown: the name of the unknown (``p``, ``\tau``, ``u``) for display.
        mass: the weight :math:`m` of the time-derivative term, ``None`` for a steady problem.
        bilinear: the terms of :math:`a(u, v)`.
        linear: the terms of :math:`L(v)`.
        boundary: the boundary conditions, explicit (natural and Dirichlet).
        constraint: an integral constraint or ``None``.
        density_factor: for the symmetrised form, :math:`\rho` with :math:`p = \rho u` (the density is
            recovered by multiplying the unknown by it); ``None`` otherwise.
        description: one line saying what the form is.
        time: the time symbol t when coefficients depend explicitly on time (schedules; from
            ``SDE.time``), else None. Not a parameter: the solver sets it at each time level.
    """

    kind: str
    state: tuple[sp.Symbol, ...]
    unknown: str
    mass: Any
    bilinear: tuple[Term, ...]
    linear: tuple[Term, ...] = ()
    boundary: tuple[BoundaryCondition, ...] = ()
    constraint: Constraint | None = None
    density_factor: Any = None
    description: str = ""
    time: Any = None

    @property
    def dim(self) -> int:
        """Spatial dimension d."""
        return len(self.state)

    @property
    def time_dependent(self) -> bool:
        """True when the form has a time-derivative (mass) term."""
        return self.mass is not None

    @property
    def is_autonomous(self) -> bool:
        """True when no coefficient depends explicitly on :attr:`time`."""
        return self.time is None or self.time not in self._free_symbols()

    def _free_symbols(self) -> set[sp.Symbol]:
        syms: set[sp.Symbol] = set()
        for t in (*self.bilinear, *self.linear):
            syms |= t.coefficient.free_symbols
        for e in (self.mass, self.density_factor):
            if e is not None:
                syms |= sp.sympify(e).free_symbols
        return syms

    def terms(self, kind: str) -> tuple[Term, ...]:
        """All terms of the given kind (bilinear or linear)."""
        return tuple(t for t in (*self.bilinear, *self.linear) if t.kind == kind)

    def dirichlet_parts(self) -> tuple[str, ...] | None:
        """Names of the Dirichlet parts (``None`` means the whole boundary; ``()`` means none)."""
        names: list[str] = []
        for bc in self.boundary:
            if bc.kind == "dirichlet":
                if bc.parts is None:
                    return None
                names.extend(bc.parts)
        return tuple(names)

    def bilinear_integrand(self, u: Any, v: Any) -> sp.Expr:
        """The integrand of :math:`a(u, v)` for SymPy expressions ``u``, ``v`` in the state."""
        return sp.Add(*[t.integrand(u, v, self.state) for t in self.bilinear])

    def linear_integrand(self, v: Any) -> sp.Expr:
        """The integrand of :math:`L(v)` for a SymPy expression ``v`` in the state."""
        return sp.Add(*[t.integrand(None, v, self.state) for t in self.linear])

    @property
    def parameters(self) -> set[sp.Symbol]:
        """Free symbols of all coefficients that are neither state variables nor :attr:`time`."""
        return {s for s in self._free_symbols() if s not in self.state and s != self.time}

    def subs(self, mapping: Mapping[Any, Any] | None = None, **kwargs: Any) -> WeakForm:
        """Substitute numbers for parameters in every coefficient; returns a new form."""
        known = self.parameters | set(self.state) | ({self.time} if self.time is not None else set())
        m = sympify_mapping({**(mapping or {}), **kwargs}, "WeakForm.subs", known)
        bad = [k for k in m if k in self.state or k == self.time]
        if bad:
            raise InputError(f"WeakForm.subs: cannot substitute for state variables or time {bad}")

        def sub(e: Any) -> Any:
            return None if e is None else sp.sympify(e).subs(m)

        return WeakForm(
            kind=self.kind,
            state=self.state,
            unknown=self.unknown,
            mass=sub(self.mass),
            bilinear=tuple(t.subs(m) for t in self.bilinear),
            linear=tuple(t.subs(m) for t in self.linear),
            boundary=tuple(
                BoundaryCondition(b.kind, b.parts, sp.sympify(b.value).subs(m), b.meaning, b.flux_latex)
                for b in self.boundary
            ),
            constraint=None
            if self.constraint is None
            else Constraint(sub(self.constraint.weight), sub(self.constraint.value)),
            density_factor=sub(self.density_factor),
            description=self.description,
            time=self.time,
        )

    def equation_latex(self) -> str:
        r"""LaTeX of the variational equation alone: :math:`\int m\,\partial_t u\,v + a(u,v) = L(v)`."""
        u, v = self.unknown, "v"
        lhs: list[str] = []
        if self.mass is not None:
            w = "" if self.mass == 1 else rf"\left({sp.latex(self.mass)}\right)"
            lhs.append(rf"\int_\Omega {w}\,\partial_t {u}\, {v}\,dx")
        lhs.extend(t.latex(u, v) for t in self.bilinear)
        rhs = " + ".join(t.latex(u, v) for t in self.linear) or "0"
        return " + ".join(lhs) + " = " + rhs + rf" \quad \forall {v}"

    def conditions_latex(self) -> list[str]:
        """LaTeX of each boundary condition, the constraint and the change of unknown, one per item."""
        u = self.unknown
        extras = [bc.latex(u) for bc in self.boundary]
        if self.constraint is not None:
            extras.append(self.constraint.latex(u))
        if self.density_factor is not None:
            extras.append(rf"p = \left({sp.latex(self.density_factor)}\right) {u}")
        return extras

    def latex(self) -> str:
        r"""LaTeX: the variational equation, then the boundary conditions and constraint."""
        extras = self.conditions_latex()
        out = self.equation_latex()
        if extras:
            out += r",\qquad " + r",\quad ".join(extras)
        return out

    def __str__(self) -> str:
        lines = [f"WeakForm {self.kind} in {', '.join(map(str, self.state))}: {self.description}"]
        if self.mass is not None:
            lines.append(f"  mass (d/dt {self.unknown}) weight: {self.mass}")
        for t in self.bilinear:
            coef = t.coefficient.tolist() if hasattr(t.coefficient, "tolist") else t.coefficient
            lines.append(f"  a: {t.kind}: {coef}")
        for t in self.linear:
            lines.append(f"  L: {t.kind}: {t.coefficient}")
        for b in self.boundary:
            lines.append(f"  boundary {b.kind} on {b.parts or 'the rest'}: {b.meaning}")
        if self.constraint is not None:
            lines.append(f"  constraint: int {self.constraint.weight}*u = {self.constraint.value}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- builders
def _parts(names: str | Iterable[str] | None, where: str) -> tuple[str, ...] | None:
    if names is None:
        return None
    if isinstance(names, str):
        return (names,)
    out = tuple(names)
    if not out or not all(isinstance(n, str) for n in out):
        raise InputError(f"{where}: absorbing must be None or boundary part names (strings), got {names!r}")
    return out


def _time(sde: Any) -> sp.Symbol | None:
    """The SDE's time symbol (``SDE.time``; None for SDE-like objects without one)."""
    return getattr(sde, "time", None)


def _zero_flux(meaning: str, flux_latex: str) -> BoundaryCondition:
    return BoundaryCondition("natural", None, sp.S.Zero, meaning, flux_latex)


def forward_form(sde: Any, symmetrised: bool = False, density: Any = None) -> WeakForm:
    r"""Weak form of the Fokker–Planck equation :math:`\partial_t p = -\nabla\cdot J` with zero flux.

    Flux form: :math:`J = b p - \nabla\cdot(Dp) = c\,p - D\nabla p`, :math:`c = b - \nabla\cdot D`;
    multiplying by :math:`v` and integrating by parts, the boundary integral
    :math:`\int_{\partial\Omega} (J\cdot n) v` vanishes under the natural zero-flux condition:

    .. math:: \int \partial_t p\, v + \int (D\nabla p)\cdot\nabla v - \int p\, c\cdot\nabla v = 0.

    With ``symmetrised=True`` the unknown is :math:`u = p/\rho` where :math:`\rho` is a zero-flux
    stationary density (:math:`D\nabla\rho = c\rho`, i.e. detailed balance), and

    .. math:: \int \rho\,\partial_t u\, v + \int \rho\,(D\nabla u)\cdot\nabla v = 0,

    a symmetric positive form (no advection term), exact under detailed balance.

    Args:
        sde: a :class:`symfp.SDE`.
        symmetrised: build the Gibbs-symmetrised form.
        density: :math:`\rho` (unnormalised is fine) for the symmetrised form; by default the closed
            form of :meth:`symfp.FokkerPlanck.stationary_density`.

    Raises:
        InputError: if symmetrised and no zero-flux stationary density is known or the one given does
            not have zero flux.
    """
    state, b, D = sde_parts(sde, "forward_form")
    d = len(state)
    c = b - row_divergence(D, state)
    if not symmetrised:
        return WeakForm(
            kind="forward",
            state=state,
            unknown="p",
            mass=sp.S.One,
            bilinear=(make_term("diffusion", D, d), make_term("advection", -c, d)),
            boundary=(
                _zero_flux("zero flux J·n = 0, J = b p - div(D p) (mass conserved)", r"D\nabla p - c\,p"),
            ),
            description="Fokker-Planck forward equation in flux form, c = b - div D, zero flux natural",
            time=_time(sde),
        )
    if density is None:  # the SDE's own Fokker–Planck equation knows its stationary density
        if not callable(getattr(sde, "fokker_planck", None)):
            raise InputError(
                "forward_form(symmetrised=True): pass density= (the zero-flux stationary density), or a "
                f"symfp.SDE, whose fokker_planck() finds it; got a {type(sde).__name__}"
            )
        fp = sde.fokker_planck()
        density = fp.stationary_density()
        if density is None:
            raise InputError(
                "forward_form(symmetrised=True): no closed-form zero-flux stationary density: "
                f"{fp.stationary_reason}. Use the plain forward form, or pass density= yourself."
            )
    rho = sp.sympify(density)
    residual = (D * gradient(rho, state) - c * rho) / rho
    if any(sp.simplify(e) != 0 for e in residual):
        raise InputError(
            "forward_form(symmetrised=True): the density given does not have zero flux "
            "(D grad rho != (b - div D) rho), so p = rho u does not symmetrise the operator; "
            "the symmetrised form needs detailed balance (see FokkerPlanck.detailed_balance())"
        )
    return WeakForm(
        kind="forward_symmetrised",
        state=state,
        unknown="u",
        mass=rho,
        bilinear=(make_term("diffusion", rho * D, d),),
        boundary=(
            _zero_flux("zero flux: rho D grad u · n = 0 (mass of p = rho u conserved)", r"\rho D\nabla u"),
        ),
        density_factor=rho,
        description="Gibbs-symmetrised Fokker-Planck equation, p = rho u, rho the zero-flux stationary law",
    )


def exit_time_form(sde: Any, absorbing: str | Iterable[str] | None = None) -> WeakForm:
    r"""Weak form of the mean exit time problem :math:`-\mathcal L\tau = 1`.

    :math:`\mathcal L\tau = b\cdot\nabla\tau + D:\nabla^2\tau = \nabla\cdot(D\nabla\tau) -
    ((\nabla\cdot D) - b)\cdot\nabla\tau` (D symmetric), so

    .. math:: \int (D\nabla\tau)\cdot\nabla v + \int ((\nabla\cdot D) - b)\cdot\nabla\tau\; v = \int v,

    with :math:`\tau = 0` (Dirichlet) on the absorbing parts and the natural reflecting condition
    :math:`(D\nabla\tau)\cdot n = 0` on the others.

    Args:
        sde: a :class:`symfp.SDE`.
        absorbing: boundary part names where the process is killed; ``None``: the whole boundary.
    """
    state, b, D = sde_parts(sde, "exit_time_form")
    d = len(state)
    parts = _parts(absorbing, "exit_time_form")
    bcs = [BoundaryCondition("dirichlet", parts, sp.S.Zero, "absorbing: tau = 0")]
    if parts is not None:
        bcs.append(_zero_flux("reflecting: (D grad tau)·n = 0", r"D\nabla\tau"))
    return WeakForm(
        kind="exit_time",
        state=state,
        unknown=r"\tau",
        mass=None,
        bilinear=(make_term("diffusion", D, d), make_term("transport", row_divergence(D, state) - b, d)),
        linear=(make_term("source", 1, d),),
        boundary=tuple(bcs),
        description="mean exit time -L tau = 1, tau = 0 on the absorbing parts, reflecting elsewhere",
        time=_time(sde),
    )


def stationary_form(sde: Any) -> WeakForm:
    r"""Weak form of the stationary Fokker–Planck problem :math:`\nabla\cdot J = 0`, :math:`\int p = 1`.

    .. math:: \int (D\nabla p)\cdot\nabla v - \int p\, c\cdot\nabla v = 0,\qquad \int p = 1,

    zero flux natural; the operator has the stationary density in its kernel, so the unit-mass
    :class:`Constraint` makes the problem well posed.
    """
    fwd = forward_form(sde)
    return WeakForm(
        kind="stationary",
        state=fwd.state,
        unknown="p",
        mass=None,
        bilinear=fwd.bilinear,
        boundary=fwd.boundary,
        constraint=Constraint(sp.S.One, sp.S.One),
        description="stationary Fokker-Planck equation, zero flux natural, unit mass",
        time=fwd.time,
    )
