"""The torch.compile'd SDE step (``compile=True``) against the eager reference and the closed form.

The compiled function receives the same random numbers as the eager step (drawn outside with the
run's generator), so a seeded compiled run equals the eager one up to rounding; its moments are also
checked against the exact moments of the Euler recursion within Monte Carlo error.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.errors import InputError
from symfp.particles import cache
from symfp.particles.compiled import AUTO_MIN_WORK, want_compile
from symfp.particles.lambdify import torch_function

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
x, y = sp.symbols("x y", real=True)


def _dolfinx_loaded() -> bool:
    import sys

    return "dolfinx" in sys.modules


@pytest.fixture(autouse=True)
def _no_dolfinx(request):
    """Compiled kernels are refused once dolfinx is imported (see compiled.unsafe_reason)."""
    if _dolfinx_loaded() and request.node.name != "test_in_fresh_process":
        pytest.skip("dolfinx imported in this process: run in a fresh one by test_in_fresh_process")


def test_in_fresh_process():
    """When the suite has imported dolfinx, run this file's compiled tests in a clean interpreter."""
    if not _dolfinx_loaded():
        pytest.skip("compiled tests run in this process")
    import subprocess
    import sys

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            __file__,
            "-p",
            "no:cacheprovider",
            "-p",
            "no:warnings",
            "-o",
            "addopts=",
            "-k",
            "not test_in_fresh_process",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]


def _ou(a=1.0, eps=0.05):
    return symfp.SDE([x, y], [-a * x, -a * y + x / 2], eps)


def test_want_compile_rule(monkeypatch):
    import sys

    monkeypatch.delitem(sys.modules, "dolfinx", raising=False)
    assert want_compile(True, 1, False, "t") and not want_compile(False, 1e12, True, "t")
    assert not want_compile("auto", AUTO_MIN_WORK / 2, False, "t")
    assert want_compile("auto", AUTO_MIN_WORK, False, "t") and want_compile("auto", 1, True, "t")
    with pytest.raises(InputError, match="compile"):
        want_compile("yes", 1, False, "t")


def test_pure_lambdify_matches():
    f = torch_function(sp.Matrix([x * y, 2, sp.sin(x)]), (x, y), "t")
    g = torch_function(sp.Matrix([x * y, 2, sp.sin(x)]), (x, y), "t", pure=True)
    a, b = torch.randn(7, dtype=torch.float64), torch.randn(7, dtype=torch.float64)
    assert torch.equal(f(a, b), g(a, b))


@pytest.mark.parametrize("method", ["euler", "weak2"])
def test_compiled_equals_eager_and_moments(method):
    # Euler on dθ = Aθ dt + √(2ε) dW, A = [[-1, 0], [1/2, -1]]: θ_{k+1} = (I + hA)θ_k + √(2εh) z, so
    # m_{k+1} = M m_k and C_{k+1} = M C_k Mᵀ + 2εh G Gᵀ exactly (M = I + hA, G = I); weak2 (Heun
    # drift, b(Ῡ) with Ῡ = θ + bh + σΔW) has M = I + hA + h²A²/2 and G = I + hA/2.
    sde = _ou()
    kw = dict(n_particles=40_000, t_end=1.0, dt=0.05, init=[1.0, -0.5], method=method, seed=7, outputs=2)
    eager = sde.simulate(**kw, compile=False)
    comp = sde.simulate(**kw, compile=True)
    assert comp.info["compiled"] and not eager.info["compiled"]
    assert comp.info["compile_time"] is not None
    np.testing.assert_allclose(comp.theta, eager.theta, rtol=0, atol=1e-12)
    A, h, eps = np.array([[-1.0, 0.0], [0.5, -1.0]]), 0.05, 0.05
    M = np.eye(2) + h * A + (h * h * A @ A / 2 if method == "weak2" else 0)
    G = np.eye(2) + (h * A / 2 if method == "weak2" else 0)
    m, C = np.array([1.0, -0.5]), np.zeros((2, 2))
    for _ in range(20):
        m, C = M @ m, M @ C @ M.T + 2 * eps * h * G @ G.T
    mean, se = comp.mean(stderr=True)
    assert np.all(np.abs(mean - m) < 4 * se)
    cov, cse = comp.cov(stderr=True)
    assert np.all(np.abs(cov - C) < 4 * cse)


def test_compile_refused_after_dolfinx(monkeypatch):
    import sys
    import types

    monkeypatch.setitem(sys.modules, "dolfinx", types.ModuleType("dolfinx"))
    sde = symfp.SDE([x], [-x], 0.1)
    with pytest.warns(RuntimeWarning, match="dolfinx"):
        c = sde.simulate(100, 0.1, 0.01, init=0.0, compile=True, outputs=2)
    assert not c.info["compiled"]
    assert not want_compile("auto", 1e12, True, "t")


def test_compile_failure_falls_back(monkeypatch):
    cache.clear()

    def broken(*a, **k):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    sde = symfp.SDE([x], [-2 * x], 0.1)
    kw = dict(n_particles=1000, t_end=0.2, dt=0.01, init=0.3, seed=3, outputs=2)
    with pytest.warns(RuntimeWarning, match="no compiler here"):
        c = sde.simulate(**kw, compile=True)
    assert not c.info["compiled"] and "no compiler here" in c.info["compile_error"]
    np.testing.assert_array_equal(c.theta, sde.simulate(**kw, compile=False).theta)
    cache.clear()
