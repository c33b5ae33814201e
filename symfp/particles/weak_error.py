r"""Weak error of the stochastic modified equations against the exact recursion.

For each learning rate η, with K = T/η steps,

.. math:: e_p(\eta) = \big|\mathbb E\,\varphi(\theta_K) - \mathbb E\,\varphi(X^{(p)}_T)\big|,

where θ is the exact recursion (particles) and :math:`X^{(p)}` the order-p SME (particles with the weak
order-2 scheme at step η/``substeps``, so its own bias is O((η/substeps)²)). Theory (Li, Tai, E):
:math:`e_p = O(\eta^p)`; the slopes are least-squares fits of log e against log η. Antithetic pairs are
used by default: for dynamics linear in the noise they remove the Monte Carlo noise from the means.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from ..errors import InputError
from .recursion import simulate_recursion
from .sde import simulate_sde
from .statistics import mean_stderr


@dataclass
class WeakErrorResult:
    """Weak errors per order and learning rate, with standard errors and fitted slopes."""

    lrs: np.ndarray
    recursion: np.ndarray
    sde: dict[int, np.ndarray]
    errors: dict[int, np.ndarray]
    stderr: dict[int, np.ndarray]
    slopes: dict[int, float]

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dictionary (JSON-ready)."""
        return {
            "lrs": self.lrs.tolist(),
            "recursion": self.recursion.tolist(),
            "sde": {p: v.tolist() for p, v in self.sde.items()},
            "errors": {p: v.tolist() for p, v in self.errors.items()},
            "stderr": {p: v.tolist() for p, v in self.stderr.items()},
            "slopes": dict(self.slopes),
        }

    def __str__(self) -> str:
        orders = sorted(self.errors)
        head = f"{'lr':>10} {'E phi (recursion)':>18} " + " ".join(
            f"{'err SDE' + str(p):>12} {'± se':>9}" for p in orders
        )
        lines = ["weak error of the modified equations vs the exact recursion", head]
        for i, lr in enumerate(self.lrs):
            row = " ".join(f"{self.errors[p][i]:12.4e} {self.stderr[p][i]:9.1e}" for p in orders)
            lines.append(f"{lr:10.4g} {self.recursion[i]:18.8g} {row}")
        lines.append("fitted slopes: " + ", ".join(f"order {p}: {self.slopes[p]:.3f}" for p in orders))
        return "\n".join(lines)


def _model_at(model: Any, lr: float) -> Any:
    if callable(model) and not hasattr(model, "recursion"):
        return model(lr)
    eta = getattr(model, "lr", None)
    if eta is None or not isinstance(sp.sympify(eta), sp.Symbol):
        raise InputError(
            "weak_error: the model's learning rate must be a symbol (e.g. lr=sp.Symbol('eta', "
            "positive=True)) or pass a function lr -> model"
        )
    return model.subs({eta: lr})


def weak_error(
    model: Any,
    observable: Any,
    lrs: Sequence[float],
    t_end: float,
    init: Any = None,
    orders: Sequence[int] = (1, 2),
    n_particles: int = 20_000,
    substeps: int = 10,
    seed: int = 0,
    antithetic: bool = True,
    device: Any = "auto",
    comm: Any = None,
) -> WeakErrorResult:
    """Weak errors of the order-p SMEs against the exact recursion, and their fitted slopes.

    Args:
        model: an SGD model whose ``lr`` is a symbol, or a callable ``lr -> model``.
        observable: a SymPy expression in the state, or a callable on an (n, d) numpy array.
        lrs: learning rates η (t_end/η is rounded to an integer number of steps).
        t_end: the time T = Kη.
        init: initial point (default: the origin).
        orders: SME orders to compare.
        n_particles: particles per simulation.
        substeps: SDE steps per η (weak order-2 scheme).
        seed, antithetic, device, comm: as in :func:`symfp.particles.sde.simulate_sde`.
    """
    lrs_arr = np.asarray(lrs, dtype=float)
    if lrs_arr.ndim != 1 or len(lrs_arr) < 2 or np.any(lrs_arr <= 0):
        raise InputError(f"weak_error: give at least two positive learning rates, got {lrs!r}")
    rec_vals, sde_vals, errs, ses = (
        [],
        {p: [] for p in orders},
        {p: [] for p in orders},
        {p: [] for p in orders},
    )
    for i, lr in enumerate(lrs_arr):
        m = _model_at(model, float(lr))
        state = tuple(m.state)
        phi = _observable(observable, state)
        x0 = np.zeros(len(state)) if init is None else init
        steps = max(1, int(round(t_end / lr)))
        rc = simulate_recursion(
            m,
            n_particles,
            steps,
            x0,
            seed=seed + 1000 * i,
            antithetic=antithetic,
            device=device,
            comm=comm,
            outputs=2,
        )
        r_mean, r_se = mean_stderr(phi(rc.theta)[:, None], antithetic, rc.comm)
        rec_vals.append(r_mean[0])
        for p in orders:
            sde = m.sme(order=p)
            sc = simulate_sde(
                sde,
                n_particles,
                steps * lr,
                lr / substeps,
                x0,
                method="weak2",
                seed=seed + 1000 * i + p,
                antithetic=antithetic,
                device=device,
                comm=comm,
                outputs=2,
            )
            s_mean, s_se = mean_stderr(phi(sc.theta)[:, None], antithetic, sc.comm)
            sde_vals[p].append(s_mean[0])
            errs[p].append(abs(s_mean[0] - r_mean[0]))
            ses[p].append(float(np.hypot(s_se[0], r_se[0])))
    errors = {p: np.array(v) for p, v in errs.items()}
    slopes = {
        p: float(np.polyfit(np.log(lrs_arr), np.log(np.maximum(e, 1e-300)), 1)[0]) for p, e in errors.items()
    }
    return WeakErrorResult(
        lrs_arr,
        np.array(rec_vals),
        {p: np.array(v) for p, v in sde_vals.items()},
        errors,
        {p: np.array(v) for p, v in ses.items()},
        slopes,
    )


def _observable(observable: Any, state: tuple) -> Callable[[np.ndarray], np.ndarray]:
    if callable(observable) and not isinstance(observable, sp.Basic):
        return lambda th: np.asarray(observable(th), dtype=float).reshape(len(th))
    expr = sp.sympify(observable)
    extra = expr.free_symbols - set(state)
    names = {str(s): s for s in state}
    expr = expr.xreplace({s: names[str(s)] for s in extra if str(s) in names})
    if expr.free_symbols - set(state):
        raise InputError(f"weak_error: the observable {observable} uses symbols outside the state {state}")
    f = sp.lambdify(state, expr, "numpy")
    return lambda th: np.broadcast_to(np.asarray(f(*th.T), dtype=float), (len(th),))
