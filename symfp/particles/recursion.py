r"""Particle simulation of the exact one-step map of a recursion (SGD with all its options).

The recursion's own symbolic update :math:`\theta_{k+1} = U(\theta_k, \text{inputs}_k)` is lambdified
to torch (with CSE) and applied to all particles at once; its random inputs are drawn fresh each step,
in bulk, following their specs (``symfp.recursion``):

* ``BatchMean``: the mini-batch mean of the per-sample expression (the gradient), over B indices of a
  Dataset (with/without replacement, or random reshuffling by epoch) or B fresh Population samples
  (see :mod:`symfp.particles.batches`);
* ``StandardNormal``: i.i.d. N(0, 1) (injected noise);
* a sympy.stats random variable: its torch sampler (:mod:`symfp.particles.samplers`).

Momentum, weight decay and noise injection are whatever the update formula says: nothing is
re-implemented here. Time is t = kη when the recursion has a numeric learning rate η, else t = k.
"""

from __future__ import annotations

from typing import Any

import sympy as sp
import torch

from ..errors import InputError
from .backend import resolve_device, resolve_dtype
from .batches import BatchSource
from .cache import cached
from .cloud import ParticleCloud
from .lambdify import torch_function
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


class RecursionStepper:
    """One exact step of a recursion for a block of particles."""

    def __init__(self, rec: Any, device: torch.device, dtype: torch.dtype, reshuffle: bool, where: str):
        self.state = tuple(rec.state)
        lr = getattr(rec, "lr", None)
        self.dt = float(lr) if lr is not None and sp.sympify(lr).is_number else 1.0
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
        self.update = torch_function(update, (*self.state, *syms), f"{where} (update)")

    def start(self, nz: Noise) -> list:
        return [b.start(nz) for b in self.batches]

    def step(self, theta: torch.Tensor, nz: Noise, k: int, ctx: list) -> torch.Tensor:
        vals: list[torch.Tensor] = []
        b = 0
        for _, (kind, obj) in self.inputs:
            if kind == "monomials":
                vals.extend(obj.monomial_means(nz, ctx[b]).unbind(1))
                b += 1
            elif kind == "batch":
                vals.extend(obj.mean(theta, nz, ctx[b]).unbind(1))
                b += 1
            elif kind == "normal":
                vals.extend(nz.normal(obj).unbind(1))
            else:
                vals.append(obj(nz, ()))
        return self.update(*theta.unbind(1), *vals)


def simulate_recursion(
    model: Any,
    n_particles: int,
    steps: int,
    init: Any,
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

    Returns:
        A :class:`ParticleCloud`.

    Raises:
        DivergenceError: particles blew up (step, fraction, the exploding quantity).
    """
    where = "simulate_recursion"
    rec = _recursion_of(model, where)
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
    )
    stepper = cached(key, lambda: RecursionStepper(rec, dev, dt_, reshuffle, where))
    opt = RunOptions(
        n_particles,
        steps,
        init,
        seed,
        dev,
        dtype,
        chunk_size,
        outputs,
        absorbing,
        False,
        progress,
        antithetic,
        comm,
        fallback,
        blowup,
        fast_normals=fast_normals,
        threads=threads,
        info={"source": "recursion", "reshuffle": reshuffle},
    )
    return run(stepper, opt, where)
