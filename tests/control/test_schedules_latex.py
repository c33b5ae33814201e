"""Schedule families, budgets, and the LaTeX of the control problem."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

from symfp.control.schedules import (
    ControlGrid,
    check_bounds,
    cosine,
    exponential,
    inverse_time,
    match_budget,
    warmup_stable_decay,
)
from symfp.errors import InputError


def test_families_values():
    g = ControlGrid(10.0, 5)
    assert np.allclose(g.midpoints, [1, 3, 5, 7, 9])
    assert np.allclose(cosine(g, lo=0, hi=1), 0.5 * (1 + np.cos(np.pi * g.midpoints / 10)))
    assert np.allclose(inverse_time(g, a=0.5), 1 / (1 + 0.5 * g.midpoints))
    assert np.allclose(exponential(g, start=2, rate=0.1), 2 * np.exp(0.1 * g.midpoints))
    w = warmup_stable_decay(ControlGrid(10.0, 10), peak=1.0, warmup=0.2, decay=0.2)
    assert np.allclose(w, [0.25, 0.75, 1, 1, 1, 1, 1, 1, 0.75, 0.25])


@pytest.mark.parametrize("family", ["constant", "cosine", "inverse_time"])
@pytest.mark.parametrize("budget", [2.0, 5.0, 9.0])
def test_match_budget(family, budget):
    g = ControlGrid(10.0, 40)
    u = match_budget(family, g, budget, lo=0.05, hi=1.0)
    assert abs(g.integral(u) - budget) < 1e-8
    assert u.min() >= 0.05 - 1e-12 and u.max() <= 1.0 + 1e-12


def test_budget_and_bounds_errors():
    g = ControlGrid(10.0, 40)
    with pytest.raises(InputError, match="cannot be met"):
        match_budget("constant", g, 0.1, lo=0.05, hi=1.0)
    with pytest.raises(InputError, match="lower bound"):
        check_bounds(2, 1, "u")
    with pytest.raises(InputError, match="n ="):
        ControlGrid(1.0, 0)


@pytest.mark.fem
def test_latex_of_the_control_problem():
    import symfp
    from symfp.control import objectives as ob
    from symfp.control.latex import control_latex
    from symfp.control.operators import operator_parts
    from symfp.control.problem import ControlProblem

    th, xi = sp.symbols("theta xi")
    m = symfp.SGD(loss=th**2 / 2 + xi * th, params=[th],
                  data=symfp.Population({xi: sp.stats.Normal("X", 0, 1)}), lr=0.1)
    ops = operator_parts(m, symfp.mesh.box([(-5, 5)], cells=20))
    pr = ControlProblem(ops, sp.exp(-th**2), t_end=1.0, dt=0.1, n_controls=5, controls=("u", "B"),
                        objective=[ob.ExpectedValue(th**2), ob.SampleCost(weight=0.01)])
    tex = control_latex(pr)
    assert r"- \theta u" in tex  # b = −u∇f
    assert r"\frac{0.05 u^{2}}{B}" in tex  # D = u²ηΣ/(2B)
    assert r"-\partial_t\lambda = b\cdot\nabla\lambda + D:\nabla^2\lambda" in tex
    assert r"\lambda(T) = \left(\theta^{2}\right)" in tex
    assert r"\int_0^T B\,dt" in tex


def test_import_control_loads_no_backend():
    code = ("import sys, symfp, symfp.control; symfp.control.ControlGrid; import symfp.control.problem; "
            "print('dolfinx' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
