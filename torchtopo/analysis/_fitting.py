"""The machinery the filter fits share (private): pixel coordinates, input checks, a batched
Levenberg–Marquardt solver and R².

Coordinates: for a filter of shape (H, W), pixel (row i, column j) sits at
``x = j − (W − 1)/2``, ``y = (H − 1)/2 − i`` (x to the right, y *up*: the convention of
:mod:`torchtopo.functional.gabor`).
"""
from __future__ import annotations

from typing import Callable, Tuple

import torch
from torch import Tensor

from .._checks import check_finite, check_tensor

__all__ = ["coords", "check_filters", "flat_problem", "levenberg_marquardt", "r_squared"]


def coords(h: int, w: int, dtype, device) -> Tuple[Tensor, Tensor]:
    """``(x, y)`` of every pixel of an (H, W) filter: x to the right, y *up*, from the centre."""
    y = (h - 1) / 2 - torch.arange(h, dtype=dtype, device=device)
    x = torch.arange(w, dtype=dtype, device=device) - (w - 1) / 2
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    return xx, yy


def check_filters(filters, where: str, min_size: int = 3) -> Tensor:
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


def flat_problem(filters: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """The fits' common set-up: ``(data, xf, yf)``, the (n, H·W) float64 filters and the flat
    pixel coordinates (y up) they are fitted on."""
    h, w = filters.shape[-2:]
    xx, yy = coords(h, w, torch.float64, filters.device)
    return filters.reshape(-1, h * w).to(torch.float64), xx.flatten(), yy.flatten()


def levenberg_marquardt(
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


def r_squared(data: Tensor, cost: Tensor) -> Tensor:
    """1 − SS_res / SS_tot; 0 for a constant filter (nothing to explain: never counted as a fit)."""
    ss_tot = ((data - data.mean(-1, keepdim=True)) ** 2).sum(-1)
    ok = ss_tot > 0
    return torch.where(ok, 1.0 - cost / torch.where(ok, ss_tot, torch.ones_like(ss_tot)), torch.zeros_like(ss_tot))
