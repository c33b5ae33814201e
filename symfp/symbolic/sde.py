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
    if not isinstance(m, sp.MatrixBase):  # nan * eye(d) is nan
        raise InputError(f"{where}: the {what} matrix D = [[{expr}]] is not a number or expression")
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
        for name, mat in (("drift", b), ("diffusion matrix D", D)):
            if mat.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
                raise InputError(f"SDE: the {name} = {mat.tolist()} has entries that are not finite "
                                 "(nan/inf); check the values substituted into it (lr, noise, constants)")
        asym = (D - D.T).applyfunc(sp.simplify)
        if any(e != 0 for e in asym):
            raise InputError(
                "SDE: the diffusion matrix D = σσᵀ/2 must be symmetric; "
                f"D - Dᵀ = {asym.tolist()}"
            )
        _constant_psd_check(D, "SDE")
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
        out = SDE(
            self.state,
            self.drift.subs(m),
            self.diffusion.subs(m),
            origin=self.origin,
            assumptions=self.assumptions,
            source=self.source,
            time=self.time,
        )
        # the substitutions, for checks that need the numeric source model (see numeric_source)
        object.__setattr__(out, "_source_subs", {**getattr(self, "_source_subs", {}), **m})
        return out

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


# ---------------------------------------------------------------------- positive semi-definiteness
#: D counts as negative where λ_min(D) < −PSD_TOL · max(1, max|D|) (round-off of a PSD D is kept)
PSD_TOL = 1e-9


def _constant_psd_check(D: sp.Matrix, where: str) -> None:
    """Refuse a constant numeric D with a negative eigenvalue (it is not a diffusion anywhere)."""
    if D.free_symbols or not all(e.is_number for e in D):
        return
    import numpy as np

    try:
        a = np.array(D.evalf(), dtype=float)
    except (TypeError, ValueError):
        return
    if not np.all(np.isfinite(a)):
        raise InputError(f"{where}: the diffusion matrix D = {D.tolist()} has entries that are not finite")
    lam = np.linalg.eigvalsh(a)
    if lam.min() < -PSD_TOL * max(1.0, np.abs(a).max()):
        raise InputError(
            f"{where}: the diffusion matrix D = {D.tolist()} has a negative eigenvalue {lam.min():.4g} "
            "(everywhere: D is constant), so it is not σσᵀ/2 of any noise; D must be positive "
            "semi-definite. Check the sign of the noise, or the order and step size of the SME"
        )


def diffusion_min_eigenvalue(sde: Any, points: Any) -> Any:
    """λ_min(D(θ)) at each of the points (n, d) (numpy), for a numeric autonomous SDE."""
    import numpy as np

    state, _, D = sde_parts(sde, "diffusion check")
    pts = np.asarray(points, dtype=float).reshape(-1, len(state))
    n, d = pts.shape
    time = getattr(sde, "time", None)
    if time is not None:
        D = D.subs(time, 0)
    from .datamean import has_data_nodes, lambdify_datamean

    if has_data_nodes(D):  # data-means evaluate themselves as reductions over the samples
        vals = lambdify_datamean(state, sp.Matrix(D))(*pts.T)
    else:
        f = sp.lambdify(state, D.tolist(), "numpy")
        with np.errstate(all="ignore"):
            vals = f(*pts.T)
    m = np.empty((n, d, d))
    for i in range(d):
        for j in range(d):
            m[:, i, j] = np.broadcast_to(np.asarray(vals[i][j], dtype=float), (n,))
    scale = max(1.0, float(np.nanmax(np.abs(m))) if m.size else 1.0)
    if d == 1:
        lam = m[:, 0, 0]
    else:
        ok = np.isfinite(m).all(axis=(1, 2))
        lam = np.full(n, np.nan)
        lam[ok] = np.linalg.eigvalsh(0.5 * (m[ok] + m[ok].transpose(0, 2, 1)))[:, 0]
    return lam, scale


def _interval_text(iv: sp.Interval, s: sp.Symbol) -> str:
    """``-0.333 < theta < 0.333``, ``theta < 0``, ``theta >= 1`` from a SymPy interval."""
    lo = "" if iv.start == -sp.oo else f"{float(iv.start):.3g} {'<' if iv.left_open else '<='} "
    hi = "" if iv.end == sp.oo else f" {'<' if iv.right_open else '<='} {float(iv.end):.3g}"
    return f"{lo}{s}{hi}" if (lo or hi) else f"every {s}"


def _region_1d(expr: sp.Expr, s: sp.Symbol, pts: Any, bad: Any) -> str:
    """Where a 1-D D is negative: exactly (SymPy, polynomials) or as intervals of the sample points."""
    import numpy as np

    if expr.is_polynomial(s) and sp.degree(expr, s) <= 4:
        try:
            sol = sp.solve_univariate_inequality(sp.nsimplify(expr) < 0, s, relational=False)
            parts = sol.args if isinstance(sol, sp.Union) else (sol,)
            if all(isinstance(iv, sp.Interval) for iv in parts) and len(parts) < 5:
                return " or ".join(_interval_text(iv, s) for iv in parts)
        except (NotImplementedError, ValueError, TypeError):
            pass
    x = np.asarray(pts)[:, 0]
    order = np.argsort(x)
    xs, bs = x[order], np.asarray(bad)[order]
    runs, start = [], None
    for i, b in enumerate(bs):
        if b and start is None:
            start = i
        if (not b or i == len(bs) - 1) and start is not None:
            end = i if b else i - 1
            runs.append(f"[{xs[start]:.4g}, {xs[end]:.4g}]")
            start = None
    return f"{s} in " + " ∪ ".join(runs[:4]) + (" ∪ …" if len(runs) > 4 else "") + " (sample points)"


def numeric_source(sde: Any) -> Any:
    """The model an SDE was derived from, with the numbers later substituted into the SDE (or None).

    ``model.sme().subs({eta: 0.1})`` keeps the symbolic model as its source; checks that need the
    numeric model (its lr, its loss) get ``model.subs({eta: 0.1})`` here.
    """
    src = getattr(sde, "source", None)
    subs = getattr(sde, "_source_subs", None)
    if src is None or not subs or not hasattr(src, "subs"):
        return src
    try:
        known = {str(p) for p in getattr(src, "parameters", set())}
        return src.subs({k: v for k, v in subs.items() if str(k) in known})
    except Exception:  # noqa: BLE001 - a best-effort view of the source; the checks skip without it
        return src


def _valid_lr_hint(sde: Any, pts: Any) -> str:
    """For an order-2 SME of plain SGD: the step sizes for which D ⪰ 0 at the same points."""
    import numpy as np

    src = numeric_source(sde)
    origin = str(getattr(sde, "origin", ""))
    if "order-2" not in origin:
        return ""
    msg = (" This is an order-2 stochastic modified equation: its O(η) correction to D outweighs the "
           "leading term there, i.e. the expansion is outside its range (η too large for this loss)")
    lr = getattr(src, "lr", None)
    plain = getattr(src, "momentum", 1) is None
    if src is None or lr is None or not getattr(lr, "is_number", False) or not plain:
        return msg + "; use a smaller lr or order=1."
    try:
        from .recursion import SGD

        eta = sp.Symbol("eta_check", positive=True)
        model = SGD(src.loss, src.params, src.data, eta, src.batch_size, src.replacement, None,
                    src.weight_decay, src.noise, src.constants)
        D_eta = sp.Matrix(model.sme(order=2).diffusion)

        def ok(h: float) -> bool:
            probe = SDE(sde.state, sp.zeros(len(sde.state), 1), D_eta.subs(eta, h))
            lam, scale = diffusion_min_eigenvalue(probe, pts)
            return bool(np.nanmin(lam) >= -PSD_TOL * scale)

        bad_h = float(lr)
        for h in float(lr) * 0.8 ** np.arange(1, 60):
            if ok(h):
                for _ in range(30):  # bisection between a valid h and an invalid bad_h
                    mid = 0.5 * (h + bad_h)
                    h, bad_h = (mid, bad_h) if ok(mid) else (h, mid)
                return msg + f": D ⪰ 0 at the same points for lr ≤ {h:.4g} (here lr = {float(lr):g}); " \
                             "use a smaller lr, or order=1."
            bad_h = h
    except Exception:  # noqa: BLE001 - the hint is best effort; the refusal stands without it
        pass
    return msg + "; use a smaller lr, or order=1."


def check_diffusion(sde: Any, points: Any, where: str, region: str = "the sample points") -> None:
    r"""Refuse an SDE whose D is not positive semi-definite at some of ``points`` (n, d).

    Evaluates :math:`\lambda_{\min}(D(\theta))` at every point; a value below
    :math:`-10^{-9}\max(1, \max|D|)` is a negative diffusion (round-off of a PSD D passes).

    Raises:
        InputError: naming D, the most negative value and where, the region where D < 0 (exact for
            1-D polynomials), and for an order-2 SME which lr would be valid.
    """
    import numpy as np

    state, _, D = sde_parts(sde, where)
    pts = np.asarray(points, dtype=float).reshape(-1, len(state))
    if not len(pts) or not (sp.Matrix(D).free_symbols & set(state)):
        return
    lam, scale = diffusion_min_eigenvalue(sde, pts)
    bad = lam < -PSD_TOL * scale
    if not bad.any():
        return
    k = int(np.nanargmin(lam))
    at = ", ".join(f"{s} = {v:.4g}" for s, v in zip(state, pts[k], strict=True))
    frac = 100.0 * bad.mean()
    if len(state) == 1:
        where_neg = _region_1d(sp.Matrix(D)[0, 0], state[0], pts, bad)
        what = f"D = {sp.Matrix(D)[0, 0]} < 0 for {where_neg}"
    else:
        lo, hi = pts[bad].min(axis=0), pts[bad].max(axis=0)
        box = " × ".join(f"[{a:.3g}, {b:.3g}]" for a, b in zip(lo, hi, strict=True))
        what = f"D = {sp.Matrix(D).tolist()} is not positive semi-definite on {box}"
    raise InputError(
        f"{where}: the diffusion {what} ({frac:.3g}% of {region}; most negative eigenvalue "
        f"{lam[k]:.4g} at {at}). A diffusion matrix D = σσᵀ/2 must be positive semi-definite; "
        "symfp refuses rather than clamp the noise to 0." + _valid_lr_hint(sde, pts)
    )


def model_id(sde: Any) -> str:
    """A short hash identifying an SDE's state names, drift, diffusion and time symbol.

    Two clouds or solutions of the same process share it, whatever their objects; comparing ids
    (not state names) tells two different models of the same dimension apart.
    """
    import hashlib

    state, b, D = sde_parts(sde, "model_id")
    text = sp.srepr((tuple(str(s) for s in state), sp.ImmutableMatrix(b), sp.ImmutableMatrix(D),
                     str(getattr(sde, "time", None))))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
