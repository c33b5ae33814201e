"""Particles split over MPI ranks: local counts and reductions with mpi4py.

Each rank simulates its own share of the particles; their random streams are those of their slabs,
seeded by ``seed`` and the slab's first global row (:mod:`symfp.particles.streams`), so ranks draw
independent numbers. Statistics are sums reduced
with ``allreduce``, so every rank gets the same answer. With no communicator (or mpi4py absent) all
of this degenerates to the serial case.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def world(comm: Any = None) -> Any:
    """The communicator to use: ``comm``, else MPI.COMM_WORLD when mpi4py is importable, else None."""
    if comm is not None:
        return comm
    try:
        from mpi4py import MPI
    except ImportError:  # pragma: no cover - mpi4py is a dependency
        return None
    return MPI.COMM_WORLD


def rank_size(comm: Any) -> tuple[int, int]:
    """(rank, size) of ``comm`` ((0, 1) for None)."""
    return (0, 1) if comm is None else (comm.rank, comm.size)


#: split in whole slabs (:data:`symfp.particles.streams.ROWS` rows) once every rank gets at least this
#: many of them (so the imbalance is at most 1/8 of a share)
MIN_SLABS_PER_RANK = 8


def share_of(n: int, rank: int, size: int, even: bool = False) -> int:
    """The number of particles of ``rank`` among ``size`` ranks.

    With at least :data:`MIN_SLABS_PER_RANK` slabs per rank the split is in whole slabs of
    :data:`~symfp.particles.streams.ROWS` rows (the last rank takes the remainder): every slab then
    starts at the same global row as in a serial run and is seeded alike, so on CPU the union of the
    ranks' particles *is* the serial run, bit for bit, whatever the number of ranks. Below that, shares
    differ by at most one particle (two when ``even``, for antithetic pairs), and the ranks' streams
    are independent but not the serial ones (the same law).
    """
    from .streams import ROWS

    slabs = n // ROWS
    if size > 1 and slabs >= MIN_SLABS_PER_RANK * size:
        mine = slabs // size + (1 if rank < slabs % size else 0)
        return mine * ROWS + (n - slabs * ROWS if rank == size - 1 else 0)
    unit = 2 if even else 1
    units = n // unit
    return (units // size + (1 if rank < units % size else 0)) * unit


def local_count(n: int, comm: Any, even: bool = False) -> int:
    """This rank's share of ``n`` particles (see :func:`share_of`)."""
    rank, size = rank_size(comm)
    return share_of(n, rank, size, even)


def allsum(value: Any, comm: Any) -> Any:
    """Sum of a number or numpy array over all ranks (the value itself without MPI)."""
    if comm is None or comm.size == 1:
        return value
    from mpi4py import MPI

    if np.isscalar(value):
        return comm.allreduce(value, op=MPI.SUM)
    arr = np.ascontiguousarray(value, dtype=np.float64)
    out = np.empty_like(arr)
    comm.Allreduce(arr, out, op=MPI.SUM)
    return out


def allgather_rows(arr: np.ndarray, comm: Any) -> np.ndarray:
    """Concatenate per-rank arrays along axis 0 on every rank."""
    if comm is None or comm.size == 1:
        return arr
    return np.concatenate(comm.allgather(arr), axis=0)
