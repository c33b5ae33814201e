"""Benchmarks of the symbolic core: the order-2 SME pipeline over a 10^4-sample Dataset (goal < 2 s on
one core, Fokker–Planck + weak form + LaTeX included) for a polynomial loss, its growth with N (should be
flat: moments, not sums), and the cost of ``modified_equation`` by order (1–5). The derivation for
non-polynomial losses (logistic, tanh over 10^3..10^5 samples) is timed in bench_datamean.py."""

from __future__ import annotations

import time

import numpy as np
import sympy as sp

import symfp

W = sp.symbols("w1 w2 w3", real=True)
X1, X2, Y = sp.symbols("x1 x2 y", real=True)
ETA = sp.Symbol("eta", positive=True)


def _data(n: int) -> symfp.Dataset:
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    return symfp.Dataset({X1: x1, X2: x2, Y: 0.5 * x1 + x2 + 0.1 * rng.normal(size=n)})


def _pipeline(n: int, full: bool) -> dict[str, float]:
    """Wall times (s) of each stage for the 3-parameter polynomial loss (w1 w2 x1 + w3 x2 - y)^2/2."""
    w1, w2, w3 = W
    data = _data(n)
    t = {"start": time.perf_counter()}
    model = symfp.SGD((w1 * w2 * X1 + w3 * X2 - Y) ** 2 / 2, list(W), data, lr=ETA, batch_size=32)
    t["model"] = time.perf_counter()
    sde = model.sme(order=2)
    t["sme2"] = time.perf_counter()
    if full:
        fp = sde.fokker_planck()
        fp.weak_form("forward")
        t["fp+weak"] = time.perf_counter()
        symfp.latex_document(model, sde, fp).write("/tmp/symfp_bench_symbolic.tex")
        t["latex"] = time.perf_counter()
    keys = list(t)
    return {k: t[k] - t[keys[i - 1]] for i, k in enumerate(keys) if i} | {"total": t[keys[-1]] - t["start"]}



def run(quick: bool = False) -> list[dict]:
    rows: list[dict] = []  # the real (non-polynomial) losses: bench_datamean.py
    n = 10**4
    stages = _pipeline(n, full=True)
    for k, v in stages.items():
        rows.append({"benchmark": "sme2 pipeline, 3 params, N=1e4", "case": k, "value": round(v, 3),
                     "unit": "s", "note": "goal total < 2 s" if k == "total" else "stage wall time"})
    for n in ([10**2, 10**4] if quick else [10**2, 10**3, 10**4, 10**5]):
        v = _pipeline(n, full=False)
        rows.append({"benchmark": "SGD + sme(2) vs N", "case": f"N={n}", "value": round(v["total"], 3),
                     "unit": "s", "note": "should be flat in N (empirical moments)"})
    y, h = sp.symbols("y h")
    y1, y2 = sp.symbols("y1 y2")
    for order in range(1, 4 if quick else 6):
        t0 = time.perf_counter()
        symfp.modified_equation(y + h * y**2, y, h, order)
        t1 = time.perf_counter()
        symfp.modified_equation([y1 + h * y2, y2 - h * sp.sin(y1)], [y1, y2], h, order)
        t2 = time.perf_counter()
        rows.append({"benchmark": "modified_equation vs order", "case": f"Euler y'=y^2, order {order}",
                     "value": round(t1 - t0, 4), "unit": "s", "note": "scalar"})
        rows.append({"benchmark": "modified_equation vs order", "case": f"Euler pendulum, order {order}",
                     "value": round(t2 - t1, 4), "unit": "s", "note": "2-D, non-polynomial"})
    return rows


if __name__ == "__main__":
    for r in run(quick=False):
        print(r)
