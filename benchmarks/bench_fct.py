r"""FEM-FCT benchmarks: the limiter's convergence on the oblique rank-1 valley and its cost per step.

Problem (issue 12): the linear-network SME at η = 0.1 (``derivations/linear_network.py``), drift
:math:`b = -(u - 1)\nabla u`, :math:`D = \tfrac1{20}V(u)\nabla u\nabla u^\top` with :math:`u = w_1w_2`,
:math:`V = \tfrac45(u-1)^2 + \tfrac14`: rank 1, across the curved valley :math:`w_1w_2 = 1`, oblique to
every mesh edge. Box [1.1, 2.3] × [0, 1.2], n×n P1 triangles, p0 a Gaussian at (2, ½) of variance
1/400, Crank–Nicolson target, dt = 0.05, observable E q at t = 5, :math:`q = w_1^2 - w_2^2`.

- **refinement study**: E q of FCT (default limiter, limiting from the target) on n = 24, 48, 96
  (quick) or 48, 96, 192 (full) against the Galerkin CN reference of the same dt, Richardson-
  extrapolated (O(h²)) from Galerkin on n_max and 2 n_max; the
  reference's own error is estimated by the difference between the extrapolation and its finest mesh
  over 3 (the next Richardson term). Rows: the errors and the observed rates log2(e_h / e_{h/2}).
  The previous limiter (iterated Zalesak, ``method="zalesak"``) is run on the same meshes for
  comparison.
- **cost**: the median time of one step (``Solution.timings["step"]``: both solves, the limiter, the
  checks) of FCT and of the Galerkin CN step on the same mesh and backend, and their ratio; the
  limiter's mean rounds (redistribution) or passes (Zalesak) per step.

Run with ``python benchmarks/run.py fct`` (full) or ``--quick``. Both backends (scikit-fem: SuperLU
factorised once; dolfinx: GMRES + ILU) when importable.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

T_END, DT = 5.0, 0.05


def _problem() -> tuple[Any, Any, Any]:
    import sympy as sp

    import symfp

    w1, w2 = sp.symbols("w1 w2", real=True)
    u = w1 * w2
    gu = sp.Matrix([w2, w1])
    V = sp.Rational(4, 5) * (u - 1) ** 2 + sp.Rational(1, 4)
    sde = symfp.SDE(state=[w1, w2], drift=-(u - 1) * gu, diffusion=sp.Rational(1, 20) * V * gu * gu.T)
    p0 = sp.exp(-((w1 - 2) ** 2 + (w2 - sp.Rational(1, 2)) ** 2) / (2 * sp.Rational(1, 400)))
    return sde.fokker_planck(), p0, w1**2 - w2**2


def valley(n: int, stabilisation: str, backend: str, method: str = "redistribute") -> dict[str, float]:
    """E q at t = 5, the median step time and the limiter's sweeps on the n×n valley mesh."""
    import symfp
    from symfp.fem import fct as fct_module

    fp, p0, q = _problem()
    sweeps: list[int] = []
    cls = fct_module.FCTLimiter
    orig = (cls.__init__, cls.limit, cls.redistribute)

    def init(self: Any, *a: Any, **kw: Any) -> None:
        orig[0](self, *a, **{**kw, "method": method})

    def counted(fn: Any) -> Any:
        def wrapper(self: Any, *a: Any) -> Any:
            it0 = self.iterations
            out = fn(self, *a)
            sweeps.append(self.iterations - it0)
            return out

        return wrapper

    # the solve builds its limiter inside: select the method and count its rounds/passes by wrapping
    # the class (the steppers call limit() for Zalesak, redistribute() for the default)
    cls.__init__, cls.limit, cls.redistribute = init, counted(orig[1]), counted(orig[2])  # type: ignore
    try:
        sol = fp.solve(symfp.mesh.box([(1.1, 2.3), (0.0, 1.2)], cells=n, backend=backend), p0, t_end=T_END,
                       dt=DT, scheme="cn", stabilisation=stabilisation, progress=False, negative_tol=1.0,
                       wall_tol=1.0, expectations={"q": q}, output_every=int(round(T_END / DT)),
                       backend=backend)
    finally:
        cls.__init__, cls.limit, cls.redistribute = orig  # type: ignore
    obs = sol.observables
    return {"eq": float(obs["E[q]"][-1]), "step": float(np.median(np.asarray(sol.timings["step"])[1:])),
            "min": float(np.min(obs["min"] / obs["max"])), "mass": float(np.max(np.abs(obs["mass"] - 1.0))),
            "sweeps": float(np.mean(sweeps)) if sweeps else 0.0}


def _backends() -> list[str]:
    from symfp.fem.registry import importable

    return [b for b in ("skfem", "dolfinx") if importable(b)]


def run(quick: bool = False) -> list[dict]:
    """Benchmark rows ``{"benchmark", "case", "value", "unit", "note"}`` (see the module docstring)."""
    rows: list[dict] = []
    sizes = (24, 48, 96) if quick else (48, 96, 192)
    backends = _backends()
    ref_backend = backends[0]
    fine = (sizes[-1], 2 * sizes[-1])
    g1, g2 = (valley(m, "none", ref_backend)["eq"] for m in fine)
    ref = g2 + (g2 - g1) / 3.0
    ref_err = abs(g2 - g1) / 3.0
    rows.append({"benchmark": "fct valley", "case": "reference E q (Galerkin CN, Richardson)", "value": ref,
                 "unit": "", "note": f"from {fine[0]}² ({g1:.6f}) and {fine[1]}² ({g2:.6f}); "
                                     f"its error ≈ {ref_err:.1e} (the extrapolation step)"})
    for backend in backends:
        for method in ("redistribute", "zalesak"):
            if method == "zalesak" and backend != ref_backend:
                continue  # the shared limiter: one backend shows the old behaviour
            errs = []
            for n in sizes:
                r = valley(n, "fct", backend, method)
                errs.append(abs(r["eq"] - ref))
                rows.append({"benchmark": "fct valley", "case": f"{backend} {method} {n}² |E q - ref|",
                             "value": errs[-1], "unit": "",
                             "note": f"E q {r['eq']:.6f}, min/max {r['min']:.1e}, mass drift "
                                     f"{r['mass']:.1e}, {r['sweeps']:.2f} rounds or passes/step"})
            for a, b, n in zip(errs[:-1], errs[1:], sizes[1:], strict=True):
                rows.append({"benchmark": "fct valley", "case": f"{backend} {method} rate to {n}²",
                             "value": math.log2(a / b) if a > 0 and b > 0 else float("nan"), "unit": "",
                             "note": "log2(e_h / e_h/2)"})
        for n in sizes[1:]:
            f = valley(n, "fct", backend)
            g = valley(n, "none", backend)
            case = f"{backend} {n}²"
            rows += [
                {"benchmark": "fct cost", "case": f"{case} fct step (cn target)", "value": f["step"] * 1e3,
                 "unit": "ms/step", "note": f"{f['sweeps']:.2f} limiter rounds/step, median of steps 2..100"},
                {"benchmark": "fct cost", "case": f"{case} Galerkin cn step", "value": g["step"] * 1e3,
                 "unit": "ms/step", "note": "median of steps 2..100"},
                {"benchmark": "fct cost", "case": f"{case} ratio fct/Galerkin",
                 "value": f["step"] / g["step"], "unit": "x",
                 "note": "goal <= 3 (one run; issue 12: 5.7 before)"},
            ]
    return rows


if __name__ == "__main__":  # pragma: no cover
    for row in run(quick=True):
        print(row)
