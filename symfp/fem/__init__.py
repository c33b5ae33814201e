"""The finite-element layer of symfp: backend-neutral modules and the backends.

Backend-neutral (numpy/scipy): :mod:`symfp.fem.schemes` (euler/cn/bdf2 and FCT on assembled
operators), :mod:`symfp.fem.fct` (the limiter), :mod:`symfp.fem.trackers` (run monitors),
:mod:`symfp.fem.mesh` (the neutral mesh and the mesh protocol), :mod:`symfp.fem.registry`
(``backend="auto" | "dolfinx" | "skfem"``; ``solve``, ``mean_exit_time``, ``stationary_density``,
``spectrum``, ``spectral_gap`` below dispatch through it). Backends: :mod:`symfp.fem.dolfinx` (UFL,
PETSc, MPI) and :mod:`symfp.fem.skfem` (pip-only, serial).

Importing this package imports no backend; the dolfinx sub-modules import dolfinx when a solve is
requested:

- :mod:`symfp.fem.dolfinx.compat`: one spelling for dolfinx 0.5.2 … 0.11 (feature detection);
- :mod:`symfp.fem.dolfinx.translate`: SymPy → UFL;
- :mod:`symfp.fem.dolfinx.mesh`: built-in boxes and gmsh meshes with named boundary parts and regions;
- :mod:`symfp.fem.domain`: the automatic box when no mesh is given, and :class:`DomainWarning`;
- :mod:`symfp.fem.dolfinx.forward`: the forward Fokker–Planck stepper, returning a
  :class:`symfp.fem.dolfinx.solution.Solution`;
- :mod:`symfp.fem.dolfinx.exit_time`, :mod:`symfp.fem.dolfinx.stationary`,
  :mod:`symfp.fem.dolfinx.spectral`: the steady
  solvers (mean exit time :math:`-\\mathcal L\\tau = 1`, stationary density, generator spectrum).

The names below are re-exported lazily (PEP 562): ``from symfp.fem import solve`` imports
:mod:`symfp.fem.dolfinx.forward` (and dolfinx) only then. The FE layer never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name → defining sub-module
_LAZY = {
    "solve": "registry",
    "Solution": "dolfinx.solution",
    "auto_domain": "domain",
    "DomainWarning": "domain",
    "SymfpWarning": "domain",
    "mean_exit_time": "registry",
    "ExitTime": "dolfinx.exit_time",
    "stationary_density": "registry",
    "StationarySolution": "dolfinx.stationary",
    "spectrum": "registry",
    "spectral_gap": "registry",
    "available_backends": "registry",
    "Spectrum": "dolfinx.spectral",
}

#: public name → name in its module
_ALIAS = {"available_backends": "available"}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'symfp.fem' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), _ALIAS.get(name, name))
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
