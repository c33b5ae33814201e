r"""The scikit-fem finite-element backend of symfp (pip-only: scikit-fem, scipy, meshio; serial).

Importing this package imports neither scikit-fem nor dolfinx; the sub-modules import scikit-fem:

- :mod:`symfp.fem.skfem.mesh`: a :class:`symfp.fem.mesh.NeutralMesh` (or a dolfinx mesh's spec) as a
  scikit-fem mesh with its named boundary facets and regions;
- :mod:`symfp.fem.skfem.coefficients`: SymPy coefficients → numpy at quadrature points (``sp.lambdify``);
- :mod:`symfp.fem.skfem.lowering`: the one lowering of the weak-form IR's term kinds to scikit-fem forms,
  and :func:`~symfp.fem.skfem.lowering.assemble_parts` (M, K_D, K_b as scipy.sparse matrices);
- :mod:`symfp.fem.skfem.forward`: the forward solve on :mod:`symfp.fem.schemes` and
  :mod:`symfp.fem.trackers` (SuperLU factorisation of the constant step matrix, once);
- :mod:`symfp.fem.skfem.stabilise`: SUPG (forward; the P2 Hessian part of the exit-time SUPG) and the
  Gibbs weight;
- :mod:`symfp.fem.skfem.factorisations`: factorisations remembered by the matrix's values (LRU);
- :mod:`symfp.fem.skfem.steady`: mean exit time, stationary density, spectrum (scipy.sparse.linalg);
- :mod:`symfp.fem.skfem.field`: steady results; forward results are :class:`symfp.fem.solution.Solution`.

Serial only: under several MPI ranks every entry point refuses (:func:`require_serial`) rather than
run the same serial problem on each rank and write the same files twice.
"""

from __future__ import annotations

import os
from typing import Any

from ...errors import DependencyError, InputError

#: environment variables that MPI launchers set to the number of ranks
_RANK_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", "MV2_COMM_WORLD_SIZE")


def require_skfem(feature: str) -> Any:
    """``import skfem`` for ``feature``, or a :class:`DependencyError` saying ``pip install scikit-fem``."""
    try:
        import skfem
    except ImportError as exc:
        raise DependencyError(
            f"{feature} with backend='skfem' needs scikit-fem, which cannot be imported ({exc}): "
            "pip install scikit-fem meshio (or pip install 'symfp[fem]')") from exc
    return skfem


def mpi_size() -> int:
    """Ranks this process runs among: mpi4py's world size when mpi4py is loaded, else the launcher's."""
    import sys

    if "mpi4py.MPI" in sys.modules:
        return int(sys.modules["mpi4py.MPI"].COMM_WORLD.size)
    for var in _RANK_VARS:
        try:
            return max(1, int(os.environ[var]))
        except (KeyError, ValueError):
            continue
    return 1


def require_serial(where: str) -> None:
    """Refuse to run under several MPI ranks (the scikit-fem backend is serial)."""
    n = mpi_size()
    if n > 1:
        raise InputError(
            f"{where}: the scikit-fem backend is serial but this process is one of {n} MPI ranks; run it "
            "without mpirun, or use backend='dolfinx' for parallel solves")
