"""The V1-like front-end: a fixed bank of Gabor simple and complex cells with neuronal noise.

VOneNet (Dapello et al. 2020) as used by Barbulescu, Marques & Oliveira (arXiv:2310.10575).
Unlike the reference implementation, each filter is computed on the one input channel it reads (a
grouped convolution), the quadrature filter only for complex cells, the kernel size follows each
envelope, noise is off in ``eval()`` unless asked for, and every random draw comes from a local
generator.  The Gabor is :func:`torchtopo.functional.gabor_kernels`; the convolution engine lives
in the private ``_bank`` module.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_choice, check_int, check_positive
from ..functional.gabor import ENVELOPE_SIGMAS
from . import _bank
from ._bank import FFT_MIN_KERNEL
from .distributions import SAMPLINGS, SF_CORR, SF_TABLES, sample_gabor_params

__all__ = ["V1Front", "ENVELOPE_SIGMAS", "FFT_MIN_KERNEL", "PARAM_NAMES"]

#: Names of the sampled parameters, in ``front.params`` order.
PARAM_NAMES = ("sf_cpd", "theta_deg", "phase_deg", "nx", "ny", "channel", "is_complex")

_NOISE_MODES = (None, "neuronal", "gaussian")


def _rebuild_after_load(module: "V1Front", incompatible_keys: Any) -> None:
    module._build()


class V1Front(nn.Module):
    r"""A V1-like front-end: a fixed Gabor bank of simple and complex cells, then neuronal noise.

    For each cell *i* with parameters (f, θ, φ, nx, ny, input channel c) — θ the orientation of
    the stripes of the preferred grating, in degrees, 0° horizontal, counter-clockwise with y up,
    as VOneNet's ``gabor_kernel`` (:mod:`torchtopo.functional.gabor`) — the linear responses are
    ``q0 = G_φ ⋆ x_c`` and, for complex cells, ``q1 = G_{φ+90°} ⋆ x_c`` (Gabor
    :func:`~torchtopo.functional.gabor_kernels`, zero padding ``k // 2``, ``stride``).  Simple
    cells give ``ReLU(q0)``, complex cells ``√(q0² + q1²)/√2``; the rates are
    ``r = k_exc · [simple, complex]``.  Spatial frequency is sampled in cycles/degree and
    converted with ``ppd = image_size / visual_degrees``: ``f = sf_cpd / ppd`` cycles/pixel,
    ``σx = nx/f``, ``σy = ny/f`` (Barbulescu et al., arXiv:2310.10575).

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
    truncated), filters of equal size share one convolution, and kernels of ``FFT_MIN_KERNEL``
    (57) pixels or more are applied with FFTs; with a forced ``kernel_size`` all filters share it
    and :attr:`truncated_fraction` reports the share of envelopes the kernel cuts (≈ 1/3 for
    VOneNet's 25 px at 224 px / 8°).

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
        self.image_size = check_int(image_size, "image_size", "V1Front", minimum=1)
        self.visual_degrees = check_positive(visual_degrees, "visual_degrees", "V1Front")
        self.in_channels = check_int(in_channels, "in_channels", "V1Front", minimum=1)
        self.simple_channels = check_int(simple_channels, "simple_channels", "V1Front", minimum=0)
        self.complex_channels = check_int(complex_channels, "complex_channels", "V1Front", minimum=0)
        if self.simple_channels + self.complex_channels == 0:
            raise ValueError("V1Front: simple_channels + complex_channels must be > 0, got 0 and 0")
        if kernel_size is not None:
            check_int(kernel_size, "kernel_size", "V1Front", minimum=1)
        self.kernel_size = kernel_size
        self.stride = check_int(stride, "stride", "V1Front", minimum=1)
        self.sampling = check_choice(sampling, SAMPLINGS, "sampling", "V1Front")
        self.sf_table = check_choice(sf_table, SF_TABLES, "sf_table", "V1Front")
        self.ppd = self.image_size / self.visual_degrees
        nyquist = self.ppd / (2.0 * math.sqrt(2.0))
        self.sf_min = check_positive(sf_min, "sf_min", "V1Front", allow_zero=True)
        if sf_max is None:
            sf_max = nyquist
        else:
            sf_max = check_positive(sf_max, "sf_max", "V1Front")
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
        self.noise_scale = check_positive(noise_scale, "noise_scale", "V1Front")
        self.noise_level = check_positive(noise_level, "noise_level", "V1Front", allow_zero=True)
        self.k_exc = check_positive(k_exc, "k_exc", "V1Front")
        self.stochastic_eval = bool(stochastic_eval)
        self.seed = check_int(seed, "seed", "V1Front", minimum=0)
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
        self._banks: List[_bank.Bank] = []
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
        return _bank.kernel_sizes(self.sf_cpd.double().cpu() / self.ppd, self.theta_deg.double().cpu(),
                                  self.nx.double().cpu(), self.ny.double().cpu(), self.image_size,
                                  self.kernel_size)

    def _sort_order(self) -> Tensor:
        """The filter order in which the banks' outputs concatenate without a gather."""
        sizes, _ = self._sizes()
        return _bank.sort_order(sizes, self.channel, self.is_complex, self.fft_min_kernel)

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
        banks, weights, c_fft, perm_inv = _bank.build(
            self.sf_cpd.double().cpu() / self.ppd, self.theta_deg.double().cpu(), self.phase_deg.double().cpu(),
            self.nx.double().cpu(), self.ny.double().cpu(), ch, cx, sizes,
            self.k_exc, self.k_exc / math.sqrt(2.0), self.fft_min_kernel)
        for bank, w in zip(banks, weights):
            self.register_buffer("_w_" + bank[0], w.to(dev), persistent=False)
        if c_fft is not None:
            self.register_buffer("_c_fft", c_fft.to(dev), persistent=False)
        self._banks = banks
        self._perm_inv = None if perm_inv is None else perm_inv.to(dev)

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
        if not x.is_floating_point():
            raise TypeError(
                f"V1Front: input must be a floating-point image tensor in [0, 1], got dtype {x.dtype} "
                f"(convert 8-bit images with x.float() / 255)"
            )
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

    def rates(self, x: Tensor) -> Tensor:
        """Noise-free responses ``k_exc · [ReLU(q0) (simple), √(q0² + q1²)/√2 (complex)]``,
        shape ``(B, out_channels, H', W')``.  At ``q0 = q1 = 0`` the complex response is
        √(tiny) ≈ 1e-19 with a zero gradient (never NaN)."""
        self._check_input(x)
        weights = [getattr(self, "_w_" + name) for name, _, _, _ in self._banks]
        return _bank.apply(x, self._banks, weights, getattr(self, "_c_fft", None), self._perm_inv, self.stride)

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
