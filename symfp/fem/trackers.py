r"""Run monitors of a time loop as small objects with ``start`` / ``step`` / ``finish``.

In the spirit of py-pde's trackers: mass, positivity, the density at the wall, progress, observables
and stored snapshots are not options woven into the loop but trackers given to :func:`run`. Each
sees a :class:`RunState` (step number, time, the unknown and the nodal density) after every step;
``every`` (steps) says when an *output* tracker acts (always at step 0 and at the last step).

- :class:`MassTracker` — relative change of :math:`\sum_i w_i u_i` (the conserved discrete mass)
  above ``tol`` raises :class:`~symfp.errors.SolverError` naming the step (skipped when absorbing);
- :class:`PositivityTracker` — a nodal density below ``-tol × max p`` raises SolverError with a hint;
- :class:`WallTracker` — records max p on the reflecting boundary / max p at outputs; above ``tol``
  a :class:`~symfp.fem.domain.DomainWarning` at the end;
- :class:`ProgressTracker` — a tqdm bar (runs of ``min_steps`` or more);
- :class:`ObservableTracker` — calls a recorder's ``record(t, p)`` at outputs;
- :class:`SnapshotTracker` — stores the nodal density at outputs (``keep="all"``) or at the end.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SolverError


@dataclass
class RunState:
    """What a tracker sees: step ``n`` of ``n_steps``, time ``t``, unknown ``u``, nodal density ``p``."""

    n: int
    t: float
    dt: float
    n_steps: int
    u: np.ndarray
    p: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


class Tracker:
    """Base class: ``every`` steps (None: each step), with ``start``/``step``/``finish`` hooks."""

    every: int | None = None

    def due(self, state: RunState) -> bool:
        """Whether this tracker acts at this step (output steps: every ``every``, and the last)."""
        return self.every is None or state.n % self.every == 0 or state.n == state.n_steps

    def start(self, state: RunState) -> None:
        """Called once with the initial state (n = 0)."""

    def step(self, state: RunState) -> None:
        """Called after each step when :meth:`due`."""

    def finish(self, state: RunState) -> None:
        """Called once after the last step (also when the loop stopped on an error: see :func:`run`)."""


class MassTracker(Tracker):
    """SolverError when :math:`|\\sum w u - m_0| > \\mathrm{tol}\\,|m_0|` (off when ``enabled`` is False)."""

    def __init__(self, weights: np.ndarray, *, tol: float, enabled: bool = True,
                 allsum: Callable[[float], float] | None = None, hint: str = ""):
        self.weights, self.tol, self.enabled = np.asarray(weights), float(tol), bool(enabled)
        self.allsum = allsum or (lambda v: v)
        self.hint = hint or ("use a direct solver or tighten the solver tolerance; if the drift is round-off "
                             "(~1e-14 per step), raise mass_tol")
        self.mass0 = float("nan")

    def mass(self, state: RunState) -> float:
        return float(self.allsum(float(self.weights @ state.u[: len(self.weights)])))

    def start(self, state: RunState) -> None:
        self.mass0 = self.mass(state)

    def step(self, state: RunState) -> None:
        if not self.enabled:
            return
        m, m0 = self.mass(state), self.mass0
        if abs(m - m0) > self.tol * abs(m0):
            raise SolverError(
                f"solve: mass drifted from {m0:.15g} to {m:.15g} (relative {abs(m - m0) / abs(m0):.2e} > "
                f"mass_tol {self.tol:g}) at time step {state.n} (t = {state.t:g}) with no absorbing boundary "
                "part, where the zero-flux scheme conserves mass up to the linear-solver residual; "
                f"{self.hint}")


class PositivityTracker(Tracker):
    """SolverError when :math:`\\min p < -\\mathrm{tol}\\max p` (names the step and what to try)."""

    def __init__(self, *, tol: float, method: str,
                 minmax: Callable[[np.ndarray], tuple[float, float]] | None = None):
        self.tol, self.method = float(tol), method
        self.minmax = minmax or (lambda p: (float(p.min()), float(p.max())))

    def step(self, state: RunState) -> None:
        pmin, pmax = self.minmax(state.p)
        if pmin < -self.tol * pmax:
            hint = ("use stabilisation='fct' (positivity preserving, second order where smooth)"
                    if self.method not in ("upwind", "fct") else "use scheme='euler', or a smaller dt")
            raise SolverError(
                f"solve: negative density {pmin:.3e} (max {pmax:.3e}, relative {-pmin / pmax:.2e} > "
                f"negative_tol {self.tol:g}) at time step {state.n} (t = {state.t:g}) with stabilisation "
                f"'{self.method}'; {hint}, refine the mesh, or raise negative_tol")


class WallTracker(Tracker):
    """Largest density on the reflecting wall relative to the largest density, at output times."""

    def __init__(self, wall: np.ndarray, *, tol: float, every: int,
                 allmax: Callable[[float], float] | None = None, stacklevel: int = 4):
        self.wall, self.tol, self.every = np.asarray(wall, dtype=np.int64), float(tol), every
        self.stacklevel = stacklevel  # of the DomainWarning: 4 is the caller of a solve that calls run()
        self.allmax = allmax or (lambda v: v)
        self.ratios: list[float] = []
        self.times: list[float] = []

    def _record(self, state: RunState) -> None:
        p = state.p
        on_wall = self.allmax(max(float(p[self.wall].max()), 0.0) if len(self.wall) else 0.0)
        top = self.allmax(float(p.max()) if len(p) else 0.0)
        self.ratios.append(on_wall / top if top > 0 else 0.0)
        self.times.append(state.t)

    def start(self, state: RunState) -> None:
        self._record(state)

    def step(self, state: RunState) -> None:
        self._record(state)

    def finish(self, state: RunState) -> None:
        from .domain import DomainWarning

        r = np.array(self.ratios)
        if len(r) and r.max() > self.tol:
            i = int(np.argmax(r > self.tol))
            warnings.warn(DomainWarning(
                f"solve: probability mass reached the wall of the domain: the density on the reflecting "
                f"boundary is {r.max():.2e} of its maximum (> wall_tol {self.tol:g}; first at t = "
                f"{self.times[i]:g}), so the zero-flux wall changes the law. Use a larger domain "
                "(mesh='auto' sizes one from p0 and the stationary law) or raise wall_tol; see "
                "observables['wall']"),
                stacklevel=self.stacklevel)


class ProgressTracker(Tracker):
    """A tqdm progress bar for runs of ``min_steps`` steps or more (rank 0 only: ``show``)."""

    def __init__(self, *, show: bool = True, min_steps: int = 200):
        self.show, self.min_steps = show, min_steps
        self.bar = None

    def start(self, state: RunState) -> None:
        if self.show and state.n_steps >= self.min_steps:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.n_steps, desc="Fokker-Planck", unit="step", leave=False)

    def step(self, state: RunState) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def finish(self, state: RunState) -> None:
        if self.bar is not None:
            self.bar.close()


class ObservableTracker(Tracker):
    """Calls ``recorder.record(t, u, p)`` at step 0 and at every output step."""

    def __init__(self, recorder: Any, *, every: int):
        self.recorder, self.every = recorder, every
        self.times: list[float] = []

    def start(self, state: RunState) -> None:
        self.step(state)

    def step(self, state: RunState) -> None:
        self.recorder.record(state.t, state.u, state.p)
        self.times.append(state.t)


class SnapshotTracker(Tracker):
    """Nodal densities ``{t: p}`` at output times (``keep="all"``) or at the final time only."""

    def __init__(self, *, keep: str, every: int):
        self.keep, self.every = keep, every
        self.snapshots: dict[float, np.ndarray] = {}

    def start(self, state: RunState) -> None:
        if self.keep == "all" or state.n_steps == 0:
            self.snapshots[state.t] = state.p.copy()

    def step(self, state: RunState) -> None:
        if self.keep == "all" or state.n == state.n_steps:
            self.snapshots[state.t] = state.p.copy()


def run(stepper: Any, u0: np.ndarray, *, n_steps: int, dt: float, trackers: Sequence[Tracker],
        density: Callable[[np.ndarray], np.ndarray] | None = None,
        before_step: Callable[[int], None] | None = None,
        timings: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The time loop: ``u ← stepper.step(u, u_prev, n)`` for n = 1..n_steps, trackers after each step.

    Args:
        stepper: an object with ``step(u, u_prev, n)`` (:mod:`symfp.fem.schemes`).
        u0: the initial unknown.
        n_steps, dt: steps and step size.
        trackers: the monitors (start at n = 0, step when due, finish at the end or on an error).
        density: unknown → nodal density (identity by default).
        before_step: called with n before each step (time-dependent operators).
        timings: if given, arrays ``step`` and ``output`` (seconds per step) are stored in it.

    Returns:
        The unknown at the final time.
    """
    import time

    dens = density or (lambda v: v)
    u, u_prev = np.asarray(u0, dtype=float), None
    state = RunState(0, 0.0, dt, n_steps, u, dens(u))
    for tr in trackers:
        tr.start(state)
    step_s, out_s = np.zeros(n_steps), np.zeros(n_steps)
    clock = time.perf_counter
    try:
        for n in range(1, n_steps + 1):
            t0 = clock()
            if before_step is not None:
                before_step(n)
            new = stepper.step(u, u_prev, n)
            u_prev, u = u, new
            state = RunState(n, n * dt, dt, n_steps, u, dens(u))
            t1 = clock()
            for tr in trackers:
                if tr.due(state):
                    tr.step(state)
            t2 = clock()
            step_s[n - 1], out_s[n - 1] = t2 - t0, t2 - t1
    finally:
        for tr in trackers:
            if isinstance(tr, ProgressTracker) or state.n == n_steps:
                tr.finish(state)
    if timings is not None:
        timings["step"], timings["output"] = step_s, out_s
    return u
