"""Slab streams (symfp.particles.streams): thread-count independence, independence of slabs, moments.

Blocks bigger than one slab (ROWS rows) are advanced by a pool of threads, each slab with its own
generators. The numbers must depend on the seed only (bitwise equal for 1 and 2 threads), slabs must
not repeat each other's streams, and the moment accumulation (contiguous groups summed with reduceat)
must equal the direct moments of the final cloud.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.errors import InputError
from symfp.particles import streams
from symfp.particles.statistics import TrajectoryMoments

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
x, y, w, xi = sp.symbols("x y w xi", real=True)


@pytest.fixture
def small_slabs(monkeypatch):
    """Slabs of 1000 rows, so that a few thousand particles span several slabs (fast tests)."""
    monkeypatch.setattr(streams, "ROWS", 1000)


def sgd_model():
    rng = np.random.default_rng(0)
    data = symfp.Dataset({xi: rng.normal(size=200)})
    return symfp.SGD(loss=(w - xi) ** 2 / 2, params=[w], data=data, lr=0.1, batch_size=4)


def test_slab_layout():
    cpu, gpu = torch.device("cpu"), torch.device("meta")
    assert streams.slabs(10, cpu) == [slice(0, 10)]
    n = 2 * streams.ROWS + 5
    parts = streams.slabs(n, cpu)
    assert [p.stop - p.start for p in parts] == [streams.ROWS, streams.ROWS, 5]
    assert streams.slabs(n, gpu) == [slice(0, n)]  # one kernel per call off the CPU


@pytest.mark.parametrize("kind", ["sde-euler", "sde-weak2", "recursion"])
def test_same_numbers_for_any_thread_count(small_slabs, kind):
    kw = dict(seed=5, outputs=3)
    if kind == "recursion":
        model = sgd_model()
        run = lambda th: model.simulate(3500, 20, init=[1.0], threads=th, **kw)  # noqa: E731
    else:
        sde = symfp.SDE([x, y], [-x + y, -y - x**3], [[0.2, 0.05], [0.05, 0.1 + 0.1 * x**2]])
        method = kind.split("-")[1]
        run = lambda th: sde.simulate(3500, 0.2, 0.02, init=[0.5, 0.0], method=method, threads=th, **kw)  # noqa: E731
    one, two = run(1), run(2)
    np.testing.assert_array_equal(one.theta, two.theta)
    np.testing.assert_array_equal(one.trajectory["cov"], two.trajectory["cov"])


def test_slabs_draw_independent_streams(small_slabs):
    # pure noise dθ = dW from 0: each slab's particles are its normals; neighbouring slabs must differ,
    # and the correlation between slab 0 and slab 1 (1000 pairs) is within 4/√1000 of 0
    sde = symfp.SDE([x], [0], sp.Rational(1, 2))
    c = sde.simulate(3000, 1.0, 1.0, init=0.0, seed=1, threads=2)
    a, b = c.theta[:1000, 0], c.theta[1000:2000, 0]
    assert not np.allclose(a, b)
    assert abs(np.corrcoef(a, b)[0, 1]) < 4 / np.sqrt(1000)
    # and the whole cloud is N(0, 1): variance within 4 se (se of a sample variance ≈ √(2/n))
    assert abs(c.theta.var(ddof=1) - 1.0) < 4 * np.sqrt(2 / 3000)


def test_seeds_do_not_depend_on_the_thread_count_but_on_the_seed(small_slabs):
    model = sgd_model()
    a = model.simulate(2500, 5, init=[0.0], seed=1, threads=2, outputs=2)
    b = model.simulate(2500, 5, init=[0.0], seed=2, threads=2, outputs=2)
    assert not np.allclose(a.theta, b.theta)


def test_bad_thread_counts():
    sde = symfp.SDE([x], [-x], 1)
    for bad in (0, -1, 1.5, "two"):
        with pytest.raises(InputError, match="threads must be a positive integer"):
            sde.simulate(10, 0.1, 0.1, init=0.0, threads=bad)


def test_trajectory_moments_match_direct_moments():
    rng = np.random.default_rng(3)
    theta = rng.normal(size=(1037, 2)) @ np.array([[1.0, 0.3], [0.0, 0.5]]) + [2.0, -1.0]
    tm = TrajectoryMoments(1, 2, len(theta), groups=8)
    for a, b in [(0, 100), (100, 611), (611, 1037)]:  # uneven blocks crossing group boundaries
        tm.add(0, theta[a:b], a)
    res = tm.result()
    np.testing.assert_allclose(res["mean"][0], theta.mean(0), rtol=1e-12)
    np.testing.assert_allclose(res["cov"][0], np.cov(theta.T, bias=True), rtol=1e-10)
    assert np.all(res["mean_stderr"][0] > 0) and np.all(np.isfinite(res["cov_stderr"][0]))


def test_auto_compile_only_without_the_slab_pool():
    from symfp.particles.sde import _pooled

    assert _pooled("cpu", False, 2) and not _pooled("cpu", False, 1)
    assert not _pooled("meta-device-that-does-not-exist", False, 2)  # the run itself reports the device
