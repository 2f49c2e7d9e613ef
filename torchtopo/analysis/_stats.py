r"""The one Pearson correlation of the analysis package (private).

:func:`standardize` centres vectors and scales them to unit norm, so that the Pearson
correlation of two of them is their dot product:

.. math:: r(x, y) = \frac{\sum_s (x_s-\bar x)(y_s-\bar y)}
                    {\sqrt{\sum_s (x_s-\bar x)^2}\sqrt{\sum_s (y_s-\bar y)^2}}
                  = \hat x \cdot \hat y .

:func:`~torchtopo.analysis.correlation_matrix` takes all the dot products at once
(:math:`\hat A^\top \hat A`), :func:`pearson` the paired ones along the last dimension.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

__all__ = ["standardize", "pearson"]


def standardize(x: Tensor, dim: int = -1, *, rtol: float = 0.0) -> Tuple[Tensor, Tensor]:
    """Centre ``x`` along ``dim`` and scale it to unit norm there.

    Returns ``(xn, dead)``: ``xn`` the standardised vectors and ``dead`` (``x`` with ``dim``
    removed) the vectors whose centred norm is at most ``rtol * (1 + max |x|)``; those are left
    centred but unscaled (their correlation is undefined).
    """
    z = x - x.mean(dim, keepdim=True)
    norm = z.norm(dim=dim)
    dead = norm <= rtol * (1 + x.abs().amax(dim)) if rtol else norm <= 0
    xn = z / torch.where(dead, torch.ones_like(norm), norm).unsqueeze(dim)
    return xn, dead


def pearson(x: Tensor, y: Tensor) -> Tensor:
    """Pearson r along the last dimension (``x`` and ``y`` broadcast); 0 where either vector
    is constant."""
    xn, x_dead = standardize(x)
    yn, y_dead = standardize(y)
    r = (xn * yn).sum(-1)
    return torch.where(x_dead | y_dead, torch.zeros_like(r), r)
