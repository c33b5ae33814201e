r"""The scikit-fem implementation of :class:`symfp.control.operators.Assembler` (serial, P1 Lagrange).

Weak-form IR terms go through the one lowering of the IR to scikit-fem forms
(:func:`symfp.fem.skfem.lowering.assemble_bilinear`; loads by
:func:`~symfp.fem.skfem.lowering.assemble_weighted`, the mass by
:func:`~symfp.fem.skfem.lowering.mass_matrix`), on the mesh that :func:`symfp.fem.skfem.mesh.as_skfem`
makes of any symfp mesh (neutral, dolfinx-backed — rebuilt from its spec — or a path). scikit-fem
assembles into SciPy CSR directly, so nothing is converted.

Quadrature is chosen as dolfinx/UFL would estimate it, so that both backends integrate the same
polynomial integrands exactly: a term whose coefficient is a polynomial of degree k in the state gets
the order :math:`k + e` with :math:`e` the degree of the P1 basis factors (0 for
:math:`(K\nabla u)\cdot\nabla v`, 1 for advection/transport, 2 for reaction); any other coefficient
:math:`e + 3` (UFL: a function of x counts as degree 1 + 2). Loads :math:`\int g\varphi_i` use order 8,
as the dolfinx assembler's quadrature degree 8 (indicator functions integrated closely). On the same
vertices and cells the two backends' :math:`M` and :math:`K_{ij}` then agree to round-off.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sps
import sympy as sp

from ..fem.problem import check_mesh_dimension

#: degree of the P1 basis factors in each term kind's integrand (grad of P1 is constant)
_BASIS_DEGREE = {"diffusion": 0, "advection": 1, "transport": 1, "reaction": 2, "source": 1}
#: the load quadrature order (the dolfinx assembler's quadrature_degree)
LOAD_ORDER = 8
#: highest quadrature order used for a matrix
MAX_ORDER = 12


def _entries(coefficient: Any) -> list[sp.Expr]:
    e = sp.sympify(coefficient)
    return list(e) if isinstance(e, sp.MatrixBase) else [e]


def quadrature_order(terms: Sequence[Any], state: Sequence[sp.Symbol]) -> int:
    """The quadrature order that integrates the terms' integrands as UFL's degree estimate would."""
    order = 1
    for t in terms:
        base = _BASIS_DEGREE.get(t.kind, 2)
        for e in _entries(t.coefficient):
            if e.is_polynomial(*state):
                deg = sp.Poly(e, *state).total_degree() if e.free_symbols else 0
                order = max(order, base + deg)
            else:
                order = max(order, base + 3)
    return min(order, MAX_ORDER)


class SkfemAssembler:
    """P1 matrices and vectors of a mesh, assembled by scikit-fem, as SciPy/NumPy objects.

    Args:
        mesh: any symfp mesh (:class:`symfp.fem.mesh.NeutralMesh`, a dolfinx-backed one, a path) or a
            :class:`symfp.fem.skfem.mesh.SkMesh`.
        state: the state symbols (their number must be the mesh dimension).

    Dof i is vertex i of the neutral mesh (:attr:`coordinates`).
    """

    def __init__(self, mesh: Any, state: Sequence[sp.Symbol]):
        from ..fem.skfem import require_serial, require_skfem
        from ..fem.skfem.mesh import as_skfem

        require_serial("operator_parts")
        self._skfem = require_skfem("operator_parts")
        self.sk = as_skfem(mesh)
        self.state = tuple(state)
        check_mesh_dimension(self.sk.dim, self.state, "operator_parts")
        self._bases: dict[int, Any] = {}
        self.basis = self.sk.basis(1)
        self.coordinates = np.ascontiguousarray(np.asarray(self.basis.doflocs, dtype=float).T)
        self.cells = np.ascontiguousarray(np.asarray(self.basis.element_dofs).T, dtype=np.int64)
        self._ml: np.ndarray | None = None

    def basis_of(self, order: int) -> Any:
        """The (cached) P1 basis with quadrature exact to ``order``."""
        if order not in self._bases:
            self._bases[order] = self._skfem.Basis(self.sk.mesh, self.sk.element(1), intorder=int(order))
        return self._bases[order]

    def mass(self) -> sps.csr_matrix:
        """The consistent P1 mass matrix."""
        from ..fem.skfem.lowering import mass_matrix

        M = sps.csr_matrix(mass_matrix(self.basis_of(2)))
        M.sum_duplicates()
        self._ml = np.asarray(M.sum(axis=1)).ravel()
        return M

    def matrix(self, terms: list[Any]) -> sps.csr_matrix:
        """The matrix of IR terms (row = test function), by
        :func:`~symfp.fem.skfem.lowering.assemble_bilinear`."""
        from ..fem.skfem.lowering import assemble_bilinear

        A = sps.csr_matrix(assemble_bilinear(terms, self.basis_of(quadrature_order(terms, self.state)),
                                             self.state))
        A.sum_duplicates()
        return A

    def load(self, expr: Any) -> np.ndarray:
        r""":math:`\int g\varphi_i` (quadrature order 8, as the dolfinx assembler)."""
        from ..fem.skfem.lowering import assemble_weighted

        return np.asarray(assemble_weighted(sp.sympify(expr), self.basis_of(LOAD_ORDER), self.state),
                          dtype=float).ravel()

    def nodal(self, expr: Any) -> np.ndarray:
        """Values of a SymPy expression at the dofs."""
        f = sp.lambdify(self.state, sp.sympify(expr), "numpy")
        vals = f(*[self.coordinates[:, i] for i in range(len(self.state))])
        return np.broadcast_to(np.asarray(vals, dtype=float), (self.coordinates.shape[0],)).copy()

    def initial(self, p0: Any) -> np.ndarray:
        """Unit-mass nodal density (:func:`symfp.fem.skfem.forward.initial_nodal`, the same checks)."""
        from ..fem.skfem.forward import initial_nodal

        if self._ml is None:
            self.mass()
        return initial_nodal(p0, self.sk.neutral, self.state, self._ml, where="control")
