"""The package imports without the heavy backends, and its command answers."""

import subprocess
import sys

import pytest
import sympy as sp


def test_import_is_light():
    code = (
        "import symfp, sys; "
        "assert 'dolfinx' not in sys.modules and 'torch' not in sys.modules, "
        "[m for m in ('dolfinx', 'torch') if m in sys.modules]; print(symfp.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == __import__("symfp").__version__
    # the native kernels' build/print layer and the FE coefficient pass are torch-free too
    code = ("import sys, symfp.native.datamean, symfp.native.cprint, symfp.fem.coefficients; "
            "assert 'torch' not in sys.modules and 'dolfinx' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_cli_version_and_help():
    out = subprocess.run([sys.executable, "-m", "symfp", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("symfp ")
    out = subprocess.run([sys.executable, "-m", "symfp", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: symfp" in out.stdout


def test_sde_contract():
    import symfp

    x, a, s = sp.symbols("x a s", real=True)
    sde = symfp.SDE(state=[x], drift=-a * x, diffusion=s**2 / 2)
    assert sde.dim == 1 and sde.parameters == {a, s} and not sde.is_numeric
    num = sde.subs({a: 1, "s": 2})
    assert num.is_numeric and num.diffusion[0, 0] == 2 and num.drift[0] == -x
    with pytest.raises(symfp.InputError, match="symmetric"):
        symfp.SDE([x, a], [0, 0], [[1, 1], [0, 1]])
    with pytest.raises(symfp.InputError, match=r"shape \(3, 1\)"):
        symfp.SDE([x], [1, 2, 3], 1)
    with pytest.raises(symfp.InputError, match="free symbols a"):
        sde.subs({s: 1}).require_numeric("solve")


def test_sde_time_symbol():
    import symfp

    x, t, a = sp.symbols("x t a", real=True)
    sde = symfp.SDE([x], -a * (1 + t) * x, 1, time=t)
    assert sde.parameters == {a} and not sde.is_autonomous
    num = sde.subs({"a": 2})
    assert num.is_numeric and num.time == t and sp.expand(num.drift[0] + 2 * (1 + t) * x) == 0
    assert symfp.SDE([x], -x, 1, time=t).is_autonomous
    with pytest.raises(symfp.InputError, match="state variables or time"):
        sde.subs({t: 1})
    with pytest.raises(symfp.InputError, match="not a state variable"):
        symfp.SDE([x], -x, 1, time=x)
