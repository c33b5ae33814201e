r"""Budgets of the controls: linear constraints :math:`\int_0^T c\,dt \;\{\le, =, \ge\}\; v` on u or B.

On the control grid (intervals of width :math:`\Delta\tau`) a budget is the linear constraint
:math:`a\cdot x \;\{\le, =, \ge\}\; v` with :math:`a = \Delta\tau` on the block of the optimisation
vector x that holds the control (u or B) and 0 elsewhere; its gradient is the constant row a (exact).
``budget=`` of :func:`~symfp.control.optimise.optimise` accepts

* ``{"u": U}`` — :math:`\int u\,dt \le U` (a number means "at most");
* ``{"B": ("==", S)}`` — an equality (or ``("<=", S)``, ``(">=", S)``);
* ``{"u": [("<=", 2.0), (">=", 1.0)]}`` — several on one control;
* a sequence of :class:`Budget`.

**Feasibility.** Every budget sums one control's block and the box bounds act per variable, so the
set of values :math:`\int c\,dt` that schedules inside the bounds reach is the interval
:math:`[\text{lo}_c T, \text{hi}_c T]`, and the budgets on c cut it further. The combination is
feasible exactly when, for every control, the largest lower limit (from the bounds and the "≥" and
"=" budgets) does not exceed the smallest upper limit (bounds, "≤", "="); :func:`budget_rows`
checks this before any solve and names the two limits that conflict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError

KINDS = ("<=", "==", ">=")


@dataclass(frozen=True)
class Budget:
    r"""One budget :math:`\int_0^T c\,dt` ``kind`` ``value`` on the control ``of`` ("u" or "B")."""

    of: str
    value: float
    kind: str = "<="

    def __post_init__(self) -> None:
        if self.of not in ("u", "B"):
            raise InputError(f"budget on {self.of!r}: the key must be 'u' (∫u dt) or 'B' (∫B dt)")
        if self.kind not in KINDS:
            raise InputError(f"budget on {self.of}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        try:
            v = float(self.value)
        except (TypeError, ValueError):
            raise InputError(f"budget on {self.of}: value {self.value!r} must be a number") from None
        if not np.isfinite(v):
            raise InputError(f"budget on {self.of}: value {self.value!r} must be finite")
        object.__setattr__(self, "value", v)

    @property
    def label(self) -> str:
        """E.g. ``∫u dt <= 2``."""
        return f"∫{self.of} dt {self.kind} {self.value:g}"

    def residual(self, used: float) -> float:
        """The violation (> 0 when the budget is not met): used − v, v − used or |used − v|."""
        if self.kind == "<=":
            return used - self.value
        if self.kind == ">=":
            return self.value - used
        return abs(used - self.value)


def parse_budgets(budget: Any) -> list[Budget]:
    """The budgets of a ``budget=`` argument (see the module docstring); [] for None.

    Raises:
        InputError: an entry that is neither a number, a (kind, value) pair, a list of them nor a Budget.
    """
    if budget is None:
        return []
    if isinstance(budget, Budget):
        return [budget]
    if isinstance(budget, Mapping):
        out = []
        for name, spec in budget.items():
            items = spec if isinstance(spec, list) else [spec]
            for item in items:
                if isinstance(item, Budget):
                    out.append(item)
                elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                    out.append(Budget(str(name), item[1], item[0]))
                elif isinstance(item, (int, float, np.integer, np.floating)) and not isinstance(item, bool):
                    out.append(Budget(str(name), float(item), "<="))
                else:
                    raise InputError(f"budget on {name!r}: {item!r} must be a number (at most), a pair "
                                     f"(kind, value) with kind in {', '.join(KINDS)}, or a list of them")
        return out
    if isinstance(budget, Sequence) and not isinstance(budget, str) and all(
            isinstance(b, Budget) for b in budget):
        return list(budget)
    raise InputError(f"budget={budget!r}: give a mapping such as {{'u': 2.0, 'B': ('==', 40.0)}} or a list "
                     "of symfp.control.budgets.Budget")


def budget_rows(problem: Any, budgets: Sequence[Budget]) -> list[tuple[Budget, np.ndarray]]:
    """Each budget with its row a (the constraint a·x kind value), after the feasibility check.

    Raises:
        InputError: a budget on a control that is not optimised (it would not depend on the controls);
            budgets that no schedule inside the bounds meets together (the message names the two
            limits that conflict and what to change).
    """
    n, w, T = problem.grid.n, problem.grid.width, problem.grid.t_end
    rows = []
    for b in budgets:
        if b.of not in problem.controls:
            raise InputError(f"optimise: a budget on {b.of} but {b.of} is not a control "
                             f"(controls={problem.controls}); it would not depend on the controls")
        k = problem.controls.index(b.of)
        a = np.zeros(problem.size)
        a[k * n:(k + 1) * n] = w
        rows.append((b, a))
    for c in problem.controls:
        lo, hi = problem.u_bounds if c == "u" else problem.B_bounds
        bound = f"the bounds {lo:g} <= {c} <= {hi:g} over T = {T:g}"
        lower = [(lo * T, f"{bound} (the smallest schedule uses {lo * T:g})")]
        upper = [(hi * T, f"{bound} (the largest schedule uses {hi * T:g})")]
        for b, _ in rows:
            if b.of != c:
                continue
            if b.kind in (">=", "=="):
                lower.append((b.value, f"the budget {b.label}"))
            if b.kind in ("<=", "=="):
                upper.append((b.value, f"the budget {b.label}"))
        need, why_lo = max(lower, key=lambda t: t[0])
        allow, why_hi = min(upper, key=lambda t: t[0])
        if need > allow + 1e-12 * max(abs(allow), abs(need), 1.0):
            raise InputError(
                f"optimise: the budgets on {c} cannot be met by any schedule within the bounds: {why_lo} "
                f"needs ∫{c} dt >= {need:g}, but {why_hi} allows at most {allow:g}. Relax one of "
                "these two (raise the budget, lower the bound of "
                f"{c}, or drop a budget)")
    return rows
