"""A small LRU cache of built steppers (lambdified update, drift and noise factor).

Building a stepper lambdifies SymPy expressions to torch (with CSE) and, for an SDE, classifies and
factorises D symbolically: ≈30 ms, more than a short simulation costs. Steppers hold no per-run
state (per-block state lives in the ``ctx`` their ``start`` returns), so one can serve every run of
the same problem. The key is made of the expressions themselves (SymPy matrices hash by value), the
step, the scheme and, where data tensors live on a device, the device and dtype; random-input specs
(``BatchMean``, ``StandardNormal``) hash by identity, so a new model (``.subs``) builds anew.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

MAXSIZE = 16
_steppers: OrderedDict[Hashable, Any] = OrderedDict()


def cached(key: Hashable, build: Callable[[], Any]) -> Any:
    """The stepper for ``key`` from the cache, or ``build()`` stored under it (LRU, ``MAXSIZE``).

    An unhashable key (some expression or spec that cannot be hashed) just builds, uncached.
    """
    try:
        hit = _steppers.pop(key, None)
    except TypeError:
        return build()
    if hit is None:
        hit = build()
    _steppers[key] = hit
    while len(_steppers) > MAXSIZE:
        _steppers.popitem(last=False)
    return hit


def clear() -> None:
    """Forget every cached stepper."""
    _steppers.clear()
