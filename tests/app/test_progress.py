"""Long stages are not silent: ``symfp derive`` logs each stage with its duration on stderr (stdout stays
the result), the JSON carries the timings, and ``sme()`` reports its own duration."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import sympy as sp

import symfp
from symfp.app.cli import main

ROOT = Path(__file__).resolve().parents[2]
QUAD = str(ROOT / "derivations" / "quadratic.py")


def test_derive_logs_stage_timings_on_stderr_and_in_json(capsys):
    rc = main(["derive", QUAD, "--order", "2", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    data = json.loads(out)  # stdout is only the JSON
    for stage in ("the SDE (SME of order 2)", "the Fokker-Planck equation", "the stationary density"):
        assert f"[symfp] derive: {stage} ..." in err and f"[symfp] derive: {stage}: " in err
        assert data["timings_s"][f"derive: {stage}"] >= 0
    assert "[symfp] sme(order=2) of SGD in " in err
    # the stages account for (nearly all of) the derivation's time
    assert sum(data["timings_s"].values()) <= data["seconds"] + 1e-6


def test_sme_reports_its_duration_to_the_symfp_logger(caplog):
    th = sp.Symbol("theta", real=True)
    m = symfp.SGD(loss=th**4 / 4, params=[th], data=None, lr=0.1, noise=0.1)
    with caplog.at_level(logging.INFO, logger="symfp"):
        m.sme(order=2)
    msgs = [r.getMessage() for r in caplog.records if r.name == "symfp"]
    assert msgs[0] == "sme(order=2) of SGD in theta ..."
    assert msgs[-1].startswith("sme(order=2) of SGD in theta: ")
    assert msgs[-1].endswith(" s")
