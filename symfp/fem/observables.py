r"""Observables of a nodal density from weight vectors assembled once (backend-neutral numpy).

Every linear functional of the discrete density :math:`p_h = \sum_j u_j\varphi_j` is a dot product
:math:`\int g\,p_h = \sum_j u_j \int g\varphi_j` with a weight vector a backend assembles once:
mass, mean, second moments, :math:`E[f]` and the mass of each region. Entropy and relative entropy
use the vertex weights :math:`m_i = \int\varphi_i`: :math:`H = -\sum_i m_i p_i\ln p_i`,
:math:`\mathrm{KL} = \sum_i m_i p_i \ln(p_i/\pi_i)` with :math:`\pi_i = \rho(x_i)/\sum_j m_j\rho(x_j)`
(the same definitions for both backends: :mod:`symfp.fem.dolfinx.observables` only assembles the
weight vectors).

Linear functionals are dot products with the *unknown* u (for the Gibbs form of the dolfinx backend
:math:`p = \rho u` and the weight vectors hold :math:`\int g\rho\varphi_i`); min, max, entropy and KL
use the nodal density p. Under MPI each rank holds its owned entries and ``reductions``
(:class:`Reductions`) sums, minimises and maximises across the ranks: one reduction for all the dot
products of an output, one for min/max and one for the entropies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np


class Reductions:
    """Cross-rank reductions of owned values; this base class is the serial identity."""

    def sum(self, values: np.ndarray) -> np.ndarray:
        """Elementwise sum over the ranks of a float array."""
        return np.asarray(values, dtype=float)

    def min(self, value: float) -> float:
        """Minimum over the ranks."""
        return float(value)

    def max(self, value: float) -> float:
        """Maximum over the ranks."""
        return float(value)

    def scalar_sum(self, value: float) -> float:
        """Sum over the ranks of one number."""
        return float(self.sum(np.array([value]))[0])

    def minmax(self, p: np.ndarray) -> tuple[float, float]:
        """Global (min, max) of the owned values ``p`` (±inf placeholders on a rank with none)."""
        lo = float(p.min()) if len(p) else np.inf
        hi = float(p.max()) if len(p) else -np.inf
        return self.min(lo), self.max(hi)


SERIAL = Reductions()


def weight_vectors(mass: np.ndarray, weighted: Callable[[Any], np.ndarray], coords: Sequence[Any],
                   expectations: Mapping[str, Any],
                   regions: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    r"""The weight vectors :class:`NodalObservables` reads, under the keys it reads them by.

    Args:
        mass: the mass vector (:math:`\int w\varphi_i`, or the lumped mass a lumped scheme conserves).
        weighted: ``g ↦`` the assembled :math:`\int g\,w\varphi_i` of a backend's expression ``g``.
        coords: the d coordinate expressions of the backend (UFL ``x[i]``, or the state symbols).
        expectations: name → the backend's expression g of :math:`E[g]`.
        regions: name → the region's assembled mass vector.

    Returns:
        ``"mass"``, ``"x{i}"``, ``"x{i}x{j}"`` (i ≤ j), ``"E[name]"`` and ``"region:{name}"``.
    """
    vectors: dict[str, np.ndarray] = {"mass": mass}
    for i, xi in enumerate(coords):
        vectors[f"x{i}"] = weighted(xi)
        for j in range(i, len(coords)):
            vectors[f"x{i}x{j}"] = weighted(xi * coords[j])
    for name, g in expectations.items():
        vectors[f"E[{name}]"] = weighted(g)
    for name, vec in regions.items():
        vectors[f"region:{name}"] = vec
    return vectors


class NodalObservables:
    """Records mass, mean, cov, min, max, entropy, KL, ``E[name]`` and region masses (serial).

    Args:
        vectors: ``"mass"``, ``"x{i}"``, ``"x{i}x{j}"`` (i ≤ j), ``"E[name]"`` and ``"region:{name}"``
            weight vectors (∫ g φ_i).
        d: dimension.
        lumped: vertex weights :math:`m_i`.
        expectations: names of the expectations (their vectors are ``E[name]``).
        regions: region names (their vectors are ``region:{name}``).
        log_stationary: nodal :math:`\\ln\\rho` (unnormalised, shifted), or None.
        reductions: cross-rank sums/min/max of the owned entries (:data:`SERIAL` by default).
    """

    def __init__(self, vectors: Mapping[str, np.ndarray], d: int, lumped: np.ndarray, *,
                 expectations: Sequence[str] = (), regions: Sequence[str] = (),
                 log_stationary: np.ndarray | None = None, reductions: Reductions = SERIAL):
        self.vectors = {k: np.asarray(w, dtype=float) for k, w in vectors.items()}
        self._keys = list(self.vectors)
        self._W = np.array([self.vectors[k] for k in self._keys])  # one product and one reduction
        self.d = d
        self.lumped = np.asarray(lumped, dtype=float)
        self.expectations = list(expectations)
        self.regions = list(regions)
        self.reductions = reductions
        self._log_pi = None
        if log_stationary is not None:
            lr = np.asarray(log_stationary, dtype=float)[: len(self.lumped)]
            self._log_pi = lr - np.log(reductions.scalar_sum(float((self.lumped * np.exp(lr)).sum())))
        keys = ["t", "mass", "mean", "cov", "min", "max", "entropy"]
        if self._log_pi is not None:
            keys.append("relative_entropy")
        keys += [f"E[{n}]" for n in self.expectations] + ["region_mass"]
        self.rows: dict[str, list[Any]] = {k: [] for k in keys}

    @property
    def mass_weights(self) -> np.ndarray:
        r"""The weights :math:`w_i` with mass :math:`= w\cdot u` (owned entries)."""
        return self.vectors["mass"]

    def record(self, t: float, u: np.ndarray, p: np.ndarray) -> dict[str, Any]:
        """Record the observables of unknown ``u`` with nodal density ``p`` (owned entries; collective)."""
        red = self.reductions
        n = self._W.shape[1]
        sums = red.sum(self._W @ np.asarray(u[:n], dtype=float))
        dots = dict(zip(self._keys, map(float, sums), strict=True))
        mass = dots["mass"]
        mean = np.array([dots[f"x{i}"] / mass for i in range(self.d)])
        second = np.empty((self.d, self.d))
        for i in range(self.d):
            for j in range(i, self.d):
                second[i, j] = second[j, i] = dots[f"x{i}x{j}"] / mass
        p = np.asarray(p, dtype=float)
        pmin, pmax = red.minmax(p)
        pos = p > 1e-300
        logp = np.log(np.where(pos, p, 1.0))
        wp = np.where(pos, self.lumped * p, 0.0)
        local = [-float((wp * logp).sum())]
        if self._log_pi is not None:
            local.append(float((wp * (logp - self._log_pi)).sum()))
        ent = red.sum(np.array(local))
        row: dict[str, Any] = {"t": t, "mass": mass, "mean": mean, "cov": second - np.outer(mean, mean),
                               "min": pmin, "max": pmax, "entropy": float(ent[0])}
        if self._log_pi is not None:
            row["relative_entropy"] = float(ent[1])
        for name in self.expectations:
            row[f"E[{name}]"] = dots[f"E[{name}]"] / mass
        row["region_mass"] = np.array([dots[f"region:{r}"] for r in self.regions])
        for k, val in row.items():
            self.rows[k].append(val)
        return row

    def arrays(self) -> dict[str, np.ndarray]:
        """The recorded observables as numpy arrays (T, T×d, T×d×d, T×regions)."""
        out = {k: np.array(v) for k, v in self.rows.items()}
        out["region_names"] = np.array(self.regions, dtype=object)
        return out
