r"""Verification of a schedule on the real SGD: exact-SGD particles against the PDE's prediction.

A schedule on the control grid becomes per-step inputs of the exact recursion: step k (time
:math:`t_k = k\eta_{\max}`) uses the interval holding :math:`t_k + \eta_{\max}/2`, with learning rate
:math:`\eta_{\max}u_j` (``lr_schedule=``) and batch size :math:`B_j` rounded to a whole number
(``batch_schedule=``); :math:`T/\eta_{\max}` steps are run. The PDE's prediction is computed for the
schedule actually run (B rounded per interval). The objective's density terms that are
expectations (:class:`~symfp.control.objectives.ExpectedValue`, :class:`RegionMass`) are measured on
the particles as :math:`\frac1n\sum_i \sum_m w_m g_m(\theta_i)` with standard error
:math:`\mathrm{sd}/\sqrt n`; the PDE's prediction is the same combination of
:math:`\int g_m p^N`. :math:`z = (\text{particles} - \text{PDE})/\text{se}`: beyond the Monte Carlo
noise a difference is the modified equation's weak error (order 1: :math:`O(\eta_{\max})`) plus the
FE discretisation error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import sympy as sp

from ..errors import InputError
from .objectives import ExpectedValue
from .problem import ControlProblem


@dataclass(frozen=True)
class Verification:
    """One schedule checked on particles."""

    name: str
    predicted: float
    measured: float
    stderr: float
    n_particles: int
    steps: int

    @property
    def z(self) -> float:
        """(measured − predicted)/stderr."""
        return (self.measured - self.predicted) / self.stderr if self.stderr > 0 else float("inf")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "z": self.z}


def sample_initial(problem: ControlProblem, n: int, seed: int = 0) -> np.ndarray:
    r"""n samples of the FE initial density :math:`p^0` (1-D: exact inverse CDF of the P1 interpolant).

    Raises:
        InputError: in more than one dimension (pass ``init=`` to :func:`verify` instead).
    """
    ops = problem.ops
    if len(ops.state) != 1:
        raise InputError("sample_initial: only 1-D densities are sampled here; pass init= (a point, an "
                         "(n, d) array or sympy.stats variables, the same law as p0) to verify")
    x = ops.coordinates[:, 0]
    order = np.argsort(x)
    x, p = x[order], np.maximum(problem.p0[order], 0.0)
    h = np.diff(x)
    mass = h * (p[:-1] + p[1:]) / 2
    rng = np.random.default_rng(seed)
    cell = rng.choice(len(h), size=n, p=mass / mass.sum())
    p0, p1, hc = p[cell], p[cell + 1], h[cell]
    target = rng.random(n) * mass[cell]
    # F(s) = p0 s + (p1 − p0) s²/(2h) = target on [0, h]
    a = (p1 - p0) / (2 * hc)
    lin = np.abs(a) * hc < 1e-12 * np.maximum(p0, 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(lin, target / np.maximum(p0, 1e-300),
                     (-p0 + np.sqrt(np.maximum(p0**2 + 4 * a * target, 0.0))) / (2 * np.where(lin, 1.0, a)))
    return (x[cell] + np.clip(s, 0.0, hc)).reshape(n, 1)


def step_schedules(problem: ControlProblem, u: np.ndarray, B: np.ndarray | None = None) -> tuple:
    """Per-step learning rates and batch sizes of a grid schedule for the exact SGD."""
    eta = problem.ops.coefficients.eta_max
    T = problem.grid.t_end
    steps = int(round(T / eta))
    if abs(steps * eta - T) > 1e-9 * T:
        raise InputError(f"verify: T = {T:g} is not a whole number of SGD steps of η_max = {eta:g}; choose "
                         "t_end as a multiple of the model's lr")
    u = np.asarray(u, dtype=float)
    if np.any(u <= 0):
        raise InputError("verify: the schedule has u = 0 on some interval (learning rate 0): the exact SGD "
                         "needs η > 0; give u a positive lower bound")
    t = (np.arange(steps) + 0.5) * eta
    j = np.minimum((t / problem.grid.width).astype(int), problem.grid.n - 1)
    lrs = eta * u[j]
    Bs = None
    if B is not None and problem.ops.depends_on_B:
        Bs = np.maximum(np.round(np.asarray(B, dtype=float)[j]), 1).astype(int)
    return steps, lrs, Bs


def verify(model: Any, problem: ControlProblem, u: np.ndarray, B: np.ndarray | None = None, *,
           name: str = "schedule", n_particles: int = 100_000, seed: int = 0, init: Any = None,
           threads: int | None = None) -> Verification:
    """Run the exact SGD under the schedule and compare its objective with the PDE's prediction.

    Args:
        model: the :class:`symfp.SGD` the problem was built from.
        problem: the :class:`~symfp.control.problem.ControlProblem`.
        u, B: the schedule per control interval (B: None for the fixed value).
        n_particles, seed: particles.
        init: particle initial law; default: samples of the FE initial density (1-D).

    Raises:
        InputError: no expectation term in the objective (nothing to measure on particles).
    """
    terms = [t for t in problem.density_terms if isinstance(t, ExpectedValue)]
    if not terms:
        raise InputError("verify: the objective has no expectation term (ExpectedValue/RegionMass) to "
                         "measure on particles; tracking terms need the density itself")
    B = problem.B_fixed * np.ones(problem.grid.n) if B is None else np.asarray(B, dtype=float)
    if problem.ops.depends_on_B:
        B = np.maximum(np.round(B), 1.0)  # the particles run whole batch sizes: predict for those
    traj = problem.solve(u, B)
    predicted = float(sum(t.terminal(traj.final)[0] for t in terms))
    steps, lrs, Bs = step_schedules(problem, u, B)
    if init is None:
        init = sample_initial(problem, n_particles, seed)
    kw: dict[str, Any] = {"lr_schedule": lrs, "outputs": None, "seed": seed}
    if Bs is not None:
        kw["batch_schedule"] = Bs
    if threads is not None:
        kw["threads"] = threads
    cloud = model.simulate(n_particles=n_particles, steps=steps, init=init, **kw)
    state = problem.ops.state
    g = sp.Add(*[t.weight * sp.sympify(t.g) for t in terms])
    f = sp.lambdify(state, g, "numpy")
    th = np.asarray(cloud.theta, dtype=float)
    vals = np.broadcast_to(np.asarray(f(*th.T), dtype=float), (th.shape[0],))
    return Verification(name, predicted, float(vals.mean()), float(vals.std(ddof=1) / np.sqrt(len(vals))),
                        int(th.shape[0]), steps)
