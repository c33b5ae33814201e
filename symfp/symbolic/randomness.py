r"""The random inputs of a one-step map and how each is drawn afresh every step.

A :class:`~symfp.symbolic.recursion.Recursion` names its random inputs and gives each group a spec:

* :class:`BatchMean` — symbols :math:`\hat g_1..\hat g_m` equal to
  :math:`\frac1B\sum_{i\in\text{batch}} e(\theta;\xi_i)`, a mini-batch mean over a
  :class:`~symfp.symbolic.data.Dataset` or a :class:`~symfp.symbolic.data.Population`, with
  covariance :math:`\Sigma_B = c\,\Sigma_1` (:func:`minibatch_factor`);
* :class:`StandardNormal` — i.i.d. :math:`N(0,1)` entries;
* a ``sympy.stats`` random variable.

These specs are what the one-step moments (:mod:`.moments`), the implicit regulariser
(:mod:`.regularizer`) and the recursion itself share; they depend on the data models only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import sympy as sp
from sympy.stats.rv import is_random

from ..errors import InputError
from .data import Dataset, Population

__all__ = ["BatchMean", "StandardNormal", "minibatch_factor", "normalize_randomness", "random_symbols"]


def minibatch_factor(data: Dataset | Population | None, batch_size: Any, replacement: bool) -> sp.Expr:
    r"""The factor :math:`c` in :math:`\Sigma_B = c\,\Sigma_1` for a mini-batch mean of B samples.

    :math:`c = 1/B` with replacement or from a Population; :math:`c = (N-B)/(B(N-1))` without
    replacement from N samples (the finite-population correction).
    """
    B = sp.sympify(batch_size)
    if isinstance(data, Dataset) and not replacement:
        N = data.n
        if N == 1:
            return sp.Integer(0)
        return (N - B) / (B * (N - 1))
    return 1 / B


@dataclass(frozen=True, eq=False)
class BatchMean:
    r"""Random inputs :math:`\hat g = \frac1B\sum_{i\in\text{batch}} e(\theta;\xi_i)` (an m×1 column).

    Attributes:
        symbols: the input symbols :math:`\hat g_1..\hat g_m`.
        expr: m×1 matrix :math:`e(\theta;\xi)` in the state and the data symbols.
        data: a :class:`~symfp.symbolic.data.Dataset` (B indices, with or without replacement) or a
            :class:`~symfp.symbolic.data.Population` (B fresh samples).
        batch_size: B (a number or a symbol).
        replacement: draw the batch indices with replacement.
    """

    symbols: tuple[sp.Symbol, ...]
    expr: sp.ImmutableMatrix
    data: Dataset | Population
    batch_size: Any
    replacement: bool = True

    @cached_property
    def mean(self) -> sp.ImmutableMatrix:
        r""":math:`\mathbb E[\hat g] = \mathbb E_\xi[e(\theta;\xi)]`."""
        return sp.ImmutableMatrix(self.data.expect(sp.Matrix(self.expr)))

    @cached_property
    def sample_covariance(self) -> sp.ImmutableMatrix:
        r""":math:`\Sigma_1 = \operatorname{Cov}_\xi[e(\theta;\xi)]` (one sample)."""
        return self.data.covariance(sp.Matrix(self.expr))

    @property
    def factor(self) -> sp.Expr:
        """See :func:`minibatch_factor`."""
        return minibatch_factor(self.data, self.batch_size, self.replacement)

    @property
    def covariance(self) -> sp.ImmutableMatrix:
        r""":math:`\Sigma_B = \operatorname{Cov}[\hat g]` = factor · :math:`\Sigma_1`."""
        return sp.ImmutableMatrix(self.factor * sp.Matrix(self.sample_covariance))


@dataclass(frozen=True, eq=False)
class StandardNormal:
    """Random inputs with i.i.d. standard normal entries."""

    symbols: tuple[sp.Symbol, ...]


def normalize_randomness(randomness: Mapping[Any, Any] | None, where: str) -> dict[Any, Any]:
    """The randomness dict in canonical form: ``{tuple of symbols: BatchMean | StandardNormal}`` or
    ``{symbol: sympy.stats variable}``; refuses anything else, naming the key."""
    out: dict[Any, Any] = {}
    for key, spec in (randomness or {}).items():
        if isinstance(spec, (BatchMean, StandardNormal)):
            keys = tuple(key) if isinstance(key, (tuple, list)) else (key,)
            if keys != tuple(spec.symbols):
                raise InputError(f"{where}: key {key} differs from its spec's symbols {spec.symbols}")
            out[tuple(spec.symbols)] = spec
        elif isinstance(spec, sp.Basic) and is_random(spec):
            if not isinstance(key, sp.Symbol):
                raise InputError(f"{where}: the input {key!r} of random variable {spec} must be one Symbol")
            out[key] = spec
        else:
            raise InputError(
                f"{where}: randomness spec {spec!r} for {key} is not a sympy.stats random variable, a "
                "BatchMean or a StandardNormal"
            )
    return out


def random_symbols(randomness: Mapping[Any, Any]) -> tuple[sp.Symbol, ...]:
    """All input symbols of a randomness dict, in order."""
    out: list[sp.Symbol] = []
    for key in randomness:
        out.extend(key if isinstance(key, tuple) else (key,))
    return tuple(out)

