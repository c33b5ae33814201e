"""Discrete adjoint gradients against central finite differences and the Taylor remainder (1-D, 2-D)."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.control import objectives as ob
from symfp.control.operators import operator_parts
from symfp.control.problem import ControlProblem
from symfp.errors import InputError

pytestmark = pytest.mark.fem

th, xi = sp.symbols("theta xi")
w1, w2, x1, x2 = sp.symbols("w1 w2 x1 x2")


BACKENDS = ["dolfinx", "skfem"]


@pytest.fixture(scope="module", params=BACKENDS)
def ops1(request):
    data = symfp.Population({xi: sp.stats.Normal("X", 0, 1)})
    m = symfp.SGD(loss=th**2 / 2 + xi * th, params=[th], data=data, lr=0.1)
    return operator_parts(m, symfp.mesh.box([(-6, 6)], cells=120), backend=request.param)


@pytest.fixture(scope="module", params=BACKENDS)
def ops2(request):
    data = symfp.Population({x1: sp.stats.Normal("X1", 0, 1), x2: sp.stats.Normal("X2", 0, 1)})
    m = symfp.SGD(loss=(w1**2 + 2 * w2**2 + w1 * w2) / 2 + x1 * w1 + x2 * w2, params=[w1, w2], data=data,
                  lr=0.2)
    return operator_parts(m, symfp.mesh.box([(-4, 4), (-4, 4)], cells=(20, 20)), backend=request.param)


def problem1(ops, scheme):
    return ControlProblem(
        ops, sp.exp(-(th - 1) ** 2 / 2), t_end=2.0, dt=0.02, n_controls=10, controls=("u", "B"),
        scheme=scheme,
        objective=[ob.ExpectedValue(th**2 / 2), ob.TerminalTracking(sp.exp(-th**2 / 0.2), weight=0.3),
                   ob.RunningTracking(sp.exp(-th**2), weight=0.1), ob.Smoothness(weight=0.01),
                   ob.SampleCost(weight=1e-3), ob.RegionMass(th > 0.5, weight=-1)])


def problem2(ops, scheme):
    return ControlProblem(
        ops, sp.exp(-((w1 - 1) ** 2 + (w2 + 0.5) ** 2) / 0.5), t_end=1.0, dt=0.05, n_controls=5,
        controls=("u", "B"), scheme=scheme,
        objective=[ob.ExpectedValue(w1**2 + 2 * w2**2), ob.RegionMass(w1 + w2 > 0, weight=-0.5),
                   ob.Smoothness(weight=0.01)])


def _check(pr, seed):
    rng = np.random.default_rng(seed)
    n = pr.grid.n
    x = np.concatenate([rng.uniform(0.3, 1, n), rng.uniform(1, 4, n)])
    J, g = pr.value_and_gradient(x)
    h = 1e-5
    fd = np.array([(pr.value(x + h * e) - pr.value(x - h * e)) / (2 * h) for e in np.eye(x.size)])
    # central differences: truncation h²|J'''| ~ 1e-10, round-off 1e-16/h ~ 1e-11 relative
    assert np.abs(fd - g).max() <= 1e-6 * np.abs(g).max()
    d = rng.standard_normal(x.size)
    hs = 0.1 * 2.0 ** -np.arange(5)
    rem = [abs(pr.value(x + s * d) - J - s * (g @ d)) for s in hs]
    slopes = np.diff(np.log(rem)) / np.diff(np.log(hs))
    assert np.all(np.abs(slopes - 2.0) <= 0.1), slopes


@pytest.mark.parametrize("scheme", ["cn", "euler"])
def test_gradient_1d(ops1, scheme):
    _check(problem1(ops1, scheme), 0)


@pytest.mark.parametrize("scheme", ["cn", "euler"])
def test_gradient_2d(ops2, scheme):
    _check(problem2(ops2, scheme), 1)


def test_mass_conserved_and_mean_decay(ops1):
    """1ᵀK = 0 keeps ∫p exact; with u = 1 the mean obeys dE θ/dt = −E θ (to the O(dt², h²) error)."""
    pr = problem1(ops1, "cn")
    traj = pr.solve(np.ones(pr.grid.n), np.ones(pr.grid.n))
    assert abs(pr.mass(traj.final) - 1) < 1e-12
    assert traj.undershoot < 1e-6  # resolved: cell Péclet |c|h/(2D) ≤ 6·0.1/0.1 at the tails only
    mean = float(ops1.load(th) @ traj.final)
    assert abs(mean - np.exp(-2.0)) < 2e-3


def test_bad_input(ops1):
    base = dict(t_end=1.0, dt=0.1, objective=[ob.ExpectedValue(th**2)])
    with pytest.raises(InputError, match="finer than the time step"):
        ControlProblem(ops1, sp.exp(-th**2), n_controls=20, **base)
    with pytest.raises(InputError, match="lower bound"):
        ControlProblem(ops1, sp.exp(-th**2), n_controls=5, u_bounds=(1, 0), **base)
    with pytest.raises(InputError, match="does not depend on the controls"):
        ControlProblem(ops1, sp.exp(-th**2), n_controls=5, t_end=1.0, dt=0.1, objective=[ob.ExpectedValue(3)])
    with pytest.raises(InputError, match="not a control here"):
        ControlProblem(ops1, sp.exp(-th**2), n_controls=5, t_end=1.0, dt=0.1,
                       objective=[ob.ExpectedValue(th**2), ob.SampleCost()])
    det = symfp.SGD(loss=th**2 / 2, params=[th], data=None, lr=0.1, noise=0.5)
    ops_det = operator_parts(det, symfp.mesh.box([(-3, 3)], cells=20), backend=ops1.backend)
    with pytest.raises(InputError, match="does not enter"):
        ControlProblem(ops_det, sp.exp(-th**2), n_controls=5, controls=("u", "B"), **base)


@pytest.mark.parametrize("backend", BACKENDS)
def test_order2_gradient(backend):
    """Order 2 adds a part ∝ u² (η|∇f|²/4 drift); the adjoint gradient stays exact."""
    data = symfp.Population({xi: sp.stats.Normal("X", 0, 1)})
    m = symfp.SGD(loss=th**4 / 4 + xi * th, params=[th], data=data, lr=0.1)
    ops = operator_parts(m, symfp.mesh.box([(-3, 3)], cells=60), order=2, backend=backend)
    assert set(ops.parts) == {(1, 0), (2, 0), (2, 1)}
    pr = ControlProblem(ops, sp.exp(-(th - 1) ** 2 / 0.5), t_end=1.0, dt=0.05, n_controls=4,
                        controls=("u", "B"), objective=[ob.ExpectedValue(th**2)])
    _check(pr, 2)


def test_objective_the_controls_cannot_change(ops1):
    """E θ under linear drift does not depend on the noise, so not on B: refused, not 'optimised'."""
    from symfp.control.optimise import optimise

    pr = ControlProblem(ops1, sp.exp(-(th - 1) ** 2 / 2), t_end=1.0, dt=0.1, n_controls=5, controls=("B",),
                        objective=[ob.ExpectedValue(th)])
    with pytest.raises(InputError, match="does not depend on the controls"):
        optimise(pr, progress=False)
