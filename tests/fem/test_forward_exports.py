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


@pytest.mark.fem
def test_lazy_names_are_the_module_functions():
    import symfp.fem as f
    from symfp.fem.dolfinx import exit_time, forward, spectral, stationary

    assert f.mean_exit_time is exit_time.mean_exit_time
    assert f.stationary_density is stationary.stationary_density
    assert f.spectrum is spectral.spectrum and f.spectral_gap is spectral.spectral_gap
    assert f.solve is forward.solve
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        f.nope  # noqa: B018
