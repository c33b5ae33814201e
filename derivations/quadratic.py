r"""Quadratic loss, three views: exact SGD, its order-1/order-2 SDE, and the Fokker–Planck equation.

Loss ℓ(θ; ξ) = aθ²/2 + ξθ with gradient noise ξ ~ N(0, s²), batch size 1 (REFERENCE_CASES.md item 2).
The order-1 SDE is the Ornstein–Uhlenbeck process dθ = −aθ dt + √(ηs²) dW, whose variance relaxes to
ηs²/(2a) = 0.05 at a = s = 1, η = 0.1; the exact SGD recursion relaxes to ηs²/(a(2 − ηa)) = 0.0526.

Run it: ``symfp run derivations/quadratic.py`` (``--size large`` for a finer mesh and 10⁵ particles),
or ``python derivations/quadratic.py`` to print the derivation.
"""

import sympy as sp
import sympy.stats

import symfp
from symfp.app.spec import size

theta, xi = sp.symbols("theta xi", real=True)
a, s, eta = sp.symbols("a s eta", positive=True)

model = symfp.SGD(
    loss=a * theta**2 / 2 + xi * theta,
    params=[theta],
    data=symfp.Population({xi: sympy.stats.Normal("xi", 0, s)}),
    lr=eta,
    batch_size=1,
    constants=(a,),
)
params = {a: 1, s: 1, eta: sp.Rational(1, 10)}
order = 1

LARGE = size() == "large"
MEAN0, SD0 = 0.5, 0.1  # initial density N(0.5, 0.1²)
mesh = lambda: symfp.mesh.box([(-1.5, 1.5)], cells=(1200 if LARGE else 300,))  # noqa: E731
p0 = sp.exp(-((theta - MEAN0) ** 2) / (2 * SD0**2)) / sp.sqrt(2 * sp.pi * SD0**2)
t_end = 3.0
dt = 0.005 if LARGE else 0.02
# the same N(MEAN0, SD0²) for the particles, as a random variable to sample. The particles simulate the
# order-1 SDE that the FE solves: exact SGD differs from it by O(η) (stationary variance 0.0526 vs 0.05),
# which at 10⁴ particles is already ≈3.6 standard errors, so a comparison against exact SGD would fail on
# a real, expected gap. The weak-error study below measures that SGD-vs-SDE gap and its order.
particles = dict(
    n=100_000 if LARGE else 10_000,
    init={theta: sympy.stats.Normal("theta0", MEAN0, SD0)},
    seed=0,
    method="sde",
    dt=0.01,
)
observables = {"theta^2": theta**2}
basins = {"positive": theta > 0}
# weak error of the order-1/2 SDEs against exact SGD (REFERENCE_CASES.md item 4: slopes 1 and 2)
weak_error = dict(
    lrs=[0.1, 0.05, 0.025, 0.0125], observable=theta, t_end=1.0, init=[1.0], n=100_000 if LARGE else 20_000
)
title = "Quadratic loss: SGD, its SDE and the Fokker–Planck equation"

if __name__ == "__main__":
    sde = model.sme(order=order)
    print(sde)
    print(sde.fokker_planck())
