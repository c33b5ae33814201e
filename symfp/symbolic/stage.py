"""The common behaviour of every pipeline stage (recursion, SDE, Fokker–Planck, weak form).

A stage is an immutable object that prints readably, renders as LaTeX in Jupyter
(``_repr_latex_``) and can substitute numbers for symbols (``.subs``) to give a new stage.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

import sympy as sp

from ..errors import InputError


def latex_broken_sum(expr: Any, per_line: int = 3) -> str:
    """LaTeX of a sum broken every ``per_line`` terms (for a row of an ``aligned`` environment)."""
    expr = sp.sympify(expr)
    if not isinstance(expr, sp.Add) or len(expr.args) <= per_line:
        return sp.latex(expr)
    terms = [sp.latex(t) for t in sp.Add.make_args(expr)]
    out = terms[0]
    for k, t in enumerate(terms[1:], start=1):
        sep = " \\\\\n&\\quad " if k % per_line == 0 else " "
        out += sep + (t if t.startswith("-") else f"+ {t}")
    return out

def sympify_mapping(
    mapping: Mapping[Any, Any] | None, where: str, symbols: Any = ()
) -> dict[sp.Basic, sp.Basic]:
    """Turn a user substitution mapping into ``{Symbol: sympy value}``, with clear errors.

    Args:
        mapping: ``{symbol or name: value}``.
        where: the call that received it (for error messages).
        symbols: the symbols of the stage; a name key resolves to the one with that name (whatever
            its assumptions), else to a plain symbol.
    """
    by_name = {str(s): s for s in symbols}
    out: dict[sp.Basic, sp.Basic] = {}
    for key, value in (mapping or {}).items():
        k = by_name.get(key, sp.Symbol(key)) if isinstance(key, str) else key
        if not isinstance(k, sp.Basic):
            raise InputError(f"{where}: substitution key {key!r} is not a symbol or a name")
        try:
            out[k] = sp.sympify(value)
        except (sp.SympifyError, TypeError) as exc:
            raise InputError(f"{where}: value {value!r} for {key} is not a number or expression") from exc
    return out


#: the logger of symfp's stage timings ("derive: sme(order=2) ... 12.3 s"); the command line shows it on
#: stderr; in Python: ``logging.basicConfig(level=logging.INFO)`` or ``symfp.symbolic.stage.show_progress()``
log = logging.getLogger("symfp")


class _StderrHandler(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is at the time of each message."""

    _symfp = True

    @property  # type: ignore[override]
    def stream(self) -> Any:
        import sys

        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def show_progress() -> None:
    """Show symfp's stage timings (INFO messages of the ``symfp`` logger) on stderr."""
    if not any(getattr(h, "_symfp", False) for h in log.handlers):
        h = _StderrHandler()
        h.setFormatter(logging.Formatter("[symfp] %(message)s"))
        log.addHandler(h)
    log.setLevel(logging.INFO)


@contextlib.contextmanager
def timed(name: str, record: dict[str, float] | None = None) -> Iterator[None]:
    """Log ``name ...`` at the start and ``name: 1.23 s`` at the end of a stage; store it in ``record``."""
    log.info("%s ...", name)
    t0 = time.perf_counter()
    try:
        yield
    finally:
        dt = time.perf_counter() - t0
        if record is not None:
            record[name] = dt
        log.info("%s: %.2f s", name, dt)


class Stage:
    """Mixin: LaTeX display in notebooks from ``latex()``, and ``subs`` returning a new stage."""

    def latex(self) -> str:  # pragma: no cover - abstract
        """LaTeX source (display-math content, no surrounding ``$$``)."""
        raise NotImplementedError

    def _repr_latex_(self) -> str:
        return "$$" + self.latex() + "$$"
