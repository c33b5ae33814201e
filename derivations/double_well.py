r"""Double well: SGD on f(θ) = θ⁴/4 − θ²/2 with additive gradient noise, from a density straddling
the barrier.

ℓ(θ; ξ) = θ⁴/4 − θ²/2 + ξθ, ξ ~ N(0, s²), batch size 1. The order-1 SDE is
dθ = −(θ³ − θ) dt + √(ηs²) dW with temperature ε = ηs²/2; at η = 0.1, s² = 2 (ε = 0.1) its stationary
density is Z⁻¹ exp(−f/ε) with Z = 15.1702, E θ² = 0.871363 (REFERENCE_CASES.md item 5).

The run shows the drift regime (mass splits by initial basin, the two halves concentrate around ±1)
and the mass per basin against time; the exit-time study starts particles in the left well and absorbs
them at the barrier top θ = 0 (FE mean exit time on [−2.5, 0] with τ = 0 at ``xmax``).

Run it: ``symfp run derivations/double_well.py`` (``--size large`` for finer sizes).
"""

import sympy as sp
import sympy.stats

import symfp
from symfp.app.spec import size

theta, xi = sp.symbols("theta xi", real=True)
s, eta = sp.symbols("s eta", positive=True)

model = symfp.SGD(
    loss=theta**4 / 4 - theta**2 / 2 + xi * theta,
    params=[theta],
    data=symfp.Population({xi: sympy.stats.Normal("xi", 0, s)}),
    lr=eta,
    batch_size=1,
)
params = {s: sp.sqrt(2), eta: sp.Rational(1, 10)}
order = 1

LARGE = size() == "large"
MEAN0, SD0 = 0.2, 0.3  # straddles the barrier at 0, more mass on the right
mesh = lambda: symfp.mesh.box([(-2.5, 2.5)], cells=(1000 if LARGE else 250,))  # noqa: E731
p0 = sp.exp(-((theta - MEAN0) ** 2) / (2 * SD0**2)) / sp.sqrt(2 * sp.pi * SD0**2)
t_end = 6.0
dt = 0.005 if LARGE else 0.02
# the same N(MEAN0, SD0²) for the particles, as a random variable to sample. The small size simulates exact
# SGD; at 10⁵ particles the O(η) gap between exact SGD and its order-1 SDE exceeds the Monte Carlo noise
# floor of the comparison, so the large size simulates the SDE itself (the weak-error and exit-time
# studies keep showing the SGD-vs-SDE gap).
particles = dict(
    n=100_000 if LARGE else 10_000,
    init={theta: sympy.stats.Normal("theta0", MEAN0, SD0)},
    seed=0,
    method="sde" if LARGE else "recursion",
    dt=0.01,
)
observables = {"theta^2": theta**2}
basins = {"left": theta < 0, "right": theta > 0}
exit_time = dict(
    mesh=lambda: symfp.mesh.box([(-2.5, 0.0)], cells=(500 if LARGE else 200,)),
    absorbing=["xmax"],  # τ = 0 at the barrier top; xmin reflects
    start=[-1.0],
    # particles are absorbed in {θ ≥ 0}; a callable, so that derive does not import torch
    set=lambda: symfp.particles.HalfSpace([1.0], 0.0),
    n=20_000 if LARGE else 2_000,
    t_max=400.0,  # ≈ 7 mean exit times: a censored fraction below 0.1 %
)
title = "Double well: drift and diffusion regimes of SGD"

if __name__ == "__main__":
    sde = model.sme(order=order)
    print(sde)
    print(sde.fokker_planck())
