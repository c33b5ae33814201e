r"""Implicit regularisation of SGD with random reshuffling (Smith, Dherin, Barrett, De 2021).

With learning rate :math:`\varepsilon`, N samples split into :math:`m = N/B` batches per epoch
(random reshuffling: without replacement), the mean iterate follows gradient flow on the modified loss

.. math::
    \tilde C = C + \frac{\varepsilon}{4m}\sum_{k=1}^m |\nabla \hat C_k|^2 ,

where :math:`\hat C_k` is the loss of batch k. Averaged over the batch composition, each batch is a
uniformly random B-subset, so :math:`\mathbb E|\nabla\hat C_k|^2 = |\nabla C|^2 + \operatorname{tr}\Sigma_B`
with :math:`\Sigma_B = \frac{N-B}{B(N-1)}\Sigma_1` (the finite-population factor), giving

.. math::
    \tilde C = C + \frac\varepsilon4|\nabla C|^2
      + \frac{N-B}{N-1}\,\frac{\varepsilon}{4B}\operatorname{tr}\Sigma_1 .

For a Population (fresh samples) the factor is 1/B. Weight decay λ is part of C
(:math:`C = f + \lambda|\theta|^2/2`).
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from ..errors import InputError
from .randomness import BatchMean, minibatch_factor

__all__ = ["implicit_regularizer"]


def implicit_regularizer(model: Any) -> sp.Expr:
    r"""The modified loss :math:`\tilde C(\theta)` of plain SGD with random reshuffling.

    Args:
        model: a :class:`~symfp.symbolic.recursion.SGD` without momentum or noise injection.

    Returns:
        :math:`\tilde C` as a SymPy expression in the parameters, η, B and constants.
    """
    if model.momentum is not None or model.noise.is_zero is not True:
        raise InputError(
            "implicit_regularizer: the Smith-Dherin-Barrett-De modified loss is derived for plain SGD; "
            "build the SGD without momentum= and noise= (see sme(order=2) for those)"
        )
    th = sp.Matrix(model.params)
    C = model.objective + model.weight_decay * (th.T * th)[0] / 2
    grad = sp.Matrix([sp.diff(C, p) for p in model.params])
    trace = sp.Integer(0)
    spec = next((s for s in model.recursion.randomness.values() if isinstance(s, BatchMean)), None)
    if spec is not None:
        factor = minibatch_factor(model.data, model.batch_size, replacement=False)
        trace = factor * sp.Matrix(spec.sample_covariance).trace()
    return sp.expand(C + model.lr / 4 * ((grad.T * grad)[0] + trace))
