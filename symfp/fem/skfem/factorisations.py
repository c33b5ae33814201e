r"""Sparse LU factorisations remembered by the matrix's values (LRU-bounded), for the time loop.

With time-dependent coefficients the forward solver re-assembles :math:`K(t_{n+1})` and asks for
the step matrix's factorisation at every step. When the coefficients repeat — a piecewise-constant
learning-rate or batch-size schedule, a periodic coefficient sampled on its period — the step
matrix repeats bit for bit, and its factorisation can be reused instead of recomputed (a SuperLU
factorisation of 2.6·10⁵ P1 dofs costs ≈ 7 s, a solve ≈ 0.14 s). :class:`FactorisationCache` wraps
a solver factory (:func:`symfp.fem.schemes.nd_splu_solver`): the key is a BLAKE2b digest of the
CSR matrix (shape, ``indptr``, ``indices``, ``data`` bytes), so a hit is an identical matrix, never
an approximate one; at most ``maxsize`` factorisations are kept (least recently used dropped).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

#: factorisations kept by default (a schedule with a few phases, CN's and BDF2's start matrices)
DEFAULT_MAXSIZE = 8


def matrix_key(A: Any) -> str:
    """A digest of a sparse matrix's exact values and pattern (canonical CSR)."""
    import scipy.sparse as sps

    C = sps.csr_matrix(A)
    if not C.has_canonical_format:  # canonicalise a copy, never the caller's arrays
        C = C.copy()
        C.sum_duplicates()
    h = hashlib.blake2b(digest_size=20)
    h.update(np.asarray(C.shape, dtype=np.int64).tobytes())
    for arr in (C.indptr, C.indices):
        h.update(np.ascontiguousarray(arr, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(C.data, dtype=np.float64).tobytes())
    return h.hexdigest()


class FactorisationCache:
    """A solver factory that factorises each distinct matrix once (at most ``maxsize`` kept).

    Args:
        factory: ``A -> solve`` (e.g. :func:`symfp.fem.schemes.nd_splu_solver` of the dof points).
        maxsize: most factorisations kept (≥ 1); the least recently used is dropped first.

    Attributes:
        factorisations: matrices actually factorised (cache misses).
        hits: requests answered from the cache.
    """

    def __init__(self, factory: Callable[[Any], Any], *, maxsize: int = DEFAULT_MAXSIZE):
        from ...errors import InputError

        if not (isinstance(maxsize, int) and maxsize >= 1):
            raise InputError(f"FactorisationCache: maxsize must be an integer >= 1, got {maxsize!r}")
        self.factory = factory
        self.maxsize = maxsize
        self.factorisations = 0
        self.hits = 0
        self._cache: OrderedDict[str, Any] = OrderedDict()

    def __call__(self, A: Any) -> Any:
        key = matrix_key(A)
        solve = self._cache.get(key)
        if solve is not None:
            self.hits += 1
            self._cache.move_to_end(key)
            return solve
        solve = self.factory(A)
        self.factorisations += 1
        self._cache[key] = solve
        if len(self._cache) > self.maxsize:
            self._cache.popitem(last=False)
        return solve

    def __len__(self) -> int:
        return len(self._cache)
