r"""Double well: the drift regime, the diffusion regime and the Gibbs limit of SGD.

SGD on f(θ) = θ⁴/4 − θ²/2 (+ cθ for the tilted well) with additive gradient noise ξ ~ N(0, s²),
batch size 1, η = 0.1: the order-1 SDE is dθ = −f′(θ) dt + √(2ε) dW with temperature ε = ηs²/2.

* Drift regime (t = O(1)): from N(0.2, 0.3²), straddling the barrier, the mass splits by initial basin
  and each half concentrates around its minimum ±1; linearising there (measured at ε = 0.001), θ = ±1 + u with
  du = −f″(±1)u dt + √(2ε) dW, so the within-basin variance relaxes like e^{−2f″(±1)t} = e^{−4t} to its
  floor ≈ ε/f″(±1). The rate is measured on the FE solution (conditional variance on θ > 0).
* Diffusion regime (t ~ e^{ΔV/ε}): mean exit time from the left minimum to the right one, from the FE
  solution of −𝓛τ = 1, from particles (SDE and exact SGD) and from Eyring–Kramers
  E τ ≈ 2π/|f″(0)| · √(|f″(0)|/f″(−1)) · e^{ΔV/ε} = √2 π e^{1/(4ε)}, for ε = 0.25, 0.15, 0.1, 0.07:
  ε log E τ → ΔV = 1/4 (fitted as the slope of log E τ against 1/ε).
* Gibbs limit: the mass per basin tends to that of Z⁻¹e^{−f/ε}; for the tilted well f + cθ (c = 0.1)
  the early split (set by the initial density, mostly right) differs from the Gibbs one (mostly left,
  the deeper well).

Run it: ``symfp run derivations/double_well_regimes.py``; ``python derivations/double_well_regimes.py``
runs :func:`analyse` and writes the figure.
"""

import sympy as sp
import sympy.stats

import symfp
from symfp.app.spec import size

theta, xi = sp.symbols("theta xi", real=True)
s, eta, c = sp.symbols("s eta c", real=True)

model = symfp.SGD(
    loss=theta**4 / 4 - theta**2 / 2 + c * theta + xi * theta,
    params=[theta],
    data=symfp.Population({xi: sympy.stats.Normal("xi", 0, s)}),
    lr=eta,
    batch_size=1,
    constants=(c,),
)
params = {s: sp.sqrt(2), eta: sp.Rational(1, 10), c: 0}
order = 1

LARGE = size() == "large"
MEAN0, SD0 = 0.2, 0.3
mesh = lambda: symfp.mesh.box([(-2.5, 2.5)], cells=(1000 if LARGE else 250,))  # noqa: E731
p0 = sp.exp(-((theta - MEAN0) ** 2) / (2 * SD0**2)) / sp.sqrt(2 * sp.pi * SD0**2)
t_end = 6.0
dt = 0.005 if LARGE else 0.02
particles = dict(
    n=100_000 if LARGE else 10_000, init={theta: sympy.stats.Normal("theta0", MEAN0, SD0)}, seed=0
)
observables = {"theta^2": theta**2}
basins = {"left": theta < 0, "right": theta > 0}
exit_time = dict(
    mesh=lambda: symfp.mesh.box([(-2.5, 1.0)], cells=(350,)),
    absorbing=["xmax"],  # τ = 0 at the right minimum θ = 1; xmin reflects
    start=[-1.0],
    set=lambda: symfp.particles.HalfSpace([1.0], 1.0),
    n=20_000 if LARGE else 2_000,
    t_max=500.0,
)
title = "Double well: drift regime, diffusion regime and Gibbs limit"

NAME = "double_well_regimes"
ETA = 0.1
EPSILONS = (0.25, 0.15, 0.1, 0.07)
DELTA_V = 0.25
TILT = 0.1


def sgd_at(eps: float, tilt: float = 0.0) -> "symfp.SGD":
    """The numeric SGD with temperature ε = ηs²/2 (s² = 2ε/η) and tilt c."""
    return model.subs(
        {eta: sp.nsimplify(ETA), s: sp.sqrt(sp.nsimplify(2 * eps / ETA)), c: sp.nsimplify(tilt)}
    )


def eyring_kramers(eps: float) -> float:
    r"""E τ ≈ (2π/|f″(0)|)√(|f″(0)|/f″(−1)) e^{ΔV/ε} for f = θ⁴/4 − θ²/2 (f″(0) = −1, f″(−1) = 2)."""
    import math

    return 2 * math.pi * math.sqrt(1 / 2) * math.exp(DELTA_V / eps)


def gibbs_left_mass(eps: float, tilt: float) -> float:
    """∫_{θ<0} e^{−f/ε} / ∫ e^{−f/ε} for f = θ⁴/4 − θ²/2 + cθ (scipy quadrature)."""
    import numpy as np
    from scipy.integrate import quad

    def g(t):
        return np.exp(-(t**4 / 4 - t**2 / 2 + tilt * t + 0.25) / eps)

    left, right = quad(g, -4, 0, epsabs=1e-13)[0], quad(g, 0, 4, epsabs=1e-13)[0]
    return left / (left + right)


def _fit_rate(t, v, window) -> float:
    import numpy as np

    sel = (t >= window[0]) & (t <= window[1])
    return float(-np.polyfit(t[sel], np.log(v[sel]), 1)[0])


def analyse(size: str = "small", figure: str | None = None) -> dict:
    """Drift regime (concentration rate), exit times across ε, Gibbs limit of the tilted well.

    Returns:
        JSON-ready dict of the key numbers (see the keys).
    """
    import numpy as np

    large = size == "large"
    res: dict = {"eta": ETA}
    box = symfp.mesh.box([(-2.5, 2.5)], cells=(1000 if large else 400,))
    ind_r = sp.Heaviside(theta)
    expect = {"right": ind_r, "m_r": theta * ind_r, "q_r": theta**2 * ind_r}

    # drift regime at ε = 0.1 (the spec's parameters), from the straddling p0: FE mass and mean on θ > 0
    eps0 = 0.1
    m0 = sgd_at(eps0)
    fe_dt = 0.005 if large else 0.02
    sol = m0.sme(order=1).fokker_planck().solve(box, p0, t_end=4.0, dt=fe_dt, progress=False,
                                               expectations=expect)
    ob = sol.observables
    t = np.asarray(ob["t"])
    pr = np.asarray(ob["E[right]"])
    mr = np.asarray(ob["E[m_r]"]) / pr
    # concentration inside the right basin at small noise ε₁ = 0.001 from N(1, 0.05²), on [0.5, 1.5]
    # (10 standard deviations from the walls): linear theory e^{−4t}, anharmonic corrections O(ε₁)
    eps1 = 0.001
    sol1 = sgd_at(eps1).sme(order=1).fokker_planck().solve(
        symfp.mesh.box([(0.5, 1.5)], cells=(400,)), sp.exp(-((theta - 1) ** 2) / (2 * 0.05**2)), t_end=4.0,
        dt=0.01, progress=False)
    t1 = np.asarray(sol1.observables["t"])
    v1 = np.asarray(sol1.observables["cov"])[:, 0, 0]
    floor = float(v1[-1])  # t = 4: e^{−16} of the initial excess left
    res["drift"] = {
        "eps": eps0, "t": t[::10].tolist(), "mass_right": pr[::10].tolist(), "mean_right": mr[::10].tolist(),
        "mass_right_t2": float(np.interp(2.0, t, pr)),
        # the mean on θ > 0 approaches 1 at the saddle's rate |f″(0)| = 1 (late leavers of θ ≈ 0)
        "mean_rate": _fit_rate(t, np.abs(mr - mr[-1]), (1.0, 2.5)),
        "eps_local": eps1, "t_local": t1[::10].tolist(), "var_local": v1[::10].tolist(),
        "floor": floor, "floor_linear": eps1 / 2.0,  # ε/f″(1)
        # window after the nonlinear transient and before round-off at the floor
        "rate": _fit_rate(t1, v1 - floor, (0.2, 1.5)), "rate_linear": 2 * 2.0,
    }
    # particles of exact SGD at t = 2 (20 steps): fraction on the right vs FE
    n_p = 100_000 if large else 20_000
    cl = m0.simulate(n_particles=n_p, steps=20, init={theta: sympy.stats.Normal("theta0", MEAN0, SD0)},
                     seed=3, outputs=2)
    frac = float(np.mean(cl.theta[:, 0] > 0))
    res["drift"]["particles_right_t2"] = frac
    res["drift"]["particles_right_t2_stderr"] = float(np.sqrt(frac * (1 - frac) / n_p))

    # diffusion regime: mean exit time from −1 to the right minimum +1
    rows = []
    exit_mesh = symfp.mesh.box([(-2.5, 1.0)], cells=(700 if large else 350,))
    n_exit = 10_000 if large else 3_000
    sim_eps = EPSILONS if large else EPSILONS[:2]
    for i, eps in enumerate(EPSILONS):
        mi = sgd_at(eps)
        sde = mi.sme(order=1)
        tau_fe = float(symfp.mean_exit_time(sde, exit_mesh, absorbing=["xmax"]).eval(np.array([[-1.0]]))[0])
        row = {"eps": eps, "fe": tau_fe, "ek": eyring_kramers(eps), "eps_log_fe": eps * np.log(tau_fe)}
        if eps in sim_eps:
            t_max = 9 * tau_fe  # censored fraction ≈ e^{−9} ≈ 1e-4
            absorb = symfp.particles.HalfSpace([1.0], 1.0)
            cs = sde.simulate(n_exit, t_max, 0.01, [-1.0], seed=20 + i, absorbing=absorb, outputs=2)
            et = cs.exit_times()
            row["sde"], row["sde_stderr"] = et.mean(stderr=True)
            row["sde_censored"] = et.censored_fraction
            cr = mi.simulate(n_particles=n_exit, steps=int(t_max / ETA), init=[-1.0], seed=40 + i,
                             absorbing=absorb, outputs=2)
            er = cr.exit_times()
            row["sgd"], row["sgd_stderr"] = er.mean(stderr=True)
            row["sgd_censored"] = er.censored_fraction
        rows.append(row)
    res["exit"] = rows
    inv = np.array([1 / r["eps"] for r in rows])
    res["delta_v_fit"] = float(np.polyfit(inv, np.log([r["fe"] for r in rows]), 1)[0])
    # with the Eyring–Kramers prefactor √2π divided out, ε log(τ/prefactor) → ΔV
    pref = 2 * np.pi * np.sqrt(0.5)
    for r in rows:
        r["eps_log_reduced"] = float(r["eps"] * np.log(r["fe"] / pref))

    # Gibbs limit, tilted well: early split vs long-time split
    eps_t = 0.1
    mt = sgd_at(eps_t, TILT)
    t_long = 150.0 if large else 100.0
    solt = mt.sme(order=1).fokker_planck().solve(box, p0, t_end=t_long, dt=0.1, progress=False,
                                                 expectations={"right": ind_r}, output_every=2)
    tt = np.asarray(solt.observables["t"])
    left = 1 - np.asarray(solt.observables["E[right]"])
    res["tilted"] = {
        "eps": eps_t, "c": TILT, "t": tt.tolist(), "left": left.tolist(),
        "left_early": float(np.interp(3.0, tt, left)), "left_final": float(left[-1]),
        "left_gibbs": gibbs_left_mass(eps_t, TILT),
    }
    init0 = {theta: sympy.stats.Normal("theta0", MEAN0, SD0)}
    ctl = mt.simulate(n_particles=n_p, steps=int(t_long / ETA), init=init0, seed=5, outputs=2)
    fl = float(np.mean(ctl.theta[:, 0] < 0))
    res["tilted"]["particles_left_final"] = fl
    res["tilted"]["particles_left_final_stderr"] = float(np.sqrt(fl * (1 - fl) / n_p))
    res["tilted"]["left_gibbs_untilted"] = gibbs_left_mass(eps_t, 0.0)
    if figure:
        _figure(res, figure)
    return res


def _figure(res: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from symfp.report.figures import save

    fig, ax = plt.subplots(1, 3, figsize=(12.5, 3.6))
    d = res["drift"]
    t = np.array(d["t_local"])
    ax[0].semilogy(t, np.abs(np.array(d["var_local"]) - d["floor"]) + 1e-14,
                   label=f"|Var − floor|, ε = {d['eps_local']:g} (FE)")
    k = np.searchsorted(t, 0.5)
    ax[0].semilogy(t, abs(d["var_local"][k] - d["floor"]) * np.exp(-4 * (t - t[k])), "--", label=r"$e^{-4t}$")
    t0 = np.array(d["t"])
    ax[0].semilogy(t0, np.abs(np.array(d["mean_right"]) - d["mean_right"][-1]) + 1e-14,
                   label=f"|E[θ|θ>0] − final|, ε = {d['eps']:g}")
    ax[0].set_ylim(1e-7, 1)
    ax[0].set_xlabel("t")
    ax[0].set_title(f"drift regime: rate {d['rate']:.2f} (linear theory 4)")
    ax[0].legend(fontsize=7)
    rows = res["exit"]
    eps = np.array([r["eps"] for r in rows])
    ax[1].semilogy(1 / eps, [r["fe"] for r in rows], "o-", label="FE")
    ax[1].semilogy(1 / eps, [r["ek"] for r in rows], "--", label="Eyring–Kramers")
    sim = [r for r in rows if "sde" in r]
    ax[1].errorbar([1 / r["eps"] for r in sim], [r["sde"] for r in sim], [3 * r["sde_stderr"] for r in sim],
                   fmt="s", label="SDE particles")
    ax[1].errorbar([1 / r["eps"] for r in sim], [r["sgd"] for r in sim], [3 * r["sgd_stderr"] for r in sim],
                   fmt="x", label="SGD particles")
    ax[1].set_xlabel("1/ε")
    ax[1].set_title(f"mean exit time, fitted ΔV = {res['delta_v_fit']:.3f}")
    ax[1].legend(fontsize=7)
    g = res["tilted"]
    ax[2].plot(g["t"], g["left"], label="left mass (FE)")
    ax[2].axhline(g["left_gibbs"], ls="--", color="k", label="Gibbs")
    ax[2].errorbar([g["t"][-1]], [g["particles_left_final"]], [3 * g["particles_left_final_stderr"]], fmt="o",
                   label="SGD particles")
    ax[2].set_xscale("symlog", linthresh=1)
    ax[2].set_xlabel("t")
    ax[2].set_title(f"tilted well c = {g['c']:g}, ε = {g['eps']:g}")
    ax[2].legend(fontsize=7)
    fig.tight_layout()
    save(fig, path, dpi=80)


def readme_section(results: dict) -> str:
    """Markdown section of derivations/README.md, every number formatted from ``results``."""
    r = results
    d, g, low = r["drift"], r["tilted"], r["exit"][-1]
    return (
        "## Double well: the two regimes\n\n"
        f"![double well regimes](figures/{NAME}.png)\n\n"
        f"From a density straddling the barrier, {d['mass_right_t2']:.3f} of the mass settles on the right "
        f"by t = 2 and the within-basin variance relaxes at rate {d['rate']:.2f} (linear theory 2f″(1) = 4); "
        f"escape then takes E τ = {low['fe']:.1f} at ε = {low['eps']:g} (Eyring–Kramers {low['ek']:.1f}), "
        f"with log E τ growing like ΔV/ε, ΔV fitted {r['delta_v_fit']:.3f} (exact 1/4); in the tilted "
        f"well the left mass goes from {g['left_early']:.2f} at t = 3 to {g['left_final']:.2f} "
        f"(Gibbs {g['left_gibbs']:.2f}): the early split is set by the initial density, the final one by "
        "the depth of the wells.\n"
    )


if __name__ == "__main__":
    import json
    from pathlib import Path

    out = analyse(size(), figure=str(Path(__file__).parent / "figures" / f"{NAME}.png"))
    short = {k: v for k, v in out.items() if k not in ("drift", "tilted")}
    short["drift"] = {k: v for k, v in out["drift"].items() if not isinstance(v, list)}
    short["tilted"] = {k: v for k, v in out["tilted"].items() if not isinstance(v, list)}
    print(json.dumps(short, indent=1))
    print(readme_section(out))
