"""Particle engine (torch): the exact recursion, the SDE, exit times and Monte Carlo statistics.

Importing this package imports torch (never dolfinx: the mesh histogram imports it when called).

* :func:`simulate_sde` — Euler–Maruyama or weak order-2 paths of an :class:`symfp.SDE` (optionally
  with b and D tabulated on a :class:`GridSpec` and interpolated);
* :func:`simulate_recursion` — the exact one-step map of an SGD / :class:`symfp.Recursion`;
* :class:`ParticleCloud` — the result: ``.theta``, ``.mean()``, ``.cov()``, ``.moments()``,
  ``.exit_times()``, ``.histogram(mesh)``, ``.save``/``.load``;
* absorbing sets :class:`Box`, :class:`Ball`, :class:`HalfSpace`, :class:`SubLevel`,
  :class:`MeshComplement`;
* :func:`weak_error` — weak errors of the order-1/2 modified equations against the recursion.
"""

from __future__ import annotations

from .absorbing import Ball, Box, HalfSpace, SubLevel, Union
from .cloud import ExitTimes, ParticleCloud
from .sde import simulate_sde
from .statistics import hill_tail_index
from .tabulate import GridSpec

__all__ = [
    "Ball",
    "Box",
    "ExitTimes",
    "GridSpec",
    "HalfSpace",
    "MeshComplement",
    "ParticleCloud",
    "SubLevel",
    "Union",
    "hill_tail_index",
    "simulate_recursion",
    "simulate_sde",
    "weak_error",
]


def __getattr__(name: str):
    if name == "simulate_recursion":
        from .recursion import simulate_recursion

        return simulate_recursion
    if name == "MeshComplement":  # lives in the bridge (it needs an FE mesh)
        from ..bridge.absorbing import MeshComplement

        return MeshComplement
    if name == "weak_error":
        from .weak_error import weak_error

        return weak_error
    raise AttributeError(f"module 'symfp.particles' has no attribute {name!r}")
