"""The particle loop shared by the SDE and recursion simulators.

Particles are independent, so they are simulated block by block (``chunk_size`` bounds the memory);
within a block all particles advance together and every random number of a step is drawn in one
call. Moments are accumulated at output steps, absorption is checked after every step (absorbed
particles freeze), and blow-up is detected every few steps: a :class:`DivergenceError` names the
step, the fraction of particles that blew up and the quantity that exploded, instead of returning
NaNs. Under MPI each rank runs its own share with its own seed; errors are raised on every rank.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import sympy as sp
import torch

from ..errors import DivergenceError, InputError, LongRunWarning, SymfpError
from .absorbing import as_absorbing, bridge_crossed
from .backend import check_count, check_memory, chunks, progress, resolve_device, resolve_dtype
from .cloud import ExitTimes, ParticleCloud
from .init import initial_particles
from .mpi import allsum, local_count, rank_size, share_of, world
from .noise import Noise
from .statistics import TrajectoryMoments
from .streams import parallel_map, resolve_threads, slab_generators, slab_seed, slabs


class Stepper(Protocol):
    """What a simulator provides to :func:`run`."""

    state: tuple[sp.Symbol, ...]
    dt: float
    what: str

    def start(self, noise: Noise, **kw: Any) -> Any: ...

    def step(self, theta: torch.Tensor, noise: Noise, k: int, ctx: Any) -> torch.Tensor: ...


@dataclass(kw_only=True)
class RunOptions:
    """Options common to both simulators (see :func:`symfp.particles.sde.simulate_sde`), by keyword."""

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
    threads: int | None = None
    start_kw: dict = field(default_factory=dict)
    times: np.ndarray | None = None  # t_0..t_steps when the steps are not uniform (lr schedules)

    def t(self, k: int | np.ndarray, dt: float) -> Any:
        """The time after k steps: ``times[k]``, else k·dt."""
        return self.times[k] if self.times is not None else k * dt


def output_steps(steps: int, outputs: int | None) -> np.ndarray:
    """Indices of the steps at which moments are recorded (always 0 and ``steps``)."""
    if not outputs or outputs < 2:
        return np.array([0, steps])
    return np.unique(np.round(np.linspace(0, steps, min(outputs, steps + 1))).astype(int))


def run(stepper: Any, opt: RunOptions, where: str) -> ParticleCloud:
    """Simulate ``opt.n_particles`` particles for ``opt.steps`` steps of ``stepper``.

    On CPU, ``opt.threads`` worker threads (default: the cores this process may use, see
    :func:`symfp.particles.streams.available_cores`) draw the random numbers and the mini-batch
    gathers slab by slab (:mod:`symfp.particles.streams`); torch's own intra-op parallelism is set
    to one thread during the run (restored afterwards): the rest of a step is a chain of short
    vectorised calls whose synchronisation cost more than it gained on the measured 2-core machine.
    The random numbers do not depend on the thread count.
    """
    opt.threads = resolve_threads(opt.threads, where)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
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
    block = min(n_local, int(opt.chunk_size)) if opt.chunk_size else n_local
    check_memory(n_local, d, torch.empty((), dtype=dtype).element_size(), block, where,
                 absorbing=opt.absorbing is not None)
    absorbing = as_absorbing(opt.absorbing, d)
    use_bridge = bool(
        opt.bridge and absorbing is not None and hasattr(stepper, "two_d") and absorbing.has_margin
    )
    outs = output_steps(steps, opt.outputs)
    out_index = {int(k): i for i, k in enumerate(outs)}
    traj = TrajectoryMoments(len(outs), d, n_local, pair=opt.antithetic)
    theta_out = np.empty((n_local, d), dtype=np.float64 if dtype == torch.float64 else np.float32)
    t_end = opt.t(steps, stepper.dt)
    tau = np.full(n_local, t_end)
    exited = np.zeros(n_local, dtype=bool)
    chunk = opt.chunk_size
    if chunk and opt.antithetic and chunk % 2:
        chunk += 1
    failure: str | None = None
    failure_cls: type[SymfpError] = DivergenceError
    blocks = list(chunks(n_local, chunk))
    bar = progress(steps * len(blocks), opt.progress and rank == 0, stepper.what)
    workers = int(opt.threads) if dev.type == "cpu" else 1
    if opt.start_kw.get("compile") and (use_bridge or not hasattr(stepper, "fused_block")):
        workers = 1  # compiled slab by slab: called from one thread (dynamo's guards are not thread-safe)
    eta: float | None = time.perf_counter()
    for bl in blocks:
        blk = Block(stepper, opt, bl, offset, n, dev, dtype, absorbing, use_bridge, where)
        growth = GrowthMonitor(stepper, opt)
        for k in range(steps):
            if eta is not None and k in (20, 200):
                eta = _estimate(eta, k, steps, len(blocks), stepper, opt, rank, where)
            if k == 0 or ((k + 1) % opt.check_every == 0 and k + 1 < steps):
                failure = _domain_failure(stepper, blk, k)
                if failure:
                    failure_cls = InputError
                    break
            if k in out_index:
                failure = _diverged(blk.theta, k, stepper, opt.blowup, opt.t(k, stepper.dt))
                if failure:
                    break
                traj.add(out_index[k], blk.theta.double().cpu().numpy(), bl.start)
            check = (k + 1) % opt.check_every == 0 or k + 1 == steps
            if blk.step(k, workers, opt.blowup if check else None):
                failure = _diverged(blk.theta, k + 1, stepper, opt.blowup, opt.t(k + 1, stepper.dt))
                if failure:
                    break
            if check:
                failure = growth.update(blk.amax, k + 1, opt.t(k + 1, stepper.dt))
                if failure:
                    break
            bar.update(1)
        if failure:
            break
        traj.add(out_index[steps], blk.theta.double().cpu().numpy(), bl.start)
        theta_out[bl] = blk.theta.cpu().numpy()
        if absorbing is not None:
            tau[bl] = blk.tau.cpu().numpy()
            exited[bl] = (~blk.alive).cpu().numpy()
    bar.close()
    if allsum(1.0 if failure else 0.0, comm) > 0:
        mine = (failure, failure_cls is InputError) if failure else None
        msgs = comm.allgather(mine) if comm is not None and size > 1 else [mine]
        msg, is_input = next(m for m in msgs if m)
        raise (InputError if is_input else DivergenceError)(msg)
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
    exit = ExitTimes(tau, exited, t_end, opt.antithetic, comm) if absorbing is not None else None
    return ParticleCloud(
        theta_out, [str(s) for s in stepper.state], opt.t(outs, stepper.dt), traj.result(comm), n, info, exit,
        comm,
    )


class Block:
    """A block of particles cut into slabs (:mod:`symfp.particles.streams`), each with its own noise.

    Args:
        stepper, opt: the scheme and the run's options.
        rows: the block's rows among this rank's particles; offset: the rank's first global row;
        n_total: all particles.
        dev, dtype: where and in what the state lives.
        absorbing, use_bridge: the absorbing set (or None) and whether to apply the bridge correction.
        where: caller, for errors.

    Attributes:
        theta: (n, d) current state; alive, tau: absorption flags and exit times (with absorbing).
    """

    def __init__(self, stepper, opt, rows, offset, n_total, dev, dtype, absorbing, use_bridge, where):
        self.stepper, self.absorbing, self.use_bridge, self.opt = stepper, absorbing, use_bridge, opt
        n, row = rows.stop - rows.start, offset + rows.start
        self.parts = slabs(n, dev, opt.antithetic)
        self.theta = torch.empty((n, len(stepper.state)), dtype=dtype, device=dev)
        self.noises, self.ctxs = [], []
        for s in self.parts:
            gen, np_gen = slab_generators(slab_seed(opt.seed, row + s.start), dev)
            nz = Noise(s.stop - s.start, gen, dtype, opt.antithetic, opt.fast_normals, np_gen)
            self.theta[s] = initial_particles(opt.init, nz, row + s.start, n_total, stepper.state, where)
            self.noises.append(nz)
            self.ctxs.append(stepper.start(nz, **opt.start_kw))
        self._new = torch.empty_like(self.theta)
        # the fused step (compiled): each slab draws its random inputs in the pool, then one compiled
        # call advances the whole block (no bridge correction: it needs the per-slab uniforms)
        self.fused = bool(self.ctxs and isinstance(self.ctxs[0], dict) and self.ctxs[0].get("fused")
                          and hasattr(stepper, "fused_block") and not use_bridge)
        self.groups = _groups(self.parts, FUSED_ROWS) if self.fused else []
        rows_max = max((g.stop - g.start for g, _ in self.groups), default=0)
        self._bufs = stepper.draw_buffers(rows_max, self.noises[0]) if self.fused else None
        self.alive = self.tau = None
        if absorbing is not None:
            self.alive = ~absorbing.absorbed(self.theta)
            self.tau = torch.full((n,), opt.t(opt.steps, stepper.dt), dtype=torch.float64, device=dev)
            self.tau[~self.alive] = 0.0

    def _advance(self, j: int, k: int, blowup: float | None) -> bool:
        """Step k of slab j: the scheme, then absorption (absorbed particles freeze).

        Returns whether the slab blew up (a value beyond ``blowup`` or not finite; checked only when
        ``blowup`` is given).
        """
        st, s, nz = self.stepper, self.parts[j], self.noises[j]
        x0 = self.theta[s]
        x = st.step(x0, nz, k, self.ctxs[j])
        return self._finish(s, x0, x, k, nz, j, blowup)

    def _finish(self, s: slice, x0: torch.Tensor, x: torch.Tensor, k: int, nz: Noise | None, j: int,
                blowup: float | None) -> bool:
        """Absorption (absorbed particles freeze) and the blow-up check of rows ``s`` after step k."""
        st = self.stepper
        if self.alive is not None:
            live = self.alive[s]
            hit = self.absorbing.absorbed(x) & live
            if self.use_bridge:
                u = nz.uniform(1)[:, 0]
                hit |= bridge_crossed(self.absorbing, x0, x, st.two_d(x0, k), st.dt, u) & live
            self.tau[s][hit] = self.opt.t(k + 1, st.dt)
            live &= ~hit
            x = torch.where(live[:, None], x, x0)
        self._new[s] = x
        if blowup is None:
            return False
        if x.numel():  # max |x| without an |x| temporary (a slab-sized allocation, so page faults, per step)
            lo, hi = torch.aminmax(x)
            amax = torch.maximum(hi, -lo)  # NaN propagates, and fails the check below
        else:
            amax = x.new_zeros(())
        self._amax[j] = float(amax)
        return not bool(amax <= blowup)  # NaN compares False

    def _fused_step(self, k: int, workers: int, blowup: float | None) -> bool:
        """Step k by groups of slabs: the slabs' draws in the pool, then one compiled call per group.

        A group holds at most :data:`FUSED_ROWS` particles, so the buffers of random inputs (the
        (rows, B) batch indices) stay bounded whatever the block size.
        """
        st = self.stepper
        self._amax = [0.0] * len(self.groups)
        bad = False
        for gi, (g, js) in enumerate(self.groups):
            bufs = [b[: g.stop - g.start] for b in self._bufs]

            def draw(j: int, g: slice = g, bufs: list = bufs) -> None:
                s = self.parts[j]
                st.draw(self.noises[j], self.ctxs[j], [b[s.start - g.start : s.stop - g.start] for b in bufs])

            parallel_map(lambda i, js=js: draw(js[i]), len(js), workers)
            x0 = self.theta[g]
            torch.set_num_threads(workers)  # the compiled kernel's OpenMP loop (run() restores 1 after)
            try:
                x = st.fused_block(x0, bufs, workers)
            finally:
                torch.set_num_threads(1)
            bad = self._finish(g, x0, x, k, None, gi, blowup) or bad
        self.theta, self._new = self._new, self.theta
        self.amax = max(self._amax) if blowup is not None else None
        return bad

    def step(self, k: int, workers: int, blowup: float | None = None) -> bool:
        """Advance every slab by step k, ``workers`` threads at a time; True if a slab blew up."""
        if self.fused:
            return self._fused_step(k, workers, blowup)
        bad = [False] * len(self.parts)
        self._amax = [0.0] * len(self.parts)

        def work(j: int) -> None:
            bad[j] = self._advance(j, k, blowup)

        parallel_map(work, len(self.parts), workers)
        self.theta, self._new = self._new, self.theta
        self.amax = max(self._amax) if blowup is not None else None
        return any(bad)


#: the most particles one compiled call of the fused step advances (its random-input buffers: 32 MiB
#: of int32 batch indices for B = 32)
FUSED_ROWS = 1 << 18


def _groups(parts: list[slice], rows: int) -> list[tuple[slice, list[int]]]:
    """Consecutive slabs grouped into runs of at most ``rows`` rows (at least one slab each)."""
    out: list[tuple[slice, list[int]]] = []
    for j, s in enumerate(parts):
        if out and s.stop - out[-1][0].start <= rows:
            g, js = out[-1]
            out[-1] = (slice(g.start, s.stop), [*js, j])
        else:
            out.append((s, [j]))
    return out


#: estimated durations beyond this (seconds) are announced when no progress bar is shown
LONG_RUN_S = 120.0


def _estimate(t0: float, k: int, steps: int, n_blocks: int, stepper: Any, opt: RunOptions, rank: int,
              where: str) -> float | None:
    """After k steps of the first block, warn (once) if the whole run will take long and runs silently.

    Returns None when the estimate is done (no more estimates), else the start time.
    """
    elapsed = time.perf_counter() - t0
    if elapsed < 0.5 and k < 200:
        return t0  # too early to tell: try again at step 200
    total = elapsed / k * steps * n_blocks
    if total > LONG_RUN_S and not opt.progress and rank == 0:
        warnings.warn(
            f"{where}: {opt.n_particles} particles × {steps} steps of the {stepper.what} will take about "
            f"{_duration(total)} on this machine (measured on the first {k} steps); pass progress=True to "
            "see it advance, or reduce steps / n_particles",
            LongRunWarning,
            stacklevel=4,
        )
    return None


def _duration(seconds: float) -> str:
    for unit, size in (("years", 3.15e7), ("days", 86400.0), ("hours", 3600.0), ("minutes", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def _domain_failure(stepper: Any, blk: Block, k: int) -> str | None:
    """The stepper's own check of the live particles (an SDE: D ⪰ 0 there), or None."""
    check = getattr(stepper, "check", None)
    if check is None:
        return None
    theta = blk.theta if blk.alive is None else blk.theta[blk.alive]
    return check(theta, k)


class GrowthMonitor:
    r"""Detects divergence by geometric growth of :math:`M_k = \max_i |	heta_i|`, not only by a threshold.

    At every check (each ``check_every`` steps) the ratio :math:`r = M_k / M_{k-c}` is recorded. Over
    the last ``window`` checks the run has *diverged* when every ratio exceeds 1 (steady growth),
    the growth does not slow down (the mean log-ratio of the later half is at least half that of the
    earlier half: geometric, not polynomial growth, whose ratios :math:`(1 + c/k)^p` decay to 1)
    and :math:`M` grew by more than ``factor`` over the window. A stationary or converging cloud
    never has ``window`` increasing maxima in a row; a random walk's maximum grows like
    :math:`\sqrt k` (decaying ratios). SGD with η·λ > 2 on a quadratic, :math:`|1 - \eta\lambda|^k`,
    is caught after ``window`` checks (200 steps), long before :math:`|	heta| > 10^{12}`.

    Disabled when ``opt.blowup`` is infinite.
    """

    window = 20
    factor = 1e3

    def __init__(self, stepper: Any, opt: RunOptions):
        self.stepper, self.opt = stepper, opt
        self.hist: list[float] = []
        self.on = bool(np.isfinite(opt.blowup))

    def update(self, amax: float | None, k: int, t: float) -> str | None:
        if not self.on or amax is None:
            return None
        self.hist.append(float(amax))
        h = self.hist[-(self.window + 1):]
        if len(h) < self.window + 1 or h[0] <= 0 or not np.all(np.isfinite(h)):
            return None
        lr = np.diff(np.log(np.maximum(h, 1e-300)))
        half = len(lr) // 2
        early, late = lr[:half].mean(), lr[half:].mean()
        if not (np.all(lr > 0) and late >= 0.5 * early and h[-1] / h[0] > self.factor):
            return None
        every = self.opt.check_every
        rate = float(np.exp(lr.mean() / every))
        hint = getattr(self.stepper, "divergence_hint", "reduce the step size")
        return (
            f"{self.stepper.what} diverged by step {k} (t = {t:g}): max|θ| grew geometrically, by a factor "
            f"{h[-1] / h[0]:.3g} over the last {self.window * every} steps (≈ {rate:.4g} per step, "
            f"now {h[-1]:.3g}), steadily and without slowing down; a stable run does not do that. {hint} "
            "(blowup=float('inf') switches this test off.)"
        )


def local_count_of(n: int, rank: int, size: int, even: bool) -> int:
    """The share of ``rank`` among ``size`` ranks (same rule as :func:`local_count`)."""
    return share_of(n, rank, size, even)


def _diverged(theta: torch.Tensor, k: int, stepper: Any, blowup: float, t: float) -> str | None:
    if theta.numel():  # the common case in one pass without temporaries: every |value| <= blowup
        lo, hi = torch.aminmax(theta)
        if bool(torch.maximum(hi, -lo) <= blowup):  # False for NaN
            return None
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
        f"{stepper.what} diverged at step {k} (t = {t:g}): {100 * frac:.3g}% of the particles "
        f"blew up (|value| > {blowup:g} or not finite); the exploding quantity is {name} "
        f"({100 * per[worst]:.3g}% of particles{big}). {hint}"
    )
