r"""Data-mean and data-covariance reductions at many points as one C kernel (the FE coefficients).

For P points :math:`\theta_p` and a data set of N samples with weights :math:`w_i` (1/N, or a
quadrature's), the kernel computes, for every inner expression :math:`r_j(\theta; f)` of the nodes
(in its stable form, the state-free parts hoisted into per-sample features :math:`f_i`,
:func:`~symfp.symbolic.datamean.data_features`),

.. math::
    \bar r_j(\theta_p) = \sum_i w_i\, r_j(\theta_p; f_i), \qquad
    C_{ab}(\theta_p) = \sum_i w_i\,(r_{a,pi} - \bar r_a)(r_{b,pi} - \bar r_b),

the covariance in a second pass over the centred values (as the numpy path: no cancellation of
:math:`\overline{r_a r_b} - \bar r_a \bar r_b`). Per point both loops over the samples are vectorised
(``#pragma omp simd`` reductions over contiguous feature columns, vector ``exp``…); the points are
split over the cores' threads (``ctypes`` releases the GIL). Cost: a few ns per point × sample,
against ≈150 ns for the chunked numpy evaluation of the same expressions (temporaries per operation).
Non-finite results at a point are returned as such; the caller re-evaluates those points on the
careful path that names the sample.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import sympy as sp

from .build import NativeError, enabled, load
from .cprint import Printer, c_names, check_symbols, cse_block, prelude
from .threads import available_cores

_KERNEL = r"""
void symfp_dmean(int64_t P, int64_t N, const double *restrict pts, const double *restrict feat,
                 const double *restrict w, double *restrict means, double *restrict covs) {
    (void)covs;
    for (int64_t p = 0; p < P; p++) {
%(load)s
%(passes)s
    }
}
"""

# one pass over the samples: accumulators, a vectorised weighted sum, the stores (8-space indent)
_PASS = r"""        {
%(zero)s
#pragma omp simd reduction(+:%(accs)s)
            for (int64_t i = 0; i < N; i++) {
                const real_t wi = w[i];
%(feats)s
%(code)s
%(sums)s
            }
%(store)s
        }"""


def _pass(accs: Sequence[str], feats: str, code: str, terms: Sequence[str], out: str) -> str:
    """A pass ``acc_j = Σ_i w_i · term_j`` over the samples, stored to ``out[p·J + j]`` (a later pass
    reads the means back from there)."""
    J = len(accs)
    return _PASS % {
        "zero": "\n".join(f"            real_t {a} = 0;" for a in accs),
        "accs": ", ".join(accs), "feats": feats, "code": code,
        "sums": "\n".join(f"                {a} += wi * ({t});" for a, t in zip(accs, terms, strict=True)),
        "store": "\n".join(f"            {out}[p * {J} + {j}] = {a};" for j, a in enumerate(accs)),
    }


def reduction_source(*, args: Sequence[sp.Symbol], features: Sequence[sp.Symbol],
                     inners: Sequence[sp.Expr], pairs: Sequence[tuple[int, int]]) -> str:
    """The C source of the reduction (exports ``symfp_dmean``).

    Args:
        args: the point coordinates' symbols (d of them).
        features: the K per-sample feature symbols.
        inners: the M inner expressions in ``args`` and ``features``.
        pairs: the (a, b) index pairs of the covariances wanted.

    Raises:
        NativeError: an expression has no C form or holds other symbols.
    """
    printer = Printer(False)
    ren = c_names([("t", args), ("f", features)])
    rs = [sp.sympify(e).xreplace(ren) for e in inners]
    check_symbols("data-mean", rs, set(ren.values()))
    d, K, M = len(args), len(features), len(rs)
    feats = "\n".join(f"                const real_t f{k} = feat[{k} * N + i];" for k in range(K))
    code1, out1 = cse_block(printer, rs, "a", " " * 16)
    # pass 1: the means s_j, read back by pass 2 from means[] (the accumulators are block-local)
    passes = [_pass([f"s{j}" for j in range(M)], feats, code1, out1, "means")]
    if pairs:
        need = sorted({k for ab in pairs for k in ab})
        code2, out2 = cse_block(printer, [rs[k] for k in need], "b", " " * 16)
        val = {k: f"({c})" for k, c in zip(need, out2, strict=True)}
        mean = {k: f"means[p * {M} + {k}]" for k in need}
        passes.append(_pass([f"c{q}" for q in range(len(pairs))], feats, code2,
                            [f"({val[a]} - {mean[a]}) * ({val[b]} - {mean[b]})" for a, b in pairs], "covs"))
    load = "\n".join(f"        const real_t t{j} = pts[p * {d} + {j}];" for j in range(d))
    return prelude(False) + _KERNEL % {"load": load, "passes": "\n".join(passes)}


_POOL: ThreadPoolExecutor | None = None


class Reduction:
    """A built reduction kernel: ``(pts (P, d), feat (K, N), w (N,)) -> (means (P, M), covs (P, C))``.

    Raises:
        NativeError: as :func:`reduction_source`, or the build fails.
    """

    def __init__(self, *, args: Sequence[sp.Symbol], features: Sequence[sp.Symbol],
                 inners: Sequence[sp.Expr], pairs: Sequence[tuple[int, int]]):
        t0 = time.perf_counter()
        lib, name, self.cached = load(reduction_source(args=args, features=features, inners=inners,
                                                       pairs=pairs), "symfp_dmean")
        self.d, self.K, self.M, self.C = len(args), len(features), len(inners), len(pairs)
        self._fn = getattr(lib, name)
        self._fn.restype = None
        ptr = ctypes.c_void_p
        self._fn.argtypes = [ctypes.c_int64, ctypes.c_int64, ptr, ptr, ptr, ptr, ptr]
        self.build_time = time.perf_counter() - t0

    def __call__(self, pts: np.ndarray, feat: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        global _POOL
        pts = np.ascontiguousarray(pts, dtype=np.float64).reshape(-1, self.d) if self.d else \
            np.zeros((len(pts), 0))
        feat = np.ascontiguousarray(feat, dtype=np.float64)
        w = np.ascontiguousarray(w, dtype=np.float64)
        P, N = pts.shape[0], w.shape[0]
        if feat.shape != (self.K, N):
            raise NativeError(f"feature table {feat.shape}, expected ({self.K}, {N})")
        means = np.empty((P, self.M))
        covs = np.empty((P, max(self.C, 1)))

        def part(lo: int, hi: int) -> None:
            self._fn(hi - lo, N, pts[lo:].ctypes.data, feat.ctypes.data, w.ctypes.data,
                     means[lo:].ctypes.data, covs[lo:].ctypes.data)

        # split the points over the cores, unless called from a worker thread (the particle slab pool)
        main = threading.current_thread() is threading.main_thread()
        T = min(available_cores(), max(1, P // 64)) if main else 1
        if T <= 1:
            part(0, P)
        else:
            if _POOL is None or _POOL._max_workers < T:
                _POOL = ThreadPoolExecutor(T, thread_name_prefix="symfp-dmean")
            cuts = np.linspace(0, P, T + 1).astype(int)
            for f in [_POOL.submit(part, int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]:
                f.result()
        return means, covs[:, : self.C]


_CACHE: dict[Any, Reduction | None] = {}
ERRORS: dict[Any, str] = {}


def reduction(key: Any, **kw: Any) -> Reduction | None:
    """The reduction for ``key`` (built once per process; None when native kernels are off or the build
    failed, the reason in :data:`ERRORS`)."""
    if not enabled():
        return None
    if key not in _CACHE:
        try:
            _CACHE[key] = Reduction(**kw)
        except NativeError as exc:
            _CACHE[key] = None
            ERRORS[key] = str(exc)
    return _CACHE[key]
