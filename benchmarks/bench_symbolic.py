"""Benchmarks of the symbolic core: the order-2 SME pipeline over a 10^4-sample Dataset (goal < 2 s on
one core, Fokker–Planck + weak form + LaTeX included), its growth with N (should be flat: moments, not
sums), and the cost of ``modified_equation`` by order (1–5)."""

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


def _real_loss(kind: str, n: int) -> tuple[symfp.SGD, str]:
    """Logistic regression (2 weights) or a 2-weight tanh unit on N samples (non-polynomial losses)."""
    rng = np.random.default_rng(0)
    w1, w2 = W[0], W[1]
    X = rng.normal(size=(n, 2))
    Yv = np.where(X[:, 0] + 0.5 * rng.normal(size=n) > 0, 1.0, -1.0)
    if kind == "logistic":
        loss = sp.log(1 + sp.exp(-Y * (w1 * X1 + w2 * X2)))
        data = symfp.Dataset({X1: X[:, 0], X2: X[:, 1], Y: Yv})
        what = "log(1+exp(-y(w1 x1 + w2 x2)))"
    else:
        loss = (w2 * sp.tanh(w1 * X1) - Y) ** 2 / 2
        data = symfp.Dataset({X1: X[:, 0], Y: np.tanh(0.8 * X[:, 0]) + 0.1 * rng.normal(size=n)})
        what = "(w2 tanh(w1 x) - y)^2/2"
    return symfp.SGD(loss, [w1, w2], data, lr=sp.Rational(1, 2), batch_size=8), what


def _real_pipeline(kind: str, n: int) -> tuple[float, float, str]:
    """Seconds of sme(2) + Fokker–Planck + weak form + LaTeX document (data-means, no sums over N)."""
    t0 = time.perf_counter()
    model, what = _real_loss(kind, n)
    sde = model.sme(order=2)
    t1 = time.perf_counter()
    fp = sde.fokker_planck()
    _ = fp.operator
    fp.weak_form("forward")
    fp.stationary_density()  # decided numerically (curl at sample points), no symbolic determinant
    doc = symfp.latex_document(model, sde, fp)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t0, f"{what}; .tex {len(doc.source) // 1000} kB"


def run(quick: bool = False) -> list[dict]:
    rows: list[dict] = []
    for kind in ("logistic", "tanh"):
        for n in ([10**3] if quick else [10**3, 10**4, 10**5]):
            sme_s, total_s, note = _real_pipeline(kind, n)
            rows.append({"benchmark": f"real loss: {kind}, sme(2)", "case": f"N={n}",
                         "value": round(sme_s, 3), "unit": "s",
                         "note": "data-mean nodes; should be flat in N"})
            rows.append({"benchmark": f"real loss: {kind}, sme(2)+FP+weak+LaTeX", "case": f"N={n}",
                         "value": round(total_s, 3), "unit": "s", "note": f"goal < 2 s, flat in N; {note}"})
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
