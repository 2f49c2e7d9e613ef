"""The V1-like front-end: a fixed bank of Gabor simple and complex cells with neuronal noise.

Barbulescu et al., arXiv:2310.10575: VOneNet (Dapello et al. 2020) and Barbulescu, Marques & Oliveira (2023,
arXiv 2310.10575).  Unlike the reference implementation, each filter is computed on the one input
channel it reads (a grouped convolution), the quadrature filter only for complex cells, the kernel
size follows each envelope, noise is off in ``eval()`` unless asked for, and every random draw
comes from a local generator.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .distributions import SAMPLINGS, SF_CORR, SF_TABLES, sample_gabor_params

__all__ = ["V1Front", "gabor_kernels", "envelope_half_width", "ENVELOPE_SIGMAS", "PARAM_NAMES"]

#: A kernel covers an envelope when its half-width reaches this many σ of the envelope's extent
#: along x and y; with it, ≈ 1/3 of a biologically sampled bank is truncated by VOneNet's 25-px
#: kernel at 224 px / 8° (the share Barbulescu et al., arXiv:2310.10575 quotes).
ENVELOPE_SIGMAS: float = 2.0

#: Names of the sampled parameters, in ``front.params`` order.
PARAM_NAMES = ("sf_cpd", "theta_deg", "phase_deg", "nx", "ny", "channel", "is_complex")

_NOISE_MODES = (None, "neuronal", "gaussian")
#: Kernels at least this large are applied with FFTs (faster than direct convolution there).
FFT_MIN_KERNEL = 57
# ladder of odd kernel sizes used to bucket per-filter sizes (≈ +15 % per step)
_SIZE_LADDER = [3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 25, 29, 33, 37, 43, 49, 57, 65, 75, 85, 99, 113,
                129, 149, 171, 197, 227, 261, 301, 347, 399, 459, 527, 607, 699, 803, 923, 1061]


def envelope_half_width(sf_cyc_px: Tensor, theta_deg: Tensor, nx: Tensor, ny: Tensor,
                        n_sigmas: float = ENVELOPE_SIGMAS) -> Tensor:
    """Half-width (pixels) of the axis-aligned box holding ``n_sigmas`` σ of each rotated envelope.

    With σx = nx/f, σy = ny/f and θ the carrier direction, the envelope's standard deviation along
    the image x axis is √(σx² cos²θ + σy² sin²θ) and along y √(σx² sin²θ + σy² cos²θ); the
    half-width is ``n_sigmas`` times the larger one.  All inputs are 1-D of the same length.
    """
    sx, sy = nx / sf_cyc_px, ny / sf_cyc_px
    t = torch.deg2rad(theta_deg)
    c2, s2 = torch.cos(t) ** 2, torch.sin(t) ** 2
    ex = torch.sqrt(sx * sx * c2 + sy * sy * s2)
    ey = torch.sqrt(sx * sx * s2 + sy * sy * c2)
    return n_sigmas * torch.maximum(ex, ey)


def gabor_kernels(sf_cyc_px: Tensor, theta_deg: Tensor, phase_deg: Tensor, nx: Tensor, ny: Tensor,
                  kernel_size: int) -> Tensor:
    """Gabor kernels ``G(x, y) = exp(−½(x′²/σx² + y′²/σy²)) / (2π σx σy) · cos(2π f x′ + φ)``.

    ``x′ = x cos θ + y sin θ``, ``y′ = −x sin θ + y cos θ``; ``x`` runs to the right along the
    columns and ``y`` *up* along the rows, both measured from the kernel centre ``(k − 1)/2``, so
    θ is the direction of the carrier's wave vector counter-clockwise from the image's horizontal
    (θ = 0: vertical stripes).  σx = nx/f, σy = ny/f (Barbulescu et al., arXiv:2310.10575).

    Args:
        sf_cyc_px: spatial frequency f in cycles/pixel, shape ``(M,)``.
        theta_deg, phase_deg: θ and φ in degrees, ``(M,)``.
        nx, ny: envelope sizes in cycles, ``(M,)``.
        kernel_size: k.

    Returns:
        ``(M, k, k)`` kernels in the dtype of ``sf_cyc_px`` (use float64 to build).
    """
    k = int(kernel_size)
    dt, dev = sf_cyc_px.dtype, sf_cyc_px.device
    r = torch.arange(k, dtype=dt, device=dev) - (k - 1) / 2.0
    x = r.view(1, 1, k)                # column offset, to the right
    y = -r.view(1, k, 1)               # row offset, upwards
    f = sf_cyc_px.view(-1, 1, 1)
    t = torch.deg2rad(theta_deg).view(-1, 1, 1)
    ph = torch.deg2rad(phase_deg).view(-1, 1, 1)
    sx, sy = nx.view(-1, 1, 1) / f, ny.view(-1, 1, 1) / f
    xr = x * torch.cos(t) + y * torch.sin(t)
    yr = -x * torch.sin(t) + y * torch.cos(t)
    env = torch.exp(-0.5 * (xr ** 2 / sx ** 2 + yr ** 2 / sy ** 2)) / (2 * math.pi * sx * sy)
    return env * torch.cos(2 * math.pi * f * xr + ph)


def _check_int(name: str, v: Any, lo: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise ValueError(f"V1Front: {name} must be an int >= {lo}, got {v!r}")
    return v


def _check_pos(name: str, v: Any, allow_zero: bool = False) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise TypeError(f"V1Front: {name} must be a number, got {type(v).__name__}") from None
    if not math.isfinite(f) or f < 0 or (f == 0 and not allow_zero):
        raise ValueError(f"V1Front: {name} must be a finite number {'>=' if allow_zero else '>'} 0, got {v!r}")
    return f


def _fast_len(n: int) -> int:
    """Smallest m >= n of the form 2^a 3^b 5^c (fast FFT lengths; zero padding beyond the linear
    convolution's length changes nothing)."""
    m = n
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def _f32(w: Tensor) -> Tensor:
    """float32 copy with subnormal values flushed to 0 (far envelope tails underflow, and
    subnormal weights slow CPU convolutions down by an order of magnitude)."""
    w = w.to(torch.float32)
    return torch.where(w.abs() < torch.finfo(torch.float32).tiny, torch.zeros_like(w), w)


def _rebuild_after_load(module: "V1Front", incompatible_keys: Any) -> None:
    module._build()


class V1Front(nn.Module):
    r"""A V1-like front-end: a fixed Gabor bank of simple and complex cells, then neuronal noise.

    For each cell *i* with parameters (f, θ, φ, nx, ny, input channel c) the linear responses are
    ``q0 = G_φ ⋆ x_c`` and, for complex cells, ``q1 = G_{φ+90°} ⋆ x_c`` (Gabor :func:`gabor_kernels`,
    zero padding ``k // 2``, ``stride``).  Simple cells give ``ReLU(q0)``, complex cells
    ``√(q0² + q1²)/√2``; the rates are ``r = k_exc · [simple, complex]``.  Spatial frequency is
    sampled in cycles/degree and converted with ``ppd = image_size / visual_degrees``:
    ``f = sf_cpd / ppd`` cycles/pixel, ``σx = nx/f``, ``σy = ny/f`` (Barbulescu et al., arXiv:2310.10575).

    **Noise** (in ``train()``, and in ``eval()`` only if ``stochastic_eval``):

    * ``"neuronal"`` — a Gaussian approximation of Poisson spiking (Fano factor 1) in spike units
      ``u = noise_scale · r + noise_level``: ``u ← u + ε √(ReLU(u) + 10⁻⁴)``, ε ~ N(0, 1)
      (reparameterised, so gradients flow), then ``r = ReLU((u − noise_level)/noise_scale)``.
    * ``"gaussian"`` — ``r + noise_scale · ε``.
    * ``None`` — no noise.

    ε has the shape of the output of *this* call (any batch size and image size) and comes from a
    generator local to the module (one per device) seeded by ``seed``; :meth:`reset_noise`
    restarts it.  The global RNG is never touched.

    **Efficiency.** Each filter reads a single input channel, so the filters are grouped by the
    channel they read and each group is one convolution over that channel alone (a grouped
    convolution; run as one call per channel, which PyTorch executes faster than its ``groups=``
    kernel on CPU), and the quadrature filter is computed only for complex cells — about 4× fewer
    MACs than VOneNet's dense bank for RGB input.  With ``kernel_size=None`` every filter gets the
    smallest size in a ladder of odd sizes whose half-width covers ``ENVELOPE_SIGMAS`` (= 2) σ of
    its rotated envelope (capped at the largest odd size ≤ ``image_size``: a larger kernel only
    adds the far side of the image for outputs near the border; capped envelopes count as
    truncated), filters of equal size share one
    convolution, and kernels of ``FFT_MIN_KERNEL`` (57) pixels or more are applied with FFTs; with
    a forced ``kernel_size`` all filters share it and :attr:`truncated_fraction` reports the share
    of
    envelopes the kernel cuts (≈ 1/3 for VOneNet's 25 px at 224 px / 8°).

    Args:
        image_size: the input size (pixels) that spans ``visual_degrees``.  Inputs far from it
            (more than 25 % off in height or width) work but warn once: the filters' cycles/degree
            assume this scale.
        visual_degrees: field of view of ``image_size`` pixels, in degrees.
        in_channels: input channels (1 for grayscale); each filter reads one, chosen uniformly.
        simple_channels, complex_channels: numbers of simple and complex cells (output channels
            ``simple_channels + complex_channels``, simple first).
        kernel_size: ``None`` (per-filter sizes from σ) or a forced size for every filter.
        stride: convolution stride.
        sampling: ``"biological"`` (the primate tables), ``"uniform"`` (= ``"unif1"``),
            ``"unif2"`` (+ nx–ny correlation) or ``"unif3"`` (+ nx–sf correlation); see
            :func:`torchtopo.v1.distributions.sample_gabor_params`.
        sf_min, sf_max: the spatial-frequency range in cycles/degree; ``sf_max=None`` is the
            diagonal Nyquist limit ``ppd / (2√2)``, and a larger value warns and is clipped to it.
        sf_corr: Gaussian-copula correlation of nx and spatial frequency (biological and unif3).
        noise: ``"neuronal"``, ``"gaussian"`` or ``None``.
        noise_scale, noise_level: the noise parameters (VOneNet: 0.35 and 0.07).
        k_exc: output gain (25 in VOneNet, so that mean ImageNet activity is about 1).
        stochastic_eval: keep the noise on in ``eval()`` (e.g. for attacks using expectation over
            transformation).
        seed: seeds the parameter sampling and the noise generator.
        sf_table: ``"by_cell_type"`` (simple cells from the foveal simple-cell table, complex cells
            from the foveal complex-cell table; up to 11.2 c/deg) or ``"all"`` (the 8-bin
            all-cells table, to 8 c/deg, as VOneNet).

    Shapes:
        input ``(B, in_channels, H, W)`` → output ``(B, out_channels, ⌊(H−1)/s⌋+1, ⌊(W−1)/s⌋+1)``
        (odd kernel sizes).

    Attributes:
        params: dict of the sampled 1-D parameter buffers ``sf_cpd``, ``theta_deg``,
            ``phase_deg``, ``nx``, ``ny`` (float32), ``channel`` (int64), ``is_complex`` (bool).
        out_channels: ``simple_channels + complex_channels``.
        ppd: pixels per degree.
        kernel_sizes: per-filter kernel size (int64 tensor).
        truncated_fraction: share of filters whose envelope (``ENVELOPE_SIGMAS`` σ) exceeds the
            kernel.

    Example:
        >>> front = V1Front.tiny_imagenet(noise=None)
        >>> front(torch.rand(2, 3, 64, 64)).shape
        torch.Size([2, 512, 32, 32])
    """

    def __init__(
        self,
        *,
        image_size: int = 224,
        visual_degrees: float = 8.0,
        in_channels: int = 3,
        simple_channels: int = 256,
        complex_channels: int = 256,
        kernel_size: Optional[int] = None,
        stride: int = 4,
        sampling: str = "biological",
        sf_min: float = 0.0,
        sf_max: Optional[float] = None,
        sf_corr: float = SF_CORR,
        noise: Optional[str] = "neuronal",
        noise_scale: float = 0.35,
        noise_level: float = 0.07,
        k_exc: float = 25.0,
        stochastic_eval: bool = False,
        seed: int = 0,
        sf_table: str = "by_cell_type",
    ) -> None:
        super().__init__()
        self.image_size = _check_int("image_size", image_size, 1)
        self.visual_degrees = _check_pos("visual_degrees", visual_degrees)
        self.in_channels = _check_int("in_channels", in_channels, 1)
        self.simple_channels = _check_int("simple_channels", simple_channels, 0)
        self.complex_channels = _check_int("complex_channels", complex_channels, 0)
        if self.simple_channels + self.complex_channels == 0:
            raise ValueError("V1Front: simple_channels + complex_channels must be > 0, got 0 and 0")
        if kernel_size is not None:
            _check_int("kernel_size", kernel_size, 1)
        self.kernel_size = kernel_size
        self.stride = _check_int("stride", stride, 1)
        if sampling not in SAMPLINGS:
            raise ValueError(f"V1Front: sampling must be one of {SAMPLINGS}, got {sampling!r}")
        self.sampling = sampling
        if sf_table not in SF_TABLES:
            raise ValueError(f"V1Front: sf_table must be one of {SF_TABLES}, got {sf_table!r}")
        self.sf_table = sf_table
        self.ppd = self.image_size / self.visual_degrees
        nyquist = self.ppd / (2.0 * math.sqrt(2.0))
        self.sf_min = _check_pos("sf_min", sf_min, allow_zero=True)
        if sf_max is None:
            sf_max = nyquist
        else:
            sf_max = _check_pos("sf_max", sf_max)
            if sf_max > nyquist * (1 + 1e-9):
                warnings.warn(
                    f"V1Front: sf_max={sf_max:g} cycles/degree exceeds the diagonal Nyquist limit "
                    f"ppd/(2*sqrt(2)) = {nyquist:.4g} for image_size={self.image_size}, "
                    f"visual_degrees={self.visual_degrees:g}; clipping it to {nyquist:.4g}",
                    UserWarning, stacklevel=2)
                sf_max = nyquist
        if not sf_max > self.sf_min:
            raise ValueError(f"V1Front: sf_min must be < sf_max, got sf_min={self.sf_min:g} and "
                             f"sf_max={sf_max:g} (after the Nyquist clip)")
        self.sf_max = float(sf_max)
        self.sf_corr = float(sf_corr)
        if not -1.0 < self.sf_corr < 1.0:
            raise ValueError(f"V1Front: sf_corr must lie in (-1, 1), got {sf_corr!r}")
        if noise not in _NOISE_MODES:
            raise ValueError(f"V1Front: noise must be 'neuronal', 'gaussian' or None, got {noise!r}")
        self.noise = noise
        self.noise_scale = _check_pos("noise_scale", noise_scale)
        self.noise_level = _check_pos("noise_level", noise_level, allow_zero=True)
        self.k_exc = _check_pos("k_exc", k_exc)
        self.stochastic_eval = bool(stochastic_eval)
        self.seed = int(seed)
        self.out_channels = self.simple_channels + self.complex_channels
        self._size_warned = False
        self._gens: Dict[str, torch.Generator] = {}
        self._noise_seed = self.seed

        p = sample_gabor_params(
            self.simple_channels, self.complex_channels, in_channels=self.in_channels,
            sampling=sampling, sf_min=self.sf_min, sf_max=self.sf_max, sf_corr=self.sf_corr,
            sf_table=sf_table, seed=self.seed)
        for name in PARAM_NAMES:
            v = p[name]
            if v.is_floating_point():
                v = v.to(torch.float32)
            self.register_buffer(name, v)
        self._banks: List[Tuple[str, int, int, Tuple[int, int]]] = []
        self.register_buffer("_perm_inv", None, persistent=False)
        self.fft_min_kernel = FFT_MIN_KERNEL
        order = self._sort_order()  # store the cells in bank order: no gather in forward
        for name in PARAM_NAMES:
            setattr(self, name, getattr(self, name)[order].clone())
        self._build()
        self.register_load_state_dict_post_hook(_rebuild_after_load)

    # ------------------------------------------------------------------ presets
    @classmethod
    def imagenet(cls, **overrides: Any) -> "V1Front":
        """VOneNet's ImageNet front: 224 px / 8°, kernel 25, stride 4, 256 + 256 cells, sf_max 9
        c/deg, the all-cells SF table (Barbulescu et al., arXiv:2310.10575).  Keyword arguments override."""
        kw: Dict[str, Any] = dict(image_size=224, visual_degrees=8.0, kernel_size=25, stride=4,
                                  simple_channels=256, complex_channels=256, sf_max=9.0, sf_table="all")
        kw.update(overrides)
        return cls(**kw)

    @classmethod
    def tiny_imagenet(cls, **overrides: Any) -> "V1Front":
        """Barbulescu et al.'s Tiny ImageNet front: 64 px / 2°, kernel 31, stride 2, 256 + 256
        cells, foveal simple/complex SF tables.  The study's sf_max of 11.5 c/deg is just above the
        diagonal Nyquist limit 32/(2√2) ≈ 11.31, so the preset uses the limit; as the highest
        table edge is 11.2 c/deg the sampled distribution is the same."""
        kw: Dict[str, Any] = dict(image_size=64, visual_degrees=2.0, kernel_size=31, stride=2,
                                  simple_channels=256, complex_channels=256, sf_max=None)
        kw.update(overrides)
        return cls(**kw)

    @classmethod
    def cifar(cls, **overrides: Any) -> "V1Front":
        """The CIFAR front seen in VOneNet's notebook: 32 px / 3°, kernel 15, stride 1.  The
        notebook's sf_max of 5 c/deg exceeds the diagonal Nyquist limit (32/3)/(2√2) ≈ 3.77, so the
        preset uses the limit.  The cell counts were not given; 256 + 256 as the other presets."""
        kw: Dict[str, Any] = dict(image_size=32, visual_degrees=3.0, kernel_size=15, stride=1,
                                  simple_channels=256, complex_channels=256, sf_max=None)
        kw.update(overrides)
        return cls(**kw)

    @classmethod
    def mnist(cls, **overrides: Any) -> "V1Front":
        """A front for 28 px grayscale digits (torchtopo's choice, not from a study): 28 px / 2°
        (14 ppd, so the lowest table frequency, 0.5 c/deg, is one cycle per image and the Nyquist
        limit 4.95 c/deg a 2.9-px period), one input channel, stride 2, 64 + 64 cells, kernel
        sizes from σ."""
        kw: Dict[str, Any] = dict(image_size=28, visual_degrees=2.0, in_channels=1, kernel_size=None,
                                  stride=2, simple_channels=64, complex_channels=64, sf_max=None)
        kw.update(overrides)
        return cls(**kw)

    # ------------------------------------------------------------------ parameters and bank
    @property
    def params(self) -> Dict[str, Tensor]:
        """The sampled parameters (the buffers themselves): ``sf_cpd``, ``theta_deg``,
        ``phase_deg``, ``nx``, ``ny``, ``channel``, ``is_complex``; each of shape
        ``(out_channels,)``."""
        return {name: getattr(self, name) for name in PARAM_NAMES}

    def _sizes(self) -> Tuple[Tensor, Tensor]:
        """Per-filter kernel sizes and envelope half-widths (from the parameter buffers)."""
        f = self.sf_cpd.double().cpu() / self.ppd
        half = envelope_half_width(f, self.theta_deg.double().cpu(), self.nx.double().cpu(), self.ny.double().cpu())
        kmax = max(3, self.image_size - (1 - self.image_size % 2))  # largest odd size <= the image
        if self.kernel_size is None:
            need = (2 * torch.ceil(half) + 1).clamp(max=kmax).long()
            ladder = torch.tensor([s for s in _SIZE_LADDER if s < kmax] + [kmax])
            sizes = ladder[torch.searchsorted(ladder, need).clamp(max=ladder.numel() - 1)]
        else:
            sizes = torch.full((f.numel(),), int(self.kernel_size), dtype=torch.long)
        return sizes, half

    def _bucket_keys(self, sizes: Tensor, channel: Tensor) -> Tensor:
        """Bucket of each filter: one direct convolution per (input channel, kernel size); all
        kernels of ``fft_min_kernel`` pixels or more in one FFT bucket (the last)."""
        big = sizes >= self.fft_min_kernel
        key = channel.cpu() * 100_000 + sizes
        return torch.where(big, torch.full_like(key, 2 ** 40), key)

    def _sort_order(self) -> Tensor:
        """The filter order in which the banks' outputs concatenate without a gather: simple
        cells then complex cells, each by bucket (a stable sort, so i.i.d. draws stay i.i.d.)."""
        sizes, _ = self._sizes()
        key = self._bucket_keys(sizes, self.channel) + self.is_complex.cpu().long() * 2 ** 41
        return torch.sort(key, stable=True).indices

    def _build(self) -> None:
        """(Re)build the convolution banks from the parameter buffers (also after loading).

        Kernels are scaled by ``k_exc`` (simple cells) and ``k_exc/√2`` (complex cells), so that
        ``ReLU(q0)`` and ``√(q0² + q1²)`` of the scaled responses are the rates.
        """
        for name, _, _, _ in self._banks:
            delattr(self, "_w_" + name)
            if name == "fft":
                del self._c_fft
        self._banks = []
        dev = self.sf_cpd.device
        f = self.sf_cpd.double().cpu() / self.ppd
        th, ph = self.theta_deg.double().cpu(), self.phase_deg.double().cpu()
        nx, ny = self.nx.double().cpu(), self.ny.double().cpu()
        ch = self.channel.cpu()
        cx = self.is_complex.cpu()
        if ch.numel() != self.out_channels or int(ch.min()) < 0 or int(ch.max()) >= self.in_channels:
            raise ValueError(f"V1Front: the channel buffer must hold {self.out_channels} values in "
                             f"[0, {self.in_channels}), got {ch.numel()} in [{int(ch.min())}, {int(ch.max())}]")
        if int(cx.sum()) != self.complex_channels:
            raise ValueError(f"V1Front: is_complex must mark {self.complex_channels} cells, got {int(cx.sum())}")
        sizes, half = self._sizes()
        self.kernel_sizes = sizes
        self.truncated_fraction = float((half > (sizes - 1) / 2.0 + 1e-9).double().mean())
        gain_s, gain_c = self.k_exc, self.k_exc / math.sqrt(2.0)

        def kernels(idx: Tensor, k: int, quad: float, gain: float) -> Tensor:
            return gain * gabor_kernels(f[idx], th[idx], ph[idx] + quad, nx[idx], ny[idx], k)

        keys = self._bucket_keys(sizes, ch)
        simple_order, complex_order = [], []
        for key in torch.unique(keys).tolist():
            s_idx = torch.nonzero((keys == key) & ~cx).flatten()
            c_idx = torch.nonzero((keys == key) & cx).flatten()
            simple_order.append(s_idx)
            complex_order.append(c_idx)
            if key == 2 ** 40:  # FFT bucket: pad every kernel to the largest size
                kb = int(sizes[torch.cat([s_idx, c_idx])].max())
                rows = [(s_idx, 0.0, gain_s), (c_idx, 0.0, gain_c), (c_idx, 90.0, gain_c)]
                w = torch.zeros(s_idx.numel() + 2 * c_idx.numel(), kb, kb, dtype=torch.float64)
                r0 = 0
                for idx, quad, gain in rows:
                    for i in range(idx.numel()):  # few large kernels: built one by one
                        k = int(sizes[idx[i]])
                        o = (kb - k) // 2
                        w[r0 + i, o:o + k, o:o + k] = kernels(idx[i:i + 1], k, quad, gain)[0]
                    r0 += idx.numel()
                self.register_buffer("_c_fft", torch.cat([ch[s_idx], ch[c_idx], ch[c_idx]]).to(dev), persistent=False)
                name, k, c = "fft", kb, -1
            else:
                k, c = int(key % 100_000), int(key // 100_000)
                w = torch.cat([kernels(s_idx, k, 0.0, gain_s), kernels(c_idx, k, 0.0, gain_c),
                               kernels(c_idx, k, 90.0, gain_c)]).unsqueeze(1)
                name = f"k{k}_c{c}"
            self.register_buffer("_w_" + name, _f32(w).to(dev), persistent=False)
            self._banks.append((name, k, c, (s_idx.numel(), c_idx.numel())))
        perm = torch.cat(simple_order + complex_order)
        if torch.equal(perm, torch.arange(perm.numel())):
            self._perm_inv = None
        else:
            inv = torch.empty_like(perm)
            inv[perm] = torch.arange(perm.numel())
            self._perm_inv = inv.to(dev)

    @property
    def truncated_share(self) -> float:
        """Alias of :attr:`truncated_fraction`."""
        return self.truncated_fraction

    def macs(self, height: Optional[int] = None, width: Optional[int] = None) -> int:
        """Multiply–accumulates of the Gabor convolutions for one ``height × width`` image
        (default ``image_size``): Σ over computed responses (q0 of every cell, q1 of complex
        cells) of k² per output pixel; FFT-applied kernels are counted as direct convolutions."""
        h = self.image_size if height is None else int(height)
        w = self.image_size if width is None else int(width)
        ho, wo = (h - 1) // self.stride + 1, (w - 1) // self.stride + 1
        k2 = self.kernel_sizes.double() ** 2
        per_cell = torch.where(self.is_complex.cpu(), 2.0, 1.0)
        return int((k2 * per_cell).sum()) * ho * wo

    # ------------------------------------------------------------------ forward
    def _noise_gen(self, device: torch.device) -> torch.Generator:
        key = str(device)
        g = self._gens.get(key)
        if g is None:
            g = torch.Generator(device=device)
            g.manual_seed(self._noise_seed * 1_000_003 + 7919)
            self._gens[key] = g
        return g

    def reset_noise(self, seed: Optional[int] = None) -> None:
        """Restart the noise generators (from ``seed``, default the module's seed)."""
        self._noise_seed = self.seed if seed is None else int(seed)
        self._gens = {}

    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"V1Front: input must be a Tensor, got {type(x).__name__}")
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"V1Front: expected input of shape (B, {self.in_channels}, H, W), got "
                             f"{tuple(x.shape)}")
        h, w = x.shape[-2:]
        if not self._size_warned and (abs(h / self.image_size - 1) > 0.25 or abs(w / self.image_size - 1) > 0.25):
            self._size_warned = True
            warnings.warn(
                f"V1Front: input size {h}x{w} is far from image_size={self.image_size}; the filters' "
                f"spatial frequencies assume {self.image_size} px = {self.visual_degrees:g} degrees "
                f"(warned once)", UserWarning, stacklevel=4)

    def _fft_conv(self, x: Tensor, w: Tensor, k: int) -> Tensor:
        """``conv2d(x[:, c_fft[m]], w[m], stride, padding=k//2)`` for every row m, computed as a
        linear convolution with the flipped kernels via real FFTs (float32), then strided slicing."""
        xf = x.float()
        h, wd = xf.shape[-2:]
        size = (_fast_len(h + k - 1), _fast_len(wd + k - 1))
        X = torch.fft.rfft2(xf, s=size)                                 # (B, C, ., .)
        K = torch.fft.rfft2(torch.flip(w.float(), (-2, -1)), s=size)    # (M, ., .)
        y = torch.fft.irfft2(X[:, self._c_fft] * K, s=size)             # (B, M, H+k-1, W+k-1)
        n0, s = k - 1 - k // 2, self.stride
        ho, wo = (h - 1) // s + 1, (wd - 1) // s + 1
        return y[..., n0:n0 + (ho - 1) * s + 1:s, n0:n0 + (wo - 1) * s + 1:s].to(x.dtype)

    def rates(self, x: Tensor) -> Tensor:
        """Noise-free responses ``k_exc · [ReLU(q0) (simple), √(q0² + q1²)/√2 (complex)]``,
        shape ``(B, out_channels, H', W')``.  At ``q0 = q1 = 0`` the complex response is
        √(tiny) ≈ 1e-19 with a zero gradient (never NaN)."""
        self._check_input(x)
        simple, cplx = [], []
        autocast = torch.is_autocast_enabled(x.device.type)
        for name, k, c, (ns, nc) in self._banks:
            wt = getattr(self, "_w_" + name)
            if name == "fft":
                y = self._fft_conv(x, wt, k)
            else:
                if wt.dtype != x.dtype and not autocast:
                    wt = wt.to(x.dtype)
                xc = x[:, c:c + 1]
                if k > xc.shape[-1] or k > xc.shape[-2]:
                    # a kernel larger than the image: explicit zero padding is several times
                    # faster than the convolution's own (which takes a slow path there)
                    y = F.conv2d(F.pad(xc, (k // 2,) * 4), wt, stride=self.stride)
                else:
                    y = F.conv2d(xc, wt, stride=self.stride, padding=k // 2)
            if ns:
                simple.append(F.relu(y[:, :ns]))
            if nc:
                a, b = y[:, ns:ns + nc], y[:, ns + nc:]
                e = a * a + b * b
                cplx.append(torch.sqrt(e.clamp_min(torch.finfo(e.dtype).tiny)))
        pieces = simple + cplx
        if len(pieces) == 1:
            out = pieces[0]
        else:
            dtype = pieces[0].dtype
            for p in pieces[1:]:
                dtype = torch.promote_types(dtype, p.dtype)
            out = torch.cat([p.to(dtype) for p in pieces], 1)
        if self._perm_inv is not None:
            out = out.index_select(1, self._perm_inv)
        return out

    def add_noise(self, r: Tensor) -> Tensor:
        """Apply the module's noise to rates ``r`` (whatever its mode/train state; ``noise=None``
        returns ``r``).  ε ~ N(0, 1) of ``r``'s shape from the module's generator."""
        if self.noise is None:
            return r
        eps = torch.randn(r.shape, generator=self._noise_gen(r.device), device=r.device, dtype=r.dtype)
        if self.noise == "gaussian":
            return r + self.noise_scale * eps
        u = self.noise_scale * r + self.noise_level
        u = u + eps * torch.sqrt(F.relu(u) + 1e-4)
        return F.relu((u - self.noise_level) / self.noise_scale)

    def forward(self, x: Tensor) -> Tensor:
        r = self.rates(x)
        if self.noise is not None and (self.training or self.stochastic_eval):
            r = self.add_noise(r)
        return r

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        state["_gens"] = {}  # generators are restarted, not pickled
        return state

    def extra_repr(self) -> str:
        ks = "from sigma" if self.kernel_size is None else str(self.kernel_size)
        return (f"image_size={self.image_size}, visual_degrees={self.visual_degrees:g}, "
                f"in_channels={self.in_channels}, simple={self.simple_channels}, "
                f"complex={self.complex_channels}, kernel_size={ks}, stride={self.stride}, "
                f"sampling={self.sampling!r}, sf=[{self.sf_min:g}, {self.sf_max:.4g}] c/deg, "
                f"noise={self.noise!r}, stochastic_eval={self.stochastic_eval}, seed={self.seed}, "
                f"truncated_fraction={self.truncated_fraction:.3f}")
