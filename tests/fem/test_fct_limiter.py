"""The backend-neutral FCT limiter (:class:`symfp.fem.fct.FCTLimiter`) on assembled scipy matrices: the
default redistribution is positive, keeps the mass exactly, moves an undershoot's mass into its own
stencil and leaves the target alone elsewhere; Zalesak's passes keep their local bounds; an MPI-style
split of the rows gives the serial result. No FE backend is needed (P1 matrices built here)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sps
from scipy.sparse.linalg import spsolve

from symfp.errors import InputError
from symfp.fem.fct import CSRPair, FCTLimiter, csr_pair_scipy, discrete_upwind_scipy


def _p1(n: int, D: np.ndarray) -> tuple[sps.csr_matrix, sps.csr_matrix, np.ndarray]:
    """P1 stiffness (∫∇φ_j·D∇φ_i) and consistent mass, unit square, n×n cells cut by diagonals."""
    h = 1.0 / n
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    tris = []
    for i in range(n):
        for j in range(n):
            a, b, c, d = idx[i, j], idx[i + 1, j], idx[i, j + 1], idx[i + 1, j + 1]
            tris += [(a, b, d), (a, d, c)]
    xy = np.stack(np.meshgrid(np.arange(n + 1) * h, np.arange(n + 1) * h, indexing="ij"), -1).reshape(-1, 2)
    rows, cols, kv, mv = [], [], [], []
    for t in tris:
        P = xy[list(t)]
        B = np.array([P[1] - P[0], P[2] - P[0]]).T
        area = abs(np.linalg.det(B)) / 2
        G = np.linalg.solve(B.T, np.array([[-1.0, 1.0, 0.0], [-1.0, 0.0, 1.0]]))  # gradients (2, 3)
        Ke = area * G.T @ D @ G
        Me = area / 12 * (np.ones((3, 3)) + np.eye(3))
        for r in range(3):
            for s in range(3):
                rows.append(t[r])
                cols.append(t[s])
                kv.append(Ke[r, s])
                mv.append(Me[r, s])
    N = len(xy)
    K = sps.csr_matrix((kv, (rows, cols)), shape=(N, N))
    M = sps.csr_matrix((mv, (rows, cols)), shape=(N, N))
    return K, M, np.asarray(M.sum(axis=1)).ravel()


def _limiter(K, M, ml, method="redistribute", **kw) -> FCTLimiter:
    P = csr_pair_scipy(K)
    return FCTLimiter(P, csr_pair_scipy(M, pattern=P), ml, P.ja, np.zeros(0, dtype=np.int64), method=method,
                      **kw)


def _rank1(phi=np.pi / 6, scale=0.05):
    v = np.array([np.cos(phi), np.sin(phi)])
    return scale * np.outer(v, v)


def _valley_step(n=24, dt=0.05):
    """One CN step of an oblique rank-1 diffusion from a thin Gaussian ridge across the diffusion."""
    K, M, ml = _p1(n, _rank1(scale=0.5))
    h = 1.0 / n
    x = np.repeat(np.arange(n + 1) * h, n + 1)
    y = np.tile(np.arange(n + 1) * h, n + 1)
    s = -np.sin(np.pi / 6) * (x - 0.5) + np.cos(np.pi / 6) * (y - 0.5)
    t = np.cos(np.pi / 6) * (x - 0.5) + np.sin(np.pi / 6) * (y - 0.5)
    un = np.exp(-t**2 / (2 * 0.03**2) - s**2 / (2 * 0.2**2))
    uL = spsolve((sps.diags(ml) + dt * discrete_upwind_scipy(K)).tocsc(), ml * un)
    uH = spsolve((M + 0.5 * dt * K).tocsc(), (M - 0.5 * dt * K) @ un)
    return K, M, ml, un, uL, uH


def _stencil_of(K, M, mask):
    A = ((abs(K) + abs(M)) > 0).astype(int)
    return (A @ mask.astype(int)) > 0


def test_redistribution_is_positive_conservative_and_keeps_the_target_away_from_its_undershoots():
    K, M, ml, un, uL, uH = _valley_step()
    assert np.count_nonzero(uH < 0) > 10  # the Galerkin target undershoots beside the thin ridge
    lim = _limiter(K, M, ml)
    f = lim.fluxes(un, uL, uH, 0.05, 0.5)
    # the fluxes decompose the difference of the two solutions exactly
    np.testing.assert_allclose(np.add.reduceat(f, lim.starts), ml * (uH - uL), atol=1e-15 * ml.max())
    u = lim.redistribute(uH, un)
    assert u.min() >= 0.0
    assert abs(ml @ u - ml @ uH) < 1e-14 * (ml @ uH)
    # the limit() entry point (target rebuilt from the fluxes) gives the same up to round-off
    np.testing.assert_allclose(_limiter(K, M, ml).limit(f, un, uL), u, rtol=1e-10, atol=1e-14 * u.max())
    # the clipped mass is taken within as many stencil rings as there were rounds (the debt moves one
    # ring per round); beyond them the target is kept, up to the global factor c of what was left over
    rounds = lim.iterations
    assert 1 <= rounds <= 10
    touched = uH < 0
    for _ in range(rounds):
        touched = _stencil_of(K, M, touched)
    far = ~touched & (uH > 0)
    assert far.sum() > 0.3 * len(u)
    ratio = u[far] / uH[far]
    assert np.ptp(ratio) < 1e-14 and abs(ratio[0] - 1.0) <= lim.settle + 1e-15
    # the debt left after the rounds (tol = 1e-3 of the clipped mass) is what c settles globally
    clipped = ml @ np.maximum(-uH, 0.0)
    assert lim.settle <= 1e-3 * clipped / (ml @ uH) * 1.01 + 1e-15


def test_an_isolated_undershoot_takes_exactly_its_mass_from_its_neighbours():
    # one negative node in a positive field: the clip adds d = m_i |u_i|, its stencil gives exactly d in
    # proportion to the mass it holds (c = 1: nothing global), every other node keeps the target
    K, M, ml = _p1(8, np.eye(2))
    rng = np.random.default_rng(3)
    uH = 1.0 + rng.random(K.shape[0])
    i = 40  # an interior vertex
    uH[i] = -0.3
    lim = _limiter(K, M, ml)
    u = lim.redistribute(uH, uH)
    nb = _stencil_of(K, M, np.arange(len(uH)) == i)
    nb[i] = False
    d = ml[i] * 0.3
    S = ml[nb] @ uH[nb]
    assert u[i] == 0.0
    np.testing.assert_allclose(u[nb], uH[nb] * (1 - d / S), rtol=1e-13)
    rest = ~nb & (np.arange(len(uH)) != i)
    np.testing.assert_allclose(u[rest], uH[rest], rtol=1e-15)  # c = 1 up to the round-off of the sums
    assert lim.settle < 1e-14
    assert abs(ml @ u - ml @ uH) < 1e-13


def test_zalesak_method_keeps_its_local_bounds_and_the_mass():
    K, M, ml, un, uL, uH = _valley_step()
    # one pass: within the bounds of u^L, u^n; the further passes take their bounds from the iterate
    one = _limiter(K, M, ml, method="zalesak", max_iterations=1)
    f = one.fluxes(un, uL, uH, 0.05, 0.5)
    u = one.limit(f, un, uL)
    hi, lo = one._bounds(un, uL)
    assert np.all(u >= lo - 1e-14 * hi.max()) and np.all(u <= hi + 1e-14 * hi.max())
    assert abs(ml @ u - ml @ uL) < 1e-14 * (ml @ uL)
    many = _limiter(K, M, ml, method="zalesak")
    u2 = many.limit(f, un, uL)
    assert many.iterations > 1 and u2.min() >= -1e-14 * u2.max()
    assert abs(ml @ u2 - ml @ uL) < 1e-14 * (ml @ uL)


def test_split_rows_give_the_serial_result():
    # the MPI layout without MPI: the rows split between two "ranks" (threads in lock step), each with
    # its owned rows, ghost values of the columns it lacks and a global sum: the serial result
    import threading

    K, M, ml, un, uL, uH = _valley_step(n=16)
    serial = _limiter(K, M, ml)
    u_serial = serial.redistribute(uH, un)
    assert serial.settle < 1e-3 and np.any(uH < 0)  # undershoots to redistribute across the split
    N = K.shape[0]
    Kf = csr_pair_scipy(K)
    Mf = csr_pair_scipy(M, pattern=Kf)
    bounds = (0, N // 2, N)
    shared = {"vec": np.zeros(N), "sum": [None, None]}
    barrier = threading.Barrier(2)
    results: dict[int, np.ndarray] = {}

    def rank(r: int) -> None:
        lo, hi = bounds[r], bounds[r + 1]
        rows = np.arange(lo, hi)
        sl = slice(Kf.ia[lo], Kf.ia[hi])
        ia = Kf.ia[lo:hi + 1] - Kf.ia[lo]
        ja = Kf.ja[sl]
        Kp = CSRPair(ia, ja, Kf.rows[sl], Kf.a[sl], Kf.at[sl], lo)
        Mp = CSRPair(ia, ja, Mf.rows[sl], Mf.a[sl], Mf.at[sl], lo)
        layout = np.concatenate([rows, np.unique(ja[(ja < lo) | (ja >= hi)])])
        where = np.full(N, -1)
        where[layout] = np.arange(len(layout))

        def with_ghosts(v: np.ndarray) -> np.ndarray:
            barrier.wait()
            shared["vec"][rows] = v
            barrier.wait()
            out = shared["vec"][layout].copy()
            barrier.wait()
            return out

        def allsum(v: np.ndarray) -> np.ndarray:
            barrier.wait()
            shared["sum"][r] = np.asarray(v, dtype=float)
            barrier.wait()
            out = shared["sum"][0] + shared["sum"][1]
            barrier.wait()
            return out

        lim = FCTLimiter(Kp, Mp, ml[rows], where[ja], np.zeros(0, dtype=np.int64), with_ghosts=with_ghosts,
                         allsum=allsum)
        results[r] = lim.redistribute(uH[layout], un[layout])

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # equal up to the order of the two partial mass sums in the global factor
    np.testing.assert_allclose(np.concatenate([results[0], results[1]]), u_serial, rtol=1e-14, atol=0)


def test_unknown_method_is_refused():
    K, M, ml = _p1(2, np.eye(2))
    with pytest.raises(InputError, match="method='bjk'"):
        _limiter(K, M, ml, method="bjk")
