r"""The optimal batch-size schedule under a sample budget: exponential batch growth, in closed form.

f = aθ²/2 with gradient noise Σ per sample, u = 1, order-1 SME D = ηΣ/(2B): m = E f obeys
dm/dt = −2am + aηΣ/(2B), so m(T) = e^{−2aT}m₀ + (aηΣ/2)∫₀ᵀ e^{−2a(T−t)}/B(t) dt. Minimising over B > 0
with ∫₀ᵀ B dt = S (Lagrange: e^{−2a(T−t)}/B² = const) gives B*(t) = C e^{at}, C = aS/(e^{aT} − 1):
the batch grows exponentially at the rate a; and m*(T) = e^{−2aT}m₀ + ηΣ(1 − e^{−aT})²/(2aS).
More samples always help, so the budget is active.

The schedule found is then run as exact SGD (B rounded per interval) against the exact moment law.

Errors: as for Li–Tai–E (test_li_tai_e.py), J and B converge as O(Δτ²) with h = Δτ/20, dt = Δτ/10
(the optimal constant on an interval is the interval average of B* to O(Δτ²)). Measured relative J
errors 2.2e-3 (Δτ = 0.2) and 5.4e-4 (Δτ = 0.1), ratio 4.0; tolerances 0.08 Δτ² (J) and 0.01 Δτ² (B).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.control import objectives as ob
from symfp.control.operators import operator_parts
from symfp.control.optimise import optimise
from symfp.control.problem import ControlProblem

pytestmark = [pytest.mark.fem, pytest.mark.torch]

th, xi = sp.symbols("theta xi")
A, ETA, SIGMA, S0, T, S = 1.0, 0.1, 1.0, 0.3, 2.0, 20.0
C = A * S / (np.exp(A * T) - 1)
M_STAR = np.exp(-2 * A * T) * A * S0**2 / 2 + ETA * SIGMA * (1 - np.exp(-A * T)) ** 2 / (2 * A * S)


def test_exponential_batch_growth_is_optimal():
    model = symfp.SGD(loss=A * th**2 / 2 + xi * th, params=[th],
                      data=symfp.Population({xi: sp.stats.Normal("X", 0, np.sqrt(SIGMA))}), lr=ETA)
    errs, berrs = [], []
    for n in (10, 20):
        width = T / n
        # [-2, 2] holds N(0, 0.3²) to 6.7σ; the final σ ≈ 0.073 spans 7 cells of h = width/20
        ops = operator_parts(model, symfp.mesh.box([(-2, 2)], cells=int(round(4 / (width / 20)))))
        pr = ControlProblem(ops, sp.exp(-th**2 / (2 * S0**2)), t_end=T, dt=width / 10, n_controls=n,
                            controls=("B",), B_bounds=(1.0, 1000.0),
                            objective=[ob.ExpectedValue(A * th**2 / 2)])
        res = optimise(pr, pr.pack(B=S / T), budget={"B": S}, progress=False)
        assert res.converged, res.summary
        used, allowed = res.budgets["B"]
        assert abs(used - allowed) <= 1e-5 * allowed
        e = pr.grid.edges
        b_avg = C * (np.exp(A * e[1:]) - np.exp(A * e[:-1])) / (A * width)
        rel = abs(res.value - M_STAR) / M_STAR
        berr = np.abs(res.B / b_avg - 1).max()
        assert rel <= 0.08 * width**2, (n, rel)
        assert berr <= 0.01 * width**2, (n, berr)
        errs.append(rel)
        berrs.append(berr)
    assert errs[0] / errs[1] >= 3 and berrs[0] / berrs[1] >= 3, (errs, berrs)
    # the exact SGD under the (rounded) batch schedule, 20 steps: E θ²_{k+1} = (1 − ηa)²E θ²_k + η²Σ/B_k
    from symfp.control.verify import step_schedules, verify

    v = verify(model, pr, res.u, res.B, name="exponential B", n_particles=200_000, seed=2)
    _, lrs, Bs = step_schedules(pr, res.u, res.B)
    assert Bs is not None and Bs[0] < Bs[-1]
    m2 = float(ops.load(th**2) @ pr.p0)
    for lr, b in zip(lrs, Bs, strict=True):
        m2 = (1 - lr * A) ** 2 * m2 + lr**2 * SIGMA / b
    assert abs(v.measured - A * m2 / 2) < 4 * v.stderr, (v, A * m2 / 2)
    # the PDE (order-1 SME) for the same rounded schedule: weak error O(η), relative ≤ ηa
    assert abs(v.predicted - A * m2 / 2) <= ETA * A * A * m2 / 2
