"""The dolfinx and scikit-fem assemblers of the control layer against each other, on the same mesh.

Same vertices and cells, P1, and a quadrature exact for the polynomial integrands on both sides
(:func:`symfp.control.skfem_assembler.quadrature_order` mirrors UFL's degree estimate), so the matrices
differ only by round-off: relative max-entry differences ≤ 1e-12 (measured ≤ 1e-15). The objectives and
adjoint gradients computed from them then agree to the conditioning of the solves (≤ 1e-10).
Indicator loads differ by the quadrature rules on the cells cut by the region's edge (O(h) there).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.control import objectives as ob
from symfp.control.operators import operator_parts, resolve_backend
from symfp.control.problem import ControlProblem
from symfp.errors import InputError, MeshError

pytestmark = pytest.mark.fem
pytest.importorskip("skfem")

th, xi = sp.symbols("theta xi")
w1, w2, x1, x2 = sp.symbols("w1 w2 x1 x2")


def permutation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """p with a[i] == b[p[i]] (the two backends number the same vertices differently)."""
    ia = np.lexsort(np.round(a, 9).T[::-1])
    ib = np.lexsort(np.round(b, 9).T[::-1])
    assert np.abs(a[ia] - b[ib]).max() < 1e-12, "the two meshes do not have the same vertices"
    p = np.empty(len(a), dtype=int)
    p[ia] = ib
    return p


def rel(A, B, p):
    return abs(A - B[p][:, p]).max() / abs(A).max()


def model1(loss=th**2 / 2 + xi * th):
    return symfp.SGD(loss=loss, params=[th], data=symfp.Population({xi: sp.stats.Normal("X", 0, 1)}), lr=0.1)


def model2():
    data = symfp.Population({x1: sp.stats.Normal("X1", 0, 1), x2: sp.stats.Normal("X2", 0, 1)})
    return symfp.SGD(loss=(w1**2 + 2 * w2**2 + w1 * w2) / 2 + x1 * w1 + x2 * w2, params=[w1, w2], data=data,
                     lr=0.2)


def both(model, mesh, **kw):
    d = operator_parts(model, mesh, backend="dolfinx", **kw)
    s = operator_parts(model, mesh, backend="skfem", **kw)
    return d, s, permutation(d.coordinates, s.coordinates)


CASES = {
    "1d-order1": (lambda: model1(), lambda: symfp.mesh.box([(-6, 6)], cells=120), 1),
    "1d-order2-quartic": (lambda: model1(th**4 / 4 + xi * th), lambda: symfp.mesh.box([(-3, 3)], cells=60),
                          2),
    "2d-order1": (model2, lambda: symfp.mesh.box([(-4, 4), (-4, 4)], cells=(20, 20)), 1),
}


@pytest.mark.parametrize("case", list(CASES))
def test_matrices_agree_to_round_off(case):
    make_model, make_mesh, order = CASES[case]
    d, s, p = both(make_model(), make_mesh(), order=order)
    assert d.backend == "dolfinx" and s.backend == "skfem"
    assert set(d.parts) == set(s.parts)
    assert rel(d.M, s.M, p) <= 1e-12
    for key in d.parts:
        assert rel(d.parts[key], s.parts[key], p) <= 1e-12, key
    # the quartic's parts have coefficients of degree 3 and 5: with scikit-fem's default order 3 for P1
    # they would differ by 9e-7 and 8e-6 (measured); the order from the coefficient's degree makes it exact
    if order == 2:
        assert set(d.parts) == {(1, 0), (2, 0), (2, 1)}


def test_vectors_agree():
    d, s, p = both(model1(), symfp.mesh.box([(-6, 6)], cells=120))
    p0 = sp.exp(-(th - 1) ** 2 / 2)
    assert np.abs(d.initial(p0) - s.initial(p0)[p]).max() <= 1e-12
    assert np.abs(d.load(th**2) - s.load(th**2)[p]).max() <= 1e-13  # degree 3 integrand: exact
    assert np.abs(d.nodal(sp.cos(th)) - s.nodal(sp.cos(th))[p]).max() == 0.0
    ind = sp.Piecewise((1, th > 0.55), (0, True))  # edge inside a cell of h = 0.1
    diff = np.abs(d.load(ind) - s.load(ind)[p])
    assert diff.max() <= 0.1 * 0.1 and np.count_nonzero(diff > 1e-14) <= 2  # only the cut cell's dofs


@pytest.mark.parametrize("dim", [1, 2])
def test_objective_and_gradient_agree(dim):
    if dim == 1:
        d, s, _ = both(model1(), symfp.mesh.box([(-6, 6)], cells=120))
        kw = dict(p0=sp.exp(-(th - 1) ** 2 / 2), t_end=2.0, dt=0.02, n_controls=10,
                  objective=[ob.ExpectedValue(th**2 / 2),
                             ob.TerminalTracking(sp.exp(-th**2 / 0.2), weight=0.3),
                             ob.RunningTracking(sp.exp(-th**2), weight=0.1)])
    else:
        d, s, _ = both(model2(), symfp.mesh.box([(-4, 4), (-4, 4)], cells=(20, 20)))
        kw = dict(p0=sp.exp(-((w1 - 1) ** 2 + (w2 + 0.5) ** 2) / 0.5), t_end=1.0, dt=0.05, n_controls=5,
                  objective=[ob.ExpectedValue(w1**2 + 2 * w2**2)])
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(0.3, 1, kw["n_controls"]), rng.uniform(1, 4, kw["n_controls"])])
    Jd, gd = ControlProblem(d, controls=("u", "B"), **kw).value_and_gradient(x)
    Js, gs = ControlProblem(s, controls=("u", "B"), **kw).value_and_gradient(x)
    assert abs(Jd - Js) <= 1e-10 * abs(Jd)
    assert np.abs(gd - gs).max() <= 1e-10 * np.abs(gd).max()


def test_auto_takes_dolfinx_when_importable_else_skfem(monkeypatch):
    from symfp.fem import registry

    assert resolve_backend("auto") == ("dolfinx" if registry.importable("dolfinx") else "skfem")
    monkeypatch.setattr(registry, "importable", lambda name: name == "skfem")
    assert resolve_backend("auto") == "skfem"
    ops = operator_parts(model1(), symfp.mesh.box([(-3, 3)], cells=10))
    assert ops.backend == "skfem" and type(ops.assembler).__name__ == "SkfemAssembler"


def test_point_initial_density_agrees_2d():
    """A point p0 is the same mesh-width Gaussian on both (s = 2h, h the largest cell diameter)."""
    d, s, p = both(model2(), symfp.mesh.box([(-4, 4), (-4, 4)], cells=(20, 20)))
    q = d.initial([0.3, -0.2])
    assert np.abs(q - s.initial([0.3, -0.2])[p]).max() <= 1e-12 * q.max()
    with pytest.raises(InputError, match="outside the mesh"):
        s.initial([9.0, 0.0])


def test_bad_backend_and_mesh():
    with pytest.raises(InputError, match="backend='fenics' is not one of auto, dolfinx, skfem"):
        operator_parts(model1(), symfp.mesh.box([(-3, 3)], cells=10), backend="fenics")
    with pytest.raises(MeshError, match="the mesh is 2-D but the SDE has 1 state"):
        operator_parts(model1(), symfp.mesh.box([(-3, 3), (-1, 1)], cells=4), backend="skfem")


def test_spec_names_the_backend():
    """A control spec's ``backend`` reaches operator_parts (``symfp control`` on a pip-only install)."""
    from symfp.control.study import build_problem

    ns = dict(model=model1(), mesh=lambda: symfp.mesh.box([(-4, 4)], cells=40), p0=sp.exp(-th**2),
              t_end=1.0, dt=0.1, objective=[ob.ExpectedValue(th**2)], control=dict(n_controls=2))
    for name in ("skfem", "dolfinx"):
        _, pr, _ = build_problem({**ns, "backend": name})
        assert pr.ops.backend == name
    with pytest.raises(InputError, match="backend='nope'"):
        build_problem({**ns, "backend": "nope"})
