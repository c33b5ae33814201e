r"""Particle simulation of an Itô SDE :math:`d\theta = b\,dt + \sigma\,dW`, :math:`\sigma\sigma^\top = 2D`.

Two schemes, both batched over particles with drift and D lambdified to torch (with CSE):

* ``"euler"`` (Euler–Maruyama, weak order 1):
  :math:`\theta_{k+1} = \theta_k + b(\theta_k)\Delta + \sigma(\theta_k)\Delta W_k`.
* ``"weak2"`` (Platen's explicit weak order-2 scheme, Kloeden & Platen (1992) eq. 15.1.3), for any
  state-dependent, possibly degenerate D, with :math:`b^j` the j-th column of σ and
  :math:`\bar\Upsilon = \theta + b\Delta + \sigma\Delta W`,
  :math:`R^j_\pm = \theta + b\Delta \pm b^j\sqrt\Delta`, :math:`U^j_\pm = \theta \pm b^j\sqrt\Delta`:

  .. math::
     \theta_{k+1} = \theta + \tfrac12\big(b(\bar\Upsilon)+b\big)\Delta
       + \tfrac14\sum_j\Big[b^j(R^j_+)+b^j(R^j_-)+2b^j
           + \sum_{r\ne j}\big(b^j(U^r_+)+b^j(U^r_-)-2b^j\big)\Big]\Delta W^j
       + \tfrac14\sum_j\Big[\big(b^j(R^j_+)-b^j(R^j_-)\big)\big((\Delta W^j)^2-\Delta\big)
           + \sum_{r\ne j}\big(b^j(U^r_+)-b^j(U^r_-)\big)\big(\Delta W^j\Delta W^r+V_{rj}\big)\Big]
         \Delta^{-1/2}

  with Gaussian :math:`\Delta W` and :math:`V_{rj}=-V_{jr}=\pm\Delta` (r < j) two-point,
  :math:`V_{jj}=-\Delta`.
  When D is constant the σ-corrections vanish and only the Heun-type drift remains.

**Time-dependent SDEs** (``sde.time`` set and present in b or D: learning-rate or noise schedules).
The lambdified b and D then take the time as an extra argument (a 0-d tensor: one time for all
particles), evaluated at the stage times below; an autonomous SDE (``sde.is_autonomous``) is simulated
exactly as before (same fused kernels, no time argument).

* Euler–Maruyama evaluates everything at the left end :math:`t_k = k\Delta`:
  :math:`\theta_{k+1} = \theta_k + b(t_k,\theta_k)\Delta + \sigma(t_k,\theta_k)\Delta W_k`.
* weak2: the scheme above is applied to the autonomous SDE of :math:`(\theta, s)` with
  :math:`ds = dt` (drift 1, no noise in s), which is weak order 2 whenever the original one is. The
  s-components of the supporting values are then :math:`\bar\Upsilon_s = R^j_{\pm,s} = t_k + \Delta`
  (they carry the drift step) and :math:`U^j_{\pm,s} = t_k` (no drift, and :math:`b^j_s = 0`), so the
  stage times are

  .. math::
     b(t_k, \theta),\quad b(t_{k+1}, \bar\Upsilon),\quad b^j(t_k, \theta),\quad
     b^j(t_{k+1}, R^j_\pm),\quad b^j(t_k, U^r_\pm),

  with :math:`t_{k+1} = t_k + \Delta`. For a D(t) of the time only this reduces to the noise
  coefficient :math:`\tfrac12(\sigma(t_k) + \sigma(t_{k+1}))` (trapezoidal), and for D constant in
  θ and t to Heun's drift :math:`\tfrac12(b(t_k,\theta) + b(t_{k+1},\bar\Upsilon))`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import sympy as sp
import torch

from ..errors import InputError
from ..symbolic.sde import model_id
from .cache import cached
from .cloud import ParticleCloud
from .compiled import Compiled, compiled_info, want_compile
from .diffusion import NoiseFactor
from .lambdify import state_function, time_tensor, torch_function
from .noise import Noise
from .runner import RunOptions, run
from .tabulate import GridSpec, tabulate_stepper

METHODS = ("euler", "weak2")


class SDEStepper:
    """One step of an SDE scheme for a block of particles."""

    def __init__(self, sde: Any, dt: float, method: str, tabulate: Any = None):
        self.state = tuple(sde.state)
        self.dt = dt
        self.method = method
        self.what = f"SDE ({'Euler–Maruyama' if method == 'euler' else 'weak order 2'})"
        self.divergence_hint = "Reduce dt, or check that the drift does not push particles to infinity."
        time = getattr(sde, "time", None)
        # explicit time only where it occurs: an autonomous part keeps its time-free fast path
        self.time = None if getattr(sde, "is_autonomous", True) else time
        self.timed_drift = self.time is not None and self.time in sp.Matrix(sde.drift).free_symbols
        tdrift = self.time if self.timed_drift else None
        self.drift = state_function(sde.drift, self.state, "SDE drift", tdrift)
        self.noise = NoiseFactor(sde.diffusion, self.state, self.time)
        self.sde = sde
        self.d = len(self.state)
        self.fused = self.fused_pure = self.det = None
        sig = self.noise.constant_sigma
        if method == "euler" and sig is not None:
            # additive noise: θ + b(θ, t)Δ + σ ΔW is one elementwise expression of (θ, ΔW[, t]); σ's zero
            # entries drop out, and no diffusion matrix is evaluated per step
            dws = [sp.Dummy(f"dW{j}") for j in range(self.d)]
            s_mat = sp.Matrix(sig.shape[0], sig.shape[1], [sp.Float(float(v)) if v else 0 for v in sig.flat])
            th = sp.Matrix(self.state)
            step = th + sp.Matrix(sde.drift) * dt + s_mat * sp.Matrix(dws)
            extra = (self.time,) if self.timed_drift else ()
            self.fused_pure = torch_function(step, (*self.state, *dws, *extra), "SDE Euler step", pure=True)
            if np.count_nonzero(sig - np.diag(np.diag(sig))):
                self.fused = torch_function(step, (*self.state, *dws, *extra), "SDE Euler step")
            else:
                # diagonal σ: θ_{k+1} = (θ + bΔ) + σ_jj √Δ z_j, the noise added in place (one call when
                # σ = c·I) straight from the sampler's float32 normals: fewer passes than the fused map
                det = th + sp.Matrix(sde.drift) * dt
                self.det = torch_function(det, (*self.state, *extra), "SDE Euler drift step")
                self.noise_scale = [float(v) * math.sqrt(dt) for v in np.diag(sig)]
        # the deterministic part of an autonomous step whose only randomness is ΔW = √Δ z, as a pure
        # function (θ, z) → θ_{k+1} that torch.compile can fuse (z drawn outside, cast inside)
        self.fusable = False
        self.cores: dict[int, Compiled] = {}  # per thread count (inductor bakes it into the kernel)
        self.last_core: Compiled | None = None
        heun = method == "weak2" and self.noise.kind == "constant"
        if self.time is None and (self.fused_pure is not None or heun):
            if self.fused_pure is None:
                drift_pure = torch_function(sde.drift, self.state, "SDE drift", pure=True)
                self._drift_pure = lambda th: drift_pure(*th.unbind(-1))
            self.fusable = True
        self.tabulation = None if tabulate is None else tabulate_stepper(self, tabulate, "simulate_sde")

    @property
    def ready(self) -> bool:
        """A compiled step exists (for some thread count) in this process."""
        return any(c.ready for c in self.cores.values())

    def core(self, workers: int) -> Compiled:
        """The compiled step for ``workers`` threads."""
        if workers not in self.cores:
            self.cores[workers] = Compiled(self._core, f"{self.what} step")
        return self.cores[workers]

    def draw_buffers(self, n: int, nz: Noise) -> list[torch.Tensor]:
        """The block's buffer of random inputs: (n, d) standard normals in the sampler's dtype."""
        return [torch.empty((n, self.d), dtype=nz._ndtype, device=nz.device)]

    def draw(self, nz: Noise, ctx: Any, bufs: list[torch.Tensor]) -> None:
        """One slab's normals of this step (the draws of :meth:`step`), from its own generator."""
        nz.normal_raw(self.d, out=bufs[0])

    def fused_block(self, theta: torch.Tensor, bufs: list[torch.Tensor], workers: int) -> torch.Tensor:
        """The compiled step for the whole block (its loop on ``workers`` threads)."""
        self.last_core = self.core(workers)
        return self.last_core(theta, bufs[0])

    def _core(self, theta: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """θ_{k+1} from θ_k and the raw standard normals z (any float dtype) of the step.

        Eagerly (the reference) the same kernels as before; traced by torch.compile, the
        stack-built ("pure") lambdified functions, which inductor fuses into one loop.
        """
        traced = torch.compiler.is_compiling()
        if self.det is not None and not traced:
            return self._additive_diagonal(theta, z, None)
        h = self.dt
        dw = math.sqrt(h) * z.to(theta.dtype)
        if self.fused_pure is not None:
            f = self.fused_pure if traced else self.fused
            return f(*theta.unbind(1), *dw.unbind(1))
        b = self._drift_pure if traced else self.drift
        a = b(theta)
        noise = self.noise.apply(theta, dw)
        ybar = theta + a * h + noise
        return theta + 0.5 * (b(ybar) + a) * h + noise

    def check(self, theta: torch.Tensor, k: int) -> str | None:
        """Why D(θ, t_k) is not positive semi-definite at some of the particles θ, or None.

        The noise factor clamps negative values of D at 0 (round-off of a PSD D); a clearly
        negative D (below −1e-9·max(1, max|D|)) is an SDE that does not exist there, refused
        instead of simulated with the noise silently switched off.
        """
        nf = self.noise
        if nf.kind == "constant" or not len(theta):
            return None
        t = self._t(k, theta)
        if nf.kind == "diagonal":
            vals = nf._diag(theta, t)
            lam = vals.amin(dim=1)
        elif nf.kind == "rank1":
            vals = nf._r1(theta, t)[:, :1]
            lam = vals[:, 0]
        else:
            vals = nf._full(theta, t)
            lam = torch.linalg.eigvalsh(0.5 * (vals + vals.transpose(1, 2)))[:, 0]
        scale = max(1.0, float(vals.abs().nan_to_num(0.0).amax()))
        bad = lam < -1e-9 * scale
        if not bool(bad.any()):
            return None
        from ..symbolic.sde import _valid_lr_hint

        j = int(torch.argmin(lam))
        at = ", ".join(f"{s} = {float(v):.4g}" for s, v in zip(self.state, theta[j], strict=True))
        D = sp.Matrix(self.sde.diffusion)
        shown = D[0, 0] if self.d == 1 else D.tolist()
        pts = theta[bad].double().cpu().numpy()
        return (
            f"{self.what}: the diffusion D = {shown} is not positive semi-definite at "
            f"{100 * float(bad.double().mean()):.3g}% of the particles at step {k} (t = {k * self.dt:g}); "
            f"most negative eigenvalue of D {float(lam[j]) / 2:.4g} at {at}. A diffusion D = σσᵀ/2 must "
            "be positive semi-definite: symfp refuses rather than clamp the noise to 0 there (an "
            "absorbing set can keep the particles where D ⪰ 0)." + _valid_lr_hint(self.sde, pts)
        )

    def start(self, noise: Noise, compile: bool = False) -> dict:
        """Per-block context: whether this run uses the compiled step."""
        return {"fused": bool(compile) and self.fusable}

    def _t(self, k: float, like: torch.Tensor) -> torch.Tensor | None:
        """The time k·Δ as a 0-d tensor (None for an autonomous SDE)."""
        return None if self.time is None else time_tensor(k * self.dt, like)

    def _b(self, theta: torch.Tensor, t: torch.Tensor | None) -> torch.Tensor:
        return self.drift(theta, t) if self.timed_drift else self.drift(theta)

    def two_d(self, theta: torch.Tensor, k: int = 0) -> torch.Tensor:
        """2D(t_k, θ) (for the Brownian-bridge correction of step k)."""
        return self.noise.two_d(theta, self._t(k, theta))

    def _additive_diagonal(self, theta: torch.Tensor, z: torch.Tensor, t0: Any) -> torch.Tensor:
        """Euler with constant diagonal σ: (θ + b(θ, t_k)Δ), then += σ_jj √Δ z_j in place."""
        out = self.det(*theta.unbind(1), *(() if t0 is None else (t0,)))
        sc = self.noise_scale
        if all(v == sc[0] for v in sc):
            out.view(-1).add_(z.view(-1), alpha=sc[0])
        else:
            for j, v in enumerate(sc):
                out[:, j].add_(z[:, j], alpha=v)
        return out

    def step(self, theta: torch.Tensor, nz: Noise, k: int, ctx: Any) -> torch.Tensor:
        if self.fusable:  # compiled slab by slab only where the runner cannot fuse the block (one worker)
            z = nz.normal_raw(self.d)
            if ctx and ctx["fused"]:
                self.last_core = self.core(1)
                return self.last_core(theta, z)
            return self._core(theta, z)
        if self.det is not None:
            return self._additive_diagonal(theta, nz.normal_raw(self.d), self._t(k, theta))
        h = self.dt
        sq = math.sqrt(h)
        dw = sq * nz.normal(self.d)
        t0 = self._t(k, theta)
        if self.fused is not None:
            return self.fused(*theta.unbind(1), *dw.unbind(1), *(() if t0 is None else (t0,)))
        a = self._b(theta, t0)
        if self.method == "euler":
            return theta + a * h + self.noise.apply(theta, dw, t0)
        t1 = self._t(k + 1, theta)
        if self.noise.kind == "constant":
            ybar = theta + a * h + self.noise.apply(theta, dw)
            return theta + 0.5 * (self._b(ybar, t1) + a) * h + self.noise.apply(theta, dw)
        return self._weak2_general(theta, a, dw, nz, t0, t1)

    def _weak2_general(self, theta, a, dw, nz, t0=None, t1=None):
        h, sq, m = self.dt, math.sqrt(self.dt), self.d
        sg = self.noise.sigma
        sig = sg(theta, t0)  # (n, d, m)
        ybar = theta + a * h + (sig @ dw[..., None])[..., 0]
        out = theta + 0.5 * (self._b(ybar, t1) + a) * h
        if m > 1:
            signs = torch.where(nz.uniform(m, m) < 0.5, -h, h)
            V = torch.triu(signs, diagonal=1)
            V = V - V.transpose(1, 2) - h * torch.eye(m, dtype=theta.dtype, device=theta.device)
        base = theta + a * h
        sig_up = [sg(theta + sq * sig[:, :, r], t0) for r in range(m)] if m > 1 else []
        sig_um = [sg(theta - sq * sig[:, :, r], t0) for r in range(m)] if m > 1 else []
        for j in range(m):
            bj = sig[:, :, j]
            rp = sg(base + sq * bj, t1)[:, :, j]
            rm = sg(base - sq * bj, t1)[:, :, j]
            w = dw[:, j : j + 1]
            lin = rp + rm + 2 * bj
            quad = (rp - rm) * (w * w - h)
            for r in range(m):
                if r == j:
                    continue
                up, um = sig_up[r][:, :, j], sig_um[r][:, :, j]
                lin = lin + up + um - 2 * bj
                quad = quad + (up - um) * (w * dw[:, r : r + 1] + V[:, r, j : j + 1])
            out = out + 0.25 * lin * w + 0.25 * quad / sq
        return out


def _pooled(device: Any, fallback: bool, threads: Any) -> bool:
    """Whether a run would use the CPU slab pool with more than one thread."""
    from .backend import resolve_device
    from .streams import resolve_threads

    try:
        return resolve_device(device, fallback).type == "cpu" and resolve_threads(threads, "") > 1
    except InputError:
        return False  # the run itself reports the device or the thread count


def simulate_sde(
    sde: Any,
    n_particles: int,
    t_end: float,
    dt: float,
    init: Any,
    *,
    method: str = "euler",
    seed: int | None = 0,
    device: Any = "auto",
    dtype: Any = "float64",
    chunk_size: int | None = None,
    outputs: int | None = 101,
    absorbing: Any = None,
    bridge: bool = True,
    progress: bool = False,
    antithetic: bool = False,
    comm: Any = None,
    fallback: bool = False,
    blowup: float = 1e12,
    fast_normals: bool = True,
    threads: int | None = None,
    compile: bool | str = "auto",
    tabulate: GridSpec | None = None,
) -> ParticleCloud:
    """Simulate ``n_particles`` independent paths of ``sde`` up to ``t_end``.

    Args:
        sde: a numeric :class:`symfp.SDE` (no free symbols besides the state and ``sde.time``); with
            a time-dependent b or D they are evaluated at the stage times of the module docstring.
        n_particles: number of particles (all MPI ranks together).
        t_end: final time; the step is ``t_end / ceil(t_end / dt)`` (≤ dt).
        dt: requested time step.
        init: a point, an (n_particles, d) array, a dict of sympy.stats variables or a callable
            (see :func:`symfp.particles.init.initial_particles`).
        method: ``"euler"`` (weak order 1) or ``"weak2"`` (weak order 2).
        seed: seed of the random numbers (ranks derive their own); None for a random seed.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``...
        dtype: ``"float32"`` or ``"float64"``.
        chunk_size: simulate at most this many particles at a time (bounded memory).
        outputs: number of output times for the moment trajectories.
        absorbing: an absorbing set (or a list) for first-passage times, censored at ``t_end``.
        bridge: apply the Brownian-bridge crossing correction for absorbing sets.
        progress: show a tqdm progress bar.
        antithetic: simulate antithetic pairs (variance reduction; even n_particles).
        comm: MPI communicator (default COMM_WORLD); particles are split over its ranks.
        fallback: fall back to the CPU when the requested device is unavailable.
        blowup: |θ| beyond this counts as divergence.
        fast_normals: float64 runs draw their Gaussian increments with torch's float32 sampler
            (≈5x faster; moments exact to ≈1e-7, see :mod:`symfp.particles.noise`); False for exact
            float64 normals.
        threads: CPU worker threads drawing the random numbers (and mini-batch gathers) slab by
            slab; None: the cores this process may use. The results do not depend on it.
        compile: fuse the deterministic part of the step (drift, noise factor, the cast and scaling
            of the normals) with ``torch.compile`` (see :mod:`symfp.particles.compiled`); used for
            autonomous Euler steps with additive noise and weak2 with constant noise. ``"auto"``
            compiles runs of at least ``AUTO_MIN_WORK`` particle-steps (or reuses a compiled step),
            except on a CPU run with more than one worker thread. A compiled run draws each slab's
            normals in the slab pool and then advances the whole block with one compiled call whose
            loop runs on ``threads`` OpenMP threads (dynamo itself is not thread-safe, so the kernel
            is never called from the pool); on the 2 shared cores the eager slab pool was still
            faster (1.1e7 vs 5.5e6 particle-steps/s at load 5, one run), hence "auto" stays eager
            there. A failed compilation warns and continues eagerly. Same random numbers either way.
        tabulate: a :class:`~symfp.particles.tabulate.GridSpec`: evaluate b and D once on that tensor
            grid and interpolate them multilinearly at the particles (for a data-mean SME: P·N work
            once instead of n·N per step); the interpolation error, measured against the exact
            evaluation at random points of the box, is in ``info["tabulation"]`` and must be below
            the grid's ``tol``; particles leaving the box are refused. Autonomous SDEs only.

    Returns:
        A :class:`ParticleCloud`.
    """
    where = "simulate_sde"
    if method not in METHODS:
        raise InputError(f"{where}: unknown method {method!r}; use one of {METHODS}")
    sde.require_numeric(where)
    try:
        t_end, dt = float(t_end), float(dt)
    except (TypeError, ValueError):
        raise InputError(f"{where}: t_end and dt must be numbers, got {t_end!r}, {dt!r}") from None
    if not (t_end > 0 and dt > 0 and math.isfinite(t_end) and math.isfinite(dt)):
        raise InputError(f"{where}: t_end and dt must be positive and finite, got t_end={t_end}, dt={dt}")
    steps = max(1, math.ceil(t_end / dt - 1e-9))
    h = t_end / steps
    key = ("sde", sde.state, sde.drift, sde.diffusion, getattr(sde, "time", None), h, method,
           tabulate if isinstance(tabulate, GridSpec) else id(tabulate) if tabulate is not None else None)
    stepper = cached(key, lambda: SDEStepper(sde, h, method, tabulate))
    use = stepper.fusable and want_compile(compile, float(n_particles) * steps, stepper.ready, where)
    if use and compile == "auto" and _pooled(device, fallback, threads):
        use = False  # measured: on CPU the eager slab pool is faster (benchmarks/RESULTS.md)
    if not stepper.fusable:
        want_compile(compile, 0.0, False, where)  # still validate the option
    opt = RunOptions(
        n_particles=n_particles,
        steps=steps,
        init=init,
        seed=seed,
        device=device,
        dtype=dtype,
        chunk_size=chunk_size,
        outputs=outputs,
        absorbing=absorbing,
        bridge=bridge,
        progress=progress,
        antithetic=antithetic,
        comm=comm,
        fallback=fallback,
        blowup=blowup,
        fast_normals=fast_normals,
        threads=threads,
        info={"source": "sde", "scheme": method, "noise": stepper.noise.kind, "model_id": model_id(sde),
              "origin": str(getattr(sde, "origin", "given"))},
        start_kw={"compile": use},
    )
    stepper.last_core = None
    cloud = run(stepper, opt, where)
    compiled_info(cloud, stepper.last_core if use else None)
    if stepper.tabulation is not None:
        cloud.info["tabulation"] = dict(stepper.tabulation)
    return cloud
