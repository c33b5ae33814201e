"""Initial particles from a point, an array, independent SymPy random variables or a callable."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sympy as sp
import torch

from ..errors import InputError
from .noise import Noise
from .samplers import sampler


def initial_particles(
    init: Any, noise: Noise, offset: int, n_total: int, state: Sequence[sp.Symbol], where: str
) -> torch.Tensor:
    """Initial positions (noise.n, d) for the block of particles starting at global row ``offset``.

    Args:
        init: one of
            * a point: a number (d = 1) or a sequence of d numbers (every particle starts there);
            * an array of shape (n_particles, d): the rows ``offset…`` are used;
            * a dict {state symbol or name: SymPy random variable or number} (independent draws);
            * a callable ``f(n, generator)`` returning an (n, d) array or tensor.
        noise: the block's random source (its n, dtype, device, generator).
        offset: global index of the block's first particle (for arrays).
        n_total: total number of particles (for arrays).
        state: the state symbols.
        where: the caller (for errors).
    """
    d, n = len(state), noise.n
    kw = {"dtype": noise.dtype, "device": noise.device}
    if isinstance(init, Mapping):
        names = {str(s): s for s in state}
        keys = {names.get(k, k) if isinstance(k, str) else k for k in init}
        if keys != set(state):
            raise InputError(
                f"{where}: init gives distributions for {sorted(map(str, keys))}, "
                f"the state is {[str(s) for s in state]}; give one per state variable"
            )
        by_sym = {(names.get(k, k) if isinstance(k, str) else k): v for k, v in init.items()}
        cols = [sampler(by_sym[s], f"{where} (init of {s})")(noise, ()) for s in state]
        return torch.stack(cols, dim=1).to(**kw)
    if callable(init) and not isinstance(init, (sp.Basic, np.ndarray)):
        x = torch.as_tensor(init(n, noise.gen), **kw)
        if x.shape != (n, d):
            raise InputError(f"{where}: init callable returned shape {tuple(x.shape)}, expected ({n}, {d})")
        return x
    if isinstance(init, sp.Basic) and not init.is_number:
        raise InputError(
            f"{where}: init {init} is a symbolic expression; for a density give a dict of "
            "sympy.stats random variables, an array of samples or a callable sampler"
        )
    try:
        arr = np.asarray(init, dtype=float)
    except (TypeError, ValueError):
        raise InputError(
            f"{where}: init {init!r} is not a point, an array, a dict of random variables or a callable"
        ) from None
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim == 1:
        if arr.shape[0] != d:
            raise InputError(
                f"{where}: init point has {arr.shape[0]} entries, the state {[str(s) for s in state]} has {d}"
            )
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{where}: init point {arr} is not finite")
        return torch.as_tensor(arr, **kw).expand(n, d).clone()
    if arr.ndim == 2 and arr.shape == (n_total, d):
        return torch.as_tensor(arr[offset : offset + n], **kw).clone()
    raise InputError(
        f"{where}: init array has shape {arr.shape}; expected ({d},) for a point or "
        f"({n_total}, {d}) for one row per particle"
    )
