"""LaTeX derivation documents: structure, escaping, pdflatex compile of a 2-D SGD example."""

from __future__ import annotations

import re
import shutil
import subprocess
import unicodedata

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.errors import InputError
from symfp.symbolic.latex import LatexDocument, LatexError, latex_text, nice_subscripts
from symfp.symbolic.sde import SDE

HAS_PDFLATEX = shutil.which("pdflatex") is not None
needs_pdflatex = pytest.mark.skipif(not HAS_PDFLATEX, reason="pdflatex is not installed (texlive-latex-base)")

w1, w2, x, y = sp.symbols("w1 w2 x y", real=True)
eta = sp.Symbol("eta", positive=True)
SECTIONS = [
    "Recursion", "One-step moments", "Stochastic modified equation", "Fokker--Planck equation", "Weak form"
]


def sgd_2d():
    rng = np.random.default_rng(0)
    xs = rng.normal(size=40)
    ys = 0.5 * xs + 0.1 * rng.normal(size=40)
    return symfp.SGD(
        loss=(w1 * w2 * x - y) ** 2 / 2, params=[w1, w2], data=symfp.Dataset({x: xs, y: ys}),
        lr=eta, batch_size=4,
    )


def section_titles(source: str) -> list[str]:
    return re.findall(r"\\section\{([^}]*)\}", source)


@needs_pdflatex
def test_sgd_2d_document_compiles_and_has_the_derivation_sections(tmp_path):
    model = sgd_2d()
    sde = model.sme(order=1)
    doc = symfp.latex_document(model, sde, sde.fokker_planck(), title="Two-parameter SGD")
    assert section_titles(doc.source) == SECTIONS
    assert r"w_{1}" in doc.source and "w1" not in doc.source  # names rendered with subscripts
    pdf = doc.pdf(tmp_path / "out" / "derivation.pdf", workdir=tmp_path / "build")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    build = tmp_path / "build"
    toc = (build / "derivation.toc").read_text()
    found = re.findall(r"\\numberline \{(\d+)\}([^}]*)\}", toc)
    assert [(int(n), t) for n, t in found] == list(enumerate(SECTIONS, start=1))
    aux = (build / "derivation.aux").read_text()
    numbers = {k: int(v) for k, v in re.findall(r"\\newlabel\{(eq:[^}]*)\}\{\{(\d+)\}", aux)}
    order = ["eq:recursion", "eq:moments", "eq:sde", "eq:fokker-planck", "eq:generator", "eq:weak-form"]
    assert [numbers[k] for k in order] == sorted(numbers[k] for k in order)  # numbered in derivation order
    assert numbers["eq:recursion"] == 1
    log = (build / "derivation.log").read_text(errors="replace")
    assert "undefined" not in log.lower() and "Rerun to get" not in log
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
        text = unicodedata.normalize("NFKC", text)  # pdftotext returns ligatures: "ﬁ" -> "fi"
        for title in ["Recursion", "One-step moments", "Stochastic modified equation", "Weak form"]:
            assert title in text


def test_source_of_an_sde_document_states_assumptions_and_stationary_density():
    f = (w1**2 + w2**2) ** 2 / 4 - w1**2 / 2
    sde = SDE([w1, w2], [-sp.diff(f, w1), -sp.diff(f, w2)], eta / 2, assumptions=["Σ_B = s² I & B ≥ 1"])
    src = symfp.latex_document(sde).source
    assert src.startswith(r"\documentclass[11pt]{article}") and src.rstrip().endswith(r"\end{document}")
    assert r"\usepackage{amsmath,amssymb}" in src
    assert section_titles(src) == SECTIONS[2:]  # completed downstream: Fokker-Planck, weak form
    assert r"\item $\Sigma$\_B = s$^2$ I \& B $\ge$ 1" in src
    assert r"\rho \propto e^{" in src and r"\label{eq:stationary}" in src
    # every display is numbered and labelled once
    labels = re.findall(r"\\label\{(eq:[^}]*)\}", src)
    assert len(labels) == len(set(labels)) >= 6
    assert src.count(r"\begin{equation}") + src.count(r"\begin{align}") == len(labels)


def test_rotational_document_says_why_there_is_no_stationary_density():
    sde = SDE([x, y], [-x - y, x - y], sp.eye(2))
    src = symfp.latex_document(sde.fokker_planck()).source
    assert section_titles(src) == SECTIONS[2:]
    assert "No closed-form stationary density: detailed balance fails" in src


def test_several_weak_forms_share_one_section():
    sde = SDE([x], -x, 1)
    fp = sde.fokker_planck()
    exit_form = fp.weak_form("exit_time", absorbing="xmax")
    src = symfp.latex_document(fp, fp.weak_form("forward"), exit_form).source
    assert section_titles(src).count("Weak form") == 1
    assert r"\label{eq:weak-form}" in src and r"\label{eq:weak-form-1}" in src
    assert r"\tau = 0" in src


def test_nice_subscripts():
    assert nice_subscripts(sp.latex(sp.Symbol("ghat_w12"))) == r"\hat{g}_{w_{12}}"
    assert nice_subscripts(sp.latex(sp.Symbol("w1"))) == r"w_{1}"


def test_latex_text_escapes_specials_and_maps_unicode():
    assert latex_text("σσᵀ/2 ≤ 1 & x_1 50%") == r"$\sigma$$\sigma$$^\top$/2 $\le$ 1 \& x\_1 50\%"
    assert latex_text("naïve {a}") == r"naive \{a\}"


def test_bad_input_messages():
    with pytest.raises(InputError, match="give at least one stage"):
        symfp.latex_document()
    with pytest.raises(InputError, match="int is not a stage"):
        symfp.latex_document(42)
    sde = SDE([x], -x, 1)
    with pytest.raises(InputError, match="more than one sde stage"):
        symfp.latex_document(sde, sde)


@needs_pdflatex
def test_pdf_failure_raises_with_the_log_tail(tmp_path):
    bad = LatexDocument("\\documentclass{article}\n\\begin{document}\n\\nosuchmacro\n\\end{document}\n")
    with pytest.raises(LatexError, match="Undefined control sequence"):
        bad.pdf(tmp_path / "bad.pdf")
    assert isinstance(LatexError("x"), symfp.SymfpError)
