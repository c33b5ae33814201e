"""A report folder that does not lie: a lock, a clean start, atomic files, a manifest written last.

:class:`RunFolder` is a context manager around one run writing into a folder:

1. **Lock.** ``.symfp.lock`` is created with ``O_CREAT | O_EXCL`` and names its holder (pid, host,
   start time, command). A second run into the folder is refused with an
   :class:`~symfp.errors.OutputError` naming the holder; a lock whose process is gone (same host) is
   stale and taken over.
2. **Clean start.** The files of an earlier run (those its ``manifest.json`` lists, and the names a
   run writes) are removed, and an ``INCOMPLETE`` marker says that a run is in progress.
3. **Atomic files.** Each file is written under a temporary name and renamed (:mod:`.atomic`); only
   files recorded with :meth:`RunFolder.add` by this run are in its manifest and its report.
4. **End.** On success ``manifest.json`` (status, spec hash, options, versions, files with sizes
   and SHA-256) is written last and ``INCOMPLETE`` removed. On an error, Ctrl-C or SIGTERM,
   ``INCOMPLETE`` says why (and which stage), and no manifest claims the folder is complete.

Under MPI only rank 0 touches the folder; the lock's outcome is broadcast so that every rank
raises the same error.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from ..errors import OutputError, SymfpError, os_error_text
from .atomic import _remove, sha256, write_text

__all__ = ["RunFolder", "RunInterrupted", "LOCK", "MANIFEST", "INCOMPLETE", "RUN_OUTPUTS"]

LOCK, MANIFEST, INCOMPLETE = ".symfp.lock", "manifest.json", "INCOMPLETE"
#: what a ``symfp run`` may write (removed at the start of a new run into the same folder)
RUN_OUTPUTS = (
    "derivation.tex", "derivation.pdf", "report.html", "observables.json", "density.png",
    "observables.png", "exit_time.png", "weak_error.png", "density", MANIFEST, INCOMPLETE,
)


class RunInterrupted(SymfpError):
    """The run was stopped by a signal (SIGTERM); the folder is marked INCOMPLETE."""


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _world() -> tuple[int, int]:
    """(rank, size) from the MPI launcher's environment (no mpi4py import when not under MPI)."""
    for r, s in (("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"), ("PMI_RANK", "PMI_SIZE")):
        if r in os.environ:
            try:
                return int(os.environ[r]), int(os.environ.get(s, "1"))
            except ValueError:
                pass
    return 0, 1


def _bcast(value: Any) -> Any:
    rank, size = _world()
    if size <= 1:
        return value
    from mpi4py import MPI

    return MPI.COMM_WORLD.bcast(value, root=0)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def versions() -> dict[str, str]:
    """Versions of symfp, Python and the numeric libraries already imported by this run."""
    from .. import __version__

    out = {"symfp": __version__, "python": sys.version.split()[0]}
    for mod in ("numpy", "sympy", "torch", "dolfinx", "petsc4py", "matplotlib"):
        m = sys.modules.get(mod)
        if m is not None and hasattr(m, "__version__"):
            out[mod] = str(m.__version__)
    return out


def file_hash(path: str | Path) -> str | None:
    """SHA-256 of a file (None if unreadable)."""
    try:
        return sha256(path)
    except OSError:
        return None


class RunFolder:
    """One run's ownership of an output folder (see the module docstring).

    Args:
        out: the folder (created).
        spec_path: the spec file (hashed into the manifest).
        options: the run's options (recorded in the manifest).
        command: what is running (for the lock and the markers).
    """

    def __init__(self, out: str | Path, *, spec_path: str | Path | None = None,
                 options: dict | None = None, command: str = "symfp run") -> None:
        self.out = Path(out)
        self.spec_path = None if spec_path is None else Path(spec_path)
        self.options = dict(options or {})
        self.command = command
        self.files: list[str] = []
        self.stage = "start"
        self.rank0 = _world()[0] == 0
        self.started = _now()
        self._locked = False
        self._old_handler: Any = None
        self.token = str(os.getpid())

    # ------------------------------------------------------------------ lock
    @property
    def lock_path(self) -> Path:
        return self.out / LOCK

    def _holder(self) -> dict:
        return {"pid": os.getpid(), "host": socket.gethostname(), "started": self.started,
                "command": self.command}

    def _acquire(self) -> str | None:
        """Take the lock; returns None or why it cannot be taken."""
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"cannot create the output folder {self.out}: {os_error_text(exc)}"
        for _ in range(2):
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    holder = json.loads(self.lock_path.read_text(encoding="utf-8") or "{}")
                except (OSError, ValueError):
                    holder = {}
                same_host = holder.get("host") == socket.gethostname()
                pid = holder.get("pid")
                if same_host and isinstance(pid, int) and not _pid_alive(pid):
                    _remove(self.lock_path)  # stale: its process is gone
                    continue
                return (
                    f"the output folder {self.out} is in use by another run: {holder.get('command', '?')} "
                    f"(pid {pid}, host {holder.get('host', '?')}, since {holder.get('started', '?')}), "
                    f"which holds {self.lock_path}. Wait for it, write elsewhere (--out), or delete the "
                    "lock file if that process is gone"
                )
            except OSError as exc:
                return f"cannot write to the output folder {self.out}: {os_error_text(exc)}"
            try:
                os.write(fd, json.dumps(self._holder()).encode())
            finally:
                os.close(fd)
            self._locked = True
            return None
        return f"cannot take the lock {self.lock_path}"

    def _release(self) -> None:
        if self._locked:
            _remove(self.lock_path)
            self._locked = False

    # ------------------------------------------------------------------ markers
    def _previous_outputs(self) -> list[Path]:
        names = set(RUN_OUTPUTS)
        try:
            old = json.loads((self.out / MANIFEST).read_text(encoding="utf-8"))
            names |= {str(f["path"]) for f in old.get("files", []) if isinstance(f, dict) and "path" in f}
        except (OSError, ValueError, AttributeError, TypeError):
            pass
        try:  # a killed or failed run lists its files in its INCOMPLETE marker
            lines = (self.out / INCOMPLETE).read_text(encoding="utf-8").splitlines()
            names |= {ln[2:].strip() for ln in lines if ln.startswith("- ") and ln[2:].strip()}
        except OSError:
            pass
        out = []
        for n in sorted(names):
            p = (self.out / n).resolve()
            if p.parent == self.out.resolve() or self.out.resolve() in p.parents:
                out.append(self.out / n)
        return out

    def _incomplete(self, status: str, reason: str) -> None:
        text = (
            f"This folder is INCOMPLETE: {status}.\n{reason}\n\n"
            f"run: {self.command} (pid {os.getpid()}, host {socket.gethostname()})\n"
            f"started: {self.started}\nstage: {self.stage}\nat: {_now()}\n"
            "Files here were written by this run and are not a complete report; there is no manifest.json.\n"
            "files written by this run (removed by the next run into this folder):\n"
        )
        for f in self.files:
            try:
                text += f"- {Path(f).relative_to(self.out)}\n"
            except ValueError:
                pass
        try:
            write_text(self.out / INCOMPLETE, text, what="marker")
        except OSError:
            try:  # a full disk: at least the marker's name
                (self.out / INCOMPLETE).touch()
            except OSError:
                pass

    # ------------------------------------------------------------------ protocol
    def __enter__(self) -> RunFolder:
        why = self._acquire() if self.rank0 else None
        why, self.token = _bcast((why, f"{os.getpid()}"))
        if why:
            raise OutputError(why)
        try:
            if self.rank0:
                for p in self._previous_outputs():
                    _remove(p)
                self._incomplete("a run is in progress (or was killed)", "The run has not finished.")
            if threading.current_thread() is threading.main_thread():
                self._old_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
        except BaseException:
            self._release()
            raise
        return self

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        """Raise :class:`RunInterrupted` where the main thread is, and remember that it was raised.

        Python may run a signal handler inside a weakref or ``__del__`` callback, where an exception is
        printed and dropped; :meth:`check_interrupted` (called between stages) raises it again then.
        """
        self.interrupted = f"{self.command} was terminated by signal SIGTERM during stage '{self.stage}'"
        raise RunInterrupted(self.interrupted)

    def check_interrupted(self) -> None:
        """Raise :class:`RunInterrupted` if a SIGTERM arrived whose exception was swallowed."""
        if getattr(self, "interrupted", None):
            raise RunInterrupted(self.interrupted)

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        swallowed = None
        if exc is None and getattr(self, "interrupted", None):  # a SIGTERM whose exception was dropped
            exc = swallowed = RunInterrupted(self.interrupted)
        try:
            self._finish(exc)
        finally:
            if swallowed is not None:
                raise swallowed

    def _finish(self, exc: BaseException | None) -> None:
        if self._old_handler is not None:
            signal.signal(signal.SIGTERM, self._old_handler)
            self._old_handler = None
        try:
            if not self.rank0:
                return
            if exc is None:
                try:
                    self._write_manifest()
                    _remove(self.out / INCOMPLETE)
                except OSError as err:
                    self._incomplete("the manifest could not be written", os_error_text(err))
                    raise
            else:
                if isinstance(exc, KeyboardInterrupt):
                    status = "interrupted (Ctrl-C)"
                elif isinstance(exc, RunInterrupted):
                    status = "terminated by SIGTERM"
                else:
                    status = "the run failed"
                self._incomplete(status, f"{type(exc).__name__}: {' '.join(str(exc).split())}")
        finally:
            self._release()

    # ------------------------------------------------------------------ files
    def path(self, name: str) -> Path:
        """Where this run writes ``name``."""
        return self.out / name

    def add(self, path: str | Path) -> None:
        """Record a file (or folder) this run wrote."""
        p = Path(path)
        if p.exists() and str(p) not in self.files:
            self.files.append(str(p))
            if self.rank0:  # the marker lists the files so far, so that even a SIGKILL'd run is cleaned
                self._incomplete("a run is in progress (or was killed)", "The run has not finished.")

    def wrote(self, name: str) -> bool:
        """Whether this run recorded ``name`` (a report must show only those)."""
        return str(self.out / name) in self.files

    def _entries(self) -> list[dict]:
        out = []
        for f in self.files:
            p = Path(f)
            items = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
            for q in items:
                try:
                    size = q.stat().st_size
                except OSError:
                    continue
                out.append({"path": str(q.relative_to(self.out)), "bytes": size, "sha256": file_hash(q)})
        return out

    def _write_manifest(self) -> None:
        spec_hash = None
        if self.spec_path is not None:
            try:
                spec_hash = hashlib.sha256(self.spec_path.read_bytes()).hexdigest()
            except OSError:
                spec_hash = None
        manifest = {
            "status": "complete",
            "command": self.command,
            "spec": None if self.spec_path is None else str(self.spec_path),
            "spec_sha256": spec_hash,
            "options": self.options,
            "versions": versions(),
            "started": self.started,
            "finished": _now(),
            "host": socket.gethostname(),
            "files": self._entries(),
        }
        write_text(self.out / MANIFEST, json.dumps(manifest, indent=1, default=str), what="manifest")
