r"""Robustness evaluations: image corruptions and weight perturbations, batched in torch.

Images are ``(B, C, H, W)`` tensors in [0, 1] (any size, any channel count, grayscale included):
corrupt them in pixel space, then let the model normalise (put :class:`torchtopo.data.Normalize`
first in the model).

Corruptions (:func:`corrupt`):

* ``"white"``, ``"pink"``, ``"salt_and_pepper"`` — the input degradations of Truong & Hasson
  (Truong & Hasson, arXiv:2508.00043); severity is the noise SD σ or the pixel fraction p (a float, e.g.
  0.01 … 0.2).
* the 15 common corruptions of ImageNet-C (Hendrycks & Dietterich, ICLR 2019), listed in
  :data:`COMMON_CORRUPTIONS`, severity an int 1 … 5, re-implemented in batched torch with the
  ImageNet-C severity parameters.  Spatial parameters (blur radii and SDs, displacements, sizes)
  are given for 224-px images and are multiplied by ``min(H, W) / 224`` (the rule Hendrycks'
  own Tiny ImageNet-C and CIFAR-10-C parameters follow approximately); integer displacements
  stay ≥ 1 px.  Deviations from the reference numpy/OpenCV/Wand/PIL code are documented at each
  corruption in :func:`corrupt`.

Weights: :func:`perturb_weights` (a context manager that restores the weights bit-exactly),
:func:`evaluate_corruptions`, :func:`evaluate_weight_noise` (accuracy change and the cosine
similarity of the readout's class-weight RSM before and after, Truong & Hasson, arXiv:2508.00043).
"""
from __future__ import annotations

import contextlib
import math
import zlib
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "NOISE_CORRUPTIONS",
    "COMMON_CORRUPTIONS",
    "CORRUPTIONS",
    "corrupt",
    "pink_noise",
    "perturb_weights",
    "readout_rsm",
    "evaluate_accuracy",
    "evaluate_corruptions",
    "evaluate_weight_noise",
]

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

_JPEG_LUMA = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
]
_JPEG_CHROMA = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
] + [99] * 32


# ----------------------------------------------------------------------------- random numbers
def _rand(shape, g: Optional[torch.Generator], like: Tensor) -> Tensor:
    if g is None:
        return torch.rand(shape, device=like.device, dtype=like.dtype)
    return torch.rand(shape, generator=g, device=g.device, dtype=like.dtype).to(like.device)


def _randn(shape, g: Optional[torch.Generator], like: Tensor) -> Tensor:
    if g is None:
        return torch.randn(shape, device=like.device, dtype=like.dtype)
    return torch.randn(shape, generator=g, device=g.device, dtype=like.dtype).to(like.device)


def _randint(lo: int, hi: int, shape, g: Optional[torch.Generator], device) -> Tensor:
    if g is None:
        return torch.randint(lo, hi, shape, device=device)
    return torch.randint(lo, hi, shape, generator=g, device=g.device).to(device)


# ----------------------------------------------------------------------------- filtering helpers
def _reflect_index(n: int, idx: Tensor) -> Tensor:
    """scipy 'reflect' (d c b a | a b c d | d c b a) for any offset, vectorised."""
    period = 2 * n
    i = idx % period
    return torch.where(i >= n, period - 1 - i, i)


def _blur_matrix(n: int, taps: Tensor, offsets: Tensor, device, dtype) -> Tensor:
    """(n, n) matrix M with (M x)[i] = Σ_t taps[t] · x[reflect(i + offsets[t])]."""
    i = torch.arange(n, device=device)
    cols = _reflect_index(n, i[:, None] + offsets.to(device)[None, :])  # (n, T)
    M = torch.zeros(n, n, device=device, dtype=dtype)
    M.scatter_add_(1, cols, taps.to(device, dtype)[None, :].expand(n, -1).contiguous())
    return M


def _gauss_taps(sigma: float, truncate: float = 4.0) -> Tuple[Tensor, Tensor]:
    r = max(1, int(math.ceil(truncate * sigma)))
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (t / sigma) ** 2)
    return w / w.sum(), t.long()


def _gaussian_blur(x: Tensor, sigma: float, truncate: float = 4.0) -> Tensor:
    """Separable Gaussian blur with reflected borders, valid for any σ (even > image size)."""
    if sigma <= 0:
        return x
    w, t = _gauss_taps(sigma, truncate)
    H, W = x.shape[-2:]
    Mh = _blur_matrix(H, w, t, x.device, x.dtype)
    Mw = _blur_matrix(W, w, t, x.device, x.dtype)
    return Mh @ x @ Mw.T


def _pad_reflect(x: Tensor, ph: int, pw: int) -> Tensor:
    """Reflect-pad by any amount (scipy 'reflect'), via index folding."""
    H, W = x.shape[-2:]
    ri = _reflect_index(H, torch.arange(-ph, H + ph, device=x.device))
    ci = _reflect_index(W, torch.arange(-pw, W + pw, device=x.device))
    return x[..., ri, :][..., :, ci]


def _conv_same(x: Tensor, kernel: Tensor) -> Tensor:
    """Convolve every (B, C) plane with a 2-D kernel (k_h, k_w) shared by the batch, or with
    per-image kernels (B, k_h, k_w); reflected borders, output the size of ``x``."""
    B, C, H, W = x.shape
    kh, kw = kernel.shape[-2:]
    xp = _pad_reflect(x, kh // 2, kw // 2)
    k = kernel.to(x.dtype).flip(-1, -2)  # conv2d is a correlation
    if kernel.dim() == 2:
        out = F.conv2d(xp.reshape(B * C, 1, *xp.shape[-2:]), k[None, None])
        return out.reshape(B, C, H, W)
    wk = k[:, None].repeat_interleave(C, dim=0)  # (B*C, 1, kh, kw)
    out = F.conv2d(xp.reshape(1, B * C, *xp.shape[-2:]), wk, groups=B * C)
    return out.reshape(B, C, H, W)


def _disk_kernel(radius: float, alias_blur: float, dtype) -> Tensor:
    """Anti-aliased disk (area coverage by 8×8 supersampling), then a Gaussian of SD alias_blur."""
    r = max(radius, 0.5)
    R = int(math.ceil(r)) + 1
    ss = 8
    t = (torch.arange(-R * ss, (R + 1) * ss, dtype=torch.float64) + 0.5) / ss - 0.5
    X, Y = torch.meshgrid(t, t, indexing="ij")
    inside = ((X * X + Y * Y) <= r * r).double()
    k = inside.reshape(2 * R + 1, ss, 2 * R + 1, ss).mean((1, 3))
    k = k / k.sum()
    if alias_blur > 0:
        w, off = _gauss_taps(alias_blur, 3.0)
        M = _blur_matrix(2 * R + 1, w, off, "cpu", torch.float64)
        k = M @ k @ M.T
        k = k / k.sum()
    return k.to(dtype)


def _motion_kernels(radius: float, sigma: float, angles_deg: Tensor, dtype) -> Tensor:
    """Per-image one-sided Gaussian line kernels (the Wand/ImageNet-C motion blur): taps
    i = 0 … L−1 with weight exp(−i²/2σ²), placed at i·(cos a, sin a), bilinearly splatted."""
    L = max(2, int(math.ceil(max(radius, 1.0))) + 1)
    i = torch.arange(L, dtype=torch.float64)
    w = torch.exp(-0.5 * (i / max(sigma, 1e-3)) ** 2)
    w = w / w.sum()
    R = L
    size = 2 * R + 1
    a = angles_deg.double().cpu() * math.pi / 180
    px = R + i[None, :] * torch.cos(a)[:, None]  # (B, L) column
    py = R - i[None, :] * torch.sin(a)[:, None]  # (B, L) row (image y points down)
    B = a.numel()
    k = torch.zeros(B, size * size, dtype=torch.float64)
    x0, y0 = px.floor(), py.floor()
    for dx in (0, 1):  # bilinear splat: 4 corners (a loop over 4 constants, not pixels)
        for dy in (0, 1):
            wx = (1 - (px - x0)) if dx == 0 else (px - x0)
            wy = (1 - (py - y0)) if dy == 0 else (py - y0)
            xi = (x0 + dx).clamp(0, size - 1).long()
            yi = (y0 + dy).clamp(0, size - 1).long()
            k.scatter_add_(1, yi * size + xi, w[None, :] * wx * wy)
    k = k.reshape(B, size, size)
    return (k / k.sum((1, 2), keepdim=True)).to(dtype)


def _gray(x: Tensor) -> Tensor:
    if x.shape[1] == 3:
        w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x * w).sum(1, keepdim=True)
    return x.mean(1, keepdim=True)


def _zoom(x: Tensor, z: float) -> Tensor:
    """Zoom into the centre by factor z ≥ 1 (crop 1/z of the image, resize back), bilinear."""
    B = x.shape[0]
    theta = torch.tensor([[1.0 / z, 0, 0], [0, 1.0 / z, 0]], device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta.expand(B, 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _spectral_field(B: int, H: int, W: int, exponent: float, g, like: Tensor) -> Tensor:
    """(B, H, W) Gaussian random field with power ∝ 1/f^exponent (zero mean, unit SD)."""
    z = _randn((B, H, W), g, like.double() if like.dtype != torch.float64 else like)
    Z = torch.fft.rfft2(z)
    fy = torch.fft.fftfreq(H, device=like.device, dtype=torch.float64)
    fx = torch.fft.rfftfreq(W, device=like.device, dtype=torch.float64)
    f = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    amp = torch.where(f > 0, f.clamp_min(1e-12) ** (-exponent / 2), torch.zeros_like(f))
    n = torch.fft.irfft2(Z * amp, s=(H, W))
    n = n - n.mean((1, 2), keepdim=True)
    sd = n.std(dim=(1, 2), keepdim=True, correction=0)
    return (n / torch.where(sd > 0, sd, torch.ones_like(sd))).to(like.dtype)


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
    return _spectral_field(B * C, H, W, exponent, generator, like).reshape(B, C, H, W)


# ----------------------------------------------------------------------------- JPEG in torch
def _dct_matrix(n: int, dtype, device) -> Tensor:
    k = torch.arange(n, dtype=torch.float64)
    D = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2.0 / n)
    D[0] /= math.sqrt(2.0)
    return D.to(device=device, dtype=dtype)


def _quant_table(base: Sequence[int], quality: int, device) -> Tensor:
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    t = torch.tensor(base, dtype=torch.float64)
    return ((t * scale + 50) // 100).clamp(1, 255).reshape(8, 8).to(device)


def _jpeg_plane(p: Tensor, table: Tensor) -> Tensor:
    """Encode/decode (N, H, W) planes in [0, 255]: level shift, 8×8 DCT, quantise, inverse."""
    N, H, W = p.shape
    Hp, Wp = -(-H // 8) * 8, -(-W // 8) * 8
    q = F.pad(p[:, None], (0, Wp - W, 0, Hp - H), mode="replicate")[:, 0] - 128.0
    blocks = q.reshape(N, Hp // 8, 8, Wp // 8, 8).permute(0, 1, 3, 2, 4)  # (N, bh, bw, 8, 8)
    D = _dct_matrix(8, q.dtype, q.device)
    c = D @ blocks @ D.T
    c = torch.round(c / table) * table
    r = D.T @ c @ D
    r = r.permute(0, 1, 3, 2, 4).reshape(N, Hp, Wp)[:, :H, :W] + 128.0
    return r


def _jpeg(x: Tensor, quality: int) -> Tensor:
    B, C, H, W = x.shape
    xd = x.double() * 255.0
    luma = _quant_table(_JPEG_LUMA, quality, x.device)
    chroma = _quant_table(_JPEG_CHROMA, quality, x.device)
    if C != 3:
        out = _jpeg_plane(xd.reshape(B * C, H, W), luma).reshape(B, C, H, W)
    else:
        r, g, b = xd[:, 0], xd[:, 1], xd[:, 2]
        Y = 0.299 * r + 0.587 * g + 0.114 * b
        Cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
        Cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
        Y = _jpeg_plane(Y, luma)
        # 4:2:0 chroma subsampling (PIL's default): average 2×2, code, upsample back
        ch = torch.stack([Cb, Cr], 1)
        hs, ws = -(-H // 2), -(-W // 2)
        chs = F.avg_pool2d(F.pad(ch, (0, 2 * ws - W, 0, 2 * hs - H), mode="replicate"), 2)
        chs = _jpeg_plane(chs.reshape(B * 2, hs, ws), chroma).reshape(B, 2, hs, ws)
        ch = F.interpolate(chs, scale_factor=2, mode="nearest")[..., :H, :W]
        Cb, Cr = ch[:, 0] - 128, ch[:, 1] - 128
        out = torch.stack([Y + 1.402 * Cr, Y - 0.344136 * Cb - 0.714136 * Cr, Y + 1.772 * Cb], 1)
    return (torch.round(out.clamp(0, 255)) / 255.0).to(x.dtype)


# ----------------------------------------------------------------------------- corrupt
def _check_images(x: Any, who: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{who}: x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{who}: x must be (B, C, H, W) images in [0, 1], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{who}: x must be a floating-point tensor in [0, 1], got dtype {x.dtype}")
    return x


def corrupt(
    x: Tensor,
    kind: str,
    severity: Union[int, float],
    *,
    generator: Optional[torch.Generator] = None,
    exponent: float = 1.0,
) -> Tensor:
    r"""Corrupt a batch of images in [0, 1]; the result is clamped to [0, 1].

    **Noise of Truong & Hasson** (Truong & Hasson, arXiv:2508.00043; ``severity`` a float ≥ 0):

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
        ValueError: unknown ``kind`` (the message lists the valid ones), severity out of range,
            or ``x`` not (B, C, H, W).
    """
    who = "corrupt"
    x = _check_images(x, who)
    if not isinstance(kind, str) or kind not in CORRUPTIONS:
        raise ValueError(f"{who}: unknown corruption kind {kind!r}; valid kinds: {', '.join(CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, (int, float)):
        raise TypeError(f"{who}: severity must be a number, got {type(severity).__name__}")
    if kind in NOISE_CORRUPTIONS:
        sev = float(severity)
        if not math.isfinite(sev) or sev < 0:
            raise ValueError(f"{who}: severity of {kind!r} must be a finite number >= 0, got {severity!r}")
        if kind == "salt_and_pepper" and sev > 1:
            raise ValueError(f"{who}: severity of 'salt_and_pepper' is a pixel fraction in [0, 1], got {severity!r}")
    else:
        if int(severity) != severity or not 1 <= int(severity) <= 5:
            raise ValueError(f"{who}: severity of {kind!r} must be an integer 1 … 5, got {severity!r}")
    out = _corrupt(x, kind, severity, generator, exponent)
    return out.clamp(0, 1).to(x.dtype)


def _corrupt(x: Tensor, kind: str, severity, g, exponent) -> Tensor:  # noqa: C901
    B, C, H, W = x.shape
    g_ = g
    if kind == "white":
        return x + float(severity) * _randn(x.shape, g_, x)
    if kind == "pink":
        return x + float(severity) * _spectral_field(B * C, H, W, exponent, g_, x).reshape(x.shape)
    if kind == "salt_and_pepper":
        p = float(severity)
        u = _rand((B, 1, H, W), g_, x)
        salt = _rand((B, 1, H, W), g_, x) < 0.5
        hit = (u < p).expand_as(x)
        return torch.where(hit, salt.expand_as(x).to(x.dtype), x)

    c = _P[kind][int(severity) - 1]
    s = min(H, W) / 224.0
    if kind == "gaussian_noise":
        return x + c * _randn(x.shape, g_, x)
    if kind == "shot_noise":
        lam = (x.clamp(0, 1) * c).double()
        if g_ is None:
            k = torch.poisson(lam)
        else:
            k = torch.poisson(lam.to(g_.device), generator=g_).to(x.device)
        return (k / c).to(x.dtype)
    if kind == "impulse_noise":
        u = _rand(x.shape, g_, x)
        salt = _rand(x.shape, g_, x) < 0.5
        return torch.where(u < c, salt.to(x.dtype), x)
    if kind == "defocus_blur":
        k = _disk_kernel(c[0] * s, c[1], torch.float64)
        return _conv_same(x, k.to(x.device))
    if kind == "glass_blur":
        sigma, delta, iters = c[0] * s, max(1, round(c[1] * s)), c[2]
        y = _gaussian_blur(x, sigma)
        rows = torch.arange(H, device=x.device)[:, None]
        cols = torch.arange(W, device=x.device)[None, :]
        for _ in range(iters):  # a loop over 1–3 rounds, not over pixels
            dy = _randint(-delta, delta + 1, (B, H, W), g_, x.device)
            dx = _randint(-delta, delta + 1, (B, H, W), g_, x.device)
            r = (rows + dy).clamp(0, H - 1)
            cc = (cols + dx).clamp(0, W - 1)
            idx = (r * W + cc).reshape(B, 1, H * W).expand(B, C, H * W)
            y = y.reshape(B, C, H * W).gather(2, idx).reshape(B, C, H, W)
        return _gaussian_blur(y, sigma)
    if kind == "motion_blur":
        ang = _rand((B,), g_, x.double()) * 90 - 45
        k = _motion_kernels(c[0] * s, c[1] * s, ang, torch.float64).to(x.device)
        return _conv_same(x, k)
    if kind == "zoom_blur":
        lo, hi, step = c
        zooms = torch.arange(lo, hi - 1e-9, step, dtype=torch.float64).tolist()
        acc = x.clone()
        for z in zooms:  # ≤ 16 zoom factors
            acc = acc + _zoom(x, float(z))
        return acc / (len(zooms) + 1)
    if kind == "snow":
        loc, scale, zoom, thr, rad, sig, blend = c
        zoom = max(1.0, zoom * s)  # flake size scales with the image like the other lengths
        hs, ws = max(1, int(math.ceil(H / zoom))), max(1, int(math.ceil(W / zoom)))
        field = _randn((B, 1, hs, ws), g_, x) * scale + loc
        field = F.interpolate(field, size=(H, W), mode="bilinear", align_corners=False)
        field = torch.where(field < thr, torch.zeros_like(field), field)
        ang = _rand((B,), g_, x.double()) * 90 - 135
        k = _motion_kernels(rad * s, sig * s, ang, torch.float64).to(x.device)
        snow = _conv_same(field, k)
        base = blend * x + (1 - blend) * torch.maximum(x, _gray(x) * 1.5 + 0.5)
        return base + snow + snow.flip(-1, -2)
    if kind == "frost":
        frost = _frost_texture(B, C, H, W, g_, x)
        return c[0] * x + c[1] * frost
    if kind == "fog":
        amp, decay = c
        # diamond-square with amplitude ÷ decay per octave: Hurst H = log2(decay), 2-D power ∝ 1/f^(2H+2)
        field = _spectral_field(B, H, W, 2 + 2 * math.log2(decay), g_, x)
        lo = field.amin((1, 2), keepdim=True)
        hi = field.amax((1, 2), keepdim=True)
        field = (field - lo) / (hi - lo).clamp_min(1e-12)
        mx = x.amax((1, 2, 3), keepdim=True)
        y = x + amp * field[:, None]
        return y * mx / (mx + amp)
    if kind == "brightness":
        if C != 3:
            return x + c
        V = x.amax(1, keepdim=True)
        Vn = (V + c).clamp(max=1.0)
        scale = torch.where(V > 0, Vn / V.clamp_min(1e-12), torch.zeros_like(V))
        return torch.where(V > 0, x * scale, Vn.expand_as(x))
    if kind == "contrast":
        m = x.mean((2, 3), keepdim=True)
        return (x - m) * c + m
    if kind == "elastic_transform":
        return _elastic(x, c, g_)
    if kind == "pixelate":
        h2, w2 = max(1, int(H * c)), max(1, int(W * c))
        small = F.adaptive_avg_pool2d(x, (h2, w2))
        return F.interpolate(small, size=(H, W), mode="nearest")
    if kind == "jpeg_compression":
        return _jpeg(x, int(c))
    raise AssertionError(kind)  # pragma: no cover


def _frost_texture(B: int, C: int, H: int, W: int, g, like: Tensor) -> Tensor:
    """Procedural frost: ridged multi-scale noise plus grain, mean ≈ 0.45, in [0, 1]."""
    f1 = _spectral_field(B, H, W, 3.0, g, like)
    f2 = _spectral_field(B, H, W, 2.0, g, like)
    ridges = (1 - f1.abs().clamp(max=1.0)) ** 4 + 0.6 * (1 - f2.abs().clamp(max=1.0)) ** 6
    grain = _rand((B, H, W), g, like)
    t = 0.88 * ridges / ridges.amax((1, 2), keepdim=True).clamp_min(1e-12) + 0.12 * grain
    t = t - t.mean((1, 2), keepdim=True) + 0.45
    t = t.clamp(0, 1)[:, None].expand(B, C, H, W)
    if C == 3:
        tint = torch.tensor([0.92, 0.96, 1.0], device=like.device, dtype=like.dtype).view(1, 3, 1, 1)
        t = t * tint
    return t


def _elastic(x: Tensor, c, g) -> Tensor:
    B, C, H, W = x.shape
    S = float(min(H, W))
    alpha, sigma, aff = c[0] * S, c[1] * S, c[2] * S
    dt = torch.float64
    # random affine from three points around the centre (as cv2.getAffineTransform)
    cy, cx = H // 2, W // 2
    sq = max(1, min(H, W) // 3)
    p1 = torch.tensor([[cx + sq, cy + sq], [cx + sq, cy - sq], [cx - sq, cy - sq]], dtype=dt, device=x.device)
    p2 = p1[None] + (_rand((B, 3, 2), g, x.to(dt)) * 2 - 1) * aff
    A = torch.cat([p1, torch.ones(3, 1, dtype=dt, device=x.device)], 1)  # (3, 3)
    M = torch.linalg.solve(A[None].expand(B, 3, 3), p2).transpose(1, 2)  # (B, 2, 3): p2 = M @ [p1; 1]
    # pixel grid; warpAffine maps output o to source M⁻¹ o
    Mf = torch.cat([M, torch.tensor([0, 0, 1], dtype=dt, device=x.device).expand(B, 1, 3)], 1)
    Minv = torch.linalg.inv(Mf)
    yy, xx = torch.meshgrid(torch.arange(H, dtype=dt, device=x.device), torch.arange(W, dtype=dt, device=x.device), indexing="ij")
    ones = torch.ones_like(xx)
    P = torch.stack([xx, yy, ones], 0).reshape(3, -1)  # (3, HW)
    # elastic displacement in the output frame, then the affine
    dx = _gaussian_blur(_rand((B, 1, H, W), g, x.to(dt)) * 2 - 1, sigma, truncate=3.0)[:, 0] * alpha
    dy = _gaussian_blur(_rand((B, 1, H, W), g, x.to(dt)) * 2 - 1, sigma, truncate=3.0)[:, 0] * alpha
    qx = xx[None] + dx
    qy = yy[None] + dy
    Q = torch.stack([qx, qy, torch.ones_like(qx)], 1).reshape(B, 3, -1)
    src = (Minv @ Q)[:, :2].reshape(B, 2, H, W)
    gx = (src[:, 0] + 0.5) / W * 2 - 1
    gy = (src[:, 1] + 0.5) / H * 2 - 1
    grid = torch.stack([gx, gy], -1).to(x.dtype)
    del P, ones
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


# ----------------------------------------------------------------------------- weights
def _select_params(model: nn.Module, modules, include_bias: bool, who: str) -> List[Tuple[str, nn.Parameter]]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{who}: model must be an nn.Module, got {type(model).__name__}")
    named = dict(model.named_modules())
    if modules is None:
        mods = [("", model)]
    else:
        if isinstance(modules, (str, nn.Module)):
            modules = [modules]
        mods = []
        for m in modules:
            if isinstance(m, str):
                if m not in named:
                    import difflib

                    close = difflib.get_close_matches(m, [n for n in named if n], n=5, cutoff=0.5)
                    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
                    raise ValueError(f"{who}: the model has no module named {m!r}{hint}")
                mods.append((m, named[m]))
            elif isinstance(m, nn.Module):
                mods.append(("", m))
            else:
                raise TypeError(f"{who}: modules must be names or nn.Modules, got {type(m).__name__}")
    seen, out = set(), []
    for prefix, mod in mods:
        for n, p in mod.named_parameters():
            if id(p) in seen:
                continue
            if not include_bias and (n.endswith("bias") or p.dim() < 2):
                continue
            seen.add(id(p))
            out.append((f"{prefix}.{n}" if prefix else n, p))
    return out


@contextlib.contextmanager
def perturb_weights(
    model: nn.Module,
    sigma: float,
    *,
    modules: Optional[Union[str, nn.Module, Sequence[Union[str, nn.Module]]]] = None,
    relative: bool = False,
    include_bias: bool = True,
    generator: Optional[torch.Generator] = None,
) -> Iterator[nn.Module]:
    r"""Add Gaussian noise to a model's weights inside a ``with`` block; restore them exactly.

    .. math:: w \leftarrow w + \sigma\,\epsilon,\quad \epsilon \sim N(0, 1)
              \qquad(\text{or } \sigma \cdot \mathrm{SD}(w)\,\epsilon \text{ with } relative)

    The weight-perturbation test of Truong & Hasson (arXiv:2508.00043): noise on the topographic
    layer only (``modules="fc1"``) or on all layers (default).  The original values are
    copied before and written back afterwards (``copy_``), so the weights are bit-exactly
    restored even if the block raises.

    Args:
        model: the network.
        sigma: noise SD (≥ 0).
        modules: module names / modules whose parameters are perturbed (default: all).
        relative: scale σ by each parameter tensor's own SD.
        include_bias: also perturb biases (and other 1-D parameters).
        generator: for reproducible noise.

    Yields:
        the model, perturbed.

    Example:
        >>> with tt.robustness.perturb_weights(model, 0.05, modules="fc1"):
        ...     acc = evaluate(model)
    """
    who = "perturb_weights"
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"{who}: sigma must be a finite number >= 0, got {sigma!r}")
    params = _select_params(model, modules, include_bias, who)
    saved = [p.detach().clone() for _, p in params]
    try:
        with torch.no_grad():
            for _, p in params:
                n = _randn(p.shape, generator, p.detach())
                scale = sigma * (p.detach().float().std().to(p.dtype) if relative and p.numel() > 1 else 1.0)
                p.add_(n * scale)
        yield model
    finally:
        with torch.no_grad():
            for (_, p), s in zip(params, saved):
                p.copy_(s)


def readout_rsm(weight: Tensor) -> Tensor:
    r"""Representational similarity matrix of a readout's class weight vectors: the Pearson
    correlation between every pair of rows of ``weight`` (C × D), a (C, C) matrix."""
    if not isinstance(weight, Tensor) or weight.dim() != 2:
        raise ValueError(f"readout_rsm: weight must be a (classes, features) tensor, got {getattr(weight, 'shape', weight)!r}")
    w = weight.detach().double()
    z = w - w.mean(1, keepdim=True)
    z = z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return z @ z.T


def _rsm_cosine(a: Tensor, b: Tensor) -> float:
    iu = torch.triu_indices(a.shape[0], a.shape[0], offset=1)
    va, vb = a[iu[0], iu[1]], b[iu[0], iu[1]]
    return float((va @ vb) / (va.norm() * vb.norm()).clamp_min(1e-12))


def _data_batches(data, batch_size: int, who: str):
    from .analysis.topographic import _batches

    for x, y in _batches(data, batch_size, who):
        if y is None:
            raise ValueError(f"{who}: data must yield labels: pass (images, labels) or a labelled loader")
        yield x, y


@torch.no_grad()
def evaluate_accuracy(
    model: nn.Module,
    data: Any,
    *,
    transform=None,
    batch_size: int = 128,
    device: Optional[Union[str, torch.device]] = None,
) -> float:
    """Top-1 accuracy (%) of ``model`` on ``data`` ((x, y) tensors, a Dataset or a DataLoader),
    optionally after ``transform(x)``; runs in eval mode and restores the previous mode."""
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    was = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    n = 0
    try:
        for x, y in _data_batches(data, batch_size, "evaluate_accuracy"):
            x, y = x.to(device), y.to(device)
            if transform is not None:
                x = transform(x)
            correct += (model(x).argmax(1) == y).sum()
            n += y.numel()
    finally:
        model.train(was)
    if n == 0:
        raise ValueError("evaluate_accuracy: data yielded no samples")
    return 100.0 * float(correct) / n


def evaluate_corruptions(
    model: nn.Module,
    data: Any,
    *,
    kinds: Sequence[str] = NOISE_CORRUPTIONS,
    severities: Optional[Union[Sequence[Union[int, float]], Dict[str, Sequence[Union[int, float]]]]] = None,
    seed: int = 0,
    batch_size: int = 128,
    device: Optional[Union[str, torch.device]] = None,
    **corrupt_kwargs: Any,
) -> Dict[str, Any]:
    r"""Accuracy under each corruption and severity, and its change from clean accuracy.

    The images of ``data`` must be in [0, 1] (the model normalises).  Each (kind, severity)
    uses its own generator seeded from ``seed``, the kind and the severity value, so results are
    reproducible and every model sees the same corrupted images.

    Args:
        model: the classifier.
        data: (x, y) tensors, a Dataset or a DataLoader of images in [0, 1] and labels.
        kinds: corruption kinds (:data:`CORRUPTIONS`).
        severities: a list used for every kind, or ``{kind: list}``; default
            (0.01, 0.05, 0.1, 0.15, 0.2) for the noise kinds (Truong & Hasson, arXiv:2508.00043) and 1 … 5 for the
            common corruptions.
        seed: base seed.
        corrupt_kwargs: passed to :func:`corrupt` (e.g. ``exponent``).

    Returns:
        a dict: ``"clean"`` the clean accuracy (%), and ``"severities"``, ``"accuracy"`` (%) and
        ``"change"`` (accuracy − clean, percentage points), each a dict from kind to a list over
        the severities.
    """
    who = "evaluate_corruptions"
    if isinstance(kinds, str):
        kinds = [kinds]
    for k in kinds:
        if k not in CORRUPTIONS:
            raise ValueError(f"{who}: unknown corruption kind {k!r}; valid kinds: {', '.join(CORRUPTIONS)}")
    clean = evaluate_accuracy(model, data, batch_size=batch_size, device=device)
    out: Dict[str, Any] = {"clean": clean, "severities": {}, "accuracy": {}, "change": {}}
    for ki, kind in enumerate(kinds):
        if isinstance(severities, dict):
            sevs = list(severities.get(kind, ()))
        elif severities is not None:
            sevs = list(severities)
        else:
            sevs = [0.01, 0.05, 0.1, 0.15, 0.2] if kind in NOISE_CORRUPTIONS else [1, 2, 3, 4, 5]
        accs = []
        for si, sev in enumerate(sevs):
            g = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(f"{kind}:{float(sev)!r}".encode())) % (2**63))
            accs.append(
                evaluate_accuracy(
                    model,
                    data,
                    transform=lambda x, kind=kind, sev=sev, g=g: corrupt(x, kind, sev, generator=g, **corrupt_kwargs),
                    batch_size=batch_size,
                    device=device,
                )
            )
        out["severities"][kind] = sevs
        out["accuracy"][kind] = accs
        out["change"][kind] = [a - clean for a in accs]
    return out


def evaluate_weight_noise(
    model: nn.Module,
    data: Any,
    sigmas: Sequence[float] = (0.01, 0.02, 0.05, 0.1, 0.2),
    *,
    modules: Optional[Union[str, nn.Module, Sequence[Union[str, nn.Module]]]] = None,
    readout: Union[str, nn.Module, None] = None,
    repeats: int = 3,
    relative: bool = False,
    include_bias: bool = True,
    seed: int = 0,
    batch_size: int = 128,
    device: Optional[Union[str, torch.device]] = None,
) -> Dict[str, Any]:
    r"""Robustness to Gaussian weight noise (Truong & Hasson, arXiv:2508.00043).

    For each σ and ``repeats`` noise draws (:func:`perturb_weights`): (a) the accuracy change
    from the clean model, and (b) the cosine similarity between the readout's class-weight RSM
    (:func:`readout_rsm`, the Pearson correlations between its rows) before and after the
    perturbation, over the off-diagonal upper triangle:

    .. math:: \cos(\mathrm{RSM}, \mathrm{RSM}') = \frac{\langle u, u' \rangle}{\lVert u\rVert\,\lVert u'\rVert},
              \quad u = \mathrm{triu}_{>0}(\mathrm{RSM})

    (1 when the readout is not among the perturbed modules.)

    Args:
        model: the classifier.
        data: labelled data as in :func:`evaluate_corruptions`.
        sigmas: noise SDs.
        modules: perturbed modules (default: all layers); e.g. ``"fc1"``.
        readout: the readout layer (default: the last ``nn.Linear`` of the model).
        repeats: noise draws per σ (results averaged).

    Returns:
        a dict: ``"clean"`` accuracy (%), and lists over σ of ``"accuracy"``, ``"change"``
        (percentage points) and ``"rsm_cosine"``, means over the repeats; ``"sigmas"``.
    """
    who = "evaluate_weight_noise"
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"{who}: repeats must be a positive int, got {repeats!r}")
    if readout is None:
        lin = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not lin:
            raise ValueError(f"{who}: the model has no nn.Linear readout; pass readout=")
        ro = lin[-1]
    elif isinstance(readout, str):
        named = dict(model.named_modules())
        if readout not in named:
            raise ValueError(f"{who}: the model has no module named {readout!r}")
        ro = named[readout]
    else:
        ro = readout
    if not isinstance(getattr(ro, "weight", None), Tensor) or ro.weight.dim() != 2:
        raise TypeError(f"{who}: the readout must have a 2-D weight (classes × features), got {type(ro).__name__}")
    clean = evaluate_accuracy(model, data, batch_size=batch_size, device=device)
    rsm0 = readout_rsm(ro.weight)
    accs, rsms = [], []
    for si, sigma in enumerate(sigmas):
        a_s, r_s = [], []
        for r in range(repeats):
            dev = ro.weight.device
            g = torch.Generator(device=dev).manual_seed(seed * 1_000_003 + si * 1009 + r)
            with perturb_weights(model, float(sigma), modules=modules, relative=relative, include_bias=include_bias, generator=g):
                a_s.append(evaluate_accuracy(model, data, batch_size=batch_size, device=device))
                r_s.append(_rsm_cosine(rsm0, readout_rsm(ro.weight)))
        accs.append(sum(a_s) / repeats)
        rsms.append(sum(r_s) / repeats)
    return {
        "clean": clean,
        "sigmas": [float(s) for s in sigmas],
        "accuracy": accs,
        "change": [a - clean for a in accs],
        "rsm_cosine": rsms,
    }
