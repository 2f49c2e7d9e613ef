r"""Category structure of a topographic layer: d′ selectivity of every unit for every class,
expert units and how clustered they are on the sheet (functional localisation), after
Truong & Hasson (arXiv:2508.00043).  Activations are laid out ``(S, N)``.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import Tensor

from .._checks import check_real, check_tensor
from ..grid import GridLike
from ._common import as_activations, as_float, grid_for
from .maps import morans_i

__all__ = ["selectivity", "expert_units", "localization_score"]


def selectivity(activations: Tensor, labels: Tensor, num_classes: Optional[int] = None, *, eps: float = 1e-8) -> Tensor:
    r"""Category selectivity d′ of every unit for every class.

    .. math:: d'_{ci} = \frac{\mu_{ci} - \mu_{\bar c i}}{\sqrt{(\sigma_{ci}^2 + \sigma_{\bar c i}^2)/2}}

    with μ, σ² the mean and (unbiased) variance of unit i's activation over the stimuli of class
    c and over all the other stimuli (Truong & Hasson, arXiv:2508.00043, "expert units").  The denominator is
    clamped at ``eps`` (a unit that is constant within both groups gets a large finite d′, or 0
    if the means are equal too).

    Args:
        activations: (S, N).
        labels: (S,) integer class labels in [0, num_classes).
        num_classes: default ``labels.max() + 1``.

    Returns:
        (C, N) d′ values.
    """
    who = "selectivity"
    a = as_activations(activations, who)
    check_tensor(labels, "labels", who, dims=(1,), floating=False)
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"{who}: labels must be an integer tensor, got dtype {labels.dtype}")
    if labels.shape[0] != a.shape[0]:
        raise ValueError(f"{who}: labels has {labels.shape[0]} entries but activations has {a.shape[0]} stimuli")
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError(f"{who}: labels must be >= 0")
    C = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    if labels.numel() and int(labels.max()) >= C:
        raise ValueError(f"{who}: labels go up to {int(labels.max())} but num_classes is {C}")
    ad = a.double()
    onehot = torch.nn.functional.one_hot(labels.to(a.device).long(), C).double()  # (S, C)
    n_c = onehot.sum(0)  # (C,)
    n_r = a.shape[0] - n_c
    s1, s2 = onehot.T @ ad, onehot.T @ (ad * ad)  # (C, N)
    t1, t2 = ad.sum(0), (ad * ad).sum(0)
    r1, r2 = t1 - s1, t2 - s2

    def mv(s1_, s2_, n):
        n = n[:, None]
        m = s1_ / n.clamp_min(1)
        v = (s2_ - n * m * m).clamp_min(0) / (n - 1).clamp_min(1)
        return m, v

    mc, vc = mv(s1, s2, n_c)
    mr, vr = mv(r1, r2, n_r)
    d = (mc - mr) / torch.sqrt((vc + vr) / 2).clamp_min(eps)
    return d.to(a.dtype)


def localization_score(mask: Tensor, grid: GridLike) -> Tensor:
    r"""Spatial clustering of a set of units on the sheet (functional localisation).

    .. math:: L = 1 - \frac{\bar d_{\mathrm{set}}}{\bar d_{\mathrm{all}}}

    with :math:`\bar d_{\mathrm{set}}` the mean Euclidean sheet distance between the units of the
    set and :math:`\bar d_{\mathrm{all}}` the mean over all unit pairs, which is exactly the
    expected value of :math:`\bar d_{\mathrm{set}}` for a uniformly random set of the same size.
    L > 0: clustered; ≈ 0: scattered at random; < 0: dispersed.  (Truong & Hasson measure
    functional localisation as the spatial clustering of expert units; their exact statistic is
    not published — this is torchtopo's.)

    Args:
        mask: (..., N) boolean masks of units (e.g. the experts of each class).
        grid: the units' grid.

    Returns:
        (...) scores; NaN where a mask has fewer than 2 units (no pair to measure).
    """
    who = "localization_score"
    check_tensor(mask, "mask", who, floating=False)
    if mask.dtype != torch.bool:
        raise TypeError(f"{who}: mask must be a bool tensor, got dtype {mask.dtype}")
    g = grid_for(grid, mask.shape[-1], who)
    units = torch.arange(g.n_units)
    D = g.sheet_distance(units[:, None], units[None, :]).to(mask.device)  # (N, N)
    n = g.n_units
    d_all = D.sum() / (n * (n - 1)) if n > 1 else torch.zeros((), dtype=D.dtype)
    m = mask.double()
    k = m.sum(-1)
    tot = torch.einsum("...i,ij,...j->...", m, D, m)
    d_set = tot / (k * (k - 1)).clamp_min(1)
    score = 1 - d_set / d_all.clamp_min(1e-12)
    return torch.where(k >= 2, score, torch.full_like(score, float("nan"))).float()


def expert_units(
    dprime: Tensor,
    grid: Optional[GridLike] = None,
    *,
    threshold: float = 1.0,
) -> Dict[str, Tensor]:
    r"""Expert units: units whose d′ for a class exceeds ``threshold``, and how clustered they are.

    A unit is an expert for class c when :math:`d'_{ci} > \text{threshold}` (Truong &
    Hasson, arXiv:2508.00043; the paper's threshold is **unconfirmed**, default 1.0).

    Args:
        dprime: (C, N) from :func:`selectivity`.
        grid: the units' grid (default ``Grid.for_units(N)``).
        threshold: d′ threshold.

    Returns:
        dict with ``"mask"`` (C, N) bool, ``"count"`` (C,), ``"fraction"`` (0-d: share of units
        that are an expert for at least one class), ``"localization"`` (C,) from
        :func:`localization_score` (NaN for classes with < 2 experts), and ``"morans_i"`` (C,):
        Moran's I of each class's d′ map, a threshold-free smoothness of the selectivity map.
    """
    who = "expert_units"
    d = check_tensor(dprime, "dprime", who, dims=(2,), floating=False)
    g = grid_for(grid, d.shape[1], who)
    threshold = check_real(threshold, "threshold", who)
    mask = d > threshold
    return {
        "mask": mask,
        "count": mask.sum(1),
        "fraction": mask.any(0).float().mean(),
        "localization": localization_score(mask, g),
        "morans_i": morans_i(as_float(d), g),
    }
