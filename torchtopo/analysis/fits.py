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
``x = j − (W − 1)/2``, ``y = (H − 1)/2 − i`` (x to the right, y *up*, the convention of
:mod:`torchtopo.functional.gabor`); centres are returned as ``(x0, y0)`` in these units,
frequencies in cycles per pixel.  Gabor orientations follow the library's one convention: θ is
the orientation of the stripes, 0° horizontal, counter-clockwise (:func:`fit_gabor`).
"""
from __future__ import annotations

import math
from typing import Dict, Tuple

import torch
from torch import Tensor

from .._checks import check_int, check_positive
from ._fitting import check_filters, coords, flat_problem, levenberg_marquardt, r_squared
from ._gabor_fit import fit_gabor, gabor_kernel

__all__ = ["fit_log", "fit_gabor", "log_kernel", "gabor_kernel", "radial_symmetry"]


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
    sigma = check_positive(sigma, "sigma", "log_kernel")
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    xx, yy = coords(h, w, torch.float64, device)
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
    filters = check_filters(filters, "radial_symmetry", min_size=1)
    h, w = filters.shape[-2:]
    lead = filters.shape[:-2]
    d = filters.reshape(-1, h * w).to(torch.float64)
    xx, yy = coords(h, w, torch.float64, filters.device)
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
    filters = check_filters(filters, "fit_log")
    iters = check_int(iters, "iters", "fit_log", minimum=0)
    h, w = filters.shape[-2:]
    lead = filters.shape[:-2]
    dev = filters.device
    data, xf, yf = flat_problem(filters)
    n = data.shape[0]
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

    p, cost = levenberg_marquardt(model_jac, clamp(p0), data, iters, clamp)
    fitted = model_jac(p)[0]
    norm = (data**2).sum(-1).clamp_min(1e-300)
    out_dtype = filters.dtype
    res = {
        "sigma": torch.exp(p[:, 2]),
        "amplitude": p[:, 3],
        "center": p[:, :2],
        "offset": p[:, 4] * use_c,
        "residual": torch.sqrt(cost / norm),
        "r2": r_squared(data, cost),
        "fitted": fitted,
    }
    res = {k: v.to(out_dtype).reshape(tuple(lead) + tuple(v.shape[1:])) for k, v in res.items()}
    res["fitted"] = res["fitted"].reshape(tuple(lead) + (h, w))
    res["radial_symmetry"] = radial_symmetry(filters)
    return res
