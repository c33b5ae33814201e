"""The first FE solve prints no ``INFO:root:running build_ext`` / gcc lines (a cold FFCx JIT, issue 12)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.fem


def _record(path: str, level: int) -> logging.LogRecord:
    return logging.LogRecord("root", level, path, 1, "running build_ext", None, None)


def test_filter_drops_distutils_info_only():
    from symfp.fem.dolfinx.compat import DistutilsInfoFilter

    f = DistutilsInfoFilter()
    dist = "/usr/lib/python3/dist-packages/setuptools/_distutils/cmd.py"
    assert not f.filter(_record(dist, logging.INFO))  # the JIT's build lines
    assert not f.filter(_record("/usr/lib/python3.11/distutils/spawn.py", logging.INFO))
    assert f.filter(_record(dist, logging.WARNING)) and f.filter(_record(dist, logging.ERROR))
    assert f.filter(_record("/home/user/analysis.py", logging.INFO))  # the user's own INFO records


SCRIPT = """
import logging, sympy as sp, symfp
x = sp.Symbol("x", real=True)
sde = symfp.SDE(state=[x], drift=[-x], diffusion=[[sp.Rational(1, 2)]])
sol = sde.fokker_planck().solve(symfp.mesh.box([(-3, 3)], cells=8), sp.exp(-x**2), t_end=0.1, dt=0.05,
                                progress=False, backend="dolfinx")
logging.getLogger().warning("user warning still shown")
print("mass", sol.observables["mass"][-1])
"""


@pytest.mark.slow
def test_cold_jit_first_solve_is_quiet(tmp_path):
    # a fresh FFCx cache: every element and form is compiled by gcc through cffi in this run
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert any((tmp_path / "cache").rglob("*.c")), "the JIT cache was not cold: nothing was compiled"
    assert "INFO:root" not in out.stderr and "build_ext" not in out.stderr and "gcc" not in out.stderr, (
        out.stderr[-2000:])
    # the user's own logging still reaches stderr (formatted "WARNING:root:…" once logging is configured,
    # bare through logging's last-resort handler otherwise, as in a dolfinx root without basicConfig)
    assert "user warning still shown" in out.stderr
    mass = float(out.stdout.split("mass")[-1])
    assert abs(mass - 1.0) < 1e-9
