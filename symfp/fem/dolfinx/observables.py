r"""Observables of a finite-element density at every output time.

With :math:`p_h = w\,\sum_j u_j\varphi_j` (:math:`w = 1` for the plain and upwind forms,
:math:`w = \rho` for the Gibbs-symmetrised one), every linear functional
:math:`\int g\,p_h = \sum_j u_j \int g\,w\,\varphi_j` is a dot product with a weight vector assembled
once. So mass, mean, second moments, :math:`E[f]` and the mass of each named region cost one
collective dot product each per output; they are exact integrals of the discrete density (up to
quadrature of g w). Entropy and relative entropy use the vertex (lumped) quadrature with the weights
:math:`m_i = \int w\varphi_i / w(x_i)` (:math:`\int\varphi_i` for w = 1), so that
:math:`\sum_i m_i p_i = \sum_i u_i\int w\varphi_i` is the mass the scheme conserves and
:math:`(m_i p_i)` a probability vector (with :math:`\int\varphi_i` for the Gibbs form the sum drifted
during transients and KL gained a term linear in :math:`p - \pi`: a late decay rate 2.51 instead of
≈ 2.8 on the noisy-SGD ellipse):

.. math:: H = -\sum_i m_i\, p_i \ln p_i, \qquad
          \mathrm{KL}(p\,\|\,\pi) = \sum_i m_i\, p_i \ln\frac{p_i}{\pi_i},
          \quad \pi_i = \frac{\rho(x_i)}{\sum_j m_j \rho(x_j)},

second-order accurate in h like the P1 density itself; KL is then a true discrete relative entropy
(≥ 0, and 0 exactly when the nodal density equals :math:`\pi`). They cost one O(n) pass and one
reduction, not a form assembly: the observables of an output step stay cheap next to a time step
(measured in ``benchmarks/bench_fem.py``). ``min``/``max`` are the extreme nodal values (positivity
and wall monitors).

This module only assembles the weight vectors (UFL forms on the dolfinx mesh); the recording itself
is the backend-neutral :class:`symfp.fem.observables.NodalObservables` with MPI reductions
(:class:`symfp.fem.dolfinx.compat.CommReductions`), the same object the scikit-fem backend uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import sympy as sp

from ..observables import NodalObservables, weight_vectors
from . import compat
from .translate import to_ufl


def observable_recorder(V: Any, state: tuple[sp.Symbol, ...], *, weight: Any = None,
                        expectations: Mapping[str, Any] | None = None,
                        regions: Mapping[str, int] | None = None,
                        cell_tags: Any = None, log_stationary: np.ndarray | None = None,
                        nodal_weight: np.ndarray | None = None,
                        mass_weights: np.ndarray | None = None) -> NodalObservables:
    r"""The recorder of the observables of the unknown in the P1 space ``V`` (collective).

    Args:
        V: the P1 space of the unknown.
        state: state symbols.
        weight: UFL weight w (None for 1) with :math:`p = w u`.
        expectations: ``{name: SymPy expression}`` recorded as ``E[name]``.
        regions: ``{name: cell tag}`` with the cell tags ``cell_tags``.
        log_stationary: owned nodal values of :math:`\ln\rho` (unnormalised stationary density,
            shifted for range), or None; normalised with the vertex weights.
        nodal_weight: owned nodal values :math:`w(x_i)` of the weight (required with ``weight``): the
            vertex weights become :math:`m_i = \int w\varphi_i / w(x_i)`, so that
            :math:`\sum_i m_i p_i = \int w u_h` is the conserved discrete mass.
        mass_weights: owned weights of the mass instead of :math:`\int w\varphi_i` (the lumped mass of
            a lumped scheme, whose column sums are what that scheme conserves).

    Returns:
        A :class:`symfp.fem.observables.NodalObservables` on the owned dofs, reducing over ``V``'s comm.
    """
    ufl = compat.dolfinx_modules().ufl
    msh = V.mesh
    n = V.dofmap.index_map.size_local
    d = len(state)
    x = ufl.SpatialCoordinate(msh)
    v = ufl.TestFunction(V)
    w = 1.0 if weight is None else weight
    dx = ufl.Measure("dx", domain=msh, subdomain_data=cell_tags)

    def owned(form: Any) -> np.ndarray:
        return compat.assemble_vector(compat.form(form)).array[:n].copy()

    def weighted(g: Any, measure: Any = dx) -> np.ndarray:  # ∫ g w φ_i
        return owned(g * w * v * measure)

    expectations = dict(expectations or {})
    regions = dict(regions or {})
    vectors = weight_vectors(weighted(1.0), weighted, [x[i] for i in range(d)],
                             {name: to_ufl(expr, state, x) for name, expr in expectations.items()},
                             {name: weighted(1.0, dx(tag)) for name, tag in regions.items()})
    # vertex quadrature weights on the owned dofs: m_i = ∫ φ_i, or ∫ w φ_i / w(x_i) for p = w u (the
    # Gibbs form): then Σ m_i p_i = Σ u_i ∫ w φ_i is the mass the scheme conserves. With ∫ φ_i instead,
    # Σ m_i p_i drifts with the transient and KL picks up a term linear in p − π (see module docstring)
    if weight is None:
        lumped = owned(v * ufl.dx)
    else:
        if nodal_weight is None:
            raise ValueError("observable_recorder: a weight needs its nodal values (nodal_weight)")
        lumped = owned(w * v * ufl.dx) / np.asarray(nodal_weight, dtype=float)[:n]
    if mass_weights is not None:
        vectors["mass"] = np.asarray(mass_weights, dtype=float)[:n].copy()
    return NodalObservables(vectors, d, lumped, expectations=list(expectations), regions=list(regions),
                            log_stationary=log_stationary, reductions=compat.CommReductions(msh.comm))
