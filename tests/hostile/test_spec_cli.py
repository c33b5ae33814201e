"""Hostile spec files and command lines: exit code 2 and a one-line message naming the spec, the
setting and the culprit, found before the first stage runs (no traceback, no exit 3)."""

from __future__ import annotations

import textwrap
import time

import pytest

from symfp.app.cli import main

HEAD = """
import sympy as sp
import symfp
th = sp.Symbol("theta", real=True)
mesh = lambda: symfp.mesh.box([(-2.0, 2.0)], cells=(40,))
p0 = [0.5]
t_end = 0.2
dt = 0.02
"""
GOOD_MODEL = "model = symfp.SGD(loss=th**2 / 2, params=[th], data=None, lr=0.1, noise=0.1)\n"

SPECS = [
    (
        "duck-typed-model",
        "class M:\n    state = (th,)\n    def sme(self, order=1): return None\nmodel = M()\n",
        ["derive"],
        r"`model` is a M, expected a symfp.SGD or symfp.Recursion",
    ),
    ("sde-not-sde", "sde = {'drift': 1}\n", ["derive"], r"`sde` is a dict, expected a symfp.SDE"),
    (
        "params-unknown-key",
        GOOD_MODEL + "params = {'etta': 0.1}\n",
        ["derive"],
        r"`params` has key\(s\) \['etta'\] that are not symbols of the model",
    ),
    ("params-not-dict", GOOD_MODEL + "params = [1, 2]\n", ["derive"], r"`params` must be a dict"),
    (
        "basins-strings",
        GOOD_MODEL + "basins = {'left': 'theta < 0'}\n",
        ["derive"],
        r"`basins`\['left'\] = 'theta < 0' is a str, expected a SymPy relation",
    ),
    (
        "basins-foreign-symbol",
        GOOD_MODEL + "basins = {'left': sp.Symbol('z') < 0}\n",
        ["derive"],
        r"`basins`\['left'\] = z < 0 uses \['z'\], which are not state variables",
    ),
    (
        "observables-number",
        GOOD_MODEL + "observables = {'m': 3.0}\n",
        ["derive"],
        r"`observables`\['m'\] = 3.0 is a float, expected a SymPy expression",
    ),
    (
        "particles-unknown-key",
        GOOD_MODEL + "particles = dict(n=100, sed=1)\n",
        ["derive"],
        r"unknown keys in `particles`: \['sed'\]",
    ),
    (
        "particles-n-string",
        GOOD_MODEL + "particles = dict(n='many')\n",
        ["derive"],
        r"particles n = 'many' is not an integer",
    ),
    (
        "t_end-inf",
        GOOD_MODEL.replace("\n", "") + "\nt_end = float('inf')\n",
        ["derive"],
        r"`t_end` = inf must be finite",
    ),
    ("dt-negative", GOOD_MODEL + "dt = -0.1\n", ["derive"], r"`dt` = -0.1 must be positive"),
    (
        "lr-nan",
        "model = symfp.SGD(loss=th**2, params=[th], data=None, lr=float('nan'))\n",
        ["derive"],
        r"SGD: lr = nan is not a finite number",
    ),
    (
        "lr-time-symbol",
        "t = sp.Symbol('t')\nmodel = symfp.SGD(loss=th**2, params=[th], data=None, lr=0.2/(1+t))\n",
        ["derive"],
        r"lr = .* contains t, which looks like time .*lr_schedule=",
    ),
    (
        "exit-absorbing-unknown",
        GOOD_MODEL + "exit_time = dict(absorbing=['xmax', 'top'], start=[0.0])\n",
        ["run"],
        r"exit_time `absorbing` names \['top'\], which the mesh does not have",
    ),
    (
        "exit-absorbing-number",
        GOOD_MODEL + "exit_time = dict(absorbing=3, start=[0.0])\n",
        ["run"],
        r"exit_time `absorbing` = 3 must be a boundary-part name",
    ),
    (
        "exit-no-start",
        GOOD_MODEL + "exit_time = dict(absorbing='xmax')\n",
        ["run"],
        r"`exit_time` needs `start`",
    ),
    (
        "weak-error-unknown-key",
        GOOD_MODEL + "weak_error = dict(lrs=[0.1], observable=th, t_end=1, nn=3)\n",
        ["run"],
        r"unknown keys in `weak_error`: \['nn'\]",
    ),
    (
        "solve-sme-of-divergent-sgd",
        "eta = sp.Symbol('eta', positive=True)\n"
        "model = symfp.SGD(loss=th**2 / 2, params=[th], data=None, lr=eta, noise=0.1)\nparams = {eta: 5}\n",
        ["solve"],
        r"solve: the SGD that this SME models is linearly unstable: lr·λ_max\(∇²f\) ≥ 2 .*\(lr = 5"
        r".*use lr < 2",
    ),
    (
        "solve-order2-sme-not-psd",
        "eta = sp.Symbol('eta', positive=True)\nmodel = symfp.SGD(loss=th**4 / 4 - th**2 / 2, params=[th], "
        "data=None, lr=eta, noise=0.1)\nparams = {eta: 1.5}\norder = 2\n",
        ["solve"],
        r"solve: the diffusion D = .* < 0 for -0.333 < theta < 0.333.*lr ≤ 1 \(here lr = 1.5\)",
    ),
    (
        "loss-string-huge-power",
        "model = symfp.SGD(loss='theta**2 + 9**9**9', params=[th], data=None, lr=0.1)\n",
        ["derive"],
        r"the constant power '9\*\*9\*\*9'",
    ),
]


@pytest.mark.parametrize("body,verb,pattern", [s[1:] for s in SPECS], ids=[s[0] for s in SPECS])
def test_bad_specs_exit_2_before_the_first_stage(tmp_path, capsys, body, verb, pattern):
    spec = tmp_path / "spec.py"
    spec.write_text(textwrap.dedent(HEAD) + body)
    args = [verb[0], str(spec)] + (["--out", str(tmp_path / "out"), "--no-pdf"] if verb[0] == "run" else [])
    t0 = time.perf_counter()
    with pytest.raises(SystemExit) as exc:
        main(args)
    lines = capsys.readouterr().err.strip().splitlines()
    err = lines[-1] if lines else ""
    assert exc.value.code == 2, lines
    assert all(ln.startswith("[symfp]") for ln in lines[:-1]) and "Traceback" not in err  # one error line
    assert err.startswith(f"symfp {verb[0]}: "), err
    # where: the spec file, or the call that refused it (SGD, solve)
    assert "spec.py" in err or "SGD" in err or "solve:" in err, err
    import re

    assert re.search(pattern, err), err
    # refused before derive/solve/simulate ran: seconds, not the minutes of a full run
    assert time.perf_counter() - t0 < 30
    assert not (tmp_path / "out" / "report.html").exists()


def test_derive_tex_into_an_existing_directory(tmp_path, capsys):
    spec = tmp_path / "spec.py"
    spec.write_text(textwrap.dedent(HEAD) + GOOD_MODEL)
    folder = tmp_path / "texdir"
    folder.mkdir()
    with pytest.raises(SystemExit) as exc:
        main(["derive", str(spec), "--tex", str(folder)])
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert f"cannot write the LaTeX derivation to {folder}: it is a directory" in err
