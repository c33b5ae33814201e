"""Data-mean coefficients in the FE layer: the numpy evaluator, P1 interpolation (rate 2, PSD kept),
and the FE solve of a logistic-regression SME against SDE particles."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.fem.coefficients import TIMER, evaluate, prefetch, psd_check
from symfp.symbolic.data import Dataset

pytestmark = pytest.mark.fem

w1, w2, x, y = sp.symbols("w1 w2 x y", real=True)
XS = np.array([-1.0, 0.5, 2.0])


def test_evaluate_matches_direct_numpy_and_counts_time():
    d = Dataset({x: XS})
    e = d.expect(sp.exp(w1 * x)) * w2
    pts = np.array([[0.1, 2.0], [-0.7, 1.0], [1.3, -0.5]])
    TIMER.take()
    got = evaluate(e, (w1, w2), pts)
    ref = np.array([np.mean(np.exp(a * XS)) * b for a, b in pts])
    np.testing.assert_allclose(got, ref, rtol=1e-14)
    M = evaluate(sp.Matrix([[e, 1], [1, e]]), (w1, w2), pts)
    assert M.shape == (3, 2, 2) and np.allclose(M[:, 0, 0], ref)
    assert TIMER.take()["coefficient_evaluations"] == 2


def test_prefetch_shares_one_pass_and_matches_numpy(monkeypatch):
    r"""b = −mean ∇ℓ, D = Cov[∇ℓ] and ∇·D of the logistic loss ℓ = log(1+e^{−y(w₁x+w₂)}): one joint
    pass (hoisted features x·y, y; small chunks) gives, entry by entry, the direct numpy values to
    round-off, and a later :func:`evaluate` reuses the memoised nodes (no second reduction)."""
    import symfp.symbolic.datamean as dm

    xs = np.array([0.5, -1.25, 2.0, 0.75, -0.3, 1.1, -2.2])
    ys = np.array([1.0, -1.0, 1.0, 1.0, -1.0, -1.0, 1.0])
    d = Dataset({x: xs, y: ys})
    loss = sp.log(1 + sp.exp(-y * (w1 * x + w2)))
    g = [sp.diff(loss, s) for s in (w1, w2)]
    b = [-d.expect(gi) for gi in g]
    D = sp.Matrix(2, 2, lambda i, j: symfp.symbolic.datamean.DataCov(g[i], g[j], d))
    divD = [sp.diff(D[i, 0], w1) + sp.diff(D[i, 1], w2) for i in range(2)]
    pts = np.array([[0.3, -0.2], [1.5, 0.7], [-2.0, 1.0], [0.0, 0.0]])
    monkeypatch.setattr(dm, "FE_CHUNK_ELEMENTS", 30)  # one point per chunk: the chunk loop
    dm._MEMO.clear()
    assert prefetch([*b, D, *divD], (w1, w2), pts) > 0
    calls = []
    monkeypatch.setattr(dm, "_joint_function", lambda *a: calls.append(a))  # no new pass allowed
    got_b = np.stack([evaluate(e, (w1, w2), pts) for e in b], 1)
    got_D = evaluate(D, (w1, w2), pts)
    got_div = np.stack([evaluate(e, (w1, w2), pts) for e in divD], 1)
    assert not calls
    for k, (a, c) in enumerate(pts):
        u = ys * (a * xs + c)
        s = 1 / (1 + np.exp(u))  # σ(−u)
        G = np.stack([-ys * xs * s, -ys * s], 1)
        H = s * (1 - s)  # ∂σ(−u)/∂u = −σ(−u)σ(u); ∂G_i/∂w_j = y² x_i x_j s(1−s) with x_2 = 1
        X = np.stack([xs, np.ones_like(xs)], 1)
        dG = H[:, None, None] * X[:, :, None] * X[:, None, :]  # [sample, i, j] = ∂G_i/∂w_j
        Gc = G - G.mean(0)
        np.testing.assert_allclose(got_b[k], -G.mean(0), rtol=1e-13)
        np.testing.assert_allclose(got_D[k], Gc.T @ Gc / len(xs), rtol=1e-12, atol=1e-16)
        # ∂_j Cov(G_i, G_j) = mean(∂_j G_i Gc_j + Gc_i ∂_j G_j), summed over j
        div = [sum(np.mean(dG[:, i, j] * Gc[:, j] + Gc[:, i] * dG[:, j, j]) for j in range(2))
               for i in range(2)]
        np.testing.assert_allclose(got_div[k], div, rtol=1e-12, atol=1e-16)


def test_psd_check_names_the_node():
    psd_check(np.array([[[2.0, 1.0], [1.0, 2.0]]]), "test")
    with pytest.raises(symfp.errors.InputError, match="negative eigenvalue -1 at node 1"):
        psd_check(np.array([[[1.0, 0], [0, 1]], [[0.0, 1.0], [1.0, 0.0]]]), "test")


def _interpolation_error(n: int) -> float:
    from symfp.fem.dolfinx import compat
    from symfp.fem.dolfinx.mesh import box
    from symfp.fem.dolfinx.translate import to_ufl

    ufl = compat.dolfinx_modules().ufl
    msh = box([(0, 1), (0, 1)], cells=n).mesh
    d = Dataset({x: XS})
    coef = to_ufl(d.expect(sp.exp(w1 * x)) * (1 + w2), (w1, w2), ufl.SpatialCoordinate(msh))
    # exact integral over the unit square: mean_i (e^{x_i} - 1)/x_i * 3/2
    exact = np.mean((np.exp(XS) - 1) / XS) * 1.5
    return abs(compat.scalar_integral(coef, msh) - exact)


@pytest.mark.mpi
def test_p1_interpolated_data_mean_converges_at_rate_two():
    e8, e16 = _interpolation_error(8), _interpolation_error(16)
    rate = np.log2(e8 / e16)
    assert 1.8 < rate < 2.2, (e8, e16)  # P1 interpolation: O(h^2)
    assert e16 < 5e-3


@pytest.mark.torch  # the particles side (the dolfinx 0.9/0.11 roots carry no torch)
def test_fe_solve_of_a_logistic_sme_against_sde_particles():
    rng = np.random.default_rng(0)
    n = 200
    X = rng.normal(size=(n, 2))
    Y = np.where(X[:, 0] + 0.5 * rng.normal(size=n) > 0, 1.0, -1.0)
    x1, x2 = sp.symbols("x1 x2", real=True)
    model = symfp.SGD(loss=sp.log(1 + sp.exp(-y * (w1 * x1 + w2 * x2))), params=[w1, w2],
                      data=Dataset({x1: X[:, 0], x2: X[:, 1], y: Y}), lr=sp.Rational(1, 10), batch_size=4)
    sde = model.sme(order=1)
    s0 = 0.1
    p0 = sp.exp(-((w1 - 1) ** 2 + w2**2) / (2 * s0**2))
    mesh = symfp.mesh.box([(0.4, 1.8), (-0.7, 0.7)], cells=(48, 48))
    sol = sde.fokker_planck().solve(mesh, p0, t_end=0.5, dt=0.025)
    assert sol.info["coefficient_evaluations"] >= 3 and sol.info["coefficient_seconds"] > 0
    assert "P1" in sol.info["coefficient_space"]
    from symfp.native.build import compiler

    # the data-means were reduced by the C kernel where a compiler exists (numpy otherwise)
    assert sol.info["coefficient_kernel"] == ("c" if compiler() else "numpy")
    mean_fe, cov_fe = sol.observables["mean"][-1], sol.observables["cov"][-1]
    rng2 = np.random.default_rng(1)
    init = np.array([1.0, 0.0]) + s0 * rng2.normal(size=(40000, 2))
    cloud = sde.simulate(n_particles=40000, t_end=0.5, dt=0.025, init=init, seed=2)
    mean_p, se = cloud.mean(stderr=True)
    # Monte Carlo 4 SE plus the FE/time-step error (dt = 0.025 with CN/FCT, h = 1.4/48): 2e-3
    assert np.all(np.abs(mean_fe - mean_p) < 4 * se + 2e-3), (mean_fe, mean_p, se)
    np.testing.assert_allclose(np.diag(cov_fe), np.diag(cloud.cov()), rtol=0.05)
