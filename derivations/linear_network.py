r"""Two-parameter linear network: a rank-1 diffusion and the drift of SGD along the valley of minima.

Loss :math:`\ell = (w_1w_2x - y)^2/2` with :math:`y = cx + \sigma e` (label noise),
:math:`x \sim U(-\sqrt3, \sqrt3)` (bounded, so the exact recursion is stable; E x² = 1, Var x² = 4/5),
:math:`e \sim N(0, 1)`, batch size 1. With :math:`u = w_1w_2` and the residual :math:`r = (u-c)x - \sigma e`,
the per-sample gradient is :math:`rx\,\nabla u`, :math:`\nabla u = (w_2, w_1)`, so the order-1 SME has

.. math:: b = -(u - c)\nabla u,\qquad D = \frac\eta2 V(u)\,\nabla u\,\nabla u^\top,\qquad
   V(u) = \mathrm{Var}(rx) = \tfrac45(u-c)^2 + \sigma^2 .

**Degeneracy.** D has rank 1 (det D ≡ 0) wherever :math:`w \ne 0`; its kernel is spanned by
:math:`(w_1, -w_2)`, the tangent of the level sets of u, i.e. of the valley of minima (the hyperbola
:math:`w_1w_2 = c`): the noise never pushes along the valley. D vanishes at w = 0 and, for realizable
labels (σ = 0), on the whole minimum manifold. :func:`symbolic` derives all this from the model.

**The valley coordinate.** :math:`q = w_1^2 - w_2^2` is conserved by gradient flow. Itô's formula
(the generator :math:`\mathcal L q = b\cdot\nabla q + D:\nabla^2 q`) gives :math:`\mathcal L q =
-\eta V(u)\,q`: under the SME, q has **no noise** and decays, so the density drifts along the valley
toward the balanced minimum :math:`w_1 = w_2 = \sqrt c` at rate ≈ ηV ≥ ησ². The exact step gives
:math:`q_{k+1} = (1 - \eta^2\hat g_k^2)\,q_k` (ĝ the sample's :math:`rx`), the same rate
:math:`\eta^2 E\hat g^2/\eta` per unit time to leading order. The FE solution (positivity-preserving
upwind scheme, since D is degenerate) and the exact SGD particles are compared through E q(t), the
standard deviation of q and the masses in bins of q along the valley.

Run it: ``symfp run derivations/linear_network.py`` (``--size large`` for a finer mesh and 10⁵
particles), or ``python derivations/linear_network.py`` for the key numbers and the figure.
"""

from __future__ import annotations

import pathlib

import sympy as sp
import sympy.stats

import symfp
from symfp.spec import size

NAME = "linear_network"
HERE = pathlib.Path(__file__).resolve().parent if "__file__" in globals() else pathlib.Path("derivations")

w1, w2, x, e = sp.symbols("w1 w2 x e", real=True)
c, sigma, eta = sp.symbols("c sigma eta", positive=True)

model = symfp.SGD(
    loss=(w1 * w2 * x - c * x - sigma * e) ** 2 / 2,
    params=[w1, w2],
    data=symfp.Population(
        {x: sympy.stats.Uniform("x", -sp.sqrt(3), sp.sqrt(3)), e: sympy.stats.Normal("e", 0, 1)}
    ),
    lr=eta,
    batch_size=1,
    constants=(c, sigma),
)
params = {c: 1, sigma: sp.Rational(1, 2), eta: sp.Rational(1, 10)}
order = 1
q = w1**2 - w2**2  # conserved by gradient flow

LARGE = size() == "large"
W10, W20, SD0 = 2.0, 0.5, 0.05  # start on the valley (w1 w2 = 1), unbalanced: q0 = 3.75
BOX = [(1.1, 2.3), (0.0, 1.2)]
mesh = lambda: symfp.mesh.box(BOX, cells=(192, 192) if LARGE else (96, 96))  # noqa: E731
p0 = sp.exp(-((w1 - W10) ** 2 + (w2 - W20) ** 2) / (2 * SD0**2)) / (2 * sp.pi * SD0**2)
t_end = 15.0
dt = 0.025 if LARGE else 0.05
particles = dict(
    n=100_000 if LARGE else 20_000,
    init={w1: sympy.stats.Normal("w1_0", W10, SD0), w2: sympy.stats.Normal("w2_0", W20, SD0)},
    seed=0,
)
observables = {"q": q, "q^2": q**2}
title = "Linear network: rank-1 diffusion and the drift along the valley of minima"

Q_EDGES = (1.6, 1.9, 2.2, 2.5, 2.8)  # bins of the valley coordinate q at t_end


def symbolic() -> dict:
    """Rank, kernel and zero set of D, and the generator on q, derived from the model (symbolic).

    Returns:
        dict of SymPy objects: ``D``, ``det``, ``rank``, ``V`` (with D = (η/2) V ∇u∇uᵀ), ``kernel``,
        ``zero_set_realizable`` (solutions of D = 0 at σ = 0), ``Lq`` (𝓛q), ``exact_q_step``
        (q_{k+1} − (1 − η²ĝ²)q_k for the exact update, ĝ the sample gradient's scalar factor).
    """
    sde = model.sme(order=1)
    D = sp.Matrix(sde.diffusion)
    grad_u = sp.Matrix([w2, w1])
    V = sp.factor(sp.simplify(D[0, 0] / (eta / 2 * w2**2)))
    kernel = D.nullspace()
    Lq = sp.factor(sde.fokker_planck().generator(q))
    D0 = D.subs(sigma, 0)
    zero = sp.solve([sp.factor(D0[0, 0]), sp.factor(D0[1, 1])], [w1, w2], dict=True)
    g1, g2 = model.batch_symbols
    new = model.recursion.update
    gh = sp.Symbol("g")  # ĝ = (g, ·) with ĝ_w1 = g w2, ĝ_w2 = g w1
    step = (new[0] ** 2 - new[1] ** 2).subs({g1: gh * w2, g2: gh * w1})
    return {
        "D": D,
        "det": sp.simplify(D.det()),
        "rank": D.rank(simplify=True),
        "V": V,
        "D_factored": sp.simplify(D - eta / 2 * V * grad_u * grad_u.T),
        "kernel": kernel,
        "zero_set_realizable": zero,
        "Lq": Lq,
        "Lq_minus_closed_form": sp.simplify(Lq + eta * V * q),
        "exact_q_step": sp.simplify(step - (1 - eta**2 * gh**2) * q),
    }


def analyse(size: str = "small", figure: bool = False) -> dict:
    """FE solve (upwind, positive) and exact SGD particles along the valley of minima.

    Args:
        size: "small" (CI) or "large".
        figure: write ``derivations/figures/linear_network.png``.

    Returns:
        dict: rank of D, positivity/mass monitors, E q and sd q at t_end from FE and particles (± se),
        the rate −d ln E q/dt against ηV at the valley, bin masses of q (FE, particles, binomial se),
        the max |z| over the bins and the comparison verdict.
    """
    import numpy as np

    large = size == "large"
    sym = symbolic()
    num_model = model.subs(params)
    sde = num_model.sme(order=order)
    fp = sde.fokker_planck()
    bins = {f"q{i}": sp.Piecewise((1, (q >= lo) & (q < hi)), (0, True))
            for i, (lo, hi) in enumerate(zip(Q_EDGES[:-1], Q_EDGES[1:], strict=True))}
    sol = fp.solve(mesh(), p0, t_end=t_end, dt=0.025 if large else 0.05, progress=False,
                   expectations={"q": q, "q2": q**2, **bins})
    obs = sol.observables
    # plain Galerkin on the same mesh: second order, but not positive for this rank-1 oblique D
    gal = fp.solve(mesh(), p0, t_end=t_end, dt=0.025 if large else 0.05, progress=False,
                   stabilisation="none", negative_tol=1.0, expectations={"q": q})
    eq_gal = np.asarray(gal.observables["E[q]"])
    t = np.asarray(obs["t"])
    Eq, Eq2 = np.asarray(obs["E[q]"]), np.asarray(obs["E[q2]"])
    n = 100_000 if large else 20_000
    steps = int(round(t_end / float(params[eta])))
    cloud = num_model.simulate(n_particles=n, steps=steps, init=particles["init"], seed=0)
    th = cloud.theta.astype(float)
    qp = th[:, 0] ** 2 - th[:, 1] ** 2
    edges = zip(Q_EDGES[:-1], Q_EDGES[1:], strict=True)
    p_bins = np.array([np.mean((qp >= lo) & (qp < hi)) for lo, hi in edges])
    fe_bins = np.array([float(obs[f"E[{k}]"][-1]) for k in bins])
    se_bins = np.sqrt(np.clip(fe_bins * (1 - fe_bins), 1e-300, None) / n)
    sd_fe = float(np.sqrt(max(Eq2[-1] - Eq[-1] ** 2, 0.0)))
    rate = float(-np.polyfit(t, np.log(Eq), 1)[0])
    eq_se = float(qp.std(ddof=1) / np.sqrt(n))
    report = symfp.compare(sol, cloud)
    results = {
        "rank_D": int(sym["rank"]),
        "V": str(sym["V"]),
        "Lq": str(sym["Lq"]),
        "q0": float(Eq[0]),
        "Eq_fe_end": float(Eq[-1]),
        "Eq_particles_end": float(qp.mean()),
        "Eq_particles_se": eq_se,
        "sdq_fe_end": sd_fe,
        "sdq_particles_end": float(qp.std(ddof=1)),
        "rate_fe": rate,
        "Eq_galerkin_end": float(eq_gal[-1]),
        "rate_galerkin": float(-np.polyfit(t, np.log(eq_gal), 1)[0]),
        "rate_particles": float(np.log(Eq[0] / qp.mean()) / t_end),
        "min_relative_galerkin": float(np.min(np.asarray(gal.observables["min"])
                                              / np.asarray(gal.observables["max"]))),
        "rate_floor": float(params[eta] * params[sigma] ** 2),  # ηV ≥ ησ²
        "q_edges": list(Q_EDGES),
        "bins_fe": fe_bins.tolist(),
        "bins_particles": p_bins.tolist(),
        "bins_max_abs_z": float(np.max(np.abs(p_bins - fe_bins) / se_bins)),
        "min_relative": float(np.min(np.asarray(obs["min"]) / np.asarray(obs["max"]))),
        "mass_drift": float(np.max(np.abs(np.asarray(obs["mass"]) - 1.0))),
        "escaped": float(np.mean((th[:, 0] < BOX[0][0]) | (th[:, 0] > BOX[0][1])
                                 | (th[:, 1] < BOX[1][0]) | (th[:, 1] > BOX[1][1]))),
        "compare_passed": bool(report.passed),
        "moments_max_abs_z": float(max(abs(m.z) for m in report.metrics if m.name != "density L1")),
        "n_particles": int(cloud.n),
        "figure": None,
    }
    if figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax, bx) = plt.subplots(1, 2, figsize=(9.5, 3.8))
        X = np.linspace(*BOX[0], 161)
        Y = np.linspace(*BOX[1], 161)
        P = np.stack(np.meshgrid(X, Y), -1).reshape(-1, 2)
        Z = np.asarray(sol.eval(P)).reshape(161, 161)
        ax.contourf(X, Y, Z, levels=20, cmap="Blues")
        ax.plot(th[:1500, 0], th[:1500, 1], "r.", ms=1, alpha=0.4, label="SGD particles")
        hx = np.linspace(BOX[0][0], BOX[0][1], 100)
        ax.plot(hx, float(params[c]) / hx, "k--", lw=1, label=r"valley $w_1w_2=c$")
        ax.plot([W10], [W20], "k*", ms=9, label="start")
        ax.set_xlabel(r"$w_1$")
        ax.set_ylabel(r"$w_2$")
        ax.set_title(f"density at t = {t_end:g}", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
        tm = np.asarray(cloud.moments()["t"])
        mom = cloud.moments()
        m, C = np.asarray(mom["mean"]), np.asarray(mom["cov"])
        # E q = E w1² − E w2² from the particle moment trajectories
        eq_traj = m[:, 0] ** 2 + C[:, 0, 0] - m[:, 1] ** 2 - C[:, 1, 1]
        bx.plot(t, Eq, "C0-", label="FE E[q] (upwind, positive)")
        bx.plot(t, eq_gal, "C2--", label="FE E[q] (Galerkin)")
        bx.plot(tm[::4], eq_traj[::4], "C3o", ms=3, label="SGD particles")
        bx.plot(t, Eq[0] * np.exp(-results["rate_floor"] * t), "k:", label=r"$q_0e^{-\eta\sigma^2t}$")
        bx.set_xlabel("t = kη")
        bx.set_ylabel(r"$q = w_1^2 - w_2^2$")
        bx.legend(fontsize=7)
        fig.tight_layout()
        out = HERE / "figures" / f"{NAME}.png"
        out.parent.mkdir(exist_ok=True)
        fig.savefig(out, dpi=90)
        plt.close(fig)
        results["figure"] = str(out.relative_to(HERE))
    return results


def readme_section(results: dict) -> str:
    """Markdown section for derivations/README.md, every number from ``results``."""
    r = results
    fig = r.get("figure") or f"figures/{NAME}.png"
    return (
        f"## Two-parameter linear network\n\n"
        f"![density along the valley of minima]({fig})\n\n"
        f"The diffusion matrix has rank {r['rank_D']} with its kernel along the valley w₁w₂ = c, so the "
        f"gradient-flow invariant q = w₁² − w₂² gets no noise (𝓛q = −ηV(u)q) and the density drifts "
        f"along the valley toward the balanced minimum: from q = {r['q0']:.3f}, exact SGD (N = "
        f"{r['n_particles']}) reaches E q = {r['Eq_particles_end']:.3f} ± {r['Eq_particles_se']:.3f} at "
        f"rate {r['rate_particles']:.4f} ≥ ησ² = {r['rate_floor']:.3g}; the FE solve that stays positive "
        f"(upwind, min {r['min_relative']:.1e} of the maximum) smears mass along the valley "
        f"(E q = {r['Eq_fe_end']:.3f}) and plain Galerkin (E q = {r['Eq_galerkin_end']:.3f}) undershoots "
        f"to {r['min_relative_galerkin']:.1e}: an oblique rank-1 D still needs a better positive scheme."
    )


if __name__ == "__main__":
    import json

    res = analyse(size(), figure=True)
    print(json.dumps(res, indent=1))
    print(readme_section(res))
