r"""Image corruptions, batched in torch: the noises of Truong & Hasson and the 15 common
corruptions of ImageNet-C (Hendrycks & Dietterich, ICLR 2019).

Images are ``(B, C, H, W)`` tensors in [0, 1] (any size, any channel count, grayscale included):
corrupt them in pixel space, then let the model normalise (put :class:`torchtopo.data.Normalize`
first in the model).

* ``"white"``, ``"pink"``, ``"salt_and_pepper"``: the input degradations of Truong & Hasson
  (arXiv:2508.00043); severity is the noise SD σ or the pixel fraction p (a float, e.g.
  0.01 … 0.2).
* the 15 common corruptions of ImageNet-C, listed in :data:`COMMON_CORRUPTIONS`, severity an int
  1 … 5, re-implemented in batched torch with the ImageNet-C severity parameters.  Spatial
  parameters (blur radii and SDs, displacements, sizes) are given for 224-px images and are
  multiplied by ``min(H, W) / 224`` (the rule Hendrycks' own Tiny ImageNet-C and CIFAR-10-C
  parameters follow approximately); integer displacements stay ≥ 1 px.  Deviations from the
  reference numpy/OpenCV/Wand/PIL code are documented at each corruption in :func:`corrupt`.

Each kind is one small function ``(x, c, generator) -> x'`` in a registry keyed by its name;
:func:`corrupt` validates, looks up the severity's parameters and clamps the result.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_4d, check_choice, check_fraction, check_nonneg, check_real
from . import _image_ops as ops

__all__ = ["NOISE_CORRUPTIONS", "COMMON_CORRUPTIONS", "CORRUPTIONS", "corrupt", "pink_noise"]

#: The noises of Truong & Hasson; their severity is σ or p, a float.
NOISE_CORRUPTIONS: Tuple[str, ...] = ("white", "pink", "salt_and_pepper")
#: The 15 common corruptions (ImageNet-C names); their severity is an int from 1 to 5.
COMMON_CORRUPTIONS: Tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
#: Every kind :func:`corrupt` accepts.
CORRUPTIONS: Tuple[str, ...] = NOISE_CORRUPTIONS + COMMON_CORRUPTIONS

# ImageNet-C severity parameters (Hendrycks & Dietterich 2019), severities 1..5.
_P = {
    "gaussian_noise": [0.08, 0.12, 0.18, 0.26, 0.38],
    "shot_noise": [60, 25, 12, 5, 3],
    "impulse_noise": [0.03, 0.06, 0.09, 0.17, 0.27],
    "defocus_blur": [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)],
    "glass_blur": [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)],
    "motion_blur": [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)],
    "zoom_blur": [(1.0, 1.11, 0.01), (1.0, 1.16, 0.01), (1.0, 1.21, 0.02), (1.0, 1.26, 0.02), (1.0, 1.31, 0.03)],
    "snow": [
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
        (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
    ],
    "frost": [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)],
    "fog": [(1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)],
    "brightness": [0.1, 0.2, 0.3, 0.4, 0.5],
    "contrast": [0.4, 0.3, 0.2, 0.1, 0.05],
    # (alpha, sigma, affine) as fractions of the image side (ImageNet-C: 244 × these)
    "elastic_transform": [(2, 0.7, 0.1), (2, 0.08, 0.2), (0.05, 0.01, 0.02), (0.07, 0.01, 0.02), (0.12, 0.01, 0.02)],
    "pixelate": [0.6, 0.5, 0.4, 0.3, 0.25],
    "jpeg_compression": [25, 18, 15, 10, 7],
}


# ----------------------------------------------------------------------------- the kinds
# Each takes the images, the kind's parameter (σ or p for the noises, the row of _P for the
# common corruptions) and the generator; the draws happen in a fixed order per kind.
def _scale(x: Tensor) -> float:
    """The factor of the 224-px spatial parameters for these images."""
    return min(x.shape[-2:]) / 224.0


def _white(x: Tensor, sigma: float, g) -> Tensor:
    return x + sigma * ops.randn(x.shape, g, x)


def _pink(x: Tensor, sigma: float, g, exponent: float = 1.0) -> Tensor:
    B, C, H, W = x.shape
    return x + sigma * ops.spectral_field(B * C, H, W, exponent, g, x).reshape(x.shape)


def _salt_and_pepper(x: Tensor, p: float, g) -> Tensor:
    B, _, H, W = x.shape
    u = ops.rand((B, 1, H, W), g, x)
    salt = ops.rand((B, 1, H, W), g, x) < 0.5
    hit = (u < p).expand_as(x)
    return torch.where(hit, salt.expand_as(x).to(x.dtype), x)


def _gaussian_noise(x: Tensor, c, g) -> Tensor:
    return x + c * ops.randn(x.shape, g, x)


def _shot_noise(x: Tensor, c, g) -> Tensor:
    lam = (x.clamp(0, 1) * c).double()
    if g is None:
        k = torch.poisson(lam)
    else:
        k = torch.poisson(lam.to(g.device), generator=g).to(x.device)
    return (k / c).to(x.dtype)


def _impulse_noise(x: Tensor, c, g) -> Tensor:
    u = ops.rand(x.shape, g, x)
    salt = ops.rand(x.shape, g, x) < 0.5
    return torch.where(u < c, salt.to(x.dtype), x)


def _defocus_blur(x: Tensor, c, g) -> Tensor:
    k = ops.disk_kernel(c[0] * _scale(x), c[1], torch.float64)
    return ops.conv_same(x, k.to(x.device))


def _glass_blur(x: Tensor, c, g) -> Tensor:
    B, C, H, W = x.shape
    s = _scale(x)
    sigma, delta, iters = c[0] * s, max(1, round(c[1] * s)), c[2]
    y = ops.gaussian_blur(x, sigma)
    rows = torch.arange(H, device=x.device)[:, None]
    cols = torch.arange(W, device=x.device)[None, :]
    for _ in range(iters):  # a loop over 1–3 rounds, not over pixels
        dy = ops.randint(-delta, delta + 1, (B, H, W), g, x.device)
        dx = ops.randint(-delta, delta + 1, (B, H, W), g, x.device)
        r = (rows + dy).clamp(0, H - 1)
        cc = (cols + dx).clamp(0, W - 1)
        idx = (r * W + cc).reshape(B, 1, H * W).expand(B, C, H * W)
        y = y.reshape(B, C, H * W).gather(2, idx).reshape(B, C, H, W)
    return ops.gaussian_blur(y, sigma)


def _motion_blur(x: Tensor, c, g) -> Tensor:
    s = _scale(x)
    ang = ops.rand((x.shape[0],), g, x.double()) * 90 - 45
    k = ops.motion_kernels(c[0] * s, c[1] * s, ang, torch.float64).to(x.device)
    return ops.conv_same(x, k)


def _zoom_blur(x: Tensor, c, g) -> Tensor:
    lo, hi, step = c
    zooms = torch.arange(lo, hi - 1e-9, step, dtype=torch.float64).tolist()
    acc = x.clone()
    for z in zooms:  # ≤ 16 zoom factors
        acc = acc + ops.zoom(x, float(z))
    return acc / (len(zooms) + 1)


def _snow(x: Tensor, c, g) -> Tensor:
    B, _, H, W = x.shape
    s = _scale(x)
    loc, scale, zoom, thr, rad, sig, blend = c
    zoom = max(1.0, zoom * s)  # flake size scales with the image like the other lengths
    hs, ws = max(1, int(math.ceil(H / zoom))), max(1, int(math.ceil(W / zoom)))
    field = ops.randn((B, 1, hs, ws), g, x) * scale + loc
    field = F.interpolate(field, size=(H, W), mode="bilinear", align_corners=False)
    field = torch.where(field < thr, torch.zeros_like(field), field)
    ang = ops.rand((B,), g, x.double()) * 90 - 135
    k = ops.motion_kernels(rad * s, sig * s, ang, torch.float64).to(x.device)
    snow = ops.conv_same(field, k)
    base = blend * x + (1 - blend) * torch.maximum(x, ops.gray(x) * 1.5 + 0.5)
    return base + snow + snow.flip(-1, -2)


def _frost(x: Tensor, c, g) -> Tensor:
    return c[0] * x + c[1] * ops.frost_texture(*x.shape, g, x)


def _fog(x: Tensor, c, g) -> Tensor:
    B, _, H, W = x.shape
    amp, decay = c
    # diamond-square with amplitude ÷ decay per octave: Hurst H = log2(decay), 2-D power ∝ 1/f^(2H+2)
    field = ops.spectral_field(B, H, W, 2 + 2 * math.log2(decay), g, x)
    lo = field.amin((1, 2), keepdim=True)
    hi = field.amax((1, 2), keepdim=True)
    field = (field - lo) / (hi - lo).clamp_min(1e-12)
    mx = x.amax((1, 2, 3), keepdim=True)
    y = x + amp * field[:, None]
    return y * mx / (mx + amp)


def _brightness(x: Tensor, c, g) -> Tensor:
    if x.shape[1] != 3:
        return x + c
    V = x.amax(1, keepdim=True)
    Vn = (V + c).clamp(max=1.0)
    scale = torch.where(V > 0, Vn / V.clamp_min(1e-12), torch.zeros_like(V))
    return torch.where(V > 0, x * scale, Vn.expand_as(x))


def _contrast(x: Tensor, c, g) -> Tensor:
    m = x.mean((2, 3), keepdim=True)
    return (x - m) * c + m


def _elastic_transform(x: Tensor, c, g) -> Tensor:
    return ops.elastic(x, c, g)


def _pixelate(x: Tensor, c, g) -> Tensor:
    H, W = x.shape[-2:]
    h2, w2 = max(1, int(H * c)), max(1, int(W * c))
    small = F.adaptive_avg_pool2d(x, (h2, w2))
    return F.interpolate(small, size=(H, W), mode="nearest")


def _jpeg_compression(x: Tensor, c, g) -> Tensor:
    return ops.jpeg(x, int(c))


#: name -> function (x, c, generator) of every kind, in the order of :data:`CORRUPTIONS`.
_KINDS: Dict[str, Callable[..., Tensor]] = {
    "white": _white,
    "pink": _pink,
    "salt_and_pepper": _salt_and_pepper,
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "defocus_blur": _defocus_blur,
    "glass_blur": _glass_blur,
    "motion_blur": _motion_blur,
    "zoom_blur": _zoom_blur,
    "snow": _snow,
    "frost": _frost,
    "fog": _fog,
    "brightness": _brightness,
    "contrast": _contrast,
    "elastic_transform": _elastic_transform,
    "pixelate": _pixelate,
    "jpeg_compression": _jpeg_compression,
}
assert tuple(_KINDS) == CORRUPTIONS


def corrupt(
    x: Tensor,
    kind: str,
    severity: Union[int, float],
    *,
    generator: Optional[torch.Generator] = None,
    exponent: float = 1.0,
) -> Tensor:
    r"""Corrupt a batch of images in [0, 1]; the result is clamped to [0, 1].

    **Noise of Truong & Hasson** (arXiv:2508.00043; ``severity`` a float ≥ 0):

    * ``"white"``: :math:`x + \sigma\,\epsilon`, :math:`\epsilon \sim N(0, 1)` per pixel and channel.
    * ``"pink"``: :math:`x + \sigma\,n`, n from :func:`pink_noise` (per image and channel,
      power ∝ 1/f^α with α = ``exponent``, z-scored); α = 1 is true pink noise.
    * ``"salt_and_pepper"``: a fraction p of the pixels, chosen independently, set to 0 or 1
      with probability ½ each, the same on all channels (p ∈ [0, 1]).

    **Common corruptions** (ImageNet-C, Hendrycks & Dietterich 2019; ``severity`` an int 1 … 5;
    s = min(H, W)/224 scales the spatial parameters):

    * ``"gaussian_noise"``: x + N(0, c²), c = .08 … .38.
    * ``"shot_noise"``: Poisson(x·c)/c, c = 60 … 3.
    * ``"impulse_noise"``: salt-and-pepper with amount c = .03 … .27, independently per channel
      (as skimage's ``random_noise``).
    * ``"defocus_blur"``: an anti-aliased disk of radius r·s (r = 3 … 10) smoothed by a
      Gaussian of SD 0.1 … 0.5 px.  Deviation: the reference uses a binary disk on a fixed
      17-px support; the anti-aliased disk keeps sub-pixel radii meaningful on small images.
    * ``"glass_blur"``: Gaussian blur (σ·s), then ``iterations`` rounds in which every pixel
      takes the value at a random offset within ±δ (δ = max(1, round(δ₀·s))), then the blur
      again.  Deviation: the reference swaps pixel pairs sequentially (a permutation, with a
      Python loop); this gathers from random offsets in parallel (values may repeat).
    * ``"motion_blur"``: a one-sided Gaussian line kernel (radius r·s, SD σ·s) at a random
      angle in [−45°, 45°] per image, as ImageNet-C's Wand-style kernel; taps are bilinearly
      splatted instead of rounded.
    * ``"zoom_blur"``: the mean of x and its centre zooms by factors 1 … 1.11–1.31 (bilinear).
    * ``"snow"``: ImageNet-C's snow layer (Gaussian field with mean/SD c₀, c₁ zoomed by c₂,
      thresholded at c₃, motion-blurred (c₄·s, c₅·s) at an angle in [−135°, −45°]; the zoom
      is scaled too, max(1, c₂·s)) added twice
      (and rotated 180°) to the image blended towards max(x, 1.5·gray + 0.5) with weight c₆.
      Deviation: the field is zoomed with bilinear interpolation instead of scipy's spline
      zoom and blurred by our motion kernel instead of Wand's.
    * ``"frost"``: x·c₀ + frost·c₁ with c = (1, .4) … (.6, .75).  **Deviation:** ImageNet-C
      crops one of six frost photographs, which torchtopo does not ship; the frost layer is
      synthesised procedurally instead — ridged multi-scale noise (1 − abs(field) of 1/f³ and 1/f² fields,
      sharpened) plus fine grain, scaled to mean ≈ 0.45 and range [0, 1] like the photographs,
      slightly blue-tinted on RGB images.  Its statistics are comparable, its look is not.
    * ``"fog"``: x + c₀·fractal, then rescaled by max/(max + c₀).  Deviation: ImageNet-C's
      plasma fractal (diamond-square, amplitude ÷ ``wibbledecay`` = c₁ per octave) is
      replaced by spectral synthesis of a 2-D field with the same per-octave decay (Hurst
      exponent log₂ c₁, power ∝ f^−(2 + 2·log₂ c₁)), normalised to [0, 1].
    * ``"brightness"``: V += c (c = .1 … .5) in HSV, i.e. every channel scaled by
      min(V + c, 1)/V (grayscale: x + c).
    * ``"contrast"``: (x − mean)·c + mean, the mean per image and channel (c = .4 … .05).
    * ``"elastic_transform"``: a random affine (3 points moved by U(±c₂·S)) then a displacement
      field of uniform noise smoothed by a Gaussian (σ = c₁·S) and scaled by c₀·S, S the image
      side; bilinear resampling with reflected borders.  ImageNet-C expresses these as
      multiples of 244 px; here as fractions of the image side.
    * ``"pixelate"``: box-downsample to ⌊c·H⌋ × ⌊c·W⌋ (c = .6 … .25), nearest-upsample back.
    * ``"jpeg_compression"``: JPEG at quality 25 … 7, implemented in torch: JFIF YCbCr (RGB) or
      a single luminance plane (other channel counts), 4:2:0 chroma subsampling, 8×8 DCT, IJG
      quality-scaled standard tables, rounding.  Not entropy-coded (lossless anyway) and without
      libjpeg's integer DCT, so values can differ from PIL's by a few grey levels.

    Args:
        x: (B, C, H, W) floating-point images in [0, 1].
        kind: one of :data:`CORRUPTIONS`.
        severity: σ or p (float) for the three noise kinds; an int in 1 … 5 otherwise.
        generator: a ``torch.Generator`` for reproducible draws (on any device; draws are moved
            to ``x``'s device).
        exponent: spectral exponent of ``"pink"`` (ignored by other kinds).

    Returns:
        the corrupted batch, same shape, dtype and device as ``x``, in [0, 1].

    Raises:
        ValueError: unknown ``kind`` (the message lists the valid ones and the closest),
            severity out of range, or ``x`` not (B, C, H, W).
        TypeError: ``x`` not a floating-point tensor, or ``severity`` not a number.
    """
    who = "corrupt"
    x = check_4d(x, "x (images in [0, 1])", who)
    check_choice(kind, CORRUPTIONS, "kind", who)
    sev = check_real(severity, f"severity of {kind!r}", who)
    if kind == "salt_and_pepper":
        level = check_fraction(sev, "severity of 'salt_and_pepper' (a pixel fraction)", who, closed_low=True, closed_high=True)
    elif kind in NOISE_CORRUPTIONS:
        level = check_nonneg(sev, f"severity of {kind!r}", who)
    else:
        if int(sev) != sev or not 1 <= int(sev) <= 5:
            raise ValueError(f"{who}: severity of {kind!r} must be an integer 1 … 5, got {severity!r}")
        level = _P[kind][int(sev) - 1]
    extra = {"exponent": exponent} if kind == "pink" else {}
    out = _KINDS[kind](x, level, generator, **extra)
    return out.clamp(0, 1).to(x.dtype)


def pink_noise(
    shape: Sequence[int],
    *,
    exponent: float = 1.0,
    generator: Optional[torch.Generator] = None,
    device: Optional[Union[str, torch.device]] = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""Coloured noise per image and channel: white Gaussian noise shaped in the Fourier domain
    so that its power spectrum is :math:`\propto 1/f^{\alpha}` (amplitude divided by
    :math:`f^{\alpha/2}`, DC removed), then z-scored over the image (population SD).

    ``exponent`` α = 1 is pink (1/f power: the default, as Truong & Hasson, arXiv:2508.00043 specifies); α = 2 is
    brown noise — what Truong & Hasson's released code produces by dividing the *amplitude* by f.

    Args:
        shape: (B, C, H, W).

    Returns:
        tensor of ``shape``, each (b, c) plane with mean 0 and SD 1.
    """
    if len(shape) != 4:
        raise ValueError(f"pink_noise: shape must be (B, C, H, W), got {tuple(shape)}")
    B, C, H, W = (int(s) for s in shape)
    like = torch.empty(0, device=device, dtype=dtype)
    return ops.spectral_field(B * C, H, W, exponent, generator, like).reshape(B, C, H, W)
