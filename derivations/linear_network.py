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
:math:`\eta E\hat g^2 = \eta(V + (u-c)^2)` per unit time: the order-1 SME drops η(u − c)², which is
O(η) near the valley, so at fixed t the SME-vs-SGD gap in E q is O(η²) (:func:`analyse` measures it at
η = 0.1, 0.05, 0.025). The FE solution (default FCT: positive, mass-conservative) is checked against SDE
particles of the same SME and compared with exact SGD through E q(t), sd q and bin masses of q.

Run it: ``symfp run derivations/linear_network.py`` (FE vs SDE particles at η = 1/40; ``--size large``
for a finer mesh and 10⁵ particles), or ``python derivations/linear_network.py`` for the key numbers and
the figure.
"""

from __future__ import annotations

import pathlib

import sympy as sp
import sympy.stats

import symfp
from symfp.app.spec import size

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
# the spec's η is the smallest of the gap study (ETAS), where the order-1 SME is accurate: `symfp run`
# compares the FE solve with particles of the same SME (Euler, small dt); exact SGD differs from the SME
# by O(η²) in E q at fixed t, which analyse() measures at three learning rates
params = {c: 1, sigma: sp.Rational(1, 2), eta: sp.Rational(1, 40)}
order = 1
q = w1**2 - w2**2  # conserved by gradient flow

LARGE = size() == "large"
W10, W20, SD0 = 2.0, 0.5, 0.05  # start on the valley (w1 w2 = 1), unbalanced: q0 = 3.75
BOX = [(1.1, 2.3), (0.0, 1.2)]


def mesh_for(cells):
    return symfp.mesh.box(BOX, cells=cells)


# 192² and dt = 1/40: FCT on 96² (or 192² with dt = 0.05) widens this sharp density (transverse sd ≈ 3
# cells of 96² at η = 1/40) by 5-6 % in Var w1 where the limiter keeps the backward-Euler upwind
# predictor's diffusion, which 2·10⁴ particles resolve (z ≈ −5); on 192² with dt = 1/40 it agrees
mesh = lambda: mesh_for((256, 256) if LARGE else (192, 192))  # noqa: E731
p0 = sp.exp(-((w1 - W10) ** 2 + (w2 - W20) ** 2) / (2 * SD0**2)) / (2 * sp.pi * SD0**2)
t_end = 15.0
dt = 0.0125 if LARGE else 0.025
solve_options = dict(stabilisation="fct")  # what "auto" picks for this degenerate D, said explicitly
particles = dict(
    n=100_000 if LARGE else 20_000,
    init={w1: sympy.stats.Normal("w1_0", W10, SD0), w2: sympy.stats.Normal("w2_0", W20, SD0)},
    seed=0,
    method="sde",
    dt=0.0025,  # Euler's O(dt) bias in E q is then ~1e-3, below the particles' se
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


ETAS = (0.1, 0.05, 0.025)  # learning rates of the SME-vs-SGD gap study (t_end fixed)


def _eq_traj(cloud):
    """E q(t) = E w1² − E w2² from a cloud's moment trajectories (times, values)."""
    import numpy as np

    mom = cloud.moments()
    m, C = np.asarray(mom["mean"]), np.asarray(mom["cov"])
    return np.asarray(mom["t"]), m[:, 0] ** 2 + C[:, 0, 0] - m[:, 1] ** 2 - C[:, 1, 1]


def analyse(size: str = "small", figure: bool = False) -> dict:
    """FE (FCT) solves of the SME, SDE particles of the same SME, and exact SGD, at three learning rates.

    At each η in :data:`ETAS` (t_end fixed): the FE solution of the order-1 SME's Fokker–Planck equation
    (default stabilisation, FCT for this degenerate D: positive, mass-conservative, second order), SDE
    particles of the same SME (weak order 2, dt = min(1/40, 1/(800η)): the independent check of the FE
    solve; the explicit scheme needs the noise per step, ∝ ηΔt, bounded: at η = 0.1 with Δt = 1/40 a few
    particles in 10⁴ were thrown out of the valley by the supporting values and blew up, on 2 seeds of 4)
    and the exact SGD recursion. The SME-vs-SGD gap E q_SME(t) − E q_SGD(t) is the SME's own error:

    * the exact step is q' = (1 − η²ĝ²)q with E ĝ² = V(u) + (u − c)², i.e. a rate η(V + (u − c)²) per
      unit time, while the order-1 SME has 𝓛q = −ηVq: it drops η(u − c)² (the order-2 drift correction
      −(η/4)∇|∇f|² restores it: it gives −η(u − c)²q on q);
    * near the valley (u − c)² is the transverse fluctuation of u, O(η) (OU variance ηV|∇u|²/2 for the
      SME, ηV|∇u|²/(2 − η|∇u|²) for SGD), so the two rates differ by O(η²) and, at fixed t, the gap in
      E q is O(η²) (slope 2 in η), i.e. O(η) relative to the decrease q₀ − E q = O(ηt).

    Args:
        size: "small" (CI) or "large" (finer mesh and time step, more particles).
        figure: write ``derivations/figures/linear_network.png`` (and run the upwind and plain Galerkin
            FE solves at the largest η, shown side by side with FCT).

    Returns:
        dict: rank of D, per-η lists (FE E q, sd q, SGD and SDE particle E q ± se, gaps), the fitted slope
        of log gap against log η, positivity/mass monitors, the bin masses of q at the largest η (FE vs
        SDE particles), and the upwind/Galerkin side-by-side numbers when ``figure``.
    """
    import numpy as np

    large = size == "large"
    sym = symbolic()
    cells = (192, 192) if large else (96, 96)
    dt_fe = 0.025 if large else 0.05
    n = 200_000 if large else 50_000  # exact SGD particles per η
    n_sde = 100_000 if large else 20_000
    bins = {f"bin{i}": sp.Piecewise((1, (q >= lo) & (q < hi)), (0, True))
            for i, (lo, hi) in enumerate(zip(Q_EDGES[:-1], Q_EDGES[1:], strict=True))}
    rng = np.random.default_rng(0)
    rows, sols, trajs = [], [], []
    for k, lr in enumerate(ETAS):
        vals = {**params, eta: sp.nsimplify(lr)}
        num_model = model.subs(vals)
        sde = num_model.sme(order=order)
        fp = sde.fokker_planck()
        ex = {"q": q, "qsq": q**2, **(bins if k == 0 else {})}
        sol = fp.solve(mesh_for(cells), p0, t_end=t_end, dt=dt_fe, progress=False, expectations=ex,
                       wall_tol=1.0)
        obs = sol.observables
        init = np.column_stack([rng.normal(W10, SD0, n), rng.normal(W20, SD0, n)])
        sgd = num_model.simulate(n_particles=n, steps=int(round(t_end / lr)), init=init, seed=1 + k)
        qs = sgd.theta[:, 0].astype(float) ** 2 - sgd.theta[:, 1].astype(float) ** 2
        dt_sde = min(0.025, 1 / (800 * lr))
        sdec = sde.simulate(n_particles=n_sde, t_end=t_end, dt=dt_sde, init=init[:n_sde], seed=11 + k,
                            method="weak2")
        qd = sdec.theta[:, 0].astype(float) ** 2 - sdec.theta[:, 1].astype(float) ** 2
        Eq, Eq2 = float(obs["E[q]"][-1]), float(obs["E[qsq]"][-1])
        rows.append({
            "eta": lr,
            "Eq_fe": Eq,
            "sdq_fe": float(np.sqrt(max(Eq2 - Eq**2, 0.0))),
            "Eq_sgd": float(qs.mean()),
            "Eq_sgd_se": float(qs.std(ddof=1) / np.sqrt(n)),
            "sdq_sgd": float(qs.std(ddof=1)),
            "Eq_sde": float(qd.mean()),
            "Eq_sde_se": float(qd.std(ddof=1) / np.sqrt(n_sde)),
            "dt_sde": dt_sde,
            "min_relative": float(np.min(np.asarray(obs["min"]) / np.asarray(obs["max"]))),
            "mass_drift": float(np.max(np.abs(np.asarray(obs["mass"]) - 1.0))),
            "wall_max": float(np.max(np.asarray(obs["wall"]))),
            "escaped": float(np.mean((sgd.theta[:, 0] < BOX[0][0]) | (sgd.theta[:, 0] > BOX[0][1])
                                     | (sgd.theta[:, 1] < BOX[1][0]) | (sgd.theta[:, 1] > BOX[1][1]))),
        })
        sols.append(sol)
        trajs.append((np.asarray(obs["t"]), np.asarray(obs["E[q]"]), *_eq_traj(sgd), sgd))
        if k == 0:
            edges = list(zip(Q_EDGES[:-1], Q_EDGES[1:], strict=True))
            fe_bins = np.array([float(obs[f"E[{b}]"][-1]) for b in bins])
            sde_bins = np.array([np.mean((qd >= lo) & (qd < hi)) for lo, hi in edges])
            sgd_bins = np.array([np.mean((qs >= lo) & (qs < hi)) for lo, hi in edges])
    etas = np.array(ETAS)
    gaps = np.array([r["Eq_fe"] - r["Eq_sgd"] for r in rows])
    gaps_sde = np.array([r["Eq_sde"] - r["Eq_sgd"] for r in rows])
    slope = float(np.polyfit(np.log(etas), np.log(gaps), 1)[0])
    slope_sde = float(np.polyfit(np.log(etas), np.log(gaps_sde), 1)[0])
    se_bins = np.sqrt(np.clip(fe_bins * (1 - fe_bins), 1e-300, None) / n_sde)
    t0, eq0 = trajs[0][0], trajs[0][1]
    results = {
        "rank_D": int(sym["rank"]),
        "V": str(sym["V"]),
        "Lq": str(sym["Lq"]),
        "q0": float(eq0[0]),
        "t_end": t_end,
        "sigma2": float(params[sigma] ** 2),
        "etas": list(ETAS),
        "rows": rows,
        "gaps": gaps.tolist(),
        "gaps_sde": gaps_sde.tolist(),
        "gap_slope": slope,
        "gap_slope_sde": slope_sde,
        "fe_minus_sde": [r["Eq_fe"] - r["Eq_sde"] for r in rows],
        "rate_fe": float(-np.polyfit(t0, np.log(eq0), 1)[0]),  # at the largest η
        "rate_floor": float(ETAS[0] * params[sigma] ** 2),  # ηV ≥ ησ²
        "q_edges": list(Q_EDGES),
        "bins_fe": fe_bins.tolist(),
        "bins_sde": sde_bins.tolist(),
        "bins_sgd": sgd_bins.tolist(),
        "bins_max_abs_z_sde": float(np.max(np.abs(sde_bins - fe_bins) / se_bins)),
        "min_relative": float(min(r["min_relative"] for r in rows)),
        "mass_drift": float(max(r["mass_drift"] for r in rows)),
        "escaped": float(max(r["escaped"] for r in rows)),
        "n_particles": n,
        "n_sde": n_sde,
        "cells": list(cells),
        "eq_upwind": None,
        "eq_galerkin": None,
        "min_relative_galerkin": None,
        "figure": None,
    }
    if figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from symfp.report.figures import save

        # side by side at the largest η: first-order upwind (positive, O(h) smearing) and plain Galerkin
        # (second order, not positive for this oblique rank-1 D), same mesh and time step as FCT
        fp0 = model.subs({**params, eta: sp.nsimplify(ETAS[0])}).sme(order=order).fokker_planck()
        up = fp0.solve(mesh_for(cells), p0, t_end=t_end, dt=dt_fe, progress=False, stabilisation="upwind",
                       expectations={"q": q}, wall_tol=1.0)
        gal = fp0.solve(mesh_for(cells), p0, t_end=t_end, dt=dt_fe, progress=False, stabilisation="none",
                        negative_tol=1.0, expectations={"q": q}, wall_tol=1.0)
        results["eq_upwind"] = float(up.observables["E[q]"][-1])
        results["eq_galerkin"] = float(gal.observables["E[q]"][-1])
        results["min_relative_galerkin"] = float(np.min(np.asarray(gal.observables["min"])
                                                        / np.asarray(gal.observables["max"])))
        fig, (ax, bx, cx) = plt.subplots(1, 3, figsize=(12, 3.7))
        X = np.linspace(*BOX[0], 121)
        Y = np.linspace(*BOX[1], 121)
        P = np.stack(np.meshgrid(X, Y), -1).reshape(-1, 2)
        Z = np.asarray(sols[0].eval(P)).reshape(121, 121)
        ax.contourf(X, Y, Z, levels=20, cmap="Blues")
        th = trajs[0][4].theta
        ax.plot(th[:1500, 0], th[:1500, 1], "r.", ms=1, alpha=0.4, label="SGD particles")
        hx = np.linspace(BOX[0][0], BOX[0][1], 100)
        ax.plot(hx, float(params[c]) / hx, "k--", lw=1, label=r"valley $w_1w_2=c$")
        ax.plot([W10], [W20], "k*", ms=9, label="start")
        ax.set_xlabel(r"$w_1$")
        ax.set_ylabel(r"$w_2$")
        ax.set_title(f"η = {ETAS[0]:g}: FE (FCT) density at t = {t_end:g}", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
        for k, (tf, eqf, tp, eqp, _) in enumerate(trajs):
            ax_lbl = "FE SME (FCT)" if k == 0 else None
            bx.plot(tf, eqf, f"C{k}-", label=f"η = {ETAS[k]:g}: " + (ax_lbl or "FE SME"))
            bx.plot(tp[:: max(1, len(tp) // 25)], eqp[:: max(1, len(tp) // 25)], f"C{k}o", ms=3,
                    label="exact SGD" if k == 0 else None)
            bx.errorbar([t_end], [rows[k]["Eq_sde"]], yerr=[2 * rows[k]["Eq_sde_se"]], fmt="ks", ms=4,
                        label="SDE particles (same SME)" if k == 0 else None)
        bx.plot(up.observables["t"], up.observables["E[q]"], "C0:", lw=1, label="η = 0.1: FE upwind")
        bx.plot(gal.observables["t"], gal.observables["E[q]"], "C0--", lw=1, label="η = 0.1: FE Galerkin")
        bx.set_xlabel("t = kη")
        bx.set_ylabel(r"$E\,q,\ q = w_1^2 - w_2^2$")
        bx.legend(fontsize=6)
        cx.loglog(etas, gaps, "C0o-", label=f"FE SME − SGD (slope {slope:.2f})")
        cx.loglog(etas, gaps_sde, "C3s--", label=f"SDE particles − SGD (slope {slope_sde:.2f})")
        cx.loglog(etas, gaps[-1] * (etas / etas[-1]) ** 2, "k:", label=r"$\propto\eta^2$")
        cx.set_xlabel("η")
        cx.set_ylabel(f"gap in E q at t = {t_end:g}")
        cx.legend(fontsize=7)
        fig.tight_layout()
        out = HERE / "figures" / f"{NAME}.png"
        out.parent.mkdir(exist_ok=True)
        save(fig, out, dpi=80)
        results["figure"] = str(out.relative_to(HERE))
    return results


def readme_section(results: dict) -> str:
    """Markdown section for derivations/README.md, every number from ``results``."""
    r = results
    fig = r.get("figure") or f"figures/{NAME}.png"
    rows = r["rows"]
    per_eta = "; ".join(
        f"η = {x['eta']:g}: FE {x['Eq_fe']:.3f}, SDE particles {x['Eq_sde']:.3f} ± {x['Eq_sde_se']:.3f}, "
        f"exact SGD {x['Eq_sgd']:.3f} ± {x['Eq_sgd_se']:.3f}" for x in rows)
    side = ""
    if r.get("eq_upwind") is not None:
        side = (f" At η = {r['etas'][0]:g} first-order upwind smears mass along the valley (E q = "
                f"{r['eq_upwind']:.3f}) and plain Galerkin gives {r['eq_galerkin']:.3f} but undershoots to "
                f"{r['min_relative_galerkin']:.1e} of the maximum.")
    return (
        f"## Two-parameter linear network\n\n"
        f"![density along the valley of minima]({fig})\n\n"
        f"The diffusion matrix has rank {r['rank_D']} with its kernel along the valley w₁w₂ = c, so the "
        f"gradient-flow invariant q = w₁² − w₂² gets no noise (𝓛q = −ηV(u)q, V ≥ σ²) and the density "
        f"drifts along the valley toward the balanced minimum. From q = {r['q0']:.3f}, E q at t = "
        f"{r['t_end']:g} ({per_eta}). The FE solve (default FCT on {r['cells'][0]}², min "
        f"{r['min_relative']:.1e} of the maximum, mass drift {r['mass_drift']:.1e}) agrees with particles "
        f"of the same SME to {max(abs(d) for d in r['fe_minus_sde'][1:]):.4f} at the two smaller η and "
        f"{abs(r['fe_minus_sde'][0]):.3f} at η = {r['etas'][0]:g}, where FCT's limiter smears the density "
        f"along the valley (sd q {rows[0]['sdq_fe']:.3f}; an open FCT issue: it grows on a finer mesh). "
        f"Exact SGD drifts faster than its "
        f"order-1 SME: each step multiplies q by 1 − η²ĝ² with E ĝ² = V + (u − c)², and the SME drops the "
        f"(u − c)² = O(η) part, so at fixed t the gap in E q is O(η²): measured "
        f"{', '.join(f'{g:.4f}' for g in r['gaps'])}, slope {r['gap_slope']:.2f} (FE) and "
        f"{r['gap_slope_sde']:.2f} (SDE particles) in η — the SME's own error, not the discretisation's."
        f"{side}"
    )


if __name__ == "__main__":
    import json

    res = analyse(size(), figure=True)
    print(json.dumps(res, indent=1))
    print(readme_section(res))
