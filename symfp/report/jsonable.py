"""Conversion of results (numpy arrays, SymPy numbers, paths) to JSON-serialisable values."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def to_jsonable(obj: Any) -> Any:
    """Recursively turn numpy arrays/scalars, SymPy numbers and paths into plain JSON values.

    Non-finite floats become None (JSON has no NaN); SymPy expressions that are not numbers become
    their string form.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):  # numpy array or scalar
        return to_jsonable(obj.tolist())
    if hasattr(obj, "to_dict"):
        return to_jsonable(obj.to_dict())
    try:  # SymPy number
        import sympy as sp

        if isinstance(obj, sp.MatrixBase):
            return [[to_jsonable(e) for e in row] for row in obj.tolist()]
        if isinstance(obj, sp.Basic):
            if obj.is_Integer:
                return int(obj)
            if obj.is_number and obj.is_real:
                return float(obj)
            return str(obj)
    except ImportError:  # pragma: no cover
        pass
    return str(obj)


def dumps(obj: Any) -> str:
    """JSON text of ``obj`` (via :func:`to_jsonable`), indented."""
    return json.dumps(to_jsonable(obj), indent=2)
