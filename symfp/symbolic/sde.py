r"""Itô stochastic differential equations :math:`d\theta = b(\theta)\,dt + \sigma(\theta)\,dW`.

symfp stores the diffusion matrix :math:`D = \tfrac12\sigma\sigma^\top` (not :math:`\sigma`), since
that is what the Fokker–Planck equation and the generator use and what moment matching gives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp
from sympy.core.sorting import default_sort_key

from ..errors import InputError
from .datamean import data_nodes, lambdify, lambdify_datamean
from .fokker_planck import FokkerPlanck
from .shapes import as_column, as_square, as_state, sde_parts
from .stage import Stage, sympify_mapping


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


def _matrix_function(M: sp.Matrix, state: tuple[sp.Symbol, ...], time: sp.Symbol | None, pts: np.ndarray):
    """``at(t) -> (n, rows, cols)``: the matrix M(θ, t) at the n points ``pts`` and times ``t`` (n,).

    Data-mean nodes (functions of θ only) are evaluated once at the points, as reductions over the
    samples; only the outer expression is evaluated again for each time.
    """
    M = sp.Matrix(M)
    n = len(pts)
    tsym = time if time is not None else sp.Dummy("t")
    nodes = sorted(data_nodes(M), key=default_sort_key)
    if any(tsym in nd.free_symbols for nd in nodes):  # a mean of a time-dependent expression
        full = lambdify_datamean([*state, tsym], M)
        return lambda tv: np.moveaxis(np.asarray(full(*pts.T, np.broadcast_to(tv, (n,))), dtype=float), -1, 0)
    ph = [sp.Dummy(f"m{k}") for k in range(len(nodes))]
    outer = lambdify([*state, tsym, *ph], M.xreplace(dict(zip(nodes, ph, strict=True))).tolist(), "numpy")
    mv = list(lambdify_datamean(state, sp.Matrix(nodes))(*pts.T)[:, 0]) if nodes else []

    def at(tv: Any) -> np.ndarray:
        with np.errstate(all="ignore"):
            vals = outer(*pts.T, np.broadcast_to(np.asarray(tv, dtype=float), (n,)), *mv)
        out = np.empty((n, *M.shape))
        for i in range(M.rows):
            for j in range(M.cols):
                out[:, i, j] = np.broadcast_to(np.asarray(vals[i][j], dtype=float), (n,))
        return out

    return at


def _min_eigenvalues(m: np.ndarray) -> np.ndarray:
    """λ_min of each symmetric part of m (n, d, d); NaN where an entry is not finite."""
    if m.shape[1] == 1:
        return m[:, 0, 0].copy()
    ok = np.isfinite(m).all(axis=(1, 2))
    lam = np.full(len(m), np.nan)
    lam[ok] = np.linalg.eigvalsh(0.5 * (m[ok] + m[ok].transpose(0, 2, 1)))[:, 0]
    return lam


def diffusion_min_eigenvalue(sde: Any, points: Any, *, times: Any = None) -> Any:
    """λ_min(D(θ, t)) at each of the points (n, d) and the scale max(1, max|D|) (numpy).

    Args:
        sde: a numeric SDE (anything with ``state``, ``drift``, ``diffusion``; ``time`` optional).
        points: (n, d) state values.
        times: the time t at each point (scalar or (n,)); default t = 0. Ignored when D does not
            depend on time.
    """
    state, _, D = sde_parts(sde, "diffusion check")
    pts = np.asarray(points, dtype=float).reshape(-1, len(state))
    time = getattr(sde, "time", None)
    m = _matrix_function(D, state, time, pts)(0.0 if times is None else times)
    scale = max(1.0, float(np.nanmax(np.abs(m))) if m.size else 1.0)
    return _min_eigenvalues(m), scale


#: time samples of a time-dependent D over [0, t_end] (end points included)
PSD_TIME_SAMPLES = 17
#: highest degree in t for which the exact extremes in time of an entry are found
PSD_MAX_T_DEGREE = 8


def _critical_times(D: sp.Matrix, state: tuple[sp.Symbol, ...], time: sp.Symbol, pts: np.ndarray,
                    t_end: float) -> list[np.ndarray]:
    r"""Times in (0, t_end) where an entry of D that is polynomial in t is stationary, per point.

    For :math:`D_{ij}(\theta, t) = \sum_k c_k(\theta) t^k` the extremes in t over :math:`[0, T]` are at
    the end points or at the real roots of :math:`\sum_k k c_k t^{k-1}`, found per point as the
    eigenvalues of its companion matrix. Returns (n,) arrays, NaN where a point has no such root.
    """
    out: list[np.ndarray] = []
    n = len(pts)
    for e in dict.fromkeys(D):
        if time not in e.free_symbols or not e.is_polynomial(time):
            continue
        coeffs, g = [], e
        for k in range(PSD_MAX_T_DEGREE + 2):  # c_k = (d/dt)^k e |_{t=0} / k!
            if g == 0:
                break
            coeffs.append(g.subs(time, 0) / sp.factorial(k))
            g = sp.diff(g, time)
        if g != 0 or len(coeffs) < 3:  # degree above the bound, or linear in t: the end points suffice
            continue
        a = [k * c for k, c in enumerate(coeffs)][1:]  # derivative, ascending powers of t
        vals = _matrix_function(sp.Matrix(a), state, None, pts)(0.0)[:, :, 0]  # (n, m + 1)
        m = vals.shape[1] - 1
        lead = vals[:, -1]
        good = np.isfinite(vals).all(axis=1) & (np.abs(lead) > 1e-300)
        comp = np.zeros((n, m, m))
        comp[:, 0, :] = -vals[:, -2::-1] / np.where(good, lead, 1.0)[:, None]
        comp[:, np.arange(1, m), np.arange(m - 1)] = 1.0
        comp[~good] = 0.0
        roots = np.linalg.eigvals(comp)
        real = (np.abs(roots.imag) <= 1e-9 * (1 + np.abs(roots.real))) & good[:, None]
        r = np.where(real & (roots.real > 0) & (roots.real < t_end), roots.real, np.nan)
        out.extend(r[:, k] for k in range(m))
    return out


def _time_dependent(D: sp.Matrix, time: Any) -> bool:
    return time is not None and time in sp.Matrix(D).free_symbols


def _interval_text(iv: sp.Interval, s: sp.Symbol) -> str:
    """``-0.333 < theta < 0.333``, ``theta < 0``, ``theta >= 1`` from a SymPy interval."""
    lo = "" if iv.start == -sp.oo else f"{float(iv.start):.3g} {'<' if iv.left_open else '<='} "
    hi = "" if iv.end == sp.oo else f" {'<' if iv.right_open else '<='} {float(iv.end):.3g}"
    return f"{lo}{s}{hi}" if (lo or hi) else f"every {s}"


def _region_1d(expr: sp.Expr, s: sp.Symbol, pts: Any, bad: Any) -> str:
    """Where a 1-D D is negative: exactly (SymPy, polynomials) or as intervals of the sample points."""
    if s not in expr.free_symbols:  # negative and constant in the state (a schedule's D at one time)
        return f"every {s}"
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
    try:  # the same SGD with a symbolic step (SGD.with_lr), so D(η) is derived once
        eta = sp.Symbol("eta_check", positive=True)
        D_eta = sp.Matrix(src.with_lr(eta).sme(order=2).diffusion)

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


def check_diffusion(sde: Any, points: Any, where: str, region: str = "the sample points", *,
                    t_end: Any = None) -> None:
    r"""Refuse an SDE whose D is not positive semi-definite at some of ``points`` (n, d).

    Evaluates :math:`\lambda_{\min}(D(\theta, t))` at every point; a value below
    :math:`-10^{-9}\max(1, \max|D|)` is a negative diffusion (round-off of a PSD D passes). A D that
    depends on the SDE's ``time`` (a schedule) is checked over :math:`t \in [0, t_{end}]`: at
    ``PSD_TIME_SAMPLES`` equispaced times (end points included) and, for entries polynomial in t, at
    the exact stationary times of each entry at each point (for d = 1 this finds the minimum over
    the interval exactly). Without ``t_end`` a time-dependent D is checked at t = 0 only.

    Args:
        sde: the SDE (``state``, ``drift``, ``diffusion``, optional ``time``).
        points: (n, d) state values (mesh vertices, particles, sample points).
        where: the caller, for the message.
        region: what the points are, for the message.
        t_end: the end of the time interval the SDE is solved or simulated over (from 0).

    Raises:
        InputError: naming D, the most negative value, where and (time-dependent D) when, the region
            where D < 0 (exact for 1-D polynomials), and for an order-2 SME which lr would be valid.
    """
    state, _, D = sde_parts(sde, where)
    D = sp.Matrix(D)
    pts = np.asarray(points, dtype=float).reshape(-1, len(state))
    time = getattr(sde, "time", None)
    tdep = _time_dependent(D, time)
    if not len(pts) or not (D.free_symbols & (set(state) | ({time} if tdep else set()))):
        return
    T = None
    if tdep and t_end is not None:
        try:
            T = float(t_end)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}: t_end = {t_end!r} is not a number") from exc
        if not np.isfinite(T) or T < 0:
            raise InputError(f"{where}: t_end = {t_end!r} must be a finite time >= 0")
    n = len(pts)
    at = _matrix_function(D, state, time if tdep else None, pts)
    times: list[Any] = [0.0]
    if T:
        times = [*np.linspace(0.0, T, PSD_TIME_SAMPLES), *_critical_times(D, state, time, pts, T)]
    lam = np.full(n, np.inf)
    t_at = np.zeros(n)
    scale = 1.0
    for tv in times:
        tarr = np.broadcast_to(np.asarray(tv, dtype=float), (n,))
        use = np.isfinite(tarr)
        if not use.any():
            continue
        m = at(np.where(use, tarr, 0.0))
        lam_t = _min_eigenvalues(m)
        if np.isfinite(m[use]).any():
            scale = max(scale, float(np.nanmax(np.abs(m[use]))))
        lower = use & (lam_t < lam)
        lam[lower], t_at[lower] = lam_t[lower], tarr[lower]
    bad = lam < -PSD_TOL * scale
    if not bad.any():
        return
    k = int(np.argmin(np.where(np.isfinite(lam), lam, np.inf)))
    at_txt = ", ".join(f"{s} = {v:.4g}" for s, v in zip(state, pts[k], strict=True))
    when = ""
    D_shown = D
    if tdep:
        when = f", t = {t_at[k]:.4g}"
        D_shown = D.subs(time, sp.Float(t_at[k], 6)) if len(state) == 1 else D
        bad = _min_eigenvalues(at(t_at[k])) < -PSD_TOL * scale  # the region at that time
        region += (f" at {len(times)} times in [0, {T:g}] (end points and the stationary times of its "
                   "polynomial-in-t entries)" if T else
                   " at t = 0 only: D depends on time, pass t_end to check the whole interval")
    frac = 100.0 * bad.mean()
    if len(state) == 1:
        where_neg = _region_1d(D_shown[0, 0], state[0], pts, bad)
        what = f"D = {D[0, 0]} < 0 for {where_neg}" + (f" at t = {t_at[k]:.4g}" if tdep else "")
    else:
        lo, hi = pts[bad].min(axis=0), pts[bad].max(axis=0)
        box = " × ".join(f"[{a:.3g}, {b:.3g}]" for a, b in zip(lo, hi, strict=True))
        what = f"D = {D.tolist()} is not positive semi-definite on {box}" + (
            f" at t = {t_at[k]:.4g}" if tdep else "")
    raise InputError(
        f"{where}: the diffusion {what} ({frac:.3g}% of {region}; most negative eigenvalue "
        f"{lam[k]:.4g} at {at_txt}{when}). A diffusion matrix D = σσᵀ/2 must be positive semi-definite; "
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
