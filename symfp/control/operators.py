r"""Assembled operators of the controlled Fokker–Planck equation as ``scipy.sparse`` matrices.

The one entry point is :func:`operator_parts`; everything in :mod:`symfp.control` downstream sees only
the :class:`OperatorParts` it returns (SciPy CSR matrices and NumPy vectors), never a backend. The
Galerkin semi-discretisation of :math:`\int\partial_t p\,v + \int(D\nabla p)\cdot\nabla v
- \int p\,c\cdot\nabla v = 0` (P1 Lagrange, zero-flux natural) reads

.. math:: M\dot p + K(u, B)\,p = 0,\qquad K(u, B) = \sum_{(i,j)} u^i B^{-j} K_{ij},

with the monomial split of :mod:`symfp.control.split`. A backend is a small class with the
:class:`Assembler` methods (mass matrix, a matrix of weak-form IR terms, the load vector
:math:`\int g\varphi_i`, nodal interpolation, the unit-mass initial density, the dof coordinates),
registered in :data:`BACKENDS` by name and imported lazily: ``"dolfinx"``
(:mod:`symfp.control.dolfinx_assembler`, serial) and ``"skfem"`` (:mod:`symfp.control.skfem_assembler`,
pip-only); ``backend="auto"`` takes dolfinx when it is importable, else scikit-fem
(:func:`symfp.fem.registry.resolve`). On the same vertices and cells both give the same matrices to
round-off.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sps
import sympy as sp

from ..errors import InputError
from .split import ControlledCoefficients, controlled_coefficients, split_terms

#: backend name → "module:class" of its :class:`Assembler`
BACKENDS: dict[str, str] = {"dolfinx": "symfp.control.dolfinx_assembler:DolfinxAssembler",
                            "skfem": "symfp.control.skfem_assembler:SkfemAssembler"}


class Assembler(Protocol):
    """What a backend provides (P1 Lagrange, serial, dofs numbered as in :attr:`coordinates`)."""

    coordinates: np.ndarray  #: (n, d) dof coordinates
    cells: np.ndarray  #: (n_cells, d + 1) the dofs (vertices) of each simplex

    def mass(self) -> sps.csr_matrix:
        """:math:`M_{ij} = \\int\\varphi_j\\varphi_i`."""

    def matrix(self, terms: list[Any]) -> sps.csr_matrix:
        """The matrix of weak-form IR terms (:class:`symfp.symbolic.weakform.Term`), row = test function."""

    def load(self, expr: Any) -> np.ndarray:
        """:math:`\\int g\\,\\varphi_i` for a SymPy expression g in the state."""

    def nodal(self, expr: Any) -> np.ndarray:
        """Nodal interpolant of a SymPy expression in the state."""

    def initial(self, p0: Any) -> np.ndarray:
        """Nodal values of the initial density (expression, callable or point), unit mass."""


@dataclass(eq=False)
class OperatorParts:
    r"""The assembled parts: :math:`M`, :math:`K_{ij}` (multiplying :math:`u^iB^{-j}`), and helpers.

    Attributes:
        M: mass matrix (CSR).
        parts: ``{(i, j): K_ij}`` (CSR); order 1: ``(1, 0)`` = :math:`K_b`, ``(2, 1)`` = :math:`K_D`.
        coefficients: the controlled SME (state, drift, diffusion, :math:`\eta_{\max}`, nominal B).
        assembler: the backend object (for loads and interpolation of objectives).
        backend: its name.
    """

    M: sps.csr_matrix
    parts: dict[tuple[int, int], sps.csr_matrix]
    coefficients: ControlledCoefficients
    assembler: Any
    backend: str
    terms: dict[tuple[int, int], list[Any]] = field(default_factory=dict)
    stabilisation: Any = None  #: a :class:`~symfp.control.stabilisation.Stabilisation`, or None

    @property
    def n(self) -> int:
        """Number of dofs."""
        return self.M.shape[0]

    @property
    def coordinates(self) -> np.ndarray:
        """(n, d) dof coordinates."""
        return self.assembler.coordinates

    @property
    def cells(self) -> np.ndarray:
        """(n_cells, d + 1) dofs of each simplex (P1: its vertices)."""
        return self.assembler.cells

    @property
    def cell_size(self) -> float:
        """h: the longest edge of any cell."""
        return cell_size(self.coordinates, self.cells)

    @property
    def state(self) -> tuple[sp.Symbol, ...]:
        """The state symbols."""
        return self.coefficients.state

    @property
    def depends_on_B(self) -> bool:
        """True when some part multiplies a power of 1/B."""
        return any(j > 0 for _, j in self.parts)

    def weights(self, u: float, B: float) -> dict[tuple[int, int], float]:
        r"""The monomials :math:`u^iB^{-j}` at one control value."""
        return {(i, j): u**i * B ** (-j) for i, j in self.parts}

    def dweights(self, u: float, B: float) -> tuple[dict, dict]:
        r""":math:`\partial_u(u^iB^{-j})` and :math:`\partial_B(u^iB^{-j})`."""
        du = {(i, j): (i * u ** (i - 1) if i else 0.0) * B ** (-j) for i, j in self.parts}
        dB = {(i, j): u**i * (-j * B ** (-j - 1) if j else 0.0) for i, j in self.parts}
        return du, dB

    def K(self, u: float, B: float) -> sps.csr_matrix:
        r""":math:`K(u, B) = \sum u^iB^{-j}K_{ij}`."""
        w = self.weights(u, B)
        out = None
        for key, Kp in self.parts.items():
            out = w[key] * Kp if out is None else out + w[key] * Kp
        return out.tocsr()

    def load(self, expr: Any) -> np.ndarray:
        """:math:`\\int g\\,\\varphi_i` (SymPy expression g in the state)."""
        return self.assembler.load(expr)

    def nodal(self, expr: Any) -> np.ndarray:
        """Nodal interpolant of an expression."""
        return self.assembler.nodal(expr)

    def initial(self, p0: Any) -> np.ndarray:
        """Nodal initial density of unit mass."""
        return self.assembler.initial(p0)


def cell_size(coordinates: np.ndarray, cells: np.ndarray) -> float:
    """The longest edge of any simplex (vertex coordinates (n, d), cells (n_cells, d + 1))."""
    v = coordinates[cells]  # (n_cells, d + 1, d)
    diffs = v[:, :, None, :] - v[:, None, :, :]
    return float(np.sqrt((diffs**2).sum(-1)).max())


def resolve_backend(backend: str | None) -> str:
    """The assembler's name for ``backend`` ("auto"/None: dolfinx when importable, else skfem).

    Raises:
        InputError: an unknown name; DependencyError: the named (or every) backend is not installed.
    """
    from ..fem.registry import resolve

    if backend is not None and backend != "auto" and backend not in BACKENDS:
        raise InputError(f"operator_parts: backend={backend!r} is not one of auto, {', '.join(BACKENDS)}")
    return resolve(backend, "operator_parts")


def _assembler(backend: str, mesh: Any, state: tuple[sp.Symbol, ...]) -> Any:
    mod, cls = BACKENDS[backend].split(":")
    return getattr(importlib.import_module(mod), cls)(mesh, state)


def operator_parts(model_or_sde: Any, mesh: Any, *, backend: str = "auto", order: int = 1,
                   controls: Mapping[str, Any] | None = None, stabilisation: Any = None) -> OperatorParts:
    r"""Assemble :math:`M` and the control parts :math:`K_{ij}` of the controlled Fokker–Planck operator.

    Args:
        model_or_sde: a :class:`symfp.SGD` (numeric lr = :math:`\eta_{\max}`, batch size = nominal B) or
            a :class:`symfp.SDE` with control symbols (see ``controls``).
        mesh: a symfp mesh (``symfp.mesh.box(...)``) of the state's dimension; the dolfinx backend wants a
            serial one (``comm=MPI.COMM_SELF``), scikit-fem takes any (rebuilt from its spec).
        backend: ``"auto"`` (dolfinx when importable, else skfem) or a key of :data:`BACKENDS`.
        order: SME order for a model (1 or 2).
        controls: for an SDE, ``{"u": u_symbol, "B": B_symbol}``.
        stabilisation: None (plain Galerkin), ``"streamline"``, ``"isotropic"`` or
            ``dict(kind=..., alpha=1.0)``: a linear artificial diffusion added to the part that multiplies
            u (:mod:`symfp.control.stabilisation`; first-order bias in h, adjoint still exact).

    Returns:
        :class:`OperatorParts` (SciPy CSR).

    Raises:
        InputError: the controls cannot enter the operator (see :mod:`symfp.control.split`), unknown
            backend, a bad stabilisation; MeshError: wrong mesh dimension; DependencyError: the backend
            is not installed.
    """
    from .stabilisation import parse, stabilisation_term

    stab_spec = parse(stabilisation)
    coef = controlled_coefficients(model_or_sde, order=order, controls=controls)
    terms = split_terms(coef)
    backend = resolve_backend(backend)
    asm = _assembler(backend, mesh, coef.state)
    stab = None
    if stab_spec is not None:
        term, stab = stabilisation_term(coef, *stab_spec, cell_size(asm.coordinates, asm.cells), asm.nodal)
        terms = {**terms, (1, 0): [*terms.get((1, 0), []), term]}
    M = asm.mass()
    parts = {key: asm.matrix(ts) for key, ts in terms.items()}
    # a part that is identically zero (e.g. a divergence that cancels) is dropped
    parts = {k: v for k, v in parts.items() if v.nnz and abs(v).max() > 0}
    return OperatorParts(M=M, parts=parts, coefficients=coef, assembler=asm, backend=backend, terms=terms,
                         stabilisation=stab)
