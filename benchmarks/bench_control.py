r"""Control benchmarks: the cost of one exact gradient (discrete adjoint) relative to one forward solve.

One forward solve = one LU factorisation of :math:`M + \theta\,dt\,K(u_j, B_j)` per control interval and
a triangular solve per step (the θ-scheme of :mod:`symfp.control.problem`), plus the objective. One
gradient = that forward solve, then the adjoint sweep (one transposed solve with the same factors
and one mat-vec per step) and, per interval and operator part, one sparse × dense product for
:math:`\lambda^\top K_{ij} w`. The ratio (gradient + forward)/(forward) is the quantity to keep ≤ 3.

Cases: the Li–Tai–E problem in 1-D (P1, 600 cells, CN, 400 steps, 40 control intervals) and a 2-D
quadratic with mini-batch noise, u and B both controlled (P1 on 48² and 96² squares, CN, 200 steps,
20 intervals). Times are the median of 5 runs, set-up (assembly) excluded. "control backends": the
same 2-D problem (48²) assembled by dolfinx and by scikit-fem (the matrices agree to round-off), the
assembly timed apart from the symbolic derivation, and one gradient on each backend's matrices.

Run with ``python benchmarks/run.py control`` (``--quick``: fewer repeats, the smaller 2-D mesh).
"""

from __future__ import annotations

import time

import numpy as np


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _problem_1d():
    import sympy as sp

    import symfp
    from symfp.control import objectives as ob
    from symfp.control.operators import operator_parts
    from symfp.control.problem import ControlProblem

    th, xi = sp.symbols("theta xi")
    m = symfp.SGD(loss=th**2 / 2 + xi * th, params=[th],
                  data=symfp.Population({xi: sp.stats.Normal("X", 0, 1)}), lr=0.1)
    ops = operator_parts(m, symfp.mesh.box([(-6, 6)], cells=600))
    pr = ControlProblem(ops, sp.exp(-th**2 / 2), t_end=4.0, dt=0.01, n_controls=40,
                        objective=[ob.ExpectedValue(th**2 / 2)])
    return pr, np.linspace(1.0, 0.3, 40)


def _problem_2d(n: int, backend: str = "auto"):
    import sympy as sp

    import symfp
    from symfp.control import objectives as ob
    from symfp.control.operators import operator_parts
    from symfp.control.problem import ControlProblem

    w1, w2, x1, x2 = sp.symbols("w1 w2 x1 x2")
    data = symfp.Population({x1: sp.stats.Normal("X1", 0, 1), x2: sp.stats.Normal("X2", 0, 1)})
    m = symfp.SGD(loss=(w1**2 + 2 * w2**2 + w1 * w2) / 2 + x1 * w1 + x2 * w2, params=[w1, w2], data=data,
                  lr=0.2, batch_size=4)
    ops = operator_parts(m, symfp.mesh.box([(-4, 4), (-4, 4)], cells=(n, n)), backend=backend)
    pr = ControlProblem(ops, sp.exp(-((w1 - 1) ** 2 + (w2 + 0.5) ** 2) / 0.5), t_end=2.0, dt=0.01,
                        n_controls=20, controls=("u", "B"), B_bounds=(1, 64),
                        objective=[ob.ExpectedValue(w1**2 + 2 * w2**2), ob.SampleCost(weight=1e-3)])
    return pr, np.concatenate([np.linspace(1.0, 0.3, 20), np.linspace(2, 32, 20)])


def _backends(n: int, repeats: int) -> list[dict]:
    """Both assemblers on the same 2-D u-and-B problem: assembly of M and the parts, and one gradient."""
    import sympy as sp

    import symfp
    from symfp.control.operators import _assembler
    from symfp.control.split import controlled_coefficients, split_terms
    from symfp.fem.registry import importable

    w1, w2, x1, x2 = sp.symbols("w1 w2 x1 x2")
    data = symfp.Population({x1: sp.stats.Normal("X1", 0, 1), x2: sp.stats.Normal("X2", 0, 1)})
    m = symfp.SGD(loss=(w1**2 + 2 * w2**2 + w1 * w2) / 2 + x1 * w1 + x2 * w2, params=[w1, w2], data=data,
                  lr=0.2, batch_size=4)
    coef = controlled_coefficients(m)
    terms = split_terms(coef)
    case = f"2-D u and B, {(n + 1) ** 2} dofs, 200 steps, 20+20 controls"
    times: dict[str, tuple[float, float]] = {}
    for backend in ("dolfinx", "skfem"):
        if not importable(backend):
            continue
        mesh = symfp.mesh.box([(-4, 4), (-4, 4)], cells=(n, n), backend=backend)

        def assemble(backend=backend, mesh=mesh):
            asm = _assembler(backend, mesh, coef.state)
            asm.mass()
            return [asm.matrix(ts) for ts in terms.values()]

        assemble()  # the dolfinx forms' JIT compilation, cached afterwards
        t_asm = _median_time(assemble, repeats)
        pr, x = _problem_2d(n, backend)
        pr.value_and_gradient(x)
        t_grad = _median_time(lambda pr=pr, x=x: pr.value_and_gradient(x), repeats)
        times[backend] = (t_asm, t_grad)
    rows = []
    for backend, (t_asm, t_grad) in times.items():
        name = f"{case}, {backend}"
        rows += [
            {"benchmark": "control backends", "case": name, "value": t_asm * 1e3, "unit": "ms",
             "note": "assembly of M and the 2 parts K_10, K_21 as SciPy CSR (forms compiled, SME derived)"},
            {"benchmark": "control backends", "case": name, "value": t_grad * 1e3, "unit": "ms",
             "note": "one gradient (forward + discrete adjoint) on that backend's matrices"},
        ]
    if len(times) == 2:
        (a_d, g_d), (a_s, g_s) = times["dolfinx"], times["skfem"]
        rows += [
            {"benchmark": "control backends", "case": case, "value": a_s / a_d, "unit": "x",
             "note": "assembly time skfem / dolfinx, same run"},
            {"benchmark": "control backends", "case": case, "value": g_s / g_d, "unit": "x",
             "note": "gradient time skfem / dolfinx (the same SciPy work on equal matrices: ~1)"},
        ]
    return rows


def run(quick: bool = False) -> list[dict]:
    repeats = 3 if quick else 5
    cases = [("1-D Li-Tai-E, 601 dofs, 400 steps, 40 controls", _problem_1d)]
    sizes = (48,) if quick else (48, 96)
    cases += [(f"2-D u and B, {(n + 1) ** 2} dofs, 200 steps, 20+20 controls", lambda n=n: _problem_2d(n))
              for n in sizes]
    rows = []
    for case, make in cases:
        pr, x = make()
        u, B = pr.unpack(x)
        pr.value_and_gradient(x)  # warm caches
        t_fwd = _median_time(lambda pr=pr, u=u, B=B: pr.solve(u, B), repeats)
        t_grad = _median_time(lambda pr=pr, x=x: pr.value_and_gradient(x), repeats)
        rows += [
            {"benchmark": "control gradient", "case": case, "value": t_fwd * 1e3, "unit": "ms",
             "note": "one forward solve (LU per interval + a solve per step + objective)"},
            {"benchmark": "control gradient", "case": case, "value": t_grad * 1e3, "unit": "ms",
             "note": "forward + discrete adjoint (J and dJ/dx)"},
            {"benchmark": "control gradient", "case": case, "value": t_grad / t_fwd, "unit": "x",
             "note": "(forward + adjoint) / forward, same run; aim <= 3"},
        ]
    rows += _backends(48, repeats)
    return rows


if __name__ == "__main__":
    for r in run(quick=True):
        print(r)
