r"""Algebraic flux correction (Kuzmin's FEM-FCT), backend-neutral: numpy on CSR arrays.

Semi-discrete Galerkin P1 (high order): :math:`M_C\dot u + K u = 0` with the consistent mass matrix
:math:`M_C` and the operator matrix K (:math:`\mathbf 1^\top K = 0`: mass conservation). Low order:
:math:`M_L\dot u + K_L u = 0`, :math:`M_L = \mathrm{diag}(m_i)`, :math:`K_L = K + \mathcal D` with
Kuzmin's discrete upwinding :math:`\mathcal D_{ij} = -d_{ij}`, :math:`d_{ij} = \max(0, k_{ij}, k_{ji})`
(zero row and column sums). :math:`M_L + \Delta t K_L` is an M-matrix: backward Euler keeps u ≥ 0.

**One step** :math:`u^n \mapsto u^{n+1}`:

1. low-order predictor :math:`(M_L + \Delta t K_L)u^L = M_L u^n`;
2. high-order target :math:`(M_C + \theta\Delta t K)u^H = (M_C - (1-\theta)\Delta t K)u^n`
   (θ = ½ Crank–Nicolson, θ = 1 backward Euler);
3. raw antidiffusive fluxes, with :math:`\Delta = u^H - u^n`, :math:`w = u^L - (\theta u^H +
   (1-\theta)u^n)`: :math:`f_{ij} = m_{ij}(\Delta_i - \Delta_j) + \Delta t\,d_{ij}(u^L_i - u^L_j) +
   \Delta t(k_{ij}w_j - k_{ji}w_i) = -f_{ji}`, so that :math:`\sum_j f_{ij} = m_i(u^H_i - u^L_i)`
   exactly (the zero column sums of K);
4. Zalesak's limiter against the local bounds :math:`u^{\max/\min}_i` of :math:`u^L` and
   :math:`u^n` over the stencil: :math:`P^\pm_i = \sum_j \max/\min(0, f_{ij})`,
   :math:`Q^\pm_i = m_i(u^{\max/\min}_i - u^L_i)`, :math:`R^\pm_i = \min(1, Q^\pm_i/P^\pm_i)`,
   :math:`\alpha_{ij} = \min(R^+_i, R^-_j)` for :math:`f_{ij} > 0`, else :math:`\min(R^-_i, R^+_j)`;
5. :math:`u^{n+1}_i = u^L_i + m_i^{-1}\sum_j \alpha_{ij}f_{ij}`, the pass repeated on the remaining
   fluxes :math:`(1-\alpha_{ij})f_{ij}` until a pass moves, or leaves, less than ``tol`` ×
   :math:`\sum|f_{ij}|` (at most ``max_iterations``).

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
        max_iterations: most limiter passes per step.
        tol: stop when a pass moves, or leaves, less than ``tol`` × the raw flux :math:`\sum|f_{ij}|`.
    """

    def __init__(self, K: CSRPair, M: CSRPair, ml: np.ndarray, col_local: np.ndarray,
                 bc_local: np.ndarray, *, with_ghosts: Callable[[np.ndarray], np.ndarray] | None = None,
                 allsum: Callable[[np.ndarray], np.ndarray] | None = None, max_iterations: int = 50,
                 tol: float = 1e-3):
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
        """Steps 4–5: Zalesak's limiter iterated on the remaining fluxes; returns the owned values."""
        n = self.n_owned
        ml = self.ml
        cur = np.array(uL, dtype=float, copy=True)
        f_total = None
        for it in range(self.max_iterations):
            ext_hi = np.maximum(cur, un)
            ext_lo = np.minimum(cur, un)
            umax = ext_hi[self._stencil].max(axis=0)
            umin = ext_lo[self._stencil].min(axis=0)
            P_plus = np.add.reduceat(np.maximum(f, 0.0), self.starts)
            P_minus = np.add.reduceat(np.minimum(f, 0.0), self.starts)
            Q_plus = ml * (umax - cur[:n])
            Q_minus = ml * (umin - cur[:n])
            with np.errstate(divide="ignore", invalid="ignore"):
                R_plus = np.where(P_plus > 0, np.minimum(1.0, Q_plus / P_plus), 1.0)
                R_minus = np.where(P_minus < 0, np.minimum(1.0, Q_minus / P_minus), 1.0)
            R_plus = np.clip(R_plus, 0.0, 1.0)
            R_minus = np.clip(R_minus, 0.0, 1.0)
            if len(self.bc_local):
                R_plus[self.bc_local] = 1.0
                R_minus[self.bc_local] = 1.0
            Rp, Rm = self.with_ghosts(R_plus), self.with_ghosts(R_minus)
            if Rp.min() == 1.0 and Rm.min() == 1.0:
                af, rest = f, np.zeros_like(f)
            else:
                RR = np.empty(2 * len(Rp))
                RR[0::2], RR[1::2] = Rp, Rm
                pos = f > 0
                alpha = np.minimum(RR[self._row2 + ~pos], RR[self._col2 + pos])
                af = alpha * f
                rest = f - af
            local = np.array([float(np.abs(af).sum()), float(np.abs(f).sum()) if it == 0 else 0.0,
                              float(np.abs(rest).sum())])
            moved, first, left = self.allsum(local)
            if it == 0:
                f_total = first
                self._sum_f += float(local[1])
            self._sum_af += float(local[0])
            self.iterations += 1
            cur[:n] = cur[:n] + np.add.reduceat(af, self.starts) / ml
            if len(self.bc_local):
                # absorbing nodes keep p = 0 (left in cur, an unlimited value would become a negative
                # bound of their neighbours in the next pass)
                cur[self.bc_local] = 0.0
            f = rest
            if it + 1 == self.max_iterations or min(moved, left) <= self.tol * f_total:
                break
            cur = self.with_ghosts(cur[:n])
        return cur[:n].copy()

    def mean_alpha(self) -> float:
        r"""Flux-weighted mean of :math:`\alpha_{ij}` over the run (1: no limiting; collective)."""
        s = self.allsum(np.array([self._sum_af, self._sum_f]))
        return float(s[0] / s[1]) if s[1] > 0 else 1.0
