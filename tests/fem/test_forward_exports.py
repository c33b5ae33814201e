"""symfp.fem re-exports its solvers lazily: importing the package imports no dolfinx."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_package_import_is_light_and_names_resolve_lazily():
    code = ("import sys, symfp.fem as f; assert 'dolfinx' not in sys.modules, 'eager'; "
            "assert 'torch' not in sys.modules; "
            "print(sorted(n for n in f.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for name in ("mean_exit_time", "stationary_density", "spectrum", "spectral_gap", "solve"):
        assert f"'{name}'" in out


def test_lazy_names_are_the_registry_functions():
    import symfp
    import symfp.fem as f
    from symfp.fem import registry

    # the solvers dispatch on backend= through the registry (dolfinx or scikit-fem)
    assert f.mean_exit_time is registry.mean_exit_time is symfp.mean_exit_time
    assert f.stationary_density is registry.stationary_density
    assert f.spectrum is registry.spectrum and f.spectral_gap is registry.spectral_gap
    assert f.solve is registry.solve
    assert f.available_backends() == registry.available()
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        f.nope  # noqa: B018
