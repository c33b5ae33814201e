r"""Gaussian references for the finite-element solver: the Ornstein–Uhlenbeck law and the L² error of a
P1 density against a Gaussian (used by the tests and benchmarks of linear SDEs).

For :math:`d\theta = -A\theta\,dt + \sqrt{2D}\,dW` from :math:`N(m_0, S_0)` the law stays Gaussian with

.. math:: \dot m = -A m, \qquad \dot S = -A S - S A^\top + 2D,

integrated here by SciPy (rtol 1e-12, atol 1e-14), which also covers a singular D (S stays positive
definite from a positive definite :math:`S_0`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import compat


def ou_moments(A: np.ndarray, D: np.ndarray, m0: np.ndarray, S0: np.ndarray, t: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance at time ``t`` of the OU process with drift −Aθ and diffusion D.

    Args:
        A: drift matrix (d×d), b(θ) = −Aθ.
        D: diffusion matrix (d×d), symmetric positive semi-definite.
        m0: initial mean (d).
        S0: initial covariance (d×d).
        t: time ≥ 0.

    Returns:
        (mean, covariance) at t.
    """
    from scipy.integrate import solve_ivp

    A, D = np.asarray(A, float), np.asarray(D, float)
    d = len(A)

    def rhs(_: float, z: np.ndarray) -> np.ndarray:
        m, S = z[:d], z[d:].reshape(d, d)
        return np.concatenate([-A @ m, (-A @ S - S @ A.T + 2 * D).ravel()])

    z0 = np.concatenate([np.asarray(m0, float), np.asarray(S0, float).ravel()])
    z = solve_ivp(rhs, (0, t), z0, rtol=1e-12, atol=1e-14).y[:, -1]
    return z[:d], z[d:].reshape(d, d)


def l2_error_2d(density: Any, msh: Any, m: np.ndarray, S: np.ndarray) -> float:
    r""":math:`\|p_h - N(m, S)\|_{L^2}` on a 2-D dolfinx mesh (collective).

    The Gaussian :math:`\exp(-\tfrac12 (x-m)^\top S^{-1}(x-m)) / (2\pi\sqrt{\det S})` is a UFL
    expression integrated at the form's quadrature degree.
    """
    ufl = compat.dolfinx_modules().ufl
    X = ufl.SpatialCoordinate(msh)
    P = np.linalg.inv(S)
    a, b = X[0] - m[0], X[1] - m[1]
    exact = ufl.exp(-(P[0, 0] * a**2 + 2 * P[0, 1] * a * b + P[1, 1] * b**2) / 2) / (
        2 * np.pi * np.sqrt(np.linalg.det(S)))
    return float(np.sqrt(compat.scalar_integral((density - exact) ** 2, msh)))
