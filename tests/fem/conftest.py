"""The ``backend`` fixture: every backend-parametrised FE test runs on dolfinx and on scikit-fem.

A backend that is not importable here is skipped with the reason (a pip-only install has no dolfinx;
Debian's system Python may lack scikit-fem). Tests marked ``fem`` stay dolfinx-only.
"""

from __future__ import annotations

import pytest

from symfp.fem.registry import BACKENDS, importable


@pytest.fixture(params=list(BACKENDS))
def backend(request) -> str:
    """The FE backend name ("dolfinx", "skfem"); skipped where its package is missing."""
    name = request.param
    if not importable(name):
        pytest.skip(f"FE backend {name!r} is not importable here ({BACKENDS[name][1]})")
    return name
