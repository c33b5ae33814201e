r"""Finite-element stepper benchmarks: symfp's ``fp.solve`` against a hand-written dolfinx loop.

Problem: the 2-D OU Fokker–Planck equation :math:`\partial_t p = \nabla\cdot(D\nabla p - p\,c)` with
:math:`c = -Ax`, A = [[1, 0.5], [-0.3, 0.8]] (non-symmetric, so no Gibbs form) and D = [[0.3, 0.1],
[0.1, 0.2]] on the box [-4, 4]² with n×n P1 triangles, p0 a Gaussian.

- **stepper vs hand loop**: the same mesh, the same weak form (Galerkin, consistent mass), the same
  scheme (backward Euler: :math:`(M + \Delta t K)p^{n+1} = Mp^n`, the right-hand side a mat-vec) and
  the same KSP (GMRES + block Jacobi/ILU, rtol 1e-12, previous step as initial guess). Per-step times
  exclude set-up: symfp's come from ``Solution.timings["step"]`` (the whole step: RHS, solve, mass
  and positivity checks, observables), the hand loop's from timing its ``M.mult`` + ``ksp.solve``.
  symfp is run with observables at the end only (``output_every = steps``) and at every step (the
  default, which adds the observables' cost: dot products and one entropy assembly per step).
- **FEM-FCT step**: ``stabilisation="fct"`` (CN target) against the Galerkin CN step on the same mesh.
- **per-step time vs dofs** (symfp, observables at the end only).
- **1 vs 2 MPI ranks**: the same solve under ``mpirun -n 1`` and ``-n 2`` (separate processes).
- **scikit-fem vs dolfinx backend**: the same solve (euler, Galerkin, observables at the end) at
  10⁴, 10⁵ and 2.6·10⁵ dofs.
- **cold vs warm JIT**: a small solve in a fresh Python process with ``XDG_CACHE_HOME`` pointing at a
  new empty directory (every form compiled by FFCx + the C compiler), then again with that cache.

Run with ``python benchmarks/run.py fem`` (full: 512² = 2.6·10⁵ dofs and 10⁴ … 10⁶ dofs) or
``--quick`` (128², up to 10⁵ dofs).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
A_DRIFT = [[1.0, 0.5], [-0.3, 0.8]]
D_DIFF = [[0.3, 0.1], [0.1, 0.2]]
BOX = 4.0


def _problem():
    import sympy as sp

    import symfp

    x, y = sp.symbols("x y", real=True)
    sde = symfp.SDE(state=[x, y], drift=-sp.Matrix(A_DRIFT) * sp.Matrix([x, y]), diffusion=sp.Matrix(D_DIFF))
    p0 = sp.exp(-((x - 0.5) ** 2 + (y + 0.3) ** 2) / 0.2)
    return sde.fokker_planck(), p0


def _mesh(n: int, backend: str = "auto"):
    import symfp

    return symfp.mesh.box([(-BOX, BOX), (-BOX, BOX)], cells=n, backend=backend)


def symfp_steps(n: int, steps: int, dt: float, output_every: int | None = None,
                stabilisation: str = "none", scheme: str = "euler",
                backend: str = "auto") -> tuple[np.ndarray, dict]:
    """Per-step seconds of ``fp.solve`` (backward Euler, Galerkin unless told) and its info."""
    fp, p0 = _problem()
    sol = fp.solve(_mesh(n, backend), p0, t_end=steps * dt, dt=dt, scheme=scheme, stabilisation=stabilisation,
                   output_every=output_every or steps, progress=False, negative_tol=1.0, backend=backend)
    return np.asarray(sol.timings["step"]), sol.info


def hand_steps(n: int, steps: int, dt: float) -> np.ndarray:
    """Per-step seconds of a minimal dolfinx 0.5 loop on the same mesh, form, scheme and KSP."""
    import dolfinx.fem
    import dolfinx.fem.petsc  # noqa: F401 - 0.9+ spelling; 0.5 has the helpers in dolfinx.fem
    import ufl
    from petsc4py import PETSc

    msh = _mesh(n).mesh
    V = (dolfinx.fem.FunctionSpace(msh, ("Lagrange", 1)) if hasattr(dolfinx.fem, "FunctionSpace")
         else dolfinx.fem.functionspace(msh, ("Lagrange", 1)))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    X = ufl.SpatialCoordinate(msh)
    D = ufl.as_matrix(D_DIFF)
    c = -ufl.as_matrix(A_DRIFT) * X
    petsc = getattr(dolfinx.fem, "petsc", dolfinx.fem)
    M = petsc.assemble_matrix(dolfinx.fem.form(u * v * ufl.dx))
    M.assemble()
    op = (ufl.inner(D * ufl.grad(u), ufl.grad(v)) - u * ufl.inner(c, ufl.grad(v))) * ufl.dx
    A = petsc.assemble_matrix(dolfinx.fem.form(u * v * ufl.dx + dt * op))
    A.assemble()
    ksp = PETSc.KSP().create(msh.comm)
    ksp.setOperators(A)
    ksp.setOptionsPrefix("hand_")
    opts = PETSc.Options()
    for k, val in {"ksp_type": "gmres", "pc_type": "bjacobi", "sub_pc_type": "ilu", "ksp_rtol": 1e-12,
                   "ksp_atol": 1e-50, "ksp_max_it": 2000}.items():
        opts["hand_" + k] = val
    ksp.setFromOptions()
    ksp.setInitialGuessNonzero(True)
    ph = dolfinx.fem.Function(V)
    ph.interpolate(lambda x: np.exp(-((x[0] - 0.5) ** 2 + (x[1] + 0.3) ** 2) / 0.2))
    uvec = ph.vector if hasattr(ph, "vector") else ph.x.petsc_vec
    b = uvec.duplicate()
    out = np.zeros(steps)
    for k in range(steps):
        t0 = time.perf_counter()
        M.mult(uvec, b)
        ksp.solve(b, uvec)
        out[k] = time.perf_counter() - t0
        assert ksp.getConvergedReason() > 0
    ksp.destroy()
    return out


def _jit_child(cache: str) -> float:
    here = str(Path(__file__).parent)
    code = (f"import time; t=time.perf_counter(); import sys; sys.path.insert(0, {here!r}); "
            "import bench_fem as b; b.symfp_steps(64, 2, 0.01, 1); print(time.perf_counter()-t)")
    env = dict(os.environ, XDG_CACHE_HOME=cache, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    if res.returncode:
        raise RuntimeError(res.stderr[-2000:])
    return float(res.stdout.strip().splitlines()[-1])


def _ranks_child(ranks: int, n: int, steps: int, dt: float) -> float:
    """Median per-step seconds of ``fp.solve`` on ``ranks`` MPI processes (rank 0's timer).

    The step is collective, so rank 0's wall time per step is the parallel step time.
    """
    here = str(ROOT / "benchmarks")
    code = (
        f"import sys, numpy as np; sys.path.insert(0, {here!r}); import bench_fem as b; "
        f"from mpi4py import MPI; b.symfp_steps(64, 2, {dt!r}); t, _ = b.symfp_steps({n}, {steps}, {dt!r}); "
        "MPI.COMM_WORLD.rank == 0 and print(float(np.median(t[1:])))"
    )
    env = {**os.environ, "OMPI_MCA_btl": "self,vader", "OMPI_MCA_rmaps_base_oversubscribe": "1"}
    out = subprocess.run(["mpirun", "--allow-run-as-root", "-n", str(ranks), sys.executable, "-c", code],
                         capture_output=True, text=True, env=env, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def backend_rows(sizes: tuple[int, ...], steps: int, dt: float) -> list[dict]:
    """scikit-fem vs dolfinx backend, per step (median of steps 2..), the same problem and scheme.

    dolfinx: GMRES + block Jacobi/ILU (rtol 1e-12) every step; scikit-fem: SuperLU factorisation of
    the constant step matrix once (in the set-up), two triangular solves per step.
    """
    from symfp.fem.registry import importable

    rows: list[dict] = []
    if not (importable("dolfinx") and importable("skfem")):
        return rows
    symfp_steps(32, 2, dt, backend="skfem")
    for m in sizes:
        td, info_d = symfp_steps(m, steps, dt, backend="dolfinx")
        ts, info_s = symfp_steps(m, steps, dt, backend="skfem")
        d_med, s_med = float(np.median(td[1:])), float(np.median(ts[1:]))
        dofs = info_s["dofs"]
        rows += [
            {"benchmark": "fem backends", "case": f"dolfinx {dofs} dofs", "value": d_med * 1e3,
             "unit": "ms/step",
             "note": f"{m}x{m} P1, euler, GMRES+bjacobi/ILU, median of steps 2..{steps}"},
            {"benchmark": "fem backends", "case": f"skfem {dofs} dofs", "value": s_med * 1e3,
             "unit": "ms/step",
             "note": f"SuperLU once (set-up {info_s['setup_seconds']:.2f} s vs dolfinx "
                     f"{info_d['setup_seconds']:.2f} s)"},
            {"benchmark": "fem backends", "case": f"ratio skfem/dolfinx {dofs} dofs", "value": s_med / d_med,
             "unit": "x", "note": "goal <= 1.5 at 2.6e5 dofs"},
        ]
    return rows


def run(quick: bool = False) -> list[dict]:
    """Benchmark rows ``{"benchmark", "case", "value", "unit", "note"}`` (see the module docstring)."""
    rows: list[dict] = []
    rows += backend_rows((100, 316) if quick else (100, 316, 512), 6 if quick else 10, 0.01)
    n = 128 if quick else 512
    steps, dt = (10, 0.01) if quick else (20, 0.01)
    # warm the JIT cache and the allocator for both paths first
    symfp_steps(64, 2, dt)
    hand_steps(64, 2, dt)
    t_hand = hand_steps(n, steps, dt)
    t_sym, info = symfp_steps(n, steps, dt)
    t_sym_all, _ = symfp_steps(n, steps, dt, output_every=1)
    # the first step of each loop includes PETSc's lazy set-up (ILU factorisation): median of the rest
    med = {k: float(np.median(t[1:])) for k, t in (("hand", t_hand), ("sym", t_sym), ("all", t_sym_all))}
    dofs = info["dofs"]
    note = f"{n}x{n} P1, {dofs} dofs, euler, GMRES+bjacobi/ILU rtol 1e-12, median of steps 2..{steps}"
    rows += [
        {"benchmark": "fem stepper", "case": "hand-written dolfinx loop", "value": med["hand"] * 1e3,
         "unit": "ms/step", "note": note},
        {"benchmark": "fem stepper", "case": "symfp fp.solve (observables at end)", "value": med["sym"] * 1e3,
         "unit": "ms/step", "note": f"ksp iterations {info['ksp_iterations']} over {steps} steps"},
        {"benchmark": "fem stepper", "case": "symfp fp.solve (observables every step)",
         "value": med["all"] * 1e3, "unit": "ms/step", "note": "output_every=1 (default)"},
        {"benchmark": "fem stepper", "case": "ratio symfp/hand (observables at end)",
         "value": med["sym"] / med["hand"], "unit": "x", "note": "goal <= 1.2"},
        {"benchmark": "fem stepper", "case": "ratio symfp/hand (observables every step)",
         "value": med["all"] / med["hand"], "unit": "x", "note": "goal <= 1.2"},
        {"benchmark": "fem stepper", "case": "symfp set-up", "value": info["setup_seconds"], "unit": "s",
         "note": f"excluded from per-step times (matrix assembly {info['assemble_seconds']:.3g} s)"},
    ]
    # FEM-FCT: two KSP solves (lumped upwind BE predictor + Galerkin CN target) + the iterated limiter
    t_gal_cn, _ = symfp_steps(n, steps, dt, scheme="cn")
    t_fct, inf_fct = symfp_steps(n, steps, dt, stabilisation="fct", scheme="cn")
    g_cn, f_med = float(np.median(t_gal_cn[1:])), float(np.median(t_fct[1:]))
    rows += [
        {"benchmark": "fem stepper", "case": "symfp fct step (cn target)", "value": f_med * 1e3,
         "unit": "ms/step", "note": f"mean alpha {inf_fct.get('fct_mean_alpha', float('nan')):.4f}"},
        {"benchmark": "fem stepper", "case": "ratio fct/Galerkin step (both cn, observables at end)",
         "value": f_med / g_cn, "unit": "x",
         "note": "default limiter: one target solve + O(nnz) redistribution rounds; "
                 "goal <= 3 (issue 12: 5.7 with Zalesak)"},
    ]
    sizes = (100, 316) if quick else (100, 316, 1000)
    for m in sizes:
        ts, inf = symfp_steps(m, 6, dt)
        rows.append({"benchmark": "fem per-step vs dofs", "case": f"{inf['dofs']} dofs",
                     "value": float(np.median(ts[1:])) * 1e3, "unit": "ms/step",
                     "note": f"{m}x{m} P1, euler, median of steps 2..6, observables at end"})
    one, two = (_ranks_child(r, n, steps, dt) for r in (1, 2))
    rows += [
        {"benchmark": "fem MPI", "case": "1 rank", "value": one * 1e3, "unit": "ms/step",
         "note": f"{n}x{n} P1, euler, mpirun -n 1, OMPI_MCA_btl=self,vader"},
        {"benchmark": "fem MPI", "case": "2 ranks", "value": two * 1e3, "unit": "ms/step",
         "note": f"speed-up {one / two:.2f}x on the machine's 2 cores"},
    ]
    with tempfile.TemporaryDirectory(prefix="symfp-jit-") as cache:
        cold = _jit_child(cache)
        warm = _jit_child(cache)
    rows += [
        {"benchmark": "fem JIT", "case": "cold cache", "value": cold, "unit": "s",
         "note": "new process, empty XDG_CACHE_HOME: import + 64x64 solve, 2 steps"},
        {"benchmark": "fem JIT", "case": "warm cache", "value": warm, "unit": "s",
         "note": "same, second process with the filled cache"},
    ]
    return rows


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(r)
