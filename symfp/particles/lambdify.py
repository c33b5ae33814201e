r"""SymPy matrices → batched torch functions (common subexpressions eliminated once).

A d×k SymPy matrix :math:`M(\theta, u)` becomes a function that takes tensors of shape (n,) for each
argument symbol and returns a tensor of shape (n, d, k) (or (n, d) for a column), so that one call
evaluates the expression for every particle at once.

Two things are done before SymPy's printer sees the expression:

* every numeric sub-expression that is not an integer (:math:`\sqrt5/50`, :math:`\pi`, :math:`e`,
  :math:`2^{1/3}`, rationals) is evaluated once to a 17-digit Float, so the generated code multiplies
  tensors by Python floats (``torch.sqrt(5)`` on an ``int`` is a TypeError) and never re-evaluates a
  constant per step; integer exponents stay integers (``x**2``, not ``x**2.0``);
* the entries are written column by column into one output tensor (preallocated by the caller
  or allocated once per call), instead of broadcasting constants and stacking the columns.

**Data-means.** An expression holding :class:`~symfp.symbolic.datamean.DataMean` /
:class:`~symfp.symbolic.datamean.DataCov` nodes (the SME of a loss over a data set) is lowered in two
parts: every node becomes a batched reduction over the samples, evaluated for all particles in chunks
of at most :data:`DATA_CHUNK_ELEMENTS` (particle × sample) values (the inner expression in its stable
form: softplus, sigmoids; the covariance in two passes over centred values), and the outer expression
takes the node values as extra arguments. Cost per call: (number of nodes) × n × N evaluations of the
inner expressions; memory: a few chunk-sized temporaries (32 MB each in float64), whatever n and N.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sympy as sp
import torch

from ..errors import ExpressionError
from ..native.cprint import numeric_constants
from ..symbolic.datamean import (
    DataCov,
    DataMean,
    data_nodes,
    distinct_inners,
    native_node_values,
    stable_forms,
)

TensorFn = Callable[..., torch.Tensor]

#: the largest number of (particle × sample) values one chunk of a data-mean reduction holds
DATA_CHUNK_ELEMENTS = 1 << 22


def _nodes_reduction(nodes: Sequence[Any], args: Sequence[sp.Symbol], where: str,
                     chunk_elements: int | None = None) -> Callable[..., list[torch.Tensor]]:
    """Data-mean/-covariance nodes over one data set as ``g(*tensors) -> [(n,), ...]``.

    All inner expressions are lowered together (common sub-expressions such as one sigmoid shared by
    every derivative of a logistic loss are computed once per chunk), then reduced over the samples.
    """
    ds = nodes[0].dataset
    syms = tuple(ds.symbols)
    inners, pos = distinct_inners(nodes)
    try:
        fn = sp.lambdify([*args, *syms], [numeric_constants(stable_forms(e)) for e in inners],
                         modules="torch", cse=True)
    except Exception as exc:  # noqa: BLE001 - sympy raises many kinds here
        raise ExpressionError(f"{where}: cannot translate the data-means {nodes} to torch ({exc})") from exc
    cache: dict = {}

    def columns(ref: torch.Tensor) -> list[torch.Tensor]:
        key = (ref.dtype, ref.device)
        if key not in cache:
            cache[key] = [torch.as_tensor(ds.arrays[s], dtype=ref.dtype, device=ref.device)[None, :]
                          for s in syms]
        return cache[key]

    n_data = ds.n
    wcache: dict = {}

    def weights(ref: torch.Tensor) -> torch.Tensor | None:
        """The quadrature weights of a weighted data set (None: the plain mean)."""
        if getattr(ds, "weights", None) is None:
            return None
        key = (ref.dtype, ref.device)
        if key not in wcache:
            wcache[key] = torch.as_tensor(ds.weights, dtype=ref.dtype, device=ref.device)
        return wcache[key]

    native = [True]  # the C reduction until it reports itself unavailable

    def g(*tensors: torch.Tensor) -> list[torch.Tensor]:
        budget = chunk_elements or DATA_CHUNK_ELEMENTS
        per = max(1, budget // (max(n_data, 1) * max(1, len(inners))))
        ref = torch.broadcast_tensors(*tensors)[0] if len(tensors) > 1 else tensors[0]
        flat = [torch.broadcast_to(t, ref.shape).reshape(-1) for t in tensors]
        n = flat[0].numel()
        if native[0] and ref.device.type == "cpu" and chunk_elements is None:
            # the C kernel (symfp.native.datamean): a few ns per particle × sample instead of ≈90
            vals = native_node_values(nodes, args, [t.detach().to(torch.float64).numpy() for t in flat])
            if vals is not None:
                return [torch.from_numpy(v).to(ref.dtype).view(ref.shape) for v in vals]
            native[0] = False
        cols = columns(ref)
        outs = [torch.empty(n, dtype=ref.dtype, device=ref.device) for _ in nodes]
        for lo in range(0, n, per):
            hi = min(n, lo + per)
            vals = fn(*[t[lo:hi, None] for t in flat], *cols)
            vals = [torch.broadcast_to(torch.as_tensor(v, dtype=ref.dtype, device=ref.device),
                                       (hi - lo, n_data)) for v in vals]
            wts = weights(ref)

            def avg(v: torch.Tensor, wts: torch.Tensor | None = wts) -> torch.Tensor:
                return v.mean(dim=1, keepdim=True) if wts is None else (v @ wts)[:, None]

            means = [avg(v) for v in vals]
            for k, nd in enumerate(nodes):
                if isinstance(nd, DataCov):
                    a, b = (pos[e] for e in nd.exprs)
                    ca = vals[a] - means[a]
                    cb = ca if a == b else vals[b] - means[b]
                    outs[k][lo:hi] = avg(ca * cb)[:, 0]
                else:
                    outs[k][lo:hi] = means[pos[nd.expr]][:, 0]
        for k, o in enumerate(outs):
            if not torch.isfinite(o).all():
                bad = int((~torch.isfinite(o)).sum())
                raise ExpressionError(
                    f"{where}: the data-mean {nodes[k]} is not finite at {bad} particle(s); the loss "
                    "overflows there (rewrite it in a stable form or keep the particles in range)"
                )
        return [o.view(ref.shape) for o in outs]

    return g


def _with_data_nodes(expr: Any, args: Sequence[sp.Symbol], where: str, pure: bool) -> TensorFn | None:
    """The lowering of an expression holding data-mean nodes, or None when it holds none."""
    nodes = sorted(data_nodes(sp.Matrix(expr) if isinstance(expr, sp.MatrixBase) else expr),
                   key=sp.default_sort_key)
    if not nodes:
        return None
    placeholders = [sp.Dummy(f"dm{k}", real=True) for k in range(len(nodes))]
    rep = dict(zip(nodes, placeholders, strict=True))
    body = (sp.Matrix(expr).xreplace(rep) if isinstance(expr, sp.MatrixBase)
            else sp.sympify(expr).xreplace(rep))
    outer = torch_function(body, (*args, *placeholders), where, pure=pure)
    groups: dict[int, list[int]] = {}
    for k, nd in enumerate(nodes):
        groups.setdefault(id(nd.dataset), []).append(k)
    reds = [(ks, _nodes_reduction([nodes[k] for k in ks], args, where)) for ks in groups.values()]

    def f(*tensors: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        ref = torch.broadcast_tensors(*tensors)[0] if len(tensors) > 1 else tensors[0]
        mvals: list[Any] = [None] * len(nodes)
        for ks, r in reds:
            for k, v in zip(ks, r(*tensors), strict=True):
                mvals[k] = v
        full = [torch.broadcast_to(t, ref.shape) for t in tensors]
        if pure:
            return outer(*full, *mvals)
        return outer(*full, *mvals, out=out)

    f.expr = expr  # type: ignore[attr-defined]
    f.is_constant = False  # type: ignore[attr-defined]
    f.data_nodes = len(nodes)  # type: ignore[attr-defined]
    return f


def _entries(expr: Any) -> tuple[list[sp.Expr], tuple[int, ...]]:
    if isinstance(expr, sp.MatrixBase):
        m = sp.Matrix(expr)
        shape = (m.rows,) if m.cols == 1 else (m.rows, m.cols)
        return list(m), shape
    return [sp.sympify(expr)], ()


def torch_function(expr: Any, args: Sequence[sp.Symbol], where: str, pure: bool = False) -> TensorFn:
    """Lambdify ``expr`` to torch with common-subexpression elimination.

    Args:
        expr: a SymPy scalar or matrix in the symbols ``args`` only.
        args: the argument symbols, in call order.
        where: the caller, for error messages.
        pure: build the result with ``torch.stack`` (no ``out``, no in-place writes). Slower
            eagerly, but what ``torch.compile`` fuses into one vectorised loop (column writes into a
            preallocated tensor compile to strided scalar stores, ≈10x slower).

    Returns:
        ``f(*tensors, out=None)`` with each tensor of shape (n,) (or a common broadcastable shape);
        the result has shape (n, *expr.shape) (a column d×1 gives (n, d); a scalar gives (n,)).
        ``out``, when given, is a contiguous tensor of that shape (or of shape (n, d·k)) that receives
        the values; no other allocation of the result takes place.

    Raises:
        ExpressionError: when the expression has symbols outside ``args`` or a non-real constant.
    """
    entries, shape = _entries(expr)
    if any(e.has(DataMean, DataCov) for e in entries):
        lowered = _with_data_nodes(expr, args, where, pure)
        if lowered is not None:
            return lowered
    free = set().union(*(e.free_symbols for e in entries)) - set(args)
    if free:
        names = ", ".join(sorted(map(str, free)))
        raise ExpressionError(
            f"{where}: the expression still has free symbols {names}; substitute numbers for them "
            "first (e.g. with .subs({...}))"
        )
    try:
        entries = [numeric_constants(e) for e in entries]
    except ExpressionError as exc:
        raise ExpressionError(f"{where}: {exc}") from None
    const = [not e.free_symbols for e in entries]
    cvals = [float(e) if c else None for e, c in zip(entries, const, strict=True)]
    live = [i for i, c in enumerate(const) if not c]
    try:
        raw = sp.lambdify(list(args), [entries[i] for i in live], modules="torch", cse=True) if live else None
    except Exception as exc:  # noqa: BLE001 - sympy raises many kinds here
        raise ExpressionError(f"{where}: cannot translate {expr} to torch ({exc})") from exc
    m = len(entries)

    if pure:

        def fp(*tensors: torch.Tensor) -> torch.Tensor:
            ref = tensors[0]
            vals = iter(raw(*tensors)) if raw is not None else iter(())
            cols = [torch.full_like(ref, v) if v is not None else torch.broadcast_to(next(vals), ref.shape)
                    for v in cvals]
            return torch.stack(cols, -1).view(ref.shape + shape)

        fp.expr = expr  # type: ignore[attr-defined]
        fp.is_constant = all(const)  # type: ignore[attr-defined]
        return fp

    def f(*tensors: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        ref = tensors[0]
        if out is None:
            out = torch.empty((*ref.shape, m), dtype=ref.dtype, device=ref.device)
        flat = out.view(*ref.shape, m)
        for i, v in enumerate(cvals):
            if v is not None:
                flat[..., i].fill_(v)
        if raw is not None:
            for i, v in zip(live, raw(*tensors), strict=True):
                flat[..., i] = v
        return flat.view(ref.shape + shape)

    f.expr = expr  # type: ignore[attr-defined]
    f.is_constant = all(const)  # type: ignore[attr-defined]
    return f


def state_function(
    expr: Any, state: Sequence[sp.Symbol], where: str, time: sp.Symbol | None = None
) -> Callable[..., torch.Tensor]:
    """Like :func:`torch_function` for an expression of the state only: takes θ of shape (n, d).

    With ``time`` (the SDE's time symbol t), the function is ``g(theta, t)`` with t a 0-d tensor
    (one scalar time for every particle; see :func:`time_tensor`); without it, ``g(theta)``.
    """
    if time is None:
        f = torch_function(expr, state, where)

        def g(theta: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
            return f(*theta.unbind(-1), out=out)

    else:
        f = torch_function(expr, (*state, time), where)

        def g(theta: torch.Tensor, t: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
            return f(*theta.unbind(-1), t, out=out)

    g.is_constant = f.is_constant  # type: ignore[attr-defined]
    return g


def time_tensor(t: float, like: torch.Tensor) -> torch.Tensor:
    """The time t as a 0-d tensor of ``like``'s dtype and device (torch's ``sin`` etc. reject floats)."""
    return torch.tensor(float(t), dtype=like.dtype, device=like.device)
