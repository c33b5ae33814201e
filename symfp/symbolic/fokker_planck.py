r"""The Fokker–Planck equation of an Itô SDE, its generator, stationary density and exit times.

For :math:`d\theta = b\,dt + \sigma\,dW` with :math:`D = \tfrac12\sigma\sigma^\top` the density obeys,
in flux form,

.. math::

    \partial_t p = -\nabla\cdot J,\qquad J = b\,p - \nabla\cdot(D p) = c\,p - D\nabla p,\qquad
    c = b - \nabla\cdot D,

with :math:`(\nabla\cdot D)_i = \sum_j \partial_j D_{ij}` (row-wise divergence). The backward generator
is :math:`\mathcal L\varphi = b\cdot\nabla\varphi + D:\nabla^2\varphi`; the mean exit time solves
:math:`-\mathcal L\tau = 1` with :math:`\tau = 0` on the absorbing boundary.

Detailed balance (zero stationary flux) holds iff :math:`D^{-1}c` is a gradient,
:math:`D^{-1}c = -\nabla\Phi`; then :math:`\rho \propto e^{-\Phi}` is stationary, since
:math:`\nabla\rho = -\rho\nabla\Phi = \rho D^{-1}c` gives :math:`J(\rho) = c\rho - D\nabla\rho = 0`.
Special cases: Gibbs :math:`\rho\propto e^{-f/\varepsilon}` for :math:`b = -\nabla f`,
:math:`D = \varepsilon I`; in 1-D always :math:`\rho \propto D^{-1}\exp\int b/D`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sympy as sp

from ..errors import InputError, require
from .datamean import has_data_nodes, lambdify_datamean
from .shapes import sde_parts
from .stage import Stage, latex_broken_sum
from .weakform import (
    WeakForm,
    divergence,
    exit_time_form,
    forward_form,
    row_divergence,
    stationary_form,
)

WEAK_FORM_KINDS = ("forward", "symmetrised", "exit_time", "stationary")


#: relative tolerance of zero tests on expressions with floating-point coefficients (data moments)
FLOAT_RTOL = 1e-9

#: symbolic proofs (determinants, simplify) are attempted only on matrices up to this many operations
SYMBOLIC_OPS_LIMIT = 400

#: test points of the numerical curl (each with a 2d-point stencil): a generic rotational field has a
#: curl at almost every point, so two suffice; each costs 2d evaluations of the data-means
CURL_TEST_POINTS = 2


def _sample_points(exprs: Sequence[sp.Expr], n: int = 4) -> list[dict[sp.Symbol, float]]:
    """A few fixed pseudo-random points in [0.5, 1.5] for every free symbol of ``exprs``."""
    import numpy as np

    syms = sorted(set().union(*[sp.sympify(e).free_symbols for e in exprs]), key=str)
    rng = np.random.default_rng(20240607)
    return [dict(zip(syms, map(float, rng.uniform(0.5, 1.5, len(syms))), strict=True)) for _ in range(n)]


def _cancels(a: sp.Expr, b: sp.Expr) -> bool:
    """True when ``a - b`` is 0: exactly (simplify), or, with float coefficients, to a relative tolerance.

    Floats come from empirical data moments and carry round-off (1e-19 where exact arithmetic gives 0),
    so then ``|a - b| <= FLOAT_RTOL (|a| + |b|)`` is tested at a few fixed points.
    """
    a, b = sp.sympify(a), sp.sympify(b)
    diff = a - b
    if diff == 0:
        return True
    if has_data_nodes(diff):  # data-means: numerically only (no simplify of sums over samples)
        pts = _sample_points([a, b]) or [{}]
        for va, vb in _numeric_values([a, b], pts):
            if abs(va - vb) > FLOAT_RTOL * (abs(va) + abs(vb)) + 1e-300:
                return False
        return True
    if not diff.has(sp.Float):
        return sp.simplify(diff) == 0
    for pt in _sample_points([a, b]):
        va, vb = complex(a.evalf(subs=pt)), complex(b.evalf(subs=pt))
        if abs(va - vb) > FLOAT_RTOL * (abs(va) + abs(vb)) + 1e-300:
            return False
    return True


def _is_zero(e: sp.Expr) -> bool:
    """True when ``e`` simplifies to 0 (cheap tests first)."""
    return _cancels(e, sp.S.Zero)


def _numeric_values(exprs: Sequence[sp.Expr], pts: list[dict[sp.Symbol, float]]) -> list[list[float]]:
    """Each expression at each point, numerically (data-mean nodes as reductions over the samples)."""
    import numpy as np

    syms = list(pts[0]) if pts else []
    f = lambdify_datamean(syms, sp.Matrix([sp.sympify(e) for e in exprs]))  # one lowering for all
    vals = f(*[np.array([pt[s] for pt in pts]) for s in syms]) if syms else f()
    out = np.broadcast_to(np.asarray(vals, dtype=float).reshape(len(exprs), -1), (len(exprs), len(pts)))
    return [[float(out[k, p]) for k in range(len(exprs))] for p in range(len(pts))]


def _numerically_singular(D: sp.Matrix) -> bool | None:
    """det D at a few points: False when clearly non-zero at one, True when ≈ 0 at all, None if unknown."""
    import numpy as np

    pts = _sample_points(list(D)) or [{}]
    try:
        rows = _numeric_values(list(D), pts)
    except (TypeError, ValueError, InputError):
        return None
    d = D.rows
    for vals in rows:
        M = np.array(vals, dtype=float).reshape(d, d)
        if abs(np.linalg.det(M)) > FLOAT_RTOL * float(np.prod(np.linalg.norm(M, axis=1))):
            return False
    return True


def _is_singular(D: sp.Matrix) -> bool:
    """True when det D = 0: decided numerically first (det at sample points against Hadamard's bound
    prod_i |row_i|); a symbolic determinant only when D is small and has no data-mean nodes."""
    numeric = _numerically_singular(D)
    if numeric is False:
        return False  # a clearly non-zero determinant at one point: not identically singular
    if has_data_nodes(D) or sum(sp.count_ops(e) for e in D) > SYMBOLIC_OPS_LIMIT:
        return bool(numeric) if numeric is not None else True
    det = D.det()
    if not sp.sympify(det).has(sp.Float):
        return _is_zero(det)
    return bool(numeric)


def _exp_of_minus(phi: sp.Expr, state: Sequence[sp.Symbol]) -> sp.Expr:
    r""":math:`e^{-\Phi}`, the :math:`k\log g` terms of :math:`\Phi` turned into factors :math:`g^{-k}`."""
    factor, rest = sp.S.One, []
    phi = sp.expand(sp.expand_log(phi, force=False), deep=False, multinomial=False, power_exp=False)
    for term in sp.Add.make_args(phi):
        coeff, logs = term.as_independent(sp.log, as_Add=False)
        if isinstance(logs, sp.log) and coeff.free_symbols.isdisjoint(state):
            factor *= logs.args[0] ** (-coeff)
        else:
            rest.append(term)
    return factor * sp.exp(-sp.Add(*rest))


@dataclass(frozen=True)
class DetailedBalance:
    r"""Result of the detailed-balance test: is :math:`D^{-1}(b - \nabla\cdot D)` a gradient?

    Attributes:
        holds: True when the test passed (zero stationary flux is possible).
        field: :math:`F = D^{-1}(b - \nabla\cdot D)` (None when D is singular).
        potential: :math:`\Phi` with :math:`\nabla\Phi = -F` when it holds (may contain an unevaluated
            ``Integral`` if SymPy finds no antiderivative), else None.
        reason: why it holds or fails, in words.
    """

    holds: bool
    field: Any
    potential: Any
    reason: str

    def __bool__(self) -> bool:
        return self.holds


class Generator:
    r"""The backward generator :math:`\mathcal L\varphi = b\cdot\nabla\varphi + D:\nabla^2\varphi`.

    Call it on a SymPy expression in the state; :attr:`expr` is its action on an undetermined
    function :math:`\varphi(\theta)`.
    """

    def __init__(self, state: tuple[sp.Symbol, ...], drift: sp.Matrix, diffusion: sp.Matrix) -> None:
        self.state, self.drift, self.diffusion = state, drift, diffusion

    def __call__(self, phi: Any) -> sp.Expr:
        """:math:`\\mathcal L\\varphi` for a SymPy expression ``phi`` of the state."""
        phi = sp.sympify(phi)
        d = len(self.state)
        first = sp.Add(*[self.drift[i] * sp.diff(phi, self.state[i]) for i in range(d)])
        second = sp.Add(
            *[
                self.diffusion[i, j] * sp.diff(phi, self.state[i], self.state[j])
                for i in range(d)
                for j in range(d)
            ]
        )
        return first + second

    @property
    def expr(self) -> sp.Expr:
        r"""The generator applied to an undetermined :math:`\varphi(\theta)`."""
        if not hasattr(self, "_expr"):
            self._expr = self(sp.Function("varphi")(*self.state))
        return self._expr

    def latex(self) -> str:
        r"""LaTeX of :math:`\mathcal L\varphi = \dots`."""
        return r"\mathcal{L}\varphi = " + sp.latex(self.expr)


class FokkerPlanck(Stage):
    r"""The Fokker–Planck equation :math:`\partial_t p = -\nabla\cdot J`, :math:`J = bp - \nabla\cdot(Dp)`.

    Args:
        sde: a :class:`symfp.SDE` (anything with ``.state``, ``.drift`` d×1, ``.diffusion`` d×d).

    Attributes:
        sde: the SDE.
        state: its state symbols.
        density: the undetermined density :math:`p(\theta)` (a SymPy ``Function`` applied to the state).
    """

    def __init__(self, sde: Any) -> None:
        state, b, D = sde_parts(sde, "FokkerPlanck")
        b, D = sp.ImmutableMatrix(b), sp.ImmutableMatrix(D)
        self._sde, self._state, self._b, self._D = sde, state, b, D
        self._cache: dict[str, Any] = {}

    # ------------------------------------------------------------------ basic pieces
    @property
    def sde(self) -> Any:
        """The SDE this equation belongs to."""
        return self._sde

    @property
    def state(self) -> tuple[sp.Symbol, ...]:
        """The state symbols (spatial coordinates of the PDE)."""
        return self._state

    @property
    def time(self) -> sp.Symbol | None:
        """The SDE's time symbol t (``SDE.time``: schedules), or None."""
        return getattr(self._sde, "time", None)

    @property
    def is_autonomous(self) -> bool:
        """True when drift and diffusion do not depend explicitly on time."""
        t = self.time
        return t is None or t not in (self._b.free_symbols | self._D.free_symbols)

    @property
    def dim(self) -> int:
        """The dimension d."""
        return len(self._state)

    @property
    def density(self) -> sp.Expr:
        r"""The unknown :math:`p(\theta)` as an undetermined SymPy function."""
        return sp.Function("p")(*self._state)

    @property
    def divergence_of_diffusion(self) -> sp.Matrix:
        r"""Row-wise :math:`(\nabla\cdot D)_i = \sum_j \partial_j D_{ij}`."""
        return row_divergence(self._D, self._state)

    @property
    def effective_drift(self) -> sp.Matrix:
        r""":math:`c = b - \nabla\cdot D`, so that :math:`J = c\,p - D\nabla p`."""
        return sp.Matrix(self._b) - self.divergence_of_diffusion

    def flux_of(self, p: Any) -> sp.Matrix:
        r"""The probability flux :math:`J = b\,p - \nabla\cdot(D p)` of a SymPy expression ``p``."""
        p = sp.sympify(p)
        return sp.Matrix(self._b) * p - row_divergence(sp.Matrix(self._D) * p, self._state)

    def apply(self, p: Any) -> sp.Expr:
        r"""The forward operator :math:`-\nabla\cdot J(p)` applied to a SymPy expression ``p``."""
        return -divergence(self.flux_of(p), self._state)

    @property
    def flux(self) -> sp.Matrix:
        r""":math:`J = b\,p - \nabla\cdot(D p)` with :math:`p` undetermined (d×1)."""
        return self.flux_of(self.density)

    @property
    def operator(self) -> sp.Expr:
        r"""The right-hand side :math:`-\nabla\cdot J` of :math:`\partial_t p = -\nabla\cdot J`."""
        if "operator" not in self._cache:  # computed once: the LaTeX document and the FE layer reuse it
            self._cache["operator"] = self.apply(self.density)
        return self._cache["operator"]

    @property
    def generator(self) -> Generator:
        r"""The backward generator :math:`\mathcal L` (callable; ``.expr`` is its action on φ)."""
        if "generator" not in self._cache:
            self._cache["generator"] = Generator(self._state, sp.Matrix(self._b), sp.Matrix(self._D))
        return self._cache["generator"]

    def exit_time_equation(self) -> sp.Eq:
        r"""The mean exit time equation :math:`-\mathcal L\tau = 1` with :math:`\tau(\theta)` undetermined.

        Boundary conditions: :math:`\tau = 0` on the absorbing parts, :math:`(D\nabla\tau)\cdot n = 0` on
        reflecting ones (see :func:`symfp.symbolic.weakform.exit_time_form`).
        """
        tau = sp.Function("tau")(*self._state)
        return sp.Eq(-self.generator(tau), 1)

    def mean_exit_time_1d(self, reflecting: Any, absorbing: Any) -> sp.Expr:
        r"""Closed-form 1-D mean exit time, reflecting at :math:`a`, absorbing at :math:`c`.

        With the scale density :math:`s = \exp(-\int b/D)` and speed density :math:`m = 1/(Ds)`,
        :math:`\tau(x) = \int_x^c s(y)\int_a^y m(z)\,dz\,dy` (for :math:`a < c` or :math:`a > c`).
        May contain unevaluated integrals when SymPy finds no antiderivative.
        """
        if self.dim != 1:
            raise InputError(f"mean_exit_time_1d: the SDE has {self.dim} state variables; it needs 1")
        x = self._state[0]
        b, D = self._b[0], self._D[0]
        yv, zv = sp.Dummy("y"), sp.Dummy("z")
        s = sp.exp(-sp.integrate(b / D, x))
        m = sp.simplify(1 / (D * s))
        inner = sp.integrate(m.subs(x, zv), (zv, reflecting, yv))
        return sp.integrate(s.subs(x, yv) * inner, (yv, x, absorbing))

    # ------------------------------------------------------------------ stationary behaviour
    def detailed_balance(self) -> DetailedBalance:
        r"""Test whether :math:`F = D^{-1}(b - \nabla\cdot D)` is a gradient (zero stationary flux).

        Holds iff D is invertible and :math:`\partial_i F_j = \partial_j F_i` for all i < j (on a simply
        connected domain); then :math:`\Phi = -\int F\cdot d\theta` (integrated coordinate by coordinate)
        and :math:`\rho\propto e^{-\Phi}` has :math:`J(\rho) = 0`.
        """
        if "db" in self._cache:
            return self._cache["db"]
        st, d = self._state, self.dim
        D = sp.Matrix(self._D)
        if _is_singular(D):
            res = DetailedBalance(
                False,
                None,
                None,
                "detailed balance fails: D is singular (degenerate noise), "
                "so D^{-1}(b - div D) does not exist",
            )
            self._cache["db"] = res
            return res
        nodes = has_data_nodes(D) or has_data_nodes(self._b)
        floats = D.has(sp.Float) or self._b.has(sp.Float)
        pair: Any = "unknown"
        if nodes and d == 1:
            res = DetailedBalance(True, None, None, "detailed balance holds (1-D); the potential "
                                  "log D - ∫ b/D of a data-mean drift has no closed form")
            self._cache["db"] = res
            return res
        if (floats or nodes) and d > 1:  # floats or data-means: decide on the curl numerically first
            pair = self._numeric_curl()
            if isinstance(pair, tuple):
                (i, j), size = pair
                res = DetailedBalance(
                    False,
                    None,
                    None,
                    "detailed balance fails: F = D^{-1}(b - div D) is not a gradient, its curl component "
                    f"d{st[i]} F_{st[j]} - d{st[j]} F_{st[i]} is not 0 (relative size {size:.2g} at a test "
                    "point, beyond round-off); the stationary density, if any, has non-zero flux",
                )
                self._cache["db"] = res
                return res
            if nodes:  # no symbolic curl and potential of data-mean fields: state what is known
                res = DetailedBalance(
                    pair == "symmetric", None, None,
                    "detailed balance holds to round-off at the test points (numerical curl of "
                    "D^{-1}(b - div D)), but the potential of a data-mean field has no closed form"
                    if pair == "symmetric" else
                    "detailed balance undecided: D is numerically singular at a test point",
                )
                self._cache["db"] = res
                return res
        F = (D.inv() * self.effective_drift).applyfunc(sp.cancel)
        for i in range(0 if floats and pair == "symmetric" else d):
            for j in range(i + 1, d):
                dij, dji = sp.diff(F[j], st[i]), sp.diff(F[i], st[j])
                if not _cancels(dij, dji):
                    shown = str(dij - dji if (dij - dji).has(sp.Float) else sp.simplify(dij - dji))
                    shown = shown if len(shown) <= 120 else shown[:120] + " ..."
                    res = DetailedBalance(
                        False,
                        F,
                        None,
                        "detailed balance fails: F = D^{-1}(b - div D) is not a gradient, its curl "
                        f"component d{st[i]} F_{st[j]} - d{st[j]} F_{st[i]} = {shown} "
                        "is not 0 (rotational drift); "
                        "the stationary density, if any, has non-zero flux",
                    )
                    self._cache["db"] = res
                    return res
        if d == 1:  # every 1-D field is a gradient: Phi = log D - ∫ b/D
            integral = sp.integrate(sp.cancel(sp.Matrix(self._b)[0] / D[0]), st[0])
            res = DetailedBalance(True, F, sp.log(D[0]) - integral, "detailed balance holds (1-D)")
            self._cache["db"] = res
            return res
        phi = sp.S.Zero
        for k in range(d):
            r = sp.simplify(-F[k] - sp.diff(phi, st[k]))
            if r.has(sp.Float):  # the curl vanished, so terms in earlier coordinates are round-off
                r = sp.Add(*[t for t in sp.Add.make_args(sp.expand(r)) if t.free_symbols.isdisjoint(st[:k])])
            phi = phi + sp.integrate(r, st[k])
        res = DetailedBalance(True, F, phi, "detailed balance holds: D^{-1}(b - div D) = -grad Phi")
        self._cache["db"] = res
        return res

    def _numeric_curl(self) -> tuple[tuple[int, int], float] | str:
        r"""The largest relative asymmetry of :math:`\partial_i F_j` at a few points, if beyond round-off.

        :math:`F = D^{-1}(b - \nabla\cdot D)` is evaluated numerically (data-means as reductions over
        the samples) at :math:`\theta \pm h e_i` around each test point, all in one pass, and its
        Jacobian is the central difference :math:`\partial_i F \approx (F(\theta + he_i) -
        F(\theta - he_i))/2h` with :math:`h = 10^{-5}\max(1, |\theta_i|)`: truncation
        :math:`h^2 F'''/6 \approx 10^{-11}` and round-off :math:`\approx 10^{-15}|F|/h \approx 10^{-10}`
        relative, far below the :math:`10^{-6}` asymmetry that counts as a curl. (No symbolic second
        and third derivatives of the data-means are built, and each test point costs 2d evaluations.)
        Returns ``((i, j), size)`` when the Jacobian of F is not symmetric, ``"symmetric"`` when it is
        to round-off at every point, ``"unknown"`` when D is numerically singular at a point.
        """
        import numpy as np

        st = self._state
        d = len(st)
        D, c = sp.Matrix(self._D), self.effective_drift
        pts = _sample_points([*D, *c, *st], n=CURL_TEST_POINTS)
        syms = list(pts[0])
        g = lambdify_datamean(syms, sp.Matrix([*D, *c]))  # one lowering for D and c
        pos = [syms.index(s) for s in st]
        base = np.array([[pt[s] for s in syms] for pt in pts], dtype=float)  # (P, n_syms)
        h = 1e-5 * np.maximum(1.0, np.abs(base[:, pos]))  # (P, d)
        stencil = []
        for i in range(d):
            for sign in (-1.0, 1.0):
                shifted = base.copy()
                shifted[:, pos[i]] += sign * h[:, i]
                stencil.append(shifted)
        allpts = np.concatenate(stencil)  # (2d P, n_syms)
        vals = np.asarray(g(*allpts.T), dtype=float)[:, 0, :].T  # (2d P, d² + d)
        try:
            F = np.linalg.solve(vals[:, : d * d].reshape(-1, d, d), vals[:, d * d:, None])[..., 0]
        except np.linalg.LinAlgError:
            return "unknown"
        P = len(base)
        F = F.reshape(d, 2, P, d)  # (direction i, minus/plus, point, component j)
        worst: tuple[tuple[int, int], float] | None = None
        for p in range(P):
            # J[j, i] = d_i F_j
            J = np.column_stack([(F[i, 1, p] - F[i, 0, p]) / (2 * h[p, i]) for i in range(d)])
            asym = np.abs(J - J.T) / (np.abs(J).max() + 1e-300)
            j, i = np.unravel_index(np.argmax(asym), asym.shape)
            if asym[j, i] > 1e-6 and (worst is None or asym[j, i] > worst[1]):
                worst = ((min(i, j), max(i, j)), float(asym[j, i]))
        return "symmetric" if worst is None else worst

    def _stationary(self) -> tuple[sp.Expr | None, str]:
        if "rho" in self._cache:
            return self._cache["rho"]
        b, D, st = sp.Matrix(self._b), sp.Matrix(self._D), self._state
        if not self.is_autonomous:
            out0: tuple[sp.Expr | None, str] = (
                None,
                f"drift or diffusion depend explicitly on time {self.time} (a schedule): the law has no "
                "stationary density in general (it tracks a moving target)",
            )
            self._cache["rho"] = out0
            return out0
        if self.dim == 1 and (has_data_nodes(D) or has_data_nodes(b)):
            out0 = (None, "1-D zero flux: rho ∝ D^-1 exp(∫ b/D), but b/D contains data-means over the "
                          "samples, which have no closed-form antiderivative (solve the FE problem)")
            self._cache["rho"] = out0
            return out0
        if self.dim == 1:
            x = st[0]
            if _is_zero(D[0]):
                out: tuple[sp.Expr | None, str] = (
                    None,
                    "D = 0: no noise, no stationary density in closed form",
                )
            else:
                integral = sp.integrate(sp.cancel(b[0] / D[0]), x)
                if integral.has(sp.Integral):
                    out = (
                        None,
                        f"1-D zero flux: rho ∝ D^-1 exp(∫ b/D), but ∫ {b[0] / D[0]} dx has no closed form",
                    )
                elif D[0].free_symbols & set(st):
                    out = (_exp_of_minus(-integral, st) / D[0], "1-D zero-flux density rho ∝ D^-1 exp(∫ b/D)")
                else:  # constant D = eps: the Gibbs density exp(-f/eps) with f = -∫ b
                    out = (
                        _exp_of_minus(-integral, st),
                        f"Gibbs density exp(-f/eps) with f = -∫ b, eps = D = {D[0]} (1-D zero flux)",
                    )
        else:
            db = self.detailed_balance()
            if not db.holds or db.potential is None:
                out = (None, db.reason)
            elif db.potential.has(sp.Integral):
                out = (None, "detailed balance holds but the potential Phi has no closed form antiderivative")
            else:
                iso = D.is_diagonal() and len(set(D.diagonal())) == 1 and not (D[0, 0].free_symbols & set(st))
                kind = (
                    f"Gibbs density exp(-f/eps) for isotropic constant noise D = ({D[0, 0]}) I, b = -grad f"
                    if iso
                    else "detailed balance: rho ∝ exp(-Phi) with grad Phi = -D^{-1}(b - div D)"
                )
                out = (_exp_of_minus(db.potential, st), kind)
        self._cache["rho"] = out
        return out

    def stationary_density(self) -> sp.Expr | None:
        r"""The unnormalised stationary density in closed form, or None (see :attr:`stationary_reason`).

        Gibbs :math:`e^{-f/\varepsilon}` (isotropic constant noise, gradient drift); any 1-D case
        :math:`D^{-1}\exp\int b/D`; any case passing :meth:`detailed_balance`: :math:`e^{-\Phi}`.
        Divide by :meth:`normalization` for a probability density.
        """
        return self._stationary()[0]

    @property
    def stationary_reason(self) -> str:
        """Which closed form :meth:`stationary_density` used, or why there is none."""
        return self._stationary()[1]

    def _limits(self, domain: Sequence[tuple[Any, Any]] | None, where: str) -> list[tuple[Any, Any]]:
        if domain is None:
            return [(-sp.oo, sp.oo)] * self.dim
        dom = list(domain)
        if len(dom) != self.dim or not all(len(iv) == 2 for iv in dom):
            raise InputError(f"{where}: domain must be {self.dim} (low, high) pairs, one per state variable")
        return [(sp.sympify(lo), sp.sympify(hi)) for lo, hi in dom]

    def _integrate(self, expr: sp.Expr, domain: Any, numeric: bool, where: str) -> sp.Expr | float:
        lims = self._limits(domain, where)
        if numeric:
            free = expr.free_symbols - set(self._state)
            if free:
                raise InputError(
                    f"{where}: numeric quadrature needs numbers for {sorted(map(str, free))}; "
                    "use fp.subs(...) first"
                )
            import mpmath

            f = sp.lambdify(self._state, expr, "mpmath")
            pts = [
                [lo, 0, hi] if lo < 0 < hi else [lo, hi] for lo, hi in ((float(a), float(b)) for a, b in lims)
            ]
            val = mpmath.quad(f, *pts)
            value = float(val)
            if not mpmath.isfinite(val):
                raise InputError(f"{where}: the integral over {lims} is not finite; give a bounded domain")
            return value
        val = sp.integrate(expr, *[(s, lo, hi) for s, (lo, hi) in zip(self._state, lims, strict=True)])
        if val.has(sp.Integral):
            raise InputError(f"{where}: SymPy finds no closed form; call it with numeric=True (after .subs)")
        if val.has(sp.oo, -sp.oo, sp.zoo, sp.nan):
            raise InputError(
                f"{where}: the stationary density is not integrable over {lims} (integral {val}); "
                "give a bounded domain, e.g. domain=[(-2, 2)]"
            )
        return val

    def normalization(self, domain: Sequence[tuple[Any, Any]] | None = None, numeric: bool = False):
        r"""The normalising constant :math:`Z = \int_\Omega \rho` of :meth:`stationary_density`.

        Args:
            domain: one (low, high) pair per state variable; default the whole space.
            numeric: use adaptive quadrature (mpmath) instead of symbolic integration.

        Raises:
            InputError: no closed-form density, not integrable, or symbols left for numeric quadrature.
        """
        rho = self.stationary_density()
        if rho is None:
            raise InputError(f"normalization: no closed-form stationary density ({self.stationary_reason})")
        return self._integrate(rho, domain, numeric, "normalization")

    def stationary_expectation(
        self, g: Any, domain: Sequence[tuple[Any, Any]] | None = None, numeric: bool = False
    ):
        r""":math:`\mathbb E_\rho[g] = \int g\rho / \int \rho` under the stationary density."""
        rho = self.stationary_density()
        if rho is None:
            raise InputError(
                f"stationary_expectation: no closed-form stationary density ({self.stationary_reason})"
            )
        num = self._integrate(sp.sympify(g) * rho, domain, numeric, "stationary_expectation")
        return num / self.normalization(domain, numeric)

    # ------------------------------------------------------------------ downstream
    def weak_form(self, kind: str = "forward", **kwargs: Any) -> WeakForm:
        """The weak form IR: ``forward``, ``symmetrised``, ``exit_time`` (``absorbing=``), ``stationary``."""
        if kind == "forward":
            return forward_form(self._sde, **kwargs)
        if kind == "symmetrised":
            if kwargs.get("density") is None:  # this equation's own stationary density (cached)
                rho = self.stationary_density()
                if rho is None:
                    raise InputError(
                        "forward_form(symmetrised=True): no closed-form zero-flux stationary density: "
                        f"{self.stationary_reason}. Use the plain forward form, or pass density= yourself."
                    )
                kwargs["density"] = rho
            return forward_form(self._sde, symmetrised=True, **kwargs)
        if kind == "exit_time":
            return exit_time_form(self._sde, **kwargs)
        if kind == "stationary":
            return stationary_form(self._sde, **kwargs)
        raise InputError(
            f"FokkerPlanck.weak_form: unknown kind {kind!r}; use one of {', '.join(WEAK_FORM_KINDS)}"
        )

    def solve(self, mesh: Any, p0: Any, t_end: float, dt: float, backend: str = "auto", **kwargs: Any):
        """Solve the forward equation with finite elements: ``symfp.fem.registry.solve``.

        ``backend``: "auto" (dolfinx when importable, else scikit-fem), "dolfinx" or "skfem".
        """
        registry = require("symfp.fem.registry", "FokkerPlanck.solve")
        return registry.solve(self, mesh, p0, t_end, dt, backend=backend, feature="FokkerPlanck.solve",
                              **kwargs)

    def mean_exit_time(self, mesh: Any, absorbing: Any = None, backend: str = "auto", **kwargs: Any):
        """FE solution of :math:`-\\mathcal L\\tau = 1` (``symfp.fem.registry.mean_exit_time``)."""
        registry = require("symfp.fem.registry", "FokkerPlanck.mean_exit_time")
        return registry.mean_exit_time(self._sde, mesh, absorbing=absorbing, backend=backend,
                                       feature="FokkerPlanck.mean_exit_time", **kwargs)

    def subs(self, mapping: Mapping[Any, Any] | None = None, **kwargs: Any) -> FokkerPlanck:
        """The Fokker–Planck equation of ``sde.subs(...)``."""
        return FokkerPlanck(self._sde.subs(mapping, **kwargs))

    # ------------------------------------------------------------------ display
    def latex(self) -> str:
        r"""LaTeX: :math:`\partial_t p = -\nabla\cdot J`, the flux, and b, D, ∇·D written out.

        For d > 1 an ``aligned`` block, one entry per line (long sums broken every three terms).
        """
        b, D = sp.Matrix(self._b), sp.Matrix(self._D)
        divD = self.divergence_of_diffusion
        head = r"\partial_t p = -\nabla\cdot J,\quad J = b\,p - \nabla\cdot(D\,p)"
        if self.dim == 1:
            bl, Dl, dl = sp.latex(b[0]), sp.latex(D[0]), sp.latex(divD[0])
            return rf"{head},\qquad b = {bl},\quad D = {Dl},\quad \nabla\cdot D = {dl}"
        names = [sp.latex(s) for s in self._state]
        rows = [(r"\partial_t p", head[len(r"\partial_t p = "):])]
        rows += [(f"b_{{{names[i]}}}", latex_broken_sum(b[i])) for i in range(self.dim)]
        rows += [(f"D_{{{names[i]} {names[j]}}}", latex_broken_sum(D[i, j]))
                 for i in range(self.dim) for j in range(i, self.dim)]
        rows += [(rf"(\nabla\cdot D)_{{{names[i]}}}", latex_broken_sum(divD[i])) for i in range(self.dim)]
        body = " \\\\\n".join(f"{lhs} &= {rhs}" for lhs, rhs in rows)
        return "\\begin{aligned}\n" + body + "\n\\end{aligned}"

    def operator_latex(self) -> str:
        r"""LaTeX of the expanded equation :math:`\partial_t p = \dots` in partial derivatives of p."""
        return r"\frac{\partial p}{\partial t} = " + sp.latex(sp.expand(self.operator))

    def __str__(self) -> str:
        return f"FokkerPlanck in {', '.join(map(str, self._state))}: dp/dt = {self.operator}"

    def __repr__(self) -> str:
        return f"FokkerPlanck({self._sde!r})"
