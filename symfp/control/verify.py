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

import math
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
    r"""n exact samples of the FE initial density :math:`p^0_h` (the P1 interpolant), in any dimension.

    :math:`p^0_h` is linear on each simplex :math:`T` (vertices :math:`x_0..x_d`, nodal values
    :math:`p_0..p_d \ge 0`): in barycentric coordinates λ, :math:`p = \sum_i p_i\lambda_i`. So

    1. a cell is drawn with probability :math:`|T|\bar p_T/\int p^0_h` (:math:`\bar p_T` the mean of its
       nodal values: the exact mass of a linear function on a simplex);
    2. a vertex i of it with probability :math:`p_i/\sum_k p_k` — since
       :math:`\int_T\lambda_i = |T|/(d+1)` for every i, :math:`p|_T` is that mixture of the densities
       :math:`\propto\lambda_i`;
    3. λ from the density :math:`\propto\lambda_i` on the simplex, which is Dirichlet(α) with
       :math:`\alpha_i = 2`, the other :math:`\alpha_k = 1` (normalised Gamma(α) draws), and
       :math:`\theta = \sum_k\lambda_kx_k`.

    The samples have exactly the law :math:`p^0_h/\int p^0_h` that the PDE starts from: no sampling
    error beyond the Monte Carlo one (sample moments are within their standard errors of the FE moments
    :math:`\int\theta\,p^0_h`, ...). Against the formula's own law the difference is the
    interpolation's O(h²) and the mass outside the mesh, as for the PDE. Negative nodal values
    (none for an interpolant of a density) are clipped to 0.
    """
    ops = problem.ops
    X = np.asarray(ops.coordinates, dtype=float)
    cells = np.asarray(ops.cells)
    d = X.shape[1]
    p = np.maximum(np.asarray(problem.p0, dtype=float), 0.0)
    v = X[cells]  # (n_cells, d + 1, d)
    vol = np.abs(np.linalg.det(v[:, 1:, :] - v[:, :1, :])) / math.factorial(d)
    pc = p[cells]  # (n_cells, d + 1)
    mass = vol * pc.mean(axis=1)
    if not mass.sum() > 0:
        raise InputError("sample_initial: the FE initial density has no mass on the mesh")
    rng = np.random.default_rng(seed)
    cell = rng.choice(len(cells), size=n, p=mass / mass.sum())
    w = pc[cell]
    cum = np.cumsum(w, axis=1)
    vertex = np.minimum((cum < rng.random(n)[:, None] * cum[:, -1:]).sum(axis=1), d)
    alpha = np.ones((n, d + 1))
    alpha[np.arange(n), vertex] = 2.0
    lam = rng.standard_gamma(alpha)
    lam /= lam.sum(axis=1, keepdims=True)
    return np.einsum("nk,nkd->nd", lam, v[cell])


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
        init: particle initial law; default: exact samples of the FE initial density
            (:func:`sample_initial`, any dimension).

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
