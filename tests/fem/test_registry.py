"""The backend registry: names, 'auto', the errors for missing or unknown backends, serial-only skfem."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.errors import DependencyError, InputError
from symfp.fem import registry

x = sp.Symbol("x", real=True)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_unknown_backend_lists_the_available_ones():
    sde = symfp.SDE([x], -x, 1)
    with pytest.raises(InputError, match=r"backend='fenics' is unknown; the backends are auto, dolfinx, "
                                         r"skfem \(available here: "):
        sde.fokker_planck().solve(None, (0.0,), t_end=0.1, dt=0.1, backend="fenics")
    with pytest.raises(InputError, match="backend='nope' is unknown"):
        symfp.mean_exit_time(sde, None, backend="nope")


def test_auto_prefers_dolfinx_then_skfem(monkeypatch):
    monkeypatch.setattr(registry, "importable", lambda name: True)
    assert registry.resolve("auto") == "dolfinx"
    monkeypatch.setattr(registry, "importable", lambda name: name == "skfem")
    assert registry.resolve("auto") == "skfem" and registry.resolve(None) == "skfem"
    monkeypatch.setattr(registry, "importable", lambda name: False)
    with pytest.raises(DependencyError, match="no finite-element backend is installed: pip install "
                                              "scikit-fem"):
        registry.resolve("auto")


def test_missing_backends_say_how_to_install(monkeypatch):
    monkeypatch.setattr(registry, "importable", lambda name: name == "dolfinx")
    with pytest.raises(DependencyError, match="backend='skfem' is not installed: pip install scikit-fem"):
        symfp.mean_exit_time(symfp.SDE([x], -x, 1), None, backend="skfem")
    monkeypatch.setattr(registry, "importable", lambda name: name == "skfem")
    with pytest.raises(DependencyError, match="backend='dolfinx' is not installed: dolfinx is not on PyPI: "
                                              "run scripts/setup"):
        symfp.SDE([x], -x, 1).fokker_planck().solve(None, (0.0,), 0.1, 0.1, backend="dolfinx")


def test_skfem_import_failure_is_a_dependency_error(monkeypatch):
    from symfp.fem.skfem import require_skfem

    monkeypatch.setitem(sys.modules, "skfem", None)
    with pytest.raises(DependencyError, match=r"pip install scikit-fem"):
        require_skfem("solve")


def test_skfem_refuses_several_mpi_ranks():
    pytest.importorskip("skfem")
    code = ("import symfp, sympy as sp; x = sp.Symbol('x'); "
            "m = symfp.mesh.box([(0, 1)], 8, backend='skfem'); "
            "symfp.SDE([x], -x, 1).fokker_planck().solve(m, 1, 0.1, 0.1, backend='skfem')")
    env = {**os.environ, "OMPI_COMM_WORLD_SIZE": "2", "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode != 0
    assert "the scikit-fem backend is serial but this process is one of 2 MPI ranks" in out.stderr, out.stderr


def test_neutral_mesh_protocol_and_assemble_parts():
    pytest.importorskip("skfem")
    from symfp.fem.skfem.lowering import assemble_parts

    mesh = symfp.mesh.box([(0, 2), (0, 1)], (8, 4), backend="skfem")
    np.testing.assert_array_equal(mesh.bounds(), [[0, 2], [0, 1]])
    assert mesh.boundary_names == ("xmin", "xmax", "ymin", "ymax") and mesh.region_names == ()
    assert mesh.cell_volumes().sum() == pytest.approx(2.0, rel=1e-14)
    assert list(mesh.contains([[0.5, 0.5], [2.5, 0.5]])) == [True, False]
    y = sp.Symbol("y", real=True)
    parts = assemble_parts(symfp.SDE([x, y], [-x, -2 * y], sp.Rational(1, 2)), mesh)
    M, KD, Kb = parts["M"], parts["K_D"], parts["K_b"]
    one = np.ones(M.shape[0])
    assert one @ M @ one == pytest.approx(2.0, rel=1e-13)  # ∫ 1 = area
    # 1ᵀK = 0 (mass conservation): both parts separately (∇1 = 0 in diffusion and advection)
    assert np.abs(one @ KD).max() < 1e-13 and np.abs(one @ Kb).max() < 1e-13
    # K_D is the symmetric positive semi-definite stiffness of D = I/2: ∫ ½|∇x|² = 1 on area 2
    X = parts["points"][:, 0]
    assert X @ KD @ X == pytest.approx(1.0, rel=1e-12)
    assert abs(parts["K"] - KD - Kb).max() < 1e-14
