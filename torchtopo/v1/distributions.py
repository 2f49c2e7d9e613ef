"""Receptive-field distributions of macaque V1 simple and complex cells, as data, and samplers.

Every table below is a published histogram, as collected by Barbulescu, Marques & Oliveira
(arXiv:2310.10575), who take them from VOneNet (Dapello et al. 2020).  The samplers draw Gabor
parameters from them with a local :class:`torch.Generator` only (never the global RNG):

* **biological** — orientation from De Valois, Yund & Hepler (1982); peak spatial frequency from
  De Valois, Albrecht & Thorell (1982); envelope sizes ``nx, ny`` (in cycles) from the joint
  histogram of Ringach (2002); ``nx`` and spatial frequency coupled through a Gaussian copula with
  correlation ρ (Schiller, Finlay & Volman 1976); phase uniform.
* **uniform** (UNIF1, the control) — every parameter independent and (log-)uniform over the same
  ranges.  **unif2** adds the ``nx``–``ny`` correlation and **unif3** also the ``nx``–SF
  correlation (the variants of the follow-up code; how they were coupled there is
  *(unconfirmed)*: here through a Gaussian copula, see :func:`sample_gabor_params`).

Within a histogram bin, values are uniform in the bin's scale (linear for orientation, log2 for
spatial frequency, log10 for envelope sizes), i.e. the CDF is interpolated linearly in that scale.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .._checks import check_choice, check_int

__all__ = [
    "ORIENTATION_EDGES",
    "ORIENTATION_COUNTS",
    "SF_EDGES",
    "SF_COUNTS_ALL",
    "SF_COUNTS_SIMPLE",
    "SF_COUNTS_COMPLEX",
    "NXNY_EDGES",
    "NXNY_COUNTS",
    "SF_CORR",
    "CITATIONS",
    "SAMPLINGS",
    "SF_TABLES",
    "BinnedDistribution",
    "sf_distribution",
    "nx_distribution",
    "ny_distribution",
    "orientation_distribution",
    "nxny_correlation",
    "sample_gabor_params",
]

#: Orientation preference, degrees (De Valois, Yund & Hepler 1982): 4 bins centred on 0°, 45°,
#: 90°, 135°; a sample below 0 is wrapped by +180°.  The angle is the orientation of the
#: preferred grating's stripes, 0° horizontal, counter-clockwise (y up) — the θ of
#: :func:`torchtopo.functional.gabor.gabor_kernels` and of VOneNet's ``gabor_kernel``, so the
#: 66 cells of the first bin are horizontal-preferring and the 77 of the third vertical.
ORIENTATION_EDGES: Tuple[float, ...] = (-22.5, 22.5, 67.5, 112.5, 157.5)
#: Cells per orientation bin (De Valois, Yund & Hepler 1982).
ORIENTATION_COUNTS: Tuple[int, ...] = (66, 49, 77, 54)

#: Peak spatial-frequency bin edges, cycles/degree (De Valois, Albrecht & Thorell 1982).
SF_EDGES: Tuple[float, ...] = (0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0, 5.6, 8.0, 11.2)
#: All cells, 8 bins (0.5 to 8.0 c/deg) — the set VOneNet samples from.
SF_COUNTS_ALL: Tuple[int, ...] = (4, 4, 8, 25, 32, 26, 28, 12)
#: Simple cells, foveal, 9 bins (0.5 to 11.2 c/deg).
SF_COUNTS_SIMPLE: Tuple[int, ...] = (4, 4, 8, 25, 33, 26, 28, 12, 8)
#: Complex cells, foveal, 9 bins (0.5 to 11.2 c/deg).
SF_COUNTS_COMPLEX: Tuple[int, ...] = (0, 0, 9, 9, 7, 10, 23, 12, 14)

#: Envelope-size bin edges in cycles, ``logspace(-1, 0.2, 6)`` (Ringach 2002).
NXNY_EDGES: Tuple[float, ...] = tuple(10.0 ** (-1.0 + 0.24 * i) for i in range(6))
#: Joint histogram of (nx, ny), 79 cells: rows are nx bins, columns ny bins (Ringach 2002).
NXNY_COUNTS: Tuple[Tuple[int, ...], ...] = (
    (2, 0, 1, 0, 0),
    (8, 9, 4, 1, 0),
    (1, 2, 19, 17, 3),
    (0, 0, 1, 7, 4),
    (0, 0, 0, 0, 0),
)
#: Gaussian-copula correlation between nx and peak SF (Schiller, Finlay & Volman 1976; the value
#: VOneNet uses); the resulting Pearson r(log nx, log sf) is about 0.74.
SF_CORR: float = 0.75

#: Full references of the tables, the front (VOneNet) and the study, by key.
CITATIONS: Dict[str, str] = {
    "orientation": "De Valois, R. L., Yund, E. W. & Hepler, N. (1982). The orientation and direction "
    "selectivity of cells in macaque visual cortex. Vision Research 22, 531-544.",
    "spatial_frequency": "De Valois, R. L., Albrecht, D. G. & Thorell, L. G. (1982). Spatial frequency "
    "selectivity of cells in macaque visual cortex. Vision Research 22, 545-559.",
    "nx_ny": "Ringach, D. L. (2002). Spatial structure and symmetry of simple-cell receptive fields in "
    "macaque primary visual cortex. Journal of Neurophysiology 88, 455-463.",
    "sf_corr": "Schiller, P. H., Finlay, B. L. & Volman, S. F. (1976). Quantitative studies of "
    "single-cell properties in monkey striate cortex. III. Spatial frequency. J. Neurophysiol. 39, "
    "1334-1351.",
    "front": "Dapello, J., Marques, T., Schrimpf, M., Geiger, F., Cox, D. D. & DiCarlo, J. J. (2020). "
    "Simulating a primary visual cortex at the front of CNNs improves robustness to image "
    "perturbations. NeurIPS 2020.",
    "study": "Barbulescu, R., Marques, T. & Oliveira, A. L. (2023). Matching the neuronal "
    "representations of V1 is necessary to improve robustness in CNNs with V1-like front-ends. "
    "arXiv:2310.10575.",
}

#: Accepted values of ``sampling``.
SAMPLINGS = ("biological", "uniform", "unif1", "unif2", "unif3")
#: Accepted values of ``sf_table``.
SF_TABLES = ("by_cell_type", "all")

_LOG = {"linear": (lambda v: v, lambda v: v), "log2": (math.log2, lambda v: 2.0 ** v),
        "log10": (math.log10, lambda v: 10.0 ** v)}


class BinnedDistribution:
    """A histogram density: probability ∝ ``counts[i]`` on ``[edges[i], edges[i+1])``, uniform
    within a bin in ``scale`` ("linear", "log2" or "log10").

    The inverse CDF maps ``u ∈ [0, 1)`` to ``T⁻¹(T(e_b) + (u − C_b)/p_b · (T(e_{b+1}) − T(e_b)))``
    where ``C`` is the cumulative probability, ``b`` the bin with ``C_b ≤ u < C_{b+1}`` and ``T``
    the scale's transform.  Bins of zero count are never drawn.

    Args:
        edges: ``n + 1`` increasing bin edges.
        counts: ``n`` non-negative weights, not all zero.
        scale: the scale in which a bin is uniform.
    """

    def __init__(self, edges: Sequence[float], counts: Sequence[float], scale: str = "linear") -> None:
        if scale not in _LOG:
            raise ValueError(f"BinnedDistribution: scale must be one of {tuple(_LOG)}, got {scale!r}")
        edges = [float(e) for e in edges]
        counts = [float(c) for c in counts]
        if len(edges) != len(counts) + 1 or len(counts) == 0:
            raise ValueError(
                f"BinnedDistribution: expected len(edges) == len(counts) + 1 >= 2, got {len(edges)} edges "
                f"and {len(counts)} counts")
        if any(b <= a for a, b in zip(edges[:-1], edges[1:])):
            raise ValueError(f"BinnedDistribution: edges must increase strictly, got {edges}")
        if any(c < 0 for c in counts) or sum(counts) <= 0:
            raise ValueError(f"BinnedDistribution: counts must be >= 0 and not all zero, got {counts}")
        self.edges, self.counts, self.scale = edges, counts, scale

    @property
    def probs(self) -> Tensor:
        """Bin probabilities, float64, shape ``(n,)``."""
        c = torch.tensor(self.counts, dtype=torch.float64)
        return c / c.sum()

    def truncate(self, lo: Optional[float], hi: Optional[float]) -> "BinnedDistribution":
        """The distribution restricted to ``[lo, hi]``: partial bins keep the share of their mass
        that lies inside (measured in the bin's scale); bins outside are dropped."""
        fwd, _ = _LOG[self.scale]
        lo = self.edges[0] if lo is None else max(float(lo), self.edges[0])
        hi = self.edges[-1] if hi is None else min(float(hi), self.edges[-1])
        if not hi > lo:
            raise ValueError(
                f"truncate: the range [{lo}, {hi}] does not overlap the table's support "
                f"[{self.edges[0]}, {self.edges[-1]}]")
        edges, counts = [], []
        for a, b, c in zip(self.edges[:-1], self.edges[1:], self.counts):
            a2, b2 = max(a, lo), min(b, hi)
            if b2 <= a2:
                continue
            share = (fwd(b2) - fwd(a2)) / (fwd(b) - fwd(a))
            if not edges:
                edges.append(a2)
            edges.append(b2)
            counts.append(c * share)
        if sum(counts) <= 0:
            raise ValueError(f"truncate: no probability mass left in [{lo}, {hi}]")
        return BinnedDistribution(edges, counts, self.scale)

    def icdf(self, u: Tensor) -> Tuple[Tensor, Tensor]:
        """Inverse CDF of ``u`` (float64, values in [0, 1)): returns ``(values, bin_index)``."""
        p = self.probs.to(u.device)
        cdf = torch.cat([p.new_zeros(1), p.cumsum(0)])
        cdf[-1] = 1.0
        n = len(self.counts)
        b = (torch.searchsorted(cdf, u.contiguous(), right=True) - 1).clamp(0, n - 1)
        fwd, inv = _LOG[self.scale]
        t = torch.tensor([fwd(e) for e in self.edges], dtype=torch.float64, device=u.device)
        frac = ((u - cdf[b]) / p[b].clamp_min(1e-300)).clamp(0.0, 1.0)
        v = t[b] + frac * (t[b + 1] - t[b])
        if self.scale == "log2":
            v = torch.exp2(v)
        elif self.scale == "log10":
            v = torch.pow(10.0, v)
        return v, b

    def cdf(self, v: Tensor) -> Tensor:
        """CDF at ``v`` (float64), used for Kolmogorov–Smirnov tests."""
        fwd, _ = _LOG[self.scale]
        p = self.probs.to(v.device)
        cdf = torch.cat([p.new_zeros(1), p.cumsum(0)])
        t = torch.tensor([fwd(e) for e in self.edges], dtype=torch.float64, device=v.device)
        if self.scale == "log2":
            tv = torch.log2(v.clamp_min(1e-300))
        elif self.scale == "log10":
            tv = torch.log10(v.clamp_min(1e-300))
        else:
            tv = v
        tv = tv.to(torch.float64).clamp(t[0], t[-1])
        b = (torch.searchsorted(t, tv.contiguous(), right=True) - 1).clamp(0, len(self.counts) - 1)
        return cdf[b] + p[b] * (tv - t[b]) / (t[b + 1] - t[b])

    def __repr__(self) -> str:
        return f"BinnedDistribution(edges={self.edges}, counts={self.counts}, scale={self.scale!r})"


def orientation_distribution() -> BinnedDistribution:
    """Orientation histogram of De Valois, Yund & Hepler (1982) (degrees, before the +180° wrap)."""
    return BinnedDistribution(ORIENTATION_EDGES, ORIENTATION_COUNTS, "linear")


def sf_distribution(table: str = "all", sf_min: float = 0.0, sf_max: Optional[float] = None) -> BinnedDistribution:
    """Peak spatial-frequency histogram (cycles/degree), log2-uniform within bins, cut to
    ``[sf_min, sf_max]`` (De Valois, Albrecht & Thorell 1982).

    Args:
        table: ``"all"`` (8 bins to 8 c/deg), ``"simple"`` or ``"complex"`` (foveal, 9 bins to
            11.2 c/deg).
        sf_min, sf_max: the cut, in cycles/degree (``None``: no upper cut).
    """
    counts = {"all": SF_COUNTS_ALL, "simple": SF_COUNTS_SIMPLE, "complex": SF_COUNTS_COMPLEX}
    if table not in counts:
        raise ValueError(f"sf_distribution: table must be 'all', 'simple' or 'complex', got {table!r}")
    c = counts[table]
    return BinnedDistribution(SF_EDGES[: len(c) + 1], c, "log2").truncate(sf_min, sf_max)


def nx_distribution() -> BinnedDistribution:
    """Marginal of ``nx`` (row sums of Ringach's joint histogram), log10-uniform within bins."""
    return BinnedDistribution(NXNY_EDGES, [sum(r) for r in NXNY_COUNTS], "log10")


def ny_distribution() -> BinnedDistribution:
    """Marginal of ``ny`` (column sums of Ringach's joint histogram), log10-uniform within bins."""
    return BinnedDistribution(NXNY_EDGES, [sum(col) for col in zip(*NXNY_COUNTS)], "log10")


def nxny_correlation() -> float:
    """Pearson correlation of log10 nx and log10 ny in Ringach's joint histogram, computed from
    the bin centres (in log10) weighted by the counts.  Used as the copula ρ of ``unif2``/``unif3``
    *(unconfirmed: the follow-up code's exact coupling was not established)*."""
    c = torch.tensor(NXNY_COUNTS, dtype=torch.float64)
    t = torch.log10(torch.tensor(NXNY_EDGES, dtype=torch.float64))
    m = (t[:-1] + t[1:]) / 2
    w = c / c.sum()
    mx, my = (w.sum(1) * m).sum(), (w.sum(0) * m).sum()
    cov = (w * (m[:, None] - mx) * (m[None, :] - my)).sum()
    vx = (w.sum(1) * (m - mx) ** 2).sum()
    vy = (w.sum(0) * (m - my) ** 2).sum()
    return float(cov / (vx * vy).sqrt())


def _uniform(n: int, g: torch.Generator) -> Tensor:
    # float64 uniforms in [0, 1)
    return torch.rand(n, generator=g, dtype=torch.float64)


def _phi(z: Tensor) -> Tensor:
    # standard normal CDF, kept strictly below 1
    return torch.special.ndtr(z).clamp(0.0, 1.0 - 1e-15)


def _log_uniform(u: Tensor, lo: float, hi: float, base: float) -> Tensor:
    a, b = math.log(lo, base), math.log(hi, base)
    return torch.pow(torch.tensor(base, dtype=torch.float64), a + u * (b - a))


def sample_gabor_params(
    n_simple: int,
    n_complex: int,
    *,
    in_channels: int = 3,
    sampling: str = "biological",
    sf_min: float = 0.0,
    sf_max: Optional[float] = None,
    sf_corr: float = SF_CORR,
    sf_table: str = "by_cell_type",
    seed: int = 0,
) -> Dict[str, Tensor]:
    """Draw the Gabor parameters of ``n_simple`` simple and ``n_complex`` complex cells.

    **biological**: θ (the stripes' orientation, 0° horizontal, counter-clockwise) from the
    orientation histogram (wrapped to [0, 180)); φ ~ U[0, 360);
    (z₁, z₂) ~ N(0, [[1, ρ], [ρ, 1]]) with ρ = ``sf_corr``; ``nx = F_nx⁻¹(Φ(z₁))`` from the row
    marginal of Ringach's table, ``sf = F_sf⁻¹(Φ(z₂))`` from the spatial-frequency table (cut to
    ``[sf_min, sf_max]``); ``ny`` from the conditional (the row of ``nx``'s bin) with an
    independent uniform.  With ``sf_table="by_cell_type"`` simple cells use the foveal simple-cell
    table and complex cells the foveal complex-cell table (each with its own copula draw); with
    ``"all"``, every cell uses the 8-bin all-cells table (VOneNet).

    **uniform** (= ``unif1``): θ ~ U[0, 180), φ ~ U[0, 360), sf log2-uniform over the same range
    as the biological table (after the cut), ``nx, ny`` log10-uniform on [0.1, 10^0.2]
    independently.  **unif2**: ``nx, ny`` coupled by a Gaussian copula with ρ =
    :func:`nxny_correlation`; **unif3**: also ``nx``–sf with ρ = ``sf_corr`` (correlation matrix
    [[1, ρ_xy, ρ], [ρ_xy, 1, ρ_xy ρ], [ρ, ρ_xy ρ, 1]], i.e. ``ny`` and sf independent given
    ``nx``).  The coupling of unif2/unif3 is *(unconfirmed)*.

    The input channel each filter reads is uniform over ``range(in_channels)``.  All draws come
    from one local ``torch.Generator`` seeded with ``seed``; the global RNG is untouched.

    Returns:
        dict of 1-D tensors of length ``n_simple + n_complex`` (simple cells first):
        ``sf_cpd``, ``theta_deg``, ``phase_deg``, ``nx``, ``ny`` (float64), ``channel`` (int64),
        ``is_complex`` (bool).
    """
    who = "sample_gabor_params"
    check_choice(sampling, SAMPLINGS, "sampling", who)
    check_choice(sf_table, SF_TABLES, "sf_table", who)
    check_int(n_simple, "n_simple", who, minimum=0)
    check_int(n_complex, "n_complex", who, minimum=0)
    if n_simple + n_complex == 0:
        raise ValueError(f"{who}: n_simple + n_complex must be positive, got 0 cells")
    check_int(in_channels, "in_channels", who, minimum=1)
    if not -1.0 < float(sf_corr) < 1.0:
        raise ValueError(f"{who}: sf_corr must lie in (-1, 1), got {sf_corr!r}")
    g = torch.Generator().manual_seed(check_int(seed, "seed", "sample_gabor_params", minimum=0))
    n = n_simple + n_complex
    is_complex = torch.zeros(n, dtype=torch.bool)
    is_complex[n_simple:] = True
    groups = ([("simple", slice(0, n_simple)), ("complex", slice(n_simple, n))]
              if sf_table == "by_cell_type" else [("all", slice(0, n))])
    phase = 360.0 * _uniform(n, g)
    channel = torch.randint(0, in_channels, (n,), generator=g, dtype=torch.int64)
    if sampling == "biological":
        theta, sf, nx, ny = _sample_biological(n, groups, sf_min, sf_max, float(sf_corr), g)
    else:
        theta, sf, nx, ny = _sample_uniform(n, groups, sampling, sf_min, sf_max, float(sf_corr), g)
    return {
        "sf_cpd": sf,
        "theta_deg": theta,
        "phase_deg": phase,
        "nx": nx,
        "ny": ny,
        "channel": channel,
        "is_complex": is_complex,
    }


def _sample_biological(n: int, groups: Sequence[Tuple[str, slice]], sf_min: float, sf_max: Optional[float],
                       rho: float, g: torch.Generator) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """θ, sf, nx, ny from the primate tables (see :func:`sample_gabor_params`)."""
    th, _ = orientation_distribution().icdf(_uniform(n, g))
    theta = torch.where(th < 0, th + 180.0, th)
    sf = torch.empty(n, dtype=torch.float64)
    nx = torch.empty(n, dtype=torch.float64)
    ny = torch.empty(n, dtype=torch.float64)
    nxd = nx_distribution()
    rows = [BinnedDistribution(NXNY_EDGES, r, "log10") if sum(r) > 0 else None for r in NXNY_COUNTS]
    for table, sl in groups:
        m = sl.stop - sl.start
        if m == 0:
            continue
        z = torch.randn(m, 2, generator=g, dtype=torch.float64)
        z_sf = rho * z[:, 0] + math.sqrt(1.0 - rho * rho) * z[:, 1]
        nx_s, row = nxd.icdf(_phi(z[:, 0]))
        nx[sl] = nx_s
        sf[sl], _ = sf_distribution(table, sf_min, sf_max).icdf(_phi(z_sf))
        u_ny = _uniform(m, g)
        ny_s = torch.empty(m, dtype=torch.float64)
        for r, dist in enumerate(rows):  # 5 table rows, vectorised within each
            sel = row == r
            if dist is not None and bool(sel.any()):
                ny_s[sel] = dist.icdf(u_ny[sel])[0]
        ny[sl] = ny_s
    return theta, sf, nx, ny


def _sample_uniform(n: int, groups: Sequence[Tuple[str, slice]], sampling: str, sf_min: float,
                    sf_max: Optional[float], sf_corr: float,
                    g: torch.Generator) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """θ, sf, nx, ny of the uniform controls unif1/2/3 (see :func:`sample_gabor_params`)."""
    theta = 180.0 * _uniform(n, g)
    lo_n, hi_n = NXNY_EDGES[0], NXNY_EDGES[-1]
    sf_dists = [sf_distribution(table, sf_min, sf_max) for table, _ in groups]
    sf_lo = min(d.edges[0] for d in sf_dists)
    sf_hi = max(d.edges[-1] for d in sf_dists)
    rho_xy = nxny_correlation() if sampling in ("unif2", "unif3") else 0.0
    rho_xf = sf_corr if sampling == "unif3" else 0.0
    c = torch.tensor([[1.0, rho_xy, rho_xf], [rho_xy, 1.0, rho_xy * rho_xf],
                      [rho_xf, rho_xy * rho_xf, 1.0]], dtype=torch.float64)
    z = torch.randn(n, 3, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(c).T
    u = _phi(z)
    nx = _log_uniform(u[:, 0], lo_n, hi_n, 10.0)
    ny = _log_uniform(u[:, 1], lo_n, hi_n, 10.0)
    sf = _log_uniform(u[:, 2], sf_lo, sf_hi, 2.0)
    return theta, sf, nx, ny
