"""The stepper cache: a repeated ``simulate`` reuses the lambdified stepper and gives the same numbers."""

from __future__ import annotations

import time

import numpy as np
import pytest
import sympy as sp

import symfp

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
x, y, a = sp.symbols("x y a", real=True)


def test_sde_stepper_cached_by_expressions():
    from symfp.particles import cache
    from symfp.particles import sde as psde

    cache.clear()
    built = []
    orig = psde.SDEStepper

    class Counting(orig):
        def __init__(self, *args, **kw):
            built.append(args)
            super().__init__(*args, **kw)

    psde.SDEStepper = Counting
    try:
        sde = symfp.SDE([x, y], [-x, -a * y], [[0.2 * (1 + x**2), 0.1], [0.1, 0.3]])
        s1 = sde.subs(a=1.0)
        c1 = s1.simulate(500, 0.2, 0.05, init=[0.1, 0.2], seed=3)
        c2 = sde.subs(a=1.0).simulate(500, 0.2, 0.05, init=[0.1, 0.2], seed=3)  # equal, not identical
        assert len(built) == 1
        np.testing.assert_array_equal(c1.theta, c2.theta)
        sde.subs(a=2.0).simulate(500, 0.2, 0.05, init=[0.1, 0.2])  # other drift: new stepper
        s1.simulate(500, 0.2, 0.05, init=[0.1, 0.2], method="weak2")  # other scheme: new stepper
        s1.simulate(500, 0.2, 0.04, init=[0.1, 0.2])  # other step: new stepper
        assert len(built) == 4
    finally:
        psde.SDEStepper = orig


def test_recursion_stepper_cached_and_fast():
    from symfp.particles import cache

    cache.clear()
    w = sp.Symbol("w", real=True)
    xi = sp.Symbol("xi", real=True)
    data = symfp.Dataset({xi: np.linspace(-1, 1, 50)})
    model = symfp.SGD(params=[w], loss=(w - xi) ** 2 / 2, data=data, lr=0.1, batch_size=5)
    t0 = time.perf_counter()
    a1 = model.simulate(200, 3, init=[0.5], seed=1, outputs=2)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    a2 = model.simulate(200, 3, init=[0.5], seed=1, outputs=2)
    second = time.perf_counter() - t0
    np.testing.assert_array_equal(a1.theta, a2.theta)
    assert len(cache._steppers) == 1
    assert second < first  # the set-up (lambdify) is not repeated
