r"""Map structure of a topographic layer: how smoothly its responses vary over the sheet.

Moran's I (Moran 1950, "Notes on continuous stochastic phenomena", Biometrika 37) of each map,
the correlation of unit responses and its fall-off with distance on the sheet, as used by
Truong & Hasson (arXiv:2508.00043); and the statistics that tell a smooth map from a striped
one or from a fixed layout shared by every stimulus: Moran's I per neighbour direction, the
share of variance of the mean map, Moran's I of mean-subtracted maps, and the distribution of
pairwise correlations against a control's.  Activations are laid out ``(S, N)``: S stimuli (rows), N
units (columns), unit ``k`` at grid row ``k // W`` and column ``k % W``; everything runs on the
device of its input, without Python loops over units or pairs.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Tuple, Union

import torch
from torch import Tensor

from .._checks import check_bool, check_choice, check_int, check_tensor
from ..grid import Grid, GridLike, as_grid
from ._common import as_activations, as_float, grid_for
from ._stats import standardize

__all__ = [
    "morans_i",
    "directional_morans_i",
    "mean_map_share",
    "correlation_matrix",
    "neighbor_correlation",
    "correlation_vs_distance",
    "correlation_distribution",
    "DIRECTIONS",
]


def _as_maps(maps: Tensor, grid: Optional[GridLike], who: str) -> Tuple[Tensor, Grid]:
    """(B, N) float maps and their grid from (B, N), (B, H, W) or, with a grid, (N,) maps."""
    check_tensor(maps, "maps", who, dims=(1, 2, 3), floating=False)
    if maps.dim() == 1:
        if grid is None:
            raise ValueError(f"{who}: a 1-D map needs a grid; pass maps as (B, N) or (B, H, W)")
        maps = maps.unsqueeze(0)
    if maps.shape[0] == 0:
        raise ValueError(f"{who}: maps must hold at least one map, got shape {tuple(maps.shape)}")
    if maps.dim() == 3:
        H, W = maps.shape[1], maps.shape[2]
        g = Grid(H, W) if grid is None else as_grid(grid)
        if (g.height, g.width) != (H, W):
            raise ValueError(f"{who}: maps are {H}×{W} but the grid is {g.height}×{g.width}")
        maps = maps.flatten(1)
    else:
        g = grid_for(grid, maps.shape[1], who)
    x = as_float(maps)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{who}: maps must be finite, got NaN or inf")
    return x, g


def _centred(x: Tensor, subtract_mean_map: bool, who: str) -> Tensor:
    """Each map minus its own mean, after removing the mean map over the batch if asked."""
    if check_bool(subtract_mean_map, "subtract_mean_map", who):
        x = x - x.mean(dim=0, keepdim=True)
    return x - x.mean(dim=1, keepdim=True)


def _ratio(num: Tensor, den: Tensor, n: int) -> Tensor:
    """``num / den`` where the map varies, 0 for a constant map (Σz² = 0: no spatial structure)."""
    ok = den > torch.finfo(den.dtype).tiny * n
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(den))


def morans_i(maps: Tensor, grid: Optional[GridLike] = None, *, subtract_mean_map: bool = False) -> Tensor:
    r"""Moran's I spatial autocorrelation of each map, with binary neighbour weights.

    .. math::

        I = \frac{N}{W}\,\frac{\sum_i z_i \sum_j w_{ij} z_j}{\sum_i z_i^2},
        \qquad z = x - \bar x,\quad W = \sum_{ij} w_{ij}

    with :math:`w_{ij} = 1` when units i and j are neighbours on ``grid`` (8 neighbours for the
    default Chebyshev radius-1 grid, as in Truong & Hasson, arXiv:2508.00043) and 0 otherwise.
    I ≈ 1 for a smooth map, ≈ −1/(N−1) (near 0) for spatial noise, negative for a checkerboard.

    With ``subtract_mean_map=True`` each map first loses the mean map over the batch,
    :math:`x_k \leftarrow x_k - \frac1B \sum_{k'} x_{k'}`: the smoothness of the
    stimulus-driven part alone, without the layout every stimulus shares (see
    :func:`mean_map_share`).  Give it the maps of a whole stimulus set (B ≥ 2; one map minus
    itself is constant, I = 0).

    Args:
        maps: (B, N) or (B, H, W) maps (a single (N,) map is taken as B = 1 only if ``grid`` is
            given).
        grid: the units' :class:`~torchtopo.Grid` or ``(H, W)``; default ``Grid(H, W)`` for
            (B, H, W) maps and ``Grid.for_units(N)`` for (B, N).
        subtract_mean_map: remove the mean map over the B maps first.

    Returns:
        (B,) tensor of I values (float).  A constant map (Σz² = 0) has no defined I: it is
        returned as 0 (no spatial structure) rather than NaN.
    """
    who = "morans_i"
    x, g = _as_maps(maps, grid, who)
    i, j = g.neighbor_pairs(x.device)
    if i.numel() == 0:
        raise ValueError(f"{who}: the grid {g.height}×{g.width} has no neighbour pairs")
    z = _centred(x, subtract_mean_map, who)
    num = 2.0 * (z[:, i] * z[:, j]).sum(dim=1)  # Σ_i z_i Σ_j w_ij z_j, symmetric w
    den = (z * z).sum(dim=1)
    n, w = g.n_units, 2.0 * i.numel()
    return _ratio((n / w) * num, den, n)


#: The neighbour offset (Δrow, Δcolumn) of each direction of :func:`directional_morans_i`.
DIRECTIONS: Dict[str, Tuple[int, int]] = {
    "horizontal": (0, 1),
    "vertical": (1, 0),
    "diagonal": (1, 1),
    "antidiagonal": (1, -1),
}


def _direction_products(z: Tensor, dr: int, dc: int, wrap: bool) -> Tensor:
    """``z[r, c] · z[r + dr, c + dc]`` for every in-bounds (or, with ``wrap``, every) pair of
    (B, H, W) maps, flattened to (B, P)."""
    if wrap:
        return (z * torch.roll(z, shifts=(-dr, -dc), dims=(1, 2))).flatten(1)
    H, W = z.shape[1], z.shape[2]
    a = z[:, 0:H - dr, max(0, -dc):W - max(0, dc)]
    b = z[:, dr:H, max(0, dc):W - max(0, -dc)]
    return (a * b).flatten(1)


def directional_morans_i(maps: Tensor, grid: Optional[GridLike] = None, *, subtract_mean_map: bool = False,
                         reduction: str = "mean") -> Dict[str, Tensor]:
    r"""Moran's I with one neighbour direction at a time: tells stripes from blobs.

    For a direction with neighbour offset (Δr, Δc) — ``"horizontal"`` (r, c)–(r, c+1),
    ``"vertical"`` (r, c)–(r+1, c), ``"diagonal"`` (r, c)–(r+1, c+1), ``"antidiagonal"``
    (r, c)–(r+1, c−1) — and :math:`P_d` its unordered in-bounds pairs,

    .. math::

        I_d = \frac{N}{W_d}\,\frac{\sum_{(i,j)\in P_d} 2 z_i z_j}{\sum_i z_i^2}
            = N\,\frac{\frac{1}{|P_d|}\sum_{(i,j)\in P_d} z_i z_j}{\sum_i z_i^2},
        \qquad W_d = 2|P_d|,

    :func:`morans_i` with binary weights on that direction only (z the mean-centred map, as
    there).  A smooth map has all four near +1; horizontal stripes one unit high — rows
    alternating — give +1 horizontally and −1 along the other three; the 8-neighbour I of
    :func:`morans_i` is the :math:`W_d`-weighted mean of the four.  The released analysis of
    Truong & Hasson (arXiv:2508.00043) uses the 8-neighbour I only; stripes are where the two
    disagree.

    Only the sheet's geometry is used from ``grid`` (its height, width and ``wrap``), not its
    neighbourhood.  With ``wrap=True`` the pairs wrap around (both sides must be ≥ 3).

    Args:
        maps: (B, N) or (B, H, W) maps, as :func:`morans_i`.
        grid: as :func:`morans_i`.
        subtract_mean_map: remove the mean map over the B maps first (see :func:`morans_i`).
        reduction: ``"mean"`` — each value is the mean of the per-map I over the B maps (a 0-d
            tensor), as Truong & Hasson average Moran's I over test images; ``"none"`` — the (B,)
            per-map values.

    Returns:
        ``{"horizontal", "vertical", "diagonal", "antidiagonal"}`` → I.  A constant map counts as
        0 (as :func:`morans_i`); a direction without pairs (a 1-high or 1-wide sheet) is NaN.
    """
    who = "directional_morans_i"
    check_choice(reduction, ("mean", "none"), "reduction", who)
    x, g = _as_maps(maps, grid, who)
    H, W = g.height, g.width
    if H * W < 2:
        raise ValueError(f"{who}: the grid {H}×{W} has no neighbour pairs")
    if g.wrap and min(H, W) < 3:
        raise ValueError(f"{who}: a wrap-around grid needs both sides >= 3 (no pair twice), got {H}×{W}")
    z = _centred(x, subtract_mean_map, who).reshape(-1, H, W)
    den = (z * z).flatten(1).sum(dim=1)
    n = H * W
    out: Dict[str, Tensor] = {}
    for name, (dr, dc) in DIRECTIONS.items():
        prod = _direction_products(z, dr, dc, g.wrap)
        if prod.shape[1] == 0:
            v = torch.full_like(den, float("nan"))
        else:
            v = _ratio(n * prod.mean(dim=1), den, n)
        out[name] = v.mean() if reduction == "mean" else v
    return out


def mean_map_share(maps: Tensor) -> float:
    r"""The share of the maps' variance that the stimulus-independent mean map explains.

    .. math::

        s = 1 - \frac{\sum_k \lVert m_k - \bar m\rVert^2}{\sum_k \lVert m_k - \mu\rVert^2},
        \qquad \bar m = \frac1K\sum_k m_k,\quad \mu = \text{the mean of every entry of every map}

    for K maps :math:`m_k` (one per stimulus) of N units.  s = 1 when every stimulus gives the
    same map (the layout is fixed, whatever the input), s = 0 when the mean map is flat (all
    spatial structure is stimulus-driven).  A smooth mean map with a high share makes every
    map look smooth (high :func:`morans_i`) without the units' tuning being organised: compare
    with ``morans_i(maps, subtract_mean_map=True)``.

    Args:
        maps: (K, N) or (K, H, W), K ≥ 2 maps (e.g. pre-ReLU activations over a test set).

    Returns:
        s in [0, 1] as a float; 0 when all the maps are one constant (nothing to explain, as
        the R² of a constant filter in :func:`~torchtopo.analysis.fit_gabor`).
    """
    who = "mean_map_share"
    check_tensor(maps, "maps", who, dims=(2, 3), floating=False)
    if maps.shape[0] < 2:
        raise ValueError(f"{who}: needs at least 2 maps (one per stimulus), got shape {tuple(maps.shape)}")
    x = as_float(maps.flatten(1)).double()
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{who}: maps must be finite, got NaN or inf")
    total = ((x - x.mean()) ** 2).sum()
    resid = ((x - x.mean(dim=0, keepdim=True)) ** 2).sum()
    if float(total) <= torch.finfo(torch.float64).tiny * x.numel():
        return 0.0
    return float((1.0 - resid / total).clamp(0.0, 1.0))


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
            if not bool((edges[1:] > edges[:-1]).all()):
                raise ValueError(f"{who}: bin edges must be strictly increasing, got {bins.tolist()}")
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


def _bimodality(r: Tensor) -> Tensor:
    """Sarle's bimodality coefficient of a sample (finite-sample skewness and kurtosis)."""
    n = r.numel()
    z = r - r.mean()
    m2 = (z * z).mean()
    if float(m2) <= 0.0:
        return torch.zeros((), dtype=r.dtype, device=r.device)
    g1 = (z**3).mean() / m2**1.5
    g2 = (z**4).mean() / m2**2 - 3.0
    G1 = g1 * math.sqrt(n * (n - 1)) / (n - 2)
    G2 = ((n + 1) * g2 + 6.0) * (n - 1) / ((n - 2) * (n - 3))
    return (G1 * G1 + 1.0) / (G2 + 3.0 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def _pair_r(activations: Tensor, who: str, name: str) -> Tensor:
    a = as_activations(activations, who, name)
    r = correlation_matrix(a).double()
    n = r.shape[0]
    iu, ju = torch.triu_indices(n, n, offset=1, device=r.device)
    v = r[iu, ju]
    v = v[torch.isfinite(v)]
    if v.numel() < 4:
        raise ValueError(f"{who}: {name} must have at least 4 pairs of responding units, got {v.numel()}")
    return v


def correlation_distribution(activations: Tensor, control: Optional[Tensor] = None, *,
                             bins: int = 40) -> Dict[str, Tensor]:
    r"""The distribution of pairwise response correlations, against a control's.

    For every unordered pair i < j of responding units, the Pearson r of their responses over
    the stimuli (:func:`correlation_matrix`); its histogram on ``bins`` equal bins of [−1, 1]
    (a density: Σ density · bin width = 1), its mean, mean |r| and Sarle's bimodality
    coefficient

    .. math:: b = \frac{G_1^2 + 1}{G_2 + \frac{3(n-1)^2}{(n-2)(n-3)}}

    (:math:`G_1`, :math:`G_2` the sample skewness and excess kurtosis with the usual small-sample
    corrections, n the number of pairs; b > 5/9 hints at bimodality, a uniform density gives
    5/9; a single repeated value gives 0).  Truong & Hasson (arXiv:2508.00043) report the
    histogram: WS smooth, AS bimodal.  With ``control`` (the activations of a control model on
    the same stimuli) the same statistics for it, prefixed ``control_``, and two comparisons:
    ``ks``, the two-sample Kolmogorov–Smirnov distance :math:`\sup_r |F(r) - F_c(r)|`, and
    ``overlap``, :math:`\sum_b \min(p_b, q_b)\,\Delta` ∈ [0, 1] of the two histograms.  Plot with
    :func:`torchtopo.plot.correlation_histogram` (``{"control": out["control_pair_r"],
    "model": out["pair_r"]}``).

    Args:
        activations: (S, N), S ≥ 2 stimuli (conv maps are averaged over positions).
        control: optional (S′, N′) activations of the control.
        bins: histogram bins on [−1, 1].

    Returns:
        dict of tensors: ``pair_r`` (P,), ``edges`` (bins + 1,), ``density`` (bins,), ``mean``,
        ``mean_abs``, ``bimodality``; with a control also ``control_pair_r``,
        ``control_density``, ``control_mean``, ``control_mean_abs``, ``control_bimodality``,
        ``ks`` and ``overlap``.
    """
    who = "correlation_distribution"
    bins = check_int(bins, "bins", who, minimum=1)
    sets = {"": _pair_r(activations, who, "activations")}
    if control is not None:
        sets["control_"] = _pair_r(control, who, "control")
    edges = torch.linspace(-1.0, 1.0, bins + 1, dtype=torch.float64, device=sets[""].device)
    width = 2.0 / bins
    out: Dict[str, Tensor] = {"edges": edges}
    for prefix, r in sets.items():
        idx = ((r + 1.0) / width).floor().long().clamp(0, bins - 1)
        counts = torch.bincount(idx, minlength=bins).to(torch.float64)
        out[prefix + "pair_r"] = r
        out[prefix + "density"] = counts / (r.numel() * width)
        out[prefix + "mean"] = r.mean()
        out[prefix + "mean_abs"] = r.abs().mean()
        out[prefix + "bimodality"] = _bimodality(r)
    if control is not None:
        a, c = sets[""], sets["control_"].to(sets[""].device)
        both = torch.sort(torch.cat([a, c])).values
        fa = torch.searchsorted(torch.sort(a).values, both, right=True).double() / a.numel()
        fc = torch.searchsorted(torch.sort(c).values, both, right=True).double() / c.numel()
        out["ks"] = (fa - fc).abs().max()
        out["overlap"] = (torch.minimum(out["density"], out["control_density"].to(a.device)) * width).sum()
    return out
