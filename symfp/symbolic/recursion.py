r"""One-step maps :math:`\theta_{k+1} = \theta_k + \Delta(\theta_k, \xi_k)`: :class:`Recursion`, :class:`SGD`.

A :class:`Recursion` is the exact update as a SymPy column in the state and named random inputs,
with a spec saying how each input is drawn afresh every step (see ``docs/internals.md``):

* a ``sympy.stats`` random variable;
* :class:`BatchMean` — symbols :math:`\hat g_1..\hat g_m` equal to
  :math:`\frac1B\sum_{i\in\text{batch}} e(\theta;\xi_i)`;
* :class:`StandardNormal` — i.i.d. :math:`N(0,1)` entries.

:class:`SGD` builds the recursion of (mini-batch, momentum, weight-decay, noisy) SGD:

.. math::
    g_k = \hat g_k + \lambda\theta_k,\qquad
    \theta_{k+1} = \theta_k - \eta g_k + \sqrt{2\eta\delta}\,\zeta_k

and, with heavy-ball momentum :math:`\beta` (velocity form, :math:`\gamma = (1-\beta)/\eta`),

.. math::
    v_{k+1} = \beta v_k - \eta g_k + \sqrt{2\eta\delta}\,\zeta_k,\qquad
    \theta_{k+1} = \theta_k + \eta v_{k+1}.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sympy as sp
from sympy.stats import random_symbols as random_symbols_of
from sympy.stats.rv import is_random

from ..errors import DataError, ExpressionError, InputError
from .data import Dataset, Population
from .moments import OneStepMoments, one_step_moments
from .parsing import to_expression
from .randomness import BatchMean, StandardNormal, minibatch_factor, normalize_randomness, random_symbols
from .regularizer import implicit_regularizer
from .sde import SDE
from .shapes import as_column, as_state
from .sme import recursion_sme, sgd_sme
from .stage import Stage, sympify_mapping, timed

__all__ = ["BatchMean", "StandardNormal", "Recursion", "SGD", "minibatch_factor"]


class Recursion(Stage):
    r"""A random one-step map :math:`\theta_{k+1} = \text{update}(\theta_k, \text{inputs}_k)`.

    Args:
        state: the state symbols.
        update: the new state (d×1, or a scalar when d = 1) in the state, the random inputs and
            parameters.
        randomness: ``{input symbol(s): spec}`` (see the module docstring); fresh draws each step.
        lr: the step size η (optional): the small parameter of :meth:`sme`, with t = kη.
    """

    def __init__(
        self, state: Sequence[Any], update: Any, randomness: Mapping[Any, Any] | None = None, lr: Any = None
    ) -> None:
        self.state = as_state(state, "Recursion")
        self.update = sp.ImmutableMatrix(as_column(update, len(self.state), "update", "Recursion"))
        self.randomness = normalize_randomness(randomness, "Recursion")
        self.lr = None if lr is None else sp.sympify(lr)
        clash = set(random_symbols(self.randomness)) & set(self.state)
        if clash:
            raise InputError(f"Recursion: {sorted(map(str, clash))} are both state and random inputs")

    @property
    def dim(self) -> int:
        """Number of state variables d."""
        return len(self.state)

    @property
    def inputs(self) -> tuple[sp.Symbol, ...]:
        """The random input symbols."""
        return random_symbols(self.randomness)

    @property
    def increment(self) -> sp.ImmutableMatrix:
        r""":math:`\Delta = \text{update} - \theta`."""
        return sp.ImmutableMatrix(sp.Matrix(self.update) - sp.Matrix(self.state))

    @property
    def parameters(self) -> set[sp.Symbol]:
        """Free symbols that are neither state nor random inputs (η, B, constants…)."""
        syms = set(self.update.free_symbols)
        for spec in self.randomness.values():
            if isinstance(spec, BatchMean):
                syms |= spec.expr.free_symbols | sp.sympify(spec.batch_size).free_symbols
                syms -= set(spec.data.symbols)
                if isinstance(spec.data, Population):
                    syms |= spec.data.parameters
            elif not isinstance(spec, StandardNormal):
                for r in random_symbols_of(spec):
                    syms |= r.pspace.free_symbols - {r.symbol}
        if self.lr is not None:
            syms |= self.lr.free_symbols
        return syms - set(self.state) - set(self.inputs)

    def moments(self) -> OneStepMoments:
        """The one-step moments E[Δ], E[ΔΔᵀ] (see :func:`symfp.symbolic.moments.one_step_moments`)."""
        return one_step_moments(self)

    def sme(self, order: int = 1, lr: Any = None) -> SDE:
        """The stochastic modified equation by moment matching (:func:`symfp.symbolic.sme.recursion_sme`)."""
        return recursion_sme(self, order=order, lr=lr)

    def subs(self, mapping: Mapping[Any, Any] | None = None, **kwargs: Any) -> Recursion:
        """Substitute numbers or expressions for parameters; returns a new Recursion."""
        m = sympify_mapping({**(mapping or {}), **kwargs}, "Recursion.subs", self.parameters)
        bad = [k for k in m if k in self.state or k in self.inputs]
        if bad:
            raise InputError(f"Recursion.subs: cannot substitute for state or random inputs {bad}")
        rnd = {}
        for key, spec in self.randomness.items():
            if isinstance(spec, BatchMean):
                spec = BatchMean(spec.symbols, spec.expr.subs(m), spec.data,
                                 sp.sympify(spec.batch_size).subs(m), spec.replacement)
            elif not isinstance(spec, StandardNormal):
                spec = spec.subs(m)
            rnd[key] = spec
        return Recursion(self.state, self.update.subs(m), rnd, None if self.lr is None else self.lr.subs(m))

    def simulate(self, n_particles: int, steps: int, init: Any, **kwargs: Any):
        """Simulate the exact recursion with torch particles (see ``symfp.particles.recursion``)."""
        from ..particles.recursion import simulate_recursion

        return simulate_recursion(self, n_particles=n_particles, steps=steps, init=init, **kwargs)

    def latex(self) -> str:
        r"""LaTeX of :math:`\theta_{k+1} = \dots`."""
        th = sp.Matrix(self.state)
        lhs = sp.latex(th[0]) if self.dim == 1 else sp.latex(th)
        inc = sp.Matrix(self.increment)
        rhs = sp.latex(inc[0]) if self.dim == 1 else sp.latex(inc)
        if inc.free_symbols & set(self.state):
            rhs = rf"\left.{rhs}\right|_{{k}}"
        joined = rhs if rhs.startswith("-") else f"+ {rhs}"
        return rf"{lhs}_{{k+1}} = {lhs}_{{k}} {joined}"

    def __str__(self) -> str:
        lines = [f"Recursion in {', '.join(map(str, self.state))}:"]
        for s, u in zip(self.state, self.update, strict=True):
            lines.append(f"  {s} <- {u}")
        for key, spec in self.randomness.items():
            lines.append(f"  {key}: {type(spec).__name__ if not is_random(spec) else spec}")
        return "\n".join(lines)


def _fresh(name: str, taken: set[str]) -> sp.Symbol:
    while name in taken:
        name += "_"
    taken.add(name)
    return sp.Symbol(name, real=True)


def _resolve_symbols(items: Iterable[Any], pool: set[sp.Symbol], what: str) -> tuple[sp.Symbol, ...]:
    by_name = {s.name: s for s in pool}
    out = []
    for it in items:
        if isinstance(it, str):
            it = by_name.get(it, sp.Symbol(it, real=True))
        if not isinstance(it, sp.Symbol):
            raise InputError(f"SGD: {what} entry {it!r} is not a SymPy Symbol or a name")
        out.append(it)
    if len(set(out)) != len(out):
        raise InputError(f"SGD: repeated {what} symbols {[str(s) for s in out]}")
    return tuple(out)


#: symbol names that read as time or the step counter in a learning rate (refused: see SGD)
_TIME_NAMES = frozenset({"t", "time", "k", "step"})


def _number_check(value: Any, name: str, positive: bool = False, nonneg: bool = False) -> sp.Expr:
    try:
        v = sp.sympify(value, strict=True)
    except (sp.SympifyError, TypeError) as exc:
        raise InputError(f"SGD: {name} = {value!r} is not a number or a SymPy expression") from exc
    if not isinstance(v, sp.Expr):
        raise InputError(f"SGD: {name} = {value!r} is not a scalar")
    shown = value if isinstance(value, (int, float)) else v
    if v.has(sp.nan, sp.oo, -sp.oo, sp.zoo) or (v.is_number and v.is_finite is False):
        raise InputError(f"SGD: {name} = {shown} is not a finite number; give a finite value")
    if v.is_real is False:
        raise InputError(f"SGD: {name} = {shown} is not real")
    if positive and (v.is_positive is False):
        raise InputError(f"SGD: {name} = {shown} must be > 0")
    if nonneg and (v.is_nonnegative is False):
        raise InputError(f"SGD: {name} = {shown} must be >= 0")
    return v


class SGD(Stage):
    r"""Stochastic gradient descent on :math:`f(\theta) = \mathbb E_\xi\,\ell(\theta;\xi)` as a one-step map.

    Args:
        loss: :math:`\ell(\theta;\xi)` as a SymPy expression, a Python callable (traced) or a string.
        params: the parameters θ (symbols or names).
        data: a :class:`~symfp.symbolic.data.Dataset`, a :class:`~symfp.symbolic.data.Population`, or None
            when the
            loss has no data symbols (full gradient).
        lr: the step size η > 0 (number or symbol).
        batch_size: B, 1 ≤ B ≤ N (number or symbol).
        replacement: draw mini-batch indices with replacement (else without, within a step).
        momentum: heavy-ball β ∈ [0, 1) or None; with it the state is (θ, v).
        weight_decay: λ, adds λθ to the gradient.
        noise: δ ≥ 0, adds :math:`\sqrt{2\eta\delta}\,\zeta`, ζ ~ N(0, I) ("noisy SGD").
        constants: further symbols (or names) the loss may contain.

    Attributes:
        params, state, loss, data, lr, batch_size, replacement, momentum, weight_decay, noise,
        constants, grad_sample (d×1 :math:`\nabla_\theta\ell`), recursion (a :class:`Recursion`),
        batch_symbols (ĝ), noise_symbols (ζ), velocity (v, or ()).
    """

    def __init__(
        self,
        loss: Any,
        params: Sequence[Any],
        data: Dataset | Population | None,
        lr: Any,
        batch_size: Any = 1,
        replacement: bool = True,
        momentum: Any = None,
        weight_decay: Any = 0,
        noise: Any = 0,
        constants: Iterable[Any] = (),
    ) -> None:
        if data is not None and not isinstance(data, (Dataset, Population)):
            raise DataError(
                f"SGD: data must be a symfp.Dataset, a symfp.Population or None, not {type(data).__name__}"
            )
        if isinstance(params, (str, sp.Symbol)):
            params = [params]
        pool = set(loss.free_symbols) if isinstance(loss, sp.Basic) else set()
        self.params = _resolve_symbols(params, pool, "params")
        if not self.params:
            raise InputError("SGD: params is empty; give the parameter symbols the loss depends on")
        self.constants = _resolve_symbols(constants, pool, "constants")
        data_syms = tuple(data.symbols) if data is not None else ()
        both = set(self.params) & set(data_syms)
        if both:
            raise InputError(f"SGD: {sorted(map(str, both))} are both parameters and data symbols")
        self.data = data
        self.loss = to_expression(loss, [*self.params, *data_syms, *self.constants], "SGD loss")
        free = self.loss.free_symbols
        if not free & set(self.params):
            raise ExpressionError(
                f"SGD: the loss {self.loss} does not contain any parameter "
                f"({', '.join(map(str, self.params))}); check params= or the loss"
            )
        unknown = free - set(self.params) - set(data_syms) - set(self.constants)
        if unknown:
            names = ", ".join(sorted(map(str, unknown)))
            raise ExpressionError(
                f"SGD: the loss contains symbol(s) {names} that are neither parameters, data symbols "
                f"nor declared constants; add them to constants=(...) or to the data"
            )
        if self.loss.has(sp.Integral, sp.Derivative):
            raise ExpressionError("SGD: the loss has unevaluated integrals or derivatives; evaluate them")

        self.lr = _number_check(lr, "lr", positive=True)
        timeish = [sym for sym in self.lr.free_symbols if sym.name in _TIME_NAMES]
        if timeish:
            raise InputError(
                f"SGD: lr = {self.lr} contains {timeish[0]}, which looks like time or the step counter; SGD "
                "would treat it as a constant parameter (the SME would not depend on time). For a "
                "learning-rate schedule give a constant lr here and the schedule to the simulation "
                "(model.simulate(..., lr_schedule=lambda k: ...)), or build a time-dependent SDE with "
                "symfp.SDE(..., time=t)"
            )
        self.batch_size = _number_check(batch_size, "batch_size", positive=True)
        B = self.batch_size
        if B.is_number:
            if not B.is_integer:
                if not float(B).is_integer():
                    raise InputError(
                        f"SGD: batch_size = {batch_size} must be a whole number of samples (an integer "
                        f"such as {max(1, int(float(B)))})"
                    )
                B = self.batch_size = sp.Integer(int(float(B)))
            if isinstance(data, Dataset) and B > data.n:
                raise InputError(
                    f"SGD: batch_size = {B} exceeds the number of samples N = {data.n}; use B <= N"
                )
        self.replacement = bool(replacement)
        self.momentum = None if momentum is None else _number_check(momentum, "momentum", nonneg=True)
        if self.momentum is not None and self.momentum.is_number and not (0 <= self.momentum < 1):
            raise InputError(f"SGD: momentum = {self.momentum} must lie in [0, 1)")
        self.weight_decay = _number_check(weight_decay, "weight_decay")
        self.noise = _number_check(noise, "noise", nonneg=True)
        for name in ("lr", "batch_size", "momentum", "weight_decay", "noise"):
            v = getattr(self, name)
            clash = (v.free_symbols if v is not None else set()) & (set(self.params) | set(data_syms))
            if clash:
                names = sorted(map(str, clash))
                raise InputError(f"SGD: {name} = {v} contains parameter/data symbols {names}")

        self.grad_sample = sp.ImmutableMatrix([sp.diff(self.loss, p) for p in self.params])
        taken = {s.name for s in free | set(self.params) | set(self.constants)}
        taken |= {s.name for s in (self.lr.free_symbols | B.free_symbols)}
        self.batch_symbols = tuple(_fresh(f"ghat_{p.name}", taken) for p in self.params)
        has_noise = self.noise.is_zero is not True
        self.noise_symbols = tuple(_fresh(f"zeta_{p.name}", taken) for p in self.params) if has_noise else ()
        self.velocity = (
            tuple(_fresh(f"v_{p.name}", taken) for p in self.params) if self.momentum is not None else ()
        )
        self.state = (*self.params, *self.velocity)
        self.recursion = self.recursion_with()

    # ---------------------------------------------------------------- the exact step
    def recursion_with(self, *, lr: Any = None, momentum: Any = None, noise: Any = None) -> Recursion:
        r"""The exact step as a :class:`Recursion`, with lr η, momentum β or noise δ replaced.

        The stochastic modified equation matches the moments of the step with a symbolic η (and
        :math:`\beta = 1 - \gamma\eta`); a learning-rate schedule simulates it with a per-step η_k.
        The mini-batch spec is shared between calls, so its data moments are computed once.

        Args:
            lr: the step size in the update (default: the model's ``lr``).
            momentum: β (default: the model's; ignored without momentum).
            noise: the injected noise δ (default: the model's; 0 switches it off).
        """
        eta = self.lr if lr is None else sp.sympify(lr)
        beta = self.momentum if momentum is None else sp.sympify(momentum)
        noise = self.noise if noise is None else sp.sympify(noise)
        th = sp.Matrix(self.params)
        randomness: dict[Any, Any] = {}
        if self.data is not None and (self.grad_sample.free_symbols & set(self.data.symbols)):
            if not hasattr(self, "_batch_spec"):
                self._batch_spec = BatchMean(
                    self.batch_symbols, self.grad_sample, self.data, self.batch_size, self.replacement
                )
            randomness[self.batch_symbols] = self._batch_spec
            g = sp.Matrix(self.batch_symbols) + self.weight_decay * th
        else:  # deterministic gradient: the full gradient itself
            grad = sp.Matrix(self.grad_sample)
            if self.data is not None:
                grad = grad.applyfunc(self.data.expect)
            g = grad + self.weight_decay * th
        kick = sp.zeros(len(th), 1)
        if self.noise_symbols and noise != 0:
            kick = sp.sqrt(2 * eta * noise) * sp.Matrix(self.noise_symbols)
            randomness[self.noise_symbols] = StandardNormal(self.noise_symbols)
        if self.momentum is None:
            update = th - eta * g + kick
        else:
            v = sp.Matrix(self.velocity)
            v_new = beta * v - eta * g + kick
            update = sp.Matrix.vstack(th + eta * v_new, v_new)
        return Recursion(self.state, update, randomness, lr=eta)

    def with_lr(self, lr: Any) -> SGD:
        """The same SGD with another step size, e.g. a symbol η to derive its SME as a function of η."""
        return SGD(self.loss, self.params, self.data, lr, self.batch_size, self.replacement, self.momentum,
                   self.weight_decay, self.noise, self.constants)

    # ---------------------------------------------------------------- derived quantities
    @property
    def dim(self) -> int:
        """Number of state variables (d, or 2d with momentum)."""
        return len(self.state)

    @property
    def objective(self) -> sp.Expr:
        r""":math:`f(\theta) = \mathbb E_\xi\,\ell(\theta;\xi)` (without weight decay)."""
        return self.data.expect(self.loss) if self.data is not None else self.loss

    @property
    def parameters(self) -> set[sp.Symbol]:
        """Free symbols other than params, velocity and data (η, B, constants, …)."""
        syms = set(self.constants) | self.lr.free_symbols | self.batch_size.free_symbols
        for v in (self.momentum, self.weight_decay, self.noise):
            if v is not None:
                syms |= v.free_symbols
        if isinstance(self.data, Population):
            syms |= self.data.parameters
        return syms

    def moments(self) -> OneStepMoments:
        """One-step moments of the exact step (see :func:`symfp.symbolic.moments.one_step_moments`)."""
        return self.recursion.moments()

    def sme(self, order: int = 1) -> SDE:
        """The stochastic modified equation of order 1 or 2 (see :func:`symfp.symbolic.sme.sgd_sme`).

        Its duration is logged (``symfp`` logger, INFO; shown by the command line).
        """
        with timed(f"sme(order={order}) of SGD in {', '.join(map(str, self.state))}"):
            return sgd_sme(self, order=order)

    def implicit_regularizer(self) -> sp.Expr:
        """The Smith–Dherin–Barrett–De modified loss (:func:`.regularizer.implicit_regularizer`)."""
        return implicit_regularizer(self)

    def simulate(self, n_particles: int, steps: int, init: Any, **kwargs: Any):
        """Simulate the exact SGD recursion with torch particles (``symfp.particles.recursion``)."""
        from ..particles.recursion import simulate_recursion

        return simulate_recursion(self, n_particles=n_particles, steps=steps, init=init, **kwargs)

    def subs(self, mapping: Mapping[Any, Any] | None = None, **kwargs: Any) -> SGD:
        """Substitute numbers for η, B, β, λ, δ or constants; returns a new SGD."""
        m = sympify_mapping({**(mapping or {}), **kwargs}, "SGD.subs", self.parameters)
        bad = [k for k in m if k in set(self.state) or (self.data is not None and k in self.data.symbols)]
        if bad:
            raise InputError(f"SGD.subs: cannot substitute for parameters, velocities or data symbols {bad}")
        data = self.data
        if isinstance(data, Population) and set(m) & data.parameters:
            data = data.subs(m)
        return SGD(
            self.loss.subs(m), self.params, data, self.lr.subs(m), self.batch_size.subs(m),
            self.replacement, None if self.momentum is None else self.momentum.subs(m),
            self.weight_decay.subs(m), self.noise.subs(m),
            [c for c in self.constants if c not in m],
        )

    def latex(self) -> str:
        """LaTeX of the loss and the one-step map."""
        return rf"\ell = {sp.latex(self.loss)},\qquad " + self.recursion.latex()

    def __str__(self) -> str:
        return f"SGD(loss={self.loss}, params={self.params}, lr={self.lr}, B={self.batch_size})\n" + str(
            self.recursion
        )
