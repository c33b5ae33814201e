r"""Control of the density: learning-rate and batch-size schedules by the discrete adjoint.

Pipeline: :func:`operator_parts` (the controlled SME split into parts times control monomials,
assembled once as SciPy matrices by a backend) → :class:`ControlProblem` (θ-scheme forward solve,
exact gradient by the discrete adjoint) → :func:`optimise` (L-BFGS-B with bounds, or SLSQP with several
budgets) → :func:`verify` (exact-SGD particles under the schedule). :func:`schedule_study` runs all of it
for a spec (``symfp control``); :func:`control_latex` renders the problem and its adjoint.

Names are imported lazily: ``import symfp.control`` loads neither dolfinx nor torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "operator_parts": "symfp.control.operators",
    "OperatorParts": "symfp.control.operators",
    "BACKENDS": "symfp.control.operators",
    "controlled_coefficients": "symfp.control.split",
    "split_terms": "symfp.control.split",
    "ControlProblem": "symfp.control.problem",
    "optimise": "symfp.control.optimise",
    "ControlResult": "symfp.control.optimise",
    "ControlWarning": "symfp.control.optimise",
    "verify": "symfp.control.verify",
    "schedule_study": "symfp.control.study",
    "control_latex": "symfp.control.latex",
    "ControlGrid": "symfp.control.schedules",
    "match_budget": "symfp.control.schedules",
    "match_batch_budget": "symfp.control.schedules",
    "Budget": "symfp.control.budgets",
    "ExpectedValue": "symfp.control.objectives",
    "RegionMass": "symfp.control.objectives",
    "TerminalTracking": "symfp.control.objectives",
    "RunningTracking": "symfp.control.objectives",
    "LevelTime": "symfp.control.objectives",
    "SampleCost": "symfp.control.objectives",
    "Smoothness": "symfp.control.objectives",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'symfp.control' has no attribute {name!r}")
