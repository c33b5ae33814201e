r"""Exact samples of the FE initial density in 2-D and 3-D (cell by mass, vertex by value, Dirichlet).

The sampler draws from the P1 interpolant :math:`p^0_h` itself, so the sample moments must match the
FE moments :math:`\int\theta_i p^0_h = c_i^\top p^0` and :math:`\int\theta_i\theta_j p^0_h` (loads of
the polynomials, exact for P1 at quadrature degree 8) within their Monte Carlo standard errors
:math:`\mathrm{sd}/\sqrt n` — no bias term is allowed (4 standard errors; the covariance follows from
the first and second moments). The density is a non-Gaussian two-component mixture, and the meshes
are coarse (h = 0.5) so that the P1 law differs measurably from near relatives: a sampler uniform
within the chosen cell (cell masses right, shape inside wrong) fails the 2-D case with z = 6.8, 8.8,
20.6 on the second moments (measured).
"""

from __future__ import annotations

import numpy as np
import sympy as sp

import symfp
from symfp.control import objectives as ob
from symfp.control.operators import operator_parts
from symfp.control.problem import ControlProblem
from symfp.control.verify import sample_initial

w1, w2, w3, x1, x2, x3 = sp.symbols("w1 w2 w3 x1 x2 x3")


def _model(ws, xs):
    data = symfp.Population({x: sp.stats.Normal(f"X{k}", 0, 1) for k, x in enumerate(xs)})
    return symfp.SGD(loss=sum(w**2 for w in ws) / 2 + sum(x * w for x, w in zip(xs, ws, strict=True)),
                     params=list(ws), data=data, lr=0.1)


def _check_moments(pr, ws, n, seed):
    X = sample_initial(pr, n, seed)
    assert X.shape == (n, len(ws))
    lo = pr.ops.coordinates.min(axis=0)
    hi = pr.ops.coordinates.max(axis=0)
    assert np.all(X >= lo - 1e-12) and np.all(X <= hi + 1e-12)  # on the mesh
    monomials = list(ws) + [ws[i] * ws[j] for i in range(len(ws)) for j in range(i, len(ws))]
    zs = []
    for k, mono in enumerate(monomials):
        fe = float(pr.ops.load(mono) @ pr.p0)
        vals = sp.lambdify(ws, mono, "numpy")(*X.T)
        zs.append((vals.mean() - fe) / (vals.std(ddof=1) / np.sqrt(n)))
        assert abs(zs[-1]) < 4, (k, mono, vals.mean(), fe, zs[-1])
    return np.array(zs)


def test_two_dimensional_mixture(backend):
    ops = operator_parts(_model((w1, w2), (x1, x2)), symfp.mesh.box([(-3, 3), (-3, 3)], cells=(12, 12)),
                         backend=backend)
    p0 = (sp.exp(-((w1 - 1) ** 2 + (w2 + 0.5) ** 2) / 0.5)
          + 0.5 * sp.exp(-((w1 + 1) ** 2 + 4 * w2**2 + 2 * w1 * w2) / 0.6))
    pr = ControlProblem(ops, p0, t_end=1.0, dt=0.1, n_controls=2, objective=[ob.ExpectedValue(w1**2)])
    _check_moments(pr, (w1, w2), 200_000, 0)


def test_three_dimensional(backend):
    ops = operator_parts(_model((w1, w2, w3), (x1, x2, x3)),
                         symfp.mesh.box([(-2, 2), (-2, 2), (-2, 2)], cells=(8, 8, 8)), backend=backend)
    p0 = sp.exp(-((w1 - 0.3) ** 2 + 2 * w2**2 + (w3 + 0.2) ** 2 + w1 * w3))
    pr = ControlProblem(ops, p0, t_end=1.0, dt=0.1, n_controls=2, objective=[ob.ExpectedValue(w1**2)])
    _check_moments(pr, (w1, w2, w3), 100_000, 1)


def test_one_dimensional_matches_the_interpolant(backend):
    th, xi = sp.symbols("theta xi")
    ops = operator_parts(_model((th,), (xi,)), symfp.mesh.box([(-4, 4)], cells=16), backend=backend)
    pr = ControlProblem(ops, sp.exp(-(th - 1) ** 2) + sp.exp(-4 * (th + 1) ** 2), t_end=1.0, dt=0.1,
                        n_controls=2, objective=[ob.ExpectedValue(th**2)])
    _check_moments(pr, (th,), 100_000, 2)
