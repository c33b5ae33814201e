r"""A peer at equal accuracy: symfp's FE solver against py-pde (finite differences) on the 2-D OU problem.

Problem (the tests' non-symmetric OU case): :math:`\partial_t p = \nabla\cdot(D\nabla p) + \nabla\cdot(Ax\,p)`
(drift :math:`b = -Ax`), A = [[1, .6], [−.4, 1.5]], D = [[.05, .02], [.02, .03]], from the Gaussian
N((0.6, −0.3), 0.01·I) to t = 1 on the box [−1, 1.6]×[−1.3, 1] with zero flux. The exact law stays
Gaussian (:func:`symfp.fem.dolfinx.gaussian.ou_moments`); the error is the relative L² error of the
density at t = 1, :math:`\|p_h - p\|_{L^2} / \|p\|_{L^2}` with :math:`\|p\|^2 = 1/(4\pi\sqrt{\det S})`:

- symfp: ``fp.solve`` (P1, Galerkin, BDF2, Δt = h_x/2 so that the O(Δt²) time error stays below the
  O(h²) space error), error integrated exactly at the forms' quadrature degree;
- py-pde: ``CartesianGrid`` with cell-centred values, second-order central differences, the PDE given
  as an expression (``PDE``), its explicit solver (Euler, the stable Δt from the CFL-like bound,
  ``adaptive``) and its implicit one (backward Euler solved by fixed-point iteration, which converges
  only for small steps: Δt = h²/(20 D_max); at Δt = h/2 it raises ConvergenceError); error by the
  midpoint rule over the cells.

Wall time is the whole solve call (set-up included, JIT caches warm: every configuration is run twice
and the second is timed). py-pde runs in its own environment (``SYMFP_PEERS_PYTHON``, default
``/work/venvs/scale-peers/bin/python``; it is not a dependency of symfp): when it is absent the rows
say so. The speed ratio at equal error interpolates log time against log error of each solver
(piecewise linear) at error levels both reach.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

A = [[1.0, 0.6], [-0.4, 1.5]]
D = [[0.05, 0.02], [0.02, 0.03]]
M0 = [0.6, -0.3]
S0 = 0.01
BOX = [(-1.0, 1.6), (-1.3, 1.0)]
T_END = 1.0
PEERS_PYTHON = os.environ.get("SYMFP_PEERS_PYTHON", "/work/venvs/scale-peers/bin/python")


def exact_moments() -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance at T_END (scipy, rtol 1e-12)."""
    from scipy.integrate import solve_ivp

    Am, Dm = np.asarray(A), np.asarray(D)

    def rhs(_, z):
        m, S = z[:2], z[2:].reshape(2, 2)
        return np.concatenate([-Am @ m, (-Am @ S - S @ Am.T + 2 * Dm).ravel()])

    z0 = np.concatenate([M0, (S0 * np.eye(2)).ravel()])
    z = solve_ivp(rhs, (0, T_END), z0, rtol=1e-12, atol=1e-14).y[:, -1]
    return z[:2], z[2:].reshape(2, 2)


def symfp_run(n: int) -> tuple[float, float]:
    """(seconds, relative L² error) of symfp on n×n cells."""
    import sympy as sp

    import symfp
    from symfp.fem.dolfinx.gaussian import l2_error_2d

    x, y = sp.symbols("x y", real=True)
    sde = symfp.SDE(state=[x, y], drift=-sp.Matrix(A) * sp.Matrix([x, y]), diffusion=sp.Matrix(D))
    p0 = sp.exp(-((x - M0[0]) ** 2 + (y - M0[1]) ** 2) / (2 * S0))
    fp = sde.fokker_planck()
    hx = (BOX[0][1] - BOX[0][0]) / n
    steps = max(1, int(np.ceil(T_END / (hx / 2))))
    m, S = exact_moments()
    norm = 1 / np.sqrt(4 * np.pi * np.sqrt(np.linalg.det(S)))
    best = np.inf
    for _ in range(2):
        t0 = time.perf_counter()
        sol = fp.solve(symfp.mesh.box(BOX, cells=n), p0, t_end=T_END, dt=T_END / steps, scheme="bdf2",
                       stabilisation="none", output_every=steps, progress=False, negative_tol=1.0)
        best = min(best, time.perf_counter() - t0)
    err = l2_error_2d(sol.density, sol.mesh.mesh, m, S) / norm
    return best, err


PYPDE_CHILD = r"""
import json, sys, time
import numpy as np
import pde
A, D, M0, S0, BOX, T, m, S, runs = json.loads(sys.argv[1])
P = np.linalg.inv(S)
norm2 = 1 / (4 * np.pi * np.sqrt(np.linalg.det(S)))
(a11, a12), (a21, a22) = A
(d11, d12), (_, d22) = D
# p_t = ∇·(D∇p) + ∇·(A x p) = D11 p_xx + 2 D12 p_xy + D22 p_yy + tr(A) p + (A x)·∇p
rhs = (f"{d11}*d2_dx2(c) + {2 * d12}*d_dx(d_dy(c)) + {d22}*d2_dy2(c) + {a11 + a22}*c"
       f" + ({a11}*x + {a12}*y)*d_dx(c) + ({a21}*x + {a22}*y)*d_dy(c)")
eq = pde.PDE({"c": rhs}, bc={"derivative": 0})
out = []
for n, solver in runs:
    grid = pde.CartesianGrid(BOX, [n, n])
    X, Y = grid.cell_coords[..., 0], grid.cell_coords[..., 1]
    c0 = np.exp(-((X - M0[0]) ** 2 + (Y - M0[1]) ** 2) / (2 * S0)) / (2 * np.pi * S0)
    h = min((BOX[0][1] - BOX[0][0]) / n, (BOX[1][1] - BOX[1][0]) / n)
    best = np.inf
    for _ in range(2):
        field = pde.ScalarField(grid, c0.copy())
        t0 = time.perf_counter()
        if solver == "explicit":
            res = eq.solve(field, t_range=T, dt=0.1 * h * h / max(d11, d22), solver="explicit",
                           adaptive=True, tracker=None)
        else:
            # py-pde's implicit Euler solves each step by fixed-point iteration, which converges only
            # for dt * rho(L) < 1 (rho ~ 8 D / h^2): dt = h^2 / (20 D) (at dt = h/2 it diverges)
            res = eq.solve(field, t_range=T, dt=h * h / (20 * max(d11, d22)), solver="implicit", tracker=None)
        best = min(best, time.perf_counter() - t0)
    a, b = X - m[0], Y - m[1]
    exact = np.exp(-(P[0, 0] * a * a + 2 * P[0, 1] * a * b + P[1, 1] * b * b) / 2)
    exact /= 2 * np.pi * np.sqrt(np.linalg.det(S))
    err = np.sqrt(np.sum((res.data - exact) ** 2) * np.prod(grid.discretization) / norm2)
    out.append([n, solver, best, float(err)])
print("ROWS " + json.dumps([pde.__version__, out]))
"""


def pypde_runs(runs: list[tuple[int, str]], timeout: float = 1800) -> tuple[str, list] | None:
    """py-pde's (version, [[n, solver, seconds, error], ...]) from its own interpreter, or None."""
    if not Path(PEERS_PYTHON).exists():
        return None
    m, S = exact_moments()
    arg = json.dumps([A, D, M0, S0, BOX, T_END, m.tolist(), S.tolist(), runs])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    res = subprocess.run([PEERS_PYTHON, "-W", "ignore", "-c", PYPDE_CHILD, arg], capture_output=True,
                         text=True, timeout=timeout, env=env)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("ROWS ")]
    if res.returncode or not lines:
        raise RuntimeError(f"py-pde run failed:\n{res.stderr[-3000:]}")
    return json.loads(lines[-1][5:])


def time_at_error(points: list[tuple[float, float]], err: float) -> float:
    """log-log piecewise-linear interpolation of wall time at error ``err`` (NaN outside the range)."""
    pts = sorted(points, key=lambda p: -p[1])  # decreasing error
    for (t0, e0), (t1, e1) in zip(pts, pts[1:], strict=False):
        if e1 <= err <= e0 and e0 > e1:
            w = (np.log(err) - np.log(e0)) / (np.log(e1) - np.log(e0))
            return float(np.exp(np.log(t0) + w * (np.log(t1) - np.log(t0))))
    return float("nan")


def run(quick: bool = False) -> list[dict]:
    """Benchmark rows (see the module docstring)."""
    rows: list[dict] = []
    ns_symfp = (32, 64) if quick else (32, 64, 128, 256)
    ours = []
    for n in ns_symfp:
        t, e = symfp_run(n)
        ours.append((t, e))
        rows.append({"benchmark": "peer OU 2-D", "case": f"symfp P1 BDF2 {n}^2", "value": t, "unit": "s",
                     "note": f"relative L2 error {e:.3e}; dt = h/2"})
    runs = [(n, "implicit") for n in ((32, 64) if quick else (32, 64, 128))]
    runs += [(n, "explicit") for n in ((32, 64) if quick else (32, 64, 128))]
    try:
        peer = pypde_runs(runs)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        rows.append({"benchmark": "peer OU 2-D", "case": "py-pde", "value": float("nan"), "unit": "s",
                     "note": f"py-pde failed: {str(exc).splitlines()[-1][:120]}"})
        return rows
    if peer is None:
        rows.append({"benchmark": "peer OU 2-D", "case": "py-pde", "value": float("nan"), "unit": "s",
                     "note": f"py-pde not installed (SYMFP_PEERS_PYTHON={PEERS_PYTHON} absent): skipped"})
        return rows
    version, out = peer
    by_solver: dict[str, list] = {}
    for n, solver, t, e in out:
        by_solver.setdefault(solver, []).append((t, e))
        rows.append({"benchmark": "peer OU 2-D", "case": f"py-pde {version} {solver} {n}^2", "value": t,
                     "unit": "s", "note": f"relative L2 error {e:.3e}; finite differences, cell centres"})
    for solver, pts in by_solver.items():
        # compare at the errors both reach: the smallest error of the less accurate best
        target = max(min(e for _, e in pts), min(e for _, e in ours))
        for err in sorted({target, max(max(e for _, e in pts), max(e for _, e in ours))}):
            tp, ts = time_at_error(pts, err), time_at_error(ours, err)
            ratio = tp / ts if np.isfinite(tp) and np.isfinite(ts) else float("nan")
            rows.append({"benchmark": "peer OU 2-D",
                         "case": f"speed-up vs py-pde {solver} at error {err:.2e}",
                         "value": ratio, "unit": "x",
                         "note": "aim >= 10; log-log interpolated times at equal relative L2 error "
                                 f"(py-pde {tp:.3g} s, symfp {ts:.3g} s)"})
    return rows


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(f"{r['benchmark']:<12} {r['case']:<44} {r['value']:>10.4g} {r['unit']:<3} {r['note']}")
