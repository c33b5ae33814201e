r"""The stationary Fokker–Planck density by finite elements: :math:`\nabla\cdot J = 0`, :math:`\int p = 1`.

Weak form (:func:`symfp.symbolic.weakform.stationary_form`, zero flux natural, :math:`c = b - \nabla\cdot D`):

.. math:: K p = 0,\qquad K_{ij} = \int (D\nabla\phi_j)\cdot\nabla\phi_i - \int \phi_j\, c\cdot\nabla\phi_i .

**The unit-mass constraint.** Taking :math:`v = 1` shows that every column of :math:`K` sums to zero
(:math:`\mathbf 1^\top K = 0`): the rows are linearly dependent, and for an irreducible diffusion the
kernel is one-dimensional, spanned by the stationary density. One row :math:`r` is therefore redundant;
it is replaced by :math:`p_r = 1` (``MatZeroRows``) and the system is solved by a direct LU
factorisation (MUMPS), then :math:`p` is normalised by its integral. The replaced row must be at a dof
where the density is not negligible, or the solution is scaled by a huge factor: after a first solve
with a pin chosen near the minimum of the "potential" :math:`|c|` the pin is moved to the maximum of
:math:`p` and the system solved again if the first pin held less than ``1e-3`` of the maximum.

**Positivity.** Plain Galerkin is used (the test problems have cell Péclet numbers well below 1);
negative values below ``-negative_tol * max p`` raise :class:`~symfp.errors.SolverError` (refine the
mesh), as the design asks: a negative density is an error the user sees, not a silent number.

This module never imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from ...errors import InputError, SolverError
from . import compat, solvers
from .exit_time import check_problem, lower_terms, write_field


@dataclass(eq=False)
class StationarySolution:
    r"""The normalised stationary density :math:`p` (a dolfinx Function) and its moments.

    Attributes:
        function: the dolfinx Function p (unit mass on the mesh).
        mesh: the :class:`symfp.fem.dolfinx.mesh.Mesh`.
        sde: the SDE.
        degree: the Lagrange degree.
        observables: ``"mass"`` (float), ``"mean"`` (d,), ``"cov"`` (d×d), ``"min_relative"``
            (min p / max p) as numpy values.
    """

    function: Any
    mesh: Any
    sde: Any
    degree: int
    observables: dict[str, Any] = field(default_factory=dict)
    _tree: Any = field(default=None, repr=False)

    @property
    def mass(self) -> float:
        r""":math:`\int p` (1 up to round-off)."""
        return float(self.observables["mass"])

    @property
    def mean(self) -> np.ndarray:
        r""":math:`\int x\,p`, shape (d,)."""
        return self.observables["mean"]

    @property
    def cov(self) -> np.ndarray:
        r""":math:`\int (x - m)(x - m)^\top p`, shape (d, d)."""
        return self.observables["cov"]

    def eval(self, points: Any) -> np.ndarray:
        """p at ``points`` (n, d) → (n,); collective, the same on every rank; NaN outside the mesh."""
        if self._tree is None:
            self._tree = compat.bb_tree(self.function.function_space.mesh)
        return compat.eval_points(self.function, points, self._tree)[:, 0]

    def expect(self, expr: Any) -> float:
        r""":math:`\int g\,p` for a SymPy expression ``g`` in the state (collective)."""
        from .translate import to_ufl

        ufl = compat.dolfinx_modules().ufl
        msh = self.function.function_space.mesh
        g = to_ufl(sp.sympify(expr), self.sde.state, ufl.SpatialCoordinate(msh))
        return compat.assemble_scalar(compat.form(g * self.function * ufl.dx(domain=msh)), msh.comm)

    def write(self, directory: str | os.PathLike) -> str:
        """Write p (XDMF, P1) and the observables (JSON) into ``directory``; returns the XDMF path."""
        summary = {"quantity": "stationary density", "degree": self.degree,
                   **{k: np.asarray(v).tolist() for k, v in self.observables.items()}}
        return write_field(self.function, directory, "stationary", summary)


def _moments(p: Any, d: int) -> dict[str, Any]:
    """Mass, mean and covariance of the density ``p`` (collective)."""
    ufl = compat.dolfinx_modules().ufl
    msh = p.function_space.mesh
    x = ufl.SpatialCoordinate(msh)
    dx = ufl.dx(domain=msh)

    def integral(e: Any) -> float:
        return compat.assemble_scalar(compat.form(e * p * dx), msh.comm)

    mass = integral(1.0 + 0 * x[0])
    mean = np.array([integral(x[i]) for i in range(d)]) / mass
    cov = np.empty((d, d))
    for i in range(d):
        for j in range(i, d):
            cov[i, j] = cov[j, i] = integral((x[i] - mean[i]) * (x[j] - mean[j])) / mass
    return {"mass": mass, "mean": mean, "cov": cov}


def _pin_and_solve(K: Any, V: Any, pin: tuple[int, int], options: Mapping[str, Any], where: str) -> Any:
    """Solve K p = 0 with the row of global dof ``pin[1]`` (owned by rank ``pin[0]``) replaced by p = 1."""
    dm = compat.dolfinx_modules()
    comm = V.mesh.comm
    A = K.duplicate(copy=True)
    rows = [pin[1]] if comm.rank == pin[0] else []
    A.zeroRows(rows, diag=1.0)
    p = dm.fem.Function(V)
    b = A.createVecRight()
    b.set(0.0)
    if rows:
        b.setValue(pin[1], 1.0)
    b.assemble()
    return compat.solve_once(A, b, p, options, "symfp_stationary_", where)


def _global_argmax(values: np.ndarray, V: Any) -> tuple[int, int, float]:
    """(rank, global dof, value) of the largest owned value across ranks."""
    comm = V.mesh.comm
    n = V.dofmap.index_map.size_local
    start = V.dofmap.index_map.local_range[0]
    if n:
        i = int(np.argmax(values[:n]))
        mine = (float(values[i]), -comm.rank, start + i)
    else:
        mine = (-np.inf, -comm.rank, -1)
    best = max(comm.allgather(mine))
    return -best[1], best[2], best[0]


def stationary_density(sde: Any, mesh: Any, degree: int = 1, petsc_options: Mapping[str, Any] | None = None,
                       negative_tol: float = 1e-6) -> StationarySolution:
    r"""Solve the stationary Fokker–Planck problem with zero flux and unit mass (collective).

    Args:
        sde: a numeric :class:`symfp.SDE`.
        mesh: a :class:`symfp.fem.dolfinx.mesh.Mesh`, a dolfinx mesh or a gmsh path; it should contain the
            region where the density is not negligible (the zero-flux wall confines the process).
        degree: Lagrange degree.
        petsc_options: PETSc options for the pinned linear solve (default MUMPS LU; it must be a
            direct or otherwise robust solver, the pinned matrix is non-symmetric and indefinite).
        negative_tol: allowed relative undershoot, min p ≥ −negative_tol · max p.

    Returns:
        A :class:`StationarySolution` (``.eval``, ``.mass``, ``.mean``, ``.cov``, ``.expect``, ``.write``).

    Raises:
        MeshError: wrong mesh dimension. InputError: free parameters. SolverError: the solve failed or
        the density is negative beyond ``negative_tol`` (refine the mesh).
    """
    from ...symbolic.weakform import stationary_form

    where = "stationary_density"
    if not negative_tol >= 0:
        raise InputError(f"{where}: negative_tol must be ≥ 0, got {negative_tol!r}")
    m = check_problem(sde, mesh, where)
    wf = stationary_form(sde)
    dm = compat.dolfinx_modules()
    ufl = dm.ufl
    msh = m.mesh
    V, u, v, x = compat.lagrange_problem(msh, degree)
    K = compat.assemble_matrix(compat.form(lower_terms(wf.bilinear, wf.state, u, v, x) * ufl.dx(domain=msh)))
    options = solvers.merge(solvers.ksp_options("steady", ranks=msh.comm.size, dofs=compat.num_global_dofs(V), dim=msh.topology.dim), petsc_options)  # noqa: E501
    # first pin: where |c| = |b − ∇·D| is smallest (a critical point of the drift: typically a mode)
    c = sp.Matrix(wf.terms("advection")[0].coefficient)
    cnorm = sp.lambdify(wf.state, sp.sqrt(sum(e**2 for e in c)), "numpy")
    n = V.dofmap.index_map.size_local
    coords = V.tabulate_dof_coordinates()[:n, : len(wf.state)]
    score = np.broadcast_to(np.asarray(cnorm(*coords.T), dtype=float), (n,)) if n else np.zeros(0)
    rank, dof, _ = _global_argmax(-score, V)
    p = _pin_and_solve(K, V, (rank, dof), options, where)
    rank2, dof2, pmax = _global_argmax(np.abs(p.x.array), V)
    owner_val = p.x.array[dof - V.dofmap.index_map.local_range[0]] if msh.comm.rank == rank else 0.0
    pinned = msh.comm.allreduce(float(owner_val), op=dm.MPI.SUM)
    if abs(pinned) < 1e-3 * pmax:
        p = _pin_and_solve(K, V, (rank2, dof2), options, where)
    K.destroy()
    obs = _moments(p, len(wf.state))
    if not (np.isfinite(obs["mass"]) and obs["mass"] != 0):
        raise SolverError(f"{where}: the stationary solve gave mass {obs['mass']}; the diffusion may be "
                          "degenerate (kernel of dimension > 1). Check D, or use the forward solver.")
    p.x.array[:] /= obs["mass"]
    p.name = "p"
    obs = _moments(p, len(wf.state))
    nloc = V.dofmap.index_map.size_local
    lo = msh.comm.allreduce(float(np.min(p.x.array[:nloc])) if nloc else np.inf, op=dm.MPI.MIN)
    hi = msh.comm.allreduce(float(np.max(p.x.array[:nloc])) if nloc else -np.inf, op=dm.MPI.MAX)
    obs["min_relative"] = lo / hi
    if lo < -negative_tol * hi:
        raise SolverError(f"{where}: the density is negative down to {lo:.3e} (max {hi:.3e}), beyond "
                          f"negative_tol={negative_tol:g}; the problem is drift-dominated on this mesh — "
                          "refine it or raise the degree")
    return StationarySolution(function=p, mesh=m, sde=sde, degree=degree, observables=obs)
