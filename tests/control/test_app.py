"""``symfp control SPEC --out DIR``: the report folder, its numbers, LaTeX, and bad specs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytestmark = [pytest.mark.fem, pytest.mark.torch]

SPEC = textwrap.dedent('''
    import sympy as sp, sympy.stats, symfp
    from symfp.control.objectives import ExpectedValue, Smoothness
    th, xi = sp.symbols("theta xi")
    model = symfp.SGD(loss=th**2/2 + xi*th, params=[th],
                      data=symfp.Population({xi: sympy.stats.Normal("xi", 0, 1)}), lr=0.1)
    mesh = lambda: symfp.mesh.box([(-6.0, 6.0)], cells=(240,))
    p0 = sp.exp(-th**2/2)
    t_end, dt = 2.0, 0.02
    objective = [ExpectedValue(th**2/2), Smoothness(weight=1e-3)]
    control = dict(n_controls=10, u_bounds=(0.05, 1.0))
    particles = dict(n=20000, seed=1)
    title = "tiny quadratic"
''')


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "symfp", "control", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def test_report_folder(tmp_path):
    spec = tmp_path / "tiny.py"
    spec.write_text(SPEC)
    out = tmp_path / "report"
    out.mkdir()
    (out / "stale.txt").write_text("old")  # replaced as a whole, atomically
    r = run_cli(str(spec), "--out", str(out), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert sorted(p.name for p in out.iterdir()) == ["control.json", "control.tex", "densities.npz",
                                                     "schedules.png", "summary.txt"]
    assert not list(tmp_path.glob(".report.*"))  # no temporary folder left
    disk = json.loads((out / "control.json").read_text())
    assert disk["converged"] and data["converged"]
    rows = disk["schedules"]
    assert set(rows) == {"optimal", "constant", "cosine", "inverse_time"}
    budget = disk["budget_u"]
    width = 2.0 / 10
    for row in rows.values():
        assert abs(width * sum(row["u"]) - budget) < 1e-8  # the same budget ∫u dt
        v = row["particles"]
        # E f on particles vs PDE: 3 se + the order-1 SME weak error O(η) (relative ≤ ηa = 0.1)
        assert abs(v["measured"] - v["predicted"]) < 3 * v["stderr"] + 0.1 * v["predicted"]
    J = [rows[n]["objective"] for n in rows]
    assert rows["optimal"]["objective"] == min(J)
    hist = [h["value"] for h in disk["history"]]
    assert hist and hist[-1] <= hist[0]
    tex = (out / "control.tex").read_text()
    assert r"\lambda(T)" in tex and r"\mathcal A_{10}" in tex and r"\mathcal A_{21}" in tex
    dens = np.load(out / "densities.npz")
    x = dens["coordinates"][:, 0]
    order = np.argsort(x)
    mass = np.trapz(dens["optimal"][order], x[order])
    assert abs(mass - 1) < 1e-3  # P1 trapezoid of a unit-mass density on h = 0.05


def test_bad_specs(tmp_path):
    spec = tmp_path / "bad.py"
    spec.write_text(SPEC.replace("control = dict(n_controls=10, u_bounds=(0.05, 1.0))",
                                 "control = dict(n_controls=10, u_bounds=(1.0, 0.05))"))
    r = run_cli(str(spec), "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert r.returncode == 2 and "lower bound 1.0 > upper bound 0.05" in r.stderr
    spec.write_text(SPEC.replace("objective = [", "objective_ = [").replace("control = dict", "x = dict"))
    r = run_cli(str(spec), "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert r.returncode == 2 and "needs `objective`" in r.stderr
    spec.write_text(SPEC.replace("n_controls=10", "n_controls=1000"))
    r = run_cli(str(spec), "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert r.returncode == 2 and "finer than the time step" in r.stderr
    assert not (tmp_path / "o").exists()
