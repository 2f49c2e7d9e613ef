r"""Map structure of a topographic layer: how smoothly its responses vary over the sheet.

Moran's I (Moran 1950, "Notes on continuous stochastic phenomena", Biometrika 37) of each map,
the correlation of unit responses and its fall-off with distance on the sheet, as used by
Truong & Hasson (arXiv:2508.00043).  Activations are laid out ``(S, N)``: S stimuli (rows), N
units (columns), unit ``k`` at grid row ``k // W`` and column ``k % W``; everything runs on the
device of its input, without Python loops over units or pairs.
"""
from __future__ import annotations

from typing import Dict, Optional, Union

import torch
from torch import Tensor

from .._checks import check_tensor
from ..grid import Grid, GridLike, as_grid
from ._common import as_activations, as_float, grid_for
from ._stats import standardize

__all__ = ["morans_i", "correlation_matrix", "neighbor_correlation", "correlation_vs_distance"]


def morans_i(maps: Tensor, grid: Optional[GridLike] = None) -> Tensor:
    r"""Moran's I spatial autocorrelation of each map, with binary neighbour weights.

    .. math::

        I = \frac{N}{W}\,\frac{\sum_i z_i \sum_j w_{ij} z_j}{\sum_i z_i^2},
        \qquad z = x - \bar x,\quad W = \sum_{ij} w_{ij}

    with :math:`w_{ij} = 1` when units i and j are neighbours on ``grid`` (8 neighbours for the
    default Chebyshev radius-1 grid, as in Truong & Hasson, arXiv:2508.00043) and 0 otherwise.
    I ≈ 1 for a smooth map, ≈ −1/(N−1) (near 0) for spatial noise, negative for a checkerboard.

    Args:
        maps: (B, N) or (B, H, W) maps (a single (N,) map is taken as B = 1 only if ``grid`` is
            given).
        grid: the units' :class:`~torchtopo.Grid` or ``(H, W)``; default ``Grid(H, W)`` for
            (B, H, W) maps and ``Grid.for_units(N)`` for (B, N).

    Returns:
        (B,) tensor of I values (float).  A constant map (Σz² = 0) has no defined I: it is
        returned as 0 (no spatial structure) rather than NaN.
    """
    who = "morans_i"
    check_tensor(maps, "maps", who, dims=(1, 2, 3), floating=False)
    if maps.dim() == 1:
        if grid is None:
            raise ValueError(f"{who}: a 1-D map needs a grid; pass maps as (B, N) or (B, H, W)")
        maps = maps.unsqueeze(0)
    if maps.dim() == 3:
        H, W = maps.shape[1], maps.shape[2]
        g = Grid(H, W) if grid is None else as_grid(grid)
        if (g.height, g.width) != (H, W):
            raise ValueError(f"{who}: maps are {H}×{W} but the grid is {g.height}×{g.width}")
        maps = maps.flatten(1)
    else:
        g = grid_for(grid, maps.shape[1], who)
    x = as_float(maps)
    i, j = g.neighbor_pairs(x.device)
    if i.numel() == 0:
        raise ValueError(f"{who}: the grid {g.height}×{g.width} has no neighbour pairs")
    z = x - x.mean(dim=1, keepdim=True)
    num = 2.0 * (z[:, i] * z[:, j]).sum(dim=1)  # Σ_i z_i Σ_j w_ij z_j, symmetric w
    den = (z * z).sum(dim=1)
    n, w = g.n_units, 2.0 * i.numel()
    ok = den > torch.finfo(x.dtype).tiny * n
    return torch.where(ok, (n / w) * num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(den))


def correlation_matrix(activations: Tensor) -> Tensor:
    r"""Pearson correlation between every pair of units over the stimuli.

    .. math:: r_{ij} = \frac{\sum_s (a_{si}-\bar a_i)(a_{sj}-\bar a_j)}
                        {\sqrt{\sum_s (a_{si}-\bar a_i)^2}\sqrt{\sum_s (a_{sj}-\bar a_j)^2}}

    Args:
        activations: (S, N), S ≥ 2 stimuli (conv maps (S, C, H, W) are averaged over positions).

    Returns:
        (N, N) matrix; rows/columns of zero-variance (dead) units are NaN, the diagonal of live
        units is 1.  Callers that summarise it (:func:`neighbor_correlation`,
        :func:`correlation_vs_distance`) drop the NaN pairs explicitly.
    """
    a = as_activations(activations, "correlation_matrix")
    if a.shape[0] < 2:
        raise ValueError(f"correlation_matrix: needs at least 2 stimuli, got shape {tuple(a.shape)}")
    a = a.double() if a.dtype != torch.float64 else a
    zn, dead = standardize(a, 0, rtol=1e-12)
    r = (zn.T @ zn).clamp(-1.0, 1.0)
    r[dead, :] = float("nan")
    r[:, dead] = float("nan")
    return r.to(activations.dtype if activations.is_floating_point() else torch.float32)


def neighbor_correlation(activations: Tensor, grid: GridLike) -> Tensor:
    r"""Mean Pearson r between the responses of neighbouring units (over the stimuli).

    .. math:: \bar r_{nb} = \frac{1}{|P|}\sum_{(i,j)\in P} r_{ij}

    with P the grid's neighbour pairs whose units both respond (pairs with a dead unit are
    dropped).  Returns a 0-d tensor (0 if no pair is left).
    """
    a = as_activations(activations, "neighbor_correlation")
    g = grid_for(grid, a.shape[1], "neighbor_correlation")
    r = correlation_matrix(a)
    i, j = g.neighbor_pairs(r.device)
    v = r[i, j]
    ok = torch.isfinite(v)
    return torch.where(ok, v, torch.zeros_like(v)).sum() / ok.sum().clamp_min(1)


def correlation_vs_distance(
    activations: Tensor,
    grid: GridLike,
    *,
    bins: Optional[Union[int, Tensor]] = None,
) -> Dict[str, Tensor]:
    r"""Response correlation of unit pairs as a function of their distance on the sheet.

    For every unordered pair i < j (both units alive) the Pearson r over stimuli
    (:func:`correlation_matrix`) and the Euclidean sheet distance
    :math:`d_{ij} = \lVert p_i - p_j \rVert_2` are computed; the curve is the mean (and SD) of r
    per distance bin.  Truong & Hasson (arXiv:2508.00043) plot this curve and the histogram of r
    (WS: high r decaying smoothly with distance; AS: a bimodal distribution).

    Args:
        activations: (S, N).
        grid: the units' grid.
        bins: None (default) — one bin per distinct distance value; an int — that many equal
            bins from 0 to the largest distance; or a 1-D tensor of bin edges.

    Returns:
        dict with ``"distance"`` (K,) bin centres (or the exact distances), ``"mean"`` (K,),
        ``"std"`` (K,), ``"count"`` (K,) pairs per bin, and the pairwise distribution
        ``"pair_r"`` (P,), ``"pair_distance"`` (P,), ``"pair_i"``, ``"pair_j"`` (P,) over the
        live pairs.  Empty bins have mean and std NaN (count 0).
    """
    who = "correlation_vs_distance"
    a = as_activations(activations, who)
    g = grid_for(grid, a.shape[1], who)
    r = correlation_matrix(a)
    n = g.n_units
    iu, ju = torch.triu_indices(n, n, offset=1, device=r.device)
    rv = r[iu, ju]
    d = g.sheet_distance(iu, ju).to(r.device)
    ok = torch.isfinite(rv)
    rv, d, iu, ju = rv[ok], d[ok], iu[ok], ju[ok]
    if bins is None:
        centres, idx = torch.unique(d, return_inverse=True)
        k = centres.numel()
    else:
        if isinstance(bins, int):
            if bins < 1:
                raise ValueError(f"{who}: bins must be >= 1, got {bins}")
            dmax = float(d.max()) if d.numel() else 1.0
            edges = torch.linspace(0.0, dmax * (1 + 1e-9), bins + 1, dtype=torch.float64, device=r.device)
        elif isinstance(bins, Tensor) and bins.dim() == 1 and bins.numel() >= 2:
            edges = bins.to(r.device, torch.float64)
        else:
            raise TypeError(f"{who}: bins must be None, an int or a 1-D tensor of >= 2 edges, got {bins!r}")
        k = edges.numel() - 1
        idx = (torch.bucketize(d, edges, right=True) - 1).clamp(0, k - 1)
        inside = (d >= edges[0]) & (d <= edges[-1])
        rv, d, iu, ju, idx = rv[inside], d[inside], iu[inside], ju[inside], idx[inside]
        centres = 0.5 * (edges[1:] + edges[:-1])
    rd = rv.double()
    cnt = torch.zeros(k, dtype=torch.float64, device=r.device).index_add_(0, idx, torch.ones_like(rd))
    s1 = torch.zeros_like(cnt).index_add_(0, idx, rd)
    s2 = torch.zeros_like(cnt).index_add_(0, idx, rd * rd)
    mean = s1 / cnt
    var = (s2 / cnt - mean * mean).clamp_min(0) * cnt / (cnt - 1).clamp_min(1)
    out_dtype = rv.dtype
    return {
        "distance": centres.to(out_dtype),
        "mean": mean.to(out_dtype),
        "std": var.sqrt().to(out_dtype),
        "count": cnt.long(),
        "pair_r": rv,
        "pair_distance": d.to(out_dtype),
        "pair_i": iu,
        "pair_j": ju,
    }
