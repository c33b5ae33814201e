"""SymPy → torch translation: exact irrational constants become floats once, outputs land in place."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.errors import ExpressionError

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
from symfp.particles.lambdify import numeric_constants, state_function, torch_function  # noqa: E402

x, y, t = sp.symbols("x y t", real=True)


@pytest.mark.parametrize(
    "expr, value",
    [
        (sp.sqrt(5) / 50 * x, math.sqrt(5) / 50 * 0.7),
        (sp.pi * x + sp.E, math.pi * 0.7 + math.e),
        (sp.Rational(2, 3) ** sp.Rational(1, 3) * x**2, (2 / 3) ** (1 / 3) * 0.49),
        (x ** sp.Rational(3, 2) + sp.exp(sp.Rational(1, 2)), 0.7**1.5 + math.exp(0.5)),
        (sp.sqrt(2) * sp.sin(sp.pi / 7 * x), math.sqrt(2) * math.sin(math.pi / 7 * 0.7)),
    ],
)
def test_exact_constants_evaluate(expr, value):
    f = torch_function(sp.Matrix([expr, sp.sqrt(3)]), [x], "test")
    out = f(torch.full((4,), 0.7, dtype=torch.float64))
    assert out.shape == (4, 2)
    np.testing.assert_allclose(out[:, 0].numpy(), value, rtol=1e-15)
    np.testing.assert_allclose(out[:, 1].numpy(), math.sqrt(3), rtol=1e-15)


def test_numeric_constants_keep_integer_powers():
    e = numeric_constants(sp.sqrt(5) / 50 * x**2 + sp.pi / x)
    assert all(p.exp.is_Integer for p in e.atoms(sp.Pow))
    assert not e.atoms(sp.NumberSymbol) and all(n.is_Float or n.is_Integer for n in e.atoms(sp.Number))
    with pytest.raises(ExpressionError, match="not a real number"):
        numeric_constants(sp.sqrt(-2) * x)


def test_out_buffer_and_state_function():
    g = state_function(sp.Matrix([[x * y, 2], [sp.pi, -y]]), [x, y], "test")
    th = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    buf = torch.empty(2, 2, 2, dtype=torch.float64)
    out = g(th, out=buf)
    assert out.data_ptr() == buf.data_ptr()
    np.testing.assert_allclose(out.numpy(), [[[2, 2], [math.pi, -2]], [[12, 2], [math.pi, -4]]])


def test_sgd_with_irrational_noise_scale_simulates():
    # √(2ηδ) = √5/50 for η = 1/100, δ = 1/10: this raised "sqrt(): argument 'input' must be Tensor"
    model = symfp.SGD(loss=t**2 / 2, params=[t], data=None, lr=sp.Rational(1, 100), noise=sp.Rational(1, 10))
    cloud = model.simulate(n_particles=4000, steps=10, init=0.0, seed=0)
    # θ_K = Σ_k (1−η)^(K−1−k) √(2ηδ) ζ_k: variance 2ηδ Σ (1−η)^(2j)
    var = 2e-3 * sum(0.99 ** (2 * j) for j in range(10))
    cov, se = cloud.cov(stderr=True)
    assert abs(float(cov[0, 0]) - var) < 3 * float(se[0, 0])
    mean, mse = cloud.mean(stderr=True)
    assert abs(float(mean[0])) < 3 * float(mse[0])
