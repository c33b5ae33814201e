r"""Itô stochastic differential equations :math:`d\theta = b(\theta)\,dt + \sigma(\theta)\,dW`.

symfp stores the diffusion matrix :math:`D = \tfrac12\sigma\sigma^\top` (not :math:`\sigma`), since
that is what the Fokker–Planck equation and the generator use and what moment matching gives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from ..errors import InputError
from .stage import Stage, sympify_mapping


def as_state(state: Iterable[Any], where: str) -> tuple[sp.Symbol, ...]:
    """Validate a list of state symbols (names are accepted and turned into real symbols)."""
    out = []
    for s in state:
        s = sp.Symbol(s, real=True) if isinstance(s, str) else s
        if not isinstance(s, sp.Symbol):
            raise InputError(f"{where}: state entry {s!r} is not a SymPy Symbol")
        out.append(s)
    if not out:
        raise InputError(f"{where}: the state is empty; give at least one symbol")
    if len(set(out)) != len(out):
        raise InputError(f"{where}: repeated state symbols in {out}")
    return tuple(out)


def as_column(expr: Any, d: int, what: str, where: str) -> sp.Matrix:
    """Turn a scalar (d = 1), a list or a Matrix into a d×1 SymPy column, or raise."""
    try:
        if isinstance(expr, sp.MatrixBase):
            m = sp.Matrix(expr)
        elif isinstance(expr, (list, tuple)):
            m = sp.Matrix([sp.sympify(e) for e in expr])
        else:
            m = sp.Matrix([sp.sympify(expr)])
    except (sp.SympifyError, TypeError, ValueError) as exc:
        raise InputError(f"{where}: {what} {expr!r} is not a SymPy expression") from exc
    if m.shape == (1, d):
        m = m.T
    if m.shape != (d, 1):
        raise InputError(f"{where}: {what} has shape {m.shape}, expected ({d}, 1) for {d} state variables")
    return m


def as_square(expr: Any, d: int, what: str, where: str) -> sp.Matrix:
    """Turn a scalar (d = 1 or isotropic), a nested list or a Matrix into a d×d SymPy matrix."""
    try:
        if isinstance(expr, sp.MatrixBase):
            m = sp.Matrix(expr)
        elif isinstance(expr, (list, tuple)):
            m = sp.Matrix(expr)
        else:
            m = sp.sympify(expr) * sp.eye(d)
    except (sp.SympifyError, TypeError, ValueError) as exc:
        raise InputError(f"{where}: {what} {expr!r} is not a SymPy matrix") from exc
    if m.shape != (d, d):
        raise InputError(f"{where}: {what} has shape {m.shape}, expected ({d}, {d})")
    return m


def sde_parts(sde: Any, where: str) -> tuple[tuple[sp.Symbol, ...], sp.Matrix, sp.Matrix]:
    """State, drift b and diffusion D of an SDE-like object (duck-typed), with a clear error."""
    try:
        state = tuple(sde.state)
        b = sp.Matrix(sde.drift)
        D = sp.Matrix(sde.diffusion)
    except AttributeError as exc:
        raise InputError(
            f"{where}: expected a symfp.SDE (with .state, .drift, .diffusion), got {type(sde).__name__}; "
            "build one with symfp.SDE(state, drift, diffusion) or model.sme()"
        ) from exc
    return state, b, D


@dataclass(frozen=True)
class SDE(Stage):
    r"""An Itô SDE :math:`d\theta = b\,dt + \sigma\,dW` with :math:`D = \tfrac12\sigma\sigma^\top`.

    Time is :math:`t = k\eta` when the SDE comes from a recursion with step :math:`\eta`.

    Attributes:
        state: the state symbols :math:`\theta_1,\dots,\theta_d`.
        drift: :math:`b(\theta)`, a d×1 SymPy matrix.
        diffusion: :math:`D(\theta) = \tfrac12\sigma\sigma^\top`, a symmetric d×d SymPy matrix.
        origin: where it came from (e.g. "order-2 stochastic modified equation of SGD").
        assumptions: statements the derivation relied on (shown in LaTeX documents).
        source: the upstream stage (a recursion) or None.
        time: the time symbol t when drift or diffusion depend explicitly on time (learning-rate or
            noise schedules), else None. It is neither a state variable nor a parameter.
    """

    state: tuple[sp.Symbol, ...]
    drift: sp.Matrix
    diffusion: sp.Matrix
    origin: str = "given"
    assumptions: tuple[str, ...] = ()
    source: Any = field(default=None, compare=False, repr=False)
    time: sp.Symbol | None = None

    def __init__(
        self,
        state: Sequence[Any],
        drift: Any,
        diffusion: Any,
        origin: str = "given",
        assumptions: Iterable[str] = (),
        source: Any = None,
        time: Any = None,
    ) -> None:
        st = as_state(state, "SDE")
        if isinstance(time, str):
            time = sp.Symbol(time, real=True)
        if time is not None and (not isinstance(time, sp.Symbol) or time in st):
            raise InputError(f"SDE: time={time!r} must be a SymPy Symbol that is not a state variable")
        d = len(st)
        b = as_column(drift, d, "drift", "SDE")
        D = as_square(diffusion, d, "diffusion", "SDE")
        asym = (D - D.T).applyfunc(sp.simplify)
        if any(e != 0 for e in asym):
            raise InputError(
                "SDE: the diffusion matrix D = σσᵀ/2 must be symmetric; "
                f"D - Dᵀ = {asym.tolist()}"
            )
        object.__setattr__(self, "state", st)
        object.__setattr__(self, "drift", sp.ImmutableMatrix(b))
        object.__setattr__(self, "diffusion", sp.ImmutableMatrix(D))
        object.__setattr__(self, "origin", str(origin))
        object.__setattr__(self, "assumptions", tuple(assumptions))
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "time", time)

    # ------------------------------------------------------------------ basic facts
    @property
    def dim(self) -> int:
        """Number of state variables d."""
        return len(self.state)

    @property
    def parameters(self) -> set[sp.Symbol]:
        """Free symbols of drift and diffusion that are not state variables (η, B, constants…)."""
        syms = self.drift.free_symbols | self.diffusion.free_symbols
        return {s for s in syms if s not in self.state and s != self.time}

    @property
    def is_autonomous(self) -> bool:
        """True when neither drift nor diffusion depends explicitly on time."""
        if self.time is None:
            return True
        return self.time not in (self.drift.free_symbols | self.diffusion.free_symbols)

    @property
    def is_numeric(self) -> bool:
        """True when drift and diffusion depend on the state only (ready to solve or simulate)."""
        return not self.parameters

    def require_numeric(self, what: str) -> None:
        """Raise a clear error if symbols other than the state remain (``.subs`` them first)."""
        if self.parameters:
            names = ", ".join(sorted(map(str, self.parameters)))
            raise InputError(
                f"{what}: the SDE still has free symbols {names}; give them numbers first, "
                f"e.g. sde.subs({{{names.split(', ')[0]}: 0.1}})"
            )

    def subs(self, mapping: Mapping[Any, Any] | None = None, **kwargs: Any) -> SDE:
        """Substitute numbers or expressions for parameters; returns a new SDE."""
        known = self.parameters | set(self.state) | ({self.time} if self.time is not None else set())
        m = sympify_mapping({**(mapping or {}), **kwargs}, "SDE.subs", known)
        bad = [k for k in m if k in self.state or k == self.time]
        if bad:
            raise InputError(f"SDE.subs: cannot substitute for state variables or time {bad}")
        return SDE(
            self.state,
            self.drift.subs(m),
            self.diffusion.subs(m),
            origin=self.origin,
            assumptions=self.assumptions,
            source=self.source,
            time=self.time,
        )

    def simplify(self) -> SDE:
        """Return the SDE with drift and diffusion simplified entry by entry."""
        return SDE(
            self.state,
            self.drift.applyfunc(sp.simplify),
            self.diffusion.applyfunc(sp.simplify),
            self.origin,
            self.assumptions,
            self.source,
            self.time,
        )

    def is_degenerate(self) -> bool:
        """True when D is singular somewhere generic (symbolic rank below d)."""
        return sp.Matrix(self.diffusion).rank(simplify=True) < self.dim

    # ------------------------------------------------------------------ downstream stages
    def fokker_planck(self):
        """The Fokker–Planck equation of this SDE (see :class:`symfp.FokkerPlanck`)."""
        from .fokker_planck import FokkerPlanck

        return FokkerPlanck(self)

    def simulate(self, n_particles: int, t_end: float, dt: float, init: Any, **kwargs: Any):
        """Simulate the SDE with particles (Euler–Maruyama by default; needs torch).

        See :func:`symfp.particles.sde.simulate_sde` for the options.
        """
        from ..particles.sde import simulate_sde

        return simulate_sde(self, n_particles=n_particles, t_end=t_end, dt=dt, init=init, **kwargs)

    # ------------------------------------------------------------------ display
    def latex(self) -> str:
        r"""LaTeX of :math:`d\theta = b\,dt + \sigma dW` with :math:`D=\tfrac12\sigma\sigma^\top`."""
        th = sp.Matrix(self.state)
        if self.dim == 1:
            return (
                rf"d{sp.latex(self.state[0])} = \left({sp.latex(self.drift[0])}\right) dt"
                rf" + \sqrt{{2 D}}\, dW, \qquad D = {sp.latex(self.diffusion[0])}"
            )
        return (
            rf"d{sp.latex(th)} = {sp.latex(sp.Matrix(self.drift))}\, dt + \sigma\, dW,"
            rf"\qquad D = \tfrac12\sigma\sigma^\top = {sp.latex(sp.Matrix(self.diffusion))}"
        )

    def __str__(self) -> str:
        lines = [f"SDE ({self.origin}) in {', '.join(map(str, self.state))}:"]
        for s, b in zip(self.state, self.drift, strict=True):
            lines.append(f"  drift[{s}] = {b}")
        lines.append(f"  D = sigma sigma^T / 2 = {sp.Matrix(self.diffusion).tolist()}")
        return "\n".join(lines)
