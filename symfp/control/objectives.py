r"""Objectives of the density and costs of the controls (all minimised; negative weight maximises).

On the discrete trajectory :math:`p^0..p^N` (nodal P1 values, mass matrix M, step dt):

* :class:`ExpectedValue` — :math:`\mathbb E[g(\theta_T)] = \int g\,p(T) \approx c^\top p^N`,
  :math:`c_i = \int g\varphi_i`;
* :class:`RegionMass` — the mass in a region, :math:`g = \mathbf 1_R` (a SymPy relation);
* :class:`TerminalTracking` — :math:`\tfrac12\|p(T) - \rho_T\|^2_{L^2} = \tfrac12(p^N - q)^\top M(p^N - q)`;
* :class:`RunningTracking` — :math:`\int_0^T\tfrac12\|p - \rho_d(t)\|^2 dt \approx \sum_{n=1}^N
  dt\,\tfrac12(p^n - q^n)^\top M(p^n - q^n)`;
* :class:`LevelTime` — the time during which :math:`\mathbb E[g(\theta_t)]` stays above (or below) a
  level ℓ, smoothed: :math:`\int_0^T\sigma((\mathbb E g(\theta_t) - \ell)/\varepsilon)\,dt \approx
  \sum_{n=1}^N dt\,\sigma((c^\top p^n - \ell)/\varepsilon)`, σ the logistic function ("time to reach
  a level" when E g crosses ℓ once);
* :class:`SampleCost` — :math:`\int_0^T B\,dt` (samples drawn, in units of :math:`\eta_{\max}`);
* :class:`Smoothness` — :math:`\tfrac12\sum_j(u_{j+1} - u_j)^2/\Delta\tau` (a discrete
  :math:`\tfrac12\int\dot u^2`).

Each term has a weight (its sign says minimise or maximise). Density terms give their value and
gradient in :math:`p`; control costs their value and gradient in the controls.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy as sp

from ..errors import InputError


class DensityTerm:
    """A term of the density: ``terminal`` and/or ``running`` parts."""

    name = "density"
    weight: float = 1.0
    has_running = False

    def setup(self, ops: Any, times: np.ndarray) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def terminal(self, p: np.ndarray) -> tuple[float, np.ndarray | None]:
        return 0.0, None

    def running(self, n: int, p: np.ndarray) -> tuple[float, np.ndarray | None]:
        return 0.0, None


def _state_expr(expr: Any, state: tuple, what: str) -> sp.Expr:
    try:
        e = sp.sympify(expr)
    except (sp.SympifyError, TypeError) as exc:
        raise InputError(f"{what}: {expr!r} is not a SymPy expression") from exc
    extra = e.free_symbols - set(state)
    if extra:
        raise InputError(f"{what}: {e} has symbols {sorted(map(str, extra))} that are not state variables "
                         f"({', '.join(map(str, state))}); substitute numbers")
    return e


class ExpectedValue(DensityTerm):
    r""":math:`w\,\mathbb E[g(\theta_T)]`.

    Raises (at setup):
        InputError: g does not depend on the state — then :math:`\mathbb E g = g\cdot\text{mass}` is the
            same for every schedule (mass is conserved), so the objective does not depend on the controls.
    """

    def __init__(self, g: Any, *, weight: float = 1.0, name: str | None = None):
        self.g = g
        self.weight = float(weight)
        self.name = name or f"E[{g}]"

    def setup(self, ops: Any, times: np.ndarray) -> None:
        e = _state_expr(self.g, ops.state, self.name)
        if not e.free_symbols:
            raise InputError(f"objective {self.name}: g = {e} is constant, so E[g(θ_T)] = g is the "
                             f"same under "
                             "every schedule (mass is conserved): the objective does not depend on "
                             "the controls. "
                             "Give an observable of the state")
        self.c = ops.load(e)

    def terminal(self, p: np.ndarray) -> tuple[float, np.ndarray]:
        return self.weight * float(self.c @ p), self.weight * self.c


class RegionMass(ExpectedValue):
    r""":math:`w\,P(\theta_T\in R)`, R a SymPy relation or And/Or of them in the state (e.g. ``x < 0``)."""

    def __init__(self, region: Any, *, weight: float = 1.0, name: str | None = None):
        rel = sp.sympify(region)
        if not isinstance(rel, (sp.core.relational.Relational, sp.And, sp.Or, sp.Not)):
            raise InputError(f"RegionMass: region {region!r} must be a relation in the state, e.g. theta < 0")
        super().__init__(sp.Piecewise((1, rel), (0, True)), weight=weight, name=name or f"P[{rel}]")


class TerminalTracking(DensityTerm):
    r""":math:`\tfrac w2\|p(T) - \rho_T\|_{L^2}^2` (the target normalised to unit mass unless told)."""

    def __init__(self, target: Any, *, weight: float = 1.0, normalise: bool = True, name: str | None = None):
        self.target = target
        self.weight = float(weight)
        self.normalise = normalise
        self.name = name or "½‖ρ(T) − ρ_T‖²"

    def setup(self, ops: Any, times: np.ndarray) -> None:
        q = ops.nodal(_state_expr(self.target, ops.state, self.name))
        if self.normalise:
            q = q / float(np.ones(ops.n) @ (ops.M @ q))
        self.q, self.M = q, ops.M

    def terminal(self, p: np.ndarray) -> tuple[float, np.ndarray]:
        r = self.M @ (p - self.q)
        return 0.5 * self.weight * float((p - self.q) @ r), self.weight * r


class RunningTracking(DensityTerm):
    r""":math:`w\int_0^T\tfrac12\|p - \rho_d(\cdot, t)\|^2dt` by the right-endpoint rule (n = 1..N).

    Args:
        target: :math:`\rho_d` in the state and (optionally) ``time``.
        time: the time symbol in ``target`` (or None).
    """

    has_running = True

    def __init__(self, target: Any, *, time: Any = None, weight: float = 1.0, name: str | None = None):
        self.target = sp.sympify(target)
        self.time = time
        self.weight = float(weight)
        self.name = name or "∫½‖ρ − ρ_d‖² dt"

    def setup(self, ops: Any, times: np.ndarray) -> None:
        state = ops.state
        extra = self.target.free_symbols - set(state) - ({self.time} if self.time is not None else set())
        if extra:
            raise InputError(f"{self.name}: target has symbols {sorted(map(str, extra))} besides "
                             f"the state and "
                             "time=; pass time=t or substitute numbers")
        self.M = ops.M
        self.dt = float(times[1] - times[0])
        if self.time is None or self.time not in self.target.free_symbols:
            q = ops.nodal(self.target)
            self.Q = np.broadcast_to(q, (len(times), ops.n))
        else:
            self.Q = np.array([ops.nodal(self.target.subs(self.time, t)) for t in times])

    def running(self, n: int, p: np.ndarray) -> tuple[float, np.ndarray]:
        d = p - self.Q[n]
        r = self.M @ d
        w = self.weight * self.dt
        return 0.5 * w * float(d @ r), w * r


def logistic(z: np.ndarray | float) -> np.ndarray:
    r""":math:`\sigma(z) = 1/(1 + e^{-z})`, evaluated without overflow (``scipy.special.expit``)."""
    from scipy.special import expit

    return expit(z)


class LevelTime(DensityTerm):
    r"""Time above a level: :math:`w\int_0^T\sigma\big((\mathbb E[g(\theta_t)] - \ell)/\varepsilon\big)dt`.

    The exact cost, the time during which :math:`m(t) = \mathbb E[g(\theta_t)] = \int g\,p(t)` stays
    above ℓ, is :math:`\int_0^T H(m(t) - \ell)\,dt` (H the Heaviside step); when m decreases through ℓ
    once, at :math:`t_\ell`, it is the time to reach the level, :math:`\min(t_\ell, T)`. H has no
    derivative, so it is replaced by the logistic :math:`\sigma(z) = 1/(1 + e^{-z})`, and the integral by
    the right-endpoint rule of the other running costs (:math:`m_n = c^\top p^n`, :math:`c_i = \int
    g\varphi_i`):

    .. math:: J_\ell = w\sum_{n=1}^N dt\,\sigma(z_n),\quad z_n = s\,(m_n - \ell)/\varepsilon,

    .. math:: \frac{\partial J_\ell}{\partial p^n}
              = w\,dt\,\frac{s}{\varepsilon}\,\sigma(z_n)(1 - \sigma(z_n))\,c,

    with s = +1 (time above ℓ) or −1 (``above=False``: time below ℓ); the adjoint takes
    :math:`\partial J_\ell/\partial p^n` as the source of step n, as for
    :class:`RunningTracking`.

    **What ε trades** (ε is in the units of g). A crossing with speed :math:`|\dot m(t_\ell)|` is
    smeared over a time window :math:`\approx 4\varepsilon/|\dot m|` (σ from 0.12 to 0.88). The bias
    against the exact time is :math:`O(\varepsilon^2)` for a single transversal crossing (σ − H is odd
    about the crossing, so the first-order error cancels), but O(ε/|ṁ|) for a crossing within that
    window of 0 or T, and :math:`T e^{-\delta/\varepsilon}` where m stays a distance δ from ℓ.
    Smaller ε: closer to the true time, but the gradient is concentrated on the few steps within that
    window (zero elsewhere: an optimiser started far from a crossing sees almost no gradient), and
    the time step must resolve the window, :math:`dt \ll \varepsilon/|\dot m|`, or the sum jumps by
    dt as the crossing moves past a step. Larger ε: a smooth, informative gradient at every step, but
    the cost then also rewards moving m relative to ℓ where it is far from ℓ (for ε ≫ the range of m
    it is an affine function of ∫m dt, not a time). A usual choice: ε a few per cent of the change of
    m over the run, with dt below ε/|ṁ|.

    Args:
        g: the observable (SymPy expression in the state).
        level: ℓ.
        eps: ε > 0, the width of the smoothing, in units of g.
        above: True: time with E g > ℓ (minimising it reaches ℓ from above quickly); False: time below.
        weight: w.

    Raises (at setup):
        InputError: ε ≤ 0 or not finite; ℓ outside the range of g on the mesh's nodes — then E g (an
            average of g against a density) can never cross ℓ and the cost is the constant T·σ(·), not
            a time; g constant.
    """

    has_running = True

    def __init__(self, g: Any, level: float, *, eps: float, above: bool = True, weight: float = 1.0,
                 name: str | None = None):
        try:
            self.eps = float(eps)
            self.level = float(level)
        except (TypeError, ValueError):
            raise InputError(f"LevelTime: level={level!r} and eps={eps!r} must be numbers") from None
        if not (np.isfinite(self.eps) and self.eps > 0):
            raise InputError(f"LevelTime: eps={eps!r} must be a positive number (the width of the logistic "
                             "step, in units of g); e.g. a few per cent of the change of E[g] over the run")
        if not np.isfinite(self.level):
            raise InputError(f"LevelTime: level={level!r} must be finite")
        self.g = g
        self.sign = 1.0 if above else -1.0
        self.weight = float(weight)
        self.name = name or f"time with E[{g}] {'>' if above else '<'} {self.level:g}"

    def setup(self, ops: Any, times: np.ndarray) -> None:
        e = _state_expr(self.g, ops.state, self.name)
        if not e.free_symbols:
            raise InputError(f"{self.name}: g = {e} is constant, so E[g] never changes and the time above "
                             "the level does not depend on the controls; give an observable of the state")
        vals = ops.nodal(e)
        lo, hi = float(vals.min()), float(vals.max())
        if not (lo < self.level < hi):
            raise InputError(f"{self.name}: the level {self.level:g} is outside the range "
                             f"[{lo:g}, {hi:g}] of g = {e} on the mesh nodes, so E[g(θ_t)] (an average "
                             "of g) never crosses it and the cost is the same constant for every "
                             "schedule; give a level inside that range")
        self.c = ops.load(e)
        self.dt = float(times[1] - times[0])

    def mean(self, p: np.ndarray) -> float:
        r""":math:`\mathbb E g = c^\top p`."""
        return float(self.c @ p)

    def running(self, n: int, p: np.ndarray) -> tuple[float, np.ndarray]:
        z = self.sign * (self.mean(p) - self.level) / self.eps
        s = float(logistic(z))
        w = self.weight * self.dt
        return w * s, (w * self.sign * s * (1.0 - s) / self.eps) * self.c

    def path_check(self, P: np.ndarray, times: np.ndarray) -> str | None:
        r"""None when the path :math:`m_n = \mathbb E g(\theta_{t_n})`, n = 0..N, reaches the level ℓ;
        otherwise a sentence with the closest approach.

        The range check at setup only says that *some* density could cross ℓ. A schedule whose path
        stays on one side the whole run makes the cost :math:`\approx T\sigma(\pm\delta/\varepsilon)`
        (δ the closest approach) with a gradient of relative size :math:`e^{-\delta/\varepsilon}`:
        the time it is meant to measure is 0 or T, not a crossing time.
        """
        m = P @ self.c
        side = np.sign(m - self.level)
        if np.any(side <= 0) and np.any(side >= 0):
            return None
        k = int(np.argmin(np.abs(m - self.level)))
        delta = float(abs(m[k] - self.level))
        where = "above" if side[0] > 0 else "below"
        return (f"{self.name}: E[{self.g}] stays {where} the level {self.level:g} for the whole run "
                f"(t in [0, {times[-1]:g}]); closest approach {m[k]:.6g} at t = {times[k]:g}, a distance "
                f"{delta:.3g} = {delta / self.eps:.3g} eps. The cost is then about "
                f"{'T' if (where == 'above') == (self.sign > 0) else '0'} for this schedule and its "
                "gradient is exponentially small: it measures no crossing. Move the level into the "
                "path's range, widen eps, or start from a schedule that crosses it")

    def exact(self, P: np.ndarray) -> float:
        r"""The unsmoothed right-endpoint sum :math:`\sum_n dt\,H(s(m_n - \ell))` (unweighted) of a
        trajectory's densities ``P`` (N+1 × n): the time the surrogate approximates."""
        m = P[1:] @ self.c
        return float(self.dt * np.count_nonzero(self.sign * (m - self.level) > 0))


class ControlCost:
    """A cost of the controls alone: value and gradients in u and B."""

    name = "control"
    needs = "u"
    weight = 1.0

    def value_grad(self, u: np.ndarray, B: np.ndarray, width: float) -> tuple[float, np.ndarray, np.ndarray]:
        raise NotImplementedError  # pragma: no cover


class SampleCost(ControlCost):
    r""":math:`w\int_0^T B\,dt = w\,\Delta\tau\sum_j B_j`."""

    needs = "B"

    def __init__(self, *, weight: float = 1.0, name: str = "∫B dt"):
        self.weight = float(weight)
        self.name = name

    def value_grad(self, u, B, width):
        return self.weight * width * float(B.sum()), np.zeros_like(u), np.full_like(B, self.weight * width)


class Smoothness(ControlCost):
    r""":math:`\tfrac w2\sum_j (c_{j+1} - c_j)^2/\Delta\tau` of the control ``of`` ("u" or "B")."""

    def __init__(self, *, weight: float = 1.0, of: str = "u", name: str | None = None):
        if of not in ("u", "B"):
            raise InputError(f"Smoothness: of={of!r} must be 'u' or 'B'")
        self.weight = float(weight)
        self.needs = of
        self.name = name or f"smoothness of {of}"

    def value_grad(self, u, B, width):
        c = u if self.needs == "u" else B
        d = np.diff(c)
        val = 0.5 * self.weight * float(d @ d) / width
        g = np.zeros_like(c)
        g[:-1] -= self.weight * d / width
        g[1:] += self.weight * d / width
        zero = np.zeros_like(c)
        return (val, g, zero) if self.needs == "u" else (val, zero, g)
