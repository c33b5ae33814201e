"""The report's exit-time pair carries its comparison: z-score, what is expected to differ and at which
order in η, and the other SME order's FE value beside it."""

from __future__ import annotations

import textwrap

import pytest

SPEC = """
import sympy as sp
import symfp
th = sp.Symbol("theta", real=True)
model = symfp.SGD(loss=th**2 / 2, params=[th], data=None, lr=0.1, noise=0.5)
mesh = lambda: symfp.mesh.box([(-1.0, 1.0)], cells=(100,))
p0 = [0.0]
t_end = 1.0
dt = 0.02
exit_time = dict(absorbing=["xmin", "xmax"], start=[0.0], n=2000, t_max=200.0, seed=2)
"""


@pytest.mark.fem
@pytest.mark.torch
def test_exit_time_study_reports_z_expectation_and_order2(tmp_path):
    from symfp.app.run import _sections, exit_time_study
    from symfp.app.spec import load

    p = tmp_path / "q.py"
    p.write_text(textwrap.dedent(SPEC))
    spec = load(p)
    e = exit_time_study(spec)
    assert e["method"] == "recursion"
    assert e["z"] == pytest.approx((e["particle_mean"] - e["fe_tau"]) / e["particle_stderr"])
    assert "order-1 SME" in e["expected"] and "O(η^1) at η = 0.1" in e["expected"]
    # the two SME orders differ by O(η) in τ: relative gap below a few η (here η = 0.1)
    assert abs(e["fe_tau_order2"] - e["fe_tau"]) / e["fe_tau"] < 0.3
    assert e["fe_tau_order2"] != e["fe_tau"]
    html = dict(_sections(spec, {"exit_time": {k: v for k, v in e.items() if k not in ("times", "exited")}}))
    body = html["Exit time"]
    assert "FE τ, order-2 SME" in body and "Expected difference" in body and ">z<" in body
