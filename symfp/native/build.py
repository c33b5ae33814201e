r"""Build and load C kernels: the system C compiler, an on-disk cache, atomic writes.

A kernel is a C source (printed by :mod:`symfp.native.cprint`) compiled with ``$CC`` (else ``cc``,
``gcc`` or ``clang``) and the flags :data:`FLAGS` into a shared library under ``$SYMFP_CACHE_DIR``
(default ``$XDG_CACHE_HOME/symfp/kernels`` or ``~/.cache/symfp/kernels``), named by the hash of the
source, the flags, the compiler's version and the CPU (``-march=native``), and loaded with ``ctypes``
(local symbols; the exported names carry the hash too). The source and the library are written to
temporary names and moved into place, so concurrent processes (MPI ranks) never load a half-written
file. ``SYMFP_NATIVE=0`` switches every native kernel off (the numpy/torch paths run).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fopenmp-simd", "-fPIC", "-shared", "-Wl,-z,defs")

_LOCK = threading.Lock()
_LOADED: dict[str, Any] = {}


class NativeError(Exception):
    """A kernel cannot be built here (no compiler, a function without a C form, a compile error)."""


def enabled() -> bool:
    """Native kernels are on unless ``SYMFP_NATIVE=0``."""
    return os.environ.get("SYMFP_NATIVE", "1") != "0"


def compiler() -> str | None:
    """The C compiler: ``$CC`` if set (None if it is not found), else ``cc``, ``gcc`` or ``clang``."""
    cc = os.environ.get("CC")
    if cc:
        return shutil.which(cc)
    for c in ("cc", "gcc", "clang"):
        found = shutil.which(c)
        if found:
            return found
    return None


def cache_dir() -> Path:
    """Where built kernels live: ``$SYMFP_CACHE_DIR``, else ``$XDG_CACHE_HOME/symfp/kernels``, else
    ``~/.cache/symfp/kernels`` (a temporary directory when that cannot be created)."""
    env = os.environ.get("SYMFP_CACHE_DIR")
    xdg = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    base = Path(env) if env else xdg / "symfp" / "kernels"
    try:
        base.mkdir(parents=True, exist_ok=True)
        return base
    except OSError:
        tmp = Path(tempfile.gettempdir()) / f"symfp-kernels-{os.getuid()}"
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp


def _cpu_id() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("model name", "flags")):
                    return line
    except OSError:
        pass
    return platform.processor()


_IDENTITY: dict[str, str] = {}


def _identity(cc: str) -> str:
    if cc not in _IDENTITY:
        try:
            ver = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise NativeError(f"the C compiler {cc} does not run ({exc})") from None
        _IDENTITY[cc] = f"{cc}\n{ver}\n{platform.machine()}\n{_cpu_id()}"
    return _IDENTITY[cc]


def _compile(cc: str, src: Path, lib: Path) -> None:
    """Compile ``src`` into ``lib`` atomically (libmvec first, then without it)."""
    tmp = lib.with_name(f".{lib.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    errors = []
    for extra in (["-lmvec", "-lm"], ["-DSYMFP_NO_MVEC", "-lm"]):
        cmd = [cc, *FLAGS, str(src), "-o", str(tmp), *extra]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.SubprocessError) as exc:
            raise NativeError(f"the C compiler {cc} failed to run ({exc})") from None
        if res.returncode == 0:
            os.replace(tmp, lib)
            return
        errors.append(res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}")
    tmp.unlink(missing_ok=True)
    raise NativeError(f"the C kernel did not compile ({'; '.join(errors)}); source: {src}")


def load(source: str, stem: str) -> tuple[Any, str, bool]:
    """Compile (or find in the cache) and load ``source``.

    Every occurrence of ``stem`` in the source is replaced by ``stem_<hash>``, so the exported
    symbols of different kernels never collide.

    Args:
        source: the C source.
        stem: the name stem of its exported functions.

    Returns:
        ``(library, prefix, cached)``: the ``ctypes.CDLL``, the exported names' prefix
        (``stem_<hash>``), and whether the library was already built (memory or disk).

    Raises:
        NativeError: no C compiler, or the source does not compile or load.
    """
    cc = compiler()
    if cc is None:
        raise NativeError("no C compiler found (set $CC, or install gcc)")
    key = hashlib.sha256((source + "\n".join(FLAGS) + _identity(cc)).encode()).hexdigest()[:20]
    prefix = f"{stem}_{key}"
    with _LOCK:
        lib = _LOADED.get(prefix)
        if lib is not None:
            return lib, prefix, True
        folder = cache_dir()
        path = folder / f"{prefix}.so"
        cached = path.exists()
        if not cached:
            src = folder / f"{prefix}.c"
            tmp = src.with_name(f".{src.name}.{os.getpid()}.tmp")
            tmp.write_text(source.replace(stem, prefix))
            os.replace(tmp, src)
            _compile(cc, src, path)
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as exc:
            raise NativeError(f"the C kernel {path} does not load ({exc})") from None
        _LOADED[prefix] = lib
    return lib, prefix, cached
