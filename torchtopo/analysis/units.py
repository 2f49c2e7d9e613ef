r"""Statistics of single units over a stimulus set: entropy, percentage of zeros, input
sensitivity, and the effective dimensionality of a population (Truong & Hasson,
arXiv:2508.00043).  Activations are laid out ``(S, N)``: S stimuli (rows), N units (columns).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .._checks import check_int
from ._common import as_activations

__all__ = ["unit_entropy", "percent_zero", "input_sensitivity", "effective_dimensionality"]


def unit_entropy(activations: Tensor, *, bins: int = 32, base: float = 2.0) -> Tensor:
    r"""Shannon entropy of each unit's binned activations over the stimuli.

    Each unit's values are split into ``bins`` equal-width bins between *its own* min and max
    (Truong & Hasson, arXiv:2508.00043: entropy of the binned pre-ReLU activations), :math:`p_b` the share of stimuli
    in bin b, and

    .. math:: H = -\sum_b p_b \log p_b

    in units of ``log(base)`` (bits by default).  A constant (dead) unit has H = 0.

    Args:
        activations: (S, N).
        bins: number of bins (≥ 1).
        base: logarithm base.

    Returns:
        (N,) entropies, between 0 and log(bins).
    """
    who = "unit_entropy"
    a = as_activations(activations, who)
    check_int(bins, "bins", who, minimum=1)
    lo, hi = a.amin(0, keepdim=True), a.amax(0, keepdim=True)
    span = hi - lo
    flat = span <= 0
    t = (a - lo) / torch.where(flat, torch.ones_like(span), span)
    idx = (t * bins).long().clamp(0, bins - 1)
    idx = torch.where(flat.expand_as(idx), torch.zeros_like(idx), idx)
    counts = torch.zeros(a.shape[1], bins, dtype=torch.float64, device=a.device)
    counts.scatter_add_(1, idx.T, torch.ones_like(idx.T, dtype=torch.float64))
    p = counts / a.shape[0]
    h = -(torch.where(p > 0, p * p.log(), torch.zeros_like(p))).sum(1) / math.log(base)
    return h.to(a.dtype).clamp_min(0)


def percent_zero(activations: Tensor, *, pre_relu: bool = False) -> Tensor:
    r"""Percentage of Zeros (PoZ) per unit: the share of stimuli on which the unit's post-ReLU
    output is exactly 0, in percent.

    .. math:: \mathrm{PoZ}_i = 100 \cdot \frac{1}{S}\sum_s [\,\mathrm{ReLU}(a_{si}) = 0\,]

    Args:
        activations: (S, N) post-ReLU outputs, or pre-ReLU ones with ``pre_relu=True`` (then a
            value ≤ 0 counts as a zero).

    Returns:
        (N,) percentages in [0, 100].
    """
    a = as_activations(activations, "percent_zero")
    z = (a <= 0) if pre_relu else (a == 0)
    return 100.0 * z.to(a.dtype).mean(0)


def input_sensitivity(activations: Tensor) -> Tensor:
    r"""Input sensitivity of each unit: the variance of its activation across stimuli
    (Truong & Hasson, arXiv:2508.00043), :math:`\frac{1}{S-1}\sum_s (a_{si} - \bar a_i)^2`.

    Returns:
        (N,) variances.
    """
    a = as_activations(activations, "input_sensitivity")
    if a.shape[0] < 2:
        raise ValueError(f"input_sensitivity: needs at least 2 stimuli, got shape {tuple(a.shape)}")
    return a.var(0, unbiased=True)


def effective_dimensionality(x: Tensor, *, center: bool = True) -> Tensor:
    r"""Participation ratio of the eigenvalues of the covariance of ``x``.

    .. math:: \mathrm{PR} = \frac{(\sum_k \lambda_k)^2}{\sum_k \lambda_k^2}

    with :math:`\lambda_k` the eigenvalues of :math:`\frac{1}{S-1} X_c^\top X_c` (``X_c`` the
    column-centred data); computed from the singular values of ``X_c``.  PR ranges from 1
    (rank-1 data) to D (isotropic data).  Used by Truong & Hasson on the fc1 activations and on
    the fc1 weight matrix (Truong & Hasson, arXiv:2508.00043).

    Args:
        x: (S, D) — rows are samples (stimuli, or the weight rows of the units).
        center: subtract the column means first (set False for an uncentred second moment).

    Returns:
        0-d tensor; 0 for all-constant data.
    """
    a = as_activations(x, "effective_dimensionality", "x")
    a = a.double() if a.dtype != torch.float64 else a
    if center:
        a = a - a.mean(0, keepdim=True)
    s2 = torch.linalg.svdvals(a) ** 2
    tot = s2.sum()
    pr = torch.where(tot > 0, tot * tot / (s2 * s2).sum().clamp_min(1e-300), torch.zeros_like(tot))
    return pr.to(x.dtype if x.is_floating_point() else torch.float32)
