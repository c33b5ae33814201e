"""``simulate(..., batch_schedule=)``: the exact SGD with per-step batch sizes against the batch law.

Quadratic loss f = aθ²/2 with gradient samples aθ + ξ: θ_{k+1} = (1 − ηa)θ_k − η ξ̄_k with ξ̄_k the mean
of B_k samples, Var ξ̄_k = c_k s² where c_k = 1/B_k (Population, or a Dataset with replacement) or
(N − B_k)/(B_k(N − 1)) (without replacement, finite-population correction), s² the data variance.
Hence exactly v_{k+1} = (1 − ηa)² v_k + η² c_k s² from v_0 = 0. The particle variance has standard
error ≈ v √(2/(n − 1)) (Gaussian-like θ; for the finite data set the kurtosis is close to 3 after
many steps); the tolerance is 5 standard errors.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.errors import InputError

pytestmark = pytest.mark.torch

th, xi = sp.symbols("theta xi")
A, ETA, STEPS, N_P = 1.0, 0.2, 40, 200_000


def law(Bs, s2, factor):
    v = 0.0
    for B in Bs:
        v = (1 - ETA * A) ** 2 * v + ETA**2 * factor(B) * s2
    return v


def schedule():
    return np.where(np.arange(STEPS) < STEPS // 2, 1, 8) * np.where(np.arange(STEPS) % 2, 2, 1)


def check(model, s2, factor):
    Bs = schedule()
    cloud = model.simulate(n_particles=N_P, steps=STEPS, init=[0.0], seed=3, batch_schedule=Bs, outputs=None)
    v = float(np.var(cloud.theta[:, 0]))
    want = law(Bs, s2, factor)
    assert abs(v - want) <= 5 * want * np.sqrt(2 / (N_P - 1)), (v, want)
    # and it differs from the constant-B run by far more than that (the schedule is really used)
    assert abs(law(np.ones(STEPS), s2, factor) - want) > 50 * want * np.sqrt(2 / (N_P - 1))


def test_population():
    data = symfp.Population({xi: sp.stats.Normal("X", 0, 1.5)})
    check(symfp.SGD(loss=A * th**2 / 2 + xi * th, params=[th], data=data, lr=ETA), 1.5**2, lambda B: 1 / B)


@pytest.mark.parametrize("replacement", [True, False])
def test_dataset(replacement):
    xs = np.random.default_rng(0).standard_normal(50)
    xs -= xs.mean()
    N = len(xs)
    model = symfp.SGD(loss=A * th**2 / 2 + xi * th, params=[th], data=symfp.Dataset({xi: xs}), lr=ETA,
                      replacement=replacement)
    s2 = float(np.mean(xs**2))
    check(model, s2, (lambda B: 1 / B) if replacement else (lambda B: (N - B) / (B * (N - 1))))


def test_bad_batch_schedule():
    data = symfp.Population({xi: sp.stats.Normal("X", 0, 1)})
    model = symfp.SGD(loss=th**2 / 2 + xi * th, params=[th], data=data, lr=0.1)
    with pytest.raises(InputError, match="whole"):
        model.simulate(n_particles=10, steps=3, init=[0.0], batch_schedule=[1, 2.5, 3])
    with pytest.raises(InputError, match="3 steps"):
        model.simulate(n_particles=10, steps=3, init=[0.0], batch_schedule=[1, 2])
    full = symfp.SGD(loss=th**2 / 2, params=[th], data=None, lr=0.1)
    with pytest.raises(InputError, match="no mini-batch"):
        full.simulate(n_particles=10, steps=3, init=[0.0], batch_schedule=[1, 2, 3])
