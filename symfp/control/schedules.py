r"""Controls on a grid: :math:`\eta(t) = \eta_{\max}u(t)` and :math:`B(t)`, piecewise constant, and families.

A :class:`ControlGrid` splits :math:`[0, T]` into ``n`` equal intervals :math:`I_j` of width
:math:`\Delta\tau = T/n`; a control is one value per interval. The families below give such values
(the value at each interval's midpoint):

* :func:`constant` — :math:`u = c`;
* :func:`warmup_stable_decay` — linear warm-up from ``start`` to ``peak`` over a fraction ``warmup`` of
  T, flat, then linear decay to ``end`` over the last fraction ``decay``;
* :func:`cosine` — :math:`u = \text{lo} + (\text{hi} - \text{lo})\,(1 + \cos(\pi t/T))/2`;
* :func:`inverse_time` — :math:`u = \text{hi}/(1 + a\,t)`;
* :func:`exponential` — :math:`B = B_0 e^{rt}` (batch growth).

:func:`match_budget` solves for the one free parameter of a family so that
:math:`\int_0^T u\,dt` (or :math:`\int B\,dt`) equals a budget, raising :class:`~symfp.errors.InputError`
when no member of the family inside the bounds meets it; :func:`match_batch_budget` does the same
for batch schedules (constant, exponential growth at a given rate) and :math:`\int B\,dt`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class ControlGrid:
    """``n`` equal intervals of :math:`[0, T]`."""

    t_end: float
    n: int

    def __post_init__(self) -> None:
        if not (np.isfinite(self.t_end) and self.t_end > 0):
            raise InputError(f"ControlGrid: t_end = {self.t_end!r} must be a positive number")
        if not isinstance(self.n, (int, np.integer)) or self.n < 1:
            raise InputError(f"ControlGrid: n = {self.n!r} intervals must be a positive integer")

    @property
    def width(self) -> float:
        """:math:`\\Delta\\tau = T/n`."""
        return self.t_end / self.n

    @property
    def edges(self) -> np.ndarray:
        """The n + 1 interval edges."""
        return np.linspace(0.0, self.t_end, self.n + 1)

    @property
    def midpoints(self) -> np.ndarray:
        """The n interval midpoints."""
        e = self.edges
        return 0.5 * (e[1:] + e[:-1])

    def integral(self, values: np.ndarray) -> float:
        r""":math:`\int_0^T c\,dt = \Delta\tau\sum_j c_j`."""
        return float(self.width * np.sum(values))

    def values(self, f: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """A function of time at the midpoints."""
        return np.broadcast_to(np.asarray(f(self.midpoints), dtype=float), (self.n,)).copy()


def check_bounds(lo: float, hi: float, name: str) -> tuple[float, float]:
    """Validated bounds (finite, lo ≤ hi); raises InputError naming the control."""
    try:
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        raise InputError(f"bounds of {name}: ({lo!r}, {hi!r}) must be numbers") from None
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise InputError(f"bounds of {name}: ({lo}, {hi}) must be finite")
    if lo > hi:
        raise InputError(f"bounds of {name}: lower bound {lo} > upper bound {hi}; swap them or give lo <= hi")
    return lo, hi


def constant(grid: ControlGrid, value: float) -> np.ndarray:
    """:math:`u = c` on every interval."""
    return np.full(grid.n, float(value))


def warmup_stable_decay(grid: ControlGrid, *, peak: float = 1.0, warmup: float = 0.1, decay: float = 0.2,
                        start: float = 0.0, end: float = 0.0) -> np.ndarray:
    """Linear warm-up (fraction ``warmup`` of T), plateau at ``peak``, linear decay (last ``decay``)."""
    if not (0 <= warmup and 0 <= decay and warmup + decay <= 1):
        raise InputError(f"warmup_stable_decay: fractions warmup={warmup}, decay={decay} must be >= 0 with "
                         "warmup + decay <= 1")
    s = grid.midpoints / grid.t_end
    out = np.full(grid.n, float(peak))
    if warmup > 0:
        w = s < warmup
        out[w] = start + (peak - start) * s[w] / warmup
    if decay > 0:
        d = s > 1 - decay
        out[d] = peak + (end - peak) * (s[d] - (1 - decay)) / decay
    return out


def cosine(grid: ControlGrid, *, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    r""":math:`\text{lo} + (\text{hi}-\text{lo})(1 + \cos(\pi t/T))/2`."""
    return lo + (hi - lo) * 0.5 * (1 + np.cos(np.pi * grid.midpoints / grid.t_end))


def inverse_time(grid: ControlGrid, *, a: float, hi: float = 1.0) -> np.ndarray:
    r""":math:`\text{hi}/(1 + a t)`, :math:`a \ge 0`."""
    if a < 0:
        raise InputError(f"inverse_time: a = {a} must be >= 0")
    return hi / (1 + a * grid.midpoints)


def exponential(grid: ControlGrid, *, start: float, rate: float) -> np.ndarray:
    r""":math:`B_0 e^{rt}` (exponential batch growth)."""
    if start <= 0:
        raise InputError(f"exponential: start = {start} must be > 0")
    return start * np.exp(rate * grid.midpoints)


def match_budget(family: str, grid: ControlGrid, budget: float, *, lo: float, hi: float) -> np.ndarray:
    r"""The member of ``family`` ("constant", "cosine", "inverse_time") with :math:`\int u\,dt` = budget.

    The free parameter: the value (constant), the floor ``lo`` of a cosine from ``hi`` (then, if the
    budget is below the cosine to 0, the peak), the rate ``a`` of :math:`\text{hi}/(1+at)`.

    Raises:
        InputError: no member within [lo, hi] has this budget (the message gives the reachable range).
    """
    from scipy.optimize import brentq

    lo, hi = check_bounds(lo, hi, "u")
    T = grid.t_end
    if not (lo * T - 1e-12 <= budget <= hi * T + 1e-12):
        raise InputError(f"match_budget: budget ∫u dt = {budget:g} cannot be met by any schedule within "
                         f"[{lo:g}, {hi:g}] over T = {T:g} (reachable: [{lo * T:g}, {hi * T:g}]); change the "
                         "budget or the bounds")
    if family == "constant":
        return constant(grid, np.clip(budget / T, lo, hi))
    if family == "cosine":
        full = grid.integral(cosine(grid, lo=lo, hi=hi))
        if budget >= full:
            f = lambda c: grid.integral(cosine(grid, lo=c, hi=hi)) - budget  # noqa: E731
            c = brentq(f, lo, hi) if f(hi) * f(lo) < 0 else hi
            return cosine(grid, lo=c, hi=hi)
        f = lambda c: grid.integral(cosine(grid, lo=lo, hi=c)) - budget  # noqa: E731
        return cosine(grid, lo=lo, hi=brentq(f, lo, hi) if f(lo) < 0 else lo)
    if family == "inverse_time":
        if budget >= grid.integral(inverse_time(grid, a=0.0, hi=hi)):
            return constant(grid, hi)
        f = lambda a: grid.integral(np.maximum(inverse_time(grid, a=a, hi=hi), lo)) - budget  # noqa: E731
        a_hi = 1.0
        while f(a_hi) > 0 and a_hi < 1e12:
            a_hi *= 4
        if f(a_hi) > 0:
            raise InputError(f"match_budget: no 1/(1+at) schedule within [{lo:g}, {hi:g}] has "
                             f"budget {budget:g}")
        return np.maximum(inverse_time(grid, a=brentq(f, 0.0, a_hi, xtol=1e-14), hi=hi), lo)
    raise InputError(f"match_budget: unknown family {family!r}; use constant, cosine or inverse_time")


def match_batch_budget(family: str, grid: ControlGrid, budget: float, *, lo: float, hi: float,
                       rate: float = 0.0) -> np.ndarray:
    r"""The batch schedule of ``family`` ("constant", "exponential") with :math:`\int B\,dt` = budget.

    ``exponential``: :math:`B = \min(\max(B_0e^{rt}, \text{lo}), \text{hi})` at the given rate r, with
    :math:`B_0` solved for (the clipped integral increases with :math:`B_0`); ``constant``: r = 0.

    Raises:
        InputError: the budget is outside :math:`[\text{lo}\,T, \text{hi}\,T]`; an unknown family.
    """
    from scipy.optimize import brentq

    lo, hi = check_bounds(lo, hi, "B")
    T = grid.t_end
    if not (lo * T * (1 - 1e-12) <= budget <= hi * T * (1 + 1e-12)):
        raise InputError(f"match_batch_budget: budget ∫B dt = {budget:g} cannot be met by any schedule "
                         f"within [{lo:g}, {hi:g}] over T = {T:g} (reachable: [{lo * T:g}, {hi * T:g}]); "
                         "change the budget or the bounds")
    if family not in ("constant", "exponential"):
        raise InputError(f"match_batch_budget: unknown family {family!r}; use constant or exponential")
    r = 0.0 if family == "constant" else float(rate)
    shape = np.exp(r * (grid.midpoints - grid.midpoints.mean()))
    if budget >= hi * T * (1 - 1e-12):
        return np.full(grid.n, hi)
    if budget <= lo * T * (1 + 1e-12):
        return np.full(grid.n, lo)

    def used(log_b0: float) -> float:
        return grid.integral(np.clip(np.exp(log_b0) * shape, lo, hi)) - budget

    a, b = np.log(lo / shape.max()), np.log(hi / shape.min())
    return np.clip(np.exp(brentq(used, a, b, xtol=1e-14)) * shape, lo, hi)
