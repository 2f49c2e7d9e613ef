"""Gabor fits of learned filters (private; public through :mod:`torchtopo.analysis.fits`): the
ℓ1 analysis of Bertoni et al., Front. Comput. Neurosci. 2021, in the library's one orientation
convention (:mod:`torchtopo.functional.gabor`: θ the orientation of the stripes, 0° horizontal,
counter-clockwise, y up)."""
from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from .._checks import check_int, check_real
from ..functional.gabor import gabor_at
from ._fitting import check_filters, coords, flat_problem, levenberg_marquardt, r_squared

__all__ = ["gabor_kernel", "fit_gabor"]


def _gabor(xx: Tensor, yy: Tensor, theta, frequency, sigma_x, sigma_y, phase, amplitude, x0, y0,
           offset) -> Tensor:
    """The model of :func:`gabor_kernel` (x right, y up; θ and φ in radians):
    ``A · gabor_at(x − x0, y − y0, f, θ°, φ°, σx, σy) + c``."""
    deg = 180.0 / math.pi
    return amplitude * gabor_at(xx - x0, yy - y0, frequency, theta * deg, phase * deg, sigma_x, sigma_y) + offset


def _angle(deg: Optional[float], rad: Optional[float], deg_name: str, rad_name: str, default: Optional[float]) -> float:
    """One angle given in degrees or radians (not both), in radians."""
    deg, rad = (float(v) if isinstance(v, Tensor) and v.numel() == 1 else v for v in (deg, rad))
    if deg is not None and rad is not None:
        raise ValueError(f"gabor_kernel: give {deg_name} (degrees) or {rad_name} (radians), not both; "
                         f"got {deg_name}={deg!r} and {rad_name}={rad!r}")
    if deg is None and rad is None:
        if default is None:
            raise TypeError(f"gabor_kernel: missing the orientation: give {deg_name} (degrees) or {rad_name} (radians)")
        return default
    if deg is not None:
        return math.radians(check_real(deg, deg_name, "gabor_kernel"))
    return check_real(rad, rad_name, "gabor_kernel")


def gabor_kernel(size, *, theta_deg: Optional[float] = None, frequency: float, sigma_x: float, sigma_y: float,
                 phase_deg: Optional[float] = None, amplitude: float = 1.0, center=(0.0, 0.0), offset: float = 0.0,
                 orientation: Optional[float] = None, phase: Optional[float] = None,
                 dtype=torch.float32, device=None) -> Tensor:
    r"""A Gabor kernel, the model that :func:`fit_gabor` fits: the Gabor of
    :mod:`torchtopo.functional.gabor`, unnormalised, with an amplitude, a centre and an offset.

    .. math::

        G(x, y) = A\, e^{-\frac12 (x'^2/\sigma_x^2 + y'^2/\sigma_y^2)} \cos(2\pi f x' + \varphi) + c,
        \quad
        \begin{pmatrix} x' \\ y' \end{pmatrix} =
        \begin{pmatrix} \sin\theta & -\cos\theta \\ \cos\theta & \sin\theta \end{pmatrix}
        \begin{pmatrix} x - x_0 \\ y - y_0 \end{pmatrix}

    with x to the right and y *up* (pixels from the kernel centre).  θ is the orientation of the
    stripes, counter-clockwise from horizontal (θ = 0: horizontal stripes; VOneNet's convention),
    given as ``theta_deg`` (degrees) or ``orientation`` (radians); φ as ``phase_deg`` or
    ``phase`` (radians; default 0).  σx is the envelope across the stripes, σy along them.
    ``fit_gabor``'s result feeds back directly (``theta_deg=r["theta_deg"], ...``).

    Returns:
        (H, W) tensor for ``size`` = ``k`` or ``(H, W)``.
    """
    th = _angle(theta_deg, orientation, "theta_deg", "orientation", None)
    ph = _angle(phase_deg, phase, "phase_deg", "phase", 0.0)
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    xx, yy = coords(h, w, torch.float64, device)
    g = _gabor(xx, yy, th, frequency, sigma_x, sigma_y, ph, amplitude, center[0], center[1], offset)
    return g.to(dtype)


def _gabor_init(data: Tensor, h: int, w: int) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """FFT peak → (f, α) and the second-best peak's, α the direction of the wave vector
    (counter-clockwise, y up; the stripes lie at θ = α + π/2); energy moments → centre and
    σx, σy."""
    n = data.shape[0]
    dev = data.device
    img = (data - data.mean(-1, keepdim=True)).reshape(n, h, w)
    ph, pw = 4 * h, 4 * w  # zero padding: 4× finer frequency sampling
    power = torch.fft.fft2(img, s=(ph, pw)).abs() ** 2
    fy = torch.fft.fftfreq(ph, dtype=torch.float64, device=dev)
    fx = torch.fft.fftfreq(pw, dtype=torch.float64, device=dev)
    fyy, fxx = torch.meshgrid(fy, fx, indexing="ij")
    # only the half plane fx > 0 or (fx == 0, fy > 0): each (f, θ mod π) once; DC excluded
    half = (fxx > 0) | ((fxx == 0) & (fyy > 0))
    power = torch.where(half[None], power, torch.zeros_like(power)).reshape(n, -1)
    top = power.topk(2, dim=-1).indices  # (N, 2)
    fxs, fys = fxx.flatten()[top], fyy.flatten()[top]
    freq = torch.hypot(fxs, fys)
    # a row frequency fy (rows run down) is −fy along y (up): the wave vector is (fx, −fy)
    theta = torch.atan2(-fys, fxs)
    # centre and moments from the energy
    xx, yy = coords(h, w, torch.float64, dev)
    e = (data - data.mean(-1, keepdim=True)) ** 2
    e = e / e.sum(-1, keepdim=True).clamp_min(1e-300)
    xf, yf = xx.flatten(), yy.flatten()
    x0 = (e * xf).sum(-1)
    y0 = (e * yf).sum(-1)
    dx, dy = xf[None] - x0[:, None], yf[None] - y0[:, None]
    t = theta[:, 0:1]
    xp = dx * torch.cos(t) + dy * torch.sin(t)
    yp = -dx * torch.sin(t) + dy * torch.cos(t)
    # energy ∝ envelope² · cos²: its variance along an axis is σ²/2
    sx = torch.sqrt(2.0 * (e * xp**2).sum(-1)).clamp(0.5, float(max(h, w)))
    sy = torch.sqrt(2.0 * (e * yp**2).sum(-1)).clamp(0.5, float(max(h, w)))
    return freq, theta, x0, y0, sx, sy, e


def fit_gabor(filters: Tensor, *, offset: bool = True, iters: int = 60, chunk_size: int = 1024) -> Dict[str, Tensor]:
    r"""Fit a Gabor function to each of many filters at once (the ℓ1 analysis of Bertoni et al.).

    Model (see :func:`gabor_kernel`):

    .. math::

        G(x, y) = A\, e^{-\frac12 (x'^2/\sigma_x^2 + y'^2/\sigma_y^2)} \cos(2\pi f x' + \varphi) + c,

    with :math:`x' = (x - x_0)\sin\theta - (y - y_0)\cos\theta`,
    :math:`y' = (x - x_0)\cos\theta + (y - y_0)\sin\theta` (x right, y up), θ the orientation of
    the stripes — the library's one convention (:mod:`torchtopo.functional.gabor`): θ = 0 is
    horizontal stripes, counter-clockwise, so a :class:`~torchtopo.v1.V1Front` filter comes back
    with its own ``theta_deg`` (and ``phase_deg``).  Least squares over
    :math:`(x_0, y_0, \theta, f, \sigma_x, \sigma_y)` and the linear
    coefficients :math:`(A\cos\varphi, -A\sin\varphi, c)` (``c`` fixed at 0 if
    ``offset=False``).

    Initial guesses (several per filter, the best fit kept): the carrier (f, θ) at the highest
    peak of the zero-padded power spectrum, the same with f × 0.7 and f × 1.4, and the
    second-highest peak; the centre at the centroid of the filter's energy; σx, σy from the
    energy's second moments along and across the carrier (energy ∝ envelope², so σ² = 2·variance).
    Then batched Levenberg–Marquardt (module docstring).

    The result is canonical: f ≥ 0, A ≥ 0, θ ∈ [0°, 180°) (θ and θ + 180° describe the same
    Gabor with φ → −φ), φ ∈ (−180°, 180°].  For an unmodulated blob (f ≈ 0) θ and φ are arbitrary: filter by
    ``r2`` and ``frequency``.

    Args:
        filters: (..., H, W), H, W ≥ 3.  For multi-channel conv weights (C_out, C_in, k, k) either
            fit every channel, or reduce first (e.g. the channel of largest energy).
        offset: fit a constant c.
        iters: Levenberg–Marquardt iterations.
        chunk_size: filters solved together; memory grows as chunk_size × H·W × 36 float64
            (4 starts × 9 parameters): larger sets are fitted chunk by chunk.

    Returns:
        dict of tensors with the leading shape ``...``: ``theta_deg`` (θ, the stripes'
        orientation, degrees in [0, 180)) and ``orientation`` (the same θ in radians, for
        :func:`~torchtopo.analysis.lateral_selectivity` and
        :func:`~torchtopo.analysis.association_field`), ``frequency`` (f, cycles/pixel),
        ``sigma_x`` (across the stripes), ``sigma_y`` (along them; pixels), ``phase_deg`` and
        ``phase`` (φ in degrees and radians), ``amplitude`` (A), ``center`` (..., 2) as
        ``(x0, y0)`` (y up), ``offset`` (c), ``r2`` (1 − SS_res / SS_tot, SS_tot about the
        filter's mean; 0 for a constant filter, e.g. a dead one), and ``fitted`` (..., H, W).
    """
    filters = check_filters(filters, "fit_gabor")
    iters = check_int(iters, "iters", "fit_gabor", minimum=0)
    check_int(chunk_size, "chunk_size", "fit_gabor", minimum=1)
    h, w = filters.shape[-2:]
    lead = filters.shape[:-2]
    flat = filters.reshape(-1, h, w)
    if flat.shape[0] > chunk_size:
        parts = [fit_gabor(flat[i : i + chunk_size], offset=offset, iters=iters, chunk_size=chunk_size)
                 for i in range(0, flat.shape[0], chunk_size)]
        return {k: torch.cat([q[k] for q in parts]).reshape(tuple(lead) + tuple(parts[0][k].shape[1:]))
                for k in parts[0]}
    dev = filters.device
    data, xf, yf = flat_problem(filters)
    n = data.shape[0]
    use_c = 1.0 if offset else 0.0
    size = float(max(h, w))
    two_pi = 2.0 * math.pi

    # Internally the angle is α = θ − π/2, the direction of the wave vector (x' = projection on
    # (cos α, sin α), y' on (−sin α, cos α)): the same function, converted at the end.
    def basis(p: Tensor) -> Tuple[Tensor, ...]:
        x0, y0, th, f, lsx, lsy = (p[:, i : i + 1] for i in range(6))
        dx, dy = xf[None] - x0, yf[None] - y0
        ct, st = torch.cos(th), torch.sin(th)
        xp = dx * ct + dy * st
        yp = -dx * st + dy * ct
        isx, isy = torch.exp(-2.0 * lsx), torch.exp(-2.0 * lsy)
        env = torch.exp(-0.5 * (xp**2 * isx + yp**2 * isy))
        arg = two_pi * f * xp
        return env, torch.cos(arg), torch.sin(arg), xp, yp, isx, isy, ct, st, f

    def model_jac(p: Tensor) -> Tuple[Tensor, Tensor]:
        env, cos, sin, xp, yp, isx, isy, ct, st, f = basis(p)
        a, b, c = p[:, 6:7], p[:, 7:8], p[:, 8:9]
        carrier = a * cos + b * sin
        d_carrier = -a * sin + b * cos  # d carrier / d(2π f x')
        m = env * carrier + use_c * c
        dm_dxp = env * (-xp * isx * carrier + two_pi * f * d_carrier)
        dm_dyp = env * (-yp * isy * carrier)
        jac = torch.stack(
            [
                -dm_dxp * ct + dm_dyp * st,  # x0
                -dm_dxp * st - dm_dyp * ct,  # y0
                dm_dxp * yp - dm_dyp * xp,  # α
                env * two_pi * xp * d_carrier,  # f
                env * carrier * xp**2 * isx,  # log σx
                env * carrier * yp**2 * isy,  # log σy
                env * cos,
                env * sin,
                torch.full_like(env, use_c),
            ],
            -1,
        )
        return m, jac

    freq, theta, x0, y0, sx, sy, _ = _gabor_init(data, h, w)
    starts = [
        (freq[:, 0], theta[:, 0]),
        (freq[:, 0] * 0.7, theta[:, 0]),
        (freq[:, 0] * 1.4, theta[:, 0]),
        (freq[:, 1], theta[:, 1]),
    ]
    nl = torch.cat(
        [torch.stack([x0, y0, th, f, torch.log(sx), torch.log(sy)], -1) for f, th in starts], 0
    )  # (S·N, 6)
    data_rep = data.repeat(len(starts), 1)
    # linear coefficients in closed form at the initial guess
    env, cos, sin = basis(nl)[:3]
    bas = torch.stack([env * cos, env * sin, torch.full_like(env, use_c)], -1)  # (S·N, M, 3)
    btb = bas.transpose(1, 2) @ bas + 1e-9 * torch.eye(3, dtype=torch.float64, device=dev)
    lin = torch.linalg.solve(btb, (bas.transpose(1, 2) @ data_rep.unsqueeze(-1))).squeeze(-1)
    p0 = torch.cat([nl, lin], -1)
    inf = math.inf
    lo = torch.tensor([-size, -size, -inf, 0.0, math.log(0.3), math.log(0.3), -inf, -inf, -inf],
                      dtype=torch.float64, device=dev)
    hi = torch.tensor([size, size, inf, 0.75, math.log(2 * size), math.log(2 * size), inf, inf, inf],
                      dtype=torch.float64, device=dev)

    def clamp(p: Tensor) -> Tensor:
        return torch.maximum(torch.minimum(p, hi), lo)

    p, cost = levenberg_marquardt(model_jac, clamp(p0), data_rep, iters, clamp)
    best = cost.reshape(len(starts), n).argmin(0)
    idx = best * n + torch.arange(n, device=dev)
    p, cost = p[idx], cost[idx]

    a, b = p[:, 6], p[:, 7]
    amp = torch.hypot(a, b)
    phase = torch.atan2(-b, a)
    th = torch.remainder(p[:, 2] + math.pi / 2, 2 * math.pi)  # θ = α + π/2
    flip = th >= math.pi
    th = torch.where(flip, th - math.pi, th)
    phase = torch.where(flip, -phase, phase)
    phase = torch.remainder(phase + math.pi, 2 * math.pi) - math.pi  # [-π, π)
    phase = torch.where(phase <= -math.pi + 1e-12, phase + 2 * math.pi, phase)
    col = [v[:, None] for v in (th, p[:, 3], torch.exp(p[:, 4]), torch.exp(p[:, 5]), phase, amp, p[:, 0], p[:, 1],
                                p[:, 8] * use_c)]
    fitted = _gabor(xf[None], yf[None], *col)
    res = {
        "theta_deg": torch.rad2deg(th),
        "orientation": th,
        "frequency": p[:, 3],
        "sigma_x": torch.exp(p[:, 4]),
        "sigma_y": torch.exp(p[:, 5]),
        "phase_deg": torch.rad2deg(phase),
        "phase": phase,
        "amplitude": amp,
        "center": p[:, :2],
        "offset": p[:, 8] * use_c,
        "r2": r_squared(data, cost),
        "fitted": fitted,
    }
    out = {k: v.to(filters.dtype).reshape(tuple(lead) + tuple(v.shape[1:])) for k, v in res.items()}
    out["fitted"] = out["fitted"].reshape(tuple(lead) + (h, w))
    return out
