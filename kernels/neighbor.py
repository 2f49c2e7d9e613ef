r"""Fused Triton kernels for the neighbour-distance penalties (WS and AS).

The input is the 4-D view ``X[pre, row, col, post]`` of :mod:`torchtopo.functional` (any strides:
never copied or transposed); unit ``u = row·W + col`` owns the vector ``X[:, row, col, :]`` of
length ``D = pre·post``.  Every load is multiplied by ``1/c`` for a scale c given by the caller
(a power of two, so exact; it keeps sums of squares of huge or tiny inputs in range).  The kernels
only *walk*; the per-pair algebra between the walks is the caller's.

:func:`pair_sums` — for each unit u and each offset o of the grid's half stencil
(:attr:`torchtopo.Grid.offsets`) the forward kernel walks the two vectors once, in blocks of the
vector dimension, and accumulates in fp32 (fp64 for fp64 inputs)

* ``q[o, u] = Σ (x − y)²`` for ``"euclidean"`` / ``"sqeuclidean"`` (no cancellation),
* ``q[o, u] = Σ x̃·ỹ`` for ``"cosine"`` (x̃ = x) and ``"correlation"`` (x̃ = x − mean(x)),
  and each unit's ``‖x̃_u‖²`` from the same loads,

zero where the neighbour u + o does not exist.  Correlation first takes each unit's mean in a
small kernel (one more pass, so the centring is exact).

:func:`pair_grad` — given per-unit α and per-pair β (the derivative of the caller's per-pair
distance is ``∂d/∂x̃ = α₁x̃ + βỹ``, ``∂d/∂ỹ = α₂ỹ + βx̃``, with the α's already summed per unit
and the incoming gradient folded in), the backward kernel walks the same pairs, now in both
directions of the stencil, and writes each gradient tile once (no atomics):

.. math::

    g_u = \alpha_u \tilde x_u + \sum_o \beta[o, u]\,\tilde x_{u+o}
          + \sum_o \beta[o, u - o]\,\tilde x_{u-o}

(the x̃ are the scaled loads; the caller folds the scale's power into α and β).  For
``"correlation"`` the centring Jacobian ``I − 11ᵀ/D`` is the identity on these zero-mean terms,
so it is not applied.  Nothing of size P×D (pairs × vector) or N×N is ever formed: the only extra
memory is O(offsets × N).

Study: the WS / AS losses of Truong & Hasson (arXiv:2508.00043).
"""
from __future__ import annotations

import os
from typing import Optional, Tuple

import torch
from torch import Tensor

import triton
import triton.language as tl

__all__ = ["pair_sums", "pair_grad", "METRIC_CODES"]

METRIC_CODES = {"sqeuclidean": 0, "euclidean": 1, "cosine": 2, "correlation": 3}


# ------------------------------------------------------------------------------ kernels
@triton.jit
def _vec_offsets(d, Q, s0, s3, LAYOUT: tl.constexpr):
    """Memory offset of element d of a unit's vector (d = p·Q + q)."""
    d64 = d.to(tl.int64)
    if LAYOUT == 1:  # pre == 1: the vector is the last dimension
        off = d64 * s3
    elif LAYOUT == 2:  # post == 1: the vector is the first dimension
        off = d64 * s0
    else:
        off = (d64 // Q) * s0 + (d64 % Q) * s3
    return off  # one return after the constexpr branches (early returns in them trip some Triton versions)


@triton.jit
def _unit_mean_kernel(
    X, INV, MEAN, N, W, Q, D, s0, s1, s2, s3,
    ACC_F64: tl.constexpr, LAYOUT: tl.constexpr, BLOCK_U: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """Each unit's mean over its (scaled) vector (correlation only: one pass before the pairs)."""
    acc_t = tl.float64 if ACC_F64 else tl.float32
    inv = tl.load(INV).to(acc_t)
    u = tl.program_id(0) * BLOCK_U + tl.arange(0, BLOCK_U)
    umask = u < N
    r = u // W
    c = u % W
    base = r.to(tl.int64) * s1 + c.to(tl.int64) * s2
    s = tl.zeros((BLOCK_U,), dtype=acc_t)
    for d0 in range(0, D, BLOCK_D):
        d = d0 + tl.arange(0, BLOCK_D)
        m = umask[:, None] & (d < D)[None, :]
        voff = _vec_offsets(d, Q, s0, s3, LAYOUT)
        x = tl.load(X + base[:, None] + voff[None, :], mask=m, other=0.0).to(acc_t) * inv
        s += tl.sum(x, axis=1)
    tl.store(MEAN + u, s / D, mask=umask)


@triton.jit
def _neighbor(r, c, dr, dc, umask, H, W, WRAP: tl.constexpr):
    """Row, column and validity of the unit at (r + dr, c + dc) (dr, dc may be negative)."""
    r2 = r + dr
    c2 = c + dc
    if WRAP:
        r2 = (r2 + H) % H
        c2 = (c2 + W) % W
        valid = umask
    else:
        valid = umask & (r2 >= 0) & (r2 < H) & (c2 >= 0) & (c2 < W)
        r2 = tl.where(valid, r2, 0)
        c2 = tl.where(valid, c2, 0)
    return r2, c2, valid


@triton.jit
def _pair_fwd_kernel(
    X, INV, MEAN, OFFS, QOUT, NSQ,
    N, H, W, Q, D, s0, s1, s2, s3, N_OFF,
    METRIC: tl.constexpr, WRAP: tl.constexpr, ACC_F64: tl.constexpr, LAYOUT: tl.constexpr,
    OFF_PAD: tl.constexpr, BLOCK_U: tl.constexpr, BLOCK_D: tl.constexpr,
):
    acc_t = tl.float64 if ACC_F64 else tl.float32
    inv = tl.load(INV).to(acc_t)
    u = tl.program_id(0) * BLOCK_U + tl.arange(0, BLOCK_U)
    umask = u < N
    r = u // W
    c = u % W
    base_a = r.to(tl.int64) * s1 + c.to(tl.int64) * s2
    if METRIC == 3:
        mu_a = tl.load(MEAN + u, mask=umask, other=0.0)
    oidx = tl.arange(0, OFF_PAD)
    acc = tl.zeros((OFF_PAD, BLOCK_U), dtype=acc_t)
    ssa = tl.zeros((BLOCK_U,), dtype=acc_t)  # angular distances: ‖x̃_u‖² from the same loads
    for d0 in range(0, D, BLOCK_D):
        d = d0 + tl.arange(0, BLOCK_D)
        dmask = d < D
        voff = _vec_offsets(d, Q, s0, s3, LAYOUT)
        ma = umask[:, None] & dmask[None, :]
        xa = tl.load(X + base_a[:, None] + voff[None, :], mask=ma, other=0.0).to(acc_t) * inv
        if METRIC == 3:
            xa = tl.where(ma, xa - mu_a[:, None], 0.0)
        if METRIC >= 2:
            ssa += tl.sum(xa * xa, axis=1)
        for o in range(N_OFF):
            dr = tl.load(OFFS + 2 * o)
            dc = tl.load(OFFS + 2 * o + 1)
            r2, c2, valid = _neighbor(r, c, dr, dc, umask, H, W, WRAP)
            mb = valid[:, None] & dmask[None, :]
            base_b = r2.to(tl.int64) * s1 + c2.to(tl.int64) * s2
            xb = tl.load(X + base_b[:, None] + voff[None, :], mask=mb, other=0.0).to(acc_t) * inv
            if METRIC == 3:
                mu_b = tl.load(MEAN + r2 * W + c2, mask=valid, other=0.0)
                xb = tl.where(mb, xb - mu_b[:, None], 0.0)
            if METRIC <= 1:
                t = tl.where(mb, xa - xb, 0.0)
                part = tl.sum(t * t, axis=1)
            else:
                part = tl.sum(xa * xb, axis=1)
            acc = tl.where(oidx[:, None] == o, acc + part[None, :], acc)
    omask = oidx < N_OFF
    tl.store(QOUT + oidx[:, None] * N + u[None, :], acc, mask=omask[:, None] & umask[None, :])
    if METRIC >= 2:
        tl.store(NSQ + u, ssa, mask=umask)


@triton.jit
def _pair_bwd_kernel(
    X, INV, MEAN, OFFS, ALPHA, B, OUT,
    N, H, W, Q, D, s0, s1, s2, s3, o0, o1, o2, o3, N_OFF,
    METRIC: tl.constexpr, WRAP: tl.constexpr, ACC_F64: tl.constexpr, LAYOUT: tl.constexpr,
    BLOCK_U: tl.constexpr, BLOCK_D: tl.constexpr,
):
    acc_t = tl.float64 if ACC_F64 else tl.float32
    inv = tl.load(INV).to(acc_t)
    u = tl.program_id(0) * BLOCK_U + tl.arange(0, BLOCK_U)
    umask = u < N
    r = u // W
    c = u % W
    d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    dmask = d < D
    voff = _vec_offsets(d, Q, s0, s3, LAYOUT)
    ma = umask[:, None] & dmask[None, :]
    xa = tl.load(X + (r.to(tl.int64) * s1 + c.to(tl.int64) * s2)[:, None] + voff[None, :],
                 mask=ma, other=0.0).to(acc_t) * inv
    if METRIC == 3:
        mu_a = tl.load(MEAN + u, mask=umask, other=0.0)
        xa = tl.where(ma, xa - mu_a[:, None], 0.0)
    alpha = tl.load(ALPHA + u, mask=umask, other=0.0).to(acc_t)
    g = alpha[:, None] * xa
    for o in range(N_OFF):
        dr = tl.load(OFFS + 2 * o)
        dc = tl.load(OFFS + 2 * o + 1)
        for side in tl.static_range(2):
            if side == 0:  # u is the first unit of the pair (u, u + o)
                r2, c2, valid = _neighbor(r, c, dr, dc, umask, H, W, WRAP)
                cidx = o * N + u
            else:  # u is the second unit of the pair (u - o, u)
                r2, c2, valid = _neighbor(r, c, -dr, -dc, umask, H, W, WRAP)
                cidx = o * N + r2 * W + c2
            beta = tl.load(B + cidx, mask=valid, other=0.0).to(acc_t)
            mb = valid[:, None] & dmask[None, :]
            xb = tl.load(X + (r2.to(tl.int64) * s1 + c2.to(tl.int64) * s2)[:, None] + voff[None, :],
                         mask=mb, other=0.0).to(acc_t) * inv
            if METRIC == 3:
                mu_b = tl.load(MEAN + r2 * W + c2, mask=valid, other=0.0)
                xb = tl.where(mb, xb - mu_b[:, None], 0.0)
            g += beta[:, None] * xb
    ooff = _vec_offsets(d, Q, o0, o3, LAYOUT)
    optr = OUT + (r.to(tl.int64) * o1 + c.to(tl.int64) * o2)[:, None] + ooff[None, :]
    tl.store(optr, g.to(OUT.dtype.element_ty), mask=ma)


# ---------------------------------------------------------------------- host wrappers
_OFFS_CACHE: dict = {}


def _offsets_tensor(grid, device: torch.device) -> Tensor:
    key = (tuple(grid.offsets), str(device))
    t = _OFFS_CACHE.get(key)
    if t is None:
        t = torch.tensor([v for o in grid.offsets for v in o], dtype=torch.int32, device=device)
        _OFFS_CACHE[key] = t
    return t


def _layout(P: int, Q: int) -> int:
    if P == 1:
        return 1
    if Q == 1:
        return 2
    return 0


def _blocks(X: Tensor, block_u: Optional[int], block_d: Optional[int]):
    P, _, _, Q = X.shape
    if block_u is None or block_d is None:
        if Q == 1 and P > 1:  # (B, H, W, 1): units are the contiguous axis
            bu, bd = 64, 32
        else:
            bu, bd = 16, 128
        D = P * Q
        bd = min(bd, max(16, triton.next_power_of_2(D)))
        block_u = bu if block_u is None else block_u
        block_d = bd if block_d is None else block_d
    for name, v in (("block_u", block_u), ("block_d", block_d)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1 or v & (v - 1):
            raise ValueError(f"{name} must be a power of 2 (a Triton tile size), got {v!r}")
    return block_u, block_d


def _check_runnable(X: Tensor) -> None:
    if not X.is_cuda and os.environ.get("TRITON_INTERPRET", "0") != "1":
        raise RuntimeError(
            "the Triton kernels need a CUDA tensor, or TRITON_INTERPRET=1 (set before triton "
            f"is imported) to run on {X.device.type} tensors; use backend='torch' instead"
        )


def _check(X: Tensor, grid, distance: str) -> None:
    if distance not in METRIC_CODES:
        raise ValueError(f"distance must be one of {tuple(METRIC_CODES)}, got {distance!r}")
    if X.dim() != 4:
        raise ValueError(f"X must be the 4-D (pre, H, W, post) unit view, got shape {tuple(X.shape)}")
    if not X.is_floating_point():
        raise TypeError(f"X must be a floating-point tensor, got dtype {X.dtype}")
    if (X.shape[1], X.shape[2]) != (grid.height, grid.width):
        raise ValueError(
            f"X has a {X.shape[1]}×{X.shape[2]} grid of units (shape {tuple(X.shape)}) but the "
            f"grid is {grid.height}×{grid.width}"
        )
    _check_runnable(X)


def _acc(X: Tensor) -> torch.dtype:
    return torch.float64 if X.dtype == torch.float64 else torch.float32


def pair_sums(X: Tensor, grid, distance: str, scale: Tensor, *, block_u: Optional[int] = None,
              block_d: Optional[int] = None) -> Tuple[Optional[Tensor], Optional[Tensor], Tensor]:
    r"""The forward walk: ``(mean, nsq, q)`` for the view ``X / scale``.

    Args:
        X: the ``(pre, H, W, post)`` view of :func:`torchtopo.functional.unit_view` (any strides;
            weights ``(1, H, W, D)``, dense activations ``(B, H, W, 1)``, conv activations
            ``(B, H, W, h·w)``); float16, bfloat16, float32 or float64, D ≥ 1.
        grid: the :class:`torchtopo.Grid` (``H × W`` units); tori whose stencil offsets alias
            (:attr:`torchtopo.Grid.aliased`) are the caller's to handle.
        distance: ``"euclidean"``, ``"sqeuclidean"``, ``"cosine"`` or ``"correlation"``.
        scale: a 0-d tensor c on X's device (a power of two); every load is multiplied by 1/c.
        block_u, block_d: tile sizes (units × vector elements); defaults depend on the layout.

    Returns:
        ``mean`` (H, W) each unit's mean (correlation; else None), ``nsq`` (H, W) each unit's
        ‖x̃‖² (angular distances; else None), ``q`` (offsets, H, W) the pair sums at each pair's
        first unit (0 where the pair does not exist); fp32 (fp64 for fp64 X).
    """
    _check(X, grid, distance)
    P, H, W, Q = X.shape
    N, D = H * W, P * Q
    metric = METRIC_CODES[distance]
    f64 = X.dtype == torch.float64
    acc = _acc(X)
    bu, bd = _blocks(X, block_u, block_d)
    layout = _layout(P, Q)
    dev = X.device
    inv = (1.0 / scale.to(device=dev, dtype=acc)).reshape(1).contiguous()
    mean = torch.zeros(N, dtype=acc, device=dev)
    s0, s1, s2, s3 = X.stride()
    if metric == 3:
        _unit_mean_kernel[(triton.cdiv(N, bu),)](
            X, inv, mean, N, W, Q, D, s0, s1, s2, s3, ACC_F64=f64, LAYOUT=layout, BLOCK_U=bu, BLOCK_D=bd,
        )
    n_off = len(grid.offsets)
    q = torch.zeros(n_off, N, dtype=acc, device=dev)
    nsq = torch.zeros(N, dtype=acc, device=dev)
    _pair_fwd_kernel[(triton.cdiv(N, bu),)](
        X, inv, mean, _offsets_tensor(grid, dev), q, nsq,
        N, H, W, Q, D, s0, s1, s2, s3, n_off,
        METRIC=metric, WRAP=bool(grid.wrap), ACC_F64=f64, LAYOUT=layout,
        OFF_PAD=triton.next_power_of_2(max(n_off, 1)), BLOCK_U=bu, BLOCK_D=bd,
    )
    return (mean.view(H, W) if metric == 3 else None, nsq.view(H, W) if metric >= 2 else None,
            q.view(n_off, H, W))


def pair_grad(X: Tensor, grid, distance: str, mean: Optional[Tensor], alpha: Tensor, beta: Tensor,
              scale: Tensor, *, block_u: Optional[int] = None, block_d: Optional[int] = None) -> Tensor:
    r"""The backward walk: ``g_u = α_u x̃_u + Σ_o β[o, u] x̃_{u+o} + Σ_o β[o, u−o] x̃_{u−o}`` with
    x̃ the loads of ``X / scale`` (centred by ``mean`` for correlation), as a contiguous tensor
    of X's shape and dtype.  ``alpha`` (H, W), ``beta`` (offsets, H, W), zero where a pair does
    not exist; ``mean`` as returned by :func:`pair_sums`.
    """
    _check(X, grid, distance)
    P, H, W, Q = X.shape
    N, D = H * W, P * Q
    acc = _acc(X)
    dev = X.device
    bu, bd = _blocks(X, block_u, block_d)
    inv = (1.0 / scale.to(device=dev, dtype=acc)).reshape(1).contiguous()
    mean = torch.zeros(N, dtype=acc, device=dev) if mean is None else mean.to(acc).reshape(N).contiguous()
    alpha = alpha.to(acc).reshape(N).contiguous()
    beta = beta.to(acc).reshape(-1, N).contiguous()
    out = torch.empty(X.shape, dtype=X.dtype, device=dev)  # contiguous
    s0, s1, s2, s3 = X.stride()
    o0, o1, o2, o3 = out.stride()
    _pair_bwd_kernel[(triton.cdiv(N, bu), triton.cdiv(D, bd))](
        X, inv, mean, _offsets_tensor(grid, dev), alpha, beta, out,
        N, H, W, Q, D, s0, s1, s2, s3, o0, o1, o2, o3, len(grid.offsets),
        METRIC=METRIC_CODES[distance], WRAP=bool(grid.wrap), ACC_F64=X.dtype == torch.float64,
        LAYOUT=_layout(P, Q), BLOCK_U=bu, BLOCK_D=bd,
    )
    return out
