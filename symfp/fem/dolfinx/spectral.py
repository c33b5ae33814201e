r"""Spectrum of the Fokker–Planck operator by finite elements; the spectral gap.

With the forward weak form (:func:`symfp.symbolic.weakform.forward_form`, zero flux natural, :math:`c = b -
\nabla\cdot D`) the eigenproblem :math:`-\nabla\cdot J[p] = -\lambda p` reads, in matrices,

.. math:: K x = \lambda M x,\qquad K_{ij} = \int (D\nabla\phi_j)\cdot\nabla\phi_i - \int\phi_j\,c\cdot
          \nabla\phi_i,\qquad M_{ij} = \int \phi_j\phi_i ,

so :math:`\lambda` are the eigenvalues of :math:`-\mathcal L^*` (the same as those of :math:`-\mathcal L`,
the generator, since the two are adjoint): :math:`\lambda_0 = 0` (the stationary density, when every
wall reflects) and the **spectral gap** is the smallest real part of the non-zero ones, the slowest
exponential rate of relaxation to equilibrium. With absorbing parts (:math:`p = 0` there) there is no
zero eigenvalue and :math:`\lambda_0 > 0` is the exit rate; :attr:`Spectrum.gap` is then
:math:`\mathrm{Re}\,\lambda_0`.

**Solvers.** SLEPc (``slepc4py``, Debian ``python3-slepc4py-real``): a generalised non-Hermitian
problem (GNHEP) with shift-and-invert about a target :math:`\sigma < 0` (MUMPS LU of
:math:`K - \sigma M`, non-singular since every eigenvalue has :math:`\mathrm{Re}\,\lambda \ge 0`), so
the eigenvalues nearest 0 converge first. The default :math:`\sigma = -10^{-6}\|K\|_\infty/\|M\|_\infty`
sits just left of 0 on the scale of the discrete operator (good separation for metastable problems
whose gap is tiny). Fallback when slepc4py is absent: ``scipy.sparse.linalg.eigs`` in shift-invert mode
with the same :math:`\sigma` — serial only (the PETSc matrices are copied to one process's SciPy CSR).
Dirichlet rows of absorbing parts get :math:`K_{ii} = 1`, :math:`M_{ii} = 0` (infinite eigenvalues,
never near the target).

This module never imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import DependencyError, InputError, SolverError
from . import compat
from .exit_time import check_problem, dirichlet_facets, lower_terms


@dataclass(eq=False)
class Spectrum:
    r"""The eigenvalues of :math:`K x = \lambda M x` nearest 0, sorted by real part.

    Attributes:
        eigenvalues: complex array (real problems with a real spectrum have zero imaginary parts to
            round-off); ``real`` gives their real parts.
        gap: the smallest real part of a non-zero eigenvalue (or :math:`\mathrm{Re}\lambda_0` when no
            zero eigenvalue is present, e.g. with absorbing parts).
        has_zero: whether :math:`\lambda_0` is zero (to ``zero_tol`` relative to the operator scale).
        eigenfunctions: dolfinx Functions (real parts) in the same order, when requested.
        backend: "slepc" or "scipy".
    """

    eigenvalues: np.ndarray
    gap: float
    has_zero: bool
    backend: str
    eigenfunctions: list[Any] = field(default_factory=list, repr=False)

    @property
    def real(self) -> np.ndarray:
        """Real parts of the eigenvalues."""
        return self.eigenvalues.real


def _slepc_solve(K: Any, M: Any, k: int, target: float, tol: float, options: Mapping[str, Any] | None,
                 vectors: bool) -> tuple[np.ndarray, list[Any]]:
    from slepc4py import SLEPc

    eps = SLEPc.EPS().create(K.getComm())
    eps.setOperators(K, M)
    eps.setProblemType(SLEPc.EPS.ProblemType.GNHEP)
    eps.setDimensions(nev=k, ncv=max(2 * k + 1, k + 16))
    eps.setTarget(target)
    eps.setWhichEigenpairs(SLEPc.EPS.Which.TARGET_MAGNITUDE)
    eps.setTolerances(tol, 1000)
    st = eps.getST()
    st.setType(SLEPc.ST.Type.SINVERT)
    ksp = st.getKSP()
    ksp.setType("preonly")
    pc = ksp.getPC()
    pc.setType("lu")
    pc.setFactorSolverType("mumps")
    compat.set_from_options(eps, options, "symfp_spectral_")
    eps.solve()
    n = eps.getConverged()
    if n < k:
        reason = eps.getConvergedReason()
        eps.destroy()
        raise SolverError(f"spectral: SLEPc converged {n} of the {k} eigenvalues asked (reason {reason}). "
                          "Ask for fewer, refine/shrink the domain, or set petsc_options={'eps_max_it': ...}")
    vals = np.array([eps.getEigenvalue(i) for i in range(n)], dtype=complex)
    vecs = []
    if vectors:
        for i in range(n):
            vr, vi = K.createVecRight(), K.createVecRight()
            eps.getEigenpair(i, vr, vi)
            vecs.append(vr)
    eps.destroy()
    return vals, vecs


def _scipy_solve(K: Any, M: Any, k: int, target: float, tol: float, vectors: bool) -> tuple[np.ndarray, list]:
    import scipy.sparse as sps
    from scipy.sparse.linalg import eigs

    def csr(A: Any) -> Any:
        ai, aj, av = A.getValuesCSR()
        return sps.csr_matrix((av, aj, ai), shape=A.getSize())

    Ks, Ms = csr(K), csr(M)
    vals, vecs = eigs(Ks, k=k, M=Ms, sigma=target, which="LM", tol=tol, return_eigenvectors=True)
    out = []
    if vectors:
        for i in range(vecs.shape[1]):
            v = K.createVecRight()
            v.setArray(np.real(vecs[:, i]))
            out.append(v)
    return np.asarray(vals, dtype=complex), out


def spectrum(sde: Any, mesh: Any, k: int = 6, absorbing: str | Iterable[str] | None = (), degree: int = 1,
             target: float | None = None, backend: str | None = None, tol: float = 1e-10,
             zero_tol: float = 1e-8, eigenfunctions: bool = False,
             petsc_options: Mapping[str, Any] | None = None) -> Spectrum:
    r"""The ``k`` eigenvalues of :math:`-\nabla\cdot J` (forward operator, generalised form) nearest 0.

    Args:
        sde: a numeric :class:`symfp.SDE`.
        mesh: a :class:`symfp.fem.dolfinx.mesh.Mesh`, dolfinx mesh or gmsh path.
        k: how many eigenvalues.
        absorbing: boundary parts with :math:`p = 0` (default ``()``: every wall reflects; None: the
            whole boundary absorbs).
        degree: Lagrange degree.
        target: the shift :math:`\sigma` (< 0 recommended); default in the module docstring.
        backend: "slepc", "scipy" (serial only) or None (SLEPc when importable, else SciPy in serial).
        tol: eigen-solver tolerance (relative residual).
        zero_tol: :math:`|\lambda_0| <` zero_tol · :math:`\|K\|_\infty/\|M\|_\infty` counts as zero.
        eigenfunctions: also return the eigenfunctions (real parts) as dolfinx Functions.
        petsc_options: extra SLEPc/PETSc options (without prefix), e.g. ``{"eps_ncv": 40}``.

    Returns:
        A :class:`Spectrum`; ``.gap`` is the spectral gap.

    Raises:
        DependencyError: SLEPc missing in parallel (or backend="slepc" without it).
        MeshError, InputError, SolverError: as for the other steady solvers.
    """
    from ...symbolic.weakform import forward_form

    where = "spectrum"
    if backend not in (None, "slepc", "scipy"):
        raise InputError(f"{where}: backend={backend!r} is unknown; use 'slepc', 'scipy' or None (auto)")
    if not (isinstance(k, (int, np.integer)) and k >= 1):
        raise InputError(f"{where}: k must be a positive integer, got {k!r}")
    m = check_problem(sde, mesh, where)
    comm = m.mesh.comm
    if backend is None:
        try:
            import slepc4py  # noqa: F401

            backend = "slepc"
        except ImportError:
            backend = "scipy"
    if backend == "slepc":
        try:
            import slepc4py  # noqa: F401
        except ImportError as exc:
            raise DependencyError(f"{where}: backend='slepc' needs slepc4py ({exc}); install Debian's "
                                  "python3-slepc4py-real, or use backend='scipy' (serial only)") from exc
    if backend == "scipy" and comm.size > 1:
        raise DependencyError(f"{where}: the SciPy fallback runs on one process but the mesh lives on "
                              f"{comm.size}; install slepc4py (python3-slepc4py-real) for parallel runs")
    wf = forward_form(sde)
    dm = compat.dolfinx_modules()
    ufl = dm.ufl
    msh = m.mesh
    V, u, v, x = compat.lagrange_problem(msh, degree)
    dx = ufl.dx(domain=msh)
    bcs = []
    parts = None if absorbing is None else ((absorbing,) if isinstance(absorbing, str) else tuple(absorbing))
    if parts != ():
        facets = dirichlet_facets(m, parts, where)
        dofs = dm.fem.locate_dofs_topological(V, msh.topology.dim - 1, facets)
        bcs = [dm.fem.dirichletbc(dm.PETSc.ScalarType(0.0), dofs, V)]
    a_form = compat.form(lower_terms(wf.bilinear, wf.state, u, v, x) * dx)
    K = compat.assemble_matrix(a_form, bcs, diagonal=1.0)
    M = compat.assemble_matrix(compat.form(ufl.inner(u, v) * dx), bcs, diagonal=0.0)
    scale = K.norm(dm.PETSc.NormType.INFINITY) / M.norm(dm.PETSc.NormType.INFINITY)
    sigma = -1e-6 * scale if target is None else float(target)
    n_dofs = compat.num_global_dofs(V)
    if k >= n_dofs - 1:
        raise InputError(f"{where}: k={k} eigenvalues asked of a problem with {n_dofs} dofs; refine the mesh")
    try:
        if backend == "slepc":
            vals, vecs = _slepc_solve(K, M, k, sigma, tol, petsc_options, eigenfunctions)
        else:
            vals, vecs = _scipy_solve(K, M, k, sigma, tol, eigenfunctions)
    finally:
        K.destroy()
        M.destroy()
    order = np.lexsort((vals.imag, vals.real))[:k]
    vals = vals[order]
    has_zero = bool(abs(vals[0]) < zero_tol * scale)
    rest = vals[1:] if has_zero else vals
    gap = float(rest[0].real) if len(rest) else float("nan")
    funcs = []
    for i in order if eigenfunctions else []:
        f = dm.fem.Function(V)
        vecs[i].copy(compat.petsc_vec(f))
        f.x.scatter_forward()
        funcs.append(f)
    return Spectrum(eigenvalues=vals, gap=gap, has_zero=has_zero, backend=backend, eigenfunctions=funcs)


def spectral_gap(sde: Any, mesh: Any, **kwargs: Any) -> float:
    """The spectral gap (see :func:`spectrum`; keyword arguments are passed on)."""
    kwargs.setdefault("k", 3)
    return spectrum(sde, mesh, **kwargs).gap
