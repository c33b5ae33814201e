r"""Stabilisation of the forward Fokker–Planck discretisation, and its automatic choice.

The forward operator in flux form, :math:`\int (D\nabla p)\cdot\nabla v - \int p\,c\cdot\nabla v` with
:math:`c = b - \nabla\cdot D`, is a convection–diffusion operator. Plain Galerkin P1 oscillates (and
goes negative) when the **cell Péclet number**

.. math:: \mathrm{Pe}_K = \frac{|c(x_K)|\, h_K}{2\,\lambda_{\min}(D(x_K))}

exceeds 1, and always when :math:`D` is degenerate (:math:`\lambda_{\min} = 0`, e.g. momentum SGD).
The remedies offered (``stabilisation=``); :func:`choose` implements ``"auto"``:

``"none"``
    Galerkin with the consistent mass matrix: second order in h, conservative, not positivity
    preserving. Chosen by ``"auto"`` when :math:`\max_K \mathrm{Pe}_K \le 1`.
``"gibbs"``
    The Gibbs-symmetrised form (:func:`symfp.symbolic.weakform.forward_form` with ``symmetrised=True``):
    :math:`p = \rho u` with :math:`\rho` the zero-flux stationary density, giving the symmetric
    positive form :math:`\int \rho\,\partial_t u\, v + \int \rho (D\nabla u)\cdot\nabla v`. No
    convection is left, so no oscillation at any Péclet number; second order; conserves
    :math:`\int \rho u`; its steady state is :math:`\rho` exactly. **By request only** (``"auto"``
    picked it when Pe > 1, D non-degenerate and detailed balance gives :math:`\rho`, until measured
    to be less accurate than ``"fct"`` in transients, table below). Usable while
    :math:`\min_h\rho/\max_h\rho \ge 10^{-250}` on the mesh: the weight is evaluated as
    :math:`\exp(\ln\rho - \max_h\ln\rho)`, but a wider range (the double well at
    :math:`\varepsilon = 0.003` on [-2.5, 2.5]: :math:`e^{-2297} \approx 10^{-998}`) is beyond double
    precision and an explicit ``"gibbs"`` is an ``InputError``.

    *Why not by default (measured, P1).* The unknown is :math:`u = p/\rho`, and the P1 interpolant of
    u is accurate only in the :math:`\rho`-weighted norm: where :math:`\rho` falls by decades across a
    cell (exactly where Pe > 1) the transient density :math:`\rho\, I_h u` is poor in the tails that a
    transient still occupies. Errors of the density at time t against a reference:

    ============================================  ===========  ==========  ==========  ==========
    case (Pe)                                     gibbs/euler  gibbs/cn    fct/cn      none/cn
    ============================================  ===========  ==========  ==========  ==========
    1-D double well ε=0.1, 100 cells (3.2), L¹    9.1e-3       2.5e-3      1.8e-3      1.8e-3
    t=1, dt=0.02 (ref. 8000 cells, dt 0.0025)
    2-D OU b=(−x,−2y), D=0.02 I, 32² (3.1), L¹    1.40e-1      1.25e-1     3.47e-2     3.41e-2
    2-D OU as above, 64² (1.6), L¹ (exact)        5.3e-2       3.3e-2      8.6e-3      8.6e-3
    gmsh ellipse (noisy SGD, 4.6): rate of        2.689        2.725       2.728       2.729
    :math:`\ln|E\theta_1|` ×2, dt=0.02 (2λ₁=2.728)
    ============================================  ===========  ==========  ==========  ==========

    (Gibbs' default time scheme is backward Euler, the only one that keeps its lumped system
    positive.) ``"fct"`` is as accurate as plain Galerkin and positive; ``"gibbs"`` is 1.4–4× less
    accurate in space and first order in time. Its advantages remain for runs aimed at equilibrium
    (discrete steady state exactly :math:`\rho`, one KSP solve per step): ask for it.

    The relative-entropy rate 2.51 (vs 2λ₁ = 2.728, FCT 2.79) once reported for the Gibbs form on the
    ellipse was an observable bug, not the scheme: the vertex weights :math:`\int\varphi_i` did not sum
    :math:`\rho_i u_i` to the mass the scheme conserves (:math:`\sum_i u_i\int\rho\varphi_i`), so KL
    carried a term linear in :math:`p - \pi`. With the weights :math:`\int\rho\varphi_i/\rho_i`
    (:mod:`symfp.fem.dolfinx.observables`) the Gibbs rate is 2.77 (euler) / 2.80 (cn) against FCT's 2.79.
``"upwind"`` (alias ``"fitted"``)
    Mass lumping plus discrete upwinding (Kuzmin's algebraic flux correction, low-order part): the
    symmetric artificial diffusion :math:`d_{ij} = \max(0, k_{ij}, k_{ji})` removes every positive
    off-diagonal entry of the operator matrix K, so :math:`M_L + \Delta t\,K_L` is an M-matrix
    (positive inverse) and backward Euler preserves positivity unconditionally; the added matrix has
    zero row and column sums, so mass is conserved exactly. First order in h where it acts (only
    across edges that needed it) — and worse for an anisotropic D oblique to the mesh (rank-1 D not
    aligned with the edges): its positive off-diagonal diffusion entries :math:`k_{ij} = O(|D|)` are
    removed by an artificial diffusion of the same size, an O(1) (not O(h)) smearing across the
    kernel of D. No longer chosen by ``"auto"`` (it was, for the cases that now get
    ``"fct"``); kept on request (the default scheme is then backward Euler), and it is the low-order
    predictor of ``"fct"``.
``"fct"`` (alias ``"afc"``)
    Algebraic flux correction, Kuzmin's FEM-FCT (:mod:`symfp.fem.dolfinx.fct`): each step computes the
    positive low-order ``"upwind"`` predictor (lumped mass, backward Euler) and the Galerkin target
    (consistent mass, Crank–Nicolson by default), decomposes their difference exactly into
    antisymmetric edge fluxes :math:`f_{ij} = -f_{ji}` and adds them back limited by Zalesak's
    :math:`\alpha_{ij} \in [0, 1]` so that every nodal value stays within the local bounds of the
    predictor and the old solution. Result: :math:`p \ge 0` given :math:`p_0 \ge 0` (round-off),
    mass exact (antisymmetric limited fluxes), and equal to the second-order Galerkin solution
    wherever the limiter is inactive (smooth regions; measured L² rates ≈ 2 in h on a rank-1 OU
    problem where upwinding gives ≈ 1 or less, see ``tests/fem/test_fct.py``). Costs two KSP solves
    per step (≈ 2–3× a Galerkin step, ``benchmarks/bench_fem.py``). **Chosen by** ``"auto"`` **whenever
    D is degenerate or Pe > 1** (with or without a closed-form stationary density: see ``"gibbs"``);
    degenerate D and Pe > 1 are the cases where plain Galerkin goes negative (measured −1e-5 … −5e-2
    of the maximum on momentum SGD in phase space and on the rank-1 linear network) and where the
    positive upwind scheme alone was far too diffusive (momentum: stationary kinetic energy 0.0279 on
    96² vs the exact 0.025).
``"supg"``
    Streamline-upwind Petrov–Galerkin: test functions :math:`v + \tau_K\, c\cdot\nabla v` on the
    whole residual (time derivative included), :math:`\tau_K = \frac{h_K}{2|c|}\min(1, \mathrm{Pe}_K/3)`
    with the streamline diffusion :math:`c^\top D c / |c|^2`. Conservative (the extra test function
    integrates to zero against constants) and second order, damps but does not forbid undershoots;
    by request only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..stabilisation import CHOICES, PecletReport, choose, peclet_of_cells
from . import compat

__all__ = ["CHOICES", "PecletReport", "cell_peclet", "choose", "discrete_upwind"]


def cell_peclet(msh: Any, c: Callable[..., Any], D: Callable[..., Any], d: int) -> PecletReport:
    """Cell Péclet numbers at cell midpoints (collective; :func:`symfp.fem.stabilisation.peclet_of_cells`).

    Args:
        msh: dolfinx mesh.
        c: lambdified effective drift, ``c(*x)`` → d values (each scalar or array).
        D: lambdified diffusion, ``D(*x)`` → d×d nested values.
        d: dimension.
    """
    MPI = compat.dolfinx_modules().MPI
    pe_max, degenerate = peclet_of_cells(compat.cell_vertex_coordinates(msh), c, D, d)
    comm = msh.comm
    return PecletReport(comm.allreduce(pe_max, op=MPI.MAX), bool(comm.allreduce(degenerate, op=MPI.LOR)))


def discrete_upwind(K: Any) -> Any:
    r"""Return :math:`K_L = K + \mathcal D` with :math:`\mathcal D` Kuzmin's discrete diffusion.

    :math:`\mathcal D_{ij} = -\max(0, k_{ij}, k_{ji})` for :math:`i \ne j`,
    :math:`\mathcal D_{ii} = -\sum_{j\ne i}\mathcal D_{ij}`: symmetric with zero row sums, so
    :math:`K_L` keeps the column sums of K (mass conservation) and has no positive off-diagonal.
    Works on MPI AIJ matrices (the FE sparsity pattern is symmetric).
    """
    PETSc = compat.dolfinx_modules().PETSc
    Kt = K.transpose(PETSc.Mat())
    rstart, rend = K.getOwnershipRange()
    ia, ja, va = K.getValuesCSR()
    ib, jb, vb = Kt.getValuesCSR()
    rows_a = np.repeat(np.arange(rstart, rend), np.diff(ia))
    rows_b = np.repeat(np.arange(rstart, rend), np.diff(ib))
    n = K.getSize()[1]
    key_a = rows_a.astype(np.int64) * n + ja
    key_b = rows_b.astype(np.int64) * n + jb
    vt = np.zeros_like(va)
    pos = np.searchsorted(key_b, key_a) if np.all(np.diff(key_b) > 0) else None
    if pos is None:
        order = np.argsort(key_b)
        key_b, vb = key_b[order], vb[order]
        pos = np.searchsorted(key_b, key_a)
    pos = np.minimum(pos, len(key_b) - 1) if len(key_b) else pos
    hit = key_b[pos] == key_a if len(key_b) else np.zeros(len(key_a), bool)
    vt[hit] = vb[pos[hit]]
    off = rows_a != ja
    dvals = np.where(off, np.maximum(0.0, np.maximum(va, vt)), 0.0)
    row_sum = np.add.reduceat(dvals, ia[:-1]) if len(dvals) else np.zeros(0)
    row_sum[np.diff(ia) == 0] = 0.0
    new = va - dvals
    diag = ~off
    new[diag] += row_sum[(rows_a[diag] - rstart)]
    KL = K.duplicate(copy=False)
    KL.zeroEntries()
    KL.setValuesCSR(ia, ja, new)
    KL.assemble()
    Kt.destroy()
    return KL
