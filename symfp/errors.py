"""Errors that symfp raises on bad input or failed numerics.

Every error a user can trigger is a :class:`SymfpError` subclass whose message says what was wrong,
where, and what to do. Catch :class:`SymfpError` to catch them all.
"""

from __future__ import annotations


class SymfpError(Exception):
    """Base class of every error symfp raises on purpose."""


class InputError(SymfpError, ValueError):
    """A user-supplied value (expression, number, array, option) is invalid."""


class ExpressionError(InputError):
    """An expression cannot be parsed, traced or translated (names the offending part)."""


class DataError(InputError):
    """A data set or population is malformed (unequal lengths, NaN/inf, not a random variable)."""


class MeshError(InputError):
    """A mesh is unsuitable (wrong dimension, unknown boundary name, unreadable file)."""


class SolverError(SymfpError, RuntimeError):
    """A numerical solve failed (KSP divergence, loss of mass or positivity)."""


class DivergenceError(SolverError):
    """A simulated recursion blew up (step, fraction of particles, the exploding quantity)."""


class DependencyError(SymfpError, ImportError):
    """An optional dependency (dolfinx, torch, slepc4py, gmsh) is missing for the requested feature."""


def require(module: str, feature: str, hint: str = ""):
    """Import ``module`` for ``feature`` or raise :class:`DependencyError` saying how to get it.

    Args:
        module: dotted module name to import.
        feature: what the user asked for that needs it (for the message).
        hint: extra advice appended to the message.

    Returns:
        The imported module.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        msg = f"{feature} needs the Python module '{module}', which cannot be imported ({exc})."
        if hint:
            msg += " " + hint
        else:
            msg += " Run scripts/setup (Debian 12) or use environment.yml (conda-forge)."
        raise DependencyError(msg) from exc


class OutputError(SymfpError, OSError):
    """Results could not be written (read-only path, a directory in the way, a full disk, a locked folder)."""


def os_error_text(exc: OSError) -> str:
    """A short reason for an OSError: ``No space left on device``, ``Permission denied``..."""
    import errno

    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        reason += " (the disk is full: free space or write elsewhere)"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason += " (choose a folder you can write to)"
    elif exc.errno in (errno.EEXIST, errno.ENOTDIR):
        reason += " (a file is in the way: a parent of the path is not a folder)"
    elif exc.errno == errno.EISDIR:
        reason += " (a directory is in the way: give a file name)"
    return reason


class LongRunWarning(UserWarning):
    """A run was estimated to take long (minutes or more) without a progress display."""
