"""Particle-engine benchmarks: exact mini-batch SGD vs a naive torch loop, SDE vs torchsde, peak memory.

``run(quick)`` returns rows {"benchmark", "case", "value", "unit", "note"} for benchmarks/run.py.
Timings are wall-clock on whatever device ``device="auto"`` picks, best of 3 for the headline rows;
never asserted in tests. The SDE rows give the eager step and the ``compile=True`` one (warm: the
compiled kernel reused) with the first call's compile time. Further sections: like-for-like ratios
(eager and compiled against torchsde and a naive loop, same dtype, RNG precision and threads),
exact SGD on the logistic loss at N = 10⁵ (eager vs the C kernel vs the inductor-fused step), a
profile of where a particle-step's time goes (RNG, gather, arithmetic, the rest), and grid
tabulation of a data-mean SME.

Allocator: glibc serves each allocation above its mmap threshold (128 KiB by default, adapted upward
only after frees) with a fresh ``mmap``, so a loop that allocates ~50 MB temporaries per step (the
naive loop's ``X[idx]``) pays page faults on every step; importing PETSc (so dolfinx) raises the
threshold, which made the *same* naive loop 4.3× faster (8.3e5 → 3.6e6 particle-steps/s, measured).
To compare against the naive loop at its best, :func:`run` raises the threshold (``mallopt``) for the
whole process, for both paths, and says so in the rows' notes.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import sympy as sp

# VmHWM (peak RSS of this process image), not ru_maxrss: Linux carries ru_maxrss over fork + exec,
# so a child of a large parent would report the parent's peak. torch is imported before the baseline.
MEM_SCRIPT = """
import sympy as sp, symfp, torch
def hwm():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
x, y = sp.symbols("x y", real=True)
sde = symfp.SDE([x, y], [-x, -y], 0.1)
sde.simulate(n_particles=100, t_end=0.01, dt=0.01, init=[0.0, 0.0], dtype="float32", outputs=2)
base = hwm()
sde.simulate(n_particles={n}, t_end=0.05, dt=0.01, init=[0.0, 0.0], dtype="float32", outputs=2,
             chunk_size={chunk})
print(base, hwm())
"""


def _sgd_problem(N: int = 1000):
    import symfp

    w1, w2, x, y = sp.symbols("w1 w2 x y", real=True)
    rng = np.random.default_rng(0)
    xs = rng.normal(size=N)
    ys = 0.8 * xs + 0.1 * rng.normal(size=N)
    model = symfp.SGD(
        loss=(w1 * w2 * x - y) ** 2 / 2,
        params=[w1, w2],
        data=symfp.Dataset({x: xs, y: ys}),
        lr=0.05,
        batch_size=32,
    )
    return model, xs, ys


def _naive_sgd(xs, ys, n, steps, B, lr, device, dtype=None):
    import torch

    dtype = dtype or torch.float64
    X = torch.as_tensor(xs, device=device, dtype=dtype)
    Y = torch.as_tensor(ys, device=device, dtype=dtype)
    w = torch.full((n, 2), 0.5, dtype=dtype, device=device)
    g = torch.Generator(device=device).manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(len(xs), (n, B), generator=g, device=device)
        xb, yb = X[idx], Y[idx]
        r = w[:, :1] * w[:, 1:] * xb - yb
        grad = torch.stack([(r * w[:, 1:] * xb).mean(1), (r * w[:, :1] * xb).mean(1)], dim=1)
        w = w - lr * grad
    return w


def _rank_one_rows(quick: bool, dev) -> list[dict]:
    import pathlib

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "derivations"))
    import linear_network as ln

    sde = ln.model.subs(ln.params).sme(order=ln.order)
    dt = float(ln.params[ln.eta])
    n, k = (20_000, 150) if quick else (20_000, 1500)
    rows = []
    for method in ("euler", "weak2"):
        t = _timed(lambda m=method: sde.simulate(n, k * dt, dt, init=ln.particles["init"], method=m,
                                                 outputs=2, device=dev), repeat=1)
        rows.append(
            {
                "benchmark": "SDE rank-1 D",
                "case": f"linear network, {method}",
                "value": n * k / t,
                "unit": "particle-steps/s",
                "note": f"{n} particles x {k} steps in {t:.2f} s (reported before: 6e5 particle-steps/s)",
            }
        )
    return rows


def _bandwidth_rows(rate: float, dev) -> list[dict]:
    """Achieved memory bandwidth of the default SDE Euler step against the device's copy bandwidth.

    The traffic counted is a lower bound for d = 2: the float64 state read and written (32 B) and the
    float32 normals written by the sampler and read by the update (16 B), 48 B per particle-step.
    The reference is ``torch`` copying a 256 MiB tensor on the same device (read + write counted).
    """
    import torch

    n = 2**25  # 32 Mi float64 = 256 MiB
    a = torch.empty(n, dtype=torch.float64, device=dev).fill_(1.0)
    b = torch.empty_like(a)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def copy():
        b.copy_(a)
        sync()

    copy()
    t = _timed(copy, repeat=5)
    peak = 2 * 8 * n / t
    achieved = 48 * rate
    return [
        {
            "benchmark": "bandwidth",
            "case": f"torch copy_ of 256 MiB ({dev})",
            "value": peak / 1e9,
            "unit": "GB/s",
            "note": "read + write; the reachable streaming bandwidth of this device",
        },
        {
            "benchmark": "bandwidth",
            "case": "SDE Euler default step (≥ 48 B per particle-step)",
            "value": achieved / 1e9,
            "unit": "GB/s",
            "note": f"{100 * achieved / peak:.0f} % of the copy bandwidth (lower bound on traffic, d = 2)",
        },
    ]


def _timed(f, repeat: int = 2) -> float:
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def _interleaved(fns: dict, reps: int) -> dict:
    """Best wall time of each callable over ``reps`` rounds, the callables alternating within a round.

    Interleaving gives both sides the same machine state (load, allocator, caches) in each round;
    the best of the rounds is the least disturbed one.
    """
    best = dict.fromkeys(fns, np.inf)
    for _ in range(reps):
        for name, f in fns.items():
            t = time.perf_counter()
            f()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


class _OU:
    """torchsde's view of the OU SDE dθ = −θ dt + √0.1 dW (diagonal noise, Itô)."""

    noise_type, sde_type = "diagonal", "ito"

    def f(self, t, y):
        return -y

    def g(self, t, y):
        import torch

        return torch.full_like(y, np.sqrt(0.1))


def like_for_like_rows(quick: bool, dev, reps: int = 5) -> list[dict]:
    """Headline ratios with equal dtype, equal RNG precision and one thread on both sides, warm.

    - SDE Euler (OU, d = 2, diagonal noise, 2·10⁵ particles, 100 steps): symfp ``simulate`` against
      ``torchsde.sdeint(method="euler")``, both in float32 (state and normals) and both in float64
      (symfp with ``fast_normals=False``: float64 normals like torchsde's).
    - exact SGD (d = 2, B = 32, N = 1000, 2·10⁵ particles, 20 steps): symfp against a naive batched
      torch loop (gather the mini-batch, closed-form gradient), both float64 and both float32.

    Each pair alternates ``reps`` times (warm-up call first), best of the rounds for each side.
    """
    import torch

    import symfp

    rows: list[dict] = []
    threads0 = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x1, x2 = sp.symbols("x1 x2", real=True)
        sde = symfp.SDE([x1, x2], [-x1, -x2], 0.05)
        ns, ks = (20_000, 20) if quick else (200_000, 100)
        try:
            import torchsde
        except ImportError:
            torchsde = None
        for dtype in ("float32", "float64"):
            tdt = getattr(torch, dtype)

            def ours(dtype=dtype):
                sde.simulate(ns, ks * 0.01, 0.01, init=[1.0, 1.0], outputs=2, device=dev, compile=False,
                             threads=1, dtype=dtype, fast_normals=False)

            def ours_compiled(dtype=dtype):
                sde.simulate(ns, ks * 0.01, 0.01, init=[1.0, 1.0], outputs=2, device=dev, compile=True,
                             threads=1, dtype=dtype, fast_normals=False)

            fns = {"symfp": ours, "symfp compiled": ours_compiled}
            if torchsde is not None:
                y0 = torch.ones(ns, 2, dtype=tdt, device=dev)
                ts = torch.tensor([0.0, ks * 0.01], dtype=tdt, device=dev)
                fns["torchsde"] = lambda y0=y0, ts=ts: torchsde.sdeint(_OU(), y0, ts, method="euler", dt=0.01)
            for f in fns.values():
                f()
            best = _interleaved(fns, reps)
            note = f"OU d=2, {ns} particles, {ks} steps, {dtype} state and normals, 1 thread, best of {reps}"
            rows.append({"benchmark": "like-for-like SDE Euler", "case": f"symfp {dtype}",
                         "value": ns * ks / best["symfp"], "unit": "particle-steps/s", "note": note})
            rows.append({"benchmark": "like-for-like SDE Euler", "case": f"symfp compile=True {dtype}",
                         "value": ns * ks / best["symfp compiled"], "unit": "particle-steps/s",
                         "note": "fused step (inductor), normals drawn eagerly with the slab's generator; "
                                 "warm (compiled in the warm-up call)"})
            if "torchsde" in best:
                rows += [
                    {"benchmark": "like-for-like SDE Euler", "case": f"torchsde {dtype}",
                     "value": ns * ks / best["torchsde"], "unit": "particle-steps/s",
                     "note": f"torchsde {torchsde.__version__}, interleaved with symfp"},
                    {"benchmark": "like-for-like SDE Euler", "case": f"speed-up vs torchsde, {dtype}",
                     "value": best["torchsde"] / best["symfp"], "unit": "x",
                     "note": "aim >= " + ("10" if dtype == "float32" else "5")
                             + "; same dtype, RNG precision, threads; one run"},
                    {"benchmark": "like-for-like SDE Euler",
                     "case": f"speed-up vs torchsde, {dtype}, compile=True",
                     "value": best["torchsde"] / best["symfp compiled"], "unit": "x",
                     "note": "aim >= " + ("10" if dtype == "float32" else "5")
                             + "; same dtype, RNG precision, threads; one run"},
                ]
            else:
                rows.append({"benchmark": "like-for-like SDE Euler", "case": f"torchsde {dtype}",
                             "value": float("nan"), "unit": "particle-steps/s",
                             "note": "torchsde not installed"})
        n, steps = (20_000, 5) if quick else (200_000, 20)
        model, xs, ys = _sgd_problem()
        model.simulate(1000, 1, init=[0.5, 0.5], outputs=2, device=dev)
        for dtype in ("float64", "float32"):
            tdt = getattr(torch, dtype)
            fns = {
                "symfp": lambda dtype=dtype: model.simulate(n, steps, init=[0.5, 0.5], outputs=2, device=dev,
                                                            threads=1, dtype=dtype, fast_normals=False),
                "symfp compiled": lambda dtype=dtype: model.simulate(
                    n, steps, init=[0.5, 0.5], outputs=2, device=dev, threads=1, dtype=dtype,
                    fast_normals=False, compile=True),
                "naive": lambda tdt=tdt: _naive_sgd(xs, ys, n, steps, 32, 0.05, dev, dtype=tdt),
            }
            for f in fns.values():
                f()
            best = _interleaved(fns, reps)
            note = f"d=2, B=32, N=1000, {n} particles, {steps} steps, {dtype}, 1 thread, best of {reps}"
            rows += [
                {"benchmark": "like-for-like exact SGD", "case": f"symfp {dtype}",
                 "value": n * steps / best["symfp"], "unit": "particle-steps/s", "note": note},
                {"benchmark": "like-for-like exact SGD", "case": f"naive batched torch loop {dtype}",
                 "value": n * steps / best["naive"], "unit": "particle-steps/s",
                 "note": "gather X[idx] + closed-form gradient, interleaved with symfp"},
                {"benchmark": "like-for-like exact SGD", "case": f"speed-up vs naive loop, {dtype}",
                 "value": best["naive"] / best["symfp"], "unit": "x", "note": "aim >= 5; one run"},
                {"benchmark": "like-for-like exact SGD", "case": f"symfp compile=True {dtype}",
                 "value": n * steps / best["symfp compiled"], "unit": "particle-steps/s",
                 "note": "CPU: the C kernel (draw + gather + gradient + mean + update per slab); "
                         "other devices: the inductor-fused step"},
                {"benchmark": "like-for-like exact SGD",
                 "case": f"speed-up vs naive loop, {dtype}, compile=True",
                 "value": best["naive"] / best["symfp compiled"], "unit": "x", "note": "aim >= 5; one run"},
            ]
    finally:
        torch.set_num_threads(threads0)
    return rows


def _logistic_sgd(N: int, B: int = 32):
    """Logistic regression on two standard-normal features, N samples, labels from a noisy margin."""
    import symfp

    w1, w2, x1, x2, y = sp.symbols("w1 w2 x1 x2 y", real=True)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, 2))
    Y = np.where(X @ np.array([1.0, -0.5]) + 0.5 * rng.normal(size=N) > 0, 1.0, -1.0)
    loss = sp.log(1 + sp.exp(-y * (w1 * x1 + w2 * x2)))
    data = symfp.Dataset({x1: X[:, 0], x2: X[:, 1], y: Y})
    return symfp.SGD(loss, [w1, w2], data, lr=sp.Rational(1, 2), batch_size=B)


def logistic_rows(quick: bool, dev) -> list[dict]:
    """Exact SGD on the logistic loss at N = 10⁵, B = 32, d = 2: eager, the C kernel, inductor.

    ``compile=True`` on CPU takes the C kernel (:mod:`symfp.particles.native`): per slab it draws the
    indices from the slab's SFC64 stream (numpy's algorithm), gathers the hoisted features (x₁y, x₂y),
    evaluates the sigmoid of the margin (vector ``exp``), averages and updates, one slab per thread
    of the pool. With ``SYMFP_NATIVE=0`` the inductor-fused step runs instead (indices drawn in the
    slab pool, one OpenMP kernel for the block). Best of 3 each, warm; the first calls (a cold build
    in an empty kernel cache, inductor's compile) are timed separately.
    """
    import os
    import tempfile

    from symfp.particles.streams import available_cores

    n, steps = (20_000, 5) if quick else (200_000, 20)
    model = _logistic_sgd(100_000)
    kw = dict(init=[0.3, -0.2], outputs=2, device=dev)
    model.simulate(1000, 1, **kw, compile=False)
    old = {k: os.environ.get(k) for k in ("SYMFP_CACHE_DIR", "SYMFP_NATIVE")}
    firsts = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["SYMFP_CACHE_DIR"] = tmp
            for kernel, env in (("C kernel", "1"), ("inductor", "0")):
                os.environ["SYMFP_NATIVE"] = env
                t0 = time.perf_counter()
                first = model.simulate(n, 2, **kw, compile=True)
                firsts[kernel] = (first, time.perf_counter() - t0)
        auto = available_cores()
        rows = []
        note = f"N=100000, B=32, d=2, {n} particles, {steps} steps, {dev}, float64"
        for threads in (None, 1):
            tl = f"threads=auto={auto}" if threads is None else "threads=1"
            for label, comp, env in (("eager", False, "1"), ("compile=True: C kernel", True, "1"),
                                     ("compile=True: inductor (SYMFP_NATIVE=0)", True, "0")):
                os.environ["SYMFP_NATIVE"] = env
                opts = {"compile": comp, **({} if threads is None else {"threads": threads})}
                t = _timed(lambda o=opts: model.simulate(n, steps, **kw, **o), repeat=3)
                info = model.simulate(1000, 1, **kw, **opts).info
                aim = "; aim >= 5e6" if "C kernel" in label and threads is None else ""
                bad = ("" if info.get("compiled") or not comp
                       else f"; not compiled: {info.get('compile_error')}")
                rows.append({"benchmark": "exact SGD, logistic", "case": f"{label}, {tl}",
                             "value": n * steps / t, "unit": "particle-steps/s", "note": note + aim + bad})
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    for kernel, (first, t_first) in firsts.items():
        rows.append({"benchmark": "exact SGD, logistic", "case": f"compile=True, {kernel}: first call",
                     "value": first.info.get("compile_time") or float("nan"), "unit": "s",
                     "note": f"build/compile included, empty cache (2 steps; whole call {t_first:.2f} s)"})
    return rows


def tabulation_rows(quick: bool, dev) -> list[dict]:
    """SDE particles of the logistic SME (order 1): per-particle data-means against grid tabulation.

    The direct path reduces over the N samples for every particle and step (n·N); ``tabulate=`` evaluates
    b and 2D once at the 65² nodes of a grid over [−2, 2]² (P·N) and interpolates them multilinearly.
    The rows give both step times, the speed-up, the one-time build and the measured interpolation
    errors (relative, at 256 random points of the box).
    """
    from symfp.particles import GridSpec

    N, n, steps = (2_000, 2_000, 3) if quick else (10_000, 10_000, 10)
    sde = _logistic_sgd(N, B=32).sme(order=1)
    kw = dict(n_particles=n, t_end=steps * 0.1, dt=0.1, init=[0.3, -0.2], outputs=2, device=dev, seed=0)
    grid = GridSpec(bounds=[(-2.0, 2.0), (-2.0, 2.0)], points=65)
    t0 = time.perf_counter()
    tab = sde.simulate(**kw, tabulate=grid)
    t_first = time.perf_counter() - t0
    t_tab = _timed(lambda: sde.simulate(**kw, tabulate=grid), repeat=2)
    t_dir = _timed(lambda: sde.simulate(**kw), repeat=2)
    info = tab.info["tabulation"]
    note = f"logistic SME(1), N={N}, {n} particles, {steps} Euler steps, {dev}"
    per = 1e9 / (n * steps)
    b = "SDE data-mean tabulation"
    cost = f"; {1e9 * t_dir / (n * N * steps):.3g} ns per particle x sample x step"
    return [
        {"benchmark": b, "case": "direct per-particle data-means", "value": t_dir * per,
         "unit": "ns per particle-step", "note": note + cost},
        {"benchmark": b, "case": "tabulated 65^2 grid, multilinear", "value": t_tab * per,
         "unit": "ns per particle-step", "note": note + " (table built once, cached)"},
        {"benchmark": b, "case": "speed-up tabulated vs direct", "value": t_dir / t_tab,
         "unit": "x", "note": "grows like N: the step no longer reduces over the samples"},
        {"benchmark": b, "case": "table build (first call)", "value": info["build_s"],
         "unit": "s", "note": f"{info['nodes']} nodes x N samples; whole first call {t_first:.2f} s"},
        {"benchmark": b, "case": "interpolation error, drift", "value": info["drift_error"],
         "unit": "relative", "note": "max |exact - interpolated| / max |b| at 256 random points of the box"},
        {"benchmark": b, "case": "interpolation error, 2D", "value": info["diffusion_error"],
         "unit": "relative", "note": "same, for 2D (PSD after interpolation)"},
    ]


def profile_rows(quick: bool, dev) -> list[dict]:
    """Where the time of a particle-step goes (one thread, warm), in ns per particle-step.

    SDE Euler (OU, d = 2): the normals (torch ``randn``, float32 and float64), the step's arithmetic
    eagerly and compiled (given the normals), and the rest of a ``simulate`` step (runner: slab
    loop, moment outputs, blow-up checks, Python). Exact SGD (logistic, N = 10⁵, B = 32): the indices
    (numpy SFC64 int32), one ``index_select`` gather per feature column, the eager per-sample
    arithmetic (sigmoid of the margin, products, means), the fused compiled kernel given the
    indices, and the rest of a compiled ``simulate`` step.
    """
    import torch

    import symfp
    from symfp.particles.noise import Noise
    from symfp.particles.recursion import RecursionStepper
    from symfp.particles.sde import SDEStepper
    from symfp.particles.streams import slab_generators, slab_seed

    n = 32_768  # one slab
    reps = 20 if quick else 100
    rows: list[dict] = []
    threads0 = torch.get_num_threads()
    torch.set_num_threads(1)

    def per(f, count=reps):
        f()
        t = _timed(lambda: [f() for _ in range(count)], repeat=3)
        return 1e9 * t / count / n

    def row(bench, case, value, note=""):
        rows.append({"benchmark": bench, "case": case, "value": value, "unit": "ns per particle-step",
                     "note": note})

    try:
        x1, x2 = sp.symbols("x1 x2", real=True)
        sde = symfp.SDE([x1, x2], [-x1, -x2], 0.05)
        st = SDEStepper(sde, 0.01, "euler")
        gen, npg = slab_generators(slab_seed(0, 0), dev)
        theta = torch.ones((n, 2), dtype=torch.float64, device=dev)
        z32 = torch.randn((n, 2), dtype=torch.float32)
        b = "profile SDE Euler"
        row(b, "normals, randn float32", per(lambda: torch.randn((n, 2), generator=gen, dtype=torch.float32)))
        row(b, "normals, randn float64", per(lambda: torch.randn((n, 2), generator=gen, dtype=torch.float64)))
        row(b, "arithmetic, eager (given float32 normals)", per(lambda: st._core(theta, z32)))
        core = st.core(1)
        core(theta, z32)
        row(b, "arithmetic, compiled (given float32 normals)", per(lambda: core(theta, z32)),
            "fused cast + drift + noise; " + ("compiled" if core.ready else f"NOT compiled: {core.failed}"))
        steps = 20 if quick else 100
        for comp in (False, True):
            t = _timed(lambda c=comp: sde.simulate(n, steps * 0.01, 0.01, init=[1.0, 1.0], outputs=2,
                                                    device=dev, threads=1, compile=c), repeat=3)
            row(b, f"whole step via simulate, compile={comp}", 1e9 * t / steps / n,
                "the difference to the pieces above is the runner (slab loop, checks, outputs, Python)")

        model = _logistic_sgd(100_000)
        rs = RecursionStepper(model.recursion, dev, torch.float64, False, "bench")
        src = rs.batches[0]
        nz = Noise(n, gen, torch.float64, np_gen=npg)
        idx = src.index_buffer(n, dev)
        b = "profile exact SGD, logistic"
        row(b, "indices, numpy SFC64 int32 (B=32)", per(lambda: src.draw_indices(nz, idx)),
            "32 bounded integers per particle-step (Lemire rejection: exact)")
        cols = src.feature_columns
        c = src.draw_rows  # the eager step works in sub-slabs of this many particles (cache-sized)
        bufs = [torch.empty(c * src.B, dtype=torch.float64) for _ in cols]
        pieces = [idx[a : a + c].reshape(-1) for a in range(0, n, c)]

        def gather():
            for flat in pieces:
                for col, o in zip(cols, bufs, strict=True):
                    torch.index_select(col, 0, flat[: len(o)], out=o[: len(flat)])

        row(b, f"gather, index_select of {len(cols)} feature columns", per(gather),
            f"in sub-slabs of {c} particles, as the eager step")
        vals = [o.view(c, src.B) for o in bufs]
        th = [theta[:c, j : j + 1] for j in range(2)]

        def arith():
            for _ in pieces:
                [v.mean(dim=1) for v in src._feat_raw(*th, *vals)]

        row(b, "arithmetic, eager (sigmoid of the margin, products, means over B)", per(arith),
            f"in sub-slabs of {c} particles, as the eager step")
        kern = rs.core(1)
        table = rs._table
        kern(theta, idx, table)
        row(b, "fused kernel, compiled (gather + arithmetic + mean + update, given indices)",
            per(lambda: kern(theta, idx, table)),
            "compiled" if kern.ready else f"NOT compiled: {kern.failed}")
        nat = rs.native_kernel()
        if nat is not None:
            gen_c = np.random.Generator(np.random.SFC64(5))
            row(b, "C kernel (draw + gather + arithmetic + mean + update)",
                per(lambda: nat.step(theta, table, gen_c, src.B)),
                "symfp.particles.native, one slab, 1 thread; indices drawn inside (numpy's SFC64 algorithm)")
        steps = 5 if quick else 20
        for comp in (False, True):
            t = _timed(lambda c=comp: model.simulate(n, steps, init=[0.3, -0.2], outputs=2, device=dev,
                                                      threads=1, compile=c), repeat=3)
            row(b, f"whole step via simulate, compile={comp}", 1e9 * t / steps / n,
                "one slab of 32768 particles, 1 thread")
    finally:
        torch.set_num_threads(threads0)
    return rows


MPI_CHILD = """
import sys, time, json
sys.path.insert(0, {here!r})
import numpy as np, sympy as sp, symfp, bench_particles as b
from mpi4py import MPI
b.tune_allocator()
comm = MPI.COMM_WORLD
n, steps = {n}, {steps}
x1, x2 = sp.symbols("x1 x2", real=True)
sde = symfp.SDE([x1, x2], [-x1, -x2], 0.05)
model, _, _ = b._sgd_problem()
jobs = {{"SDE Euler": lambda: sde.simulate(n, steps * 0.01, 0.01, init=[1.0, 1.0], outputs=2, threads=1,
                                          dtype="float32"),
        "exact SGD": lambda: model.simulate(n, steps, init=[0.5, 0.5], outputs=2, threads=1)}}
out = {{}}
for name, f in jobs.items():
    f()
    best = np.inf
    for _ in range(2):
        comm.Barrier()
        t = time.perf_counter()
        f()
        comm.Barrier()
        best = min(best, time.perf_counter() - t)
    out[name] = best
if comm.rank == 0:
    print("MPI " + json.dumps(out))
"""


def mpi_rows(quick: bool) -> list[dict]:
    """Particles on 1 and 2 MPI ranks, one thread per rank (``mpirun -n 1`` / ``-n 2``, interleaved).

    SDE Euler (OU, d = 2, float32) and exact SGD (d = 2, B = 32, N = 1000, float64) at 2·10⁶ particles;
    each rank simulates its share with its own slabs' streams (the union is the serial run, see
    :func:`symfp.particles.mpi.share_of`); the time is the slowest rank's (barriers around the call).
    """
    import json
    import os
    import pathlib

    here = str(pathlib.Path(__file__).resolve().parent)
    n, steps = (200_000, 10) if quick else (2_000_000, 20)
    code = MPI_CHILD.format(here=here, n=n, steps=steps)
    env = {**os.environ, "OMPI_MCA_btl": "self,vader", "OMPI_MCA_rmaps_base_oversubscribe": "1",
           "OMP_NUM_THREADS": "1"}
    best: dict = {}
    for _ in range(2):
        for ranks in (1, 2):
            res = subprocess.run(["mpirun", "--allow-run-as-root", "-n", str(ranks), "--bind-to", "none",
                                  sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True,
                                 env=env, timeout=1200)
            lines = [ln for ln in res.stdout.splitlines() if ln.startswith("MPI ")]
            if res.returncode or not lines:
                raise RuntimeError(res.stderr[-2000:])
            for name, t in json.loads(lines[-1][4:]).items():
                best[(name, ranks)] = min(best.get((name, ranks), np.inf), t)
    load = os.getloadavg()[0]
    rows = []
    for name in ("SDE Euler", "exact SGD"):
        one, two = best[(name, 1)], best[(name, 2)]
        rows += [
            {"benchmark": "particles MPI", "case": f"{name}, {r} rank{'s' * (r > 1)}", "value": n * steps / t,
             "unit": "particle-steps/s", "note": f"{n} particles, {steps} steps, 1 thread per rank"}
            for r, t in ((1, one), (2, two))
        ]
        rows.append({"benchmark": "particles MPI", "case": f"{name}: speed-up 2 vs 1 rank",
                     "value": one / two,
                     "unit": "x", "note": f"aim >= 1.8; best of 2, interleaved; load average {load:.1f} "
                                          "on the 2 shared cores"})
    return rows


def tune_allocator() -> None:
    """Raise glibc's mmap and trim thresholds to 1 GiB (what importing PETSc does), if glibc is there."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-3, 2**30)  # M_MMAP_THRESHOLD
    libc.mallopt(-1, 2**30)  # M_TRIM_THRESHOLD


def run(quick: bool = False) -> list[dict]:
    import torch

    tune_allocator()

    import symfp
    from symfp.particles.backend import resolve_device

    dev = resolve_device("auto")
    rows: list[dict] = []
    n = 20_000 if quick else 200_000
    steps = 5 if quick else 20
    model, xs, ys = _sgd_problem()
    model.simulate(1000, 1, init=[0.5, 0.5], outputs=2, device=dev)  # symbolic set-up cached on the model
    note = f"d=2, B=32, N=1000, {n} particles, {steps} steps, {dev}"
    from symfp.particles.streams import available_cores

    auto = available_cores()
    t_ours = np.inf
    for threads in (None, 1):
        t = _timed(
            lambda th=threads: model.simulate(n, steps, init=[0.5, 0.5], outputs=2, device=dev, threads=th),
            repeat=3,
        )
        t_ours = t if threads is None else t_ours
        rows.append(
            {
                "benchmark": "exact SGD",
                "case": f"symfp, threads={threads}" if threads else f"symfp, threads=auto={auto} (default)",
                "value": n * steps / t,
                "unit": "particle-steps/s",
                "note": note,
            }
        )
    t_naive = np.inf
    base_threads = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        t = _timed(lambda: _naive_sgd(xs, ys, n, steps, 32, 0.05, dev), repeat=3)
        t_naive = min(t_naive, t)
        rows.append(
            {
                "benchmark": "exact SGD",
                "case": f"naive gather loop, threads={threads}",
                "value": n * steps / t,
                "unit": "particle-steps/s",
                "note": note,
            }
        )
    torch.set_num_threads(base_threads)
    ps_ours, ps_naive = n * steps / t_ours, n * steps / t_naive
    rows += [
        {
            "benchmark": "exact SGD",
            "case": "speed-up",
            "value": ps_ours / ps_naive,
            "unit": "x",
            "note": "aim >= 3 (symfp default vs the naive loop at its best thread count; "
            "glibc mmap threshold raised for both)",
        },
    ]
    # SDE (OU, d = 2, diagonal noise) vs torchsde euler
    x1, x2 = sp.symbols("x1 x2", real=True)
    sde = symfp.SDE([x1, x2], [-x1, -x2], 0.05)
    ns, ks = (20_000, 20) if quick else (200_000, 100)
    sde.simulate(100, 0.01, 0.01, init=[1.0, 1.0], outputs=2, device=dev)
    t_sde = _timed(
        lambda: sde.simulate(ns, ks * 0.01, 0.01, init=[1.0, 1.0], outputs=2, device=dev, compile=False),
        repeat=3,
    )
    t_sde1 = _timed(
        lambda: sde.simulate(
            ns, ks * 0.01, 0.01, init=[1.0, 1.0], outputs=2, device=dev, compile=False, threads=1
        ),
        repeat=3,
    )
    t_sde64 = _timed(
        lambda: sde.simulate(
            ns, ks * 0.01, 0.01, init=[1.0, 1.0], outputs=2, device=dev, fast_normals=False, compile=False
        ),
        repeat=3,
    )
    t0 = time.perf_counter()
    first = sde.simulate(ns, 0.05, 0.01, init=[1.0, 1.0], outputs=2, device=dev, compile=True)
    t_first = time.perf_counter() - t0
    t_comp = _timed(
        lambda: sde.simulate(ns, ks * 0.01, 0.01, init=[1.0, 1.0], outputs=2, device=dev, compile=True),
        repeat=3,
    )
    ok = first.info.get("compiled", False)
    rows += [
        {
            "benchmark": "SDE Euler",
            "case": "symfp compile=True (warm)",
            "value": ns * ks / t_comp if ok else float("nan"),
            "unit": "particle-steps/s",
            "note": "fused cast+drift+noise (inductor), normals drawn eagerly; one thread (dynamo is not "
            "thread-safe)"
            + ("" if ok else f"; not compiled: {first.info.get('compile_error', 'refused')}"),
        },
        {
            "benchmark": "SDE Euler",
            "case": "symfp compile=True: first call",
            "value": first.info.get("compile_time") or float("nan"),
            "unit": "s",
            "note": f"compilation included (5 steps; whole call {t_first:.2f} s; process-cold inductor)",
        },
    ]
    rows += [
        {
            "benchmark": "SDE Euler",
            "case": f"symfp (default: threads=auto={auto}, float32-sampled normals)",
            "value": ns * ks / t_sde,
            "unit": "particle-steps/s",
            "note": f"OU d=2, {ns} particles, {ks} steps, {dev}, float64 state",
        },
        {
            "benchmark": "SDE Euler",
            "case": "symfp threads=1",
            "value": ns * ks / t_sde1,
            "unit": "particle-steps/s",
            "note": "one worker thread: the slab streams without the pool",
        },
        {
            "benchmark": "SDE Euler",
            "case": "symfp fast_normals=False (float64 normals)",
            "value": ns * ks / t_sde64,
            "unit": "particle-steps/s",
            "note": "same RNG precision as torchsde",
        },
    ]
    try:
        import torchsde

        class OU(torch.nn.Module):
            noise_type, sde_type = "diagonal", "ito"

            def f(self, t, y):
                return -y

            def g(self, t, y):
                return torch.full_like(y, np.sqrt(0.1))

        y0 = torch.ones(ns, 2, dtype=torch.float64, device=dev)
        ts = torch.tensor([0.0, ks * 0.01], dtype=torch.float64, device=dev)
        t_ts = _timed(lambda: torchsde.sdeint(OU(), y0, ts, method="euler", dt=0.01), repeat=3)
        rows.append(
            {
                "benchmark": "SDE Euler",
                "case": "torchsde sdeint euler",
                "value": ns * ks / t_ts,
                "unit": "particle-steps/s",
                "note": f"torchsde {torchsde.__version__}",
            }
        )
        rows += [
            {
                "benchmark": "SDE Euler",
                "case": "speed-up vs torchsde (eager)",
                "value": t_ts / t_sde,
                "unit": "x",
                "note": "aim >= 10 (symfp default: eager, slab threads, float32-sampled normals)",
            },
            {
                "benchmark": "SDE Euler",
                "case": "speed-up vs torchsde (compiled)",
                "value": t_ts / t_comp if ok else float("nan"),
                "unit": "x",
                "note": "aim >= 10 (compile=True, warm)",
            },
            {
                "benchmark": "SDE Euler",
                "case": "speed-up vs torchsde, float64 normals",
                "value": t_ts / t_sde64,
                "unit": "x",
                "note": "like-for-like RNG",
            },
        ]
    except ImportError:
        rows.append(
            {
                "benchmark": "SDE Euler",
                "case": "torchsde sdeint euler",
                "value": float("nan"),
                "unit": "particle-steps/s",
                "note": "torchsde not installed",
            }
        )
    rows += _bandwidth_rows(ns * ks / t_sde, dev)
    # state-dependent rank-one D (derivations/linear_network.py): symbolic σ = √c·u
    rows += _rank_one_rows(quick, dev)
    rows += like_for_like_rows(quick, dev)
    rows += logistic_rows(quick, dev)
    rows += profile_rows(quick, dev)
    rows += tabulation_rows(quick, dev)
    rows += mpi_rows(quick)
    nm = 1_000_000 if quick else 10_000_000
    out = subprocess.run(
        [sys.executable, "-c", MEM_SCRIPT.format(n=nm, chunk=1_000_000)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    rows.append(
        {
            "benchmark": "peak memory",
            "case": f"{nm:.0e} particles, SDE d=2 float32, chunks of 1e6",
            "value": (int(out[1]) - int(out[0])) / 1024,
            "unit": "MiB",
            "note": "growth of peak RSS (VmHWM) over the interpreter with symfp and torch loaded",
        }
    )
    return rows


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(f"{r['benchmark']:<12} {r['case']:<45} {r['value']:>14.4g} {r['unit']:<18} {r['note']}")
