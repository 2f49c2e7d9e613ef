r"""The Gabor function: one formula and one orientation convention for the whole library.

.. math::

    G(x, y) = e^{-\frac12 (x'^2/\sigma_x^2 + y'^2/\sigma_y^2)} \cos(2\pi f x' + \varphi),
    \qquad
    \begin{pmatrix} x' \\ y' \end{pmatrix} =
    \begin{pmatrix} \sin\theta & -\cos\theta \\ \cos\theta & \sin\theta \end{pmatrix}
    \begin{pmatrix} x \\ y \end{pmatrix}

**Convention.** ``x`` runs to the right along the columns and ``y`` *up* along the rows (row
index increasing downwards means ``y`` decreasing), both in pixels from the centre of the
kernel, ``(k − 1)/2`` for a ``k × k`` kernel.  θ (degrees) is the **orientation of the stripes**
of the preferred grating, counter-clockwise from the image's horizontal: θ = 0 gives horizontal
stripes (the filter varies along y only), θ = 90° vertical ones.  ``y'`` is the coordinate along
the stripes, direction (cos θ, sin θ); ``x'`` the coordinate along the carrier's wave vector,
direction (sin θ, −cos θ), i.e. θ − 90°.  This is VOneNet's ``gabor_kernel`` for the same θ
(Dapello et al. 2020, whose kernel is written with x along the rows, downwards, and y along the
columns: the same function), and the convention of the De Valois, Yund & Hepler (1982)
orientation table the V1 front samples from.  φ (degrees) is the carrier's phase at the centre
(φ = 0: an even, ON-centred filter; φ = 90°: its odd quadrature partner); θ and θ + 180° with
φ → −φ are the same filter.  f is in cycles per pixel; σx is the envelope's standard deviation
across the stripes (along the wave vector), σy along them.

The V1 front parametrises the envelope in cycles, ``σx = nx/f`` and ``σy = ny/f``, and normalises
it to unit integral (``/(2π σx σy)``), as VOneNet does (Dapello et al. 2020; Barbulescu et al.,
arXiv:2310.10575): :func:`gabor_kernels`.  :func:`gabor_at` evaluates the same function at any
coordinates with σ in pixels; the gratings, orientation tuning and filter fits of
:mod:`torchtopo.analysis` use the same θ.
"""
from __future__ import annotations

import math
from typing import Union

import torch
from torch import Tensor

__all__ = ["gabor_at", "gabor_kernels", "envelope_half_width", "ENVELOPE_SIGMAS"]

Number = Union[float, Tensor]

#: A kernel covers an envelope when its half-width reaches this many σ of the envelope's extent
#: along x and y; with it, ≈ 1/3 of a biologically sampled bank is truncated by VOneNet's 25-px
#: kernel at 224 px / 8° (the share Barbulescu et al., arXiv:2310.10575 quote).
ENVELOPE_SIGMAS: float = 2.0


def gabor_at(x: Tensor, y: Tensor, frequency: Number, theta_deg: Number, phase_deg: Number,
             sigma_x: Number, sigma_y: Number, *, normalized: bool = False) -> Tensor:
    """The Gabor function ``G(x, y)`` of the module docstring at the coordinates ``(x, y)``.

    Args:
        x, y: coordinates in pixels, ``x`` to the right and ``y`` *up*; any shapes that broadcast
            with each other and with the parameters.
        frequency: f, cycles/pixel (0 gives an unmodulated Gaussian).
        theta_deg: θ, the orientation of the stripes, degrees counter-clockwise from horizontal
            (θ = 0: horizontal stripes).
        phase_deg: φ, degrees.
        sigma_x, sigma_y: envelope standard deviations in pixels, across and along the stripes.
        normalized: divide the envelope by ``2π σx σy`` (unit integral), as :func:`gabor_kernels`.

    Returns:
        the broadcast of the inputs, in the dtype of ``x``.
    """
    def as_t(v: Number) -> Tensor:
        return v if isinstance(v, Tensor) else torch.as_tensor(v, dtype=x.dtype, device=x.device)

    f, sx, sy = as_t(frequency), as_t(sigma_x), as_t(sigma_y)
    t = torch.deg2rad(as_t(theta_deg))
    ph = torch.deg2rad(as_t(phase_deg))
    c, s = torch.cos(t), torch.sin(t)
    xr = x * s - y * c  # along the wave vector (sin θ, −cos θ)
    yr = x * c + y * s  # along the stripes (cos θ, sin θ)
    env = torch.exp(-0.5 * (xr ** 2 / sx ** 2 + yr ** 2 / sy ** 2))
    if normalized:
        env = env / (2 * math.pi * sx * sy)
    return env * torch.cos(2 * math.pi * f * xr + ph)


def gabor_kernels(sf_cyc_px: Tensor, theta_deg: Tensor, phase_deg: Tensor, nx: Tensor, ny: Tensor,
                  kernel_size: int) -> Tensor:
    """Gabor kernels ``G(x, y) = exp(−½(x′²/σx² + y′²/σy²)) / (2π σx σy) · cos(2π f x′ + φ)``.

    ``x′ = x sin θ − y cos θ``, ``y′ = x cos θ + y sin θ``; ``x`` runs to the right along the
    columns and ``y`` *up* along the rows, both measured from the kernel centre ``(k − 1)/2``, so
    θ is the orientation of the stripes counter-clockwise from the image's horizontal (θ = 0:
    horizontal stripes; VOneNet's ``gabor_kernel`` for the same θ).  σx = nx/f, σy = ny/f
    (Barbulescu et al., arXiv:2310.10575).

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
    sx, sy = nx.view(-1, 1, 1) / f, ny.view(-1, 1, 1) / f
    return gabor_at(x, y, f, theta_deg.view(-1, 1, 1), phase_deg.view(-1, 1, 1), sx, sy, normalized=True)


def envelope_half_width(sf_cyc_px: Tensor, theta_deg: Tensor, nx: Tensor, ny: Tensor,
                        n_sigmas: float = ENVELOPE_SIGMAS) -> Tensor:
    """Half-width (pixels) of the axis-aligned box holding ``n_sigmas`` σ of each rotated envelope.

    With σx = nx/f (across the stripes), σy = ny/f (along them) and θ the stripe orientation, the
    envelope's standard deviation along the image x axis is √(σx² sin²θ + σy² cos²θ) and along y
    √(σx² cos²θ + σy² sin²θ); the half-width is ``n_sigmas`` times the larger one.  All inputs
    are 1-D of the same length.
    """
    sx, sy = nx / sf_cyc_px, ny / sf_cyc_px
    t = torch.deg2rad(theta_deg)
    c2, s2 = torch.cos(t) ** 2, torch.sin(t) ** 2
    ex = torch.sqrt(sx * sx * s2 + sy * sy * c2)
    ey = torch.sqrt(sx * sx * c2 + sy * sy * s2)
    return n_sigmas * torch.maximum(ex, ey)
