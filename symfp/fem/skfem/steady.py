r"""Steady problems with scikit-fem: mean exit time, stationary density, spectrum (scipy.sparse.linalg).

All three lower their weak form (:mod:`symfp.symbolic.weakform`) through
:mod:`symfp.fem.skfem.lowering` and solve with SuperLU / ARPACK:

- :func:`mean_exit_time`: :math:`-\mathcal L\tau = 1`, τ = 0 on the absorbing parts (identity rows),
  with the SUPG term of :func:`symfp.fem.skfem.lowering.supg_exit_time` by default (the same weight
  as the dolfinx backend, :func:`symfp.fem.stabilisation.supg_weight`; for P2 the residual's D:∇²τ term
  with the exact P2 Hessians, :func:`symfp.fem.skfem.stabilise.hessian_supg`);
- :func:`stationary_density`: :math:`Kp = 0` with one row replaced by :math:`p_r = 1` at a dof where
  the density is not negligible (first where :math:`|c|` is smallest, then at the maximum of p if the
  first pin held less than 1e-3 of it), normalised to unit mass;
- :func:`spectrum`: :math:`Kx = \lambda Mx` by ``scipy.sparse.linalg.eigs`` in shift-invert mode
  about :math:`\sigma = -10^{-6}\|K\|_\infty/\|M\|_\infty` (Dirichlet rows: :math:`K_{ii} = 1`,
  :math:`M_{ii} = 0`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from ...errors import InputError, MeshError, SolverError
from ..checks import check_fe_problem
from ..problem import check_mesh_dimension, check_steady_sde
from . import require_serial, require_skfem
from .field import Field
from .lowering import assemble_bilinear, assemble_linear, assemble_weighted, mass_matrix, supg_exit_time
from .mesh import SkMesh, as_skfem


def check_problem(sde: Any, mesh: Any, where: str) -> SkMesh:
    """Validate SDE and mesh of a steady solve (InputError/MeshError); returns the scikit-fem mesh."""
    require_serial(where)
    require_skfem(where)
    check_steady_sde(sde, where)
    sk = as_skfem(mesh)
    check_mesh_dimension(sk.dim, sde.state, where)
    check_fe_problem(sde, sk, where)  # D ⪰ 0 on the mesh, the SME's stability
    return sk


def _with_rows(A: Any, rows: np.ndarray, diag: float) -> Any:
    import scipy.sparse as sps

    A = sps.csr_matrix(A)
    keep = np.ones(A.shape[0])
    keep[rows] = 0.0
    hit = np.zeros(A.shape[0])
    hit[rows] = diag
    return sps.csr_matrix(sps.diags(keep) @ A + sps.diags(hit))


def _splu_solve(A: Any, b: np.ndarray, where: str) -> np.ndarray:
    from scipy.sparse.linalg import splu

    try:
        x = splu(A.tocsc()).solve(b)
    except RuntimeError as exc:
        raise SolverError(f"{where}: the linear system is singular ({exc}); check the boundary parts and "
                          "the coefficients") from exc
    if not np.all(np.isfinite(x)):
        raise SolverError(f"{where}: the solve gave NaN/inf; check the coefficients")
    return x


def mean_exit_time(sde: Any, mesh: Any, absorbing: str | Iterable[str] | None = None, degree: int = 1,
                   stabilization: str | None = "supg", **ignored: Any) -> Field:
    r"""Solve :math:`-\mathcal L\tau = 1`, τ = 0 on the absorbing parts (None: whole boundary).

    Returns:
        A :class:`~symfp.fem.skfem.field.Field` (``eval``, ``max``, ``mean_over``, ``write``).
    """
    from ...symbolic.weakform import exit_time_form

    where = "mean_exit_time"
    if stabilization not in (None, "supg"):
        raise InputError(f"{where}: stabilization={stabilization!r} is unknown; use 'supg' or None")
    sk = check_problem(sde, mesh, where)
    wf = exit_time_form(sde, absorbing)
    parts = wf.dirichlet_parts()
    basis = sk.basis(degree)
    dofs = sk.dirichlet_dofs(basis, parts, where)
    if not len(dofs):
        raise MeshError(f"{where}: the absorbing parts {parts} hold no facets of mesh '{sk.neutral.source}', "
                        "so the process never exits (τ = ∞); name a non-empty part")
    A = assemble_bilinear(wf.bilinear, basis, wf.state)
    b = assemble_linear(wf.linear, basis, wf.state)
    (adv,) = wf.terms("transport")
    used = stabilization
    if stabilization == "supg" and any(sp.sympify(e) != 0 for e in adv.coefficient):
        # h = h_K / degree, as the dolfinx backend (symfp.fem.stabilisation.supg_weight); for degree ≥ 2 the
        # residual's D:∇²τ term is assembled with the cells' exact P2 Hessians (skfem.stabilise)
        h = sk.neutral.cell_diameters() / degree
        S, s = supg_exit_time(wf, sde, basis, h)
        A, b = A + S, b + s
        if degree >= 2:
            from .stabilise import hessian_supg

            A = A + hessian_supg(sp.Matrix(adv.coefficient), sp.Matrix(sde.diffusion), wf.state, basis, h)
    A = _with_rows(A, dofs, 1.0)
    b = b.copy()
    b[dofs] = 0.0
    tau = _splu_solve(A, b, where)
    return Field(values=tau, basis=basis, mesh=sk.neutral, sde=sde, name="tau", degree=degree,
                 absorbing=parts, stabilization=used,
                 info={"absorbing": list(parts) if parts is not None else "whole boundary",
                       "stabilization": used})


def _moments(p: np.ndarray, basis: Any, state: tuple[sp.Symbol, ...]) -> dict[str, Any]:
    d = len(state)
    mass = float(assemble_weighted(1, basis, state) @ p)
    mean = np.array([float(assemble_weighted(s, basis, state) @ p) for s in state]) / mass
    cov = np.empty((d, d))
    for i in range(d):
        for j in range(i, d):
            g = (state[i] - mean[i]) * (state[j] - mean[j])
            cov[i, j] = cov[j, i] = float(assemble_weighted(g, basis, state) @ p) / mass
    return {"mass": mass, "mean": mean, "cov": cov}


def stationary_density(sde: Any, mesh: Any, degree: int = 1, negative_tol: float = 1e-6,
                       **ignored: Any) -> Field:
    r"""The stationary density: zero flux, unit mass (see the module docstring)."""
    from ...symbolic.weakform import stationary_form

    where = "stationary_density"
    if not negative_tol >= 0:
        raise InputError(f"{where}: negative_tol must be ≥ 0, got {negative_tol!r}")
    sk = check_problem(sde, mesh, where)
    wf = stationary_form(sde)
    basis = sk.basis(degree)
    K = assemble_bilinear(wf.bilinear, basis, wf.state)
    c = sp.Matrix(wf.terms("advection")[0].coefficient)
    X = np.asarray(basis.doflocs)
    score = np.broadcast_to(np.asarray(sp.lambdify(wf.state, sp.sqrt(sum(e**2 for e in c)), "numpy")(*X),
                                       dtype=float), (X.shape[1],))

    def pinned(dof: int) -> np.ndarray:
        b = np.zeros(K.shape[0])
        b[dof] = 1.0
        return _splu_solve(_with_rows(K, np.array([dof]), 1.0), b, where)

    dof = int(np.argmin(score))
    p = pinned(dof)
    if abs(p[dof]) < 1e-3 * np.abs(p).max():
        p = pinned(int(np.argmax(np.abs(p))))
    obs = _moments(p, basis, wf.state)
    if not (np.isfinite(obs["mass"]) and obs["mass"] != 0):
        raise SolverError(f"{where}: the stationary solve gave mass {obs['mass']}; the diffusion may be "
                          "degenerate (kernel of dimension > 1). Check D, or use the forward solver.")
    p = p / obs["mass"]
    obs = _moments(p, basis, wf.state)
    lo, hi = float(p.min()), float(p.max())
    obs["min_relative"] = lo / hi
    if lo < -negative_tol * hi:
        raise SolverError(f"{where}: the density is negative down to {lo:.3e} (max {hi:.3e}), beyond "
                          f"negative_tol={negative_tol:g}; the problem is drift-dominated on this mesh — "
                          "refine it or raise the degree")
    return Field(values=p, basis=basis, mesh=sk.neutral, sde=sde, name="p", degree=degree, observables=obs)


@dataclass(eq=False)
class Spectrum:
    """Eigenvalues of :math:`Kx = \\lambda Mx` nearest 0 (as the dolfinx backend's Spectrum)."""

    eigenvalues: np.ndarray
    gap: float
    has_zero: bool
    backend: str = "scipy"
    eigenfunctions: list[Any] | None = None

    @property
    def real(self) -> np.ndarray:
        return self.eigenvalues.real


def spectrum(sde: Any, mesh: Any, k: int = 6, absorbing: str | Iterable[str] | None = (), degree: int = 1,
             target: float | None = None, tol: float = 1e-10, zero_tol: float = 1e-8,
             eigenfunctions: bool = False, **ignored: Any) -> Spectrum:
    r"""The ``k`` eigenvalues of :math:`-\nabla\cdot J` nearest 0 (shift-invert ARPACK)."""
    from scipy.sparse.linalg import eigs

    from ...symbolic.weakform import forward_form

    where = "spectrum"
    if not (isinstance(k, (int, np.integer)) and k >= 1):
        raise InputError(f"{where}: k must be a positive integer, got {k!r}")
    sk = check_problem(sde, mesh, where)
    wf = forward_form(sde)
    basis = sk.basis(degree)
    K = assemble_bilinear(wf.bilinear, basis, wf.state)
    M = mass_matrix(basis)
    parts = None if absorbing is None else ((absorbing,) if isinstance(absorbing, str) else tuple(absorbing))
    if parts != ():
        dofs = sk.dirichlet_dofs(basis, parts, where)
        K, M = _with_rows(K, dofs, 1.0), _with_rows(M, dofs, 0.0)
    n = K.shape[0]
    if k >= n - 1:
        raise InputError(f"{where}: k={k} eigenvalues asked of a problem with {n} dofs; refine the mesh")
    scale = float(abs(K).sum(axis=1).max() / abs(M).sum(axis=1).max())
    sigma = -1e-6 * scale if target is None else float(target)
    try:
        vals, vecs = eigs(K.tocsc(), k=k, M=M.tocsc(), sigma=sigma, which="LM", tol=tol)
    except Exception as exc:  # noqa: BLE001 - ARPACK raises several types
        raise SolverError(f"{where}: ARPACK failed ({exc}); ask for fewer eigenvalues or refine the "
                          "mesh") from exc
    order = np.lexsort((vals.imag, vals.real))[:k]
    vals = np.asarray(vals[order], dtype=complex)
    has_zero = bool(abs(vals[0]) < zero_tol * scale)
    rest = vals[1:] if has_zero else vals
    gap = float(rest[0].real) if len(rest) else float("nan")
    funcs = [np.real(vecs[:, i]) for i in order] if eigenfunctions else []
    return Spectrum(eigenvalues=vals, gap=gap, has_zero=has_zero, eigenfunctions=funcs)


def spectral_gap(sde: Any, mesh: Any, **kwargs: Any) -> float:
    """The spectral gap (see :func:`spectrum`)."""
    kwargs.setdefault("k", 3)
    return spectrum(sde, mesh, **kwargs).gap
