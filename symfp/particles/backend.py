"""Device, dtype, seeds, chunks and the progress bar shared by the particle simulators."""

from __future__ import annotations

import os
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


def available_memory() -> int | None:
    """Bytes of memory available to this process (MemAvailable, capped by a cgroup limit), or None."""
    avail = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = None
    for cg in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(cg, encoding="ascii") as fh:
                raw = fh.read().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < (1 << 60):
            avail = int(raw) if avail is None else min(avail, int(raw))
    return avail


def check_memory(n_local: int, d: int, itemsize: int, block: int, where: str, *, absorbing: bool) -> None:
    """Refuse a run whose arrays cannot fit in memory, before allocating them.

    The run keeps the final positions of every particle (n·d float64, plus exit times with an
    absorbing set) and, per block of ``block`` particles, the state, the next state and the step's
    random numbers (about 4·block·d·itemsize, plus the scheme's temporaries: counted twice).
    """
    final = n_local * d * 8 + (n_local * 9 if absorbing else 0)
    work = 8 * block * d * itemsize
    need = final + work
    avail = available_memory()
    if avail is None or need <= 0.8 * avail:
        return
    gib = 1024.0**3
    if final > 0.8 * avail:
        hint = ("; chunk_size= bounds only the working set, the final positions alone need "
                f"{final / gib:.3g} GiB")
    else:
        hint = f"; pass chunk_size=... (e.g. {max(1, block // 8)})"
    raise InputError(
        f"{where}: {n_local} particles in {d} dimension(s) need about {need / gib:.3g} GiB of memory, but "
        f"{avail / gib:.3g} GiB are available; reduce n_particles (or split the run over MPI ranks / "
        f"several seeds){hint}"
    )


def chunks(n: int, chunk_size: int | None) -> Iterator[slice]:
    """Slices of at most ``chunk_size`` particles covering range(n) (one slice when None)."""
    size = n if not chunk_size else max(1, int(chunk_size))
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def progress(total: int, show: bool, desc: str):
    """A tqdm progress bar (disabled when ``show`` is False)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not show, desc=desc, leave=False)
