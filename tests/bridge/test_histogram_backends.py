"""Particle histograms and mesh complements through the mesh protocol, on every backend's mesh."""

from __future__ import annotations

import pathlib
from types import SimpleNamespace

import numpy as np
import pytest

import symfp
from symfp.bridge.histogram import histogram_on_mesh
from symfp.fem.registry import BACKENDS, importable

MESHES = pathlib.Path(__file__).resolve().parents[2] / "meshes"


@pytest.fixture(params=list(BACKENDS))
def backend(request) -> str:
    """The mesh backend (as tests/fem/conftest.py): skipped where its package is missing."""
    if not importable(request.param):
        pytest.skip(f"FE backend {request.param!r} is not importable here ({BACKENDS[request.param][1]})")
    return request.param


def cloud(theta: np.ndarray) -> SimpleNamespace:
    return SimpleNamespace(theta=theta, dim=theta.shape[1], comm=None)


def test_uniform_particles_give_the_uniform_density(backend):
    rng = np.random.default_rng(0)
    n = 40_000
    pts = rng.uniform([0, 0], [2, 1], size=(n, 2))
    pts[:400] += 5.0  # 1 % escaped
    h = histogram_on_mesh(cloud(pts), symfp.mesh.box([(0, 2), (0, 1)], (8, 4), backend=backend))
    assert h.escaped_mass == pytest.approx(0.01, abs=1e-12)
    assert h.counts.sum() == n - 400 and h.volumes.sum() == pytest.approx(2.0, rel=1e-12)
    # cell counts are binomial: density 0.99/2 with relative sd sqrt((1-q)/(n q)), q = |K|/2 = 1/64
    q = 1 / 64
    sd = 0.99 / 2 * np.sqrt((1 - q) / (n * 0.99 * q))
    assert np.max(np.abs(h.density - 0.99 / 2)) < 5 * sd


def test_region_masses_on_a_gmsh_mesh(backend):
    mesh = symfp.mesh.load(MESHES / "double_well.msh", backend=backend)
    rng = np.random.default_rng(1)
    pts = rng.normal([0.3, 0.0], 0.4, size=(20_000, 2))
    h = histogram_on_mesh(cloud(pts), mesh)
    # the basins are x < 0 and x > 0 (gmsh regions "left"/"right" tiling the domain)
    inside = 1 - h.escaped_mass
    assert h.region_mass["left"] + h.region_mass["right"] == pytest.approx(inside, abs=1e-12)
    assert h.region_mass["right"] == pytest.approx(np.mean(pts[:, 0] > 0) - 0, abs=1e-3 + h.escaped_mass)
    with pytest.raises(symfp.MeshError, match="dimension 2 for particles of dimension 1"):
        histogram_on_mesh(cloud(pts[:, :1]), mesh)


@pytest.mark.torch
def test_mesh_complement_absorbs_outside(backend):
    import torch

    from symfp.particles import MeshComplement  # lazily re-exported from symfp.bridge.absorbing

    mc = MeshComplement(symfp.mesh.load(MESHES / "disk.msh", backend=backend))
    theta = torch.tensor([[0.0, 0.0], [0.5, 0.5], [0.99, 0.0], [1.2, 0.0], [0.8, 0.8]], dtype=torch.float64)
    assert mc.absorbed(theta).tolist() == [False, False, False, True, True]
    assert type(mc).__module__ == "symfp.bridge.absorbing"
