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


def _logistic(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    Y = np.where(X[:, 0] + 0.5 * rng.normal(size=n) > 0, 1.0, -1.0)
    x1, x2 = sp.symbols("x1 x2", real=True)
    loss = sp.log(1 + sp.exp(-y * (w1 * x1 + w2 * x2)))
    return symfp.SGD(loss=loss, params=[w1, w2], data=symfp.Dataset({x1: X[:, 0], x2: X[:, 1], y: Y}),
                     lr=sp.Rational(1, 2), batch_size=8)


def test_recursion_prints_theta_k_minus_eta_ghat():
    tex = sgd_2d().recursion.latex()
    assert r"\left[\begin{matrix}w_{1}\\w_{2}\end{matrix}\right]_{k+1} = " in tex
    assert r"\right]_{k} + \left[\begin{matrix}- \eta" in tex


@needs_pdflatex
def test_logistic_document_names_data_means_compiles_and_is_flat_in_n(tmp_path):
    sizes = {}
    for n in (50, 5000):
        model = _logistic(n)
        sde = model.sme(order=2)
        doc = symfp.latex_document(model, sde, sde.fokker_planck())
        src = doc.source
        sizes[n] = len(src)
        assert "Data-means" in section_titles(src)
        assert r"\frac{1}{N}\sum_{i=1}^{N} \ell(w_{1}, w_{2};" in src and f"N = {n}" in src
        assert r"\Sigma_{w_{1} w_{2}}" in src and r"\partial_{w_{1} w_{2}} f" in src
        assert "m_{1}" not in src  # every mean is recognised as a derivative of f
        assert "log" not in src.split(r"\section{One-step moments}")[1]  # no sample sum written out
    assert abs(sizes[50] - sizes[5000]) < 100  # only the printed N differs
    pdf = doc.pdf(tmp_path / "logistic.pdf", workdir=tmp_path / "build")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    # every line fits the text width: no overfull box wider than 1 pt (the weak form's drift line
    # once ran 123 pt off the page)
    log = (tmp_path / "build" / "derivation.log").read_text(errors="replace")
    widths = [float(w) for w in re.findall(r"Overfull \\hbox \(([\d.]+)pt too wide\)", log)]
    assert all(w <= 1.0 for w in widths), sorted(widths)[-3:]
    assert r"\int_\Omega p\,a\cdot\nabla v\,dx" in src and "a_{1} &=" in src  # the named drift


def test_names_of_data_means_agree_with_the_expanded_sums():
    from symfp.symbolic.datamean import DataMean, LatexNames, latex_names

    model = _logistic(8)
    sde = model.sme(order=2)
    names = LatexNames(model.loss, model.params, model.data)
    with latex_names(names):
        sp.latex(sde.drift)
    f_full = sum(model.loss.subs(model.data._sample_values(i)) for i in range(8)) / 8
    at = {w1: 0.3, w2: -0.6}
    checked = 0
    for node, name in names.used.items():
        if not isinstance(node, DataMean):
            continue
        m = re.fullmatch(r"(\\left\(-)?\\partial_\{(.*)\} f(\\right\))?", name)
        assert m, name
        params = [{"w_{1}": w1, "w_{2}": w2}[t] for t in m.group(2).split()]
        sign = -1 if m.group(1) else 1
        ref = sign * float(sp.diff(f_full, *params).subs(at))
        assert float(node.expanded().subs(at)) == pytest.approx(ref, rel=1e-12)
        checked += 1
    assert checked >= 5  # grad (2) and Hessian (3) entries
