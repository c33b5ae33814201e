"""Particle-engine benchmarks: exact mini-batch SGD vs a naive torch loop, SDE vs torchsde, peak memory.

``run(quick)`` returns rows {"benchmark", "case", "value", "unit", "note"} for benchmarks/run.py.
Timings are wall-clock on whatever device ``device="auto"`` picks, best of 3 for the headline rows;
never asserted in tests. The SDE rows give the eager step and the ``compile=True`` one (warm: the
compiled kernel reused) with the first call's compile time.

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

            fns = {"symfp": ours}
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
            if "torchsde" in best:
                rows += [
                    {"benchmark": "like-for-like SDE Euler", "case": f"torchsde {dtype}",
                     "value": ns * ks / best["torchsde"], "unit": "particle-steps/s",
                     "note": f"torchsde {torchsde.__version__}, interleaved with symfp"},
                    {"benchmark": "like-for-like SDE Euler", "case": f"speed-up vs torchsde, {dtype}",
                     "value": best["torchsde"] / best["symfp"], "unit": "x",
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
            ]
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
