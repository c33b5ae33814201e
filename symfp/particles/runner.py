"""The particle loop shared by the SDE and recursion simulators.

Particles are independent, so they are simulated block by block (``chunk_size`` bounds the memory);
within a block all particles advance together and every random number of a step is drawn in one
call. Moments are accumulated at output steps, absorption is checked after every step (absorbed
particles freeze), and blow-up is detected every few steps: a :class:`DivergenceError` names the
step, the fraction of particles that blew up and the quantity that exploded, instead of returning
NaNs. Under MPI each rank runs its own share with its own seed; errors are raised on every rank.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import sympy as sp
import torch

from ..errors import DivergenceError, InputError
from .absorbing import as_absorbing, bridge_crossed
from .backend import check_count, chunks, generator, progress, resolve_device, resolve_dtype
from .cloud import ExitTimes, ParticleCloud
from .init import initial_particles
from .mpi import allsum, local_count, rank_seed, rank_size, world
from .noise import Noise
from .statistics import TrajectoryMoments


class Stepper(Protocol):
    """What a simulator provides to :func:`run`."""

    state: tuple[sp.Symbol, ...]
    dt: float
    what: str

    def start(self, noise: Noise, **kw: Any) -> Any: ...

    def step(self, theta: torch.Tensor, noise: Noise, k: int, ctx: Any) -> torch.Tensor: ...


@dataclass
class RunOptions:
    """Options common to both simulators (see :func:`symfp.particles.sde.simulate_sde`)."""

    n_particles: int
    steps: int
    init: Any
    seed: int | None = 0
    device: Any = "auto"
    dtype: Any = "float64"
    chunk_size: int | None = None
    outputs: int | None = 101
    absorbing: Any = None
    bridge: bool = True
    progress: bool = False
    antithetic: bool = False
    comm: Any = None
    fallback: bool = False
    blowup: float = 1e12
    check_every: int = 10
    info: dict = field(default_factory=dict)
    fast_normals: bool = True
    threads: int | None = 1
    start_kw: dict = field(default_factory=dict)


def output_steps(steps: int, outputs: int | None) -> np.ndarray:
    """Indices of the steps at which moments are recorded (always 0 and ``steps``)."""
    if not outputs or outputs < 2:
        return np.array([0, steps])
    return np.unique(np.round(np.linspace(0, steps, min(outputs, steps + 1))).astype(int))


def run(stepper: Any, opt: RunOptions, where: str) -> ParticleCloud:
    """Simulate ``opt.n_particles`` particles for ``opt.steps`` steps of ``stepper``.

    ``opt.threads`` torch intra-op threads are used during the run (restored afterwards; None keeps
    torch's setting). One thread is the default: the step is a chain of short vectorised calls on
    cache-sized slabs, and on a shared 2-core machine the second thread's synchronisation cost more
    than it gained (benchmarks/bench_particles.py measures both).
    """
    before = torch.get_num_threads()
    if opt.threads is not None:
        torch.set_num_threads(max(1, int(opt.threads)))
    try:
        return _run(stepper, opt, where)
    finally:
        torch.set_num_threads(before)


def _run(stepper: Any, opt: RunOptions, where: str) -> ParticleCloud:
    n = check_count(opt.n_particles, where)
    steps = int(opt.steps)
    if steps < 0 or steps != opt.steps:
        raise InputError(f"{where}: the number of steps must be a non-negative integer, got {opt.steps!r}")
    if opt.antithetic and n % 2:
        raise InputError(f"{where}: antithetic=True needs an even n_particles, got {n}")
    dev = resolve_device(opt.device, opt.fallback)
    dtype = resolve_dtype(opt.dtype)
    comm = world(opt.comm)
    rank, size = rank_size(comm)
    if size > 1 and n < size * (2 if opt.antithetic else 1):
        raise InputError(f"{where}: {n} particles cannot be split over {size} MPI ranks")
    n_local = local_count(n, comm, even=opt.antithetic)
    offset = sum(local_count_of(n, r, size, opt.antithetic) for r in range(rank))
    d = len(stepper.state)
    absorbing = as_absorbing(opt.absorbing, d)
    use_bridge = bool(
        opt.bridge and absorbing is not None and hasattr(stepper, "two_d") and absorbing.has_margin
    )
    gen = generator(rank_seed(opt.seed, comm), dev)
    outs = output_steps(steps, opt.outputs)
    out_index = {int(k): i for i, k in enumerate(outs)}
    traj = TrajectoryMoments(len(outs), d, n_local, pair=opt.antithetic)
    theta_out = np.empty((n_local, d), dtype=np.float64 if dtype == torch.float64 else np.float32)
    tau = np.full(n_local, steps * stepper.dt)
    exited = np.zeros(n_local, dtype=bool)
    chunk = opt.chunk_size
    if chunk and opt.antithetic and chunk % 2:
        chunk += 1
    failure: str | None = None
    blocks = list(chunks(n_local, chunk))
    bar = progress(steps * len(blocks), opt.progress and rank == 0, stepper.what)
    for sl in blocks:
        nz = Noise(sl.stop - sl.start, gen, dtype, opt.antithetic, opt.fast_normals)
        th = initial_particles(opt.init, nz, offset + sl.start, n, stepper.state, where)
        ctx = stepper.start(nz, **opt.start_kw)
        alive = torch.ones(nz.n, dtype=torch.bool, device=dev) if absorbing is not None else None
        if absorbing is not None:
            alive &= ~absorbing.absorbed(th)
            tau_b = torch.full((nz.n,), steps * stepper.dt, dtype=torch.float64, device=dev)
            tau_b[~alive] = 0.0
        for k in range(steps):
            if k in out_index:
                failure = _diverged(th, k, stepper, opt.blowup)
                if failure:
                    break
                traj.add(out_index[k], th.double().cpu().numpy(), sl.start)
            new = stepper.step(th, nz, k, ctx)
            if absorbing is not None:
                hit = absorbing.absorbed(new) & alive
                if use_bridge:
                    u = nz.uniform(1)[:, 0]
                    hit |= bridge_crossed(absorbing, th, new, stepper.two_d(th, k), stepper.dt, u) & alive
                tau_b[hit] = (k + 1) * stepper.dt
                alive &= ~hit
                new = torch.where(alive[:, None], new, th)
            th = new
            if (k + 1) % opt.check_every == 0 or k + 1 == steps:
                failure = _diverged(th, k + 1, stepper, opt.blowup)
                if failure:
                    break
            bar.update(1)
        if failure:
            break
        traj.add(out_index[steps], th.double().cpu().numpy(), sl.start)
        theta_out[sl] = th.cpu().numpy()
        if absorbing is not None:
            tau[sl] = tau_b.cpu().numpy()
            exited[sl] = (~alive).cpu().numpy()
    bar.close()
    if allsum(1.0 if failure else 0.0, comm) > 0:
        msgs = comm.allgather(failure) if comm is not None and size > 1 else [failure]
        raise DivergenceError(next(m for m in msgs if m))
    info = {
        "method": stepper.what,
        "dt": stepper.dt,
        "steps": steps,
        "seed": opt.seed,
        "device": str(dev),
        "dtype": str(dtype).replace("torch.", ""),
        "antithetic": opt.antithetic,
        "fast_normals": opt.fast_normals,
        "threads": opt.threads,
        "ranks": size,
        **opt.info,
    }
    exit = ExitTimes(tau, exited, steps * stepper.dt, opt.antithetic, comm) if absorbing is not None else None
    return ParticleCloud(
        theta_out, [str(s) for s in stepper.state], outs * stepper.dt, traj.result(comm), n, info, exit, comm
    )


def local_count_of(n: int, rank: int, size: int, even: bool) -> int:
    """The share of ``rank`` among ``size`` ranks (same rule as :func:`local_count`)."""
    unit = 2 if even else 1
    units = n // unit
    return (units // size + (1 if rank < units % size else 0)) * unit


def _diverged(theta: torch.Tensor, k: int, stepper: Any, blowup: float) -> str | None:
    bad = ~torch.isfinite(theta) | (theta.abs() > blowup)
    if not bool(bad.any()):
        return None
    frac = float(bad.any(dim=1).double().mean())
    per = bad.double().mean(dim=0).cpu().numpy()
    worst = int(np.argmax(per))
    name = str(stepper.state[worst])
    finite = theta[:, worst][torch.isfinite(theta[:, worst])]
    big = f"; largest finite |{name}| = {float(finite.abs().max()):.3g}" if finite.numel() else ""
    hint = getattr(stepper, "divergence_hint", "reduce the step size")
    return (
        f"{stepper.what} diverged at step {k} (t = {k * stepper.dt:g}): {100 * frac:.3g}% of the particles "
        f"blew up (|value| > {blowup:g} or not finite); the exploding quantity is {name} "
        f"({100 * per[worst]:.3g}% of particles{big}). {hint}"
    )
