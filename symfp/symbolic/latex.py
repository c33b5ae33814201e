r"""Standalone LaTeX documents that walk a derivation step by step.

:func:`latex_document` takes any of: a model or recursion (anything with ``.latex()``, optionally
``.moments_latex()`` or ``.moments()``), one-step moments, an :class:`~symfp.symbolic.sde.SDE`, a
:class:`~.fokker_planck.FokkerPlanck` and a :class:`~symfp.symbolic.weakform.WeakForm`, puts them in
pipeline order

    recursion → one-step moments → SDE (moment matching) → Fokker–Planck (flux form) → weak form

(completing the missing downstream stages from the last one given), and writes an ``article`` with one
section per stage, numbered and labelled equations (``equation``/``align``), the assumptions stated.
Expressions go through SymPy's LaTeX printer, so ``w1`` renders as :math:`w_{1}` and ``eta`` as
:math:`\eta`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sympy as sp

from ..errors import DependencyError, InputError, OutputError, SymfpError, os_error_text
from .datamean import LatexNames, has_data_nodes, latex_names
from .fokker_planck import FokkerPlanck
from .sde import SDE
from .weakform import WeakForm


class LatexError(SymfpError, RuntimeError):
    """pdflatex failed on a generated document (the message holds the end of its log)."""


# Unicode that users and other stages write in plain-text strings (assumptions, origins) → LaTeX
_UNICODE = {
    "α": r"$\alpha$", "β": r"$\beta$", "γ": r"$\gamma$", "δ": r"$\delta$", "ε": r"$\varepsilon$",
    "η": r"$\eta$", "θ": r"$\theta$", "λ": r"$\lambda$", "μ": r"$\mu$", "ξ": r"$\xi$", "π": r"$\pi$",
    "ρ": r"$\rho$", "σ": r"$\sigma$", "τ": r"$\tau$", "φ": r"$\varphi$", "Φ": r"$\Phi$", "ζ": r"$\zeta$",
    "Σ": r"$\Sigma$", "Δ": r"$\Delta$", "Ω": r"$\Omega$", "∇": r"$\nabla$", "·": r"$\cdot$",
    "≤": r"$\le$", "≥": r"$\ge$", "≠": r"$\ne$", "≈": r"$\approx$", "→": r"$\to$", "∞": r"$\infty$",
    "∫": r"$\int$", "±": r"$\pm$", "−": "-", "×": r"$\times$", "√": r"$\surd$", "∝": r"$\propto$",
    "²": r"$^2$", "³": r"$^3$", "ᵀ": r"$^\top$", "½": r"$\tfrac12$", "∈": r"$\in$", "𝓛": r"$\mathcal{L}$",
    "–": "--", "—": "---", "‖": r"$\|$", "∂": r"$\partial$", "ℝ": r"$\mathbb{R}$", "₀": r"$_0$",
    "₁": r"$_1$", "₂": r"$_2$", "ₖ": r"$_k$", "…": r"\dots{}", "’": "'", "“": "``", "”": "''",
}
_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
}


def latex_text(text: str) -> str:
    """Plain text (with Unicode maths) made safe for pdflatex: specials escaped, symbols mapped."""
    out = []
    for ch in str(text):
        if ch in _SPECIAL:
            out.append(_SPECIAL[ch])
        elif ch in _UNICODE:
            out.append(_UNICODE[ch])
        elif ord(ch) < 128:
            out.append(ch)
        else:
            ascii_ = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            out.append(ascii_ or "?")
    return "".join(out)


_FLAT_SUBSCRIPT = re.compile(r"_\{([A-Za-z]+)(\d+)\}")


def nice_subscripts(tex: str) -> str:
    r"""Render SymPy's flat subscripts of compound names nicely: ``\hat{g}_{w1}`` → ``\hat{g}_{w_{1}}``.

    SymPy already prints ``w1`` as ``w_{1}``; a name such as ``ghat_w1`` comes out as ``\hat{g}_{w1}``.
    """
    return _FLAT_SUBSCRIPT.sub(r"_{\1_{\2}}", tex)


def _equation(body: str, label: str) -> str:
    """A numbered, labelled display; ``aligned`` lets a stage's LaTeX use ``\\\\`` and ``&``."""
    head = "\\begin{equation}\\label{" + label + "}\n\\begin{aligned}\n"
    return head + nice_subscripts(body) + "\n\\end{aligned}\n\\end{equation}\n"


def _sum_lines(lhs: str, expr: sp.Expr, per_line: int = 3) -> str:
    """``lhs &= t_1 + t_2 + t_3 \\\\ &\\quad + t_4 ...``: a long sum broken into aligned lines."""
    terms = [sp.latex(t) for t in sp.Add.make_args(expr)] if isinstance(expr, sp.Add) else [sp.latex(expr)]
    lines, cur = [], ""
    for k, t in enumerate(terms):
        piece = t if k == 0 else (f" {t}" if t.startswith("-") else f" + {t}")
        cur += piece
        if (k + 1) % per_line == 0 and k + 1 < len(terms):
            lines.append(cur)
            cur = ""
    lines.append(cur)
    return f"{lhs} &= " + " \\\\\n&\\quad ".join(lines)


def broken_latex(expr: Any, per_line: int = 3) -> str:
    r"""LaTeX of ``expr`` with a long sum broken into lines of ``per_line`` terms (``\\ &\quad``)."""
    expr = sp.sympify(expr)
    if not isinstance(expr, sp.Add) or len(expr.args) <= per_line:
        return sp.latex(expr)
    terms = [sp.latex(t) for t in sp.Add.make_args(expr)]
    lines, cur = [], ""
    for k, t in enumerate(terms):
        cur += t if k == 0 else (f" {t}" if t.startswith("-") else f" + {t}")
        if (k + 1) % per_line == 0 and k + 1 < len(terms):
            lines.append(cur)
            cur = ""
    lines.append(cur)
    return " \\\\ \\nonumber\n&\\quad ".join(lines)


def _align(rows: list[tuple[str, str]], label: str) -> str:
    """An ``align`` block ``lhs &= rhs`` with every line numbered; the first labelled."""
    lines = []
    for k, (lhs, rhs) in enumerate(rows):
        lab = "\\label{" + label + "}" if k == 0 else ""
        if "\\nonumber" in rhs:  # a broken row: the label goes on its first line
            first, rest = rhs.split(" \\\\ \\nonumber", 1)
            lines.append(f"{lhs} &= {first}{lab} \\\\ \\nonumber{rest}")
            continue
        lines.append(f"{lhs} &= {rhs}{lab}")
    return "\\begin{align}\n" + nice_subscripts(" \\\\\n".join(lines)) + "\n\\end{align}\n"


# ------------------------------------------------------------------------------ stage classification
_ORDER = {"recursion": 0, "moments": 1, "sde": 2, "fokker_planck": 3, "weak_form": 4}


def _kind(stage: Any) -> str:
    if isinstance(stage, WeakForm):
        return "weak_form"
    if isinstance(stage, FokkerPlanck):
        return "fokker_planck"
    if isinstance(stage, SDE):
        return "sde"
    if hasattr(stage, "mean") and hasattr(stage, "second") and callable(getattr(stage, "latex", None)):
        return "moments"
    if callable(getattr(stage, "latex", None)):
        return "recursion"
    raise InputError(
        f"latex_document: {type(stage).__name__} is not a stage (it has no .latex()); pass a model or "
        "recursion, one-step moments, an SDE, a FokkerPlanck or a WeakForm"
    )


# ------------------------------------------------------------------------------ sections
def _recursion_section(model: Any) -> str:
    out = ["\\section{Recursion}\\label{sec:recursion}\n"]
    out.append(
        "One step of the algorithm maps $\\theta_k$ to $\\theta_{k+1}$ with fresh random inputs "
        "(data, mini-batch, injected noise) at every step:\n"
    )
    out.append(_equation(model.latex(), "eq:recursion"))
    facts = []
    for attr, name in (("lr", "step size"), ("batch_size", "batch size"), ("momentum", "momentum"),
                       ("weight_decay", "weight decay"), ("noise", "injected noise")):
        val = getattr(model, attr, None)
        if val is not None and not (attr in ("weight_decay", "noise") and val == 0):
            facts.append(f"{name} ${sp.latex(sp.sympify(val))}$")
    if facts:
        out.append("Parameters: " + ", ".join(facts) + ".\n")
    return "".join(out)


def _moments_body(stage: Any) -> str | None:
    """LaTeX of the one-step moments of a model, via ``moments_latex()`` or ``moments().latex()``."""
    ml = getattr(stage, "moments_latex", None)
    if callable(ml):
        return ml()
    mom = getattr(stage, "moments", None)
    if callable(mom):
        return mom().latex()
    return None


def _moments_section(body: str) -> str:
    return (
        "\\section{One-step moments}\\label{sec:moments}\n"
        "With the increment $\\Delta = \\theta_{k+1} - \\theta_k$, averaging over the random inputs of one "
        "step (data, batch, noise) at fixed $\\theta_k$ gives the first two moments\n"
        + _equation(body, "eq:moments")
    )


def _sde_section(sde: SDE, from_moments: bool) -> str:
    out = ["\\section{Stochastic modified equation}\\label{sec:sde}\n"]
    if from_moments:
        out.append(
            "Matching the moments \\eqref{eq:moments} with the weak It\\^o--Taylor expansion of the SDE over "
            "one step of length $dt = \\eta$ (moment matching) gives the modified equation\n"
        )
    else:
        out.append("The It\\^o stochastic differential equation is\n")
    if sde.dim == 1:
        out.append(_equation(sde.latex(), "eq:sde"))
    else:  # the vector form; its components follow line by line (no matrix wider than the page)
        out.append(_equation(r"d\theta = b(\theta)\, dt + \sigma(\theta)\, dW,\qquad "
                             r"D = \tfrac12\sigma\sigma^\top,\qquad \theta = "
                             + sp.latex(sp.Matrix(sde.state).T), "eq:sde"))
    st = sde.state
    rows = [(f"b_{{{sp.latex(s)}}}", broken_latex(sde.drift[i])) for i, s in enumerate(st)]
    rows += [
        (f"D_{{{sp.latex(st[i])} {sp.latex(st[j])}}}", broken_latex(sde.diffusion[i, j]))
        for i in range(sde.dim)
        for j in range(i, sde.dim)
    ]
    out.append("Component by component, drift and diffusion matrix $D = \\tfrac12\\sigma\\sigma^\\top$ are\n")
    out.append(_align(rows, "eq:coefficients"))
    out.append(f"Origin: {latex_text(sde.origin)}.\n\n\\paragraph{{Assumptions.}}\n\\begin{{itemize}}\n")
    items = [latex_text(a) for a in sde.assumptions] or [
        "It\\^o calculus; the diffusion matrix is $D = \\tfrac12\\sigma\\sigma^\\top$.",
        "Time is $t = k\\eta$: one step of the recursion is $dt = \\eta$.",
    ]
    out.extend(f"\\item {a}\n" for a in items)
    out.append("\\end{itemize}\n")
    return "".join(out)


def _fp_section(fp: FokkerPlanck, stationary: bool) -> str:
    out = ["\\section{Fokker--Planck equation}\\label{sec:fokker-planck}\n"]
    out.append(
        "The density $p(t, \\theta)$ of the SDE \\eqref{eq:sde} obeys, in flux form with "
        "$(\\nabla\\cdot D)_i = \\sum_j \\partial_j D_{ij}$,\n"
    )
    out.append(_equation(fp.latex(), "eq:fokker-planck"))
    out.append("Written out in partial derivatives,\n")
    per = 2 if has_data_nodes(fp.sde.drift) or has_data_nodes(fp.sde.diffusion) else 3
    out.append(_equation(_sum_lines(r"\frac{\partial p}{\partial t}", sp.expand(fp.operator), per),
                         "eq:fokker-planck-expanded"))
    out.append("The backward generator, which also gives the mean exit time $-\\mathcal{L}\\tau = 1$, is\n")
    out.append(_equation(_sum_lines(r"\mathcal{L}\varphi", sp.expand(fp.generator.expr), per),
                         "eq:generator"))
    if stationary:
        rho = fp.stationary_density()
        if rho is not None:
            out.append(f"A stationary density with zero flux ({latex_text(fp.stationary_reason)}) is\n")
            out.append(_equation(r"\rho \propto " + sp.latex(rho), "eq:stationary"))
        else:
            out.append(f"No closed-form stationary density: {latex_text(fp.stationary_reason)}.\n")
    return "".join(out)


#: a weak-form coefficient whose LaTeX is longer than this is named in the integral and defined below
WEAK_COEFFICIENT_CHARS = 90
_COEFFICIENT_NAMES = {"diffusion": "K", "advection": "a", "transport": "a", "reaction": "r", "source": "s"}


def _named_terms(terms: Any, taken: dict[str, int], u: str, v: str) -> tuple[list[str], list[str]]:
    """LaTeX of each term's integral, long coefficients replaced by a name; and the names' definitions.

    A definition is one ``aligned`` row per component (``a_{w_1} &= ...``), long sums broken into lines.
    """
    shown, rows = [], []
    for t in terms:
        c = t.coefficient
        if len(sp.latex(c)) <= WEAK_COEFFICIENT_CHARS:
            shown.append(t.latex(u, v))
            continue
        base = _COEFFICIENT_NAMES.get(t.kind, "c")
        taken[base] = taken.get(base, 0) + 1
        name = base if taken[base] == 1 else f"{base}^{{({taken[base]})}}"
        shown.append(type(t)(t.kind, sp.Symbol(name)).latex(u, v))
        if not isinstance(c, sp.MatrixBase):
            rows.append(_sum_lines(name, c, 2))
            continue
        for i in range(c.rows):
            for j in range(c.cols if c.cols > 1 else 1):
                if c.cols > 1 and j < i:  # symmetric K: the upper triangle
                    continue
                sub = f"{i + 1}{j + 1}" if c.cols > 1 else f"{i + 1}"
                rows.append(_sum_lines(f"{name}_{{{sub}}}", c[i, j], 2))
    return shown, rows


def _weak_lines(wf: WeakForm) -> tuple[str, list[str]]:
    """The variational equation with one integral per line, and the definitions of named coefficients.

    Coefficients whose LaTeX is long (data-mean drifts of an order-2 SME) are named
    (:math:`K`, :math:`a`, …) and defined component by component, so no line runs off the page.
    """
    try:
        u, v = wf.unknown, "v"
        taken: dict[str, int] = {}
        lhs: list[str] = []
        if wf.mass is not None:
            w = "" if wf.mass == 1 else rf"\left({sp.latex(wf.mass)}\right)"
            lhs.append(rf"\int_\Omega {w}\,\partial_t {u}\, {v}\,dx")
        bil, rows = _named_terms(wf.bilinear, taken, u, v)
        lin, rows2 = _named_terms(wf.linear, taken, u, v)
        lhs.extend(bil)
        rhs = " + ".join(lin) or "0"
        rows += rows2
    except AttributeError:  # another weak-form layout: its own one-line rendering
        return wf.equation_latex(), []
    if len(lhs) <= 1 and not rows:
        return wf.equation_latex(), []
    return "& " + " \\\\\n&+ ".join(lhs) + " \\\\\n&= " + rhs + rf" \quad \forall {v}", rows


def _weak_section(wf: WeakForm, n: int) -> str:
    label = "eq:weak-form" if n == 0 else f"eq:weak-form-{n}"
    out = [] if n else ["\\section{Weak form}\\label{sec:weak-form}\n"]
    out.append(
        f"{latex_text(wf.description)[:1].upper() + latex_text(wf.description)[1:]}. Multiplying by a test "
        "function $v$ and integrating by parts over $\\Omega$, the boundary terms are stated explicitly:\n"
    )
    eq, defs = _weak_lines(wf)
    out.append(_equation(eq, label))
    if defs:
        out.append("with the coefficients\n" + _equation(" \\\\\n".join(defs), label + "-coefficients"))
    conds = wf.conditions_latex()
    if conds:
        out.append(("and the conditions\n" if defs else "with\n")
                   + _equation(r",\\ ".join(conds), label + "-conditions"))
    return "".join(out)


# ------------------------------------------------------------------------------ document
@dataclass(frozen=True)
class LatexDocument:
    """A standalone LaTeX document: ``.source``, ``.write(path)``, ``.pdf(path)``."""

    source: str

    def write(self, path: str | Path) -> Path:
        """Write the ``.tex`` source to ``path``; returns the path."""
        p = Path(path)
        tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
        try:  # atomic: a temporary file renamed over the target
            if p.is_dir():
                raise IsADirectoryError(21, "Is a directory", str(p))
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(self.source, encoding="utf-8")
            os.replace(tmp, p)
        except OSError as exc:
            if tmp.parent.is_dir():
                tmp.unlink(missing_ok=True)
            raise OutputError(f"LatexDocument.write: cannot write {p}: {os_error_text(exc)}") from exc
        return p

    def pdf(self, path: str | Path, workdir: str | Path | None = None, passes: int = 2) -> Path:
        """Compile with pdflatex (``passes`` runs, for references) and copy the PDF to ``path``.

        Args:
            path: where to put the PDF.
            workdir: keep the ``.tex``, ``.aux``, ``.toc`` and ``.log`` there (default: a temporary dir).
            passes: pdflatex runs (2 resolves equation references and the table of contents).

        Raises:
            DependencyError: pdflatex is not installed.
            LatexError: pdflatex failed; the message ends with the tail of its log.
        """
        exe = shutil.which("pdflatex")
        if exe is None:
            raise DependencyError(
                "LatexDocument.pdf needs pdflatex, which is not on PATH; install it with "
                "apt-get install texlive-latex-base texlive-latex-recommended "
                "(or use .write() and compile elsewhere)"
            )
        out = Path(path)
        with tempfile.TemporaryDirectory(prefix="symfp-latex-") as tmp:
            wd = Path(workdir) if workdir is not None else Path(tmp)
            wd.mkdir(parents=True, exist_ok=True)
            tex = self.write(wd / "derivation.tex")
            for k in range(passes + 1):
                if k == passes:  # one more run only if LaTeX asks for it (page numbers moved)
                    log = wd / "derivation.log"
                    if not (log.exists() and "Rerun to get" in log.read_text(errors="replace")):
                        break
                proc = subprocess.run(
                    [exe, "-interaction=nonstopmode", "-halt-on-error", tex.name],
                    cwd=wd, capture_output=True, text=True, errors="replace", timeout=120,
                )
                if proc.returncode != 0:
                    log = wd / "derivation.log"
                    text = log.read_text(errors="replace") if log.exists() else proc.stdout
                    tail = "\n".join(text.splitlines()[-25:])
                    raise LatexError(
                        f"LatexDocument.pdf: pdflatex failed (exit {proc.returncode}) on {tex}; "
                        f"fix the offending expression or report a bug. End of the log:\n{tail}"
                    )
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(wd / "derivation.pdf", out)
        return out

    def _repr_latex_(self) -> str:  # pragma: no cover - notebook display
        return self.source


def _complete(stages: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    kinds = {k for k, _ in stages}
    have = dict(stages)
    extra: list[tuple[str, Any]] = []
    if "fokker_planck" in have and "sde" not in kinds:
        extra.append(("sde", have["fokker_planck"].sde))
        kinds.add("sde")
        have["sde"] = extra[-1][1]
    if "sde" in have and "recursion" not in kinds and getattr(have["sde"], "source", None) is not None:
        src = have["sde"].source
        if callable(getattr(src, "latex", None)):
            extra.append(("recursion", src))
            kinds.add("recursion")
    if "sde" in have and "fokker_planck" not in kinds:
        fp = have["sde"].fokker_planck()
        extra.append(("fokker_planck", fp))
        have["fokker_planck"] = fp
        kinds.add("fokker_planck")
    if "fokker_planck" in have and "weak_form" not in kinds:
        extra.append(("weak_form", have["fokker_planck"].weak_form("forward")))
    return stages + extra


def latex_document(
    *stages: Any, title: str | None = None, complete: bool = True, stationary: bool = True
) -> LatexDocument:
    r"""A standalone article deriving the Fokker–Planck equation step by step from the stages given.

    Args:
        *stages: any of a model/recursion (``.latex()``, optionally ``.moments_latex()`` or
            ``.moments()``), one-step moments, :class:`SDE`, :class:`FokkerPlanck`, :class:`WeakForm`
            (several weak forms are allowed), in any order.
        title: the document title (default: a generic one).
        complete: derive the missing stages downstream of the last one given (SDE → Fokker–Planck →
            forward weak form; a Fokker–Planck equation brings its SDE, an SDE its recorded source).
        stationary: include the closed-form stationary density when there is one.

    Returns:
        A :class:`LatexDocument`.

    Raises:
        InputError: no stages, or an object that is not a stage.
    """
    if not stages:
        raise InputError("latex_document: give at least one stage, e.g. latex_document(model, sde, fp)")
    tagged = [(_kind(s), s) for s in stages]
    for kind in ("recursion", "moments", "sde", "fokker_planck"):
        if sum(k == kind for k, _ in tagged) > 1:
            raise InputError(
                f"latex_document: more than one {kind.replace('_', '-')} stage given; "
                "make one document per derivation"
            )
    if complete:
        tagged = _complete(tagged)
    tagged.sort(key=lambda ks: _ORDER[ks[0]])
    have = {k for k, _ in tagged}

    names = _names_for(tagged)
    names.prepare(_node_carriers(tagged))
    with latex_names(names):
        body = _body(tagged, have, complete, stationary)
    if names.active:
        at = 1 if tagged and tagged[0][0] == "recursion" else 0
        body.insert(at, _data_section(names))
    return _document(tagged, body, title)


def _names_for(tagged: list[tuple[str, Any]]) -> LatexNames:
    """Short names for the data-means of the model in the document (its loss, parameters, data)."""
    for _, stage in tagged:
        for obj in (stage, getattr(stage, "source", None)):
            if all(hasattr(obj, a) for a in ("loss", "params", "data")) and obj.data is not None \
                    and hasattr(obj.data, "arrays"):
                return LatexNames(obj.loss, obj.params, obj.data)
    return LatexNames()


def _node_carriers(tagged: list[tuple[str, Any]]) -> list[Any]:
    """The expressions of the stages that hold data-means (to name them all in one pass)."""
    out: list[Any] = []
    for kind, stage in tagged:
        if kind == "sde":
            out += [stage.drift, stage.diffusion]
        elif kind == "fokker_planck":
            out += [stage.operator, stage.divergence_of_diffusion, stage.generator.expr]
    return out


def _data_section(names: LatexNames) -> str:
    rows = names.definitions()
    n = names.data.n if names.data is not None else None
    out = ["\\section{Data-means}\\label{sec:data-means}\n"]
    out.append(
        "Averages over the data set stay unexpanded: "
        + (f"$N = {n}$ samples $i = 1, \\dots, N$; " if n is not None else "")
        + "$\\partial_{a b\\dots} f$ is the data-mean of the derivative of the loss, "
        "$\\Sigma = \\operatorname{Cov}_i[\\nabla\\ell_i]$ the per-sample gradient covariance, and "
        "$m_k$, $C_k$ name the other means and covariances:\n"
    )
    out.append(_align(rows, "eq:data-means"))
    return "".join(out)


def _body(tagged: list[tuple[str, Any]], have: set[str], complete: bool, stationary: bool) -> list[str]:
    body: list[str] = []
    n_weak = 0
    from_moments = False
    for kind, stage in tagged:
        if kind == "recursion":
            body.append(_recursion_section(stage))
            if "moments" not in have and complete:
                mb = _moments_body(stage)
                if mb is not None:
                    body.append(_moments_section(mb))
                    from_moments = True
        elif kind == "moments":
            body.append(_moments_section(stage.latex()))
            from_moments = True
        elif kind == "sde":
            body.append(_sde_section(stage, from_moments))
        elif kind == "fokker_planck":
            body.append(_fp_section(stage, stationary))
        else:
            body.append(_weak_section(stage, n_weak))
            n_weak += 1
    return body


def _document(tagged: list[tuple[str, Any]], body: list[str], title: str | None) -> LatexDocument:
    names = " $\\to$ ".join(
        {"recursion": "recursion", "moments": "one-step moments", "sde": "SDE",
         "fokker_planck": "Fokker--Planck equation", "weak_form": "weak form"}[k]
        for k in dict.fromkeys(k for k, _ in tagged)
    )
    ttl = latex_text(title) if title else "From the recursion to the Fokker--Planck equation"
    source = "\n".join(
        [
            r"\documentclass[11pt]{article}",
            r"\usepackage[utf8]{inputenc}",
            # Type 1 Computer Modern (OT1) with a ToUnicode map: the PDF's text (ligatures included) is
            # searchable and copyable; T1 without cm-super falls back to bitmap fonts whose "fi" is lost
            r"\input{glyphtounicode}\pdfgentounicode=1",
            r"\usepackage{amsmath,amssymb}",
            r"\usepackage[margin=2cm]{geometry}",
            r"\allowdisplaybreaks",
            rf"\title{{{ttl}}}",
            r"\author{generated by symfp}",
            r"\date{}",
            r"\begin{document}",
            r"\maketitle",
            f"This document walks the derivation step by step: {names}.",
            r"\tableofcontents",
            "",
            *body,
            r"\end{document}",
            "",
        ]
    )
    return LatexDocument(source)

