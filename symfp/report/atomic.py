"""Atomic file writes: a reader sees the old file or the complete new one, never a half-written one.

Every writer writes to a temporary name in the same folder (same file system) and then renames it
over the target with :func:`os.replace`, which POSIX makes atomic. On failure (a full disk, a
signal) the temporary file is removed and an :class:`~symfp.errors.OutputError` names the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import OutputError, os_error_text

__all__ = ["atomic_path", "write_bytes", "write_text", "sha256"]


@contextlib.contextmanager
def atomic_path(path: str | Path, *, what: str = "file") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else remove it.

    Works for files and for directories (a directory target must not exist or be empty).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _remove(tmp)
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError(f"writing {what} {path}: the writer produced nothing at {tmp}")
        if path.is_dir() and not tmp.is_dir():
            raise OutputError(f"cannot write {what} {path}: it is a directory (give a file name)")
        if tmp.is_dir() and path.exists():
            _remove(path)
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        if isinstance(exc, OutputError):
            raise
        raise OutputError(f"cannot write {what} {path}: {os_error_text(exc)}") from exc
    except BaseException:
        _remove(tmp)
        raise


def _remove(p: Path) -> None:
    try:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
    except OSError:
        pass


def write_bytes(path: str | Path, data: bytes, *, what: str = "file") -> Path:
    """Write ``data`` to ``path`` atomically (fsync'ed before the rename); returns the path."""
    path = Path(path)
    with atomic_path(path, what=what) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return path


def write_text(path: str | Path, text: str, *, what: str = "file") -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    return write_bytes(path, text.encode("utf-8"), what=what)


def write_with(path: str | Path, writer: Callable[[Path], object], *, what: str = "file") -> Path:
    """Let ``writer(tmp)`` write a file (or folder) at a temporary path, then rename it to ``path``."""
    path = Path(path)
    with atomic_path(path, what=what) as tmp:
        writer(tmp)
    return path


def sha256(path: str | Path) -> str:
    """The SHA-256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
