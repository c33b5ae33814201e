"""The common behaviour of every pipeline stage (recursion, SDE, Fokker–Planck, weak form).

A stage is an immutable object that prints readably, renders as LaTeX in Jupyter
(``_repr_latex_``) and can substitute numbers for symbols (``.subs``) to give a new stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sympy as sp

from ..errors import InputError


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


class Stage:
    """Mixin: LaTeX display in notebooks from ``latex()``, and ``subs`` returning a new stage."""

    def latex(self) -> str:  # pragma: no cover - abstract
        """LaTeX source (display-math content, no surrounding ``$$``)."""
        raise NotImplementedError

    def _repr_latex_(self) -> str:
        return "$$" + self.latex() + "$$"
