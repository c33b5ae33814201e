r"""Stabilised forms of the scikit-fem backend: SUPG (forward and P2 exit time) and the Gibbs form.

The same methods as :mod:`symfp.fem.dolfinx.stabilise` (see there for what each does and when it is
accurate), with the one SUPG weight :func:`symfp.fem.stabilisation.supg_weight`:

* :func:`supg_forward` — the forward SUPG terms: test functions :math:`v + \delta_K\,c\cdot\nabla v`
  on the whole residual :math:`\partial_t p + c\cdot\nabla p + (\nabla\cdot c)p - (\nabla\cdot
  D)\cdot\nabla p` (P1: the :math:`D:\nabla^2 p` part vanishes), :math:`\delta_K` with
  :math:`|c|`, the streamline diffusion :math:`c^\top Dc/|c|^2` and :math:`h_K` (longest edge), as
  the dolfinx backend's ``CellDiameter``. Returns the extra mass and operator matrices. Their column
  sums vanish (:math:`\sum_i c\cdot\nabla\varphi_i = 0`), so the mass :math:`\sum_i m_i u_i` is
  conserved exactly as with Galerkin.
* :func:`hessian_supg` — the second-order part :math:`-\sum_K\int_K \delta_K (a\cdot\nabla v)
  (D:\nabla^2 u)` of the exit-time SUPG residual for degree ≥ 2. scikit-fem's Lagrange elements carry
  no Hessians; on affine cells the gradient of a P2 basis function is affine, so its (constant)
  Hessian is recovered exactly by a least-squares affine fit of the gradient at the quadrature points
  of each cell, and the term assembled element by element.
* :func:`gibbs_weight` — the nodal :math:`\ln\rho` of the Gibbs-symmetrised form and its range
  check (the weight :math:`\exp(\ln\rho - \max_h\ln\rho)` must stay within double precision, the
  same limit :data:`GIBBS_MIN_RATIO` as the dolfinx backend).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import sympy as sp

from ...errors import InputError
from ..stabilisation import GIBBS_MIN_RATIO, supg_weight
from . import require_skfem
from .coefficients import lambdify


def _coords(w: Any) -> np.ndarray:
    x = w.x
    return getattr(x, "value", x)


def supg_forward(c: sp.Matrix, D: sp.Matrix, state: tuple[sp.Symbol, ...], basis: Any, h: np.ndarray, *,
                 tsym: sp.Symbol | None = None, t: float = 0.0) -> tuple[Any, Any]:
    r"""The SUPG mass :math:`\int\delta(c\cdot\nabla v)u` and operator
    :math:`\int\delta(c\cdot\nabla v)(c\cdot\nabla u + (\nabla\cdot c)u - (\nabla\cdot D)\cdot\nabla u)`.

    Args:
        c: effective drift :math:`b - \nabla\cdot D` (d×1). D: diffusion (d×d).
        state: the state symbols. basis: the scikit-fem basis. h: (cells,) cell sizes.
        tsym, t: the time symbol and the time at which to evaluate (time-dependent coefficients).

    Returns:
        (S_mass, S_op) as CSR matrices (rows: test functions).
    """
    skfem = require_skfem("SUPG assembly")
    d = len(state)
    divc = sum(sp.diff(c[i], s) for i, s in enumerate(state))
    divD = sp.Matrix([sum(sp.diff(D[i, j], state[j]) for j in range(d)) for i in range(d)])
    cf, Df = lambdify(sp.Matrix(c), state, tsym), lambdify(sp.Matrix(D), state, tsym)
    divcf, divDf = lambdify(divc, state, tsym), lambdify(divD, state, tsym)
    hh = np.asarray(h, dtype=float)[:, None]
    cache: dict[str, Any] = {}

    def coefficients(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if cache.get("X") is not X:
            cv = cf(X, t)[:, 0]
            Dv = Df(X, t)
            a2 = np.einsum("i...,i...->...", cv, cv)
            kappa = np.einsum("i...,ij...,j...->...", cv, Dv, cv) / (a2 + 1e-300)
            cache.update(X=X, v=(cv, supg_weight(a2, kappa, hh), divcf(X, t), divDf(X, t)[:, 0]))
        return cache["v"]

    @skfem.BilinearForm
    def mass(u: Any, v: Any, w: Any) -> Any:
        cv, delta, _, _ = coefficients(_coords(w))
        return delta * np.einsum("i...,i...->...", cv, v.grad) * u

    @skfem.BilinearForm
    def op(u: Any, v: Any, w: Any) -> Any:
        cv, delta, dc, dD = coefficients(_coords(w))
        r = np.einsum("i...,i...->...", cv - dD, u.grad) + dc * u
        return delta * np.einsum("i...,i...->...", cv, v.grad) * r

    return mass.assemble(basis).tocsr(), op.assemble(basis).tocsr()


def basis_hessians(basis: Any) -> np.ndarray:
    r"""Hessians (nbfun, cells, d, d) of the local basis functions, constant per affine cell.

    Exact for Lagrange P2 on simplices (an affine gradient): the gradient at the cell's quadrature
    points is fitted by :math:`g(x) = g_0 + H(x - \bar x)` in the least-squares sense, which
    reproduces an affine gradient to round-off (needs at least d + 1 affinely independent points).
    """
    X = np.asarray(basis.mapping.F(basis.X))  # (d, cells, q)
    d, _, q = X.shape
    if q < d + 1:
        raise InputError(f"SUPG Hessians: {q} quadrature points per cell, need at least {d + 1}")
    Xc = X - X.mean(axis=2, keepdims=True)
    A = np.concatenate([np.ones((1, *X.shape[1:])), Xc], axis=0)  # (d+1, cells, q)
    P = np.linalg.pinv(np.moveaxis(A, 0, -1))  # (cells, d+1, q)
    out = []
    for j in range(len(basis.basis)):
        g = np.asarray(basis.basis[j][0].grad)  # (d, cells, q)
        coef = np.einsum("caq,kcq->cka", P, g)  # (cells, d, d+1)
        H = coef[:, :, 1:]
        out.append(0.5 * (H + np.swapaxes(H, 1, 2)))
    return np.array(out)


def hessian_supg(a: Any, D: Any, state: tuple[sp.Symbol, ...], basis: Any, h: np.ndarray) -> Any:
    r"""The matrix of :math:`-\sum_K\int_K\delta_K (a\cdot\nabla v)(D:\nabla^2 u)` (rows: test functions).

    Args:
        a: the exit-time transport coefficient (d×1). D: the diffusion (d×d).
        state: the state symbols. basis: a scikit-fem basis of degree ≥ 2. h: (cells,) cell size over
            the degree.
    """
    import scipy.sparse as sps

    X = np.asarray(basis.mapping.F(basis.X))
    av = lambdify(sp.Matrix(a), state)(X)[:, 0]  # (d, cells, q)
    Dv = lambdify(sp.Matrix(D), state)(X)  # (d, d, cells, q)
    a2 = np.einsum("icq,icq->cq", av, av)
    kappa = np.einsum("icq,ijcq,jcq->cq", av, Dv, av) / (a2 + 1e-300)
    delta = supg_weight(a2, kappa, np.asarray(h, dtype=float)[:, None])
    dx = np.asarray(basis.dx)  # (cells, q): quadrature weights × |det J|
    H = basis_hessians(basis)  # (nb, cells, d, d)
    DH = np.einsum("ijcq,bcij->bcq", Dv, H)  # D:∇²φ_b at the points
    test = np.array([np.einsum("icq,icq->cq", av, np.asarray(basis.basis[i][0].grad))
                     for i in range(len(basis.basis))])  # (nb, cells, q)
    local = -np.einsum("icq,jcq,cq->ijc", test * delta[None], DH, dx)  # (test i, trial j, cells)
    dofs = np.asarray(basis.element_dofs)  # (nb, cells)
    rows = np.broadcast_to(dofs[:, None, :], local.shape).ravel()
    cols = np.broadcast_to(dofs[None, :, :], local.shape).ravel()
    n = basis.N
    return sps.coo_matrix((local.ravel(), (rows, cols)), shape=(n, n)).tocsr()


def gibbs_weight(rho: Any, state: tuple[sp.Symbol, ...], points: np.ndarray, where: str = "solve"
                 ) -> tuple[sp.Expr, np.ndarray]:
    r"""The Gibbs weight :math:`w = \exp(\ln\rho - \max_h\ln\rho)` (SymPy) and its nodal values.

    Raises:
        InputError: :math:`\min_h\rho/\max_h\rho` < :data:`GIBBS_MIN_RATIO` (or ρ not finite and positive
            at a node): the ρ-weighted matrices would underflow.
    """
    log_rho = sp.expand_log(sp.log(sp.sympify(rho)), force=True)
    with np.errstate(all="ignore"):
        lv = np.broadcast_to(np.asarray(sp.lambdify(state, log_rho, "numpy")(*points.T), dtype=float),
                             (len(points),)).copy()
    if not np.all(np.isfinite(lv)):
        raise InputError(f"{where}: stabilisation='gibbs' needs rho > 0 and finite at every node; the "
                         "closed-form stationary density is not. Use stabilisation='fct'")
    shift = float(lv.max())
    log_range = float(lv.min()) - shift
    if log_range < math.log(GIBBS_MIN_RATIO):
        raise InputError(
            f"{where}: stabilisation='gibbs' cannot be used here: the Gibbs weight rho spans "
            f"{-log_range / math.log(10):.0f} decades on the mesh (min rho / max rho = "
            f"10^{log_range / math.log(10):.0f} < {GIBBS_MIN_RATIO:g}), beyond double precision, so p = rho u"
            " and the rho-weighted matrices underflow. Use stabilisation='fct' (positive, conservative), a "
            "smaller domain, or a larger noise")
    return sp.exp(log_rho - sp.Float(shift)), np.exp(lv - shift)
