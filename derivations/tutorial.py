# %% [markdown]
# # symfp tutorial: from an SGD recursion to its Fokker–Planck equation, and back
#
# A literate script: run it with `python derivations/tutorial.py`, or open it as a notebook
# (`# %%` cells: VS Code, Spyder, or `jupytext --to notebook`). In Jupyter every stage renders as
# LaTeX. Each cell prints what it computed; `derivations/test_tutorial.py` runs it in CI and checks
# the numbers against closed forms.
#
# The model: SGD on the quadratic loss ℓ(θ; ξ) = aθ²/2 + ξθ with gradient noise ξ ~ N(0, s²),
# batch size 1 (REFERENCE_CASES item 2).

# %%
import sympy as sp
from sympy.stats import Normal

import symfp

theta, xi = sp.symbols("theta xi", real=True)
a, s, eta = sp.symbols("a s eta", positive=True)
model = symfp.SGD(
    loss=a * theta**2 / 2 + xi * theta,
    params=[theta],
    data=symfp.Population({xi: Normal("xi", 0, s)}),
    lr=eta,
    batch_size=1,
    constants=[a],
)
print("one step:", model.recursion)

# %% [markdown]
# ## 1. One-step moments and the modified equations
# symfp matches E[Δ] and E[ΔΔᵀ] of one step against the SDE's Itô–Taylor expansion with dt = η.

# %%
moments = model.moments()
print(moments)
sde1, sde2 = model.sme(order=1), model.sme(order=2)
print(sde1)
print(sde2)

# %% [markdown]
# ## 2. The Fokker–Planck equation and its stationary density
# In 1-D the zero-flux stationary density has a closed form; its variance is the SDE's
# stationary variance, to be compared with the exact recursion's ηs²/(a(2 − ηa)).

# %%
var = {}
for name, sde in (("order 1", sde1), ("order 2", sde2)):
    fp = sde.fokker_planck()
    rho = fp.stationary_density()
    z = sp.integrate(rho, (theta, -sp.oo, sp.oo))
    var[name] = sp.simplify(sp.integrate(theta**2 * rho, (theta, -sp.oo, sp.oo)) / z)
    print(f"{name}: stationary variance = {var[name]}   ({fp.stationary_reason})")
exact = eta * s**2 / (a * (2 - eta * a))
numbers = {a: 1, s: 1, eta: sp.Rational(1, 10)}
print("exact SGD:", exact, "=", float(exact.subs(numbers)))
print({k: float(v.subs(numbers)) for k, v in var.items()})

# %% [markdown]
# ## 3. Finite elements and particles
# With numbers substituted, the FE solution of the order-2 Fokker–Planck equation and a particle
# cloud of the *exact* SGD recursion; `compare` reports each metric against its noise floor.

# %%
fp_num = sde2.subs(numbers).fokker_planck()
mesh = symfp.mesh.box([(-2.0, 2.5)], cells=(450,))
sol = fp_num.solve(mesh, p0=sp.exp(-((theta - 1) ** 2) / (2 * sp.Rational(1, 20))), t_end=4.0, dt=0.02,
                   progress=False)
print("FE variance at t = 4:", sol.observables["cov"][-1, 0, 0])
cloud = model.subs(numbers).simulate(n_particles=20_000, steps=40, init=1.0, seed=1, progress=False)
print("exact SGD particles: variance", cloud.cov(stderr=True))

# %% [markdown]
# ## 4. The derivation as a LaTeX document

# %%
doc = symfp.latex_document(model, sde2, sde2.fokker_planck())
print(doc.source[:300], "...")
