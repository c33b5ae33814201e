"""Observables on disk, backend-neutral: ``observables.json`` (with the run's info) and ``.csv``.

Files are written atomically (a temporary file in the same directory, then ``os.replace``).
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np


def jsonable(value: Any) -> Any:
    """numpy arrays and scalars as plain Python values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def atomic_write(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_observables(directory: str, observables: Mapping[str, Any], info: Mapping[str, Any]) -> None:
    """``observables.json`` ({observables, info}) and ``observables.csv`` (one column per entry)."""
    obs = {k: jsonable(v) for k, v in observables.items()}
    meta = {k: jsonable(v) for k, v in info.items() if isinstance(v, (str, int, float, bool))}
    atomic_write(os.path.join(directory, "observables.json"),
                 json.dumps({"observables": obs, "info": meta}, indent=1))
    atomic_write(os.path.join(directory, "observables.csv"), observables_csv(observables))


def observables_csv(observables: Mapping[str, Any]) -> str:
    """The observables as CSV text: one column per scalar entry (``mean[0]``, ``cov[0,1]``, ...)."""
    import io

    T = len(observables["t"])
    cols: dict[str, np.ndarray] = {}
    for k, v in observables.items():
        if k == "region_names":
            continue
        a = np.asarray(v)
        if a.ndim == 1:
            cols[k] = a
        elif k == "region_mass":
            for j, name in enumerate(observables.get("region_names", [])):
                cols[f"mass[{name}]"] = a[:, j]
        else:
            flat = a.reshape(T, -1)
            for j, ix in enumerate(np.ndindex(*a.shape[1:])):
                cols[f"{k}[{','.join(map(str, ix))}]"] = flat[:, j]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(list(cols))
    for i in range(T):
        w.writerow([repr(float(c[i])) for c in cols.values()])
    return buf.getvalue()


def read_observables(directory: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The observables (numpy arrays) and info written by :func:`write_observables`."""
    with open(os.path.join(directory, "observables.json")) as fh:
        data = json.load(fh)
    obs = {k: np.array(v, dtype=object if k == "region_names" else None)
           for k, v in data["observables"].items()}
    return obs, data.get("info", {})
