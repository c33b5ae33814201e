"""Cost of the safety checks added by the hostile-input pass (issue 12), as ratios from one run.

* particles: an SDE with state-dependent diffusion D = 1/10 + θ²/10 (Euler–Maruyama), with the
  D ⪰ 0 check at the particles every ``check_every`` steps against the same run with the check
  switched off (the geometric-growth divergence monitor reuses the max|θ| the blow-up test already
  computes, so it costs nothing measurable);
* finite elements: the pre-solve checks (D ⪰ 0 at every vertex and the SME's stability lr·λ_max < 2)
  against one FE forward solve of the order-1 SME of SGD on a quartic loss.
"""

from __future__ import annotations

import time


def _best(f, repeat: int = 3) -> float:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        out.append(time.perf_counter() - t0)
    return min(out)


def run(quick: bool = False) -> list[dict]:
    import sympy as sp

    import symfp
    from symfp.particles import sde as psde

    th = sp.Symbol("theta", real=True)
    sde = symfp.SDE([th], -th, sp.Rational(1, 10) + th**2 / 10)
    n, t_end = (20_000, 2.0) if quick else (200_000, 5.0)

    def sim():
        sde.simulate(n, t_end, 0.01, init=0.5, seed=0, compile=False)

    sim()  # warm-up: lambdify, caches
    with_check = _best(sim)
    orig = psde.SDEStepper.check
    psde.SDEStepper.check = lambda self, theta, k: None
    try:
        without = _best(sim)
    finally:
        psde.SDEStepper.check = orig
    steps = int(round(t_end / 0.01))
    rows = [{
        "benchmark": "checks", "case": f"SDE particles, D(θ) ⪰ 0 check every 10 steps (n={n}, {steps} steps)",
        "value": round(with_check / without, 3), "unit": "× time without the check",
        "note": f"{with_check:.2f} s vs {without:.2f} s",
    }]
    try:
        from symfp.fem.checks import check_fe_problem
    except ImportError:  # pragma: no cover
        return rows
    cells = 2_000 if quick else 20_000
    model = symfp.SGD(loss=th**4 / 4 - th**2 / 2, params=[th], data=None, lr=0.05, noise=0.1)
    s1 = model.sme()
    mesh = symfp.mesh.box([(-2.0, 2.0)], cells=(cells,))
    fp = s1.fokker_planck()
    solve = _best(lambda: fp.solve(mesh, sp.exp(-th**2 * 4), t_end=0.5, dt=0.01, progress=False), 2)
    check = _best(lambda: check_fe_problem(s1, mesh, "bench"), 3)
    rows.append({
        "benchmark": "checks", "case": f"FE pre-solve checks, 1-D P1, {cells} cells (vs a 50-step solve)",
        "value": round(check / solve, 4), "unit": "× one forward solve",
        "note": f"{check * 1e3:.1f} ms vs {solve:.2f} s",
    })
    return rows
