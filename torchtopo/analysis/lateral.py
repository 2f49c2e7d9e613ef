r"""Analyses of a learned lateral kernel K over (channel, space), Bertoni et al., Front. Comput. Neurosci. 2021.

Bertoni, Montobbio, Sarti & Citti (2021) report that the lateral kernel learned between Gabor-like
first-layer filters is orientation-selective (filters with similar preferred orientations are
connected more strongly) and that the fields it induces resemble the association fields of V1
horizontal connectivity (co-axial, co-circular), as in group-based SE(2) models (Citti & Sarti).

Conventions: ``K`` is :attr:`torchtopo.LateralConv2d.lateral_weight`, shape (C, C, L, L), with
``K[i, j, u]`` the weight *from* channel j at displacement ``u − L//2`` (row, column) *to* channel
i (``conv2d`` is a cross-correlation: ``(K ⋆ h)_i(p) = Σ_j Σ_u K[i, j, u] h_j(p + u − L//2)``).
``orientations`` are the filters' orientations θ in radians as :func:`~torchtopo.analysis.fit_gabor`
returns them (``["orientation"]``): the library's one convention, θ the orientation of the
stripes — the filter's preferred edge — counter-clockwise from horizontal with x to the right
and y *up* (a displacement ``u`` of row offset ``a`` and column offset ``b`` is ``(x, y) = (b, −a)``).
Orientation differences are axial: :math:`\Delta = \min(d, \pi - d) \in [0, \pi/2]`, :math:`d = (\theta_i - \theta_j) \bmod \pi`.

Figures import matplotlib inside the plotting functions only.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence

import torch
from torch import Tensor

from .._checks import check_choice, check_int, check_tensor
from .._mpl import pyplot
from ._stats import pearson

__all__ = [
    "lateral_selectivity",
    "association_field",
    "plot_lateral_selectivity",
    "plot_association_field",
    "plot_unit_association_fields",
]

_MEASURES = ("sum", "positive", "abs")


def _check_lateral(weight, orientations, mask, where: str):
    check_tensor(weight, "weight", where, floating=False)
    if weight.dim() != 4 or weight.shape[0] != weight.shape[1] or weight.shape[2] != weight.shape[3]:
        raise ValueError(
            f"{where}: weight must be a lateral kernel of shape (C, C, L, L), got {tuple(weight.shape)}"
        )
    if weight.shape[2] % 2 == 0:
        raise ValueError(f"{where}: the lateral kernel size L must be odd, got {weight.shape[2]}")
    c = weight.shape[0]
    if not isinstance(orientations, Tensor):
        orientations = torch.as_tensor(orientations)
    if orientations.shape != (c,):
        raise ValueError(
            f"{where}: orientations must have shape ({c},) (one per channel of weight), got {tuple(orientations.shape)}"
        )
    if mask is None:
        mask = torch.ones(c, dtype=torch.bool, device=weight.device)
    else:
        mask = torch.as_tensor(mask, device=weight.device)
        if mask.dtype != torch.bool or mask.shape != (c,):
            raise ValueError(
                f"{where}: mask must be a bool tensor of shape ({c},), got dtype {mask.dtype}, shape {tuple(mask.shape)}"
            )
    if int(mask.sum()) < 2:
        raise ValueError(f"{where}: need at least 2 channels in mask, got {int(mask.sum())}")
    return weight.detach().to(torch.float64), orientations.detach().to(weight.device, torch.float64), mask


def _axial_diff(a: Tensor, b: Tensor) -> Tensor:
    d = torch.remainder(a - b, math.pi)
    return torch.minimum(d, math.pi - d)


def lateral_selectivity(
    weight: Tensor,
    orientations: Tensor,
    *,
    mask: Optional[Tensor] = None,
    measure: str = "sum",
    bins: int = 6,
    exclude_self: bool = True,
    n_permutations: int = 1000,
    seed: int = 0,
) -> Dict[str, Tensor]:
    r"""Lateral connection strength against the orientation difference of the filters it connects.

    For every ordered pair of distinct channels (i, j) kept by ``mask``:

    .. math::

        s_{ij} = \sum_u m(K_{iju}), \quad m \in \{x, \max(x, 0), |x|\}, \qquad
        \Delta_{ij} = \angle(\theta_i, \theta_j) \in [0, \pi/2],

    then the mean strength per Δ bin (the selectivity curve), the Pearson correlation
    :math:`r(\Delta, s)` (negative: similarly tuned filters are connected more strongly, the
    study's finding), and a one-sided permutation p-value for it (orientations shuffled across
    the kept channels: :math:`p = (1 + \#\{r_\pi \le r\}) / (1 + P)`).  The self-connections
    :math:`K_{ii}` have Δ = 0 by construction and are excluded by default.

    Args:
        weight: K, (C, C, L, L).
        orientations: (C,) θ in radians, the stripes' (preferred edge's) orientation (e.g.
            ``fit_gabor(...)["orientation"]``); only differences matter here.
        mask: (C,) bool, the channels to use (e.g. those with a Gabor fit R² > 0.8).
        measure: ``"sum"`` (net), ``"positive"`` (excitatory part) or ``"abs"``.
        bins: number of equal Δ bins over [0°, 90°].
        exclude_self: drop i = j.
        n_permutations: P (0: no p-value).
        seed: of the permutations.

    Returns:
        dict: ``bin_centers`` (bins,) in degrees, ``mean`` / ``sem`` / ``count`` (bins,) per bin
        (NaN mean for an empty bin), ``delta`` (n_pairs,) degrees and ``strength`` (n_pairs,) per
        pair, ``r``, ``p_value`` (NaN when P = 0), and ``iso_minus_orth``: mean strength at
        Δ < 22.5° minus at Δ > 67.5°.
    """
    where = "lateral_selectivity"
    w, th, mask = _check_lateral(weight, orientations, mask, where)
    check_choice(measure, _MEASURES, "measure", where)
    check_int(bins, "bins", where, minimum=1)
    check_int(n_permutations, "n_permutations", where, minimum=0)
    if measure == "positive":
        w = w.clamp_min(0.0)
    elif measure == "abs":
        w = w.abs()
    s_full = w.sum((2, 3))  # (C, C)
    idx = torch.nonzero(mask).flatten()
    s = s_full[idx][:, idx]
    t = th[idx]
    n = idx.numel()
    pair = torch.ones(n, n, dtype=torch.bool, device=w.device)
    if exclude_self:
        pair &= ~torch.eye(n, dtype=torch.bool, device=w.device)
    delta = _axial_diff(t[:, None], t[None, :])[pair]
    strength = s[pair]
    edges = torch.linspace(0.0, math.pi / 2, bins + 1, dtype=torch.float64, device=w.device)
    b = torch.bucketize(delta, edges[1:-1], right=False)
    count = torch.bincount(b, minlength=bins).to(torch.float64)
    total = torch.zeros(bins, dtype=torch.float64, device=w.device).index_add_(0, b, strength)
    total2 = torch.zeros(bins, dtype=torch.float64, device=w.device).index_add_(0, b, strength**2)
    mean = total / count
    var = (total2 / count - mean**2).clamp_min(0.0) * count / (count - 1).clamp_min(1.0)
    sem = torch.sqrt(var / count)
    r = pearson(delta, strength)
    if n_permutations > 0:
        gen = torch.Generator().manual_seed(seed)
        perms = torch.argsort(torch.rand(n_permutations, n, generator=gen), dim=1).to(w.device)
        tp = t[perms]  # (P, n)
        dp = _axial_diff(tp[:, :, None], tp[:, None, :])[:, pair]  # (P, n_pairs)
        rp = pearson(dp, strength[None, :])
        p_value = (1.0 + (rp <= r).sum()) / (1.0 + n_permutations)
    else:
        p_value = torch.tensor(float("nan"), dtype=torch.float64)
    iso = strength[delta < math.pi / 8]
    orth = strength[delta > 3 * math.pi / 8]
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=w.device)
    iso_m = iso.mean() if iso.numel() else nan
    orth_m = orth.mean() if orth.numel() else nan
    return {
        "bin_centers": torch.rad2deg((edges[1:] + edges[:-1]) / 2),
        "mean": mean,
        "sem": sem,
        "count": count,
        "delta": torch.rad2deg(delta),
        "strength": strength,
        "r": r,
        "p_value": p_value,
        "iso_minus_orth": iso_m - orth_m,
    }


def association_field(
    weight: Tensor,
    orientations: Tensor,
    *,
    mask: Optional[Tensor] = None,
    exclude_self: bool = True,
    iso_tolerance: float = math.pi / 6,
) -> Dict[str, Tensor]:
    r"""The association field induced by K, in each target filter's own frame, pooled.

    For every target i, source j (both kept by ``mask``) and displacement
    :math:`d = (d_x, d_y) = u - L//2` of the source, with :math:`w = \max(K_{iju}, 0)` (the
    excitatory part; :math:`d_y` pointing up), rotate d into i's frame, whose x-axis is i's
    preferred edge, the stripes' orientation :math:`\theta_i`:

    .. math::

        x_r = d_x\cos\theta_i + d_y\sin\theta_i, \quad y_r = -d_x\sin\theta_i + d_y\cos\theta_i,
        \qquad \delta = \theta_j - \theta_i \ \text{(axial, in } (-\pi/2, \pi/2]).

    Pooled over i and j on the integer grid of (x_r, y_r) (nearest cell): the excitatory
    ``strength`` and the strength-weighted axial mean of δ (``orientation``: the edge orientation
    of the sources at that place, relative to the target's; 0 = parallel).

    Two summary indices (both in [−1, 1], 0 for unstructured K):

    - ``coaxial_index`` = (S_axial − S_flank)/(S_axial + S_flank), S the excitatory strength of
      iso-oriented sources (:math:`|\delta|` < ``iso_tolerance``) lying within 30° of the target's edge axis
      (co-axial, collinear) or more than 60° away from it (flanking, side by side) — the two
      sectors cover equal angles; positive = co-axial facilitation, the association-field shape.
    - ``cocircularity`` = Σ w cos(2(δ − 2α)) / Σ w, α the direction of (x_r, y_r): the co-circular
      relative orientation of an SE(2) association field (Citti & Sarti) is δ = 2α.

    Args:
        weight: K, (C, C, L, L).
        orientations: (C,) θ in radians (stripe orientations, as :func:`fit_gabor` returns).
        mask: (C,) bool, channels to use.
        exclude_self: drop i = j.
        iso_tolerance: bound on :math:`|\delta|` of "iso-oriented" in ``coaxial_index``.

    Returns:
        dict: ``strength`` (L', L') and ``orientation`` (L', L') radians on the rotated grid
        (row index ``y_r + L'//2`` with y_r up, column index ``x_r + L'//2``,
        L' = 2⌈(L//2)√2⌉ + 1), ``coaxial_index``,
        ``cocircularity``; and per connection (flattened): ``x``, ``y``, ``delta``, ``weight``.
    """
    where = "association_field"
    w, th, mask = _check_lateral(weight, orientations, mask, where)
    idx = torch.nonzero(mask).flatten()
    k = w[idx][:, idx].clamp_min(0.0)  # (n, n, L, L) excitatory
    t = th[idx]
    n, L = k.shape[0], k.shape[-1]
    c = L // 2
    dev = w.device
    off = torch.arange(L, dtype=torch.float64, device=dev) - c
    rows, dx = torch.meshgrid(off, off, indexing="ij")
    dy = -rows  # y up
    phi = t[:, None, None, None]
    xr = (dx * torch.cos(phi) + dy * torch.sin(phi)).expand(n, n, L, L)
    yr = (-dx * torch.sin(phi) + dy * torch.cos(phi)).expand(n, n, L, L)
    d = torch.remainder(t[None, :] - t[:, None] + math.pi / 2, math.pi) - math.pi / 2  # (n, n)
    delta = d[:, :, None, None].expand(n, n, L, L)
    keep = torch.ones(n, n, L, L, dtype=torch.bool, device=dev)
    if exclude_self:
        keep &= ~torch.eye(n, dtype=torch.bool, device=dev)[:, :, None, None]
    keep &= (dx**2 + dy**2 > 0)[None, None]  # the centre has no direction
    xr, yr, delta, wk = xr[keep], yr[keep], delta[keep], k[keep]
    # pooled field on the rotated integer grid
    r = int(math.ceil(c * math.sqrt(2.0)))
    size = 2 * r + 1
    ix = (torch.round(xr).long() + r).clamp(0, size - 1)
    iy = (torch.round(yr).long() + r).clamp(0, size - 1)
    cell = iy * size + ix
    zeros = torch.zeros(size * size, dtype=torch.float64, device=dev)
    strength = zeros.clone().index_add_(0, cell, wk)
    c2 = zeros.clone().index_add_(0, cell, wk * torch.cos(2 * delta))
    s2 = zeros.clone().index_add_(0, cell, wk * torch.sin(2 * delta))
    orient = 0.5 * torch.atan2(s2, c2)
    alpha = torch.atan2(yr, xr)
    axis_angle = torch.minimum(torch.remainder(alpha, math.pi), math.pi - torch.remainder(alpha, math.pi))
    iso = delta.abs() < iso_tolerance
    s_ax = (wk * (iso & (axis_angle < math.pi / 6))).sum()
    s_fl = (wk * (iso & (axis_angle > math.pi / 3))).sum()
    tot = s_ax + s_fl
    coax = torch.where(tot > 0, (s_ax - s_fl) / tot.clamp_min(1e-300), torch.zeros_like(tot))
    wsum = wk.sum()
    cocirc = torch.where(
        wsum > 0, (wk * torch.cos(2 * (delta - 2 * alpha))).sum() / wsum.clamp_min(1e-300), torch.zeros_like(wsum)
    )
    return {
        "strength": strength.reshape(size, size),
        "orientation": orient.reshape(size, size),
        "coaxial_index": coax,
        "cocircularity": cocirc,
        "x": xr,
        "y": yr,
        "delta": delta,
        "weight": wk,
    }


def plot_lateral_selectivity(result: Dict[str, Tensor], ax=None, *, label: Optional[str] = None):
    """Plot :func:`lateral_selectivity`'s curve: mean strength ± SEM against Δ (degrees).

    Returns:
        the matplotlib Figure.
    """
    if ax is None:
        fig, ax = pyplot().subplots(figsize=(4.5, 3.5))
    else:
        fig = ax.figure
    x = result["bin_centers"].cpu().numpy()
    m = result["mean"].cpu().numpy()
    e = result["sem"].cpu().numpy()
    ax.errorbar(x, m, yerr=e, marker="o", capsize=3, label=label)
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel("orientation difference Δθ (degrees)")
    ax.set_ylabel("lateral strength Σ K")
    r, p = float(result["r"]), float(result["p_value"])
    ax.set_title(f"lateral selectivity: r = {r:.2f}, p = {p:.3g}", fontsize=9)
    if label is not None:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _bars(ax, xs, ys, angles, lengths, colors, lw):
    import numpy as np

    xs, ys, angles, lengths = map(np.asarray, (xs, ys, angles, lengths))
    ux, uy = np.cos(angles) * lengths / 2, np.sin(angles) * lengths / 2
    for x, y, a, b, col, w in zip(xs, ys, ux, uy, colors, lw):
        ax.plot([x - a, x + a], [y - b, y + b], color=col, lw=w, solid_capstyle="round")


def plot_association_field(field: Dict[str, Tensor], ax=None, *, threshold: float = 0.05):
    """Plot :func:`association_field`'s pooled field (y up): at each place around the target (whose
    edge is the red horizontal bar at the centre), a bar at the sources' mean relative edge orientation,
    its length and darkness ∝ excitatory strength (cells below ``threshold`` × max omitted).

    Returns:
        the matplotlib Figure.
    """
    if ax is None:
        fig, ax = pyplot().subplots(figsize=(4.2, 4.2))
    else:
        fig = ax.figure
    s = field["strength"].cpu()
    o = field["orientation"].cpu()
    size = s.shape[0]
    r = size // 2
    smax = float(s.max())
    xs, ys, angs, lens, cols, lws = [], [], [], [], [], []
    if smax > 0:
        for iy in range(size):  # plotting only: a loop over the (small) figure cells
            for ix in range(size):
                v = float(s[iy, ix]) / smax
                if v < threshold or (ix == r and iy == r):
                    continue
                xs.append(ix - r)
                ys.append(iy - r)
                angs.append(float(o[iy, ix]))
                lens.append(0.3 + 0.6 * v)
                cols.append(str(round(0.85 * (1 - v), 3)))
                lws.append(1.0 + 2.0 * v)
    _bars(ax, xs, ys, angs, lens, cols, lws)
    _bars(ax, [0], [0], [0.0], [0.9], ["tab:red"], [3.0])
    ax.set_xlim(-r - 1, r + 1)
    ax.set_ylim(-r - 1, r + 1)  # y up
    ax.set_aspect("equal")
    ax.set_xlabel("along the target's edge (px)")
    ax.set_ylabel("across (px)")
    ax.set_title(
        f"association field: co-axial {float(field['coaxial_index']):+.2f}, "
        f"co-circ. {float(field['cocircularity']):+.2f}",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def plot_unit_association_fields(
    weight: Tensor, orientations: Tensor, units: Sequence[int], *, mask: Optional[Tensor] = None, ncols: int = 4
):
    """Per-target association fields in image coordinates (x right, y up, as the image is seen):
    for target unit i (red bar, its edge orientation θ_i, at the centre), at every displacement
    the edge of the source channel j
    with the strongest excitatory K[i, j, u], length and darkness ∝ that weight.

    Returns:
        the matplotlib Figure.
    """
    plt = pyplot()

    w, th, mask = _check_lateral(weight, orientations, mask, "plot_unit_association_fields")
    w = w.clamp_min(0.0).cpu()
    th = th.cpu()
    units = list(units)
    if not units:
        raise ValueError("plot_unit_association_fields: units must name at least one channel, got []")
    L = w.shape[-1]
    c = L // 2
    ncols = max(1, min(ncols, len(units)))
    nrows = (len(units) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.4 * ncols, 2.4 * nrows), squeeze=False)
    allowed = mask.cpu().clone()
    for a, i in zip(axes.flat, units):
        ki = w[i] * allowed[:, None, None]
        if i < ki.shape[0]:
            ki[i] = 0.0
        best, j = ki.max(0)  # (L, L)
        vmax = float(best.max())
        xs, ys, angs, lens, cols, lws = [], [], [], [], [], []
        if vmax > 0:
            v = best / vmax
            sel = torch.nonzero(v >= 0.05)
            for iy, ix in sel.tolist():
                if iy == c and ix == c:
                    continue
                vv = float(v[iy, ix])
                xs.append(ix - c)
                ys.append(c - iy)  # y up
                angs.append(float(th[j[iy, ix]]))
                lens.append(0.3 + 0.6 * vv)
                cols.append(str(round(0.85 * (1 - vv), 3)))
                lws.append(1.0 + 2.0 * vv)
        _bars(a, xs, ys, angs, lens, cols, lws)
        _bars(a, [0], [0], [float(th[i])], [0.9], ["tab:red"], [3.0])
        a.set_xlim(-c - 1, c + 1)
        a.set_ylim(-c - 1, c + 1)
        a.set_aspect("equal")
        a.set_xticks([])
        a.set_yticks([])
        a.set_title(f"unit {i}", fontsize=8)
    for a in list(axes.flat)[len(units):]:
        a.axis("off")
    fig.tight_layout()
    return fig
