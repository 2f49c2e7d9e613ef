"""Parametric fits of learned filters: Laplacian of Gaussian (ℓ0) and Gabor (ℓ1), Bertoni et al., Front. Comput. Neurosci. 2021.

Both fits are vectorised over any number of filters: every filter is an independent non-linear
least-squares problem, solved together by a batched Levenberg–Marquardt iteration (each filter
with its own damping, analytic Jacobians of the models) in float64, from a
closed-form initial guess (an FFT peak for the Gabor carrier, a σ grid search for the LoG).
Why torch and not ``scipy.optimize.curve_fit``: one batched solve fits thousands of filters at
once on any device with no per-filter Python loop, needs no SciPy at run time, and a
second-order method converges in a few dozen iterations where first-order optimisers (Adam)
need thousands and a shared line search (L-BFGS on the summed loss) couples unrelated filters.

Coordinates: for a filter of shape (H, W), pixel (row i, column j) sits at
``x = j − (W − 1)/2``, ``y = i − (H − 1)/2`` (x to the right, y *down*, the image convention);
centres are returned as ``(x0, y0)`` in these units, frequencies in cycles per pixel.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Tuple

import torch
from torch import Tensor

from .._checks import check_finite, check_int, check_tensor
from ..functional.gabor import gabor_at

__all__ = ["fit_log", "fit_gabor", "log_kernel", "gabor_kernel", "radial_symmetry"]


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------

def _coords(h: int, w: int, dtype, device) -> Tuple[Tensor, Tensor]:
    y = torch.arange(h, dtype=dtype, device=device) - (h - 1) / 2
    x = torch.arange(w, dtype=dtype, device=device) - (w - 1) / 2
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    return xx, yy


def _check_filters(filters, where: str, min_size: int = 3) -> Tensor:
    check_tensor(filters, "filters", where)
    if filters.dim() < 2:
        raise ValueError(
            f"{where}: filters must have shape (..., H, W) with at least 2 dims, got shape {tuple(filters.shape)}"
        )
    if filters.shape[-1] < min_size or filters.shape[-2] < min_size:
        raise ValueError(
            f"{where}: filters must be at least {min_size}×{min_size}, got {tuple(filters.shape[-2:])}"
        )
    return check_finite(filters, "filters", where)


def _levenberg_marquardt(
    model_jac: Callable[[Tensor], Tuple[Tensor, Tensor]],
    p: Tensor,
    data: Tensor,
    iters: int,
    clamp: Callable[[Tensor], Tensor],
) -> Tuple[Tensor, Tensor]:
    """Batched LM: ``p`` (N, P), ``data`` (N, M), ``model_jac(p) -> (model (N, M), J (N, M, P))``.

    Each problem keeps its own damping λ (Marquardt's diagonal scaling); a step is accepted only
    where it lowers that problem's cost.  A fixed number of iterations (no host synchronisation)."""
    m, J = model_jac(p)
    r = m - data
    cost = (r * r).sum(-1)
    lam = torch.full_like(cost, 1e-3)
    eye = torch.eye(p.shape[-1], dtype=p.dtype, device=p.device)
    for _ in range(iters):
        jtj = J.transpose(1, 2) @ J
        g = (J.transpose(1, 2) @ r.unsqueeze(-1)).squeeze(-1)
        diag = torch.diagonal(jtj, dim1=1, dim2=2)
        scale = diag + 1e-9 * (1.0 + diag.amax(-1, keepdim=True))
        a = jtj + lam[:, None, None] * torch.diag_embed(scale) + 1e-12 * eye
        step = torch.linalg.solve(a, -g.unsqueeze(-1)).squeeze(-1)
        step = torch.nan_to_num(step, nan=0.0, posinf=0.0, neginf=0.0)
        p_new = clamp(p + step)
        m_new, J_new = model_jac(p_new)
        r_new = m_new - data
        cost_new = (r_new * r_new).sum(-1)
        ok = cost_new < cost
        p = torch.where(ok[:, None], p_new, p)
        r = torch.where(ok[:, None], r_new, r)
        J = torch.where(ok[:, None, None], J_new, J)
        cost = torch.where(ok, cost_new, cost)
        lam = torch.where(ok, lam * 0.3, lam * 10.0).clamp(1e-9, 1e9)
    return p, cost


def _r2(data: Tensor, cost: Tensor) -> Tensor:
    """1 − SS_res / SS_tot; 0 for a constant filter (nothing to explain: never counted as a fit)."""
    ss_tot = ((data - data.mean(-1, keepdim=True)) ** 2).sum(-1)
    ok = ss_tot > 0
    return torch.where(ok, 1.0 - cost / torch.where(ok, ss_tot, torch.ones_like(ss_tot)), torch.zeros_like(ss_tot))


# ----------------------------------------------------------------------------------------------
# Laplacian of Gaussian
# ----------------------------------------------------------------------------------------------

def log_kernel(size, sigma: float, *, amplitude: float = 1.0, center=(0.0, 0.0), offset: float = 0.0,
               dtype=torch.float32, device=None) -> Tensor:
    r"""A (Mexican-hat) Laplacian-of-Gaussian kernel, the model that :func:`fit_log` fits.

    .. math::

        L(x, y) = A \Big(1 - \frac{r^2}{2\sigma^2}\Big) e^{-r^2 / (2\sigma^2)} + c, \qquad
        r^2 = (x - x_0)^2 + (y - y_0)^2

    :math:`A` is the centre value (positive: ON-centre).  The normalised LoG
    :math:`\nabla^2 G_\sigma` is this with :math:`A = -1/(\pi\sigma^4)`.

    Args:
        size: ``k`` or ``(H, W)``.
        sigma: σ in pixels; amplitude: A; center: ``(x0, y0)`` (see the module's coordinates);
            offset: c.

    Returns:
        (H, W) tensor.
    """
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    xx, yy = _coords(h, w, torch.float64, device)
    r2 = (xx - center[0]) ** 2 + (yy - center[1]) ** 2
    q = r2 / (2.0 * sigma**2)
    return (amplitude * (1.0 - q) * torch.exp(-q) + offset).to(dtype)


def radial_symmetry(filters: Tensor) -> Tensor:
    r"""How radially symmetric each filter is, about its geometric centre.

    .. math::

        s = 1 - \frac{\sum_p (k_p - \bar k_{\rho(p)})^2}{\sum_p (k_p - \bar k)^2}

    with :math:`\bar k_{\rho}` the mean of the filter over the ring of pixels that share the exact
    squared radius :math:`\rho = x^2 + y^2` (on a square grid: the pixels related by the 8
    symmetries of the square, plus coincidences such as 5² = 3² + 4²) and :math:`\bar k` its
    overall mean.  1 = perfectly radially symmetric; 0 = no more symmetric than its ring-averaged
    version explains; a constant filter scores 1.

    Args:
        filters: (..., H, W).

    Returns:
        (...) scores in [0, 1].
    """
    filters = _check_filters(filters, "radial_symmetry", min_size=1)
    h, w = filters.shape[-2:]
    lead = filters.shape[:-2]
    d = filters.reshape(-1, h * w).to(torch.float64)
    xx, yy = _coords(h, w, torch.float64, filters.device)
    r2 = torch.round(4 * (xx**2 + yy**2)).to(torch.long).flatten()  # ×4: half-integer centres
    _, ring = torch.unique(r2, return_inverse=True)
    n_ring = int(ring.max()) + 1
    sums = torch.zeros(d.shape[0], n_ring, dtype=d.dtype, device=d.device).index_add_(1, ring, d)
    counts = torch.bincount(ring, minlength=n_ring).to(d.dtype)
    ring_mean = (sums / counts)[:, ring]
    ss_res = ((d - ring_mean) ** 2).sum(-1)
    ss_tot = ((d - d.mean(-1, keepdim=True)) ** 2).sum(-1)
    score = torch.where(ss_tot > 0, 1.0 - ss_res / ss_tot.clamp_min(1e-300), torch.ones_like(ss_tot))
    return score.clamp(0.0, 1.0).reshape(lead).to(filters.dtype)


def fit_log(filters: Tensor, *, offset: bool = True, iters: int = 60) -> Dict[str, Tensor]:
    r"""Fit a Laplacian of Gaussian to each filter (the ℓ0 analysis of Bertoni et al.).

    Model (see :func:`log_kernel`):

    .. math::

        L(x, y) = A \Big(1 - \frac{r^2}{2\sigma^2}\Big) e^{-r^2/(2\sigma^2)} + c,
        \qquad r^2 = (x - x_0)^2 + (y - y_0)^2,

    least squares over :math:`(x_0, y_0, \sigma, A, c)` (``c`` fixed at 0 if ``offset=False``).
    Initial guess: centre at the kernel centre, σ by a grid search (with A, c solved in closed form
    for each σ), then batched Levenberg–Marquardt (module docstring).

    Args:
        filters: (..., H, W), H, W ≥ 3; e.g. ``model.lgn.filter`` (k, k).
        offset: fit a constant c.
        iters: Levenberg–Marquardt iterations.

    Returns:
        dict of tensors with the leading shape ``...``:
        ``sigma`` (pixels), ``amplitude`` (A, the centre value; its sign says ON/OFF centre),
        ``center`` (..., 2) as ``(x0, y0)``, ``offset`` (c), ``residual`` (relative RMS error
        ``‖k − L‖ / ‖k‖``; 0 for an all-zero filter), ``r2`` (1 − SS_res/SS_tot; 0 for a constant
        filter), ``radial_symmetry`` (see
        :func:`radial_symmetry`), and ``fitted`` (..., H, W), the fitted kernels.
    """
    filters = _check_filters(filters, "fit_log")
    iters = check_int(iters, "iters", "fit_log", minimum=0)
    h, w = filters.shape[-2:]
    lead = filters.shape[:-2]
    dev = filters.device
    data = filters.reshape(-1, h * w).to(torch.float64)
    n = data.shape[0]
    xx, yy = _coords(h, w, torch.float64, dev)
    xf, yf = xx.flatten(), yy.flatten()
    use_c = 1.0 if offset else 0.0
    size = max(h, w)

    def model_jac(p: Tensor) -> Tuple[Tensor, Tensor]:
        x0, y0, ls, a, c = (p[:, i : i + 1] for i in range(5))
        dx, dy = xf[None] - x0, yf[None] - y0
        inv_s2 = torch.exp(-2.0 * ls)
        q = (dx**2 + dy**2) * 0.5 * inv_s2
        eq = torch.exp(-q)
        g = (1.0 - q) * eq
        m = a * g + use_c * c
        dm_dq = a * eq * (q - 2.0)
        jac = torch.stack(
            [dm_dq * (-dx * inv_s2), dm_dq * (-dy * inv_s2), dm_dq * (-2.0 * q), g,
             torch.full_like(g, use_c)],
            -1,
        )
        return m, jac

    # σ grid search at the centre, (A, c) by linear least squares for every candidate
    sig = torch.logspace(math.log10(0.3), math.log10(size), 40, dtype=torch.float64, device=dev)
    q = (xf**2 + yf**2)[None, :] / (2.0 * sig[:, None] ** 2)  # (S, M)
    g = (1.0 - q) * torch.exp(-q)
    basis = torch.stack([g, torch.full_like(g, use_c)], -1)  # (S, M, 2)
    btb = basis.transpose(1, 2) @ basis + 1e-9 * torch.eye(2, dtype=torch.float64, device=dev)
    coef = torch.linalg.solve(btb[None], torch.einsum("smk,nm->nsk", basis, data).unsqueeze(-1)).squeeze(-1)
    pred = torch.einsum("smk,nsk->nsm", basis, coef)
    best = ((pred - data[:, None]) ** 2).sum(-1).argmin(1)  # (N,)
    p0 = torch.stack(
        [
            torch.zeros(n, dtype=torch.float64, device=dev),
            torch.zeros(n, dtype=torch.float64, device=dev),
            torch.log(sig[best]),
            coef[torch.arange(n, device=dev), best, 0],
            coef[torch.arange(n, device=dev), best, 1] * use_c,
        ],
        -1,
    )
    lo = torch.tensor([-size, -size, math.log(0.2), -math.inf, -math.inf], dtype=torch.float64, device=dev)
    hi = torch.tensor([size, size, math.log(2.0 * size), math.inf, math.inf], dtype=torch.float64, device=dev)

    def clamp(p: Tensor) -> Tensor:
        return torch.maximum(torch.minimum(p, hi), lo)

    p, cost = _levenberg_marquardt(model_jac, clamp(p0), data, iters, clamp)
    fitted = model_jac(p)[0]
    norm = (data**2).sum(-1).clamp_min(1e-300)
    out_dtype = filters.dtype
    res = {
        "sigma": torch.exp(p[:, 2]),
        "amplitude": p[:, 3],
        "center": p[:, :2],
        "offset": p[:, 4] * use_c,
        "residual": torch.sqrt(cost / norm),
        "r2": _r2(data, cost),
        "fitted": fitted,
    }
    res = {k: v.to(out_dtype).reshape(tuple(lead) + tuple(v.shape[1:])) for k, v in res.items()}
    res["fitted"] = res["fitted"].reshape(tuple(lead) + (h, w))
    res["radial_symmetry"] = radial_symmetry(filters)
    return res


# ----------------------------------------------------------------------------------------------
# Gabor
# ----------------------------------------------------------------------------------------------

def _gabor(xx: Tensor, yy: Tensor, orientation, frequency, sigma_x, sigma_y, phase, amplitude, x0, y0,
           offset) -> Tensor:
    """The model of :func:`gabor_kernel` at image coordinates (x right, y down; angles in
    radians): :func:`torchtopo.functional.gabor.gabor_at` with y flipped up, θ → −θ, in degrees."""
    deg = 180.0 / math.pi
    g = gabor_at(xx - x0, -(yy - y0), frequency, -orientation * deg, phase * deg, sigma_x, sigma_y)
    return amplitude * g + offset


def gabor_kernel(size, *, orientation: float, frequency: float, sigma_x: float, sigma_y: float,
                 phase: float = 0.0, amplitude: float = 1.0, center=(0.0, 0.0), offset: float = 0.0,
                 dtype=torch.float32, device=None) -> Tensor:
    r"""A Gabor kernel, the model that :func:`fit_gabor` fits: the Gabor of
    :mod:`torchtopo.functional.gabor`, unnormalised, with an amplitude, a centre and an offset.

    .. math::

        G(x, y) = A\, e^{-\frac12 (x'^2/\sigma_x^2 + y'^2/\sigma_y^2)} \cos(2\pi f x' + \varphi) + c,
        \quad
        \begin{pmatrix} x' \\ y' \end{pmatrix} =
        \begin{pmatrix} \cos\theta & \sin\theta \\ -\sin\theta & \cos\theta \end{pmatrix}
        \begin{pmatrix} x - x_0 \\ y - y_0 \end{pmatrix}

    θ (``orientation``, radians) is the direction of the carrier's wave vector in this module's
    image coordinates (x right, y down): θ = 0 gives vertical stripes, θ = π/2 horizontal ones;
    the stripes (the preferred edge) run along θ + π/2.  σx is the envelope along the
    modulation, σy along the stripes; φ (``phase``) in radians.

    Returns:
        (H, W) tensor for ``size`` = ``k`` or ``(H, W)``.
    """
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    xx, yy = _coords(h, w, torch.float64, device)
    g = _gabor(xx, yy, orientation, frequency, sigma_x, sigma_y, phase, amplitude, center[0], center[1], offset)
    return g.to(dtype)


def _gabor_init(data: Tensor, h: int, w: int) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """FFT peak → (f, θ) and the second-best peak's; energy moments → centre and σx, σy."""
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
    theta = torch.atan2(fys, fxs)  # wave vector (x right, y down)
    # centre and moments from the energy
    xx, yy = _coords(h, w, torch.float64, dev)
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

    least squares over :math:`(x_0, y_0, \theta, f, \sigma_x, \sigma_y)` and the linear
    coefficients :math:`(A\cos\varphi, -A\sin\varphi, c)` (``c`` fixed at 0 if
    ``offset=False``).

    Initial guesses (several per filter, the best fit kept): the carrier (f, θ) at the highest
    peak of the zero-padded power spectrum, the same with f × 0.7 and f × 1.4, and the
    second-highest peak; the centre at the centroid of the filter's energy; σx, σy from the
    energy's second moments along and across the carrier (energy ∝ envelope², so σ² = 2·variance).
    Then batched Levenberg–Marquardt (module docstring).

    The result is canonical: f ≥ 0, A ≥ 0, θ ∈ [0, π) (θ and θ + π describe the same Gabor with
    φ → −φ), φ ∈ (−π, π].  For an unmodulated blob (f ≈ 0) θ and φ are arbitrary: filter by
    ``r2`` and ``frequency``.

    Args:
        filters: (..., H, W), H, W ≥ 3.  For multi-channel conv weights (C_out, C_in, k, k) either
            fit every channel, or reduce first (e.g. the channel of largest energy).
        offset: fit a constant c.
        iters: Levenberg–Marquardt iterations.
        chunk_size: filters solved together; memory grows as chunk_size × H·W × 36 float64
            (4 starts × 9 parameters): larger sets are fitted chunk by chunk.

    Returns:
        dict of tensors with the leading shape ``...``: ``orientation`` (θ, radians, carrier
        direction; the preferred edge is θ + π/2), ``frequency`` (f, cycles/pixel), ``sigma_x``,
        ``sigma_y`` (pixels), ``phase`` (φ), ``amplitude`` (A), ``center`` (..., 2) as
        ``(x0, y0)``, ``offset`` (c), ``r2`` (1 − SS_res / SS_tot, SS_tot about the filter's
        mean; 0 for a constant filter, e.g. a dead one), and ``fitted`` (..., H, W).
    """
    filters = _check_filters(filters, "fit_gabor")
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
    data = filters.reshape(-1, h * w).to(torch.float64)
    n = data.shape[0]
    xx, yy = _coords(h, w, torch.float64, dev)
    xf, yf = xx.flatten(), yy.flatten()
    use_c = 1.0 if offset else 0.0
    size = float(max(h, w))
    two_pi = 2.0 * math.pi

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
                dm_dxp * yp - dm_dyp * xp,  # θ
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

    p, cost = _levenberg_marquardt(model_jac, clamp(p0), data_rep, iters, clamp)
    best = cost.reshape(len(starts), n).argmin(0)
    idx = best * n + torch.arange(n, device=dev)
    p, cost = p[idx], cost[idx]

    a, b = p[:, 6], p[:, 7]
    amp = torch.hypot(a, b)
    phase = torch.atan2(-b, a)
    th = torch.remainder(p[:, 2], 2 * math.pi)
    flip = th >= math.pi
    th = torch.where(flip, th - math.pi, th)
    phase = torch.where(flip, -phase, phase)
    phase = torch.remainder(phase + math.pi, 2 * math.pi) - math.pi  # [-π, π)
    phase = torch.where(phase <= -math.pi + 1e-12, phase + 2 * math.pi, phase)
    col = [v[:, None] for v in (th, p[:, 3], torch.exp(p[:, 4]), torch.exp(p[:, 5]), phase, amp, p[:, 0], p[:, 1],
                                p[:, 8] * use_c)]
    fitted = _gabor(xf[None], yf[None], *col)
    res = {
        "orientation": th,
        "frequency": p[:, 3],
        "sigma_x": torch.exp(p[:, 4]),
        "sigma_y": torch.exp(p[:, 5]),
        "phase": phase,
        "amplitude": amp,
        "center": p[:, :2],
        "offset": p[:, 8] * use_c,
        "r2": _r2(data, cost),
        "fitted": fitted,
    }
    out = {k: v.to(filters.dtype).reshape(tuple(lead) + tuple(v.shape[1:])) for k, v in res.items()}
    out["fitted"] = out["fitted"].reshape(tuple(lead) + (h, w))
    return out
