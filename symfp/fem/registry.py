r"""Finite-element backends by name: ``backend="auto" | "dolfinx" | "skfem"``.

Each backend is a sub-package of :mod:`symfp.fem` with the same entry points (``forward.solve``,
``mean_exit_time``, ``stationary_density``, ``spectrum``, ``spectral_gap``), imported lazily when
asked for. ``"auto"`` takes dolfinx when it is importable, else scikit-fem.

>>> sol = fp.solve(mesh, p0, t_end=1.0, dt=0.01, backend="skfem")
>>> tau = symfp.mean_exit_time(sde, mesh, backend="auto")

Errors: an unknown name lists the backends and which are available; a backend whose package is
missing is a :class:`~symfp.errors.DependencyError` saying how to install it
(``pip install scikit-fem``; dolfinx through ``scripts/setup`` or conda-forge).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from ..errors import DependencyError, InputError, require

#: backend → (probe module, install hint)
BACKENDS: dict[str, tuple[str, str]] = {
    "dolfinx": ("dolfinx", "dolfinx is not on PyPI: run scripts/setup (Debian 12: apt-get install "
                           "python3-dolfinx-real) or use conda-forge's fenics-dolfinx; or use "
                           "backend='skfem' (pip install scikit-fem)"),
    "skfem": ("skfem", "pip install scikit-fem meshio (or pip install 'symfp[fem]')"),
}
#: backend → problem → module
_MODULES: dict[str, dict[str, str]] = {
    "dolfinx": {"forward": "symfp.fem.dolfinx.forward", "exit_time": "symfp.fem.dolfinx.exit_time",
                "stationary": "symfp.fem.dolfinx.stationary", "spectral": "symfp.fem.dolfinx.spectral"},
    "skfem": {"forward": "symfp.fem.skfem.forward", "exit_time": "symfp.fem.skfem.steady",
              "stationary": "symfp.fem.skfem.steady", "spectral": "symfp.fem.skfem.steady"},
}


def importable(name: str) -> bool:
    """Whether backend ``name``'s package can be found (without importing it)."""
    probe = BACKENDS[name][0]
    try:
        return importlib.util.find_spec(probe) is not None
    except (ImportError, ValueError):
        return False


def available() -> list[str]:
    """The backends whose package is importable here."""
    return [n for n in BACKENDS if importable(n)]


def resolve(backend: str | None, where: str = "solve") -> str:
    """The backend to use for ``backend`` ("auto"/None: dolfinx when importable, else skfem).

    Raises:
        InputError: an unknown name (the message lists the backends and which are available).
        DependencyError: "auto" with no backend installed, or the named one missing.
    """
    name = "auto" if backend is None else backend
    if name == "auto":
        for n in BACKENDS:
            if importable(n):
                return n
        raise DependencyError(f"{where}: no finite-element backend is installed: "
                              f"{BACKENDS['skfem'][1]}, or for dolfinx: {BACKENDS['dolfinx'][1]}")
    if name not in BACKENDS:
        raise InputError(f"{where}: backend={backend!r} is unknown; the backends are "
                         f"{', '.join(['auto', *BACKENDS])} "
                         f"(available here: {', '.join(available()) or 'none'})")
    if not importable(name):
        raise DependencyError(f"{where}: backend={name!r} is not installed: {BACKENDS[name][1]}")
    return name


def module(problem: str, backend: str | None, feature: str) -> Any:
    """The module of ``problem`` ("forward", "exit_time", "stationary", "spectral") in the backend."""
    name = resolve(backend, feature)
    hint = f"Backend {name!r}: {BACKENDS[name][1]}."
    return require(_MODULES[name][problem], feature, hint)


def solve(fp: Any, mesh: Any, p0: Any, t_end: float, dt: float, *, backend: str | None = "auto",
          feature: str = "solve", **kwargs: Any) -> Any:
    """Forward Fokker–Planck solve with the chosen backend (see its ``forward.solve`` for the options)."""
    return module("forward", backend, feature).solve(fp, mesh, p0, t_end, dt, **kwargs)


def mean_exit_time(sde: Any, mesh: Any, absorbing: Any = None, *, backend: str | None = "auto",
                   feature: str = "mean_exit_time", **kwargs: Any) -> Any:
    r"""FE solution of :math:`-\mathcal L\tau = 1`, τ = 0 on the absorbing parts, with the chosen backend."""
    return module("exit_time", backend, feature).mean_exit_time(sde, mesh, absorbing=absorbing, **kwargs)


def stationary_density(sde: Any, mesh: Any, *, backend: str | None = "auto", **kwargs: Any) -> Any:
    """Stationary density (zero flux, unit mass) with the chosen backend."""
    return module("stationary", backend, "stationary_density").stationary_density(sde, mesh, **kwargs)


def _spectral_args(backend: str | None, kwargs: dict[str, Any]) -> str | None:
    # the dolfinx spectrum's eigen-solver used to be called backend= ("slepc"/"scipy"): keep that spelling
    if backend in ("slepc", "scipy"):
        kwargs["eigensolver"] = backend
        backend = "dolfinx"
    solver = kwargs.pop("eigensolver", None)
    if solver is not None:
        if resolve(backend, "spectrum") == "dolfinx":
            kwargs["backend"] = solver
        elif solver != "scipy":
            raise InputError(f"spectrum: eigensolver={solver!r} needs backend='dolfinx'; scikit-fem uses "
                             "scipy")
    return backend


def spectrum(sde: Any, mesh: Any, *, backend: str | None = "auto", **kwargs: Any) -> Any:
    """Eigenvalues of the forward operator nearest 0 (``eigensolver="slepc"|"scipy"`` on dolfinx)."""
    backend = _spectral_args(backend, kwargs)
    return module("spectral", backend, "spectrum").spectrum(sde, mesh, **kwargs)


def spectral_gap(sde: Any, mesh: Any, *, backend: str | None = "auto", **kwargs: Any) -> float:
    """The spectral gap (see :func:`spectrum`)."""
    backend = _spectral_args(backend, kwargs)
    return module("spectral", backend, "spectral_gap").spectral_gap(sde, mesh, **kwargs)


def backend_of(obj: Any) -> str:
    """The backend that produced a solution object ("dolfinx" or "skfem")."""
    return getattr(obj, "backend", None) or ("skfem" if "skfem" in type(obj).__module__ else "dolfinx")


__all__ = ["BACKENDS", "available", "mean_exit_time", "module", "resolve", "solve",
           "spectral_gap", "spectrum", "stationary_density"]
