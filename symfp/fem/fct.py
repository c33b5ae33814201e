r"""Algebraic flux correction (Kuzmin's FEM-FCT), backend-neutral: numpy on CSR arrays.

Semi-discrete Galerkin P1 (high order): :math:`M_C\dot u + K u = 0` with the consistent mass matrix
:math:`M_C` and the operator matrix K (:math:`\mathbf 1^\top K = 0`: mass conservation). Low order:
:math:`M_L\dot u + K_L u = 0`, :math:`M_L = \mathrm{diag}(m_i)`, :math:`K_L = K + \mathcal D` with
Kuzmin's discrete upwinding :math:`\mathcal D_{ij} = -d_{ij}`, :math:`d_{ij} = \max(0, k_{ij}, k_{ji})`
(zero row and column sums). :math:`M_L + \Delta t K_L` is an M-matrix: backward Euler keeps u ≥ 0.

**One step** :math:`u^n \mapsto u^{n+1}` (steps 1 and 3 are Zalesak's only):

1. low-order predictor :math:`(M_L + \Delta t K_L)u^L = M_L u^n`;
2. high-order target :math:`(M_C + \theta\Delta t K)u^H = (M_C - (1-\theta)\Delta t K)u^n`
   (θ = ½ Crank–Nicolson, θ = 1 backward Euler);
3. raw antidiffusive fluxes, with :math:`\Delta = u^H - u^n`, :math:`w = u^L - (\theta u^H +
   (1-\theta)u^n)`: :math:`f_{ij} = m_{ij}(\Delta_i - \Delta_j) + \Delta t\,d_{ij}(u^L_i - u^L_j) +
   \Delta t(k_{ij}w_j - k_{ji}w_i) = -f_{ji}`, so that :math:`\sum_j f_{ij} = m_i(u^H_i - u^L_i)`
   exactly (the zero column sums of K);
4. a limiter makes :math:`u^{n+1}` positive and keeps :math:`\sum_i m_i u^{n+1}_i` exactly.

**The default limiter, ``method="redistribute"``** (positivity-preserving redistribution of the
target; no predictor, so steps 1 and 3 are skipped). With the target :math:`v = u^H` (absorbing
nodes 0), :math:`w = \max(v, 0)` and the clipped mass (the *debt*) :math:`d_i = m_i(w_i - v_i) \ge 0`,
each round, with the mass of every stencil :math:`S_i = \sum_{j \in N(i)\cup\{i\}} m_j w_j`, lets a
node in debt take the fraction :math:`\varphi_i = \min(1, d_i/S_i)` of the mass of its stencil:

.. math:: w_j \leftarrow w_j\Bigl(1 - \min\bigl(1, \textstyle\sum_{i \in N(j)\cup\{j\}} \varphi_i\bigr)\Bigr),
          \qquad d_i \leftarrow d_i - \varphi_i S_i\,\frac{G}{A},

(G the mass taken, A = :math:`\sum_i \varphi_i S_i` the mass asked: a node asked by several gives at
most all it has), and what is still owed moves on to the neighbours in proportion to the mass of
their stencils, :math:`d_j \leftarrow S_j\sum_{i \in N(j)} d_i / \sum_{k \in N(i)} S_k`, to take from
the next ring. After at most :data:`REDISTRIBUTE_ROUNDS` rounds (``max_iterations`` if smaller), or
when the debt left is below ``tol`` × the clipped mass, :math:`u^{n+1} = c\,w` with the one factor
:math:`c = \sum_i m_i u^n_i / \sum_i m_i w_i` (without absorbing parts, where :math:`\mathbf 1^\top K
= 0` makes that the exact mass; else :math:`\sum_i m_i u^H_i`). So :math:`u^{n+1} \ge 0` exactly,
the mass is exact to round-off whatever the solver's tolerance, and :math:`u^{n+1} = c\,u^H` beyond
the few rings around the undershoots: the scheme is the second-order Galerkin scheme with its
negative undershoots filled from the adjacent positive mass. c settles only what the rounds left
(:math:`|c - 1| \le` 7e-7 / 7e-6 on the valley below at 48² / 96², against 2e-4 with one round).
Cost: one Galerkin solve and ≤ 3 rounds of O(nnz) work (stencil sums as SpMVs with a 0/1 matrix),
against two solves and 5–20 Zalesak passes: 1.3× / 1.6× the Galerkin CN step on the 96² valley
(scikit-fem / dolfinx, ``benchmarks/bench_fct.py``, one run under load), 3.2× / 6.2× on 48² where a
step costs ~1 ms and the rounds' fixed per-call overhead dominates. It
does not enforce local extremum bounds (a positive oscillation of the target stays): the density is
what must stay ≥ 0.

*Why this and not Zalesak (measured, linear-network SME of issue 12 at t = 5, dt = 0.05, CN, E q
against the Galerkin reference 3.234148 Richardson-extrapolated from 96²/192², its own error ≈ 4e-5;
scikit-fem backend, machine under load).* The upwind predictor's smearing of an oblique rank-1 D is
O(|D|), not O(h) (the low-order scheme is inconsistent there), so the antidiffusive fluxes must carry
mass across several cells, and against local bounds (Zalesak's :math:`u^{\max/\min}` of
:math:`u^L, u^n`) a limiter that corrects locally needs O(1/h) passes: Zalesak's default passes
(10.6 / 21.3 per step on 48² / 96²) stop with part of the smearing kept, |error| 6.2e-3 / 8.6e-3
(growing); cutting flux from the target at the nodes outside those bounds (failsafe-type sweeps)
needed 89 / 110 sweeps per step and was worse (1.0e-1 / 3.8e-1): the bounds in the far tails leave no
room and each cut travels one ring per sweep. With the bound p ≥ 0 instead the mass of an undershoot
is next to it: |error| 1.01e-2 / 3.15e-3 / 6.87e-4 / 7.5e-5 on 24² / 48² / 96² / 192² (rates 1.7,
2.2, 3.2; Galerkin's own errors 6.6e-4 / 1.6e-4 on 48² / 96²); 2 rounds instead of 3 gave 9.6e-5 on
192², 4 rounds 7.1e-5. Adding the upper bound
:math:`\max_{N(i)} u^n` (the excess moved into the neighbours' room) clipped the growing peak: 1.06e-3
on 192². Monolithic convex limiting (bar states) was not taken: with implicit steps it is a nonlinear
system per step (several solves), over the 3× budget; Kuzmin's prelimiting destroys the oblique
diffusion (E q off by 0.6, ``docs/internals.md``).

``method="zalesak"`` keeps the previous FEM-FCT: predictor :math:`u^L`, the raw fluxes of step 3 and
Zalesak's :math:`R^\pm_i = \min(1, Q^\pm_i/P^\pm_i)`, :math:`P^\pm_i = \sum_j \max/\min(0, f_{ij})`,
:math:`Q^\pm_i = m_i(u^{\max/\min}_i - u^L_i)` with the local bounds :math:`u^{\max}_i =
\max_{j\in N(i)\cup\{i\}}\max(u^L_j, u^n_j)` (:math:`u^{\min}_i` likewise), :math:`\alpha_{ij} =
\min(R^+_i, R^-_j)` for :math:`f_{ij} > 0`, else :math:`\min(R^-_i, R^+_j)`, :math:`u^{n+1}_i = u^L_i +
m_i^{-1}\sum_j \alpha_{ij}f_{ij}`, the pass repeated on the remaining fluxes
:math:`(1-\alpha_{ij})f_{ij}` (bounds from the corrected iterate) until a pass moves, or leaves, less
than ``tol`` × :math:`\sum|f_{ij}|` (at most ``max_iterations``). It keeps local bounds, at the cost
above.

The solves of steps 1–2 and the exchange of values at off-process columns are the backend's: a
backend passes ``with_ghosts`` (owned values → owned + off-process column values; the identity in
serial) and ``allsum`` (a global sum). :class:`FCTLimiter` does steps 3–5 and is shared by the dolfinx
backend (PETSc matrices, MPI) and the scikit-fem backend (scipy.sparse, serial).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class CSRPair:
    """Locally owned rows of a square matrix A and the matching entries of Aᵀ.

    Attributes:
        ia: row pointer (local rows).
        ja: global column indices.
        rows: the global row index of every stored entry.
        a: the values :math:`a_{ij}`.
        at: the values :math:`a_{ji}` at the same positions (0 where the pattern has no (j, i)).
        rstart: first owned global row.
    """

    ia: np.ndarray
    ja: np.ndarray
    rows: np.ndarray
    a: np.ndarray
    at: np.ndarray
    rstart: int


def lookup(key_src: np.ndarray, val_src: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Values of ``val_src`` at the entries whose ``key_src`` equals ``key`` (0 where absent)."""
    out = np.zeros(len(key))
    if not len(key_src):
        return out
    if np.any(np.diff(key_src) <= 0):
        order = np.argsort(key_src, kind="stable")
        key_src, val_src = key_src[order], val_src[order]
    pos = np.minimum(np.searchsorted(key_src, key), len(key_src) - 1)
    hit = key_src[pos] == key
    out[hit] = val_src[pos[hit]]
    return out


def csr_pair_scipy(A: Any, pattern: CSRPair | None = None) -> CSRPair:
    """A :class:`CSRPair` of a scipy.sparse matrix (serial: every row owned).

    With ``pattern`` the values are aligned to that pattern's entries (zero where A has none).
    """
    import scipy.sparse as sps

    A = sps.csr_matrix(A)
    A.sort_indices()
    n = A.shape[1]
    At = sps.csr_matrix(A.T)
    At.sort_indices()

    def keyed(M: Any) -> tuple[np.ndarray, np.ndarray]:
        rows = np.repeat(np.arange(M.shape[0], dtype=np.int64), np.diff(M.indptr))
        return rows * n + M.indices.astype(np.int64), rows

    key_a, rows_a = keyed(A)
    key_b, _ = keyed(At)
    if pattern is None:
        return CSRPair(A.indptr.astype(np.int64), A.indices.astype(np.int64), rows_a, A.data.copy(),
                       lookup(key_b, At.data, key_a), 0)
    key_p = pattern.rows.astype(np.int64) * n + pattern.ja
    return CSRPair(pattern.ia, pattern.ja, pattern.rows, lookup(key_a, A.data, key_p),
                   lookup(key_b, At.data, key_p), 0)


def upwind_diffusion(K: CSRPair) -> np.ndarray:
    r"""Kuzmin's :math:`d_{ij} = \max(0, k_{ij}, k_{ji})` off the diagonal, 0 on it (symmetric exactly)."""
    off = K.rows != K.ja
    return np.where(off, np.maximum(0.0, np.maximum(K.a, K.at)), 0.0)


def discrete_upwind_scipy(K: Any) -> Any:
    r""":math:`K_L = K + \mathcal D` (scipy.sparse CSR): no positive off-diagonal, same column sums."""
    import scipy.sparse as sps

    P = csr_pair_scipy(K)
    d = upwind_diffusion(P)
    new = P.a - d
    row_sum = np.add.reduceat(d, P.ia[:-1]) if len(d) else np.zeros(0)
    row_sum[np.diff(P.ia) == 0] = 0.0
    diag = P.rows == P.ja
    new[diag] += row_sum[P.rows[diag]]
    return sps.csr_matrix((new, P.ja, P.ia), shape=K.shape)


def _serial_ghosts(owned: np.ndarray) -> np.ndarray:
    return np.array(owned, dtype=float, copy=True)


def _serial_sum(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=float)


METHODS = ("redistribute", "zalesak")
#: most rounds of :meth:`FCTLimiter.redistribute` (each takes the debt one stencil ring further)
REDISTRIBUTE_ROUNDS = 3


class FCTLimiter:
    r"""Steps 3–5 of the module docstring on the owned rows of the sparsity pattern of K.

    Args:
        K: :class:`CSRPair` of the Galerkin operator matrix (before upwinding).
        M: :class:`CSRPair` of the consistent mass matrix aligned to K's pattern.
        ml: lumped mass :math:`m_i` of the owned rows.
        col_local: for every stored entry, the index of its column in the ``with_ghosts`` layout
            (owned columns first, then the off-process ones).
        bc_local: owned local rows with p = 0 (absorbing).
        with_ghosts: owned values → owned + off-process column values (collective; default serial).
        allsum: global sum of a small array (collective; default serial).
        max_iterations, tol: ``"zalesak"`` only (``"redistribute"`` is one sweep): most passes per step,
            and stop when a pass moves, or leaves, less than ``tol`` × the raw flux :math:`\sum|f_{ij}|`.
        method: ``"redistribute"`` (default: the target made positive, its clipped mass taken from the
            stencil, :meth:`redistribute`) or ``"zalesak"`` (the iterated Zalesak FCT).

    Raises:
        InputError: unknown ``method``.
    """

    def __init__(self, K: CSRPair, M: CSRPair, ml: np.ndarray, col_local: np.ndarray,
                 bc_local: np.ndarray, *, with_ghosts: Callable[[np.ndarray], np.ndarray] | None = None,
                 allsum: Callable[[np.ndarray], np.ndarray] | None = None, max_iterations: int = 50,
                 tol: float = 1e-3, method: str = "redistribute"):
        if method not in METHODS:
            raise InputError(f"FCT limiter: method={method!r} is not one of {', '.join(METHODS)}")
        self.method = method
        self.with_ghosts = with_ghosts or _serial_ghosts
        self.allsum = allsum or _serial_sum
        self.max_iterations, self.tol = int(max_iterations), float(tol)
        self.iterations = 0
        n = len(K.ia) - 1
        self.n_owned = n
        self.row = (K.rows - K.rstart).astype(np.int64)
        self.col = np.asarray(col_local, dtype=np.int64)
        self.off = K.rows != K.ja
        self.starts = K.ia[:-1].astype(np.int64)
        # the stencil of each owned row as a (width, n) table, short rows padded with the row's own index
        # (the diagonal is in every row, so the padding changes no max/min): Zalesak's bounds become
        # column-wise maxima of one gather instead of a reduceat over row segments
        counts = np.diff(K.ia).astype(np.int64)
        width = int(counts.max()) if len(counts) else 0
        slot = np.arange(len(self.col)) - np.repeat(self.starts, counts)
        self._stencil = np.tile(np.arange(n, dtype=np.int64), (width, 1))
        self._stencil[slot, self.row] = self.col
        # interleaved R± (R+ at 2k, R- at 2k+1): α_ij = min(RR[2i + (f ≤ 0)], RR[2j + (f > 0)])
        self._row2, self._col2 = 2 * self.row, 2 * self.col
        self.m_ij = np.where(self.off, 0.5 * (M.a + M.at), 0.0)
        self.set_operator(K)
        self._k_prev: tuple[np.ndarray, np.ndarray] | None = None
        self.ml = np.asarray(ml, dtype=float)[:n].copy()
        self.bc_local = np.asarray(bc_local, dtype=np.int64)
        self._sum_af = 0.0
        self._sum_f = 0.0
        #: largest |c - 1| of :meth:`redistribute`'s global settling factor so far (0: all local)
        self.settle = 0.0
        self._absorbing = bool(self.allsum(np.array([float(len(self.bc_local))]))[0] > 0)
        # the stencil as sparse 0/1 matrices (owned rows × ghosted columns): stencil sums are one SpMV
        import scipy.sparse as sps

        ng = int(self.col.max()) + 1 if len(self.col) else n
        ones = np.ones(len(self.col))
        self._adj = sps.csr_matrix((ones, self.col, K.ia.astype(np.int64)), shape=(n, ng))
        self._adj_off = sps.csr_matrix((np.where(self.off, 1.0, 0.0), self.col, K.ia.astype(np.int64)),
                                       shape=(n, ng))

    def set_operator(self, K: CSRPair, keep_previous: bool = False) -> None:
        """The Galerkin K (same pattern); with ``keep_previous`` the old one is :math:`K(t_n)`."""
        if keep_previous:
            self._k_prev = (self.k_ij, self.k_ji)
        self.d_ij = upwind_diffusion(K)
        self.k_ij = np.where(self.off, K.a, 0.0)
        self.k_ji = np.where(self.off, K.at, 0.0)

    def fluxes(self, un: np.ndarray, uL: np.ndarray, uH: np.ndarray, dt: float, theta: float) -> np.ndarray:
        r"""Raw antidiffusive fluxes of a θ-scheme target (step 3), arguments in the ghosted layout."""
        i, j = self.row, self.col
        th = theta
        delta = uH - un
        w = uL - (th * uH + (1.0 - th) * un)
        f = self.m_ij * (delta[i] - delta[j]) + dt * self.d_ij * (uL[i] - uL[j]) \
            + dt * (self.k_ij * w[j] - self.k_ji * w[i])
        if self._k_prev is not None and th < 1:  # time-dependent K: K(t_n) on the explicit side
            k0_ij, k0_ji = self._k_prev
            f += dt * (1.0 - th) * ((self.k_ij - k0_ij) * un[j] - (self.k_ji - k0_ji) * un[i])
        return f

    def fluxes_bdf2(self, r: np.ndarray, uL: np.ndarray, uH: np.ndarray, dt: float) -> np.ndarray:
        r"""Raw fluxes of a BDF2 target with the lumped BDF2 predictor, :math:`r = 2u^n - u^{n-1}/2`.

        Predictor :math:`(\tfrac32 M_L + \Delta t K_L)u^L = M_L r`, target :math:`(\tfrac32 M_C + \Delta t
        K)u^H = M_C r`; then :math:`\tfrac32 M_L(u^H - u^L) = (M_L - M_C)g + \Delta t\,\mathcal D u^L +
        \Delta t K(u^L - u^H)` with :math:`g = \tfrac32 u^H - r`, so :math:`f_{ij} = \tfrac23[m_{ij}(g_i -
        g_j) + \Delta t\,d_{ij}(u^L_i - u^L_j) + \Delta t(k_{ij}w_j - k_{ji}w_i)]`, :math:`w = u^L - u^H`,
        sums to :math:`m_i(u^H_i - u^L_i)` exactly.
        """
        i, j = self.row, self.col
        g = 1.5 * uH - r
        w = uL - uH
        return (2.0 / 3.0) * (self.m_ij * (g[i] - g[j]) + dt * self.d_ij * (uL[i] - uL[j])
                              + dt * (self.k_ij * w[j] - self.k_ji * w[i]))

    def correct(self, un: np.ndarray, uL: np.ndarray, uH: np.ndarray, dt: float, theta: float) -> np.ndarray:
        """Limited correction of the predictor; arguments in the ``with_ghosts`` layout, returns owned."""
        return self.limit(self.fluxes(un, uL, uH, dt, theta), un, uL)

    def limit(self, f: np.ndarray, un: np.ndarray, uL: np.ndarray) -> np.ndarray:
        """Steps 4–5 with the limiter of ``method``; arguments ghosted, returns the owned values."""
        if self.method == "redistribute":
            n = self.n_owned
            uH = np.asarray(uL, dtype=float)[:n] + np.add.reduceat(f, self.starts) / self.ml
            return self.redistribute(self.with_ghosts(uH), un)
        return self._limit_zalesak(f, un, uL)

    def redistribute(self, uH: np.ndarray, un: np.ndarray) -> np.ndarray:
        r"""The target with its negative values clipped and their mass taken from the stencil (docstring).

        Args:
            uH: the high-order target, ghosted layout.
            un: the previous step's values, ghosted layout (for the statistics of :meth:`mean_alpha`).

        Returns:
            The owned values of :math:`u^{n+1}`: ≥ 0, with the mass :math:`\sum_i m_i u^n_i` (absorbing
            parts: :math:`\sum_i m_i u^H_i`).
        """
        n, ml = self.n_owned, self.ml
        v = np.array(uH[:n], dtype=float, copy=True)
        bc = self.bc_local
        if len(bc):
            v[bc] = 0.0
        w = np.maximum(v, 0.0)
        deficit = ml * (w - v)
        u_old = np.asarray(un, dtype=float)[:n]
        sums = [float(ml @ v), float(deficit.sum()), float(ml @ np.abs(v - u_old)), float(ml @ u_old)]
        mass_v, moved, total, mass_n = self.allsum(np.array(sums))
        # without absorbing parts the exact mass is that of u^n (1ᵀK = 0); the target has it up to the
        # residual of its (iterative) solve, which the final factor removes as well
        mass0 = mass_v if self._absorbing else mass_n
        self._sum_af += max(total - 2.0 * moved, 0.0)
        self._sum_f += total
        if moved == 0.0:
            return w * (mass0 / mass_v) if mass_v > 0 else w
        u, debt, left = w, deficit, moved
        A, A_off, ghosts = self._adj, self._adj_off, self.with_ghosts
        S = A @ ghosts(ml * u)  # mass of the stencil of i
        rounds = min(self.max_iterations, REDISTRIBUTE_ROUNDS)
        for k in range(rounds):
            with np.errstate(divide="ignore", invalid="ignore"):
                phi = np.where((debt > 0) & (S > 0), np.minimum(1.0, debt / S), 0.0)
            give = np.minimum(1.0, A @ ghosts(phi))
            taken = give * ml * u
            u = u * (1.0 - give)
            asked = phi * S
            got, want = self.allsum(np.array([float(taken.sum()), float(asked.sum())]))
            # what each request got (the same share everywhere: a node asked by several gave at most all)
            debt = np.maximum(debt - asked * (got / want if want > 0 else 0.0), 0.0)
            left -= got
            self.iterations += 1
            if left <= self.tol * moved or k + 1 == rounds:
                break
            # the rest of the debt moves on to the neighbours in proportion to the mass of their
            # stencils (towards the mass), to take from the next ring
            S = A @ ghosts(ml * u)  # (also the next round's)
            near = A_off @ ghosts(S)
            with np.errstate(divide="ignore", invalid="ignore"):
                share = np.where((debt > 0) & (near > 0), debt / near, 0.0)
            kept = np.where(near > 0, 0.0, debt)  # no mass around: the debt stays (and settles globally)
            debt = S * (A_off @ ghosts(share)) + kept
        mass1 = self.allsum(np.array([float(ml @ u)]))[0]
        if mass1 > 0:
            self.settle = max(self.settle, abs(mass0 / mass1 - 1.0))
            u *= mass0 / mass1
        return u

    def _bounds(self, un: np.ndarray, uL: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Local bounds over the stencil of every owned row (column max/min of one padded gather)."""
        return (np.maximum(uL, un)[self._stencil].max(axis=0), np.minimum(uL, un)[self._stencil].min(axis=0))

    def _zalesak_factors(self, f: np.ndarray, base: np.ndarray, hi: np.ndarray,
                         lo: np.ndarray) -> np.ndarray:
        r"""Zalesak's :math:`R^\pm` of every owned row from ``base`` (owned), ghosted and interleaved."""
        ml, starts = self.ml, self.starts
        P_plus = np.add.reduceat(np.maximum(f, 0.0), starts)
        P_minus = np.add.reduceat(np.minimum(f, 0.0), starts)
        with np.errstate(divide="ignore", invalid="ignore"):
            R_plus = np.where(P_plus > 0, np.minimum(1.0, ml * (hi - base) / P_plus), 1.0)
            R_minus = np.where(P_minus < 0, np.minimum(1.0, ml * (lo - base) / P_minus), 1.0)
        R_plus = np.clip(R_plus, 0.0, 1.0)
        R_minus = np.clip(R_minus, 0.0, 1.0)
        if len(self.bc_local):
            R_plus[self.bc_local] = 1.0
            R_minus[self.bc_local] = 1.0
        Rp, Rm = self.with_ghosts(R_plus), self.with_ghosts(R_minus)
        RR = np.empty(2 * len(Rp))
        RR[0::2], RR[1::2] = Rp, Rm
        return RR

    def _limit_zalesak(self, f: np.ndarray, un: np.ndarray, uL: np.ndarray, *, f_total: float | None = None,
                       passes: int | None = None) -> np.ndarray:
        r"""Zalesak's limiter iterated on the remaining fluxes from ``uL`` (ghosted); returns owned values.

        With ``f_total`` (the raw flux of the step, its share of :math:`\sum|f_{ij}|` already counted)
        the passes continue another limiter's work and ``tol`` is relative to it.
        """
        n = self.n_owned
        ml = self.ml
        cur = np.array(uL, dtype=float, copy=True)
        counted = f_total is not None
        for it in range(self.max_iterations if passes is None else passes):
            ext_hi = np.maximum(cur, un)
            ext_lo = np.minimum(cur, un)
            umax = ext_hi[self._stencil].max(axis=0)
            umin = ext_lo[self._stencil].min(axis=0)
            RR = self._zalesak_factors(f, cur[:n], umax, umin)
            pos = f > 0
            alpha = np.minimum(RR[self._row2 + ~pos], RR[self._col2 + pos])
            af = alpha * f
            rest = f - af
            local = np.array([float(np.abs(af).sum()), float(np.abs(f).sum()) if not counted else 0.0,
                              float(np.abs(rest).sum())])
            moved, first, left = self.allsum(local)
            if not counted:
                f_total, counted = first, True
                self._sum_f += float(local[1])
            self._sum_af += float(local[0])
            self.iterations += 1
            cur[:n] = cur[:n] + np.add.reduceat(af, self.starts) / ml
            if len(self.bc_local):
                # absorbing nodes keep p = 0 (left in cur, an unlimited value would become a negative
                # bound of their neighbours in the next pass)
                cur[self.bc_local] = 0.0
            f = rest
            if it + 1 == (self.max_iterations if passes is None else passes) \
                    or min(moved, left) <= self.tol * f_total:
                break
            cur = self.with_ghosts(cur[:n])
        return cur[:n].copy()

    def mean_alpha(self) -> float:
        r"""How much of the high-order step was kept over the run (1: no limiting; collective).

        ``"zalesak"``: the flux-weighted mean of :math:`\alpha_{ij}`; ``"redistribute"``: 1 − 2 × the clipped
        mass / :math:`\sum_i m_i|u^H_i - u^n_i|` (the clipped mass is added once and taken once).
        """
        s = self.allsum(np.array([self._sum_af, self._sum_f]))
        return float(s[0] / s[1]) if s[1] > 0 else 1.0
