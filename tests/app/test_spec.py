"""Loading spec files: the names the command uses, and one-line errors for broken specs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import sympy as sp

from symfp.app.spec import load, size
from symfp.errors import InputError

ROOT = Path(__file__).resolve().parents[2]

OU_SPEC = """
import sympy as sp
import symfp

x = sp.Symbol("x", real=True)
a, sigma = sp.symbols("a sigma", positive=True)
sde = symfp.SDE(state=[x], drift=-a * x, diffusion=sigma**2 / 2)
params = {"a": 2, "sigma": 1}
t_end = 1.0
dt = 0.01
p0 = [0.5]
def mesh():
    raise RuntimeError("the mesh must not be built when loading")
"""


def write(tmp_path: Path, text: str, name: str = "spec.py") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_sde_spec_loads_and_substitutes(tmp_path):
    spec = load(write(tmp_path, OU_SPEC))
    assert spec.model is None and spec.order == 1
    assert [str(s) for s in spec.state] == ["x"]
    num = spec.numeric_sde()
    x = spec.state[0]
    assert sp.simplify(num.drift[0] + 2 * x) == 0
    assert float(num.diffusion[0]) == pytest.approx(0.5)
    assert spec.number("t_end", "solve") == 1.0
    # the particles default to the sde method, starting from p0 (a point)
    cfg = spec.particles()
    assert cfg["method"] == "sde" and cfg["n"] == 10_000 and cfg["init"] == [0.5] and cfg["seed"] == 0


def test_mesh_callable_is_built_only_on_demand(tmp_path):
    spec = load(write(tmp_path, OU_SPEC))  # did not raise: mesh() not called
    with pytest.raises(InputError, match=r"building `mesh` failed: RuntimeError: the mesh must not be built"):
        spec.mesh()


def test_order_override_and_bad_order(tmp_path):
    p = write(tmp_path, OU_SPEC + "\norder = 2\n")
    assert load(p).order == 2
    assert load(p, order=3).order == 3
    with pytest.raises(InputError, match="order 0 must be a positive integer"):
        load(p, order=0)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such spec file"):
        load(tmp_path / "nothere.py")
    with pytest.raises(InputError, match="is a folder"):
        load(tmp_path)


def test_syntax_error_names_the_line(tmp_path):
    p = write(tmp_path, "import sympy\nx = 1\ny = (2 +\n")
    with pytest.raises(InputError) as err:
        load(p)
    msg = str(err.value)
    assert "syntax error" in msg and f"{p}:3:" in msg and "\n" not in msg


def test_runtime_error_names_the_spec_line(tmp_path):
    p = write(tmp_path, "x = 1\ny = 2\nz = x / (y - 2)\n")
    with pytest.raises(InputError, match=r"spec\.py:3: running the spec failed: ZeroDivisionError"):
        load(p)


def test_no_model(tmp_path):
    with pytest.raises(InputError, match="neither `model`.*nor `sde`"):
        load(write(tmp_path, "t_end = 1.0\n"))


def test_wrong_types(tmp_path):
    with pytest.raises(InputError, match="`model` is a int"):
        load(write(tmp_path, "model = 3\n"))
    with pytest.raises(InputError, match="`params` must be a dict"):
        load(write(tmp_path, OU_SPEC.replace('params = {"a": 2, "sigma": 1}', "params = [1, 2]")))


def test_missing_and_bad_settings(tmp_path):
    spec = load(write(tmp_path, OU_SPEC.replace("t_end = 1.0", "t_end = -1.0").replace("dt = 0.01", "")))
    with pytest.raises(InputError, match="`t_end` = -1.0 must be positive"):
        spec.number("t_end", "solve")
    with pytest.raises(InputError, match="`symfp solve` needs `dt`"):
        spec.number("dt", "solve")


def test_particle_settings_are_checked(tmp_path):
    base = OU_SPEC + "\nparticles = {}\n"
    spec = load(write(tmp_path, base.replace("{}", "dict(n=100, bogus=1)")))
    with pytest.raises(InputError, match="unknown keys in `particles`: \\['bogus'\\]"):
        spec.particles()
    spec = load(write(tmp_path, base.replace("{}", "dict(method='recursion')")))
    with pytest.raises(InputError, match="'recursion' needs a `model`"):
        spec.particles()
    spec = load(write(tmp_path, base.replace("{}", "dict(n=1)")))
    with pytest.raises(InputError, match="at least 2"):
        spec.particles()


def test_symbols_left_after_params_are_an_error(tmp_path):
    spec = load(write(tmp_path, OU_SPEC.replace('params = {"a": 2, "sigma": 1}', 'params = {"a": 2}')))
    with pytest.raises(InputError, match="free symbols sigma"):
        spec.numeric_sde()


def test_size_from_environment(monkeypatch):
    monkeypatch.delenv("SYMFP_SIZE", raising=False)
    assert size() == "small"
    monkeypatch.setenv("SYMFP_SIZE", "large")
    assert size() == "large"
    monkeypatch.setenv("SYMFP_SIZE", "huge")
    with pytest.raises(InputError, match="expected 'small' or 'large'"):
        size()


@pytest.mark.parametrize("name", ["quadratic", "double_well"])
def test_gallery_specs_are_small_by_default_and_large_on_request(monkeypatch, name):
    monkeypatch.delenv("SYMFP_SIZE", raising=False)
    small = load(ROOT / "derivations" / f"{name}.py")
    monkeypatch.setenv("SYMFP_SIZE", "large")
    large = load(ROOT / "derivations" / f"{name}.py")
    assert small.particles()["n"] == 10_000 and large.particles()["n"] == 100_000
    assert large.number("dt", "solve") < small.number("dt", "solve")
    assert float(small.numeric_model().lr) == pytest.approx(0.1)


@pytest.mark.torch
def test_sde_particles_scheme_weak2_is_passed_through(tmp_path):
    import math

    from symfp.app.pipeline import simulate

    base = OU_SPEC + "\nparticles = {}\n"
    spec = load(write(tmp_path, base.replace("{}", "dict(n=20_000, scheme='weak2', seed=3)")))
    cloud, summary = simulate(spec)
    assert summary["scheme"] == "weak2" and cloud.info["method"] == "SDE (weak order 2)"
    # OU a = 2, σ = 1 from x0 = 0.5 at t = 1: mean 0.5e^{-2}, variance (1 − e^{-4})/4; weak order 2 at
    # dt = 0.01 leaves a bias ~1e-4, far below 4 standard errors (≈ 0.014 and 0.01)
    (m,), (se_m,) = (v.ravel() for v in cloud.mean(stderr=True))
    (var,), (se_v,) = (v.ravel() for v in cloud.cov(stderr=True))
    assert abs(m - 0.5 * math.exp(-2)) < 4 * se_m
    assert abs(var - (1 - math.exp(-4)) / 4) < 4 * se_v
    bad = load(write(tmp_path, base.replace("{}", "dict(scheme='rk4')")))
    with pytest.raises(InputError, match="scheme 'rk4': use 'euler' or 'weak2'"):
        bad.particles()
