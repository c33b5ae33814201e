r"""Unevaluated means and covariances over a finite data set: :class:`DataMean`, :class:`DataCov`.

An expectation over a :class:`~symfp.symbolic.data.Dataset` of N samples of an expression that is not
polynomial in the data stays *one* SymPy node, whatever N is:

.. math::
    \operatorname{mean}_i[e] = \frac1N\sum_{i=1}^N e(\theta;\xi_i),\qquad
    \operatorname{Cov}_i[a, b] = \frac1N\sum_{i=1}^N (a_i - \bar a)(b_i - \bar b).

Both are canonicalised on construction: terms free of the data leave the mean (and drop out of a
covariance), a product's factors free of the data come out, a sum keeps its terms together under one
node with its numeric content and sign pulled out; the covariance is symmetric. So the same quantity
reached by two derivations is the same node and cancels exactly (a product of two means and the mean
of a product stay distinct). Differentiation in θ passes under the sum,
:math:`\partial_\theta\operatorname{mean}_i[e] = \operatorname{mean}_i[\partial_\theta e]` and
:math:`\partial_\theta\operatorname{Cov}_i[a,b] = \operatorname{Cov}_i[\partial_\theta a, b] +
\operatorname{Cov}_i[a, \partial_\theta b]`. The covariance is evaluated in two passes (centred
data-means), so no cancellation of large raw moments occurs and it is positive semi-definite to
round-off.

The nodes evaluate themselves: ``float``, ``sp.N``, ``evalf`` and ``doit`` of an expression whose only
free symbols were the data symbols give the number (numpy, vectorised over the samples). For many
parameter points at once use :func:`lambdify_datamean` (chunked: memory stays bounded by
``chunk_elements`` floats). A sample whose float64 evaluation overflows (``exp`` of a large argument,
e.g. ``exp(u)/(1 + exp(u))``) is re-evaluated with mpmath at 30 digits; a value that is itself
infinite or NaN raises :class:`~symfp.errors.InputError` naming the sample.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from itertools import combinations_with_replacement
from typing import Any

import numpy as np
import sympy as sp
from sympy.core.cache import cacheit
from sympy.core.sorting import default_sort_key

from ..errors import InputError

__all__ = [
    "DataMean",
    "DataCov",
    "DataRef",
    "data_mean",
    "data_cov",
    "has_data_nodes",
    "expand_data_nodes",
    "data_nodes",
    "lambdify_datamean",
    "settle_rationals",
    "stable_forms",
    "data_features",
    "LatexNames",
    "latex_names",
    "CHUNK_ELEMENTS",
    "lambdify",
]

#: lambdify's docstring prints the whole expression with str() (seconds for a derivation's data-means)
_NO_DOCSTRING = {"docstring_limit": 0} if "docstring_limit" in inspect.signature(sp.lambdify).parameters \
    else {}


def lambdify(args: Any, expr: Any, modules: Any = None, **kwargs: Any) -> Callable[..., Any]:
    """``sympy.lambdify`` without building the docstring (on SymPy versions that allow it)."""
    return sp.lambdify(args, expr, modules=modules, **kwargs, **_NO_DOCSTRING)


#: the largest number of (point × sample) float64 values evaluated at once (≈ 32 MB per array).
CHUNK_ELEMENTS = 1 << 22


class DataRef(sp.Atom):
    """A reference to a data set inside an expression: an atom without free symbols.

    Two references are equal when they refer to the same :class:`~symfp.symbolic.data.Dataset` object.
    """

    is_commutative = True

    def __new__(cls, data: Any) -> DataRef:
        if isinstance(data, DataRef):
            return data
        obj = super().__new__(cls)
        obj.data = data
        return obj

    def _hashable_content(self) -> tuple:
        return (id(self.data),)

    def __getnewargs__(self) -> tuple:
        return (self.data,)

    @property
    def free_symbols(self) -> set:
        return set()

    @property
    def n(self) -> int:
        """The number of samples N."""
        return self.data.n

    @property
    def symbols(self) -> tuple[sp.Symbol, ...]:
        """The data symbols (bound inside a mean)."""
        return tuple(self.data.symbols)

    def _sympystr(self, printer: Any) -> str:
        return f"data(N={self.data.n})"

    def _latex(self, printer: Any) -> str:
        return "N"

    def sort_key(self, order: Any = None) -> tuple:
        return (self.class_key(), (1, (str(self.data.n), id(self.data))), sp.S.One.sort_key(), sp.S.One)


def _canon(expr: sp.Expr, syms: Sequence[sp.Symbol]) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    r"""``expr = outside + c·inner``: the terms free of the data outside, the rest one sum ``inner``.

    A single product gives its factors free of the data to ``c``; a sum only its numeric content and
    sign (so a Hessian :math:`\partial^2\ell` stays one node, named :math:`\partial^2 f` in LaTeX).
    """
    free, dep = [], []
    # one normal form for the inner expressions, whichever derivation reached them
    expr = sp.expand(expr, power_exp=False, power_base=False, log=False, multinomial=False)
    for t in sp.Add.make_args(expr):
        (dep if t.has(*syms) else free).append(t)
    outside = sp.Add(*free)
    if not dep:
        return outside, sp.S.Zero, sp.S.Zero
    if len(dep) == 1:
        c, inner = dep[0].as_independent(*syms, as_Add=False)
        return outside, c, inner
    c, inner = sp.Add(*dep).as_content_primitive()
    if inner.could_extract_minus_sign():
        c, inner = -c, -inner
    return outside, c, inner


class _DataNode(sp.Expr):
    """Common parts of :class:`DataMean` and :class:`DataCov` (args: the expressions, then a DataRef)."""

    is_commutative = True
    is_Atom = True  # expand, cse, count_ops treat the node as a leaf; subs/xreplace/diff still pass under

    @property
    def ref(self) -> DataRef:
        """The :class:`DataRef` of the data set."""
        return self.args[-1]

    @property
    def dataset(self) -> Any:
        """The :class:`~symfp.symbolic.data.Dataset`."""
        return self.args[-1].data

    @property
    def exprs(self) -> tuple[sp.Expr, ...]:
        """The expression(s) under the mean."""
        return self.args[:-1]

    @property
    def free_symbols(self) -> set:
        bound = set(self.ref.symbols)
        out: set = set()
        for e in self.exprs:
            out |= e.free_symbols
        return out - bound

    def _eval_is_extended_real(self) -> bool | None:
        return True if all(e.is_extended_real for e in self.exprs) else None

    @cacheit
    def sort_key(self, order: Any = None) -> tuple:
        """The ordering key of a compound expression, from the arguments' keys.

        (``Expr.sort_key`` of an atom prints it, ``str(self)``: for a node that is its whole inner
        expression, at every comparison of terms; this is the cost-free equivalent.)
        """
        return (self.class_key(), (len(self.args), tuple(a.sort_key(order) for a in self.args)),
                sp.S.One.sort_key(), sp.S.One)

    def _eval_evalf(self, prec: int) -> sp.Expr | None:
        if self.free_symbols:
            return None
        return sp.Float(self.value(), 15)

    def doit(self, **hints: Any) -> sp.Expr:
        """The number when no free symbol other than the data remains, else the node itself."""
        new = self.func(*[e.doit(**hints) if hints.get("deep", True) else e for e in self.exprs], self.ref)
        if isinstance(new, _DataNode) and not new.free_symbols:
            return sp.Float(new.value(), 15)
        return new

    def _samples(self, e: sp.Expr) -> sp.Expr:
        syms = self.ref.symbols
        i = sp.Symbol("i", integer=True, positive=True)
        return e.xreplace({s: sp.Indexed(sp.IndexedBase(s), i) for s in syms})

    def value(self) -> float:
        """The float64 value (requires no free symbols other than the data symbols)."""
        if self.free_symbols:
            raise InputError(
                f"{self}: free symbols {sorted(map(str, self.free_symbols))} remain; substitute numbers "
                "for them before evaluating the data-mean"
            )
        f = lambdify_datamean([], self)
        return float(f())


def _exact_weights(ds: Any) -> list[sp.Expr]:
    """The sample weights as exact numbers: 1/N, or the rationals of a quadrature rule's floats."""
    wts = getattr(ds, "weights", None)
    if wts is None:
        return [sp.Rational(1, ds.n)] * ds.n
    return [sp.Rational(float(v)) for v in wts]


#: ∂node/∂θ_k by (node, θ_k): the moment matching, the Fokker–Planck operator, its weak form and the
#: curl test differentiate the same nodes again and again (bounded, oldest entries dropped first)
_DERIVATIVES: dict[tuple, sp.Expr] = {}
_DERIVATIVES_MAX = 4096


def _derivative(node: _DataNode, s: sp.Symbol, compute: Callable[[], sp.Expr]) -> sp.Expr:
    key = (node, s)
    out = _DERIVATIVES.get(key)
    if out is None:
        out = _DERIVATIVES[key] = compute()
        while len(_DERIVATIVES) > _DERIVATIVES_MAX:
            _DERIVATIVES.pop(next(iter(_DERIVATIVES)))
    return out


#: elementary functions differentiated by the chain rule with their own ``fdiff`` (real arguments)
_CHAIN_RULE = (sp.exp, sp.log, sp.tanh, sp.sinh, sp.cosh, sp.sin, sp.cos, sp.atan, sp.erf)


def _fast_diff(e: sp.Expr, s: sp.Symbol) -> sp.Expr:
    r""":math:`\partial e/\partial s` by the sum, product, power and chain rules.

    The same result as ``sp.diff`` without ``Derivative``'s assumption queries (``is_zero`` of every
    intermediate result), which are most of SymPy's cost on a loss's third derivatives; anything
    outside Add, Mul, constant powers and the elementary functions of ``_CHAIN_RULE`` goes to
    ``sp.diff``.
    """
    if s not in e.free_symbols:
        return sp.S.Zero
    if e == s:
        return sp.S.One
    if e.is_Add:
        return sp.Add(*[_fast_diff(a, s) for a in e.args])
    if e.is_Mul:
        args = e.args
        terms = []
        for i, a in enumerate(args):
            da = _fast_diff(a, s)
            if da != 0:
                terms.append(sp.Mul(*args[:i], da, *args[i + 1:]))
        return sp.Add(*terms)
    if e.is_Pow and s not in e.exp.free_symbols:
        b, x = e.args
        return x * b ** (x - 1) * _fast_diff(b, s)
    if isinstance(e, _CHAIN_RULE) and len(e.args) == 1:
        return e.fdiff(1) * _fast_diff(e.args[0], s)
    return sp.diff(e, s)


def _inner_diff(e: sp.Expr, s: sp.Symbol) -> sp.Expr:
    """∂e/∂s of an expression under a mean, memoised: means and covariances share inner expressions
    (the loss' derivatives), so the same derivative is asked for by several nodes."""
    key = ("inner", e, s)
    out = _DERIVATIVES.get(key)
    if out is None:
        out = _DERIVATIVES[key] = _fast_diff(e, s)
    return out


class DataMean(_DataNode):
    r""":math:`\frac1N\sum_{i=1}^N e(\theta;\xi_i)`, unevaluated (see the module docstring).

    Build it with :func:`data_mean` (or ``DataMean(expr, dataset)``), which returns a linear
    combination of canonical nodes; ``evaluate=False`` keeps one raw node.
    """

    def __new__(cls, expr: Any, data: Any, evaluate: bool = True) -> sp.Expr:
        ref = DataRef(data)
        expr = sp.sympify(expr)
        if not evaluate:
            return sp.Expr.__new__(cls, expr, ref)
        outside, c, inner = _canon(expr, ref.symbols)
        if c == 0:
            return outside
        return outside + c * sp.Expr.__new__(cls, inner, ref)

    @property
    def expr(self) -> sp.Expr:
        """The expression :math:`e(\\theta;\\xi)` under the mean."""
        return self.args[0]

    def _eval_derivative(self, s: sp.Symbol) -> sp.Expr:
        if s in self.ref.symbols:
            return sp.S.Zero
        return _derivative(self, s, lambda: DataMean(_inner_diff(self.expr, s), self.ref))

    def _eval_subs(self, old: Any, new: Any) -> sp.Expr | None:
        if old in self.ref.symbols:
            return self  # bound variable
        return None

    def expanded(self) -> sp.Expr:
        """The explicit N-term sum (exact values of the samples); for checks on small data sets."""
        ds = self.dataset
        w = _exact_weights(ds)
        return sp.Add(*[w[n] * self.expr.xreplace(ds._sample_values(n)) for n in range(ds.n)])

    def _sympystr(self, printer: Any) -> str:
        return f"mean_i({printer._print(self.expr)})"

    def _latex(self, printer: Any) -> str:
        if _ACTIVE and _ACTIVE[-1].owns(self):
            return _ACTIVE[-1].name(self)
        inner = printer._print(self._samples(_display(self.expr)))
        return rf"\frac{{1}}{{N}}\sum_{{i=1}}^{{N}} \left({inner}\right)"


class DataCov(_DataNode):
    r""":math:`\operatorname{Cov}_i[a, b] = \frac1N\sum_i (a_i - \bar a)(b_i - \bar b)`, unevaluated.

    Bilinear and symmetric; ``DataCov(a, b, dataset)`` returns a linear combination of canonical nodes.
    """

    def __new__(cls, a: Any, b: Any, data: Any, evaluate: bool = True) -> sp.Expr:
        ref = DataRef(data)
        a, b = sp.sympify(a), sp.sympify(b)
        if not evaluate:
            return sp.Expr.__new__(cls, a, b, ref)
        _, ca, da = _canon(a, ref.symbols)  # data-free terms have no covariance
        _, cb, db = _canon(b, ref.symbols)
        if ca == 0 or cb == 0:
            return sp.S.Zero
        p, q = sorted((da, db), key=default_sort_key)
        return ca * cb * sp.Expr.__new__(cls, p, q, ref)

    def _eval_derivative(self, s: sp.Symbol) -> sp.Expr:
        if s in self.ref.symbols:
            return sp.S.Zero
        a, b = self.exprs
        return _derivative(self, s, lambda: DataCov(_inner_diff(a, s), b, self.ref)
                           + DataCov(a, _inner_diff(b, s), self.ref))

    def _eval_subs(self, old: Any, new: Any) -> sp.Expr | None:
        if old in self.ref.symbols:
            return self
        return None

    def expanded(self) -> sp.Expr:
        """The explicit N-term sum of centred products (exact sample values)."""
        ds = self.dataset
        a, b = self.exprs
        va = [a.xreplace(ds._sample_values(n)) for n in range(ds.n)]
        vb = [b.xreplace(ds._sample_values(n)) for n in range(ds.n)]
        w = _exact_weights(ds)
        ma = sp.Add(*[wk * p for wk, p in zip(w, va, strict=True)])
        mb = sp.Add(*[wk * q for wk, q in zip(w, vb, strict=True)])
        return sp.Add(*[wk * (p - ma) * (q - mb) for wk, p, q in zip(w, va, vb, strict=True)])

    def _sympystr(self, printer: Any) -> str:
        a, b = self.exprs
        return f"cov_i({printer._print(a)}, {printer._print(b)})"

    def _latex(self, printer: Any) -> str:
        if _ACTIVE and _ACTIVE[-1].owns(self):
            return _ACTIVE[-1].name(self)
        a, b = (printer._print(self._samples(_display(e))) for e in self.exprs)
        return rf"\operatorname{{Cov}}_{{i}}\left[{a},\, {b}\right]"


_ACTIVE: list[LatexNames] = []


def _single(expr: sp.Expr, cls: type) -> tuple[sp.Expr, Any] | None:
    """``(c, node)`` when ``expr = c·node`` for one node of ``cls``, else None."""
    nodes = expr.atoms(cls)
    if len(nodes) != 1:
        return None
    (nd,) = nodes
    c = sp.cancel(expr / nd)
    return (c, nd) if not c.has(DataMean, DataCov) and c != 0 else None


class LatexNames:
    r"""Short LaTeX names for data-mean nodes while a document is printed (see :func:`latex_names`).

    With the loss ℓ and parameters θ known, :math:`\frac1N\sum_i\partial^\alpha\ell(\theta;\xi_i)` is
    printed :math:`\partial_\alpha f` and :math:`\operatorname{Cov}_i[\partial_a\ell_i, \partial_b\ell_i]`
    as :math:`\Sigma_{ab}`; other nodes become :math:`m_k` and :math:`C_k`, each defined once in
    :meth:`definitions`.
    """

    def __init__(self, loss: Any = None, params: Sequence[sp.Symbol] = (), data: Any = None,
                 max_order: int = 3) -> None:
        self.loss = None if loss is None else sp.sympify(loss)
        self.params = tuple(params)
        self.data = data
        self.known: dict[Any, str] = {}
        self.used: dict[Any, str] = {}
        self.generic: list[Any] = []
        self.sigma_used = False
        self._dloss: dict[tuple[int, ...], sp.Expr] = {}
        if self.loss is None or data is None or not self.params:
            return
        names = [sp.latex(p) for p in self.params]
        for order in range(0, max_order + 1):
            for alpha in combinations_with_replacement(range(len(self.params)), order):
                e = self._loss_derivative(alpha)
                one = _single(sp.sympify(DataMean(e, data)), DataMean)
                if one is None:
                    continue
                c, nd = one
                base = "f" if not alpha else r"\partial_{" + " ".join(names[k] for k in alpha) + "} f"
                self.known.setdefault(nd, self._scaled(base, c))
        grads = [self._loss_derivative((k,)) for k in range(len(self.params))]
        for a in range(len(grads)):
            for b in range(a, len(grads)):
                one = _single(sp.sympify(DataCov(grads[a], grads[b], data)), DataCov)
                if one is not None:
                    c, nd = one
                    self.known.setdefault(nd, self._scaled(rf"\Sigma_{{{names[a]} {names[b]}}}", c))

    def _loss_derivative(self, alpha: tuple[int, ...]) -> sp.Expr:
        r""":math:`\partial_\alpha \ell` (alpha sorted), each from its parent by one derivative, once."""
        if not alpha:
            return self.loss
        if alpha not in self._dloss:
            self._dloss[alpha] = _inner_diff(self._loss_derivative(alpha[:-1]), self.params[alpha[-1]])
        return self._dloss[alpha]

    def _fingerprints(self, exprs: Sequence[sp.Expr]) -> list[np.ndarray | None]:
        """Each expression at 3 fixed parameter points × the first ≤ 32 samples (one joint lowering)."""
        syms = tuple(self.data.symbols)
        out: list[np.ndarray | None] = [None] * len(exprs)
        ok = [k for k, e in enumerate(exprs) if e.free_symbols - set(syms) <= set(self.params)]
        if not ok:
            return out
        if not hasattr(self, "_fp_cache"):
            self._fp_cache: dict[sp.Expr, np.ndarray | None] = {}
        todo = [k for k in ok if exprs[k] not in self._fp_cache]
        if todo:
            rng = np.random.default_rng(7)
            pts = rng.uniform(-0.9, 0.9, size=(len(self.params), 3, 1))
            cols = [self.data.arrays[s][None, :32] for s in syms]
            n = len(cols[0][0])
            try:
                f = lambdify([*self.params, *syms], [stable_forms(exprs[k]) for k in todo],
                                modules="numpy", cse=True)
                with np.errstate(all="ignore"):
                    vals = [np.broadcast_to(np.asarray(v, dtype=float), (3, n)).ravel()
                            for v in f(*pts, *cols)]
            except Exception:  # noqa: BLE001 - display only: unrecognised nodes keep generic names
                vals = [None] * len(todo)
            for k, v in zip(todo, vals, strict=True):
                self._fp_cache[exprs[k]] = v if v is not None and np.all(np.isfinite(v)) else None
        for k in ok:
            out[k] = self._fp_cache[exprs[k]]
        return out

    def _fingerprint(self, e: sp.Expr) -> np.ndarray | None:
        return self._fingerprints([e])[0]

    def prepare(self, exprs: Sequence[Any]) -> None:
        """Fingerprint the inner expressions of every node in ``exprs`` at once (speeds up naming)."""
        if self.loss is None or self.data is None:
            return
        inner: list[sp.Expr] = []
        for e in exprs:
            for nd in data_nodes(e):
                if nd.ref.data is self.data:
                    inner.extend(x for x in nd.exprs if x not in inner)
        self._loss_derivatives()
        self._fingerprints(inner)

    def _loss_derivatives(self) -> list[tuple[str, np.ndarray]]:
        if not hasattr(self, "_derivs"):
            names = [sp.latex(p) for p in self.params]
            alphas, exprs = [], []
            for order in range(0, 4):
                for alpha in combinations_with_replacement(range(len(self.params)), order):
                    alphas.append(alpha)
                    exprs.append(self._loss_derivative(alpha))
            out = []
            for alpha, fp in zip(alphas, self._fingerprints(exprs), strict=True):
                if fp is not None and np.any(fp != 0):
                    out.append((" ".join(names[k] for k in alpha), fp))
            self._derivs = out
        return self._derivs

    def _match(self, e: sp.Expr) -> tuple[str, float] | None:
        """``(alpha, c)`` with ``e = c·∂_alpha ℓ`` numerically (to 1e-9), or None."""
        fp = self._fingerprint(e)
        if fp is None:
            return None
        for alpha, ref in self._loss_derivatives():
            k = int(np.argmax(np.abs(ref)))
            c = fp[k] / ref[k]
            if c != 0 and np.allclose(fp, c * ref, rtol=1e-9, atol=1e-12 * np.abs(ref).max()):
                return alpha, c
        return None

    def _recognise(self, node: Any) -> None:
        """Name a node that is numerically a multiple of a loss derivative (mean or covariance)."""
        if self.loss is None or self.data is None:
            return
        if isinstance(node, DataMean):
            hit = self._match(node.expr)
            if hit is not None:
                alpha, c = hit
                base = "f" if not alpha else rf"\partial_{{{alpha}}} f"
                self.known[node] = self._scaled(base, _nice(1 / c))
        else:
            hits = [self._match(e) for e in node.exprs]
            if all(h is not None for h in hits):
                (a, ca), (b, cb) = hits
                la = r"\ell_i" if not a else rf"\partial_{{{a}}}\ell_i"
                lb = r"\ell_i" if not b else rf"\partial_{{{b}}}\ell_i"
                self.known[node] = self._scaled(rf"\operatorname{{Cov}}_i[{la}, {lb}]", _nice(1 / (ca * cb)))

    @staticmethod
    def _scaled(base: str, c: sp.Expr) -> str:
        if c == 1:
            return base
        if c == -1:
            return rf"\left(-{base}\right)"
        return rf"\left(\frac{{{base}}}{{{sp.latex(c)}}}\right)"

    def owns(self, node: Any) -> bool:
        """True for nodes over the document's data set (or any, when it has none)."""
        return self.data is None or node.ref.data is self.data

    def name(self, node: Any) -> str:
        """The name of ``node`` (registered for :meth:`definitions`)."""
        if node in self.used:
            return self.used[node]
        if node not in self.known:
            self._recognise(node)
        if node in self.known:
            nm = self.known[node]
            self.sigma_used |= isinstance(node, DataCov)
        else:
            self.generic.append(node)
            k = sum(isinstance(n, type(node)) for n in self.generic)
            nm = f"m_{{{k}}}" if isinstance(node, DataMean) else f"C_{{{k}}}"
        self.used[node] = nm
        return nm

    @property
    def active(self) -> bool:
        """True when at least one node has been named."""
        return bool(self.used)

    def definitions(self) -> list[tuple[str, str]]:
        """``[(lhs, rhs)]`` LaTeX of the objective, Σ and every generic node named so far."""
        out: list[tuple[str, str]] = []
        _ACTIVE.append(_FULL)  # the definitions themselves in full
        try:
            syms = tuple(self.data.symbols) if self.data is not None else ()
            samples = ", ".join("{" + sp.latex(s) + "}_{i}" for s in syms)
            if self.loss is not None and self.data is not None:
                th = ", ".join(sp.latex(p) for p in self.params)
                out.append((rf"f({th})", rf"\frac{{1}}{{N}}\sum_{{i=1}}^{{N}} \ell({th};\, {samples})"))
                out.append((rf"\ell({th};\, {', '.join(sp.latex(s) for s in syms)})", sp.latex(self.loss)))
            if self.sigma_used:
                out.append((r"\Sigma_{ab}",
                            r"\operatorname{Cov}_{i}\left[\partial_a \ell_i,\, \partial_b \ell_i\right] = "
                            r"\frac{1}{N}\sum_{i=1}^{N} (\partial_a\ell_i - \partial_a f)(\partial_b\ell_i - "
                            r"\partial_b f)"))
            for nd in self.generic:
                out.append((self.used[nd], sp.latex(nd)))
        finally:
            _ACTIVE.pop()
        return out


def _nice(c: float) -> sp.Expr:
    """A float factor as a small rational when it is one (±1, ±1/2, …), else a Float."""
    r = sp.nsimplify(c, rational=True, tolerance=1e-9)
    return r if isinstance(r, sp.Rational) and r.q <= 64 and abs(r.p) <= 64 else sp.Float(c, 6)


class _Full:
    """A naming context that names nothing (nodes print in full)."""

    @staticmethod
    def owns(node: Any) -> bool:
        return False


_FULL = _Full()


@contextmanager
def latex_names(names: LatexNames) -> Iterator[LatexNames]:
    """While active, ``sp.latex`` prints data-mean nodes by their short names."""
    _ACTIVE.append(names)
    try:
        yield names
    finally:
        _ACTIVE.pop()


def _display(e: sp.Expr) -> sp.Expr:
    """The inner expression as printed: sigmoids and softplus instead of exp ratios (shorter)."""
    try:
        return sp.factor_terms(stable_forms(e))
    except (TypeError, ValueError):  # pragma: no cover - display only
        return e


def data_mean(expr: Any, data: Any) -> sp.Expr:
    r""":math:`\frac1N\sum_i e(\theta;\xi_i)` as data-mean nodes (linear combination)."""
    return DataMean(expr, data)


def data_cov(a: Any, b: Any, data: Any) -> sp.Expr:
    r""":math:`\operatorname{Cov}_i[a, b]` as data-covariance nodes (bilinear combination)."""
    return DataCov(a, b, data)


def data_nodes(expr: Any) -> set[_DataNode]:
    """All data-mean/-covariance nodes of an expression or matrix."""
    if isinstance(expr, sp.MatrixBase):
        out: set[_DataNode] = set()
        for e in expr:
            out |= data_nodes(e)
        return out
    return set(sp.sympify(expr).atoms(DataMean, DataCov))


def has_data_nodes(expr: Any) -> bool:
    """True when the expression (or matrix) contains a :class:`DataMean` or :class:`DataCov`."""
    if isinstance(expr, sp.MatrixBase):
        return any(has_data_nodes(e) for e in expr)
    return sp.sympify(expr).has(DataMean, DataCov)


def expand_data_nodes(expr: Any) -> Any:
    """``expr`` with every node replaced by its explicit N-term sum (for checks on small data sets)."""
    if isinstance(expr, sp.MatrixBase):
        return expr.applyfunc(expand_data_nodes)
    return sp.sympify(expr).replace(lambda n: isinstance(n, (DataMean, DataCov)), lambda n: n.expanded())


# ------------------------------------------------------------------ numerical evaluation
class _Softplus(sp.Function):
    """log(1 + e^u), a numerical form only (numpy ``logaddexp(0, u)``, torch ``softplus``)."""

    nargs = 1

    def _numpycode(self, printer: Any) -> str:
        return f"numpy.logaddexp(0, {printer._print(self.args[0])})"

    def _torchcode(self, printer: Any) -> str:
        return f"torch.nn.functional.softplus({printer._print(self.args[0])})"

    def _mpmathcode(self, printer: Any) -> str:
        return f"mpmath.log(1 + mpmath.exp({printer._print(self.args[0])}))"

    def _latex(self, printer: Any, exp: Any = None) -> str:
        tex = rf"\operatorname{{softplus}}\left({printer._print(self.args[0])}\right)"
        return tex if exp is None else rf"{tex}^{{{exp}}}"


class _Sigmoid(sp.Function):
    """1/(1 + e^{-u}), a numerical form only (``exp(-logaddexp(0, -u))``, torch ``sigmoid``)."""

    nargs = 1

    def _numpycode(self, printer: Any) -> str:
        return f"numpy.exp(-numpy.logaddexp(0, -({printer._print(self.args[0])})))"

    def _torchcode(self, printer: Any) -> str:
        return f"torch.sigmoid({printer._print(self.args[0])})"

    def _mpmathcode(self, printer: Any) -> str:
        return f"(1/(1 + mpmath.exp(-({printer._print(self.args[0])}))))"

    def _latex(self, printer: Any, exp: Any = None) -> str:
        tex = rf"\sigma\left({printer._print(self.args[0])}\right)"
        return tex if exp is None else rf"{tex}^{{{exp}}}"


def _one_plus_exp(base: sp.Expr) -> sp.Expr | None:
    """u when ``base`` is 1 + exp(u), else None."""
    if base.is_Add and len(base.args) == 2 and sp.S.One in base.args:
        other = base.args[0] if base.args[1] == 1 else base.args[1]
        if isinstance(other, sp.exp):
            return other.args[0]
    return None


def _stable_mul(m: sp.Expr) -> sp.Expr:
    r""":math:`e^{ku}(1+e^u)^{-n} = \sigma(u)^k\sigma(-u)^{n-k}` (0 ≤ k ≤ n) inside one product."""
    factors = list(sp.Mul.make_args(m))
    changed = False
    for idx, f in enumerate(factors):
        if not (f.is_Pow and f.exp.is_Integer and f.exp < 0):
            continue
        u = _one_plus_exp(f.base)
        if u is None:
            continue
        n = int(-f.exp)
        k = 0
        for jdx, g in enumerate(factors):
            if jdx == idx or g is sp.S.One:
                continue
            base, e = g.as_base_exp()
            arg = g.args[0] if isinstance(g, sp.exp) else None
            if arg is None and isinstance(base, sp.exp) and e.is_Integer:
                arg = base.args[0] * e
            if arg is None:
                continue
            ratio = sp.cancel(arg / u)
            if ratio.is_Integer and 0 < int(ratio) <= n - k:
                k += int(ratio)
                factors[jdx] = sp.S.One
        factors[idx] = _Sigmoid(u) ** k * _Sigmoid(-u) ** (n - k)
        changed = True
    return sp.Mul(*factors) if changed else m


def stable_forms(e: Any) -> sp.Expr:
    r"""Numerically stable forms for evaluation: :math:`\log(1+e^u)` → softplus, and
    :math:`e^{ku}/(1+e^u)^n` → products of sigmoids (no ``inf/inf`` where :math:`e^u` overflows).
    The result is the same function; it is meant for lowering, not for display."""
    if isinstance(e, sp.MatrixBase):
        return e.applyfunc(stable_forms)
    e = sp.sympify(e)

    def rule_log(node: sp.Expr) -> sp.Expr:
        u = _one_plus_exp(node.args[0])
        return _Softplus(u) if u is not None else node

    e = e.replace(lambda n: isinstance(n, sp.log), rule_log)
    e = e.replace(lambda n: n.is_Mul, _stable_mul)

    def bare(n: sp.Expr) -> bool:
        return n.is_Pow and n.exp.is_Integer and n.exp < 0 and _one_plus_exp(n.base) is not None

    return e.replace(bare, lambda n: _Sigmoid(-_one_plus_exp(n.base)) ** int(-n.exp))


def data_features(
    exprs: Sequence[Any], state: Sequence[sp.Symbol], data_syms: Sequence[sp.Symbol]
) -> tuple[list[sp.Expr], list[sp.Dummy], list[sp.Expr]]:
    r"""Hoist the state-free parts of per-sample expressions into data features.

    Every maximal sub-expression free of the state (a factor of a product, a term of a sum, after
    expanding function arguments that are polynomial in the state) is replaced by a feature symbol
    :math:`f_k`, so that :math:`e(\theta;\xi) = \tilde e(\theta; f(\xi))`. For the logistic gradient
    :math:`-x_1 y\,\sigma(-y(w_1x_1+w_2x_2))` this gives :math:`-f_0\sigma(-(w_1f_0+w_2f_1))` with
    :math:`f_0 = x_1y`, :math:`f_1 = x_2y`: the features are computed once per sample (N values), and an
    evaluation at P points (or n particles × B samples) does only the state-dependent work. The
    rewrite is an identity, so values agree to round-off.

    Args:
        exprs: the expressions (e.g. the inner expressions of data-means, in their stable forms).
        state: the state symbols θ.
        data_syms: the data symbols ξ.

    Returns:
        ``(features, symbols, rewritten)``: the feature expressions in ξ, their symbols, and the
        expressions in θ and the feature symbols.
    """
    S, D = set(state), set(data_syms)
    feats: dict[sp.Expr, sp.Dummy] = {}

    def feat(e: sp.Expr) -> sp.Expr:
        neg = e.could_extract_minus_sign()
        base = sp.expand(-e if neg else e)
        if base not in feats:
            feats[base] = sp.Dummy(f"f{len(feats)}", real=True)
        return -feats[base] if neg else feats[base]

    def prep(e: sp.Expr) -> sp.Expr:
        def expand_arg(node: sp.Expr) -> sp.Expr:
            new = []
            for a in node.args:
                if a.free_symbols & S and a.free_symbols & D and a.is_polynomial(*state):
                    x = sp.collect(sp.expand(a), list(state))
                    a = x if sp.count_ops(x) <= 4 * sp.count_ops(a) + 4 else a
                new.append(a)
            return node.func(*new)

        return e.replace(lambda n: isinstance(n, sp.Function), expand_arg)

    def go(e: sp.Expr) -> sp.Expr:
        fs = e.free_symbols
        if not fs & D:
            return e
        if not fs & S:
            return feat(e)
        if e.is_Add or e.is_Mul:
            pure = [a for a in e.args if not (a.free_symbols & S)]
            rest = [go(a) for a in e.args if a.free_symbols & S]
            head = [go(e.func(*pure))] if pure else []
            return e.func(*head, *rest)
        return e.func(*[go(a) for a in e.args])

    rewritten = [go(prep(sp.sympify(e))) for e in exprs]
    return list(feats), list(feats.values()), rewritten


_INNER_CACHE: dict[tuple, tuple[Callable, Callable]] = {}


def _inner_functions(e: sp.Expr, args: tuple[sp.Symbol, ...], syms: tuple[sp.Symbol, ...]):
    key = (e, args, syms)
    if key not in _INNER_CACHE:
        stable = stable_forms(e)
        f = lambdify([*args, *syms], stable, modules=["numpy"])
        import mpmath

        g = lambdify([*args, *syms], stable, modules=[{"mpmath": mpmath}, "mpmath"])
        _INNER_CACHE[key] = (f, g)
    return _INNER_CACHE[key]


def _eval_inner(
    node: _DataNode, e: sp.Expr, args: tuple[sp.Symbol, ...], vals: list[np.ndarray], lo: int, hi: int
) -> np.ndarray:
    """``e`` at points ``vals[k][lo:hi]`` (P,) × every sample (N,): a (P, N) float64 array."""
    ds = node.dataset
    syms = tuple(ds.symbols)
    f, g = _inner_functions(e, args, syms)
    pts = [np.asarray(v, dtype=float)[lo:hi, None] for v in vals]
    cols = [ds.arrays[s][None, :] for s in syms]
    P = hi - lo
    with np.errstate(all="ignore"):
        out = np.asarray(f(*pts, *cols), dtype=float)
    out = np.broadcast_to(out, (P, ds.n)).copy() if out.shape != (P, ds.n) else out
    bad = ~np.isfinite(out)
    if bad.any():
        import mpmath

        with mpmath.workdps(30):
            for p, n in zip(*np.nonzero(bad), strict=True):
                a = [float(v[p, 0]) for v in pts]
                c = [float(ds.arrays[s][n]) for s in syms]
                try:
                    val = complex(g(*a, *c))
                except (ZeroDivisionError, OverflowError, ValueError) as exc:
                    val = complex(np.nan)
                    err = exc
                else:
                    err = None
                if not np.isfinite(val.real) or abs(val.imag) > 1e-12 * max(1.0, abs(val.real)):
                    where = ", ".join(f"{s} = {c[k]!r}" for k, s in enumerate(syms))
                    at = ", ".join(f"{s} = {a[k]!r}" for k, s in enumerate(args))
                    raise InputError(
                        f"data-mean of {e}: its value at sample index {n} ({where}) and {at or 'θ'} is "
                        f"not a finite real number ({val if err is None else err}); rewrite the loss in a "
                        "stable form (e.g. symfp.softplus) or rescale the data"
                    )
                out[p, n] = val.real
    return out


_JOINT_CACHE: dict[tuple, tuple[Callable, list[np.ndarray], list, list]] = {}
#: point × sample values per chunk of the numpy reductions (with all inner expressions: ~L2-sized)
FE_CHUNK_ELEMENTS = 1 << 17


def _joint_function(inners: Sequence[sp.Expr], args: tuple[sp.Symbol, ...], syms: tuple[sp.Symbol, ...],
                    ds: Any) -> tuple[Callable, list[np.ndarray], list, list]:
    """All inner expressions of a data set's nodes as one numpy function of (points, data features).

    The state-free parts are hoisted into per-sample features (:func:`data_features`, evaluated once
    over the N samples) and the rewritten expressions lowered together with common sub-expressions
    eliminated, so one pass over (points × samples) serves every node (b, D, ∇·D alike). Falls back to
    the raw data columns when a feature is not finite. Returns the numpy function, the feature
    columns (1, N) each, their symbols and the rewritten expressions (for the C kernel).
    """
    stable = [stable_forms(e) for e in inners]
    feats, fsyms, rew = data_features(stable, args, syms)
    cols = None
    if feats:
        with np.errstate(all="ignore"):
            data = [np.asarray(ds.arrays[s], dtype=float) for s in syms]
            fe = lambdify(syms, feats, modules=["numpy"])(*data)
        cols = [np.broadcast_to(np.asarray(v, dtype=float), (ds.n,))[None, :] for v in fe]
        if not all(np.all(np.isfinite(c)) for c in cols):
            cols = None
    if cols is None:
        fsyms, rew = list(syms), stable
        cols = [np.asarray(ds.arrays[s], dtype=float)[None, :] for s in syms]
    f = lambdify([*args, *fsyms], rew, modules=["numpy"], cse=True)
    return f, cols, list(fsyms), list(rew)


_MEMO: dict[tuple, np.ndarray] = {}
#: how many node reductions ran as the C kernel and as numpy (read by the FE coefficient timer)
REDUCTIONS = {"c": 0, "numpy": 0}


def _nodes_values(nodes: Sequence[_DataNode], args: tuple[sp.Symbol, ...], vals: list[np.ndarray], P: int,
                  chunk_elements: int) -> list[np.ndarray]:
    """Nodes over one data set at P points: their inner expressions lowered together (shared
    sub-expressions computed once per chunk), chunked over the points, memoised per point set."""
    ds = nodes[0].dataset
    pkey = (args, P, hash(b"".join(np.ascontiguousarray(v, dtype=float).tobytes() for v in vals)))
    todo = [nd for nd in nodes if (nd, pkey) not in _MEMO]
    if todo:
        inners, pos, key, pairs = _joint_setup(todo, args)
        f, cols, _, _ = _JOINT_CACHE[key]
        outs = _native_values(todo, pos, pairs, key, args, vals, P)
        REDUCTIONS["c" if outs is not None else "numpy"] += 1
        if outs is None:
            outs = _numpy_values(todo, inners, pos, f, cols, args, vals, P, chunk_elements, ds)
        for nd, o in zip(todo, outs, strict=True):
            _MEMO[(nd, pkey)] = o
        while len(_MEMO) > 512:
            _MEMO.pop(next(iter(_MEMO)))
    return [_MEMO[(nd, pkey)] for nd in nodes]


def distinct_inners(nodes: Sequence[_DataNode]) -> tuple[list[sp.Expr], dict[sp.Expr, int]]:
    """The distinct inner expressions of ``nodes`` in first-seen order, and each one's position."""
    inners: list[sp.Expr] = []
    for nd in nodes:
        for e in nd.exprs:
            if e not in inners:
                inners.append(e)
    return inners, {e: k for k, e in enumerate(inners)}


def _joint_setup(todo: Sequence[_DataNode], args: tuple[sp.Symbol, ...]) -> tuple[list, dict, tuple, list]:
    """The distinct inner expressions of nodes over one data set, their positions, the joint-function
    key (built into ``_JOINT_CACHE``) and the covariance index pairs."""
    ds = todo[0].dataset
    syms = tuple(ds.symbols)
    inners, pos = distinct_inners(todo)
    key = (tuple(inners), args, syms, id(ds))
    if key not in _JOINT_CACHE:
        _JOINT_CACHE[key] = _joint_function(inners, args, syms, ds)
    pairs = [tuple(pos[e] for e in nd.exprs) for nd in todo if not isinstance(nd, DataMean)]
    return inners, pos, key, pairs


def native_node_values(nodes: Sequence[_DataNode], args: Sequence[sp.Symbol],
                       vals: Sequence[np.ndarray]) -> list[np.ndarray] | None:
    """Nodes over one data set at the points ``vals`` (one (P,) array per arg) by the C reduction,
    without memoisation (e.g. particles, new points every step); None when the kernel is not available.

    Points where a value is not finite are redone on the careful numpy path (which gives the number
    or raises :class:`~symfp.errors.InputError` naming the sample).
    """
    args = tuple(args)
    _, pos, key, pairs = _joint_setup(nodes, args)
    vals = [np.asarray(v, dtype=float).reshape(-1) for v in vals]
    return _native_values(nodes, pos, pairs, key, args, vals, len(vals[0]) if vals else 1)


def _numpy_values(todo: Sequence[_DataNode], inners: list, pos: dict, f: Callable, cols: list, args: tuple,
                  vals: list[np.ndarray], P: int, chunk_elements: int, ds: Any) -> list[np.ndarray]:
    """The nodes at P points by chunked numpy reductions (and the careful path where one overflows)."""
    n = ds.n
    # L2-sized chunks: every temporary of the joint expression stays in cache
    step = max(1, min(chunk_elements, FE_CHUNK_ELEMENTS) // (max(n, 1) * len(inners)))
    outs = [np.empty(P) for _ in todo]
    wts = getattr(ds, "weights", None)  # quadrature data sets carry weights (sum 1)

    def avg(r: np.ndarray) -> np.ndarray:
        return r.mean(axis=1) if wts is None else r @ wts

    for lo in range(0, P, step):
        hi = min(P, lo + step)
        pts = [np.asarray(v, dtype=float)[lo:hi, None] for v in vals]
        with np.errstate(all="ignore"):
            res = [np.broadcast_to(np.asarray(r, dtype=float), (hi - lo, n)) for r in f(*pts, *cols)]
        res = [r if np.all(np.isfinite(r)) else _eval_inner(todo[0], inners[k], args, vals, lo, hi)
               for k, r in enumerate(res)]  # overflow: the careful per-expression path
        means = [avg(r) for r in res]
        for k, nd in enumerate(todo):
            if isinstance(nd, DataMean):
                outs[k][lo:hi] = means[pos[nd.expr]]
            else:
                a, b = (pos[e] for e in nd.exprs)
                ca = res[a] - means[a][:, None]
                cb = ca if a == b else res[b] - means[b][:, None]
                outs[k][lo:hi] = avg(ca * cb)
    return outs


#: per joint key: (its feature columns, the (K, N) table of them, the sample weights) for the C kernel
_NATIVE_TABLES: dict[tuple, tuple[list, np.ndarray, np.ndarray]] = {}


def _native_values(todo: Sequence[_DataNode], pos: dict, pairs: list, key: tuple, args: tuple,
                   vals: list[np.ndarray], P: int) -> list[np.ndarray] | None:
    """The nodes at P points by the C reduction (:mod:`symfp.native.datamean`), or None when it is not
    available. ``key`` is the joint function's (:func:`_joint_setup`); its (K, N) feature table and
    sample weights are built once. Points where a value is not finite are redone by
    :func:`_numpy_values` (which evaluates an overflowing expression carefully or names the sample)."""
    from ..native.datamean import reduction

    f, cols, fsyms, rew = _JOINT_CACHE[key]
    red = reduction((key, tuple(pairs)), args=args, features=fsyms, inners=rew, pairs=pairs)
    if red is None:
        return None
    ds = todo[0].dataset
    if key not in _NATIVE_TABLES or _NATIVE_TABLES[key][0] is not cols:  # built for this joint entry
        n, wts = ds.n, getattr(ds, "weights", None)
        _NATIVE_TABLES[key] = (
            cols,
            np.stack([np.broadcast_to(np.asarray(c, dtype=float).reshape(-1), (n,)) for c in cols])
            if cols else np.zeros((0, n)),
            np.full(n, 1.0 / n) if wts is None else np.asarray(wts, dtype=float))
    _, feat, w = _NATIVE_TABLES[key]
    pts = np.stack([np.broadcast_to(np.asarray(v, dtype=float).reshape(-1), (P,)) for v in vals], axis=1) \
        if vals else np.zeros((P, 0))
    means, covs = red(pts, feat, w)
    outs, q = [], 0
    for nd in todo:
        if isinstance(nd, DataMean):
            outs.append(means[:, pos[nd.expr]].copy())
        else:
            outs.append(covs[:, q].copy())
            q += 1
    bad = ~(np.all(np.isfinite(means), axis=1) & np.all(np.isfinite(covs), axis=1))
    if bad.any():
        idx = np.flatnonzero(bad)
        redo = _numpy_values(todo, list(pos), pos, f, cols, args, [np.asarray(v)[idx] for v in vals],
                             len(idx), FE_CHUNK_ELEMENTS, ds)
        for o, r in zip(outs, redo, strict=True):
            o[idx] = r
    return outs


def lambdify_datamean(
    args: Sequence[sp.Symbol], expr: Any, *, chunk_elements: int = CHUNK_ELEMENTS
) -> Callable[..., Any]:
    r"""A numpy function of ``args`` evaluating ``expr`` (scalar or matrix) with its data-mean nodes.

    Each node is evaluated at all the given points as a vectorised reduction over the samples (chunks
    of at most ``chunk_elements`` point×sample values), then the outer expression is evaluated by an
    ordinary ``lambdify``. Arguments broadcast as numpy arrays of one shape; the result has that
    shape (a matrix: shape ``(rows, cols, *shape)``).

    Cost: (number of nodes) × P × N evaluations of the inner expressions for P points.
    """
    args = tuple(args)
    is_mat = isinstance(expr, sp.MatrixBase)
    body = sp.Matrix(expr) if is_mat else sp.sympify(expr)
    nodes = sorted(data_nodes(body), key=default_sort_key)
    # nested nodes (a mean of an expression containing a mean) are evaluated innermost first
    if any(has_data_nodes(a) for nd in nodes for a in nd.exprs):
        raise InputError("lambdify_datamean: nested data-means are not supported; expand the inner mean")
    placeholders = [sp.Dummy(f"m{k}") for k in range(len(nodes))]
    outer_expr = body.xreplace(dict(zip(nodes, placeholders, strict=True)))
    outer = lambdify([*args, *placeholders], outer_expr.tolist() if is_mat else outer_expr,
                        modules=["numpy"])

    def f(*values: Any) -> Any:
        arrs = np.broadcast_arrays(*[np.asarray(v, dtype=float) for v in values]) if values else []
        shape = arrs[0].shape if arrs else ()
        flat = [a.reshape(-1) for a in arrs]
        P = int(np.prod(shape)) if shape else 1
        mvals: list[Any] = [None] * len(nodes)
        groups: dict[int, list[int]] = {}
        for k, nd in enumerate(nodes):
            groups.setdefault(id(nd.dataset), []).append(k)
        for ks in groups.values():
            for k, v in zip(ks, _nodes_values([nodes[k] for k in ks], args, flat, P, chunk_elements),
                            strict=True):
                mvals[k] = v.reshape(shape)
        with np.errstate(all="ignore"):
            out = outer(*[a.reshape(shape) for a in flat], *mvals)
        if is_mat:
            out = np.array([[np.broadcast_to(np.asarray(v, dtype=float), shape) for v in row] for row in out])
        else:
            out = np.broadcast_to(np.asarray(out, dtype=float), shape)
        if not np.all(np.isfinite(out)):
            raise InputError(
                f"lambdify_datamean: {expr if not is_mat else 'a matrix entry'} is not finite at "
                f"{int(np.sum(~np.isfinite(out)))} of the points; check the domain of the expression"
            )
        return out if shape or is_mat else float(out)

    return f


def settle_rationals(expr: Any, *, max_denominator: int = 10**6, digits: int = 15) -> Any:
    r"""Rationals with denominators above ``max_denominator`` (exact images of float data moments) → Floats.

    Applied after all symbolic cancellation has been done in exact arithmetic; it changes no term's
    existence (a rational is replaced by its nearest 15-digit float), so it cannot remove or create
    state dependence.
    """
    if isinstance(expr, sp.MatrixBase):
        return expr.applyfunc(lambda e: settle_rationals(e, max_denominator=max_denominator, digits=digits))
    expr = sp.sympify(expr)
    reps = {r: sp.Float(r, digits) for r in expr.atoms(sp.Rational) if r.q > max_denominator}
    return expr.xreplace(reps) if reps else expr

