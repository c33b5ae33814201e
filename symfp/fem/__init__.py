"""The dolfinx finite-element backend of symfp.

Importing this package does not import dolfinx; the sub-modules do, when a solve is requested:

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
    "solve": "dolfinx.forward",
    "Solution": "dolfinx.solution",
    "auto_domain": "domain",
    "DomainWarning": "domain",
    "SymfpWarning": "domain",
    "mean_exit_time": "dolfinx.exit_time",
    "ExitTime": "dolfinx.exit_time",
    "stationary_density": "dolfinx.stationary",
    "StationarySolution": "dolfinx.stationary",
    "spectrum": "dolfinx.spectral",
    "spectral_gap": "dolfinx.spectral",
    "Spectrum": "dolfinx.spectral",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'symfp.fem' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
