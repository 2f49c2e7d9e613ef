r"""Bounded re-parametrisation of parameters (private; used by :class:`torchtopo.GDN`).

As in Ballé et al. (ICLR 2016) and CompressAI's ``ops`` (``LowerBound``,
``NonNegativeParametrizer``): a parameter θ ≥ m is stored as
:math:`\tilde\theta = \sqrt{\theta + p}` and read back as
:math:`\max(\tilde\theta, \sqrt{m + p})^2 - p`, with a small pedestal :math:`p = 2^{-36}` that
keeps the square root's gradient finite at 0.  The lower bound passes gradients that push the
stored value upwards even below the bound, so a parameter stuck there can leave it.
"""
from __future__ import annotations

import math
from typing import Tuple

from torch import Tensor
from torch.autograd import Function

__all__ = ["lower_bound", "NonNegative"]


class _LowerBound(Function):
    """``max(x, bound)`` whose gradient also passes below the bound when it pushes ``x`` up."""

    @staticmethod
    def forward(ctx, x: Tensor, bound: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx, g: Tensor) -> Tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        passes = (x >= ctx.bound) | (g < 0)
        return g * passes, None


def lower_bound(x: Tensor, bound: float) -> Tensor:
    """``x.clamp_min(bound)`` with the gradient of :class:`_LowerBound`."""
    return _LowerBound.apply(x, bound)


class NonNegative:
    r"""The map between a stored parameter and an effective one ≥ ``minimum``.

    ``init(theta)`` gives the value to store (:math:`\sqrt{\theta + p}`, θ ≥ 0), calling the
    object on a stored tensor gives the effective one (:math:`\max(\tilde\theta, \sqrt{m + p})^2
    - p`).  Holds no tensors, so a module keeps only its stored parameters in its state_dict.

    Args:
        minimum: the lower bound m ≥ 0 of the effective value.
        offset: :math:`\sqrt p` (:math:`2^{-18}`).
    """

    def __init__(self, minimum: float = 0.0, offset: float = 2.0 ** -18) -> None:
        self.minimum = float(minimum)
        self.pedestal = float(offset) ** 2
        self.bound = math.sqrt(self.minimum + self.pedestal)

    def init(self, theta: Tensor) -> Tensor:
        """The stored value of an effective ``theta`` (≥ 0)."""
        return (theta + self.pedestal).sqrt()

    def __call__(self, stored: Tensor) -> Tensor:
        return lower_bound(stored, self.bound) ** 2 - self.pedestal
