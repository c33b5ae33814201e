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
4. the limiter (below) chooses symmetric :math:`\alpha_{ij} = \alpha_{ji} \in [0, 1]` against the local
   bounds :math:`u^{\max}_i = \max_{j\in N(i)\cup\{i\}}\max(u^L_j, u^n_j)`, :math:`u^{\min}_i` likewise;
5. :math:`u^{n+1}_i = u^L_i + m_i^{-1}\sum_j \alpha_{ij}f_{ij}`.

Every choice of symmetric α keeps the lumped mass exactly (:math:`\alpha_{ij}f_{ij} = -\alpha_{ji}f_{ji}`);
α ≡ 1 gives the Galerkin target :math:`u^H`, α ≡ 0 the positive predictor :math:`u^L`.

**The default limiter, ``method="target"`` (limiting from the target).** Start from α ≡ 1 (the target)
and remove flux only at nodes whose value leaves its bounds. With the applied fluxes
:math:`a_{ij} = \alpha_{ij}f_{ij}`, :math:`u_i = u^L_i + m_i^{-1}\sum_j a_{ij}`, the excess
:math:`E^+_i = m_i(u_i - u^{\max}_i) > 0` or deficit :math:`E^-_i = m_i(u_i - u^{\min}_i) < 0`, and
:math:`P^\pm_i = \sum_j \max/\min(0, a_{ij})`, one sweep sets

.. math:: g^\pm_i = \min(1, E^\pm_i / P^\pm_i) \ (0 \text{ at nodes within their bounds}), \qquad
          a_{ij} \leftarrow (1 - c_{ij})\,a_{ij},\quad c_{ij} = \begin{cases}\max(g^+_i, g^-_j) & a_{ij} > 0\\
          \max(g^-_i, g^+_j) & a_{ij} < 0\end{cases}

(:math:`c_{ij} = c_{ji}`: α stays symmetric). :math:`g^+_i` is the fraction of the flux *into* i that
removes exactly its excess, :math:`g^-_j` that of the flux *out of* j that removes its deficit; both
ask to cut the same edges (an edge into an overfull node leaves a neighbour, which it raises), so
the cuts never conflict and α only decreases. Sweeps repeat until no node is outside its bounds
(beyond :math:`10^{-14}(|u^{\max}_i| + m_i^{-1}\sum_j|f_{ij}|)`, the round-off of the sum). The
limit is feasible: at a fixed point a node above its bound has no flux into it left, so
:math:`u_i = u^L_i + m_i^{-1}\sum_{a_{ij}<0} a_{ij} \le u^L_i \le u^{\max}_i`, a contradiction (and
likewise below). After ``max_iterations`` sweeps the cuts are over-relaxed (:math:`g^\pm` doubled each
further sweep, so within ≈ 50 more every violating node has the offending flux removed): the loop
ends in the bounds.

*Why this and not Zalesak.* Zalesak's :math:`R^+_i = \min(1, Q^+_i/P^+_i)` bounds the worst case that
only the fluxes into i are applied. In a thin valley oblique to the mesh (rank-1 D) the raw fluxes are
O(|D|) and of both signs at every node (they undo the predictor's O(|D|) discrete-upwind smearing,
which is not O(h): the low-order scheme is inconsistent there), so :math:`P^\pm_i \gg |\sum_j f_{ij}|`
and Zalesak cuts even where the target lies inside the bounds; iterated passes move a shrinking
fraction of the rest and stall with ≈ 1 % of the flux unapplied, i.e. with part of the O(|D|)
smearing, an error that does not fall under refinement (issue 12: E q 2.4328 / 2.4356 / 2.4627 on
48² / 96² / 192² against ≈ 2.419). Limiting from the target returns :math:`u^H` wherever it is within
the bounds (it is *target preserving*), so the scheme is the second-order Galerkin scheme except at
the nodes where Galerkin leaves the bounds (its undershoots in the tails, clipped peaks), where the
excess is moved to the neighbours that have room. It has the admissible set, positivity and mass
exactness of one Zalesak pass with the same bounds, costs one bounds gather plus one O(nnz) sweep per
round of violations (a step whose target is within bounds costs one check), and it is the
closed-form, local counterpart of optimisation-based flux correction (find the symmetric α closest to
1 within the bounds; Kuzmin et al., arXiv:2110.09912, show that it beats worst-case closed-form
limiting on anisotropic diffusion) and of Kuzmin, Möller, Shadid & Shashkov's failsafe limiting
(J. Comput. Phys. 229, 2010: reduce α at nodes that violate the bounds, starting here from α ≡ 1).
Monolithic convex limiting (bar states) was not taken: for anisotropic diffusion with implicit steps
it is a nonlinear system per step (several solves), over the 3× budget; Kuzmin's prelimiting
(:math:`f_{ij} \to 0` where it runs down the gradient) destroys the oblique diffusion itself (E q
3.05 on the valley, ``docs/internals.md``).

``method="zalesak"`` keeps the previous limiter: Zalesak's :math:`R^\pm_i = \min(1, Q^\pm_i/P^\pm_i)`,
:math:`Q^\pm_i = m_i(u^{\max/\min}_i - u^L_i)`, :math:`\alpha_{ij} = \min(R^+_i, R^-_j)` for
:math:`f_{ij} > 0`, else :math:`\min(R^-_i, R^+_j)`, the pass repeated on the remaining fluxes
:math:`(1-\alpha_{ij})f_{ij}` (bounds from the corrected iterate) until a pass moves, or leaves, less
than ``tol`` × :math:`\sum|f_{ij}|` (at most ``max_iterations``).

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
#: a node counts as outside its bounds beyond this × (|u_max| + Σ_j |f_ij| / m_i): the round-off of the sum
BOUND_EPS = 1e-14


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
        max_iterations: ``"target"``: sweeps with exact cuts before the over-relaxed ones (the loop
            always ends within the bounds); ``"zalesak"``: most passes per step.
        tol: ``"zalesak"`` only: stop when a pass moves, or leaves, less than ``tol`` × the raw flux
            :math:`\sum|f_{ij}|` (``"target"`` stops when every node is within its bounds).
        method: ``"target"`` (default: limiting from the target) or ``"zalesak"`` (iterated Zalesak).

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
            The owned values of :math:`u^{n+1}` (≥ 0, :math:`\sum_i m_i u^{n+1}_i = \sum_i m_i u^H_i`).
        """
        n, ml, starts, col = self.n_owned, self.ml, self.starts, self.col
        v = np.array(uH[:n], dtype=float, copy=True)
        bc = self.bc_local
        if len(bc):
            v[bc] = 0.0
        w = np.maximum(v, 0.0)
        deficit = ml * (w - v)
        avail = ml * w
        change = float(ml @ np.abs(v - np.asarray(un, dtype=float)[:n]))
        mass0, moved, total = self.allsum(np.array([float(ml @ v), float(deficit.sum()), change]))
        self.iterations += 1
        self._sum_af += max(total - 2.0 * moved, 0.0)
        self._sum_f += total
        if moved == 0.0:
            return w
        avail_all = np.add.reduceat(self.with_ghosts(avail)[col], starts)  # S_i
        with np.errstate(divide="ignore", invalid="ignore"):
            phi = np.where(deficit > 0, np.minimum(1.0, deficit / avail_all), 0.0)
        phi[~np.isfinite(phi)] = 0.0
        give = np.minimum(1.0, np.add.reduceat(self.with_ghosts(phi)[col], starts))
        u = w * (1.0 - give)
        mass1 = self.allsum(np.array([float(ml @ u)]))[0]
        if mass1 > 0:
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
        r"""Flux-weighted mean of :math:`\alpha_{ij}` over the run (1: no limiting; collective)."""
        s = self.allsum(np.array([self._sum_af, self._sum_f]))
        return float(s[0] / s[1]) if s[1] > 0 else 1.0
