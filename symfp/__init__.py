"""symfp: from a learning algorithm written as symbols to the PDE of its weights, and back.

The pipeline (each stage inspectable, substitutable and printable as LaTeX)::

    SGD / Recursion  ->  moments  ->  SDE (modified equation)  ->  FokkerPlanck  ->  weak form
          |                                                                   |
    particles (torch) --------------------- compare -------------------- FE solution (dolfinx)

``import symfp`` needs neither dolfinx nor torch: both are imported only when a solve or a
simulation is requested. Public names are resolved lazily (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "SymfpError": "symfp.errors",
    "InputError": "symfp.errors",
    "ExpressionError": "symfp.errors",
    "DataError": "symfp.errors",
    "MeshError": "symfp.errors",
    "SolverError": "symfp.errors",
    "DivergenceError": "symfp.errors",
    "DependencyError": "symfp.errors",
    "SDE": "symfp.symbolic.sde",
    "Dataset": "symfp.symbolic.data",
    "Population": "symfp.symbolic.data",
    "DataMean": "symfp.symbolic.datamean",
    "DataCov": "symfp.symbolic.datamean",
    "Recursion": "symfp.symbolic.recursion",
    "SGD": "symfp.symbolic.recursion",
    "exp": "symfp.symbolic.functions",
    "log": "symfp.symbolic.functions",
    "tanh": "symfp.symbolic.functions",
    "sigmoid": "symfp.symbolic.functions",
    "softplus": "symfp.symbolic.functions",
    "relu": "symfp.symbolic.functions",
    "sqrt": "symfp.symbolic.functions",
    "sin": "symfp.symbolic.functions",
    "cos": "symfp.symbolic.functions",
    "modified_equation": "symfp.symbolic.backward_error",
    "FokkerPlanck": "symfp.symbolic.fokker_planck",
    "latex_document": "symfp.symbolic.latex",
    "mean_exit_time": "symfp.fem.registry",
    "compare": "symfp.bridge.compare",
    "weak_error": "symfp.particles.weak_error",
}
#: public sub-module name -> its module (``symfp.weakform`` lives in the symbolic core)
_SUBMODULES = {
    "mesh": "symfp.mesh",
    "fem": "symfp.fem",
    "particles": "symfp.particles",
    "control": "symfp.control",
    "weakform": "symfp.symbolic.weakform",
    "errors": "symfp.errors",
}

__all__ = sorted([*_LAZY, *_SUBMODULES, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        mod = importlib.import_module(_SUBMODULES[name])
        globals()[name] = mod
        return mod
    raise AttributeError(f"module 'symfp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
