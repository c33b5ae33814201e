r"""Particle simulation of the exact one-step map of a recursion (SGD with all its options).

The recursion's own symbolic update :math:`\theta_{k+1} = U(\theta_k, \text{inputs}_k)` is lambdified
to torch (with CSE) and applied to all particles at once; its random inputs are drawn fresh each step,
in bulk, following their specs (``symfp.symbolic.recursion``):

* ``BatchMean``: the mini-batch mean of the per-sample expression (the gradient), over B indices of a
  Dataset (with/without replacement, or random reshuffling by epoch) or B fresh Population samples
  (see :mod:`symfp.particles.batches`);
* ``StandardNormal``: i.i.d. N(0, 1) (injected noise);
* a sympy.stats random variable: its torch sampler (:mod:`symfp.particles.samplers`).

Momentum, weight decay and noise injection are whatever the update formula says: nothing is
re-implemented here. Time is t = kη when the recursion has a numeric learning rate η, else t = k.

**Learning-rate schedules** (``lr_schedule=``): step k uses :math:`\eta_k` instead of the model's η
everywhere η enters the update (the gradient step, the momentum step, the injected-noise scale
:math:`\sqrt{2\eta_k\delta}`); an SGD model is rebuilt with a symbolic :math:`\eta_k`, a
``Recursion`` needs its ``lr`` to be a Symbol of its update. Time is then the SGD time
:math:`t_k = \sum_{j<k}\eta_j` (the time of the modified equation with a schedule
:math:`\eta_k = \eta\,u(t_k)`, Li, Tai & E), used for the output times and exit times.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np
import sympy as sp
import torch

from ..errors import InputError
from ..native.build import NativeError, compiler
from ..native.build import enabled as native_enabled
from ..symbolic.model_hash import model_hash
from .backend import resolve_device, resolve_dtype
from .batches import BatchSource
from .cache import cached
from .cloud import ParticleCloud
from .compiled import Compiled, compiled_info, want_compile
from .lambdify import time_tensor, torch_function
from .native import NativeStep, kernel_source
from .noise import Noise
from .runner import RunOptions, run
from .samplers import sampler


def _recursion_of(model: Any, where: str) -> Any:
    rec = getattr(model, "recursion", model)
    if not (hasattr(rec, "update") and hasattr(rec, "randomness") and hasattr(rec, "state")):
        raise InputError(f"{where}: {model!r} is not a symfp recursion or SGD model")
    params = getattr(model, "parameters", set()) | getattr(rec, "parameters", set())
    if params:
        names = ", ".join(sorted(map(str, params)))
        raise InputError(
            f"{where}: the recursion still has free symbols {names}; give them numbers first, "
            f"e.g. model.subs({{{names.split(', ')[0]}: 0.1}})"
        )
    return rec


def schedule_values(schedule: Any, steps: int, where: str) -> np.ndarray:
    """The learning rates η_0..η_{steps−1} of a schedule, checked positive and finite.

    Args:
        schedule: a callable k ↦ η_k (k = 0, 1, …), a SymPy expression in one symbol (the step k),
            or a sequence of at least ``steps`` numbers.
        steps: the number of steps.
        where: caller, for errors.
    """
    k = np.arange(steps)
    try:
        if isinstance(schedule, sp.Basic):
            free = sorted(schedule.free_symbols, key=str)
            if len(free) > 1:
                raise InputError(
                    f"{where}: lr_schedule {schedule} has symbols {free}; use one symbol, the step k"
                )
            vals = (
                np.full(steps, float(schedule))
                if not free
                else np.asarray(sp.lambdify(free, schedule, "numpy")(k), dtype=float) * np.ones(steps)
            )
        elif callable(schedule):
            vals = np.array([float(schedule(int(j))) for j in k])
        else:
            vals = np.asarray(schedule, dtype=float).ravel()
            if len(vals) < steps:
                raise InputError(f"{where}: lr_schedule has {len(vals)} values for {steps} steps")
            vals = vals[:steps]
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{where}: lr_schedule must be a callable k -> eta_k, a SymPy expression in the step k or a "
            f"sequence of numbers ({exc})"
        ) from None
    bad = np.flatnonzero(~(np.isfinite(vals) & (vals > 0)))
    if bad.size:
        raise InputError(
            f"{where}: lr_schedule gives eta_{bad[0]} = {float(vals[bad[0]])!r} at step {bad[0]}; learning "
            "rates must be positive and finite"
        )
    return vals


def _batch_sizes(rec: Any, schedule: Any, steps: Any, where: str) -> np.ndarray:
    """The batch sizes B_0..B_{steps−1} of a schedule: whole numbers ≥ 1, ≤ N without replacement."""
    specs = [s for s in rec.randomness.values() if type(s).__name__ == "BatchMean"]
    if not specs:
        raise InputError(f"{where}: batch_schedule given but the recursion has no mini-batch input "
                         "(a Dataset or Population in the gradient); drop batch_schedule")
    try:
        n_steps = max(int(steps), 0)
    except (TypeError, ValueError):
        n_steps = 0
    vals = schedule_values(schedule, n_steps, f"{where} (batch_schedule)")
    if np.any(np.abs(vals - np.round(vals)) > 1e-9) or np.any(vals < 1):
        k = int(np.flatnonzero((np.abs(vals - np.round(vals)) > 1e-9) | (vals < 1))[0])
        raise InputError(f"{where}: batch_schedule gives B_{k} = {vals[k]!r}; batch sizes must be whole "
                         "numbers >= 1")
    vals = np.round(vals).astype(np.int64)
    for spec in specs:
        n = getattr(spec.data, "n", None)
        if n is not None and not spec.replacement and vals.max() > n:
            raise InputError(f"{where}: batch_schedule reaches B = {vals.max()} > N = {n} samples "
                             "(sampling without replacement); cap it at N")
    return vals


#: ``compile="auto"`` builds the C kernel for runs of AUTO_MIN_WORK / NATIVE_AUTO_SCALE = 10⁶
#: particle-steps or more (≈0.5 s eager; a cold build is ≈0.2 s of gcc, a cached one milliseconds;
#: inductor's compile takes seconds)
NATIVE_AUTO_SCALE = 500.0

ETA_K = sp.Symbol("_symfp_eta_k", positive=True)  # the per-step learning rate of a schedule


def _scheduled(model: Any, where: str) -> tuple[Any, sp.Symbol]:
    """The recursion with its learning rate replaced by a symbol η_k (the stepper's per-step input)."""
    eta_k = ETA_K
    if hasattr(model, "recursion_with"):  # SGD: rebuild the step with a symbolic η
        params = model.parameters - model.lr.free_symbols
        rec = model.recursion_with(lr=eta_k)
    else:
        rec = getattr(model, "recursion", model)
        lr = getattr(rec, "lr", None)
        if not isinstance(lr, sp.Symbol) or lr not in sp.Matrix(rec.update).free_symbols:
            raise InputError(
                f"{where}: lr_schedule needs the recursion's lr to be a symbol of its update (got lr={lr}); "
                "build the Recursion with lr=eta and eta in the update"
            )
        params = rec.parameters - {lr}
        rec = type(rec)(rec.state, sp.Matrix(rec.update).xreplace({lr: eta_k}), rec.randomness, lr=eta_k)
    if params:
        names = ", ".join(sorted(map(str, params)))
        raise InputError(f"{where}: the recursion still has free symbols {names}; give them numbers first")
    return rec, eta_k


class RecursionStepper:
    """One exact step of a recursion for a block of particles."""

    def __init__(
        self,
        rec: Any,
        device: torch.device,
        dtype: torch.dtype,
        reshuffle: bool,
        where: str,
        lr_symbol: sp.Symbol | None = None,
    ):
        self.state = tuple(rec.state)
        self.dtype = dtype
        lr = getattr(rec, "lr", None)
        self.dt = float(lr) if lr is not None and sp.sympify(lr).is_number else 1.0
        self.lr_symbol = lr_symbol
        self.what = "recursion"
        self.divergence_hint = (
            "The learning rate is probably beyond the stability limit (for a quadratic loss of curvature a, "
            "plain SGD needs η·a < 2): reduce it."
        )
        self.inputs: list[tuple[tuple[sp.Symbol, ...], Any]] = []
        self.batches: list[BatchSource] = []
        syms: list[sp.Symbol] = []
        fused: dict[sp.Symbol, sp.Expr] = {}
        for key, spec in rec.randomness.items():
            keys = key if isinstance(key, tuple) else (key,)
            kind = type(spec).__name__
            if kind == "BatchMean":
                src = BatchSource(spec, self.state, device, dtype, reshuffle, where)
                self.batches.append(src)
                if src.poly:
                    # ĝ = C(θ) μ with μ the batch means of the data monomials: substituted into the
                    # update, so one fused function maps (θ, μ, ...) to θ_{k+1}
                    mu = [sp.Dummy(f"mu{len(fused)}_{j}") for j in range(len(src.monos))]
                    ghat = src.coefficients * sp.Matrix(mu)
                    fused.update(dict(zip(keys, ghat, strict=True)))
                    self.inputs.append((tuple(mu), ("monomials", src)))
                    syms.extend(mu)
                    continue
                self.inputs.append((keys, ("batch", src)))
            elif kind == "StandardNormal":
                self.inputs.append((keys, ("normal", len(keys))))
            else:
                self.inputs.append((keys, ("rv", sampler(spec, f"{where} (input {key})"))))
            syms.extend(keys)
        if reshuffle and not self.batches:
            raise InputError(f"{where}: reshuffle=True but the recursion has no mini-batch input")
        update = sp.Matrix(rec.update).xreplace(fused)
        extra = (lr_symbol,) if lr_symbol is not None else ()
        self.update = torch_function(update, (*self.state, *syms, *extra), f"{where} (update)")
        # the fused step: one mini-batch input over a finite data set with replacement is the only
        # randomness, so θ_{k+1} is a pure function of θ_k and the step's (n, B) indices
        self.fusable = (lr_symbol is None and len(self.inputs) == 1 and len(self.batches) == 1
                        and self.batches[0].fusable)
        self.cores: dict[int, Compiled] = {}
        self.last_core: Compiled | None = None
        if self.fusable:
            self._update_pure = torch_function(update, (*self.state, *syms), f"{where} (update)", pure=True)
        # the C kernel (symfp.particles.native): the same single mini-batch input, any lr/B schedule
        self.native_spec: dict | None = None
        self._native: NativeStep | None = None
        self.native_error: str | None = None
        if len(self.inputs) == 1 and len(self.batches) == 1 and self.batches[0].fusable:
            src, (means, (kind, _)) = self.batches[0], self.inputs[0]
            if kind == "monomials":  # the table holds the data monomials: average them, then C(θ)·m̄
                feats = [sp.Dummy(f"q{j}") for j in range(len(src.monos))]
                spec = {"features": feats, "per_sample": feats}
            else:
                spec = {"features": src.feature_symbols, "per_sample": src.per_sample}
            self.native_spec = {"state": self.state, "means": list(means), "update": list(update),
                                "lr": lr_symbol, **spec}
        if self.fusable or self.native_spec is not None:
            self._table = self.batches[0].table()

    def start(self, nz: Noise, schedule: np.ndarray | None = None,
              batch_sizes: np.ndarray | None = None, compile: bool = False, native: bool = False) -> dict:
        """Per-block context: the batch sources' state, the schedule's η_k and B_k (or None).

        With a batch-size schedule each block gets shallow copies of the batch sources (sharing the
        data tensors) whose ``B`` is set per step, so blocks on several threads do not interfere.
        ``fused`` says whether the block takes the compiled step (:meth:`fused_block`).
        """
        sources = self.batches if batch_sizes is None else [copy.copy(b) for b in self.batches]
        fused = bool(compile) and self.fused_ok(schedule is not None, batch_sizes is not None, nz.antithetic)
        return {"batches": [b.start(nz) for b in self.batches], "schedule": schedule,
                "batch_sizes": batch_sizes, "sources": sources, "fused": fused,
                "native": self._native if native and nz.np_gen is not None else None}

    # ------------------------------------------------------------------ the C kernel
    def native_ok(self, device: torch.device, antithetic: bool) -> bool:
        """Whether a run can take the C kernel: one mini-batch input over a finite Dataset with
        replacement (lr and batch-size schedules allowed), CPU, no antithetic pairs, and native
        kernels not switched off (``SYMFP_NATIVE=0``)."""
        return (self.native_spec is not None and device.type == "cpu" and not antithetic
                and self.batches[0].N < 2**31 and native_enabled())  # the kernel draws int32 indices

    @property
    def native_ready(self) -> bool:
        """The C kernel was built in this process (no build cost left)."""
        return self._native is not None

    def native_kernel(self) -> NativeStep | None:
        """The built C kernel (built on the first call; None, with one warning, when it cannot be)."""
        if self._native is None and self.native_error is None:
            try:
                self._native = NativeStep(kernel_source(**self.native_spec, dtype=self.dtype), self.dtype)
            except NativeError as exc:
                self.native_error = str(exc)
                warnings.warn(f"simulate_recursion: the C kernel of the exact-SGD step is not available "
                              f"({exc}); continuing with the torch step", RuntimeWarning, stacklevel=3)
        return self._native

    # ------------------------------------------------------------------ the fused (compiled) step
    def fused_ok(self, schedule: bool, batch_schedule: bool, antithetic: bool) -> bool:
        """Whether a run with these options can take the fused step (else the eager one)."""
        return self.fusable and not (schedule or batch_schedule or antithetic)

    @property
    def ready(self) -> bool:
        """A fused step was compiled successfully (for some thread count) in this process."""
        return any(c.ready for c in self.cores.values())

    def core(self, workers: int) -> Compiled:
        """The compiled fused step for ``workers`` threads (inductor bakes the thread count in)."""
        if workers not in self.cores:
            self.cores[workers] = Compiled(self._fused, "exact-SGD step")
        return self.cores[workers]

    def _fused(self, theta: torch.Tensor, idx: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """θ_{k+1} from θ_k and the step's (n, B) batch indices: gather, gradient, mean and update."""
        means = self.batches[0].fused_means(theta, idx, table)
        return self._update_pure(*theta.unbind(1), *means)

    def draw_buffers(self, n: int, nz: Noise) -> list[torch.Tensor]:
        """The block's buffers of random inputs: the (n, B) batch indices."""
        return [self.batches[0].index_buffer(n, nz.device)]

    def draw(self, nz: Noise, ctx: dict, bufs: list[torch.Tensor]) -> None:
        """One slab's random inputs of this step, from its own streams (called in the slab pool)."""
        self.batches[0].draw_indices(nz, bufs[0])

    def fused_block(self, theta: torch.Tensor, bufs: list[torch.Tensor], workers: int) -> torch.Tensor:
        """The compiled step for the whole block (its loop over particles on ``workers`` threads)."""
        self.last_core = self.core(workers)
        return self.last_core(theta, bufs[0], self._table)

    def step(self, theta: torch.Tensor, nz: Noise, k: int, ctx: dict) -> torch.Tensor:
        etas = ctx["schedule"]
        if etas is None and self.lr_symbol is not None:
            raise InputError("simulate_recursion: this stepper needs an lr_schedule")
        kern = ctx.get("native")
        if kern is not None:  # draw, gather, gradient, mean and update in C, from the slab's stream
            sizes = ctx.get("batch_sizes")
            B = int(sizes[k]) if sizes is not None else self.batches[0].B
            ctx["native_out"] = kern.step(theta, self._table, nz.np_gen, B,
                                          float(etas[k]) if etas is not None else 0.0, ctx.get("native_out"))
            return ctx["native_out"]
        vals: list[torch.Tensor] = []
        tail = [time_tensor(float(etas[k]), theta)] if etas is not None else []
        batch_ctx = ctx["batches"]
        sources = ctx.get("sources", self.batches)
        if ctx.get("batch_sizes") is not None:
            for src in sources:
                src.B = int(ctx["batch_sizes"][k])
        b = 0
        for _, (kind, obj) in self.inputs:
            if kind == "monomials":
                vals.extend(sources[b].monomial_means(nz, batch_ctx[b]).unbind(1))
                b += 1
            elif kind == "batch":
                vals.extend(sources[b].mean(theta, nz, batch_ctx[b]).unbind(1))
                b += 1
            elif kind == "normal":
                vals.extend(nz.normal(obj).unbind(1))
            else:
                vals.append(obj(nz, ()))
        return self.update(*theta.unbind(1), *vals, *tail)


def simulate_recursion(
    model: Any,
    n_particles: int,
    steps: int,
    init: Any,
    *,
    seed: int | None = 0,
    device: Any = "auto",
    dtype: Any = "float64",
    chunk_size: int | None = None,
    outputs: int | None = 101,
    absorbing: Any = None,
    reshuffle: bool = False,
    progress: bool = False,
    antithetic: bool = False,
    comm: Any = None,
    fallback: bool = False,
    blowup: float = 1e12,
    fast_normals: bool = True,
    threads: int | None = None,
    lr_schedule: Any = None,
    batch_schedule: Any = None,
    compile: bool | str = "auto",
) -> ParticleCloud:
    """Simulate ``n_particles`` independent runs of the exact recursion for ``steps`` steps.

    Args:
        model: a ``symfp.SGD`` (its ``.recursion`` is used) or a ``symfp.Recursion``, all numeric.
        n_particles: number of particles (all MPI ranks together).
        steps: number of steps K (time t = Kη).
        init: a point, an (n_particles, d) array, a dict of sympy.stats variables or a callable.
        seed, device, dtype, chunk_size, outputs, progress, antithetic, comm, fallback, blowup,
            fast_normals, threads: as in
            :func:`symfp.particles.sde.simulate_sde`.
        absorbing: absorbing set(s); exit times are the first step in the set (times kη).
        reshuffle: draw mini-batches by random reshuffling (one permutation per epoch) instead of
            independently each step.
        lr_schedule: learning rates per step (a callable k ↦ η_k, a SymPy expression in the step k,
            or a sequence); the model's lr is then not used (it may stay a symbol). Times are
            t_k = Σ_{j<k} η_j (see the module docstring).
        batch_schedule: batch sizes per step (a callable k ↦ B_k, a SymPy expression in the step k, or a
            sequence), whole numbers ≥ 1 (≤ N without replacement); step k averages the gradient over
            B_k samples instead of the model's B.
        compile: fuse the step. On CPU, when the only random input is one mini-batch over a finite
            Dataset drawn with replacement (no reshuffle or antithetic pairs; lr and batch-size
            schedules allowed), the step becomes a C kernel printed by SymPy's C printer and built
            with the system compiler (:mod:`symfp.particles.native`): per slab and thread it draws
            the indices from the slab's own stream (numpy's algorithm: the eager step's indices),
            gathers the data features, evaluates the per-sample gradient, averages and updates, so
            a seeded run equals the eager one up to rounding. Where that kernel is switched off
            (``SYMFP_NATIVE=0``) or on other devices, the same fusion by ``torch.compile``
            (inductor; no schedules). ``"auto"`` builds the C kernel for runs of at least 10⁶
            particle-steps (inductor: ``AUTO_MIN_WORK``, non-polynomial losses only), or reuses a
            built one (see :mod:`symfp.particles.compiled`). ``info["compiled"]`` says whether a
            fused step ran, ``info["kernel"]`` is ``"c"`` for the C kernel, ``info["compile_time"]``
            its build time; without a C compiler the torch step runs, with one warning.

    Returns:
        A :class:`ParticleCloud`.

    Raises:
        DivergenceError: particles blew up (step, fraction, the exploding quantity).
    """
    where = "simulate_recursion"
    etas = times = lr_sym = None
    if lr_schedule is not None:
        rec, lr_sym = _scheduled(model, where)
        try:
            n_steps = max(int(steps), 0)
        except (TypeError, ValueError):
            n_steps = 0  # the runner reports the bad step count
        etas = schedule_values(lr_schedule, n_steps, where)
        times = np.concatenate([[0.0], np.cumsum(etas)])
    else:
        rec = _recursion_of(model, where)
    batch_sizes = None
    if batch_schedule is not None:
        batch_sizes = _batch_sizes(rec, batch_schedule, steps, where)
    dev = resolve_device(device, fallback)
    dt_ = resolve_dtype(dtype)
    key = (
        "recursion",
        rec.state,
        rec.update,
        tuple(rec.randomness.items()),
        getattr(rec, "lr", None),
        str(dev),
        dt_,
        bool(reshuffle),
        lr_sym is not None,
    )
    stepper = cached(key, lambda: RecursionStepper(rec, dev, dt_, reshuffle, where, lr_sym))
    can_fuse = stepper.fused_ok(etas is not None, batch_sizes is not None, bool(antithetic))
    try:
        work = float(n_particles) * float(steps)
    except (TypeError, ValueError):
        work = 0.0  # the runner reports the bad count
    native = None
    if stepper.native_ok(dev, bool(antithetic)) and want_compile(
            compile, work * NATIVE_AUTO_SCALE, stepper.native_ready, where):
        native = stepper.native_kernel()  # None (and a warning) when it cannot be built
    if native is not None or (dev.type == "cpu" and stepper.native_error is not None and compiler() is None):
        can_fuse = False  # the C kernel runs, or there is no C compiler (inductor needs one too)
    use = can_fuse and want_compile(compile, work, stepper.ready, where)
    if use and compile == "auto" and stepper.batches[0].poly:
        # measured (1 thread, CPU time, 2e5 particles, B = 32): the eager monomial path 2.9e6 vs
        # compiled 2.4e6 particle-steps/s, the logistic feature path 1.1e6 eager vs 1.4e6 compiled
        use = False
    if not can_fuse:
        want_compile(compile, 0.0, False, where)  # still validate the option
    opt = RunOptions(
        n_particles=n_particles,
        steps=steps,
        init=init,
        seed=seed,
        device=dev,
        dtype=dtype,
        chunk_size=chunk_size,
        outputs=outputs,
        absorbing=absorbing,
        bridge=False,
        progress=progress,
        antithetic=antithetic,
        comm=comm,
        fallback=fallback,
        blowup=blowup,
        fast_normals=fast_normals,
        threads=threads,
        info={"source": "recursion", "model_hash": model_hash(model), "reshuffle": reshuffle,
              "lr_schedule": lr_schedule is not None,
              "batch_schedule": batch_schedule is not None},
        start_kw={"schedule": etas, "compile": use, "native": native is not None,
                  **({} if batch_sizes is None else {"batch_sizes": batch_sizes})},
        times=times,
    )
    stepper.last_core = None
    cloud = run(stepper, opt, where)
    compiled_info(cloud, stepper.last_core if use else None)
    if native is not None:
        cloud.info.update(compiled=True, kernel="c", compile_time=native.build_time,
                          kernel_cached=native.cached)
    elif stepper.native_error is not None and compile is not False:
        cloud.info["compile_error"] = stepper.native_error
    return cloud
