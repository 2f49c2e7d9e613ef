"""Analyses of a :class:`~torchtopo.v1.V1Front` (Barbulescu, Marques & Oliveira, arXiv:2310.10575).

* :func:`conformance_report` — do the sampled receptive fields match the primate tables?
  (chi-square and Kolmogorov–Smirnov per parameter, the nx–SF copula correlation), and
  :func:`plot_conformance` its figure;
* :func:`plot_filters` — a grid of the bank's Gabor kernels;
* :func:`grating_tuning` — orientation and spatial-frequency tuning of the front's units, driven by
  full-field drifting-phase sinusoidal gratings (:func:`torchtopo.analysis.grating`, the same θ
  convention as the front);
* :func:`subpopulations`, :func:`silence`, :func:`ablation_study`,
  :func:`downstream_weight_share` — silence sub-populations of front channels selected by a
  predicate on ``front.params`` and measure the effect downstream.

matplotlib is imported only by the plotting functions.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from . import distributions as D
from .._checks import check_choice, check_int
from .._mpl import pyplot
from ..analysis.probes import grating
from ..functional.gabor import gabor_kernels
from .front import V1Front

__all__ = [
    "conformance_report",
    "plot_conformance",
    "plot_filters",
    "grating_tuning",
    "subpopulations",
    "silence",
    "ablation_study",
    "downstream_weight_share",
    "chi2_sf",
    "ks_sf",
]

Mask = Union[Tensor, Callable[[Dict[str, Tensor]], Tensor]]


def chi2_sf(chi2: float, dof: int) -> float:
    """Survival function of the chi-square distribution, ``Q(dof/2, chi2/2)`` (regularised upper
    incomplete gamma)."""
    if dof <= 0:
        return float("nan")
    return float(torch.special.gammaincc(torch.tensor(dof / 2.0, dtype=torch.float64),
                                         torch.tensor(chi2 / 2.0, dtype=torch.float64)))


def ks_sf(d: float, n: int) -> float:
    """Asymptotic p-value of the one-sample KS statistic ``D`` at sample size ``n``:
    ``Q(λ) = 2 Σ_{k≥1} (−1)^{k−1} exp(−2 k² λ²)`` with ``λ = (√n + 0.12 + 0.11/√n) D``
    (Stephens' correction)."""
    if n <= 0:
        return float("nan")
    sn = math.sqrt(n)
    lam = (sn + 0.12 + 0.11 / sn) * d
    if lam < 1e-3:
        return 1.0
    q = 2.0 * sum((-1) ** (k - 1) * math.exp(-2.0 * k * k * lam * lam) for k in range(1, 101))
    return float(min(max(q, 0.0), 1.0))


def _tests(values: Tensor, dist: "D.BinnedDistribution") -> Dict[str, float]:
    v = values.double().cpu()
    n = v.numel()
    edges = torch.tensor(dist.edges, dtype=torch.float64)
    idx = (torch.searchsorted(edges, v.contiguous(), right=True) - 1).clamp(0, len(dist.counts) - 1)
    obs = torch.bincount(idx, minlength=len(dist.counts)).double()
    p = dist.probs
    keep = p > 0
    exp = n * p[keep]
    chi2 = float(((obs[keep] - exp) ** 2 / exp).sum())
    # mass outside the supported bins counts as a failure of conformance
    chi2 += float(obs[~keep].sum()) * n if bool((~keep).any()) else 0.0
    dof = int(keep.sum()) - 1
    vs = torch.sort(v).values
    cdf = dist.cdf(vs)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    ks = float(torch.maximum(i / n - cdf, cdf - (i - 1) / n).max()) if n else float("nan")
    return {"n": n, "chi2": chi2, "dof": dof, "p_chi2": chi2_sf(chi2, dof), "ks": ks, "p_ks": ks_sf(ks, n),
            "observed": obs.tolist(), "expected": (n * p).tolist()}


def conformance_report(front: Union[V1Front, Mapping[str, Tensor]], *, sf_min: Optional[float] = None,
                       sf_max: Optional[float] = None, sf_table: Optional[str] = None) -> Dict[str, Dict[str, float]]:
    """Compare a front's sampled parameters with the primate tables (Barbulescu et al., arXiv:2310.10575).

    For each parameter the observed histogram on the table's bins is tested against the table's
    bin probabilities with Pearson's chi-square (``Σ (O − E)²/E``, ``dof = bins − 1``) and the
    samples against the table's piecewise (log-)uniform CDF with the one-sample
    Kolmogorov–Smirnov statistic ``D = sup |F_n − F|``.  Parameters: ``theta_deg`` (values in
    [157.5, 180) are folded to negative angles, as the table's first bin straddles 0),
    ``phase_deg`` (uniform on [0, 360)), ``nx``, ``ny`` (the marginals of Ringach's joint table),
    ``sf_cpd`` (per cell type with the ``"by_cell_type"`` tables: ``sf_cpd_simple``,
    ``sf_cpd_complex``).  ``copula`` holds the Pearson correlation of log nx and log sf
    (≈ 0.74 for biological sampling with ρ = 0.75).  A uniform front is tested against the same
    biological tables — the point of the control is that it does not match them.

    Small banks give bins with few expected counts, where the chi-square approximation is rough;
    the KS test has no such limit.

    Args:
        front: a :class:`V1Front`, or a ``params`` dict (then give ``sf_min``, ``sf_max``,
            ``sf_table``; defaults 0, no cut, ``"by_cell_type"``).

    Returns:
        ``{parameter: {"n", "chi2", "dof", "p_chi2", "ks", "p_ks", "observed", "expected"}}`` and
        ``"copula": {"r_log_nx_log_sf", "expected"}``, plus ``"truncated_fraction"`` for a front.
    """
    if isinstance(front, V1Front):
        params = front.params
        sf_min = front.sf_min if sf_min is None else sf_min
        sf_max = front.sf_max if sf_max is None else sf_max
        sf_table = front.sf_table if sf_table is None else sf_table
    elif isinstance(front, Mapping):
        params = front
        missing = [k for k in ("sf_cpd", "theta_deg", "phase_deg", "nx", "ny", "is_complex") if k not in params]
        if missing:
            raise ValueError(f"conformance_report: params is missing {missing}")
        sf_min = 0.0 if sf_min is None else sf_min
        sf_table = "by_cell_type" if sf_table is None else sf_table
    else:
        raise TypeError(f"conformance_report: expected a V1Front or a params dict, got {type(front).__name__}")
    check_choice(sf_table, D.SF_TABLES, "sf_table", "conformance_report")
    th = params["theta_deg"].double().cpu()
    th = torch.where(th >= D.ORIENTATION_EDGES[-1], th - 180.0, th)
    out: Dict[str, Dict[str, float]] = {
        "theta_deg": _tests(th, D.orientation_distribution()),
        "phase_deg": _tests(params["phase_deg"], D.BinnedDistribution([0, 90, 180, 270, 360], [1, 1, 1, 1])),
        "nx": _tests(params["nx"], D.nx_distribution()),
        "ny": _tests(params["ny"], D.ny_distribution()),
    }
    sf = params["sf_cpd"].double().cpu()
    cx = params["is_complex"].cpu().bool()
    if sf_table == "all":
        out["sf_cpd"] = _tests(sf, D.sf_distribution("all", sf_min, sf_max))
    else:
        for name, sel in (("simple", ~cx), ("complex", cx)):
            if bool(sel.any()):
                out["sf_cpd_" + name] = _tests(sf[sel], D.sf_distribution(name, sf_min, sf_max))
    lnx, lsf = params["nx"].double().cpu().log(), sf.log()
    r = float(torch.corrcoef(torch.stack([lnx, lsf]))[0, 1]) if lnx.numel() > 2 else float("nan")
    out["copula"] = {"r_log_nx_log_sf": r, "expected": 0.74}
    if isinstance(front, V1Front):
        out["truncated_fraction"] = {"value": front.truncated_fraction}
    return out


def plot_conformance(front: V1Front, path: Optional[str] = None, *, report: Optional[dict] = None):
    """Figure of :func:`conformance_report`: per parameter, the sampled histogram (bars) against
    the table's expected counts (dots), titled with the chi-square and KS p-values, and a scatter
    of log nx vs log sf.  Saved to ``path`` if given; returns the matplotlib figure."""
    plt = pyplot()
    rep = conformance_report(front) if report is None else report
    keys = [k for k in rep if isinstance(rep[k], dict) and "observed" in rep[k]]
    fig, axes = plt.subplots(1, len(keys) + 1, figsize=(3.0 * (len(keys) + 1), 2.8))
    for ax, k in zip(axes, keys):
        o, e = rep[k]["observed"], rep[k]["expected"]
        ax.bar(range(len(o)), o, color="0.7", label="sampled")
        ax.plot(range(len(e)), e, "o", color="C3", label="table")
        ax.set_title(f"{k}\nchi2 p={rep[k]['p_chi2']:.2g}, KS p={rep[k]['p_ks']:.2g}", fontsize=8)
        ax.set_xlabel("bin")
    axes[0].legend(fontsize=7)
    p = front.params
    ax = axes[-1]
    ax.scatter(p["nx"].cpu().log10(), p["sf_cpd"].cpu().log2(), s=3, c=p["is_complex"].cpu().float(), cmap="coolwarm")
    ax.set_xlabel("log10 nx")
    ax.set_ylabel("log2 sf (c/deg)")
    ax.set_title(f"r(log nx, log sf)={rep['copula']['r_log_nx_log_sf']:.2f}", fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def _kernels(front: V1Front, idx: Tensor, size: Optional[int] = None) -> Tensor:
    p = front.params
    k = int(front.kernel_sizes[idx].max()) if size is None else int(size)
    f = p["sf_cpd"][idx].double().cpu() / front.ppd
    return gabor_kernels(f, p["theta_deg"][idx].double().cpu(), p["phase_deg"][idx].double().cpu(),
                         p["nx"][idx].double().cpu(), p["ny"][idx].double().cpu(), k)


def plot_filters(front: V1Front, n: int = 64, path: Optional[str] = None, *, size: Optional[int] = None):
    """Grid of ``n`` q0 kernels (half simple, half complex cells, spread over the bank), drawn at a
    common size (default the largest of them), each in its own symmetric colour range.  Returns
    the figure (saved to ``path`` if given)."""
    plt = pyplot()
    cx = front.is_complex.cpu()
    s_idx, c_idx = torch.nonzero(~cx).flatten(), torch.nonzero(cx).flatten()
    half = n // 2
    pick = []
    for idx, m in ((s_idx, half), (c_idx, n - half)):
        if idx.numel():
            pick.append(idx[torch.linspace(0, idx.numel() - 1, min(m, idx.numel())).long()])
    idx = torch.cat(pick)
    ker = _kernels(front, idx, size)
    cols = int(math.ceil(math.sqrt(idx.numel())))
    rows = int(math.ceil(idx.numel() / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.1 * cols, 1.1 * rows), squeeze=False)
    for a in axes.flat:
        a.axis("off")
    for a, i, kk in zip(axes.flat, idx.tolist(), ker):
        m = float(kk.abs().max()) or 1.0
        a.imshow(kk.numpy(), cmap="RdBu_r", vmin=-m, vmax=m)
        a.set_title(f"{'C' if bool(cx[i]) else 'S'} {float(front.sf_cpd[i]):.1f}c/d", fontsize=5)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=130)
    return fig


def grating_tuning(front: V1Front, *, orientations: int = 12, sfs_cpd: Optional[Sequence[float]] = None,
                   phases: int = 8, contrast: float = 1.0, batch_size: int = 64) -> Dict[str, Tensor]:
    """Orientation and spatial-frequency tuning of every front unit with sinusoidal gratings.

    The gratings are :func:`torchtopo.analysis.grating`:
    ``0.5 + contrast/2 · cos(2π f (x sin θ − y cos θ) + φ)`` (``x`` right, ``y`` up, in pixels
    from the image centre, ``f = sf / ppd``), θ the orientation of the stripes (0° horizontal,
    counter-clockwise: the convention of the front's ``theta_deg``, so a unit prefers its own θ),
    the same on every input channel, of size ``image_size``, for θ on ``orientations`` steps of
    [0, 180), f in ``sfs_cpd`` (default 10 log-spaced values over the front's range) and φ on
    ``phases`` steps of [0, 360).  The response of unit *i* is its noise-free rate
    (:meth:`V1Front.rates`) at the centre of the output map, averaged over φ.

    Returns:
        dict with ``responses`` (N, S, O), ``orientations_deg`` (O,), ``sfs_cpd`` (S,),
        ``orientation_curves`` (N, O) at each unit's best SF, ``sf_curves`` (N, S) at its best
        orientation, ``preferred_theta_deg`` (N,) and ``preferred_sf_cpd`` (N,).
    """
    if not isinstance(front, V1Front):
        raise TypeError(f"grating_tuning: front must be a V1Front, got {type(front).__name__}")
    check_int(orientations, "orientations", "grating_tuning", minimum=1)
    check_int(phases, "phases", "grating_tuning", minimum=1)
    check_int(batch_size, "batch_size", "grating_tuning", minimum=1)
    dev = front.sf_cpd.device
    if sfs_cpd is None:
        lo = max(front.sf_min, 0.5 * min(D.SF_EDGES[0], float(front.sf_cpd.min())))
        sfs = torch.logspace(math.log10(lo), math.log10(front.sf_max), 10, dtype=torch.float64)
    else:
        sfs = torch.as_tensor(list(sfs_cpd), dtype=torch.float64)
    ori = torch.arange(orientations, dtype=torch.float64) * (180.0 / orientations)
    ph = torch.arange(phases, dtype=torch.float64) * (360.0 / phases)
    n = front.image_size
    S, O, P = sfs.numel(), ori.numel(), ph.numel()
    out = []
    with torch.no_grad():
        for s in range(S):  # one frequency at a time: O·P images
            img = grating(n, ori, sfs[s:s + 1] / front.ppd, ph, contrast=contrast,
                          channels=front.in_channels, device=dev).flatten(0, 2)  # (O·P, C, n, n)
            for start in range(0, img.shape[0], batch_size):
                resp = front.rates(img[start:start + batch_size])
                out.append(resp[:, :, resp.shape[-2] // 2, resp.shape[-1] // 2].double().cpu())
    resp = torch.cat(out).view(S, O, P, -1).mean(2).permute(2, 0, 1)  # (N, S, O)
    flat = resp.reshape(resp.shape[0], -1).argmax(1)
    best_s, best_o = flat // O, flat % O
    ar = torch.arange(resp.shape[0])
    return {
        "responses": resp,
        "orientations_deg": ori,
        "sfs_cpd": sfs,
        "orientation_curves": resp[ar, best_s],
        "sf_curves": resp[ar, :, best_o],
        "preferred_theta_deg": ori[best_o],
        "preferred_sf_cpd": sfs[best_s],
    }


def subpopulations(front_or_params: Union[V1Front, Mapping[str, Tensor]]) -> Dict[str, Tensor]:
    """Boolean masks of standard sub-populations (the splits of Barbulescu et al.'s analyses):
    ``simple``, ``complex``; ``low_sf``/``high_sf`` (the lower / upper half by sf, ranked; the upper half gets the odd
    one);
    ``small_nx``/``large_nx`` and ``small_ny``/``large_ny`` (median splits of the envelope sizes
    in cycles); and the crossings ``high_sf_complex``, ``low_sf_complex``, ``high_sf_simple``,
    ``low_sf_simple``."""
    p = front_or_params.params if isinstance(front_or_params, V1Front) else front_or_params
    cx = p["is_complex"].bool()
    out = {"simple": ~cx, "complex": cx}
    for name, key in (("sf", "sf_cpd"), ("nx", "nx"), ("ny", "ny")):
        v = p[key].double()
        rank = torch.empty_like(v, dtype=torch.long)
        rank[torch.argsort(v, stable=True)] = torch.arange(v.numel(), device=v.device)
        lo_name, hi_name = ("low_sf", "high_sf") if name == "sf" else (f"small_{name}", f"large_{name}")
        out[hi_name] = rank >= v.numel() // 2
        out[lo_name] = ~out[hi_name]
    for sf in ("low_sf", "high_sf"):
        out[f"{sf}_complex"] = out[sf] & cx
        out[f"{sf}_simple"] = out[sf] & ~cx
    return out


def _mask(front: V1Front, mask: Mask) -> Tensor:
    m = mask(front.params) if callable(mask) else mask
    if not isinstance(m, Tensor) or m.dtype != torch.bool or m.shape != (front.out_channels,):
        raise ValueError(f"silence: the mask (or the predicate's result) must be a bool tensor of shape "
                         f"({front.out_channels},), got "
                         f"{tuple(m.shape) if isinstance(m, Tensor) else type(m).__name__}"
                         f"{' of dtype ' + str(m.dtype) if isinstance(m, Tensor) else ''}")
    return m


@contextmanager
def silence(front: V1Front, mask: Mask) -> Iterator[Tensor]:
    """Context manager: the front's output channels selected by ``mask`` (a bool tensor over the
    channels, or a predicate ``mask(front.params) -> bool tensor``, e.g.
    ``lambda p: p["is_complex"] & (p["sf_cpd"] > 4)``) are set to 0 while inside.  Yields the
    mask.  Implemented with a forward hook, removed on exit."""
    m = _mask(front, mask)
    keep = (~m).to(front.sf_cpd.device)

    def hook(module: nn.Module, inputs, output: Tensor) -> Tensor:
        return output * keep.view(1, -1, 1, 1).to(output.dtype)

    handle = front.register_forward_hook(hook)
    try:
        yield m
    finally:
        handle.remove()


def ablation_study(front: V1Front, evaluate: Callable[[], float],
                   populations: Optional[Mapping[str, Mask]] = None) -> Dict[str, Dict[str, float]]:
    """Evaluate a model with each sub-population of its front silenced in turn.

    Args:
        front: the front inside the model.
        evaluate: a callable with no arguments returning a score (e.g. test accuracy of the model
            that contains ``front``).
        populations: ``{name: mask or predicate}``; default :func:`subpopulations`.

    Returns:
        ``{"none": {"score", "size"}, name: {"score", "size", "drop"}}``, ``drop`` being the
        intact score minus the ablated one, and ``size`` the number of silenced channels.
    """
    pops = dict(subpopulations(front) if populations is None else populations)
    base = float(evaluate())
    out = {"none": {"score": base, "size": 0}}
    for name, mask in pops.items():
        with silence(front, mask) as m:
            s = float(evaluate())
        out[name] = {"score": s, "size": int(m.sum()), "drop": base - s}
    return out


def downstream_weight_share(weight: Tensor, masks: Mapping[str, Tensor]) -> Dict[str, float]:
    """Share of the downstream layer's weight magnitude that reads each sub-population:
    ``Σ_{o, i∈S} |W[o, i]| / Σ_{o, i} |W[o, i]|`` for the 1×1 bottleneck (``weight`` of shape
    (out, front.out_channels, 1, 1) or (out, front.out_channels)), divided by the population's
    share of channels ``|S|/N`` (1 = read as much as its size predicts)."""
    w = weight.detach().abs().reshape(weight.shape[0], weight.shape[1], -1).sum((0, 2)).double().cpu()
    tot = w.sum()
    out = {}
    for name, m in masks.items():
        m = m.cpu().bool()
        if m.shape != w.shape:
            raise ValueError(f"downstream_weight_share: mask {name!r} has shape {tuple(m.shape)}, "
                             f"expected {tuple(w.shape)}")
        frac = float(m.double().mean())
        out[name] = float(w[m].sum() / tot) / frac if frac > 0 else float("nan")
    return out
