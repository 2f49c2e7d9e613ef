r"""Image corruptions, batched in torch: the noises of Truong & Hasson and the 15 common
corruptions of ImageNet-C (Hendrycks & Dietterich, ICLR 2019).

Images are ``(B, C, H, W)`` tensors in [0, 1] (any size, any channel count, grayscale included):
corrupt them in pixel space, then let the model normalise (put :class:`torchtopo.data.Normalize`
first in the model).

* ``"white"``, ``"pink"``, ``"salt_and_pepper"``: the input degradations of Truong & Hasson
  (arXiv:2508.00043); severity is the noise SD σ or the pixel fraction p (a float, e.g.
  0.01 … 0.2).
* the 15 common corruptions of Hendrycks & Dietterich, listed in :data:`COMMON_CORRUPTIONS`,
  severity an int 1 … 5, re-implemented in batched torch with the parameter tables of the three
  published benchmarks (:data:`PRESETS`: ImageNet-C, Tiny ImageNet-C, CIFAR-10-C), chosen by
  image size or by ``preset=``.  Deviations from the reference numpy/OpenCV/Wand/PIL code are
  documented at each corruption in :func:`corrupt`.

Each kind is one small function ``(x, c, generator, ctx) -> x'`` in a registry keyed by its name;
:func:`corrupt` validates, looks up the severity's parameters and clamps the result.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_4d, check_choice, check_fraction, check_int, check_nonneg, check_real
from . import _image_ops as ops
from ._presets import ELASTIC_UNIT, FROST_CROP_STD, FROST_PHOTOS, PRESETS, TABLES, pick_preset

__all__ = ["NOISE_CORRUPTIONS", "COMMON_CORRUPTIONS", "CORRUPTIONS", "PRESETS", "corrupt", "pink_noise"]

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

class _Ctx(NamedTuple):
    """What a kind needs besides its parameter: the preset and pink's exponent."""

    preset: str
    exponent: float = 1.0


# ----------------------------------------------------------------------------- the kinds
# Each takes the images, the kind's parameter (σ or p for the noises, the severity's row of the
# preset's table for the common corruptions), the generator and the context; the draws happen in
# a fixed order per kind.
def _white(x: Tensor, sigma: float, g, ctx: _Ctx) -> Tensor:
    return x + sigma * ops.randn(x.shape, g, x)


def _pink(x: Tensor, sigma: float, g, ctx: _Ctx) -> Tensor:
    B, C, H, W = x.shape
    return x + sigma * ops.spectral_field(B * C, H, W, ctx.exponent, g, x).reshape(x.shape)


def _salt_and_pepper(x: Tensor, p: float, g, ctx: _Ctx) -> Tensor:
    B, _, H, W = x.shape
    u = ops.rand((B, 1, H, W), g, x)
    salt = ops.rand((B, 1, H, W), g, x) < 0.5
    hit = (u < p).expand_as(x)
    return torch.where(hit, salt.expand_as(x).to(x.dtype), x)


def _gaussian_noise(x: Tensor, c, g, ctx: _Ctx) -> Tensor:
    return x + c * ops.randn(x.shape, g, x)


def _shot_noise(x: Tensor, c, g, ctx: _Ctx) -> Tensor:
    lam = (x.clamp(0, 1) * c).double()
    if g is None:
        k = torch.poisson(lam)
    else:
        k = torch.poisson(lam.to(g.device), generator=g).to(x.device)
    return (k / c).to(x.dtype)


def _impulse_noise(x: Tensor, c, g, ctx: _Ctx) -> Tensor:
    u = ops.rand(x.shape, g, x)
    salt = ops.rand(x.shape, g, x) < 0.5
    return torch.where(u < c, salt.to(x.dtype), x)


def _defocus_blur(x: Tensor, c, g, ctx: _Ctx) -> Tensor:
    k = ops.disk_kernel(c[0], c[1], torch.float64)
    return ops.conv_same(x, k.to(x.device), "reflect101")


def _glass_blur(x: Tensor, c, g, ctx: _Ctx) -> Tensor:
    y = ops.gaussian_blur(x, c[0], mode="nearest")  # skimage's gaussian: scipy, mode "nearest"
    for _ in range(int(c[2])):  # 1–2 rounds, each a batched gather
        y = ops.glass_shuffle(y, int(c[1]), g)
    return ops.gaussian_blur(y, c[0], mode="nearest")


def _motion_blur(x: Tensor, c, g, ctx: _Ctx) -> Tensor:
    ang = ops.rand((x.shape[0],), g, x.double()) * 90 - 45
    k = ops.motion_kernels(c[0], c[1], ang, torch.float64).to(x.device)
    return ops.conv_same(x, k, "edge")


def _zoom_blur(x: Tensor, c, g, ctx: _Ctx) -> Tensor:
    stop, step = c
    n = math.ceil((stop - 1.0) / step)  # numpy.arange(1, stop, step)'s count
    acc = x.clone()
    for i in range(n):  # ≤ 26 zoom factors
        acc = acc + ops.zoom(x, 1.0 + i * step)
    return acc / (n + 1)


def _snow(x: Tensor, c, g, ctx: _Ctx) -> Tensor:
    B, _, H, W = x.shape
    loc, scale, zoom, thr, rad, sig, blend = c
    # the reference zooms the centre crop of a full field: draw the crop directly
    field = ops.randn((B, 1, math.ceil(H / zoom), math.ceil(W / zoom)), g, x) * scale + loc
    field = ops.clipped_zoom(field, zoom, H, W)
    field = torch.where(field < thr, torch.zeros_like(field), field).clamp(max=1.0)
    ang = ops.rand((B,), g, x.double()) * 90 - 135
    k = ops.motion_kernels(rad, sig, ang, torch.float64).to(x.device)
    snow = ops.conv_same(field, k, "edge")
    base = blend * x + (1 - blend) * torch.maximum(x, ops.gray(x) * 1.5 + 0.5)
    return base + snow + snow.flip(-1, -2)


def _frost(x: Tensor, c, g, ctx: _Ctx) -> Tensor:
    means = torch.tensor(FROST_PHOTOS, dtype=torch.float64)
    stds = torch.tensor(FROST_CROP_STD[ctx.preset], dtype=torch.float64)
    return c[0] * x + c[1] * ops.frost_texture(*x.shape, g, x, means, stds)


def _fog(x: Tensor, c, g, ctx: _Ctx) -> Tensor:
    B, _, H, W = x.shape
    amp, decay = c
    size = 1 << max(1, (max(H, W) - 1).bit_length())  # the power of two that covers the image
    field = ops.plasma_fractal(B, size, decay, g, x)[:, :H, :W]
    mx = x.amax((1, 2, 3), keepdim=True)
    y = x + amp * field[:, None]
    return y * mx / (mx + amp)


def _brightness(x: Tensor, c, g, ctx: _Ctx) -> Tensor:
    if x.shape[1] != 3:
        return x + c
    V = x.amax(1, keepdim=True)
    Vn = (V + c).clamp(max=1.0)
    scale = torch.where(V > 0, Vn / V.clamp_min(1e-12), torch.zeros_like(V))
    return torch.where(V > 0, x * scale, Vn.expand_as(x))


def _contrast(x: Tensor, c, g, ctx: _Ctx) -> Tensor:
    m = x.mean((2, 3), keepdim=True)
    return (x - m) * c + m


def _elastic_transform(x: Tensor, c, g, ctx: _Ctx) -> Tensor:
    px = ELASTIC_UNIT[ctx.preset]
    return ops.elastic(x, (c[0] * px, c[1] * px, c[2] * px), g)


def _pixelate(x: Tensor, c, g, ctx: _Ctx) -> Tensor:
    H, W = x.shape[-2:]
    Mh = ops.pixelate_matrix(H, max(1, int(H * c)), x.dtype, x.device)
    Mw = ops.pixelate_matrix(W, max(1, int(W * c)), x.dtype, x.device)
    return Mh @ x @ Mw.T


def _jpeg_compression(x: Tensor, c, g, ctx: _Ctx) -> Tensor:
    return ops.jpeg(x, int(c))


#: name -> function (x, c, generator, ctx) of every kind, in the order of :data:`CORRUPTIONS`.
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
    preset: Optional[str] = None,
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

    **Common corruptions** (Hendrycks & Dietterich, ICLR 2019; ``severity`` an int 1 … 5).  The
    three published benchmarks were each made with their own table: ``preset="imagenet"``
    (ImageNet-C, 224 px), ``"tiny_imagenet"`` (Tiny ImageNet-C, 64 px) or ``"cifar10"``
    (CIFAR-10-C, 32 px); ``None`` picks by the image side S = min(H, W): S ≤ 32 → cifar10,
    S ≤ 64 → tiny_imagenet, else imagenet.  Spatial parameters (radii, SDs, displacements)
    are the table's, in pixels, whatever the image size (they are not rescaled: the benchmark
    at its own size is exactly the table).  With c the severity's parameters in the preset's
    table:

    * ``"gaussian_noise"``: x + N(0, c²).  ``"shot_noise"``: Poisson(x·c)/c.
    * ``"impulse_noise"``: salt-and-pepper with amount c, independently per channel (as
      skimage's ``random_noise``).
    * ``"defocus_blur"``: the reference kernel: the binary disk X² + Y² ≤ r² on the integer
      grid −8 … 8 (−⌈r⌉ … ⌈r⌉ for r > 8), normalised, blurred by a 3×3 (5×5 for r > 8)
      Gaussian of SD c₁; convolved with reflect-101 borders (as OpenCV).
    * ``"glass_blur"``: Gaussian blur (σ = c₀), then c₂ rounds of the reference's local
      shuffle with δ = c₁, then the blur again.  The reference's loop "swaps" numpy views, which
      in effect copies into each visited pixel the current value at a random offset in
      {−δ, …, δ − 1}²; that is reproduced exactly, batched (see ``_image_ops.glass_shuffle``).
      Deviation: no uint8 rounding between the steps.
    * ``"motion_blur"``: ImageMagick's motion blur that the reference calls, at a random angle
      a in [−45°, 45°] per image: 2⌈c₀⌉ + 1 taps i = 0, 1, … with weights ∝ exp(−i²/2c₁²),
      tap i reading the pixel at the offset (⌈i·cos a − ½⌉, ⌈i·sin a − ½⌉), borders
      replicated.
    * ``"zoom_blur"``: the mean of x and its centre zooms by the factors of
      ``numpy.arange(1, c₀, c₁)`` (bilinear).
    * ``"snow"``: the reference snow layer (Gaussian field with mean/SD c₀, c₁ zoomed by c₂,
      thresholded at c₃, clipped to [0, 1], motion-blurred (c₄, c₅) as motion_blur at an
      angle in [−135°, −45°]) added twice (and rotated 180°) to the image blended towards
      max(x, 1.5·gray + 0.5) with weight c₆.  Deviation: no uint8 rounding of the layer.
    * ``"frost"``: x·c₀ + frost·c₁.  **Deviation:** the reference adds a random crop of one of
      five frost photographs (shrunk ×0.3 for Tiny ImageNet-C, ×0.2 for CIFAR-10-C), which
      torchtopo does not ship; the frost layer is synthesised instead — a ridged multi-scale
      texture given, per image, the mean RGB brightness and within-crop SD of one of the five
      photographs drawn at random (mean grey level 0.64 over the five; measured values in
      ``_presets.FROST_PHOTOS``).  Its brightness statistics match, its look does not.
    * ``"fog"``: x + c₀·fractal, then rescaled by max/(max + c₀), max over the image; the
      fractal is the reference's diamond-square plasma (random amplitude ÷ c₁ per level,
      normalised to [0, 1]) on the power-of-two square that covers the image (256 px for
      ImageNet-C, cropped), batched in torch (:func:`_image_ops.plasma_fractal`).
    * ``"brightness"``: V += c in HSV, i.e. every channel scaled by min(V + c, 1)/V
      (grayscale: x + c).
    * ``"contrast"``: (x − mean)·c + mean, the mean per image and channel.
    * ``"elastic_transform"``: a random affine (3 points moved by U(±c₂·u)) then a displacement
      field of U(−1, 1) noise smoothed by a Gaussian (σ = c₁·u) and scaled by c₀·u; bilinear,
      reflected borders; u = 244 px for ImageNet-C (as Hendrycks' code), the image side for
      the others.  Hendrycks' tables, not the changed ones of the ``imagecorruptions`` package.
    * ``"pixelate"``: the reference's two PIL ``resize`` calls with the BOX filter, in PIL's
      arithmetic: down-sampling to ⌊c·H⌋ × ⌊c·W⌋ (each coarse pixel the mean of the pixels
      whose centres it covers), then up-sampling back to H × W, a centre-sampled nearest.
    * ``"jpeg_compression"``: JPEG at quality c, implemented in torch: JFIF YCbCr (RGB) or
      a single luminance plane (other channel counts), 4:2:0 chroma subsampling, 8×8 DCT, IJG
      quality-scaled standard tables, rounding.  Without libjpeg's integer DCT, so values can
      differ from PIL's by a few grey levels.

    Severity and strength: the mean change mean|corrupt(x) − x| grows with severity for every
    corruption of every table except where the published tables themselves do not order it:
    elastic_transform (its affine part shrinks with severity), frost (ImageNet-C 3 → 4,
    CIFAR-10-C 3 → 5, where the image weight falls at a constant frost weight), glass_blur
    (a stronger blur before the shuffle lets the shuffle change less) and ImageNet-C's fog
    3 → 4 (same strength, rougher fractal); ``benchmarks/corruption_strength.py`` prints them.

    Args:
        x: (B, C, H, W) floating-point images in [0, 1], B ≥ 1.
        kind: one of :data:`CORRUPTIONS`.
        severity: σ or p (float) for the three noise kinds; an int in 1 … 5 otherwise.
        preset: ``"imagenet"``, ``"tiny_imagenet"``, ``"cifar10"`` or None (by image size);
            ignored by the three noise kinds.
        generator: a ``torch.Generator`` for reproducible draws (on any device; draws are moved
            to ``x``'s device).
        exponent: spectral exponent of ``"pink"`` (ignored by other kinds).

    Returns:
        the corrupted batch, same shape, dtype and device as ``x``, in [0, 1].

    Raises:
        ValueError: unknown ``kind`` or ``preset`` (the message lists the valid ones and the
            closest), severity out of range, ``x`` not (B, C, H, W) or empty.
        TypeError: ``x`` not a real floating-point tensor, or ``severity`` not a number.
    """
    who = "corrupt"
    x = check_4d(x, "x (images in [0, 1])", who)
    if x.numel() == 0:
        raise ValueError(f"{who}: x (images in [0, 1]) must hold at least one image with at least one pixel, got shape {tuple(x.shape)}")
    check_choice(kind, CORRUPTIONS, "kind", who)
    if preset is not None:
        check_choice(preset, PRESETS, "preset", who)
    sev = check_real(severity, f"severity of {kind!r}", who)
    if kind == "salt_and_pepper":
        level = check_fraction(sev, "severity of 'salt_and_pepper' (a pixel fraction)", who, closed_low=True, closed_high=True)
    elif kind in NOISE_CORRUPTIONS:
        level = check_nonneg(sev, f"severity of {kind!r}", who)
    else:
        if int(sev) != sev or not 1 <= int(sev) <= 5:
            raise ValueError(f"{who}: severity of {kind!r} must be an integer 1 … 5, got {severity!r}")
    H, W = x.shape[-2:]
    name = pick_preset(H, W) if preset is None else preset
    if kind not in NOISE_CORRUPTIONS:
        level = TABLES[name][kind][int(sev) - 1]
    ctx = _Ctx(name, check_real(exponent, "exponent", who))
    out = _KINDS[kind](x, level, generator, ctx)
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
    B, C, H, W = (check_int(s, "every entry of shape", "pink_noise", minimum=1) for s in shape)
    exponent = check_real(exponent, "exponent", "pink_noise")
    like = torch.empty(0, device=device, dtype=dtype)
    return ops.spectral_field(B * C, H, W, exponent, generator, like).reshape(B, C, H, W)
