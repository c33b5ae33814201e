"""Shared pytest configuration.

Tests marked ``mpi`` run in the serial suite and again under ``mpirun -n 2`` (see scripts/test);
they must give the same observables on every rank. Tests marked ``fem`` are skipped with a clear
reason when dolfinx cannot be imported (e.g. a pip-only install).
"""

from __future__ import annotations

import importlib.util

import pytest


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


HAS_DOLFINX = _has("dolfinx")
HAS_TORCH = _has("torch")


def pytest_collection_modifyitems(config, items):
    skip_fem = pytest.mark.skip(reason="dolfinx is not importable (run scripts/setup)")
    skip_torch = pytest.mark.skip(reason="torch is not importable (run scripts/setup)")
    for item in items:
        # the marker, not the keyword: every test under tests/fem has the keyword "fem" (its folder)
        if item.get_closest_marker("fem") is not None and not HAS_DOLFINX:
            item.add_marker(skip_fem)
        if "torch" in item.keywords and not HAS_TORCH:
            item.add_marker(skip_torch)


@pytest.fixture(params=["dolfinx", "skfem"])
def backend(request) -> str:
    """The FE backend name ("dolfinx", "skfem"): a backend-parametrised FE test runs on each.

    A backend that is not importable here is skipped with the reason (a pip-only install has no
    dolfinx; Debian's system Python may lack scikit-fem). Tests marked ``fem`` stay dolfinx-only.
    """
    from symfp.fem.registry import BACKENDS, importable

    name = request.param
    assert name in BACKENDS, f"tests/conftest.py: unknown backend {name!r}"
    if not importable(name):
        pytest.skip(f"FE backend {name!r} is not importable here ({BACKENDS[name][1]})")
    return name


@pytest.fixture(scope="session")
def comm():
    """The MPI world communicator (size 1 in the serial suite); skipped where mpi4py is missing."""
    MPI = pytest.importorskip("mpi4py.MPI", reason="mpi4py is not installed (pip install 'symfp[mpi]')")

    return MPI.COMM_WORLD
