r"""PDE-guided training: the learning-rate schedule that ends SGD in the wide minimum.

SGD on an asymmetric double well: a narrow, deep minimum at θ = −1.5 (curvature ≈ 11) and a wide,
shallower one at θ = 1.5 (curvature ≈ 0.5), confined by a steep θ⁸ wall, with additive gradient
noise ξ ~ N(0, s²), B = 1. With η(t) = η_max u(t), the order-1 SME is dθ = −u f′(θ) dt +
u√(η_max s²) dW: the temperature u η_max s²/2 is set by the schedule. SGD starts in the narrow
minimum. The objective is the mass that ends at the bottom of the wide basin, P(0.8 < θ_T < 2.2):
a cold run stays in the narrow well, a hot one escapes but stays spread; nothing closed-form says
how to trade them. The discrete adjoint gives the gradient of this mass with respect to the 20
values of u on the control grid, L-BFGS-B finds the optimum in [0.05, 1], and the optimum is compared
with constant, cosine and 1/(1+at) schedules with the same budget ∫u dt, each also run as exact SGD
with particles (objective ± standard error, |z| against the PDE).

Run it: ``symfp control derivations/schedule_double_well.py --out results/schedule_double_well``;
``python derivations/schedule_double_well.py`` runs :func:`analyse` and writes the figure.
"""

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
ETA, TEMPERATURE = 0.02, 1.0  # η_max, and the temperature η_max s²/2 at u = 1
model = symfp.SGD(loss=f + xi * theta, params=[theta],
                  data=symfp.Population({xi: sympy.stats.Normal("xi", 0, sp.sqrt(2 * TEMPERATURE / ETA))}),
                  lr=ETA)
order = 1

LARGE = size() == "large"
mesh = lambda: symfp.mesh.box([(-5.0, 5.0)], cells=(800 if LARGE else 400,))  # noqa: E731
p0 = sp.exp(-((theta + R(3, 2)) ** 2) / (2 * R(1, 5) ** 2))  # in the narrow minimum
t_end = 10.0
dt = 0.01 if LARGE else 0.02
WIDE = sp.And(theta > R(4, 5), theta < R(11, 5))
objective = [RegionMass(WIDE, weight=-1, name="-P[0.8 < θ_T < 2.2]")]
control = dict(n_controls=40 if LARGE else 20, controls=("u",), u_bounds=(0.05, 1.0), x0=0.5, scheme="cn")
compare = ("constant", "cosine", "inverse_time")
particles = dict(n=100_000 if LARGE else 20_000, seed=0)
title = "PDE-optimal learning-rate schedule: ending in the wide minimum"

NAME = "schedule_double_well"


def analyse(size: str = "small", figure: str | None = None) -> dict:
    """Optimise, compare, verify on particles; returns the numbers (and saves the figure)."""
    from symfp.app.control import schedule_figure
    from symfp.control.study import schedule_study

    out = schedule_study(globals())
    if figure:
        schedule_figure(out, figure)
    s = out["summary"]
    rows = {}
    for name, row in s["schedules"].items():
        v = row["particles"]
        rows[name] = {"pde": -row["objective"], "particles": -v["measured"], "stderr": v["stderr"],
                      "z": abs(v["z"]), "u_first": row["u"][0], "u_last": row["u"][-1]}
    return {"converged": s["converged"], "iterations": s["iterations"], "budget": s["budget_u"],
            "projected_gradient": s["projected_gradient"], "rows": rows, "n_particles": particles["n"]}


def readme_section(results: dict) -> str:
    """Markdown section of derivations/README.md, every number formatted from ``results``."""
    r = results["rows"]
    o = r["optimal"]
    table = "\n".join(
        f"| {name} | {x['pde']:.4f} | {x['particles']:.4f} ± {x['stderr']:.4f} | {x['z']:.1f} |"
        for name, x in r.items())
    return (
        "## PDE-optimal learning-rate schedule (asymmetric double well)\n\n"
        f"![schedule double well](figures/{NAME}.png)\n\n"
        "SGD starts in a narrow, deep minimum; the objective is the mass at the bottom of the wide one at "
        "T = 10, P(0.8 < θ_T < 2.2). The discrete adjoint of the Fokker–Planck solve gives its gradient "
        f"in the learning-rate schedule; L-BFGS-B ({results['iterations']} iterations, "
        f"{'converged' if results['converged'] else 'NOT converged'}) finds: hot (u = {o['u_first']:.2f}) to "
        f"escape, then annealed to u = {o['u_last']:.2f} at the end. Same budget ∫u dt = "
        f"{results['budget']:.2f} for every schedule; exact SGD with {results['n_particles']} particles:\n\n"
        "| schedule | PDE | exact SGD | \\|z\\| |\n|---|---|---|---|\n" + table + "\n"
    )


if __name__ == "__main__":
    import json
    from pathlib import Path

    out = analyse(size(), figure=str(Path(__file__).parent / "figures" / f"{NAME}.png"))
    print(json.dumps(out, indent=1))
    print(readme_section(out))
