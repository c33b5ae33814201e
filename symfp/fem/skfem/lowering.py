r"""The one lowering of the weak-form IR (:mod:`symfp.symbolic.weakform`) to scikit-fem forms.

Each term kind maps to its integrand with the coefficient evaluated at the quadrature points
(:mod:`symfp.fem.skfem.coefficients`):

=============  ==========================================  ===========================
kind           integrand                                   coefficient at quad. points
=============  ==========================================  ===========================
``diffusion``  :math:`(K\nabla u)\cdot\nabla v`              K (d, d, cells, points)
``advection``  :math:`u\, c\cdot\nabla v`                  c (d, cells, points)
``transport``  :math:`(c\cdot\nabla u)\, v`                c (d, cells, points)
``reaction``   :math:`r\,u\,v`                             r (cells, points)
``source``     :math:`s\,v` (linear)                       s (cells, points)
=============  ==========================================  ===========================

Forward, exit-time, stationary and spectral problems all assemble through :func:`assemble_bilinear`
and :func:`assemble_linear`. :func:`assemble_parts` gives the operator pieces of the forward
Fokker–Planck equation as scipy.sparse matrices (for the control layer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import sympy as sp

from ...errors import InputError
from . import require_skfem
from .coefficients import lambdify


def _coords(w: Any) -> np.ndarray:
    """The global quadrature coordinates (d, cells, points) of a form's ``w``."""
    x = w.x
    return getattr(x, "value", x)


def _cached(f: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """``f(X, t)`` remembered for the last (X, t): the form is called once per pair of local basis
    functions with the same quadrature points, the coefficient is evaluated once."""
    last: list[Any] = [None, None, None]

    def g(X: np.ndarray, t: float) -> np.ndarray:
        if last[0] is not X or last[1] != t:
            last[:] = [X, t, f(X, t)]
        return last[2]

    return g


def _integrand(kind: str, coef: Callable[..., np.ndarray]) -> Callable[..., Any]:
    """The numpy integrand ``f(u, v, X, t)`` of a term kind (u None for a linear term)."""
    if kind == "diffusion":
        return lambda u, v, X, t: np.einsum("ij...,j...,i...->...", coef(X, t), u.grad, v.grad)
    if kind == "advection":
        return lambda u, v, X, t: np.asarray(u) * np.einsum("i...,i...->...", coef(X, t)[:, 0], v.grad)
    if kind == "transport":
        return lambda u, v, X, t: np.einsum("i...,i...->...", coef(X, t)[:, 0], u.grad) * np.asarray(v)
    if kind == "reaction":
        return lambda u, v, X, t: coef(X, t) * np.asarray(u) * np.asarray(v)
    if kind == "source":
        return lambda u, v, X, t: coef(X, t) * np.asarray(v)
    raise InputError(f"lowering: unknown weak-form term kind {kind!r}")


def lower(terms: Iterable[Any], state: Sequence[sp.Symbol], tsym: sp.Symbol | None = None
          ) -> Callable[..., Any]:
    """The summed numpy integrand ``f(u, v, X, t)`` of IR terms (one dispatch on the kind)."""
    parts = [_integrand(t.kind, _cached(lambdify(t.coefficient, state, tsym))) for t in terms]
    if not parts:
        raise InputError("lowering: no terms to assemble")

    def total(u: Any, v: Any, X: np.ndarray, t: float) -> Any:
        out = parts[0](u, v, X, t)
        for p in parts[1:]:
            out = out + p(u, v, X, t)
        return out

    return total


def assemble_bilinear(terms: Iterable[Any], basis: Any, state: Sequence[sp.Symbol], *,
                      tsym: sp.Symbol | None = None, t: float = 0.0) -> Any:
    """The scipy.sparse CSR matrix :math:`A_{ij} = a(\\varphi_j, \\varphi_i)` of the bilinear terms."""
    skfem = require_skfem("assembly")
    f = lower(terms, state, tsym)

    @skfem.BilinearForm
    def form(u: Any, v: Any, w: Any) -> Any:
        return f(u, v, _coords(w), t)

    return form.assemble(basis).tocsr()


def assemble_linear(terms: Iterable[Any], basis: Any, state: Sequence[sp.Symbol], *,
                    tsym: sp.Symbol | None = None, t: float = 0.0) -> np.ndarray:
    """The vector :math:`b_i = L(\\varphi_i)` of the linear terms."""
    skfem = require_skfem("assembly")
    f = lower(terms, state, tsym)

    @skfem.LinearForm
    def form(v: Any, w: Any) -> Any:
        return f(None, v, _coords(w), t)

    return np.asarray(form.assemble(basis))


def assemble_weighted(g: Any, basis: Any, state: Sequence[sp.Symbol]) -> np.ndarray:
    """:math:`\\int g\\,\\varphi_i` for a SymPy expression (or number) ``g`` in the state."""
    from ...symbolic.weakform import Term

    return assemble_linear([Term("source", sp.sympify(g))], basis, state)


def mass_matrix(basis: Any, weight: Callable[[np.ndarray], np.ndarray] | None = None) -> Any:
    """Consistent mass :math:`M_{ij} = \\int w\\varphi_i\\varphi_j` (w = 1 by default), CSR."""
    skfem = require_skfem("assembly")

    @skfem.BilinearForm
    def form(u: Any, v: Any, w: Any) -> Any:
        return (1.0 if weight is None else weight(_coords(w))) * u * v

    return form.assemble(basis).tocsr()


def supg_exit_time(wf: Any, sde: Any, basis: Any, h: np.ndarray) -> tuple[Any, np.ndarray]:
    r"""SUPG terms of the exit-time problem: :math:`\sum_K\int_K\delta_K (a\cdot\nabla v)R(\tau)`.

    :math:`a` is the ``transport`` coefficient, :math:`R(\tau) = -b\cdot\nabla\tau - D:\nabla^2\tau - 1`
    (the first-order part only: the D:∇²τ part, zero for P1 on affine cells, is added for degree ≥ 2 by
    :func:`symfp.fem.skfem.stabilise.hessian_supg`, scikit-fem's Lagrange elements carrying no Hessians),
    :math:`\delta_K` :func:`symfp.fem.stabilisation.supg_weight`
    with ``h`` (cells,) the cell size over the degree. Returns (matrix, right-hand side).
    """
    from ..stabilisation import supg_weight

    skfem = require_skfem("assembly")
    state = wf.state
    (adv,) = wf.terms("transport")
    af = lambdify(adv.coefficient, state)
    bf = lambdify(sp.Matrix(sde.drift), state)
    Df = lambdify(sp.Matrix(sde.diffusion), state)
    hh = np.asarray(h, dtype=float)[:, None]

    def weight(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = af(X)[:, 0]
        D = Df(X)
        a2 = np.einsum("i...,i...->...", a, a)
        kappa = np.einsum("i...,ij...,j...->...", a, D, a) / (a2 + 1e-300)
        return a, D, supg_weight(a2, kappa, hh)

    @skfem.BilinearForm
    def lhs(u: Any, v: Any, w: Any) -> Any:
        X = _coords(w)
        a, D, delta = weight(X)
        r = -np.einsum("i...,i...->...", bf(X)[:, 0], u.grad)
        return delta * np.einsum("i...,i...->...", a, v.grad) * r

    @skfem.LinearForm
    def rhs(v: Any, w: Any) -> Any:
        a, _, delta = weight(_coords(w))
        return delta * np.einsum("i...,i...->...", a, v.grad)

    return lhs.assemble(basis).tocsr(), np.asarray(rhs.assemble(basis))


def assemble_parts(fp_or_weakform: Any, mesh: Any, *, degree: int = 1, t: float = 0.0) -> dict[str, Any]:
    r"""The forward operator's pieces as scipy.sparse CSR matrices (for the control layer).

    For :math:`\int \partial_t p\,v + \int (D\nabla p)\cdot\nabla v - \int p\,c\cdot\nabla v = 0`:

    - ``"M"``: mass :math:`\int\varphi_j\varphi_i`;
    - ``"K_D"``: diffusion :math:`\int (D\nabla\varphi_j)\cdot\nabla\varphi_i`;
    - ``"K_b"``: advection :math:`-\int\varphi_j\, c\cdot\nabla\varphi_i` (c = b − ∇·D);
    - ``"K"`` = K_D + K_b (and any other bilinear term of the form), ``"ml"`` the lumped mass,
      ``"points"`` the dof coordinates (P1: the mesh vertices, in the mesh's order).

    Args:
        fp_or_weakform: a :class:`symfp.FokkerPlanck`, a :class:`symfp.SDE` or a forward
            :class:`symfp.symbolic.weakform.WeakForm` (numeric).
        mesh: any symfp mesh (neutral, dolfinx-backed or a path).
        degree: Lagrange degree.
        t: the time at which explicitly time-dependent coefficients are evaluated.
    """
    from ...symbolic.weakform import WeakForm, forward_form
    from .mesh import as_skfem

    if isinstance(fp_or_weakform, WeakForm):
        wf = fp_or_weakform
    else:
        sde = getattr(fp_or_weakform, "sde", fp_or_weakform)
        wf = forward_form(sde)
    if wf.parameters:
        raise InputError(f"assemble_parts: free parameters {sorted(map(str, wf.parameters))}; substitute "
                         "numbers with .subs({...}) first")
    sk = as_skfem(mesh)
    basis = sk.basis(degree)
    tsym = None if wf.is_autonomous else wf.time
    out: dict[str, Any] = {"M": mass_matrix(basis)}
    by_kind = {"diffusion": "K_D", "advection": "K_b"}
    K = None
    for term in wf.bilinear:
        A = assemble_bilinear([term], basis, wf.state, tsym=tsym, t=t)
        key = by_kind.get(term.kind)
        if key is not None:
            out[key] = A if key not in out else out[key] + A
        K = A if K is None else K + A
    out["K"] = K
    out["ml"] = np.asarray(out["M"].sum(axis=1)).ravel()
    out["points"] = np.asarray(basis.doflocs.T)
    return out


def coefficient_key(terms: Iterable[Any], basis: Any, state: Sequence[sp.Symbol], *,
                    tsym: sp.Symbol | None = None) -> Callable[[float], str]:
    """``key(t)``: a digest of the terms' coefficient values at the basis' quadrature points at time t.

    Two times with the same digest assemble to the same matrix (the integrands are these values times
    the basis functions), so a piecewise-constant schedule can reuse its assembled operator. The
    coefficients are lambdified once, here.
    """
    import hashlib

    X = np.asarray(basis.mapping.F(basis.X))
    # a coefficient without t cannot change between times: only the time-dependent ones are evaluated
    funcs = [(term.kind, lambdify(term.coefficient, state, tsym)) for term in terms
             if tsym is not None and tsym in sp.sympify(term.coefficient).free_symbols]

    def key(t: float) -> str:
        h = hashlib.blake2b(digest_size=20)
        for kind, f in funcs:
            a = np.asarray(f(X, t), dtype=np.float64)
            h.update(kind.encode() + np.asarray(a.shape, dtype=np.int64).tobytes())
            lo, hi = a.min(initial=np.inf), a.max(initial=-np.inf)
            # a constant (often a broadcast scalar) by its value; else every value
            h.update(np.float64(lo).tobytes() if lo == hi else np.ascontiguousarray(a).tobytes())
        return h.hexdigest()

    return key
