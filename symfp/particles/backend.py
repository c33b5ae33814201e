"""Device, dtype, seeds, chunks and the progress bar shared by the particle simulators."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from ..errors import InputError

_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    torch.float32: torch.float32,
    torch.float64: torch.float64,
}


def resolve_device(device: Any = "auto", fallback: bool = False) -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a torch.device into an available device.

    Args:
        device: the request; ``"auto"`` means CUDA when present, else CPU.
        fallback: when the requested device is unavailable, use the CPU instead of raising.

    Raises:
        InputError: the device is unknown or unavailable (and ``fallback`` is False).
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"particles: unknown device {device!r}; use 'auto', 'cpu' or 'cuda'") from exc
    ok = dev.type == "cpu"
    if dev.type == "cuda":
        ok = torch.cuda.is_available() and (dev.index is None or dev.index < torch.cuda.device_count())
    elif dev.type == "mps":
        ok = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if not ok:
        if fallback:
            return torch.device("cpu")
        raise InputError(
            f"particles: device {device!r} is not available on this machine; use device='auto' "
            "(CUDA when present, else CPU) or pass fallback=True to fall back to the CPU"
        )
    return dev


def resolve_dtype(dtype: Any) -> torch.dtype:
    """``"float32"``/``"float64"`` (or the torch dtypes) → torch dtype, else InputError."""
    try:
        return _DTYPES[dtype]
    except (KeyError, TypeError):
        raise InputError(f"particles: dtype {dtype!r} is not supported; use 'float32' or 'float64'") from None


def check_count(n_particles: Any, where: str) -> int:
    """A positive integer number of particles, else InputError."""
    try:
        n = int(n_particles)
    except (TypeError, ValueError):
        n = -1
    if n <= 0 or n != n_particles:
        raise InputError(f"{where}: n_particles must be a positive integer, got {n_particles!r}")
    return n


def chunks(n: int, chunk_size: int | None) -> Iterator[slice]:
    """Slices of at most ``chunk_size`` particles covering range(n) (one slice when None)."""
    size = n if not chunk_size else max(1, int(chunk_size))
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def progress(total: int, show: bool, desc: str):
    """A tqdm progress bar (disabled when ``show`` is False)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not show, desc=desc, leave=False)
