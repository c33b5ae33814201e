r"""Mean exit time :math:`\tau(x) = \mathbb E_x[T]` by finite elements: :math:`-\mathcal L\tau = 1`.

The generator is :math:`\mathcal L\tau = b\cdot\nabla\tau + D:\nabla^2\tau`. With :math:`D` symmetric,
:math:`D:\nabla^2\tau = \nabla\cdot(D\nabla\tau) - (\nabla\cdot D)\cdot\nabla\tau` (row-wise divergence),
so the weak form (:func:`symfp.symbolic.weakform.exit_time_form`) is

.. math:: \int_\Omega (D\nabla\tau)\cdot\nabla v + \int_\Omega a\cdot\nabla\tau\, v = \int_\Omega v,
          \qquad a = \nabla\cdot D - b,

with :math:`\tau = 0` on the absorbing boundary parts and the reflecting (natural) condition
:math:`(D\nabla\tau)\cdot n = 0` on the others.

**Stabilisation.** When the drift dominates (cell Péclet number :math:`\mathrm{Pe}_K = |a|h_K /
(2\kappa_K) > 1`, :math:`\kappa = a^\top D a/|a|^2` the diffusion along the streamline) plain Galerkin
oscillates. ``stabilization="supg"`` (the default) adds the streamline-upwind Petrov–Galerkin term

.. math:: \sum_K \int_K \delta_K\, (a\cdot\nabla v)\, R(\tau), \qquad
          R(\tau) = -b\cdot\nabla\tau - D:\nabla^2\tau - 1,\qquad
          \delta_K = \Big((2|a|/h)^2 + (12\kappa/h^2)^2\Big)^{-1/2},

:math:`h = h_K/k` for degree :math:`k`. :math:`R` is the strong residual, so the term vanishes for the
exact solution (consistent, optimal order kept). The weight interpolates between the upwind value
:math:`h/(2|a|)` for :math:`\mathrm{Pe}\gg1` and :math:`h^2/(12\kappa)` for :math:`\mathrm{Pe}\ll1`
(the asymptotes of :math:`\tfrac{h}{2|a|}(\coth\mathrm{Pe} - 1/\mathrm{Pe})`), so it switches itself
off on resolved meshes. ``stabilization=None`` gives plain Galerkin.

This module never imports torch; dolfinx is imported when a solve is requested.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from ...errors import InputError, MeshError
from ..checks import check_fe_problem
from ..problem import check_mesh_dimension, check_steady_sde
from . import compat, solvers
from .lowering import lower_terms, ufl_matrix, ufl_vector

#: the default linear solver: a direct LU factorisation by MUMPS (robust for the non-symmetric operator)
DIRECT_LU: dict[str, Any] = {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}


# ------------------------------------------------------------- helpers shared by the steady solvers
def check_problem(sde: Any, mesh: Any, where: str):
    """Validate the SDE and the mesh of a steady solve; returns the :class:`symfp.fem.dolfinx.mesh.Mesh`.

    Raises:
        InputError: the SDE has free parameters, depends explicitly on time, or is not an SDE.
        MeshError: the mesh dimension differs from the number of state variables.
    """
    from .mesh import as_mesh

    check_steady_sde(sde, where)
    m = as_mesh(mesh)
    check_mesh_dimension(m.dim, sde.state, where)
    check_fe_problem(sde, m, where)
    return m


def dirichlet_facets(m: Any, parts: Sequence[str] | None, where: str) -> np.ndarray:
    """Local facet indices of the named boundary parts (``None``: the whole exterior boundary).

    Raises:
        MeshError: an unknown name (the message lists the names the mesh has).
    """
    dm = compat.dolfinx_modules()
    msh = m.mesh
    tdim = msh.topology.dim
    if parts is None:
        msh.topology.create_connectivity(tdim - 1, tdim)
        return np.asarray(dm.mesh.exterior_facet_indices(msh.topology), dtype=np.int32)
    out = []
    for name in parts:
        try:
            out.append(m.boundary_facets(name))
        except MeshError as exc:
            raise MeshError(f"{where}: absorbing part {name!r} is unknown. {exc}. "
                            "Pass absorbing=None for the whole boundary.") from exc
    return np.unique(np.concatenate(out)).astype(np.int32) if out else np.zeros(0, np.int32)


def solve_linear(a_form: Any, L_form: Any, V: Any, bcs: Sequence[Any],
                 petsc_options: Mapping[str, Any] | None, prefix: str, where: str) -> Any:
    """Assemble ``a u = L`` with Dirichlet ``bcs``, solve with PETSc and return the Function ``u``."""
    dm = compat.dolfinx_modules()
    a = compat.form(a_form)
    L = compat.form(L_form)
    A = compat.assemble_matrix(a, bcs)
    b = compat.assemble_vector(L)
    compat.apply_dirichlet(b, a, bcs)
    opts = solvers.merge(solvers.ksp_options("steady", ranks=V.mesh.comm.size, dofs=compat.num_global_dofs(V), dim=V.mesh.topology.dim), petsc_options)  # noqa: E501
    return compat.solve_once(A, b, dm.fem.Function(V), opts, prefix, where)


def write_field(u: Any, directory: str | os.PathLike, name: str, summary: Mapping[str, Any]) -> str:
    """Write ``u`` as XDMF (interpolated to P1 when of higher degree) and ``summary`` as JSON (collective).

    Returns:
        The path of the XDMF file.
    """
    dm = compat.dolfinx_modules()
    msh = u.function_space.mesh
    directory = os.fspath(directory)
    if msh.comm.rank == 0:
        os.makedirs(directory, exist_ok=True)
    msh.comm.barrier()
    V1 = compat.function_space(msh, "Lagrange", 1)
    out = dm.fem.Function(V1)
    out.interpolate(u)
    out.name = name
    path = os.path.join(directory, f"{name}.xdmf")
    with compat.xdmf_file(msh.comm, path, "w") as f:
        f.write_mesh(msh)
        f.write_function(out)
    if msh.comm.rank == 0:
        with open(os.path.join(directory, f"{name}.json"), "w") as fh:
            json.dump(dict(summary), fh, indent=2)
    msh.comm.barrier()
    return path


def supg_weight(a_vec: Any, D_mat: Any, degree: int, msh: Any) -> Any:
    r"""The SUPG weight :math:`\delta_K = ((2|a|/h)^2 + (12\kappa/h^2)^2)^{-1/2}`, :math:`h = h_K/k` in UFL.

    The formula lives once, in :func:`symfp.fem.stabilisation.supg_weight` (numpy or UFL).

    :math:`\kappa = a^\top D a/|a|^2` is the diffusion along the streamline; the tiny constants only
    keep :math:`a = 0` finite (there the weight multiplies :math:`a\cdot\nabla v = 0`).
    """
    from ..stabilisation import supg_weight as weight

    ufl = compat.dolfinx_modules().ufl
    a2 = ufl.inner(a_vec, a_vec)
    kappa = ufl.inner(a_vec, ufl.dot(D_mat, a_vec)) / (a2 + 1e-300)
    return weight(a2, kappa, ufl.CellDiameter(msh) / degree, sqrt=ufl.sqrt)


# ------------------------------------------------------------------------------------------------- result
@dataclass(eq=False)
class ExitTime:
    r"""A finite-element mean exit time :math:`\tau` (a dolfinx Function) and its summaries.

    Attributes:
        function: the dolfinx Function τ.
        mesh: the :class:`symfp.fem.dolfinx.mesh.Mesh`.
        sde: the SDE.
        absorbing: the absorbing part names (None: the whole boundary).
        degree: the Lagrange degree.
        stabilization: "supg" or None.
    """

    function: Any
    mesh: Any
    sde: Any
    absorbing: tuple[str, ...] | None
    degree: int
    stabilization: str | None
    _tree: Any = field(default=None, repr=False)

    def eval(self, points: Any) -> np.ndarray:
        """τ at ``points`` (n, d) → (n,); collective, the same on every rank; NaN outside the mesh."""
        if self._tree is None:
            self._tree = compat.bb_tree(self.function.function_space.mesh)
        return compat.eval_points(self.function, points, self._tree)[:, 0]

    def max(self) -> float:
        """The largest nodal value of τ (collective)."""
        MPI = compat.dolfinx_modules().MPI
        V = self.function.function_space
        n = V.dofmap.index_map.size_local
        local = float(np.max(self.function.x.array[:n])) if n else -np.inf
        return float(V.mesh.comm.allreduce(local, op=MPI.MAX))

    def mean_over(self, density: Any = None) -> float:
        r""":math:`\int\tau\rho / \int\rho` for a SymPy density in the state (None: uniform on the mesh).

        Collective. The density need not be normalised.
        """
        from .translate import to_ufl

        ufl = compat.dolfinx_modules().ufl
        msh = self.function.function_space.mesh
        if density is None:
            rho = compat.dolfinx_modules().fem.Constant(msh, 1.0)
        else:
            rho = to_ufl(sp.sympify(density), self.sde.state, ufl.SpatialCoordinate(msh))
        dx = ufl.dx(domain=msh)
        den = compat.assemble_scalar(compat.form(rho * dx), msh.comm)
        if not den > 0:
            raise InputError(f"ExitTime.mean_over: the density integrates to {den} on the mesh; give a "
                             "non-negative density with positive mass there")
        return compat.assemble_scalar(compat.form(self.function * rho * dx), msh.comm) / den

    def write(self, directory: str | os.PathLike) -> str:
        """Write τ (XDMF, P1) and a JSON summary (max, uniform mean, absorbing parts) into ``directory``."""
        summary = {"quantity": "mean exit time", "max": self.max(), "mean_uniform": self.mean_over(None),
                   "absorbing": list(self.absorbing) if self.absorbing is not None else "whole boundary",
                   "degree": self.degree, "stabilization": self.stabilization,
                   "drift": [str(e) for e in self.sde.drift],
                   "diffusion": str(sp.Matrix(self.sde.diffusion).tolist())}
        return write_field(self.function, directory, "exit_time", summary)


# ------------------------------------------------------------------------------------------------- solver
def mean_exit_time(sde: Any, mesh: Any, absorbing: str | Iterable[str] | None = None,
                   petsc_options: Mapping[str, Any] | None = None, degree: int = 1,
                   stabilization: str | None = "supg") -> ExitTime:
    r"""Solve :math:`-\mathcal L\tau = 1` with :math:`\tau = 0` on the absorbing parts (collective).

    Args:
        sde: a numeric :class:`symfp.SDE` (parameters substituted).
        mesh: a :class:`symfp.fem.dolfinx.mesh.Mesh` (``symfp.mesh.box``/``load``), a dolfinx mesh or a path.
        absorbing: names of boundary parts where the process is killed; None: the whole boundary. The
            other parts reflect.
        petsc_options: PETSc options for the linear solve (default: MUMPS LU).
        degree: Lagrange degree.
        stabilization: "supg" (default; see the module docstring) or None (plain Galerkin).

    Returns:
        An :class:`ExitTime`.

    Raises:
        MeshError: unknown absorbing name (lists the names the mesh has), wrong mesh dimension, or no
            absorbing facet at all (τ would be infinite).
        InputError: free parameters in the SDE, unknown stabilisation.
        SolverError: the linear solver failed.
    """
    from ...symbolic.weakform import exit_time_form

    where = "mean_exit_time"
    if stabilization not in (None, "supg"):
        raise InputError(f"{where}: stabilization={stabilization!r} is unknown; use 'supg' or None")
    m = check_problem(sde, mesh, where)
    wf = exit_time_form(sde, absorbing)
    parts = wf.dirichlet_parts()
    dm = compat.dolfinx_modules()
    ufl = dm.ufl
    msh = m.mesh
    facets = dirichlet_facets(m, parts, where)
    n_facets = msh.comm.allreduce(len(facets), op=dm.MPI.SUM)
    if n_facets == 0:
        raise MeshError(f"{where}: the absorbing parts {parts} hold no facets of mesh '{m.source}', so the "
                        "process never exits (τ = ∞); name a non-empty part")
    V, u, v, x = compat.lagrange_problem(msh, degree)
    tdim = msh.topology.dim
    dofs = dm.fem.locate_dofs_topological(V, tdim - 1, facets)
    bc = dm.fem.dirichletbc(dm.PETSc.ScalarType(0.0), dofs, V)
    state = wf.state
    dx = ufl.dx(domain=msh)
    a_form = lower_terms(wf.bilinear, state, u, v, x) * dx
    L_form = lower_terms(wf.linear, state, u, v, x) * dx
    (adv,) = wf.terms("transport")
    if stabilization == "supg" and any(sp.sympify(e) != 0 for e in adv.coefficient):
        state_sde, b, D = tuple(sde.state), sp.Matrix(sde.drift), sp.Matrix(sde.diffusion)
        a_vec = ufl_vector(adv.coefficient, state, x)
        b_vec, D_mat = ufl_vector(b, state_sde, x), ufl_matrix(D, state_sde, x)
        streamline = supg_weight(a_vec, D_mat, degree, msh) * ufl.inner(a_vec, ufl.grad(v))
        # residual R(τ) = -b·∇τ - D:∇²τ - 1: its τ part on the left, the source on the right
        r_tau = -ufl.inner(b_vec, ufl.grad(u)) - ufl.inner(D_mat, ufl.grad(ufl.grad(u)))
        a_form = a_form + streamline * r_tau * dx
        L_form = L_form + streamline * dx
    tau = solve_linear(a_form, L_form, V, [bc], petsc_options, "symfp_exit_time_", where)
    tau.name = "tau"
    return ExitTime(function=tau, mesh=m, sde=sde, absorbing=parts, degree=degree,
                    stabilization=stabilization)
