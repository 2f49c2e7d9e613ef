r"""Stimuli and tuning probes of a layer's units: sinusoidal gratings and orientation tuning,
mirror-symmetric patterns and symmetry selectivity, blobs at increasing eccentricity and
eccentricity tuning, the probes of Truong & Hasson (arXiv:2508.00043).

Stimulus geometry: pixel coordinates (x, y) relative to the image centre, x to the right and
y pointing *up*; angles in degrees.  Orientation θ is the orientation of the grating's stripes,
counter-clockwise from horizontal (0° = horizontal stripes), the convention of
:mod:`torchtopo.functional.gabor` and of :class:`torchtopo.v1.V1Front`.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from .._checks import check_fraction, check_int
from ._common import as_activations
from .categories import selectivity
from .collect import collect_activations

__all__ = [
    "grating",
    "orientation_tuning",
    "symmetry_stimuli",
    "symmetry_selectivity",
    "eccentricity_stimuli",
    "eccentricity_tuning",
]


def _as_1d(v: Union[float, Sequence[float], Tensor], name: str, who: str) -> Tensor:
    t = torch.as_tensor(v, dtype=torch.float64).flatten()
    if t.numel() == 0:
        raise ValueError(f"{who}: {name} must not be empty")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{who}: {name} must be finite, got {v!r}")
    return t


def _check_size(size: Union[int, Tuple[int, int]], who: str) -> Tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size)
    ):
        raise ValueError(f"{who}: size must be a positive int or (H, W), got {size!r}")
    return int(size[0]), int(size[1])


def grating(
    size: Union[int, Tuple[int, int]],
    orientation: Union[float, Sequence[float], Tensor],
    spatial_freq: Union[float, Sequence[float], Tensor] = 0.1,
    phase: Union[float, Sequence[float], Tensor] = 0.0,
    *,
    contrast: float = 1.0,
    channels: int = 1,
    dtype: torch.dtype = torch.float32,
    device: Optional[Union[str, torch.device]] = None,
) -> Tensor:
    r"""Sinusoidal gratings in [0, 1], for every (orientation, frequency, phase) combination.

    .. math:: g(x, y) = \tfrac12 + \tfrac{c}{2}\cos\!\big(2\pi f (x\sin\theta - y\cos\theta) + \varphi\big)

    with (x, y) pixel coordinates relative to the image centre (x right, y *up*), θ the
    orientation of the stripes in degrees, counter-clockwise (θ = 0: horizontal stripes, varying
    along y only; θ = 90°: vertical ones), f in cycles per pixel, φ in degrees, c the contrast.
    The carrier is that of :func:`torchtopo.functional.gabor.gabor_at` for the same θ and φ, so
    a Gabor filter with orientation θ and phase φ responds most to the grating (θ, φ).

    Args:
        size: H or (H, W).
        orientation, spatial_freq, phase: scalars or 1-D sequences.
        contrast: in [0, 1].
        channels: copies of the grating along the channel axis.

    Returns:
        (O, F, P, channels, H, W) tensor, squeezed of nothing: O orientations, F frequencies,
        P phases.
    """
    who = "grating"
    H, W = _check_size(size, who)
    th = _as_1d(orientation, "orientation", who) * math.pi / 180
    f = _as_1d(spatial_freq, "spatial_freq", who)
    ph = _as_1d(phase, "phase", who) * math.pi / 180
    check_fraction(contrast, "contrast", who, closed_low=True, closed_high=True)
    check_int(channels, "channels", who, minimum=1)
    y = (H - 1) / 2 - torch.arange(H, dtype=torch.float64)  # up
    x = torch.arange(W, dtype=torch.float64) - (W - 1) / 2
    proj = x[None, None, :] * th.sin()[:, None, None] - y[None, :, None] * th.cos()[:, None, None]  # (O,H,W)
    arg = 2 * math.pi * f[None, :, None, None, None] * proj[:, None, None] + ph[None, None, :, None, None]
    g = 0.5 + 0.5 * contrast * torch.cos(arg)  # (O, F, P, H, W)
    g = g.unsqueeze(3).expand(-1, -1, -1, channels, -1, -1)
    return g.to(dtype=dtype, device=device).contiguous()


def _responses(model, layer, stimuli: Tensor, transform, batch_size) -> Tensor:
    acts, _ = collect_activations(model, layer, stimuli, batch_size=batch_size, transform=transform)
    return as_activations(acts, "probe")


def orientation_tuning(
    model: nn.Module,
    layer: Union[str, nn.Module],
    *,
    size: Union[int, Tuple[int, int]] = 28,
    channels: int = 1,
    orientations: Union[int, Sequence[float]] = 12,
    spatial_freqs: Sequence[float] = (0.05, 0.1, 0.15, 0.2),
    phases: int = 8,
    contrast: float = 1.0,
    transform: Optional[Callable[[Tensor], Tensor]] = None,
    rectify: bool = True,
    batch_size: int = 128,
) -> Dict[str, Tensor]:
    r"""Orientation tuning of a layer's units to sinusoidal gratings (:func:`grating`).

    θ is the orientation of the grating's stripes (0° horizontal, counter-clockwise, y up: the
    convention of :class:`torchtopo.v1.V1Front` and :func:`fit_gabor`, so a Gabor unit of
    orientation θ prefers θ).  Each unit's response R(θ) is its activation averaged over ``phases``
    evenly spaced phases, at the spatial frequency that drives it most (max over frequencies of
    the phase-averaged response, then that frequency for all θ).  With ``rectify`` the
    activations pass through a ReLU first (tuning of the post-ReLU output).  Then

    .. math:: \theta_{pref} = \arg\max_\theta R(\theta),\qquad
              \mathrm{OSI} = \frac{R_{pref} - R_{orth}}{R_{pref} + R_{orth}}

    with :math:`R_{orth} = R(\theta_{pref} + 90°)` (nearest sampled orientation), as in Truong &
    Hasson's orientation probe (Truong & Hasson, arXiv:2508.00043).  OSI is 0 where R_pref + R_orth = 0.

    Args:
        model, layer: the network and the layer (or its name) to read.
        size, channels: the stimulus image size and channel count (images in [0, 1]).
        orientations: a number of evenly spaced orientations in [0°, 180°), or the list.
        spatial_freqs: cycles per pixel.
        phases: number of phases in [0°, 360°).
        transform: applied to the stimuli before the model (e.g. normalisation).
        rectify: ReLU the activations.

    Returns:
        dict with ``"orientations"`` (O,) degrees, ``"responses"`` (O, N) tuning curves,
        ``"preferred"`` (N,) degrees (stripe orientation), ``"osi"`` (N,), ``"best_freq"`` (N,)
        cycles/pixel.
    """
    who = "orientation_tuning"
    if isinstance(orientations, int) and not isinstance(orientations, bool):
        check_int(orientations, "orientations", who, minimum=2)
        oris = torch.arange(orientations, dtype=torch.float64) * 180.0 / orientations
    else:
        oris = _as_1d(orientations, "orientations", who)
    check_int(phases, "phases", who, minimum=1)
    sf = _as_1d(spatial_freqs, "spatial_freqs", who)
    phs = torch.arange(phases, dtype=torch.float64) * 360.0 / phases
    stim = grating(size, oris, sf, phs, contrast=contrast, channels=channels)
    O, F, P = stim.shape[:3]
    r = _responses(model, layer, stim.flatten(0, 2), transform, batch_size)
    if rectify:
        r = r.clamp_min(0)
    r = r.reshape(O, F, P, -1).mean(2)  # (O, F, N)
    best = r.mean(0).argmax(0)  # (N,)
    N = r.shape[-1]
    R = r.gather(1, best[None, None, :].expand(O, 1, N)).squeeze(1)  # (O, N)
    pref_idx = R.argmax(0)
    pref = oris.to(R.dtype)[pref_idx]
    circ = (oris[None, :] - (oris[pref_idx.cpu()] + 90.0)[:, None]) % 180.0
    circ = torch.minimum(circ, 180.0 - circ)  # angular distance to the orthogonal orientation
    orth_idx = circ.argmin(1).to(R.device)
    rp = R.gather(0, pref_idx[None]).squeeze(0)
    ro = R.gather(0, orth_idx[None]).squeeze(0)
    den = rp + ro
    osi = torch.where(den.abs() > 0, (rp - ro) / torch.where(den.abs() > 0, den, torch.ones_like(den)), torch.zeros_like(den))
    return {
        "orientations": oris.to(R.dtype),
        "responses": R,
        "preferred": pref,
        "osi": osi,
        "best_freq": sf.to(R.dtype)[best],
    }


def _smooth_noise(n: int, H: int, W: int, sigma: float, generator: Optional[torch.Generator]) -> Tensor:
    z = torch.randn(n, 1, H, W, generator=generator, dtype=torch.float64)
    k = int(2 * math.ceil(3 * sigma) + 1)
    t = torch.arange(k, dtype=torch.float64) - k // 2
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    z = torch.nn.functional.conv2d(torch.nn.functional.pad(z, (k // 2,) * 4, mode="circular"), g.view(1, 1, 1, k))
    z = torch.nn.functional.conv2d(z, g.view(1, 1, k, 1))
    return z[:, 0]


def symmetry_stimuli(
    n: int,
    size: Union[int, Tuple[int, int]] = 28,
    *,
    channels: int = 1,
    sigma: float = 1.5,
    density: float = 0.3,
    generator: Optional[torch.Generator] = None,
) -> Tuple[Tensor, Tensor]:
    r"""Mirror-symmetric and matched asymmetric binary blob patterns, in [0, 1].

    A smooth random field (white noise blurred by a Gaussian of SD ``sigma`` px) is thresholded
    so that a share ``density`` of pixels is on.  The symmetric pattern reflects the left half
    onto the right half (symmetric about the vertical midline); the asymmetric one joins the
    left half of that pattern with the right half of an independent field — same half-image
    statistics, no symmetry.

    Returns:
        ``(symmetric, asymmetric)``, each (n, channels, H, W).
    """
    who = "symmetry_stimuli"
    H, W = _check_size(size, who)
    check_int(n, "n", who, minimum=1)
    check_fraction(density, "density", who)
    a = _smooth_noise(n, H, W, sigma, generator)
    b = _smooth_noise(n, H, W, sigma, generator)

    def binar(z):
        q = torch.quantile(z.flatten(1), 1 - density, dim=1)
        return (z > q[:, None, None]).double()

    a, b = binar(a), binar(b)
    half = (W + 1) // 2
    cols = torch.arange(W)
    mirror = torch.where(cols < half, cols, W - 1 - cols)
    sym = a[:, :, mirror]
    asym = torch.where(cols[None, None, :] < half, a, b)  # left half of a, right half of b
    out = [s.unsqueeze(1).expand(-1, channels, -1, -1).float().contiguous() for s in (sym, asym)]
    return out[0], out[1]


def symmetry_selectivity(
    model: nn.Module,
    layer: Union[str, nn.Module],
    *,
    n: int = 256,
    size: Union[int, Tuple[int, int]] = 28,
    channels: int = 1,
    transform: Optional[Callable[[Tensor], Tensor]] = None,
    seed: int = 0,
    batch_size: int = 128,
) -> Tensor:
    r"""Symmetry preference of each unit: d′ of its responses to mirror-symmetric versus
    asymmetric patterns (:func:`symmetry_stimuli`), d′ as in :func:`selectivity`
    (positive: prefers symmetric).  The symmetry probe of Truong & Hasson (arXiv:2508.00043).

    Returns:
        (N,) d′ values.
    """
    g = torch.Generator().manual_seed(seed)
    sym, asym = symmetry_stimuli(n, size, channels=channels, generator=g)
    r = _responses(model, layer, torch.cat([sym, asym]), transform, batch_size)
    lab = torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)])
    return selectivity(r, lab, 2)[0]


def eccentricity_stimuli(
    size: Union[int, Tuple[int, int]] = 28,
    eccentricities: Union[int, Sequence[float]] = 6,
    *,
    n_angles: int = 8,
    blob_sigma: float = 1.5,
    channels: int = 1,
) -> Tuple[Tensor, Tensor]:
    r"""A bright Gaussian blob at increasing distance from the image centre, in [0, 1].

    .. math:: s(x, y) = \exp\!\Big(-\frac{(x - e\cos\alpha)^2 + (y - e\sin\alpha)^2}{2\sigma^2}\Big)

    for each eccentricity e (pixels from the centre) and ``n_angles`` polar angles α
    (counter-clockwise from the right, y up).

    Args:
        eccentricities: a number of evenly spaced eccentricities from 0 to 0.8 × the half-size,
            or the list (pixels).

    Returns:
        ``(stimuli, ecc)`` — (E · A, channels, H, W) ordered eccentricity-major, and (E,) the
        eccentricities.
    """
    who = "eccentricity_stimuli"
    H, W = _check_size(size, who)
    if isinstance(eccentricities, int) and not isinstance(eccentricities, bool):
        check_int(eccentricities, "eccentricities", who, minimum=1)
        ecc = torch.linspace(0, 0.8 * (min(H, W) - 1) / 2, eccentricities, dtype=torch.float64)
    else:
        ecc = _as_1d(eccentricities, "eccentricities", who)
    check_int(n_angles, "n_angles", who, minimum=1)
    al = torch.arange(n_angles, dtype=torch.float64) * 2 * math.pi / n_angles
    cx = (ecc[:, None] * al.cos()[None]).flatten()
    cy = (ecc[:, None] * al.sin()[None]).flatten()
    y = (H - 1) / 2 - torch.arange(H, dtype=torch.float64)  # up
    x = torch.arange(W, dtype=torch.float64) - (W - 1) / 2
    d2 = (x[None, None, :] - cx[:, None, None]) ** 2 + (y[None, :, None] - cy[:, None, None]) ** 2
    s = torch.exp(-d2 / (2 * blob_sigma**2)).float()
    return s.unsqueeze(1).expand(-1, channels, -1, -1).contiguous(), ecc.float()


def eccentricity_tuning(
    model: nn.Module,
    layer: Union[str, nn.Module],
    *,
    size: Union[int, Tuple[int, int]] = 28,
    eccentricities: Union[int, Sequence[float]] = 6,
    n_angles: int = 8,
    channels: int = 1,
    transform: Optional[Callable[[Tensor], Tensor]] = None,
    batch_size: int = 128,
) -> Dict[str, Tensor]:
    r"""Responses of a layer's units to a blob at increasing eccentricity
    (:func:`eccentricity_stimuli`), averaged over polar angles: the eccentricity probe of
    Truong & Hasson (arXiv:2508.00043).

    Returns:
        dict with ``"eccentricity"`` (E,), ``"responses"`` (E, N), ``"preferred"`` (N,) the
        eccentricity of the largest response, and ``"slope"`` (N,) the least-squares slope of
        response against eccentricity.
    """
    stim, ecc = eccentricity_stimuli(size, eccentricities, n_angles=n_angles, channels=channels)
    r = _responses(model, layer, stim, transform, batch_size)
    E = ecc.numel()
    R = r.reshape(E, -1, r.shape[-1]).mean(1)
    e = ecc.to(R.device, R.dtype)
    ec = e - e.mean()
    slope = (ec[:, None] * (R - R.mean(0, keepdim=True))).sum(0) / (ec * ec).sum().clamp_min(1e-12)
    return {"eccentricity": e, "responses": R, "preferred": e[R.argmax(0)], "slope": slope}
