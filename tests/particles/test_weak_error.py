"""REFERENCE_CASES item 4: weak errors of the order-1/2 SMEs against exact SGD, and their slopes.

Antithetic pairs make the means noise-free for this linear problem (standard errors ~1e-17), so the
errors are compared with item 4's numbers directly; the remaining bias is the SDE solver's own
O((η/substeps)²) ≈ 0.6 % of the SDE2 error at η = 0.1 (hence rel=1e-2 for SDE2, 1e-3 for SDE1).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from sympy.stats import Normal

import symfp
from symfp.errors import InputError

pytestmark = pytest.mark.torch
th, xi = sp.symbols("theta xi", real=True)
eta = sp.Symbol("eta", positive=True)


def model(lr=eta):
    return symfp.SGD(
        loss=th**2 / 2 + xi * th,
        params=[th],
        data=symfp.Population({xi: Normal("X", 0, 1)}),
        lr=lr,
        batch_size=1,
    )


def test_item4_weak_error_slopes():
    res = symfp.weak_error(model(), th, lrs=[0.1, 0.05, 0.025, 0.0125], t_end=1.0, init=1.0, n_particles=2000)
    np.testing.assert_allclose(res.recursion, (1 - res.lrs) ** (1 / res.lrs), rtol=1e-12)
    np.testing.assert_allclose(res.errors[1], [1.920e-2, 9.394e-3, 4.647e-3, 2.311e-3], rtol=1e-3)
    np.testing.assert_allclose(res.errors[2], [1.259e-3, 3.105e-4, 7.71e-5, 1.92e-5], rtol=1e-2)
    assert abs(res.slopes[1] - 1) < 0.15 and abs(res.slopes[2] - 2) < 0.15
    assert "fitted slopes: order 1: 1.0" in str(res)
    assert res.to_dict()["slopes"] == res.slopes


def test_weak_error_needs_symbolic_lr():
    with pytest.raises(InputError, match="learning rate must be a symbol"):
        symfp.weak_error(model(0.1), th, lrs=[0.1, 0.05], t_end=1.0, init=1.0)
    with pytest.raises(InputError, match="at least two positive learning rates"):
        symfp.weak_error(model(), th, lrs=[0.1], t_end=1.0)
