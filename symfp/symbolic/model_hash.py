r"""A short hash that identifies a recursion (an SGD model's exact step) by what it computes.

:func:`model_hash` hashes the state names, the update map (which holds the loss's gradient, the
parameters, the learning rate, the momentum, the weight decay and the injected noise scale), the
learning rate and every random input: a mini-batch mean's per-sample expression, batch size,
replacement flag and its data (the sample values of a :class:`~symfp.symbolic.data.Dataset`, the
distributions of a :class:`~symfp.symbolic.data.Population`), a standard normal's symbols, a
``sympy.stats`` variable's distribution. Two SGD models that differ in any of these — e.g. the same
η on another data set or batch size — get different hashes; the same model built twice (or with
η = 0.1 given as ``0.1`` or ``1/10``) gets the same one: numbers enter at 12 significant digits.

Particle clouds of a recursion record it (``cloud.info["model_hash"]``); :func:`symfp.compare`
compares it with the hash of the model an FE solution's SME was derived from.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import sympy as sp

#: significant digits at which numbers enter the hash (robust to 0.1 vs 1/10, not to a real change)
DIGITS = 12


def _canon(expr: Any) -> str:
    """A printable canonical form: expanded, numbers at :data:`DIGITS` significant digits."""
    e = sp.sympify(expr)
    if isinstance(e, sp.MatrixBase):
        return "[" + ";".join(_canon(x) for x in e) + "]"
    try:
        e = sp.expand(e)
    except Exception:  # noqa: BLE001 - an unexpandable node is hashed as it stands
        pass
    return sp.sstr(e.evalf(DIGITS))


def _data_text(data: Any) -> str:
    """The content of a Dataset (sample values and weights) or a Population (its distributions)."""
    arrays = getattr(data, "arrays", None)
    if isinstance(arrays, dict):
        h = hashlib.sha256()
        for sym, arr in arrays.items():
            h.update(str(sym).encode())
            h.update(np.ascontiguousarray(np.asarray(arr, dtype=np.float64)).tobytes())
        w = getattr(data, "weights", None)
        if w is not None:
            h.update(np.ascontiguousarray(np.asarray(w, dtype=np.float64)).tobytes())
        return f"Dataset:{h.hexdigest()}"
    variables = getattr(data, "variables", None)
    if isinstance(variables, dict):
        return "Population:" + ";".join(f"{k}={sp.srepr(v)}" for k, v in variables.items())
    return f"{type(data).__name__}:{data!r}"


def _spec_text(key: Any, spec: Any) -> str:
    kind = type(spec).__name__
    keys = key if isinstance(key, tuple) else (key,)
    head = f"{kind}({','.join(map(str, keys))})"
    if kind == "BatchMean":
        return (f"{head}:{_canon(sp.Matrix(spec.expr))}|B={_canon(spec.batch_size)}|"
                f"repl={bool(spec.replacement)}|{_data_text(spec.data)}")
    if kind == "StandardNormal":
        return head
    return f"{head}:{sp.srepr(spec)}"  # a sympy.stats random variable: its distribution


def model_hash(model: Any) -> str:
    """The 16-hex-digit hash of an SGD model (its ``.recursion``) or a :class:`Recursion`.

    Args:
        model: a ``symfp.SGD`` or ``symfp.Recursion`` (numeric or symbolic).

    Returns:
        A hex string; equal for models that compute the same random step.
    """
    rec = getattr(model, "recursion", model)
    parts = [
        "state=" + ",".join(str(s) for s in rec.state),
        "update=" + _canon(sp.Matrix(rec.update)),
        "lr=" + ("None" if getattr(rec, "lr", None) is None else _canon(rec.lr)),
    ]
    parts += [_spec_text(k, s) for k, s in getattr(rec, "randomness", {}).items()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
