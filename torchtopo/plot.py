"""Figures for the studies' evaluations (matplotlib, imported lazily: ``import torchtopo`` does
not import matplotlib; the first plotting call does, and fails with a clear message if it is
missing).

Every function returns a :class:`matplotlib.figure.Figure` (or draws into ``ax`` when one is
given and returns its figure) and accepts CPU or GPU tensors.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from ._mpl import pyplot
from ._mpl import save as _save
from .grid import Grid, GridLike, as_grid
from .robustness import NOISE_CORRUPTIONS, corrupt

__all__ = [
    "grid_maps",
    "correlation_vs_distance",
    "correlation_histogram",
    "accuracy_vs_severity",
    "expert_map",
    "metric_vs_strength",
    "corruption_gallery",
    "save",
]


def save(fig: Any, path: Union[str, Path], *, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (parent folders created, tight bounding box), close it, and
    return the path.  The format follows the suffix (``.png``, ``.pdf``, ``.svg``)."""
    return _save(fig, path, dpi=dpi)


def _axes(ax, figsize):
    """``(fig, ax)``: a new figure when ``ax`` is None, else ``(None, ax)``."""
    if ax is not None:
        return None, ax
    return pyplot().subplots(figsize=figsize)


def _finish(fig, ax, title: Optional[str]):
    """Title and legend; lay out only a figure made here (a caller's figure is left alone)."""
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    if fig is None:
        return ax.figure
    fig.tight_layout()
    return fig


def _np(t: Any):
    if isinstance(t, Tensor):
        return t.detach().float().cpu().numpy()
    return t


def grid_maps(
    maps: Tensor,
    grid: Optional[GridLike] = None,
    *,
    titles: Optional[Sequence[str]] = None,
    ncols: int = 10,
    cmap: str = "viridis",
    shared_scale: bool = False,
    suptitle: Optional[str] = None,
    panel_size: float = 1.2,
):
    """Draw K maps of a grid of units (e.g. the mean fc1 map per class or per stimulus).

    Args:
        maps: (K, N) or (K, H, W) (a single (N,) map is K = 1).
        grid: the units' grid (default: ``Grid(H, W)`` or ``Grid.for_units(N)``).
        titles: one per map.
        ncols: panels per row.
        shared_scale: one colour range for all maps (else each map is scaled on its own).

    Returns:
        the Figure.
    """
    if not isinstance(maps, Tensor):
        raise TypeError(f"grid_maps: maps must be a tensor, got {type(maps).__name__}")
    m = maps.detach().float().cpu()
    if m.dim() == 1:
        m = m[None]
    if m.dim() == 2:
        g = Grid.for_units(m.shape[1]) if grid is None else as_grid(grid)
        if g.n_units != m.shape[1]:
            raise ValueError(f"grid_maps: maps have {m.shape[1]} units but the grid has {g.n_units}")
        m = m.reshape(-1, g.height, g.width)
    elif m.dim() != 3:
        raise ValueError(f"grid_maps: maps must be (K, N) or (K, H, W), got shape {tuple(maps.shape)}")
    if titles is not None and len(titles) != m.shape[0]:
        raise ValueError(f"grid_maps: {m.shape[0]} maps but {len(titles)} titles")
    plt = pyplot()
    K = m.shape[0]
    nc = max(1, min(ncols, K))
    nr = math.ceil(K / nc)
    fig, axes = plt.subplots(nr, nc, figsize=(panel_size * nc, panel_size * nr + (0.4 if suptitle else 0)), squeeze=False)
    vmin, vmax = (float(m.min()), float(m.max())) if shared_scale else (None, None)
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= K:
            ax.axis("off")
            continue
        ax.imshow(m[k].numpy(), cmap=cmap, vmin=vmin, vmax=vmax)
        if titles is not None:
            ax.set_title(str(titles[k]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    return fig


def correlation_vs_distance(curves: Mapping[str, Mapping[str, Tensor]], *, ax=None, title: Optional[str] = None):
    """Mean (± SD band) response correlation against sheet distance, one line per model.

    Args:
        curves: ``{label: result}``, each result from
            :func:`torchtopo.analysis.correlation_vs_distance`.
    """
    fig, ax = _axes(ax, (4.5, 3.2))
    for label, c in curves.items():
        d, mu, sd = _np(c["distance"]), _np(c["mean"]), _np(c["std"])
        ax.plot(d, mu, marker=".", label=str(label))
        ax.fill_between(d, mu - sd, mu + sd, alpha=0.15)
    ax.set_xlabel("distance on the grid (units)")
    ax.set_ylabel("response correlation r")
    ax.axhline(0, color="k", lw=0.5)
    return _finish(fig, ax, title)


def correlation_histogram(values: Mapping[str, Tensor], *, bins: int = 40, ax=None, title: Optional[str] = None):
    """Histograms (densities) of pairwise unit correlations, one per model (``{label: r}``)."""
    fig, ax = _axes(ax, (4.5, 3.2))
    for label, r in values.items():
        ax.hist(_np(r).ravel(), bins=bins, range=(-1, 1), density=True, histtype="step", lw=1.5, label=str(label))
    ax.set_xlabel("pairwise response correlation r")
    ax.set_ylabel("density")
    return _finish(fig, ax, title)


def accuracy_vs_severity(
    series: Mapping[str, Tuple[Sequence[float], Sequence[float], Optional[Sequence[float]]]],
    *,
    ax=None,
    xlabel: str = "severity",
    ylabel: str = "accuracy change (pp)",
    title: Optional[str] = None,
):
    """Accuracy (or its change) against corruption severity or weight-noise σ.

    Args:
        series: ``{label: (x, y)}`` or ``{label: (x, y, yerr)}``.
    """
    fig, ax = _axes(ax, (4.5, 3.2))
    for label, s in series.items():
        x, y = list(s[0]), list(s[1])
        yerr = list(s[2]) if len(s) > 2 and s[2] is not None else None
        ax.errorbar(x, y, yerr=yerr, marker="o", ms=3, capsize=2, label=str(label))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return _finish(fig, ax, title)


def metric_vs_strength(
    series: Mapping[str, Tuple[Sequence[float], Sequence[float], Optional[Sequence[float]]]],
    *,
    ax=None,
    ylabel: str = "",
    control: Optional[Tuple[float, float]] = None,
    title: Optional[str] = None,
):
    """A metric against the regularization strength λ (log x-axis), one line per method, with
    the control's mean ± SD as a horizontal band."""
    fig, ax = _axes(ax, (4.2, 3.0))
    for label, s in series.items():
        yerr = list(s[2]) if len(s) > 2 and s[2] is not None else None
        ax.errorbar(list(s[0]), list(s[1]), yerr=yerr, marker="o", ms=3, capsize=2, label=str(label))
    if control is not None:
        m, sd = control
        ax.axhline(m, color="k", lw=1, label="control")
        if sd and sd == sd:
            ax.axhspan(m - sd, m + sd, color="k", alpha=0.1)
    ax.set_xscale("log")
    xs = sorted({float(v) for s in series.values() for v in s[0] if float(v) > 0})
    if xs:  # label the λ values themselves, without the log axis' crowded minor labels
        from matplotlib.ticker import NullFormatter

        ax.set_xticks(xs)
        ax.set_xticklabels([f"{v:g}" for v in xs])
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("λ")
    ax.set_ylabel(ylabel)
    return _finish(fig, ax, title)


def expert_map(
    dprime: Tensor,
    grid: Optional[GridLike] = None,
    *,
    threshold: Optional[float] = 1.0,
    class_names: Optional[Sequence[str]] = None,
    ncols: int = 10,
):
    """d′ map of every class on the grid, with the expert units (d′ > threshold) outlined.

    Args:
        dprime: (C, N) from :func:`torchtopo.analysis.selectivity`.
    """
    if not isinstance(dprime, Tensor) or dprime.dim() != 2:
        raise ValueError(f"expert_map: dprime must be a (classes, units) tensor, got {getattr(dprime, 'shape', dprime)!r}")
    d = dprime.detach().float().cpu()
    g = Grid.for_units(d.shape[1]) if grid is None else as_grid(grid)
    if g.n_units != d.shape[1]:
        raise ValueError(f"expert_map: dprime has {d.shape[1]} units but the grid has {g.n_units}")
    plt = pyplot()
    C = d.shape[0]
    nc = max(1, min(ncols, C))
    nr = math.ceil(C / nc)
    fig, axes = plt.subplots(nr, nc, figsize=(1.3 * nc, 1.4 * nr), squeeze=False)
    lim = float(d.abs().max()) or 1.0
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= C:
            ax.axis("off")
            continue
        m = d[k].reshape(g.height, g.width)
        ax.imshow(m.numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
        if threshold is not None:
            mask = (m > threshold).float().numpy()
            if mask.any():
                ax.contour(mask, levels=[0.5], colors="k", linewidths=0.8)
        ax.set_title(str(class_names[k]) if class_names else str(k), fontsize=8)
    fig.suptitle(f"d′ per class (experts: d′ > {threshold})" if threshold is not None else "d′ per class", fontsize=9)
    fig.tight_layout()
    return fig


def corruption_gallery(
    x: Tensor,
    kinds: Sequence[str],
    severities: Sequence[Union[int, float]] = (1, 3, 5),
    *,
    noise_severities: Sequence[float] = (0.05, 0.1, 0.2),
    seed: int = 0,
):
    """One image under each corruption kind (rows) and severity (columns).

    ``severities`` are used for the common corruptions; the noise kinds ("white", "pink",
    "salt_and_pepper") use ``noise_severities`` (same length).
    """
    if len(noise_severities) != len(severities):
        raise ValueError("corruption_gallery: noise_severities must have as many entries as severities")

    if not isinstance(x, Tensor) or x.dim() != 3:
        raise ValueError(f"corruption_gallery: x must be one (C, H, W) image, got {getattr(x, 'shape', x)!r}")
    plt = pyplot()
    fig, axes = plt.subplots(len(kinds), len(severities) + 1, figsize=(1.2 * (len(severities) + 1), 1.2 * len(kinds)), squeeze=False)
    for r, kind in enumerate(kinds):
        sevs = noise_severities if kind in NOISE_CORRUPTIONS else severities
        imgs = [x] + [corrupt(x[None], kind, s, generator=torch.Generator().manual_seed(seed))[0] for s in sevs]
        for c, im in enumerate(imgs):
            ax = axes[r][c]
            a = im.detach().cpu().permute(1, 2, 0).numpy()
            ax.imshow(a[..., 0] if a.shape[-1] == 1 else a, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("clean" if c == 0 else f"sev {c}", fontsize=7)
            if c == 0:
                ax.set_ylabel(kind, fontsize=6)
    fig.tight_layout()
    return fig
