r"""Data models: a finite :class:`Dataset` of samples and a :class:`Population` of random variables.

Both answer the two questions the symbolic engine asks about one sample :math:`\xi`:

* :meth:`expect` — :math:`\mathbb E_\xi[e(\theta;\xi)]` of an expression (or matrix), and
* :meth:`covariance` — :math:`\operatorname{Cov}_\xi[g(\theta;\xi)]` of a column, e.g. the
  per-sample gradient covariance :math:`\Sigma_1(\theta)`.

**Polynomial fast path.** When the expression is a polynomial in the data symbols,
:math:`e = \sum_\alpha c_\alpha(\theta)\,\xi^\alpha`, the expectation is
:math:`\sum_\alpha c_\alpha(\theta) M_\alpha` with the monomial moments
:math:`M_\alpha = \mathbb E[\xi^\alpha]` computed once (numerically over a Dataset, exactly with
``sympy.stats`` over a Population) and cached; so the result does not grow with the number of samples.
The covariance uses :math:`\operatorname{Cov}(\xi^\alpha, \xi^\beta) = M_{\alpha+\beta} - M_\alpha M_\beta`
(over a Dataset of non-integer values: the mean of centred products, computed in floating point).
Integer-valued data give exact rational moments.

**Otherwise** a Dataset returns an unevaluated data-mean node
(:class:`~symfp.symbolic.datamean.DataMean`, :math:`\frac1N\sum_{i=1}^N e(\theta;\xi_i)`) and the
covariance a matrix of :class:`~symfp.symbolic.datamean.DataCov` nodes
(:math:`\operatorname{Cov}_i[g_a, g_b]`, evaluated in two passes over centred values). They do not grow
with N, differentiate under the sum and evaluate themselves numerically. A Population falls back to
``sympy.stats.E``.

**Exact arithmetic on float data.** The moments of float data are float64 numbers (correctly rounded
sums); they enter the expressions as the *exact* rationals of those floats, so that the symbolic
cancellations of moment matching are exact (a quadratic loss gives a constant diffusion, with no
``1e-18·θ`` residue). :func:`~symfp.symbolic.datamean.settle_rationals` turns them back into 15-digit
Floats once the derivation is done.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import sympy as sp
import sympy.stats as st
from sympy.stats.rv import is_random

from ..errors import DataError
from .datamean import DataCov, DataMean

__all__ = ["Dataset", "Population", "EXACT_SUM_LIMIT", "as_data_symbol"]

#: kept for compatibility: there is no size limit any more (non-polynomial means are data-mean nodes).
EXACT_SUM_LIMIT = None


def as_data_symbol(key: Any, where: str) -> sp.Symbol:
    """A data-column key as a SymPy symbol (a name becomes a real symbol)."""
    if isinstance(key, str):
        return sp.Symbol(key, real=True)
    if not isinstance(key, sp.Symbol):
        raise DataError(f"{where}: key {key!r} is not a SymPy Symbol or a name")
    return key


def _as_matrix(expr: Any) -> tuple[sp.Matrix, bool]:
    if isinstance(expr, sp.MatrixBase):
        return sp.Matrix(expr), True
    return sp.Matrix([[sp.sympify(expr)]]), False


class _DataModel:
    """Shared machinery: monomial decomposition and moment bookkeeping."""

    symbols: tuple[sp.Symbol, ...]

    def _moment(self, alpha: tuple[int, ...]) -> sp.Expr:  # pragma: no cover - abstract
        raise NotImplementedError

    def _cov_monomials(self, a: tuple[int, ...], b: tuple[int, ...]) -> sp.Expr:
        ab = tuple(i + j for i, j in zip(a, b, strict=True))
        return self._moment(ab) - self._moment(a) * self._moment(b)

    def _poly(self, expr: sp.Expr) -> dict[tuple[int, ...], sp.Expr] | None:
        """``{alpha: c_alpha}`` when ``expr`` is polynomial in the data symbols, else None."""
        if not (expr.free_symbols & set(self.symbols)):
            return {(0,) * len(self.symbols): expr}
        try:
            p = sp.Poly(expr, *self.symbols)
        except (sp.PolynomialError, sp.GeneratorsNeeded):
            return None
        if any(s in c.free_symbols for c in p.coeffs() for s in self.symbols):
            return None
        return dict(p.terms())

    def _expect_scalar(self, expr: sp.Expr) -> sp.Expr:  # pragma: no cover - abstract
        raise NotImplementedError

    def expect(self, expr: Any) -> Any:
        r""":math:`\mathbb E_\xi[e]` of a scalar expression or (entry-wise) of a matrix."""
        m, is_mat = _as_matrix(expr)
        out = m.applyfunc(self._expect_scalar)
        return sp.ImmutableMatrix(out) if is_mat else out[0, 0]

    def covariance(self, vec: Any) -> sp.ImmutableMatrix:
        r""":math:`\operatorname{Cov}_\xi[g]` (m×m) of an m×1 column ``g(θ; ξ)``."""
        g = sp.Matrix(vec)
        if g.shape[1] != 1:
            g = g.T
        polys = [self._poly(sp.expand(e)) for e in g]
        if all(p is not None for p in polys):
            zero = (0,) * len(self.symbols)
            alphas = sorted({a for p in polys for a in p if a != zero})
            cmat = sp.Matrix([[p.get(a, 0) for a in alphas] for p in polys])  # m × K
            kmat = sp.Matrix(len(alphas), len(alphas), lambda i, j: self._cov_monomials(alphas[i], alphas[j]))
            return sp.ImmutableMatrix((cmat * kmat * cmat.T).applyfunc(sp.expand))
        return sp.ImmutableMatrix(self._covariance_fallback(g))

    def _covariance_fallback(self, g: sp.Matrix) -> sp.Matrix:  # pragma: no cover - abstract
        raise NotImplementedError


class Dataset(_DataModel):
    r"""A finite data set :math:`\{\xi_n\}_{n=1}^N`, one 1-D array per data symbol.

    Args:
        columns: ``{symbol or name: array}``, all 1-D, finite, of equal length N ≥ 1.
        max_exact_sum: accepted for compatibility and ignored (no size limit remains: expectations of
            non-polynomial expressions are :class:`~symfp.symbolic.datamean.DataMean` nodes).
        weights: optional positive sample weights (normalised to sum 1), e.g. the nodes of a quadrature
            rule (:meth:`Population` uses Gauss–Hermite); None: every sample weighs 1/N.

    Attributes:
        symbols: the data symbols (tuple, in the given order).
        arrays: ``{symbol: float64 array}``.
        n: the number of samples N.
    """

    def __init__(self, columns: Mapping[Any, Any], max_exact_sum: int | None = None, *,
                 weights: Any = None) -> None:
        if not isinstance(columns, Mapping) or not columns:
            raise DataError("Dataset: give a non-empty mapping {symbol: array of samples}")
        arrays: dict[sp.Symbol, np.ndarray] = {}
        for key, values in columns.items():
            sym = as_data_symbol(key, "Dataset")
            if any(s.name == sym.name for s in arrays):
                raise DataError(
                    f"Dataset: column {sym} is given twice (keys {key!r} and an earlier one of the same "
                    "name, e.g. a string and a Symbol); give each data symbol once"
                )
            try:
                arr = np.asarray(values, dtype=float)
            except (TypeError, ValueError) as exc:
                raise DataError(f"Dataset: column {sym} is not an array of numbers ({exc})") from exc
            if arr.ndim != 1:
                raise DataError(f"Dataset: column {sym} has shape {arr.shape}; give a 1-D array of samples")
            if arr.size == 0:
                raise DataError(f"Dataset: column {sym} is empty")
            bad = np.flatnonzero(~np.isfinite(arr))
            if bad.size:
                raise DataError(
                    f"Dataset: column {sym} has {bad.size} non-finite value(s) (NaN or inf), first at "
                    f"index {bad[0]} ({arr[bad[0]]}); remove or impute them"
                )
            arrays[sym] = arr
        lengths = {str(s): a.size for s, a in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise DataError(f"Dataset: columns have unequal lengths {lengths}; every column needs N samples")
        self.symbols: tuple[sp.Symbol, ...] = tuple(arrays)
        self.arrays = arrays
        self.n: int = next(iter(arrays.values())).size
        self.weights: np.ndarray | None = None
        if weights is not None:
            wts = np.asarray(weights, dtype=float).reshape(-1)
            if wts.size != self.n or not np.all(np.isfinite(wts)) or np.any(wts <= 0):
                raise DataError(f"Dataset: weights must be {self.n} positive finite numbers")
            self.weights = wts / math.fsum(wts)
        self.max_exact_sum = max_exact_sum
        self._integer = self.weights is None and all(
            np.all(a == np.round(a)) and np.max(np.abs(a)) < 2**31 for a in arrays.values()
        )
        self._cache: dict[tuple[int, ...], sp.Expr] = {}

    def __repr__(self) -> str:
        return f"Dataset({', '.join(map(str, self.symbols))}; N={self.n})"

    # ---------------------------------------------------------------- moments
    def _moment(self, alpha: tuple[int, ...]) -> sp.Expr:
        r"""The empirical moment :math:`M_\alpha = \frac1N\sum_n \xi_n^\alpha` (cached)."""
        if alpha not in self._cache:
            if self._integer:
                prod = np.ones(self.n, dtype=object)
                for s, k in zip(self.symbols, alpha, strict=True):
                    if k:
                        prod = prod * self.arrays[s].astype(np.int64).astype(object) ** k
                self._cache[alpha] = sp.Rational(int(sum(prod)), self.n)
            else:
                prod = np.ones(self.n)
                for s, k in zip(self.symbols, alpha, strict=True):
                    if k:
                        prod = prod * self.arrays[s] ** k
                mean = math.fsum(prod) / self.n if self.weights is None else math.fsum(prod * self.weights)
                self._cache[alpha] = sp.Rational(mean)  # exact image of the float
        return self._cache[alpha]

    def _cov_monomials(self, a: tuple[int, ...], b: tuple[int, ...]) -> sp.Expr:
        if self._integer:
            return super()._cov_monomials(a, b)
        # centred products in floating point: no cancellation of large raw moments
        def mono(alpha):
            out = np.ones(self.n)
            for s, k in zip(self.symbols, alpha, strict=True):
                if k:
                    out = out * self.arrays[s] ** k
            return out - (out.mean() if self.weights is None else out @ self.weights)

        if self.weights is not None:
            return sp.Rational(math.fsum(mono(a) * mono(b) * self.weights))
        return sp.Rational(math.fsum(mono(a) * mono(b)) / self.n)  # exact image of the float

    def _sample_values(self, n: int) -> dict[sp.Symbol, sp.Expr]:
        """Sample n as exact SymPy numbers (integers, or the exact rationals of the floats)."""
        conv = (lambda v: sp.Integer(int(v))) if self._integer else (lambda v: sp.Rational(float(v)))
        return {s: conv(self.arrays[s][n]) for s in self.symbols}

    def _expect_scalar(self, expr: sp.Expr) -> sp.Expr:
        poly = self._poly(sp.expand(expr))
        if poly is not None:
            return sp.Add(*[c * self._moment(a) for a, c in poly.items()])
        return DataMean(expr, self)

    def _covariance_fallback(self, g: sp.Matrix) -> sp.Matrix:
        m = g.rows
        out = sp.zeros(m, m)
        for i in range(m):
            for j in range(i, m):
                out[i, j] = out[j, i] = DataCov(g[i], g[j], self)
        return out


class Population(_DataModel):
    r"""A data distribution: each data symbol is a SymPy random variable (online SGD).

    Args:
        variables: ``{symbol or name: sympy.stats random variable (or expression of them)}``.
            Entries that are different single random variables are taken as independent.

    Attributes:
        symbols: the data symbols.
        variables: ``{symbol: random variable}``.
        n: None (infinitely many samples: mini-batches are i.i.d. draws).
    """

    n = None

    def __init__(self, variables: Mapping[Any, Any]) -> None:
        if not isinstance(variables, Mapping) or not variables:
            raise DataError("Population: give a non-empty mapping {symbol: sympy.stats random variable}")
        out: dict[sp.Symbol, sp.Expr] = {}
        for key, rv in variables.items():
            sym = as_data_symbol(key, "Population")
            if not isinstance(rv, sp.Basic) or not is_random(rv):
                raise DataError(
                    f"Population: the entry for {sym} is {rv!r}, not a random variable; use e.g. "
                    f"sympy.stats.Normal('{sym}', 0, 1)"
                )
            out[sym] = rv
        self.symbols: tuple[sp.Symbol, ...] = tuple(out)
        self.variables = out
        rvs = list(out.values())
        self._independent = all(isinstance(v, st.rv.RandomSymbol) for v in rvs) and len(
            {v.pspace for v in rvs}
        ) == len(rvs)
        self._cache: dict[tuple[int, ...], sp.Expr] = {}
        self._rules: dict[int, Dataset | None] = {}

    @property
    def parameters(self) -> set[sp.Symbol]:
        """Free symbols of the distributions (e.g. a variance ``s``)."""
        out: set[sp.Symbol] = set()
        for v in self.variables.values():
            for r in st.random_symbols(v):
                out |= r.pspace.free_symbols - {r.symbol}
            rvs = st.random_symbols(v)
            out |= v.free_symbols - set(rvs) - {r.symbol for r in rvs}
        return out

    def subs(self, mapping: Mapping[Any, Any]) -> Population:
        """A Population with distribution parameters substituted."""
        return Population({k: v.subs(dict(mapping)) for k, v in self.variables.items()})

    def __repr__(self) -> str:
        return f"Population({', '.join(f'{s}~{v}' for s, v in self.variables.items())})"

    def _E(self, expr: sp.Expr) -> sp.Expr:
        try:
            return sp.simplify(st.E(expr))
        except Exception as exc:  # noqa: BLE001 - sympy.stats raises many kinds
            raise DataError(f"Population: cannot compute the expectation of {expr} ({exc})") from exc

    def _moment(self, alpha: tuple[int, ...]) -> sp.Expr:
        r"""The exact moment :math:`\mathbb E[\xi^\alpha]` (cached; a product when independent)."""
        if alpha not in self._cache:
            if self._independent and sum(1 for k in alpha if k) > 1:
                val = sp.Integer(1)
                for i, k in enumerate(alpha):
                    if k:
                        e = tuple(k if j == i else 0 for j in range(len(alpha)))
                        val *= self._moment(e)
            else:
                mono = sp.Mul(*[v**k for v, k in zip(self.variables.values(), alpha, strict=True)])
                val = self._E(mono)
            self._cache[alpha] = val
        return self._cache[alpha]

    def quadrature(self, order: int | None = None) -> Dataset | None:
        r"""The tensor Gauss–Hermite rule of the Population as a weighted :class:`Dataset`, or None.

        Available when every data symbol is an independent ``Normal(μ, σ)`` with numeric μ, σ:
        nodes :math:`\mu + \sigma\sqrt2\,t_k`, weights :math:`w_k/\sqrt\pi` per dimension
        (``numpy.polynomial.hermite.hermgauss``). A K-point rule integrates polynomials of degree
        ≤ 2K − 1 exactly; for an analytic integrand (the logistic loss and its derivatives) the
        error decays like :math:`\rho^{-2K}`. :meth:`quadrature_error` estimates it by comparing K
        with 2K points.
        """
        K = self.quadrature_order if order is None else int(order)
        if K in self._rules:
            return self._rules[K]
        rule = None
        if self._independent and all(isinstance(v.pspace.distribution, st.crv_types.NormalDistribution)
                                     for v in self.variables.values()):
            dist = [v.pspace.distribution for v in self.variables.values()]
            try:
                mus = [float(dd.mean) for dd in dist]
                sds = [float(dd.std) for dd in dist]
            except TypeError:  # symbolic parameters: no numeric rule
                mus = None
            if mus is not None:
                t, w = np.polynomial.hermite.hermgauss(K)
                grids = np.meshgrid(*[m + sdv * math.sqrt(2) * t for m, sdv in zip(mus, sds, strict=True)],
                                    indexing="ij")
                wgrid = np.ones_like(grids[0])
                for k in range(len(dist)):
                    shape = [1] * len(dist)
                    shape[k] = K
                    wgrid = wgrid * (w / math.sqrt(math.pi)).reshape(shape)
                keep = wgrid.ravel() > 1e-300  # underflowing tail weights carry nothing
                rule = Dataset({s: g.ravel()[keep] for s, g in zip(self.symbols, grids, strict=True)},
                               weights=wgrid.ravel()[keep])
        self._rules[K] = rule
        return rule

    #: Gauss–Hermite points per dimension for expectations with no closed form
    quadrature_order = 40

    def quadrature_error(self, expr: Any, at: Mapping[Any, Any]) -> float:
        """|E_K − E_2K| of an expression at a parameter point: the error estimate of the K-point rule."""
        a, b = self.quadrature(), self.quadrature(2 * self.quadrature_order)
        if a is None:
            raise DataError("Population.quadrature_error: the Population has no Gauss–Hermite rule "
                            "(independent Normal variables with numeric parameters)")
        ea = DataMean(sp.sympify(expr), a).subs(dict(at))
        eb = DataMean(sp.sympify(expr), b).subs(dict(at))
        return abs(float(ea) - float(eb))

    def _expect_scalar(self, expr: sp.Expr) -> sp.Expr:
        poly = self._poly(sp.expand(expr))
        if poly is not None:
            return sp.Add(*[c * self._moment(a) for a, c in poly.items()])
        rule = self.quadrature()
        if rule is not None:  # no closed form to hope for: a data-mean over the quadrature nodes
            return DataMean(expr, rule)
        return self._E(expr.xreplace(self.variables))

    def _covariance_fallback(self, g: sp.Matrix) -> sp.Matrix:
        rule = self.quadrature()
        if rule is not None:
            return rule._covariance_fallback(g)
        gr = g.xreplace(self.variables)
        mean = gr.applyfunc(self._E)
        c = gr - mean
        return (c * c.T).applyfunc(self._E)
