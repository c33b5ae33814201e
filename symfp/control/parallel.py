r"""The control layer under MPI: serial SciPy work, on one rank or refused.

Everything in :mod:`symfp.control` downstream of the assemblers is SciPy on whole matrices (sparse LU
per control interval), so it does not distribute. Under ``mpirun -n P`` there are three cases:

* :func:`~symfp.control.optimise.optimise` with ``comm=`` (P > 1): rank 0 optimises, the result is
  broadcast, and every rank rebuilds the trajectory at the same controls — every rank returns the same
  :class:`~symfp.control.optimise.ControlResult` (an error on rank 0 is raised on every rank).
* :func:`~symfp.control.optimise.optimise` without ``comm``: each rank optimises its own (serial)
  problem — the same numbers on every rank when they build the same problem, P times the work.
* :func:`~symfp.control.study.schedule_study` (``symfp control``, the gallery): refused under P > 1
  with an :class:`~symfp.errors.InputError` on every rank before anything is built (its particle runs,
  report and mesh construction are not rank-aware): run it without ``mpirun``.

The number of ranks is read from the launcher's environment (Open MPI, MPICH/Hydra, MVAPICH), or from
mpi4py when it is already imported, so that the serial path never imports mpi4py.
"""

from __future__ import annotations

import os
import sys

from ..errors import InputError

_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")


def world_size() -> int:
    """The number of MPI ranks this process was launched with (1 when not under mpirun)."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None:
        try:
            return int(mpi.COMM_WORLD.Get_size())
        except Exception:  # pragma: no cover - MPI not initialised: fall back to the environment
            pass
    for var in _SIZE_VARS:
        if var in os.environ:
            try:
                return max(int(os.environ[var]), 1)
            except ValueError:
                pass
    return 1


def require_serial(where: str) -> None:
    """Raise :class:`~symfp.errors.InputError` when launched on several MPI ranks.

    Raises:
        InputError: under ``mpirun -n P`` with P > 1, saying what runs serially and what to do.
    """
    size = world_size()
    if size > 1:
        raise InputError(
            f"{where}: launched on {size} MPI ranks, but a control study is serial (SciPy sparse LU on "
            "whole matrices, particle runs and the report on one process) and would run "
            f"{size} times, writing the same files. Run it without mpirun; to share an "
            "optimisation between ranks call symfp.control.optimise(problem, comm=MPI.COMM_WORLD) "
            "(rank 0 optimises, the result is broadcast)")
