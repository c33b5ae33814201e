r"""Observables of a nodal density from weight vectors assembled once (backend-neutral numpy).

Every linear functional of the discrete density :math:`p_h = \sum_j u_j\varphi_j` is a dot product
:math:`\int g\,p_h = \sum_j u_j \int g\varphi_j` with a weight vector a backend assembles once:
mass, mean, second moments, :math:`E[f]` and the mass of each region. Entropy and relative entropy
use the vertex weights :math:`m_i = \int\varphi_i`: :math:`H = -\sum_i m_i p_i\ln p_i`,
:math:`\mathrm{KL} = \sum_i m_i p_i \ln(p_i/\pi_i)` with :math:`\pi_i = \rho(x_i)/\sum_j m_j\rho(x_j)`
(the same definitions as :mod:`symfp.fem.dolfinx.observables`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


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
    """

    def __init__(self, vectors: Mapping[str, np.ndarray], d: int, lumped: np.ndarray, *,
                 expectations: Sequence[str] = (), regions: Sequence[str] = (),
                 log_stationary: np.ndarray | None = None):
        self.vectors = dict(vectors)
        self.d = d
        self.lumped = np.asarray(lumped, dtype=float)
        self.expectations = list(expectations)
        self.regions = list(regions)
        self._log_pi = None
        if log_stationary is not None:
            lr = np.asarray(log_stationary, dtype=float)
            self._log_pi = lr - np.log(float((self.lumped * np.exp(lr)).sum()))
        keys = ["t", "mass", "mean", "cov", "min", "max", "entropy"]
        if self._log_pi is not None:
            keys.append("relative_entropy")
        keys += [f"E[{n}]" for n in self.expectations] + ["region_mass"]
        self.rows: dict[str, list[Any]] = {k: [] for k in keys}

    def record(self, t: float, u: np.ndarray, p: np.ndarray) -> dict[str, Any]:
        """Record the observables of the nodal density ``p`` (``u`` is the unknown, equal here)."""
        dots = {k: float(w @ p) for k, w in self.vectors.items()}
        mass = dots["mass"]
        mean = np.array([dots[f"x{i}"] / mass for i in range(self.d)])
        second = np.empty((self.d, self.d))
        for i in range(self.d):
            for j in range(i, self.d):
                second[i, j] = second[j, i] = dots[f"x{i}x{j}"] / mass
        pos = p > 1e-300
        logp = np.log(np.where(pos, p, 1.0))
        wp = np.where(pos, self.lumped * p, 0.0)
        row: dict[str, Any] = {"t": t, "mass": mass, "mean": mean, "cov": second - np.outer(mean, mean),
                               "min": float(p.min()), "max": float(p.max()),
                               "entropy": -float((wp * logp).sum())}
        if self._log_pi is not None:
            row["relative_entropy"] = float((wp * (logp - self._log_pi)).sum())
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
