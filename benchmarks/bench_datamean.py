"""Benchmarks of data-mean losses (logistic regression, a tanh unit): the derivation sme(2) + Fokker–Planck
+ weak form + LaTeX at N = 10^3..10^5 (goal < 2 s, flat in N), exact-SGD particles
(particle-steps/s at N = 10^5, B = 32), SDE particles of the data-mean SME (cost per particle × sample,
chunked memory), the FE solve with data-mean coefficients against a polynomial loss on the same mesh."""

from __future__ import annotations

import resource
import time

import numpy as np
import sympy as sp

import symfp

W1, W2, X1, X2, Y = sp.symbols("w1 w2 x1 x2 y", real=True)


def _logistic(n: int, B: int = 32) -> symfp.SGD:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 2))
    Yv = np.where(X[:, 0] + 0.5 * rng.normal(size=n) > 0, 1.0, -1.0)
    loss = sp.log(1 + sp.exp(-Y * (W1 * X1 + W2 * X2)))
    return symfp.SGD(loss, [W1, W2], symfp.Dataset({X1: X[:, 0], X2: X[:, 1], Y: Yv}),
                     lr=sp.Rational(1, 10), batch_size=B)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _real_loss(kind: str, n: int) -> symfp.SGD:
    """Logistic regression (2 weights) or a 2-weight tanh unit on N samples (non-polynomial losses)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 2))
    Yv = np.where(X[:, 0] + 0.5 * rng.normal(size=n) > 0, 1.0, -1.0)
    if kind == "logistic":
        loss = sp.log(1 + sp.exp(-Y * (W1 * X1 + W2 * X2)))
        data = symfp.Dataset({X1: X[:, 0], X2: X[:, 1], Y: Yv})
    else:
        loss = (W2 * sp.tanh(W1 * X1) - Y) ** 2 / 2
        data = symfp.Dataset({X1: X[:, 0], Y: np.tanh(0.8 * X[:, 0]) + 0.1 * rng.normal(size=n)})
    return symfp.SGD(loss, [W1, W2], data, lr=sp.Rational(1, 2), batch_size=8)


def derive_times(kind: str, n: int) -> dict[str, float]:
    """Seconds of each stage of the derivation: model, sme(order=2), Fokker–Planck operator + weak form,
    the stationary-density decision (numerical curl), the LaTeX document; and their total."""
    c0 = time.process_time()
    t = [time.perf_counter()]
    model = _real_loss(kind, n)
    t.append(time.perf_counter())
    sde = model.sme(order=2)
    t.append(time.perf_counter())
    fp = sde.fokker_planck()
    _ = fp.operator
    fp.weak_form("forward")
    t.append(time.perf_counter())
    fp.stationary_density()
    t.append(time.perf_counter())
    doc = symfp.latex_document(model, sde, fp)
    t.append(time.perf_counter())
    keys = ("model", "sme2", "fp+weak", "stationary", "latex")
    out = {k: t[i + 1] - t[i] for i, k in enumerate(keys)}
    out["total"] = t[-1] - t[0]
    out["cpu"] = time.process_time() - c0  # the same under load (wall time is not)
    out["tex_kB"] = len(doc.source) / 1000
    return out


def derive_rows() -> list[dict]:
    """sme(2) + Fokker–Planck + weak form + LaTeX of logistic regression and a tanh unit, N = 10^3..10^5
    (in a fresh process the first row also pays the imports and SymPy's first-use costs)."""
    rows = []
    for kind in ("logistic", "tanh"):
        for n in (10**3, 10**4, 10**5):
            s = derive_times(kind, n)
            stages = ", ".join(f"{k} {s[k]:.2f}" for k in ("model", "sme2", "fp+weak", "stationary", "latex"))
            rows.append({"benchmark": f"derive {kind}: sme(2)+FP+weak+LaTeX", "case": f"N={n}",
                         "value": round(s["total"], 3), "unit": "s",
                         "note": f"goal < 2 s, flat in N; cpu {s['cpu']:.2f} s; stages (s): {stages}; "
                                 f".tex {s['tex_kB']:.0f} kB"})
    return rows


def run(quick: bool = False) -> list[dict]:
    from symfp.particles.streams import available_cores

    rows: list[dict] = derive_rows()  # cheap at every N: the same sizes in quick runs
    # ---- exact SGD on the actual loss: B gathered samples per particle and step, never N
    n_data, n_part, steps = 10**5, (20_000 if quick else 200_000), (5 if quick else 20)
    model = _logistic(n_data)
    # warm-up (lambdify, threads, the C kernel's build: its first-call time is in bench_particles)
    warm = model.simulate(n_particles=1000, steps=2, init=(0.0, 0.0), seed=0, compile=True)
    # the stepping rate (outputs=2: the start and the end), and with the default 101 outputs, which
    # here records the mean and covariance after every one of the 20 steps (serial, ≈3 ms each)
    for case, outs in ((f"N={n_data}, B=32", {"outputs": 2}),
                       (f"N={n_data}, B=32, default outputs (every step)", {})):
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            cloud = model.simulate(n_particles=n_part, steps=steps, init=(0.0, 0.0), seed=0, **outs)
            best = min(best, time.perf_counter() - t0)
        kernel = cloud.info.get("kernel", "torch") if cloud.info.get("compiled") else "torch (eager)"
        rows.append({"benchmark": "exact SGD, logistic", "case": case,
                     "value": f"{n_part * steps / best:.3e}", "unit": "particle-steps/s",
                     "note": f"{n_part} particles, {steps} steps, cpu, float64, hoisted features "
                             f"(x1*y, x2*y), compile='auto' (default): {kernel}; build "
                             f"{warm.info.get('compile_time', 0):.2f} s in the warm-up; "
                             f"{available_cores()} threads; best of 3"
                             + ("; aim >= 5e6" if outs else "")})
    # ---- SDE particles of the order-1 SME: data-means reduced over all N samples per particle and step
    import os

    n_data = 10**3 if quick else 10**4
    sde = _logistic(n_data).sme(order=1)
    for label, env, n_part in (("C reduction (symfp.native.datamean)", "1", 2000 if quick else 10**5),
                               ("torch reduction (SYMFP_NATIVE=0)", "0", 2000 if quick else 10**4)):
        os.environ["SYMFP_NATIVE"] = env
        try:
            sde.simulate(n_particles=100, t_end=0.1, dt=0.1, init=(0.0, 0.0), seed=0)
            rss0 = _rss_mb()
            t0 = time.perf_counter()
            sde.simulate(n_particles=n_part, t_end=0.2, dt=0.1, init=(0.0, 0.0), seed=0)
            dt = time.perf_counter() - t0
        finally:
            os.environ.pop("SYMFP_NATIVE", None)
        per = dt / (2 * n_part * n_data)
        chunks = "" if env == "1" else ", chunks of 2^22 values"
        rows.append({"benchmark": "SDE particles, logistic SME(1)",
                     "case": f"N={n_data}, n={n_part}, {label}",
                     "value": f"{per * 1e9:.2f}", "unit": "ns per particle x sample x step",
                     "note": f"drift+diffusion data-means, 2 Euler steps{chunks}; peak RSS "
                             f"+{_rss_mb() - rss0:.0f} MB (aim <= 1 GB at 1e5 particles x 1e4 samples)"})
    # ---- FE: data-mean coefficients (P1 interpolation) + solve vs a polynomial loss, same mesh and steps
    cells = 32 if quick else 128
    mesh = symfp.mesh.box([(0.0, 2.0), (-1.0, 1.0)], cells=(cells, cells))
    p0 = sp.exp(-((W1 - 1) ** 2 + W2**2) / (2 * 0.1**2))
    times = {}
    for kind in ("polynomial", "logistic"):
        if kind == "logistic":
            fp = _logistic(10**3, B=8).sme(order=1).fokker_planck()
        else:
            rng = np.random.default_rng(0)
            xs = rng.normal(size=10**3)
            m = symfp.SGD((W1 * xs.std() * X1 + W2 * X2 - Y) ** 2 / 2, [W1, W2],
                          symfp.Dataset({X1: xs, X2: rng.normal(size=10**3), Y: rng.normal(size=10**3)}),
                          lr=sp.Rational(1, 10), batch_size=8)
            fp = m.sme(order=1).fokker_planck()
        t0 = time.perf_counter()
        sol = fp.solve(mesh, p0, t_end=0.5, dt=0.05)
        times[kind] = (time.perf_counter() - t0, sol.info)
    t_log, info = times["logistic"]
    rows.append({"benchmark": "FE solve, data-mean coefficients", "case": f"{cells}^2 P1, 10 steps",
                 "value": round(t_log, 2), "unit": "s",
                 "note": f"coefficients {info.get('coefficient_seconds', 0):.2f} s at "
                         f"{info.get('coefficient_points', 0)} points (N=1000; one shared pass for b, D, "
                         "div D at the dofs; cell Peclet from the P1 interpolants)"})
    rows.append({"benchmark": "FE solve, data-mean coefficients", "case": "ratio to polynomial loss",
                 "value": round(t_log / times["polynomial"][0], 2), "unit": "x", "note": "aim <= 3"})
    return rows


if __name__ == "__main__":
    for r in run(quick=True):
        print(r)
