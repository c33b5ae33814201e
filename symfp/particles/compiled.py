r"""Optional ``torch.compile`` (inductor) of the deterministic part of a step, with an eager fallback.

What is compiled is a pure function of the current state and of random numbers **drawn outside it**
with the run's own ``torch.Generator`` (e.g. an SDE Euler step
:math:`(\theta, z) \mapsto \theta + b(\theta)\Delta + \sigma\sqrt\Delta\,z`, the cast of float32
normals to float64 included). The random stream, and so the law and the seed reproducibility, are
those of the eager path; only the rounding of the arithmetic may differ in the last bits (fused
multiply-adds). Drawing the normals inside the compiled kernel (inductor's Philox) was measured and
rejected: on CPU inductor generates them one by one in a scalar loop, 2x slower than torch's
vectorised ``randn``, and they would come from torch's global generator instead of the run's.
The same holds for the exact-SGD step (:mod:`symfp.particles.recursion`): the mini-batch indices
are drawn outside (each slab's exact numpy SFC64 stream) and the compiled function maps
(θ, indices, feature table) to θ_{k+1}: gather, per-sample gradient, mean and update in one loop.

Threads. The generated kernels do not release the GIL and dynamo's guards are not thread-safe, so a
compiled function is called from one thread only: the runner lets the slab pool draw the random
inputs of every slab, then calls the compiled step once for the whole block with torch's intra-op
thread count set to the run's ``threads`` (inductor's OpenMP loop over the particles). One compiled
function is kept per thread count (inductor bakes it into the kernel). The results do not depend on
it: the loop over particles is split across threads, each particle's arithmetic is the same.

Inductor on CPU compiles C++ with the system compiler: a cold compile costs seconds (the FX/inductor
caches make later processes faster), so ``compile="auto"`` compiles only long runs
(:data:`AUTO_MIN_WORK` particle-steps or more) or when this stepper already holds a compiled function.
Any failure (no compiler, an unsupported op, a recompilation error) is reported once as a warning
and the run continues eagerly with the same random numbers. Kernels are loaded with local symbols
(:func:`local_symbols`): in a process that imported ``dolfinx``, whose global dlopen flags made later
kernels call the first one, they used to give wrong numbers or crash.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from ..errors import InputError

AUTO_MIN_WORK = 5e8  # particle-steps: ≈5 s of eager work, above a cold compile (≈2–20 s)


@contextmanager
def local_symbols() -> Iterator[None]:
    """Import extension modules with ``RTLD_LOCAL`` inside the block (restored afterwards).

    Every inductor CPU kernel is a small extension module exporting a C function named ``kernel``
    that its own Python binding calls. ``import dolfinx`` (0.5.2) sets the interpreter's dlopen flags
    to ``RTLD_NOW | RTLD_GLOBAL`` and leaves them so (its restore line is commented out); kernels loaded
    afterwards then put their ``kernel`` into the global symbol scope, and the binding of every later
    kernel resolves ``kernel`` to the **first** one loaded: a different loop with different
    arguments, which returned wrong numbers (1e35 after 10 weak2 steps) or corrupted the heap
    (measured). Loading kernels with local symbols keeps each binding on its own kernel.
    """
    flags = sys.getdlopenflags()
    if not flags & os.RTLD_GLOBAL:
        yield
        return
    sys.setdlopenflags(flags & ~os.RTLD_GLOBAL)
    try:
        yield
    finally:
        sys.setdlopenflags(flags)


def want_compile(option: Any, work: float, ready: bool, where: str) -> bool:
    """Whether to use the compiled step.

    Args:
        option: ``True``, ``False`` or ``"auto"``.
        work: n_particles · steps of this run.
        ready: the stepper already holds a successfully compiled function (no compile cost left).
        where: caller, for errors.

    Returns:
        ``option`` for a bool; for ``"auto"``: ``ready or work >= AUTO_MIN_WORK``.
    """
    if option is not True and option is not False and option != "auto":
        raise InputError(f"{where}: compile must be True, False or 'auto', got {option!r}")
    if option is False:
        return False
    return option is True or ready or work >= AUTO_MIN_WORK


class Compiled:
    """A function and its ``torch.compile``'d version; calls the compiled one until it fails.

    Args:
        fn: a pure torch function (its eager behaviour is the reference).
        what: name for the warning.

    Attributes:
        compile_time: wall-clock seconds of the first compiled call (compilation included), or None.
        failed: the error that disabled compilation, or None.
    """

    def __init__(self, fn: Callable[..., torch.Tensor], what: str):
        self.fn = fn
        self.what = what
        self.compiled: Callable[..., torch.Tensor] | None = None
        self.compile_time: float | None = None
        self.failed: str | None = None

    @property
    def ready(self) -> bool:
        """Compiled once successfully (and not failed since)."""
        return self.compile_time is not None and self.failed is None

    def __call__(self, *args: torch.Tensor, use: bool = True) -> torch.Tensor:
        if not use or self.failed is not None:
            return self.fn(*args)
        try:
            if self.compiled is None:
                self.compiled = torch.compile(self.fn, dynamic=None)
            with local_symbols():  # kernels are loaded on first calls and recompilations
                if self.compile_time is None:
                    t0 = time.perf_counter()
                    out = self.compiled(*args)
                    self.compile_time = time.perf_counter() - t0
                    return out
                return self.compiled(*args)
        except Exception as exc:  # noqa: BLE001 - compiler/driver errors of every kind: fall back
            self.failed = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            warnings.warn(
                f"torch.compile of the {self.what} failed ({self.failed}); continuing eagerly",
                RuntimeWarning,
                stacklevel=2,
            )
            return self.fn(*args)


def compiled_info(cloud: Any, core: Compiled | None) -> None:
    """Record in ``cloud.info`` whether the compiled step ran (``compiled``), its first call's time
    (``compile_time``, compilation included) and the error that disabled it (``compile_error``)."""
    cloud.info["compiled"] = bool(core is not None and core.ready)
    if core is not None:
        cloud.info["compile_time"] = core.compile_time
        if core.failed:
            cloud.info["compile_error"] = core.failed
