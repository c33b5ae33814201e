"""The dolfinx implementation of :class:`symfp.control.operators.Assembler` (serial, P1 Lagrange).

Weak-form IR terms are lowered with :func:`symfp.fem.dolfinx.exit_time.lower_terms` (the one lowering
of the IR to UFL), assembled by dolfinx into PETSc matrices and converted to SciPy CSR with
``Mat.getValuesCSR()``; that conversion is only the whole matrix on one process, so a mesh on several
MPI ranks is refused (build it with ``comm=MPI.COMM_SELF``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sps
import sympy as sp

from ..errors import InputError
from ..fem.problem import check_mesh_dimension


class DolfinxAssembler:
    """P1 matrices and vectors of a dolfinx mesh as SciPy/NumPy objects.

    Args:
        mesh: a :class:`symfp.fem.dolfinx.mesh.Mesh` or anything ``as_mesh`` accepts.
        state: the state symbols (their number must be the mesh dimension).
    """

    def __init__(self, mesh: Any, state: Sequence[sp.Symbol]):
        from ..fem.dolfinx import compat
        from ..fem.dolfinx.mesh import as_mesh

        self._c = compat
        self._m = compat.dolfinx_modules()
        self.mesh = as_mesh(mesh)
        self.state = tuple(state)
        check_mesh_dimension(self.mesh.dim, self.state, "operator_parts")
        if self.mesh.comm.size > 1:
            raise InputError("operator_parts: the control layer works on SciPy matrices in serial; "
                             "the mesh is "
                             f"distributed over {self.mesh.comm.size} MPI ranks. Build it with "
                             "comm=MPI.COMM_SELF (symfp.mesh.box(..., comm=MPI.COMM_SELF))")
        self.V = compat.function_space(self.mesh.mesh)
        ufl = self._m.ufl
        self._u, self._v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
        self._x = ufl.SpatialCoordinate(self.mesh.mesh)
        self.coordinates = self.V.tabulate_dof_coordinates()[:, : len(self.state)].copy()
        dm = self.V.dofmap.list  # an AdjacencyList before dolfinx 0.7, a 2-D array after
        arr = np.asarray(dm.array).reshape(-1, len(dm.links(0))) if hasattr(dm, "links") else np.asarray(dm)
        self.cells = np.ascontiguousarray(arr, dtype=np.int64)  # (n_cells, d + 1) dofs of each cell

    def _csr(self, a: Any) -> sps.csr_matrix:
        A = self._c.assemble_matrix(self._c.form(a))
        indptr, indices, data = A.getValuesCSR()
        n = A.getSize()[0]
        out = sps.csr_matrix((data.copy(), indices.copy(), indptr.copy()), shape=(n, n))
        A.destroy()
        out.sum_duplicates()
        return out

    def mass(self) -> sps.csr_matrix:
        """The consistent P1 mass matrix."""
        return self._csr(self._u * self._v * self._m.ufl.dx)

    def matrix(self, terms: list[Any]) -> sps.csr_matrix:
        """The matrix of IR terms, lowered by :func:`~symfp.fem.dolfinx.exit_time.lower_terms`."""
        from ..fem.dolfinx.exit_time import lower_terms

        integrand = lower_terms(terms, self.state, self._u, self._v, self._x)
        return self._csr(integrand * self._m.ufl.dx)

    def load(self, expr: Any) -> np.ndarray:
        r""":math:`\int g\varphi_i` (quadrature degree 8 so that indicator functions are integrated "
        r"closely)."""
        from ..fem.dolfinx.translate import to_ufl

        ufl = self._m.ufl
        g = to_ufl(sp.sympify(expr), self.state, self._x)
        dx = ufl.Measure("dx", domain=self.mesh.mesh, metadata={"quadrature_degree": 8})
        b = self._c.assemble_vector(self._c.form(g * self._v * dx))
        out = b.array.copy()
        b.destroy()
        return out

    def nodal(self, expr: Any) -> np.ndarray:
        """Values of a SymPy expression at the dofs."""
        e = sp.sympify(expr)
        f = sp.lambdify(self.state, e, "numpy")
        vals = f(*[self.coordinates[:, i] for i in range(len(self.state))])
        return np.broadcast_to(np.asarray(vals, dtype=float), (self.coordinates.shape[0],)).copy()

    def initial(self, p0: Any) -> np.ndarray:
        """Unit-mass nodal density (:func:`symfp.fem.dolfinx.initial.interpolate_density`)."""
        from ..fem.dolfinx.initial import interpolate_density

        p = interpolate_density(p0, self.V, self.state, where="control")
        return p.x.array.copy()
