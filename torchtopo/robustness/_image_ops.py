"""Batched image operations behind the corruptions (private): seeded draws, reflected-border
filtering (Gaussian, disk, motion and zoom blur), spectral noise fields, the procedural frost
layer, the elastic warp and a JPEG codec in torch.

Images are ``(B, C, H, W)`` floating-point tensors; every draw takes an optional
``torch.Generator`` on any device and moves the numbers to the image's device.
"""
from __future__ import annotations

import functools
import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


# ----------------------------------------------------------------------------- random numbers
def rand(shape, g: Optional[torch.Generator], like: Tensor) -> Tensor:
    """U[0, 1) draws of ``like``'s dtype on its device (drawn on the generator's device)."""
    if g is None:
        return torch.rand(shape, device=like.device, dtype=like.dtype)
    return torch.rand(shape, generator=g, device=g.device, dtype=like.dtype).to(like.device)


def randn(shape, g: Optional[torch.Generator], like: Tensor) -> Tensor:
    """N(0, 1) draws of ``like``'s dtype on its device (drawn on the generator's device)."""
    if g is None:
        return torch.randn(shape, device=like.device, dtype=like.dtype)
    return torch.randn(shape, generator=g, device=g.device, dtype=like.dtype).to(like.device)


def randint(lo: int, hi: int, shape, g: Optional[torch.Generator], device) -> Tensor:
    """Integers in [lo, hi) on ``device`` (drawn on the generator's device)."""
    if g is None:
        return torch.randint(lo, hi, shape, device=device)
    return torch.randint(lo, hi, shape, generator=g, device=g.device).to(device)


# ----------------------------------------------------------------------------- filtering
def _reflect_index(n: int, idx: Tensor) -> Tensor:
    """scipy 'reflect' (d c b a | a b c d | d c b a) for any offset, vectorised."""
    period = 2 * n
    i = idx % period
    return torch.where(i >= n, period - 1 - i, i)


def _reflect101_index(n: int, idx: Tensor) -> Tensor:
    """OpenCV's BORDER_REFLECT_101 (d c b | a b c d | c b a) for any offset, vectorised."""
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * n - 2
    i = idx % period
    return torch.where(i >= n, period - i, i)


def _blur_matrix(n: int, taps: Tensor, offsets: Tensor, device, dtype, mode: str = "reflect") -> Tensor:
    """(n, n) matrix M with (M x)[i] = Σ_t taps[t] · x[fold(i + offsets[t])], fold scipy's
    'reflect' or 'nearest' (edge replication)."""
    i = torch.arange(n, device=device)
    j = i[:, None] + offsets.to(device)[None, :]
    cols = _reflect_index(n, j) if mode == "reflect" else j.clamp(0, n - 1)  # (n, T)
    M = torch.zeros(n, n, device=device, dtype=dtype)
    M.scatter_add_(1, cols, taps.to(device, dtype)[None, :].expand(n, -1).contiguous())
    return M


def _gauss_taps(sigma: float, truncate: float = 4.0) -> Tuple[Tensor, Tensor]:
    r = int(truncate * sigma + 0.5)  # scipy.ndimage's radius
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (t / sigma) ** 2)
    return w / w.sum(), t.long()


def gaussian_blur(x: Tensor, sigma: float, truncate: float = 4.0, mode: str = "reflect") -> Tensor:
    """Separable Gaussian blur as scipy.ndimage.gaussian_filter (radius ⌊truncate·σ + ½⌋,
    borders ``mode`` "reflect" or "nearest"), valid for any σ (even > image size)."""
    if sigma <= 0:
        return x
    w, t = _gauss_taps(sigma, truncate)
    H, W = x.shape[-2:]
    Mh = _blur_matrix(H, w, t, x.device, x.dtype, mode)
    Mw = _blur_matrix(W, w, t, x.device, x.dtype, mode)
    return Mh @ x @ Mw.T


def _pad_reflect(x: Tensor, ph: int, pw: int, mode: str = "reflect") -> Tensor:
    """Pad by any amount (scipy 'reflect', OpenCV's 'reflect101', or 'edge' replication), via index
    folding."""
    H, W = x.shape[-2:]
    fold = {"reflect": _reflect_index, "reflect101": _reflect101_index, "edge": lambda n, i: i.clamp(0, n - 1)}[mode]
    ri = fold(H, torch.arange(-ph, H + ph, device=x.device))
    ci = fold(W, torch.arange(-pw, W + pw, device=x.device))
    return x[..., ri, :][..., :, ci]


def conv_same(x: Tensor, kernel: Tensor, mode: str = "reflect") -> Tensor:
    """Convolve every (B, C) plane with a 2-D kernel (k_h, k_w) shared by the batch, or with
    per-image kernels (B, k_h, k_w); borders by ``mode``: "reflect" (scipy), "reflect101"
    (OpenCV) or "edge" (replicated, ImageMagick's default); output the size of ``x``."""
    B, C, H, W = x.shape
    kh, kw = kernel.shape[-2:]
    xp = _pad_reflect(x, kh // 2, kw // 2, mode)
    if kh * kw > 400:  # large kernels: the same circular-free product in the Fourier domain
        Hp, Wp = xp.shape[-2:]
        kf = torch.fft.rfft2(kernel.to(torch.float64), s=(Hp, Wp))
        kf = kf if kernel.dim() == 2 else kf[:, None]
        full = torch.fft.irfft2(torch.fft.rfft2(xp.to(torch.float64)) * kf, s=(Hp, Wp))
        return full[..., kh - 1 : kh - 1 + H, kw - 1 : kw - 1 + W].to(x.dtype)
    k = kernel.to(x.dtype).flip(-1, -2)  # conv2d is a correlation
    if kernel.dim() == 2:
        out = F.conv2d(xp.reshape(B * C, 1, *xp.shape[-2:]), k[None, None])
        return out.reshape(B, C, H, W)
    wk = k[:, None].repeat_interleave(C, dim=0)  # (B*C, 1, kh, kw)
    out = F.conv2d(xp.reshape(1, B * C, *xp.shape[-2:]), wk, groups=B * C)
    return out.reshape(B, C, H, W)


def disk_kernel(radius: float, alias_blur: float, dtype) -> Tensor:
    """ImageNet-C's defocus kernel: the binary disk X² + Y² ≤ r² on the integer grid
    −R … R (R = 8 for r ≤ 8, else ⌈r⌉), normalised to sum 1, then blurred by a 3×3 (r ≤ 8) or
    5×5 Gaussian of SD ``alias_blur`` with OpenCV's reflect-101 border (as cv2.GaussianBlur)."""
    R = 8 if radius <= 8 else int(math.ceil(radius))
    t = torch.arange(-R, R + 1, dtype=torch.float64)
    X, Y = torch.meshgrid(t, t, indexing="ij")
    k = ((X * X + Y * Y) <= radius * radius).double()
    k = k / k.sum()
    if alias_blur > 0:
        half = 1 if radius <= 8 else 2
        off = torch.arange(-half, half + 1, dtype=torch.float64)
        w = torch.exp(-0.5 * (off / alias_blur) ** 2)
        w = (w / w.sum()).reshape(1, 1, -1)
        kp = _pad_reflect(k[None, None], half, half, "reflect101")
        k = F.conv2d(F.conv2d(kp, w[..., None]), w[:, :, None, :])[0, 0]
    return k.to(dtype)


@functools.lru_cache(maxsize=64)
def _pil_box_matrix(n_in: int, n_out: int) -> Tensor:
    """(n_out, n_in) resampling matrix of PIL's BOX filter, in PIL's own arithmetic: output i
    (centre c = (i + ½)·s, s = n_in/n_out, support ½·max(s, 1)) averages the inputs j of the
    window [⌊c − support + ½⌋, ⌊c + support + ½⌋) with −½ < (j + ½ − c)/max(s, 1) ≤ ½.
    Down-sampling: the mean of the pixels whose centres the output covers; up-sampling: the
    centre-sampled nearest pixel."""
    scale = n_in / n_out
    fs = max(scale, 1.0)
    support, ss = 0.5 * fs, 1.0 / fs
    M = torch.zeros(n_out, n_in, dtype=torch.float64)
    for i in range(n_out):  # a loop over the output size to build a small matrix, not pixels
        center = (i + 0.5) * scale
        lo, hi = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), n_in)
        for j in range(lo, hi):
            t = (j - center + 0.5) * ss
            M[i, j] = 1.0 if -0.5 < t <= 0.5 else 0.0
    return M / M.sum(1, keepdim=True).clamp_min(1e-300)


def pixelate_matrix(n: int, m: int, dtype, device) -> Tensor:
    """(n, n) matrix of PIL's BOX down-sampling n → m followed by BOX up-sampling m → n (the
    reference's two ``resize`` calls; the up-sampling is a centre-sampled nearest)."""
    return (_pil_box_matrix(m, n) @ _pil_box_matrix(n, m)).to(device=device, dtype=dtype)


def motion_kernels(radius: float, sigma: float, angles_deg: Tensor, dtype) -> Tensor:
    """Per-image kernels of ImageMagick's motion blur (``MotionBlurImage``, which ImageNet-C
    calls through Wand): L = 2⌈radius⌉ + 1 taps i = 0 … L−1 with weights ∝ exp(−i²/2σ²), tap i
    reading the pixel at (x + ⌈i·cos a − ½⌉, y + ⌈i·sin a − ½⌉) (x right, y down).  Returned as
    (B, 2L+1, 2L+1) convolution kernels for :func:`conv_same` (which flips them)."""
    L = 2 * int(math.ceil(max(radius, 0.5))) + 1  # ImageMagick's kernel width for a radius > 0
    i = torch.arange(L, dtype=torch.float64)
    w = torch.exp(-0.5 * (i / max(sigma, 1e-3)) ** 2)
    w = w / w.sum()
    R = L
    size = 2 * R + 1
    a = angles_deg.double().cpu() * math.pi / 180
    ox = torch.ceil(i[None, :] * torch.cos(a)[:, None] - 0.5).long()  # (B, L) column offsets
    oy = torch.ceil(i[None, :] * torch.sin(a)[:, None] - 0.5).long()  # (B, L) row offsets
    B = a.numel()
    k = torch.zeros(B, size * size, dtype=torch.float64)
    k.scatter_add_(1, (R - oy) * size + (R - ox), w[None, :].expand(B, L).contiguous())  # flipped taps
    return k.reshape(B, size, size).to(dtype)


def glass_shuffle(x: Tensor, delta: int, g) -> Tensor:
    """One round of ImageNet-C's local pixel shuffle, exactly, without its Python loop.

    The reference visits h = H−δ … δ+1 (descending), and within each row w = W−δ … δ+1, and
    executes ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` with (h', w') = (h + dy, w + dx),
    dy, dx uniform in {−δ, …, δ−1}.  On numpy views that statement *copies* x[h', w'] into
    x[h, w] and leaves x[h', w'] as it is.  So each visited pixel takes the current value of its
    source: the original value when the source is visited later (or never), the already
    updated one when it was visited earlier.  Following the sources visited earlier is a chain
    of strictly earlier visits; pointer jumping resolves all chains in ⌈log₂(HW)⌉ rounds."""
    B, C, H, W = x.shape
    N = H * W
    dev = x.device
    dy = randint(-delta, delta, (B, H, W), g, dev)
    dx = randint(-delta, delta, (B, H, W), g, dev)
    hh = torch.arange(H, device=dev).view(1, H, 1).expand(B, H, W)
    ww = torch.arange(W, device=dev).view(1, 1, W).expand(B, H, W)
    visited = lambda r, c: (r > delta) & (r <= H - delta) & (c > delta) & (c <= W - delta)  # noqa: E731
    order = lambda r, c: (H - 1 - r) * W + (W - 1 - c)  # noqa: E731 - visiting rank
    sr, sc = (hh + dy).clamp(0, H - 1), (ww + dx).clamp(0, W - 1)
    me = (hh * W + ww).reshape(B, N)
    src = torch.where(visited(hh, ww), sr * W + sc, hh * W + ww).reshape(B, N)
    follow = (visited(hh, ww) & visited(sr, sc) & (order(sr, sc) < order(hh, ww))).reshape(B, N)
    nxt = torch.where(follow, src, me)  # a fixed point marks the end of a chain
    term = torch.where(follow, me, src)  # at a chain's end: read the original value here
    for _ in range(max(1, math.ceil(math.log2(max(N, 2)))) + 1):
        nxt = nxt.gather(1, nxt)
    idx = term.gather(1, nxt)
    return x.reshape(B, C, N).gather(2, idx[:, None].expand(B, C, N)).reshape(B, C, H, W)


def gray(x: Tensor) -> Tensor:
    """Luma (ITU-R 601 weights) of RGB images, the channel mean otherwise; (B, 1, H, W)."""
    if x.shape[1] == 3:
        w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x * w).sum(1, keepdim=True)
    return x.mean(1, keepdim=True)


def zoom(x: Tensor, z: float) -> Tensor:
    """Zoom into the centre by factor z ≥ 1 (crop 1/z of the image, resize back), bilinear."""
    B = x.shape[0]
    theta = torch.tensor([[1.0 / z, 0, 0], [0, 1.0 / z, 0]], device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta.expand(B, 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def clipped_zoom(crop: Tensor, z: float, H: int, W: int) -> Tensor:
    """ImageNet-C's ``clipped_zoom`` after its crop: ``crop`` (…, ⌈H/z⌉, ⌈W/z⌉), the centre of
    an H × W image, zoomed by z as scipy.ndimage.zoom(order=1) does (output round(side·z),
    corner-aligned linear interpolation), then its centre H × W."""
    hs, ws = crop.shape[-2:]
    zh, zw = round(hs * z), round(ws * z)  # Python's round, as scipy
    lead = crop.shape[:-2]
    y = crop.reshape(-1, 1, hs, ws)
    if (zh, zw) != (hs, ws):
        y = F.interpolate(y, size=(zh, zw), mode="bilinear", align_corners=True)
    top, left = (zh - H) // 2, (zw - W) // 2
    return y[..., top : top + H, left : left + W].reshape(*lead, H, W)


# ----------------------------------------------------------------------------- noise fields
def spectral_field(B: int, H: int, W: int, exponent: float, g, like: Tensor) -> Tensor:
    """(B, H, W) Gaussian random field with power ∝ 1/f^exponent (zero mean, unit SD)."""
    z = randn((B, H, W), g, like.double() if like.dtype != torch.float64 else like)
    Z = torch.fft.rfft2(z)
    fy = torch.fft.fftfreq(H, device=like.device, dtype=torch.float64)
    fx = torch.fft.rfftfreq(W, device=like.device, dtype=torch.float64)
    f = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    amp = torch.where(f > 0, f.clamp_min(1e-12) ** (-exponent / 2), torch.zeros_like(f))
    n = torch.fft.irfft2(Z * amp, s=(H, W))
    n = n - n.mean((1, 2), keepdim=True)
    sd = n.std(dim=(1, 2), keepdim=True, correction=0)
    return (n / torch.where(sd > 0, sd, torch.ones_like(sd))).to(like.dtype)


def plasma_fractal(B: int, size: int, decay: float, g, like: Tensor) -> Tensor:
    """(B, size, size) diamond-square height maps as ImageNet-C's fog draws them, normalised to
    [0, 1] per map; ``size`` a power of two, the map periodic.

    Start from a zero map and a step of ``size``; per level, the centre of every square of
    corners ``step`` apart gets the mean of its 4 corners plus w·U(−w, w), then the midpoint of
    every edge the mean of its 4 diamond neighbours (the two square centres and the two corners,
    wrapping around) plus w·U(−w, w); then step ÷ 2 and w ÷ ``decay`` (w starts at 100)."""
    dt = torch.float64
    a = torch.zeros(B, size, size, dtype=dt, device=like.device)
    step, w = size, 100.0
    while step >= 2:
        h = step // 2
        corners = a[:, ::step, ::step]
        sq = corners + corners.roll(-1, 1)
        sq = sq + sq.roll(-1, 2)  # the 4 corners of each square
        a[:, h::step, h::step] = sq / 4 + w * (2 * rand(sq.shape, g, a) - 1) * w
        centres = a[:, h::step, h::step]
        left = centres + centres.roll(1, 1) + corners + corners.roll(-1, 2)  # midpoints of the top edges
        a[:, ::step, h::step] = left / 4 + w * (2 * rand(left.shape, g, a) - 1) * w
        top = centres + centres.roll(1, 2) + corners + corners.roll(-1, 1)  # midpoints of the left edges
        a[:, h::step, ::step] = top / 4 + w * (2 * rand(top.shape, g, a) - 1) * w
        step, w = h, w / decay
    a = a - a.amin((1, 2), keepdim=True)
    return (a / a.amax((1, 2), keepdim=True).clamp_min(1e-300)).to(like.dtype)


def frost_texture(B: int, C: int, H: int, W: int, g, like: Tensor, means: Tensor, stds: Tensor) -> Tensor:
    """Procedural frost: per image, one of the photographs' statistics k is drawn uniformly;
    a ridged multi-scale texture (1 − |field| of 1/f³ and 1/f² fields, plus grain) z-scored
    over the image is scaled to that photograph's within-crop SD ``stds[k]`` and shifted to its
    mean RGB ``means[k]`` (the channel mean on non-RGB images); clamped to [0, 1]."""
    k = randint(0, means.shape[0], (B,), g, like.device)
    f1 = spectral_field(B, H, W, 3.0, g, like)
    f2 = spectral_field(B, H, W, 2.0, g, like)
    ridges = (1 - f1.abs().clamp(max=1.0)) ** 4 + 0.6 * (1 - f2.abs().clamp(max=1.0)) ** 6
    t = 0.88 * ridges / ridges.amax((1, 2), keepdim=True).clamp_min(1e-12) + 0.12 * rand((B, H, W), g, like)
    t = t - t.mean((1, 2), keepdim=True)
    sd = t.std(dim=(1, 2), keepdim=True, correction=0)
    t = t / torch.where(sd > 0, sd, torch.ones_like(sd))
    mu = means.to(like.device, like.dtype)[k]  # (B, 3)
    mu = mu if C == 3 else mu.mean(1, keepdim=True).expand(B, C)
    sig = stds.to(like.device, like.dtype)[k].view(B, 1, 1, 1)
    return (mu.view(B, C, 1, 1) + sig * t[:, None]).clamp(0, 1)


# ----------------------------------------------------------------------------- elastic warp
def elastic(x: Tensor, c, g) -> Tensor:
    """A random affine (three points moved by U(±c₂) px) then a smoothed random displacement
    field (Gaussian σ = c₁ px of U(−1, 1) noise, times c₀ px); bilinear, reflected borders."""
    B, C, H, W = x.shape
    alpha, sigma, aff = float(c[0]), float(c[1]), float(c[2])
    dt = torch.float64
    # random affine from three points around the centre (as cv2.getAffineTransform)
    cy, cx = H // 2, W // 2
    sq = max(1, min(H, W) // 3)
    p1 = torch.tensor([[cx + sq, cy + sq], [cx + sq, cy - sq], [cx - sq, cy - sq]], dtype=dt, device=x.device)
    p2 = p1[None] + (rand((B, 3, 2), g, x.to(dt)) * 2 - 1) * aff
    A = torch.cat([p1, torch.ones(3, 1, dtype=dt, device=x.device)], 1)  # (3, 3)
    M = torch.linalg.solve(A[None].expand(B, 3, 3), p2).transpose(1, 2)  # (B, 2, 3): p2 = M @ [p1; 1]
    # pixel grid; warpAffine maps output o to source M⁻¹ o
    Mf = torch.cat([M, torch.tensor([0, 0, 1], dtype=dt, device=x.device).expand(B, 1, 3)], 1)
    Minv = torch.linalg.inv(Mf)
    yy, xx = torch.meshgrid(torch.arange(H, dtype=dt, device=x.device), torch.arange(W, dtype=dt, device=x.device), indexing="ij")
    # elastic displacement in the output frame, then the affine
    dx = gaussian_blur(rand((B, 1, H, W), g, x.to(dt)) * 2 - 1, sigma, truncate=3.0)[:, 0] * alpha
    dy = gaussian_blur(rand((B, 1, H, W), g, x.to(dt)) * 2 - 1, sigma, truncate=3.0)[:, 0] * alpha
    qx = xx[None] + dx
    qy = yy[None] + dy
    Q = torch.stack([qx, qy, torch.ones_like(qx)], 1).reshape(B, 3, -1)
    src = (Minv @ Q)[:, :2].reshape(B, 2, H, W)
    gx = (src[:, 0] + 0.5) / W * 2 - 1
    gy = (src[:, 1] + 0.5) / H * 2 - 1
    grid = torch.stack([gx, gy], -1).to(x.dtype)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


# ----------------------------------------------------------------------------- JPEG in torch
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


def dct_matrix(n: int, dtype, device) -> Tensor:
    """The orthonormal DCT-II matrix (n, n)."""
    k = torch.arange(n, dtype=torch.float64)
    D = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2.0 / n)
    D[0] /= math.sqrt(2.0)
    return D.to(device=device, dtype=dtype)


def _quant_table(base: Sequence[int], quality: int, device) -> Tensor:
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    t = torch.tensor(base, dtype=torch.float64)
    return ((t * scale + 50) // 100).clamp(1, 255).reshape(8, 8).to(device)


def jpeg_plane(p: Tensor, table: Tensor) -> Tensor:
    """Encode/decode (N, H, W) planes in [0, 255]: level shift, 8×8 DCT, quantise, inverse."""
    N, H, W = p.shape
    Hp, Wp = -(-H // 8) * 8, -(-W // 8) * 8
    q = F.pad(p[:, None], (0, Wp - W, 0, Hp - H), mode="replicate")[:, 0] - 128.0
    blocks = q.reshape(N, Hp // 8, 8, Wp // 8, 8).permute(0, 1, 3, 2, 4)  # (N, bh, bw, 8, 8)
    D = dct_matrix(8, q.dtype, q.device)
    c = D @ blocks @ D.T
    c = torch.round(c / table) * table
    r = D.T @ c @ D
    r = r.permute(0, 1, 3, 2, 4).reshape(N, Hp, Wp)[:, :H, :W] + 128.0
    return r


def jpeg(x: Tensor, quality: int) -> Tensor:
    """JPEG round trip of images in [0, 1] at IJG ``quality``: JFIF YCbCr with 4:2:0 chroma on
    RGB, one luminance plane per channel otherwise."""
    B, C, H, W = x.shape
    xd = x.double() * 255.0
    luma = _quant_table(_JPEG_LUMA, quality, x.device)
    chroma = _quant_table(_JPEG_CHROMA, quality, x.device)
    if C != 3:
        out = jpeg_plane(xd.reshape(B * C, H, W), luma).reshape(B, C, H, W)
    else:
        r, g, b = xd[:, 0], xd[:, 1], xd[:, 2]
        Y = 0.299 * r + 0.587 * g + 0.114 * b
        Cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
        Cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
        Y = jpeg_plane(Y, luma)
        # 4:2:0 chroma subsampling (PIL's default): average 2×2, code, upsample back
        ch = torch.stack([Cb, Cr], 1)
        hs, ws = -(-H // 2), -(-W // 2)
        chs = F.avg_pool2d(F.pad(ch, (0, 2 * ws - W, 0, 2 * hs - H), mode="replicate"), 2)
        chs = jpeg_plane(chs.reshape(B * 2, hs, ws), chroma).reshape(B, 2, hs, ws)
        ch = F.interpolate(chs, scale_factor=2, mode="nearest")[..., :H, :W]
        Cb, Cr = ch[:, 0] - 128, ch[:, 1] - 128
        out = torch.stack([Y + 1.402 * Cr, Y - 0.344136 * Cb - 0.714136 * Cr, Y + 1.772 * Cb], 1)
    return (torch.round(out.clamp(0, 255)) / 255.0).to(x.dtype)
