r"""PDE-guided training: the batch-size schedule that ends SGD in the wide minimum, under a sample budget.

The asymmetric double well of ``schedule_double_well.py`` (a narrow, deep minimum at θ = −1.5, a wide,
shallower one at θ = 1.5, a steep θ⁸ wall), now with the learning rate fixed (u = 1) and the batch
size B(t) as the control: the gradient noise of a batch of B samples has variance s²/B, so the
order-1 SME dθ = −f′(θ) dt + √(η s²/B(t)) dW has the temperature η s²/(2B(t)) — small batches are hot
and cheap, large ones cold and expensive. The budget is the number of samples drawn,
∫₀ᵀ B dt = S (in units of η: S/η samples per particle). SGD starts in the narrow minimum; the
objective is the mass at the bottom of the wide basin at T, P(0.8 < θ_T < 2.2). A constant batch
spends the samples evenly; exponential growth B₀e^{rt} (here with the best rate r for this problem,
found on the PDE) back-loads them; the PDE-optimal B(t) (SLSQP on the discrete adjoint gradient, the
budget an exact linear equality constraint) decides where they help. Each schedule is then run as exact SGD
(``batch_schedule=``, B rounded per interval) with particles: objective ± standard error against the
PDE's prediction for the same rounded schedule.

Runs on either FE backend (``backend = "auto"``: dolfinx when importable, else scikit-fem).
``symfp control derivations/schedule_batch_size.py --out results/schedule_batch_size``;
``python derivations/schedule_batch_size.py`` runs :func:`analyse` and writes the figure.
"""

import numpy as np
import sympy as sp
import sympy.stats

import symfp
from symfp.app.spec import size
from symfp.control.objectives import RegionMass

theta, xi = sp.symbols("theta xi", real=True)
R = sp.Rational
f = (-sp.exp(-(theta + R(3, 2)) ** 2 / (2 * R(3, 10) ** 2))
     - R(3, 4) * sp.exp(-(theta - R(3, 2)) ** 2 / (2 * R(6, 5) ** 2))
     + (theta / R(16, 5)) ** 8)
ETA, TEMPERATURE = 0.02, 1.0  # η, and the temperature η s²/2 of a batch of one
model = symfp.SGD(loss=f + xi * theta, params=[theta],
                  data=symfp.Population({xi: sympy.stats.Normal("xi", 0, sp.sqrt(2 * TEMPERATURE / ETA))}),
                  lr=ETA, batch_size=1)
order = 1
backend = "auto"

LARGE = size() == "large"
mesh = lambda: symfp.mesh.box([(-5.0, 5.0)], cells=(800 if LARGE else 400,))  # noqa: E731
p0 = sp.exp(-((theta + R(3, 2)) ** 2) / (2 * R(1, 5) ** 2))  # in the narrow minimum
t_end = 10.0
dt = 0.01 if LARGE else 0.02
SAMPLES = 40.0  # ∫B dt: a constant batch of 4 (2000 samples per particle over 500 steps)
WIDE = sp.And(theta > R(4, 5), theta < R(11, 5))
objective = [RegionMass(WIDE, weight=-1, name="-P[0.8 < θ_T < 2.2]")]
control = dict(n_controls=40 if LARGE else 20, controls=("B",), B_bounds=(1.0, 64.0), x0=SAMPLES / t_end,
               budget={"B": ("==", SAMPLES)}, scheme="cn")
compare = ("constant", "exponential")
particles = dict(n=100_000 if LARGE else 20_000, seed=0)
title = "PDE-optimal batch-size schedule under a sample budget: ending in the wide minimum"

NAME = "schedule_batch_size"


def analyse(size: str = "small", figure: str | None = None) -> dict:
    """Optimise, compare, verify on particles; returns the numbers (and saves the figure)."""
    from symfp.app.control import schedule_figure
    from symfp.control.study import schedule_study

    out = schedule_study(globals())
    if figure:
        schedule_figure(out, figure)
    s = out["summary"]
    pr = out["problem"]
    rows = {}
    for name, row in s["schedules"].items():
        v = row["particles"]
        rows[name] = {"pde": -row["objective"], "particles": -v["measured"], "stderr": v["stderr"],
                      "z": abs(v["z"]), "pde_rounded": -v["predicted"], "B_first": row["B"][0],
                      "B_last": row["B"][-1], "samples": pr.grid.integral(row["B"])}
    return {"converged": s["converged"], "iterations": s["iterations"], "budget": s["budget_B"],
            "projected_gradient": s["projected_gradient"], "rows": rows, "n_particles": particles["n"],
            "backend": pr.ops.backend, "B": s["schedules"]["optimal"]["B"], "undershoot": s["undershoot"],
            "summary": s["optimiser"]}


def readme_section(results: dict) -> str:
    """Markdown section of derivations/README.md, every number formatted from ``results``."""
    r = results["rows"]
    o = r["optimal"]
    e, c = r["exponential"], r["constant"]
    dc, sc = o["particles"] - c["particles"], float(np.hypot(o["stderr"], c["stderr"]))
    de, se = o["particles"] - e["particles"], float(np.hypot(o["stderr"], e["stderr"]))
    table = "\n".join(
        f"| {name} | {x['samples']:.2f} | {x['B_first']:.2f} → {x['B_last']:.2f} | {x['pde']:.4f} | "
        f"{x['pde_rounded']:.4f} | {x['particles']:.4f} ± {x['stderr']:.4f} | {x['z']:.1f} |"
        for name, x in r.items())
    return (
        "## PDE-optimal batch-size schedule under a sample budget (asymmetric double well)\n\n"
        f"![schedule batch size](figures/{NAME}.png)\n\n"
        "`schedule_batch_size.py`: the double well of the previous entry with the learning rate fixed and "
        "the batch size B(t) as the control: a batch of B samples has gradient-noise variance s²/B, so "
        "the temperature is ηs²/(2B) — small batches are hot and cheap, large ones cold and expensive. "
        f"Budget ∫B dt = {SAMPLES:g} (samples, in units of η); objective P(0.8 < θ_T < 2.2) at T = 10. "
        f"SLSQP on the discrete adjoint gradient ({results['iterations']} iterations, "
        f"{'converged' if results['converged'] else 'NOT converged'}, the budget an equality constraint, "
        f"{results['backend']} assembly) puts the samples late: B = {o['B_first']:.2f} at the start "
        f"(hot: escape the narrow well), {o['B_last']:.2f} at the end (cold: settle in the wide one). "
        "Against a constant batch and the best exponential growth B₀e^{rt} of the same budget, each run "
        f"as exact SGD with {results['n_particles']} particles under `batch_schedule=` (B rounded per "
        "interval; \"PDE, rounded\" is the prediction for the schedule run):\n\n"
        "| schedule | ∫B dt | B(0) → B(T) | PDE | PDE, rounded | exact SGD | \\|z\\| |\n"
        "|---|---|---|---|---|---|---|\n" + table + "\n\n"
        f"The optimum beats the constant batch by far (on the particles {dc:.3f} ± {sc:.3f}). "
        f"The best exponential growth comes within {o['pde'] - e['pde']:.3f} of the optimum on the PDE: the "
        "optimum is itself B = 1 and then a late ramp, close to a clipped exponential. The particles' "
        f"difference, {de:.4f} ± {se:.4f}, agrees with the PDE's but does not resolve it at "
        f"{results['n_particles']} particles.\n"
    )


if __name__ == "__main__":
    import json
    from pathlib import Path

    out = analyse(size(), figure=str(Path(__file__).parent / "figures" / f"{NAME}.png"))
    print(json.dumps(out, indent=1, default=str))
    print(readme_section(out))
