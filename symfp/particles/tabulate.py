r"""Drift and diffusion of an SDE tabulated once on a tensor grid, interpolated at the particles.

Evaluating a data-mean SME per particle costs n·N per step (every particle reduces over the N
samples, :mod:`symfp.particles.lambdify`). With ``simulate_sde(..., tabulate=GridSpec(...))`` the
drift b and the diffusion factor input (2D, or its diagonal / rank-one parts) are evaluated **once**
at the :math:`P = \prod_k n_k` nodes of a tensor grid over a box (the chunked data-mean reduction:
P·N work, one time), and each step interpolates them multilinearly at the particles: :math:`2^d`
gathers per particle, whatever N.

Error. Multilinear interpolation of a C² function on cells of widths :math:`h_k` has error at most
:math:`\tfrac18\sum_k h_k^2 \max|\partial_k^2 f|`. It is **measured**, not assumed: at
``GridSpec.samples`` uniformly random points of the box (fixed seed) the interpolant is compared with
the exact evaluation, and the largest error relative to the largest tabulated magnitude is stored in
the run's ``info["tabulation"]`` (``drift_error``, ``diffusion_error``); a run whose error exceeds
``GridSpec.tol`` is refused. Interpolating 2D keeps it positive semi-definite (a convex combination of
PSD matrices). A particle (or a supporting value of the weak order-2 scheme) outside the box is an
``InputError`` naming the coordinate: no extrapolation.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InputError


@dataclass(frozen=True)
class GridSpec:
    """A box and a tensor grid on which to tabulate an SDE's coefficients.

    Args:
        bounds: one (low, high) pair per state coordinate.
        points: nodes per axis (one int for all axes, or one per axis), at least 2.
        tol: the largest accepted interpolation error, relative to the largest tabulated magnitude.
        samples: random points of the box at which the interpolation error is measured.
    """

    bounds: Sequence[tuple[float, float]]
    points: int | Sequence[int] = 65
    tol: float = 1e-3
    samples: int = 256

    def __post_init__(self) -> None:
        try:
            b = tuple((float(lo), float(hi)) for lo, hi in self.bounds)
        except (TypeError, ValueError):
            raise InputError(f"GridSpec: bounds must be (low, high) pairs, got {self.bounds!r}") from None
        object.__setattr__(self, "bounds", b)
        pts = (self.points,) * len(b) if np.ndim(self.points) == 0 else tuple(self.points)
        object.__setattr__(self, "points", tuple(int(p) for p in pts))

    def resolve(self, d: int, where: str) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
        """(low, high, counts) for a d-dimensional state, checked."""
        if len(self.bounds) != d:
            raise InputError(f"{where}: GridSpec has {len(self.bounds)} (low, high) pairs for {d} state "
                             "coordinates; give one pair per coordinate")
        lo, hi = np.array([b[0] for b in self.bounds]), np.array([b[1] for b in self.bounds])
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(hi > lo)):
            raise InputError(f"{where}: GridSpec bounds {self.bounds} must be finite with low < high")
        if len(self.points) != d or min(self.points) < 2:
            raise InputError(f"{where}: GridSpec points {self.points} must be >= 2 per axis ({d} axes)")
        if not (self.tol > 0 and self.samples >= 1):
            raise InputError(f"{where}: GridSpec needs tol > 0 and samples >= 1")
        return lo, hi, self.points


class Tabulated:
    """A function θ ↦ f(θ) of shape (n, *s), tabulated on a grid and interpolated multilinearly.

    Args:
        fn: the exact function (θ of shape (n, d) → (n, *s)), e.g. a lambdified drift.
        lo, hi, counts: the box and the nodes per axis.
        what: name in messages (e.g. "drift").
        where: caller, for errors.
    """

    def __init__(self, fn: Callable[..., torch.Tensor], lo: np.ndarray, hi: np.ndarray,
                 counts: Sequence[int], what: str, where: str, names: Sequence[str] | None = None):
        self.fn, self.what, self.where = fn, what, where
        self.names = list(names) if names is not None else [f"coordinate {k}" for k in range(len(counts))]
        self.d = len(counts)
        self.lo, self.hi, self.counts = lo, hi, tuple(counts)
        axes = [np.linspace(a, b, m) for a, b, m in zip(lo, hi, counts, strict=True)]
        nodes = np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], axis=1)
        vals = fn(torch.as_tensor(nodes, dtype=torch.float64))
        self.shape = tuple(vals.shape[1:])
        self._tab = {torch.float64: vals.reshape(len(nodes), -1).contiguous()}
        self.scale = float(vals.abs().max()) if vals.numel() else 0.0
        strides = np.cumprod((1,) + self.counts[::-1])[:-1][::-1].copy()  # row-major strides of the nodes
        self.strides = torch.as_tensor(strides, dtype=torch.long)
        self.offsets = [(c, int(np.dot(c, strides))) for c in itertools.product((0, 1), repeat=self.d)]
        self._geom: dict = {}

    def _table(self, like: torch.Tensor) -> torch.Tensor:
        key = (like.dtype, like.device)
        if key not in self._tab:
            self._tab[key] = self._tab[torch.float64].to(dtype=like.dtype, device=like.device)
        return self._tab[key]

    def _lo_inv_h(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        key = (like.dtype, like.device)
        if key not in self._geom:
            h = (self.hi - self.lo) / (np.array(self.counts) - 1)
            self._geom[key] = tuple(torch.as_tensor(v, dtype=like.dtype, device=like.device)
                                    for v in (self.lo, 1.0 / h, np.array(self.counts, dtype=float) - 1))
        return self._geom[key]

    def __call__(self, theta: torch.Tensor, t: Any = None, out: Any = None) -> torch.Tensor:
        lo, inv_h, top = self._lo_inv_h(theta)
        u = (theta - lo) * inv_h  # grid units
        eps = 1e-9
        outside = (u < -eps) | (u > top + eps)
        if bool(outside.any()):
            k = int(outside.any(dim=0).nonzero()[0, 0])
            frac = float(outside[:, k].double().mean())
            worst = theta[outside[:, k], k]
            raise InputError(
                f"{self.where}: {100 * frac:.3g}% of the particles (or the scheme's supporting values) left "
                f"the tabulation grid in {self.names[k]} ([{self.lo[k]:g}, {self.hi[k]:g}]; e.g. "
                f"{float(worst[0]):.4g}) while evaluating the {self.what}; widen GridSpec(bounds=...) or "
                "drop tabulate= for the exact per-particle evaluation"
            )
        i = u.floor().clamp(min=torch.zeros_like(top), max=top - 1)
        f = u - i
        base = (i.long() * self.strides.to(theta.device)).sum(dim=1)
        tab = self._table(theta)
        acc = None
        for corner, off in self.offsets:
            w = None
            for k, c in enumerate(corner):
                wk = f[:, k] if c else 1.0 - f[:, k]
                w = wk if w is None else w * wk
            term = w[:, None] * tab[base + off]
            acc = term if acc is None else acc + term
        return acc.view(len(theta), *self.shape)

    def error(self, samples: int) -> tuple[float, float]:
        """The largest |exact − interpolated| at ``samples`` random points of the box (seed 0): absolute,
        and relative to the largest tabulated magnitude."""
        rng = np.random.default_rng(0)
        pts = self.lo + (self.hi - self.lo) * rng.random((samples, self.d))
        pts = torch.as_tensor(pts, dtype=torch.float64)
        exact, approx = self.fn(pts), self(pts)
        err = float((exact - approx).abs().max())
        return err, (err / self.scale if self.scale > 0 else err)


def tabulate_stepper(stepper: Any, grid: Any, where: str) -> dict:
    """Replace an SDE stepper's drift and diffusion inputs by grid interpolants; returns the info.

    The exact fast paths built from the symbolic drift (fused Euler steps, the compiled core) are
    switched off, so every evaluation goes through the interpolants.

    Raises:
        InputError: ``grid`` is not a :class:`GridSpec`, the SDE depends on time, or the measured
            interpolation error exceeds ``grid.tol``.
    """
    if not isinstance(grid, GridSpec):
        raise InputError(f"{where}: tabulate must be a symfp.particles.GridSpec(bounds=..., points=...), got "
                         f"{grid!r}; the grid's box is needed to tabulate the drift and diffusion")
    if stepper.time is not None:
        raise InputError(f"{where}: tabulate= needs an autonomous SDE (this one depends on {stepper.time})")
    lo, hi, counts = grid.resolve(stepper.d, where)
    t0 = time.perf_counter()
    names = [str(s) for s in stepper.state]
    drift = Tabulated(stepper.drift, lo, hi, counts, "drift", where, names)
    nf = stepper.noise
    attr = {"diagonal": "_diag", "rank1": "_r1", "full": "_full"}.get(nf.kind)
    diff = None
    if attr is not None:
        exact = getattr(nf, attr)
        diff = Tabulated(lambda th, f=exact: f(th), lo, hi, counts, "diffusion", where, names)
    build = time.perf_counter() - t0
    db = drift.error(grid.samples)
    dd = diff.error(grid.samples) if diff is not None else (0.0, 0.0)
    errs = {"drift_error": db[1], "diffusion_error": dd[1]}
    for name, e in errs.items():
        if not e <= grid.tol:
            raise InputError(
                f"{where}: the multilinear interpolation of the {name.split('_')[0]} on the "
                f"{'x'.join(map(str, counts))} grid has a relative error {e:.3g} > tol = {grid.tol:g} "
                f"(measured at {grid.samples} random points against the exact evaluation); use more points "
                "(the error falls like h^2: twice the points per axis, about 4x smaller) or a larger tol"
            )
    stepper.drift = drift
    if diff is not None:
        setattr(nf, attr, diff)
    stepper.fused = stepper.fused_pure = stepper.det = None
    stepper.fusable = False
    return {"grid": list(counts), "bounds": [list(b) for b in grid.bounds], "interpolation": "multilinear",
            "nodes": int(np.prod(counts)), "build_s": build, "tolerance": grid.tol,
            "samples": grid.samples, **errs, "drift_abs_error": db[0], "diffusion_abs_error": dd[0],
            "diffusion_tabulated": {"diagonal": "diag(2D)", "rank1": "(c, u) of 2D = c u u^T",
                                    "full": "2D"}.get(nf.kind, "none (constant D)")}
