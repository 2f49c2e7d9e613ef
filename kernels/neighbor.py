r"""Fused Triton kernels for the neighbour-distance penalties (WS and AS).

The input is the 4-D view ``X[pre, row, col, post]`` of :mod:`torchtopo.functional` (any strides:
never copied or transposed); unit ``u = row·W + col`` owns the vector ``X[:, row, col, :]`` of
length ``D = pre·post``.  For each unit u and each offset o of the grid's half stencil
(:attr:`torchtopo.Grid.offsets`) the forward kernel walks the two vectors once, in blocks of the
vector dimension, and accumulates in fp32 (fp64 for fp64 inputs)

* ``q = Σ (x − y)²`` for ``"euclidean"`` / ``"sqeuclidean"`` (no cancellation),
* ``q = Σ x̃·ỹ`` for ``"cosine"`` (x̃ = x) and ``"correlation"`` (x̃ = x − mean(x)),

then the distance of the pair

.. math::

    d_{sq} = q,\qquad d_{eu} = \sqrt{q},\qquad
    d_{cos} = 1 - \frac{q}{\lVert\tilde x\rVert\,\lVert\tilde y\rVert + \varepsilon},
    \quad \varepsilon = \texttt{eps}\ (10^{-8}\text{ in torchtopo}),

and, for the backward pass, the per-pair coefficients α₁, α₂, β with

.. math::

    \frac{\partial d}{\partial \tilde x} = \alpha_1 \tilde x + \beta \tilde y,\qquad
    \frac{\partial d}{\partial \tilde y} = \alpha_2 \tilde y + \beta \tilde x .

(sqeuclidean: α = 2, β = −2; euclidean: α = 1/√q, β = −1/√q, 0 at q = 0; cosine/correlation:
β = −1/den, α₁ = q‖ỹ‖/(den²‖x̃‖), α₂ = q‖x̃‖/(den²‖ỹ‖), den = ‖x̃‖‖ỹ‖ + ε.)  The norms are
accumulated from the same loads as q (each neighbour's too), so cosine reads X once forward;
correlation first takes each unit's mean in a small kernel (one more pass, so the centring is
exact).  The backward
kernel walks the same pairs, now in both directions of the stencil, and writes each gradient
tile once (no atomics):

.. math::

    g_u = s\Bigl(\bigl(\textstyle\sum_{o}\alpha_1[o, u] + \sum_o \alpha_2[o, u - o]\bigr)\tilde x_u
          + \sum_o \beta[o, u]\,\tilde x_{u+o} + \sum_o \beta[o, u - o]\,\tilde x_{u-o}\Bigr),

with s the incoming gradient divided by the number of pairs.  For ``"correlation"`` the centring
Jacobian ``I − 11ᵀ/D`` is the identity on these zero-mean terms, so it is not applied.  Nothing of
size P×D (pairs × vector) or N×N is ever formed: the only extra memory is O(offsets × N).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Optional

import torch
from torch import Tensor

import triton
import triton.language as tl

__all__ = ["neighbor_distance_mean", "METRIC_CODES"]

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
def _sqrt(x, ACC_F64: tl.constexpr):
    """IEEE square root (round to nearest), not the fast approximation."""
    if ACC_F64:
        y = tl.sqrt(x)
    else:
        y = tl.sqrt_rn(x)
    return y


@triton.jit
def _unit_mean_kernel(
    X, MEAN, N, W, Q, D, s0, s1, s2, s3,
    ACC_F64: tl.constexpr, LAYOUT: tl.constexpr, BLOCK_U: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """Each unit's mean over its vector (correlation only: one pass over X before the pairs)."""
    acc_t = tl.float64 if ACC_F64 else tl.float32
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
        x = tl.load(X + base[:, None] + voff[None, :], mask=m, other=0.0).to(acc_t)
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
    X, MEAN, OFFS, DIST, A1, A2, B,
    N, H, W, Q, D, s0, s1, s2, s3, N_OFF, eps,
    METRIC: tl.constexpr, WRAP: tl.constexpr, ACC_F64: tl.constexpr, LAYOUT: tl.constexpr,
    OFF_PAD: tl.constexpr, BLOCK_U: tl.constexpr, BLOCK_D: tl.constexpr,
):
    acc_t = tl.float64 if ACC_F64 else tl.float32
    u = tl.program_id(0) * BLOCK_U + tl.arange(0, BLOCK_U)
    umask = u < N
    r = u // W
    c = u % W
    base_a = r.to(tl.int64) * s1 + c.to(tl.int64) * s2
    if METRIC == 3:
        mu_a = tl.load(MEAN + u, mask=umask, other=0.0)
    oidx = tl.arange(0, OFF_PAD)
    acc = tl.zeros((OFF_PAD, BLOCK_U), dtype=acc_t)
    # angular distances: the norms come from the same loads (own: ssa; each neighbour's: ssb)
    ssa = tl.zeros((BLOCK_U,), dtype=acc_t)
    ssb = tl.zeros((OFF_PAD, BLOCK_U), dtype=acc_t)
    for d0 in range(0, D, BLOCK_D):
        d = d0 + tl.arange(0, BLOCK_D)
        dmask = d < D
        voff = _vec_offsets(d, Q, s0, s3, LAYOUT)
        ma = umask[:, None] & dmask[None, :]
        xa = tl.load(X + base_a[:, None] + voff[None, :], mask=ma, other=0.0).to(acc_t)
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
            xb = tl.load(X + base_b[:, None] + voff[None, :], mask=mb, other=0.0).to(acc_t)
            if METRIC == 3:
                mu_b = tl.load(MEAN + r2 * W + c2, mask=valid, other=0.0)
                xb = tl.where(mb, xb - mu_b[:, None], 0.0)
            if METRIC <= 1:
                t = tl.where(mb, xa - xb, 0.0)
                part = tl.sum(t * t, axis=1)
            else:
                part = tl.sum(xa * xb, axis=1)
                partb = tl.sum(xb * xb, axis=1)
                ssb = tl.where(oidx[:, None] == o, ssb + partb[None, :], ssb)
            acc = tl.where(oidx[:, None] == o, acc + part[None, :], acc)
    # per-pair distance and backward coefficients, for the whole (offset, unit) tile
    omask = oidx < N_OFF
    dr2 = tl.load(OFFS + 2 * oidx, mask=omask, other=0)
    dc2 = tl.load(OFFS + 2 * oidx + 1, mask=omask, other=0)
    rr = r[None, :] + dr2[:, None]
    cc = c[None, :] + dc2[:, None]
    if WRAP:
        rr = rr % H
        cc = (cc + W) % W
        valid2 = umask[None, :] & omask[:, None]
    else:
        valid2 = umask[None, :] & omask[:, None] & (rr < H) & (cc >= 0) & (cc < W)
    zero = tl.zeros((OFF_PAD, BLOCK_U), dtype=acc_t)
    if METRIC == 0:
        dist = acc
        a1 = zero + 2.0
        bb = zero - 2.0
        a2 = a1
    elif METRIC == 1:
        pos = (acc > 0) | (acc != acc)  # NaN stays NaN (as _safe_sqrt in the torch path)
        root = _sqrt(tl.where(pos, acc, 1.0), ACC_F64)
        dist = tl.where(pos, root, 0.0)
        a1 = tl.where(pos, 1.0 / root, 0.0)
        bb = -a1
        a2 = a1
    else:
        na = _sqrt(ssa, ACC_F64)
        nb = _sqrt(ssb, ACC_F64)  # 0 where the neighbour does not exist (masked loads)
        den = na[None, :] * nb + eps
        dist = 1.0 - acc / den
        bb = -1.0 / den
        k = acc / (den * den)
        a1 = tl.where(na[None, :] > 0, k * nb / tl.where(na[None, :] > 0, na[None, :], 1.0), 0.0)
        a2 = tl.where(nb > 0, k * na[None, :] / tl.where(nb > 0, nb, 1.0), 0.0)
    out = oidx[:, None] * N + u[None, :]
    smask = omask[:, None] & umask[None, :]
    tl.store(DIST + out, tl.where(valid2, dist, 0.0), mask=smask)
    tl.store(A1 + out, tl.where(valid2, a1, 0.0), mask=smask)
    tl.store(A2 + out, tl.where(valid2, a2, 0.0), mask=smask)
    tl.store(B + out, tl.where(valid2, bb, 0.0), mask=smask)


@triton.jit
def _pair_bwd_kernel(
    X, MEAN, OFFS, A1, A2, B, SCALE, OUT,
    N, H, W, Q, D, s0, s1, s2, s3, o0, o1, o2, o3, N_OFF,
    METRIC: tl.constexpr, WRAP: tl.constexpr, ACC_F64: tl.constexpr, LAYOUT: tl.constexpr,
    BLOCK_U: tl.constexpr, BLOCK_D: tl.constexpr,
):
    acc_t = tl.float64 if ACC_F64 else tl.float32
    u = tl.program_id(0) * BLOCK_U + tl.arange(0, BLOCK_U)
    umask = u < N
    r = u // W
    c = u % W
    d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    dmask = d < D
    voff = _vec_offsets(d, Q, s0, s3, LAYOUT)
    ma = umask[:, None] & dmask[None, :]
    xa = tl.load(X + (r.to(tl.int64) * s1 + c.to(tl.int64) * s2)[:, None] + voff[None, :],
                 mask=ma, other=0.0).to(acc_t)
    if METRIC == 3:
        mu_a = tl.load(MEAN + u, mask=umask, other=0.0)
        xa = tl.where(ma, xa - mu_a[:, None], 0.0)
    alpha = tl.zeros((BLOCK_U,), dtype=acc_t)
    g = tl.zeros((BLOCK_U, BLOCK_D), dtype=acc_t)
    for o in range(N_OFF):
        dr = tl.load(OFFS + 2 * o)
        dc = tl.load(OFFS + 2 * o + 1)
        for side in tl.static_range(2):
            if side == 0:  # u is the first unit of the pair (u, u + o)
                r2, c2, valid = _neighbor(r, c, dr, dc, umask, H, W, WRAP)
                cidx = o * N + u
                alpha += tl.load(A1 + cidx, mask=valid, other=0.0).to(acc_t)
            else:  # u is the second unit of the pair (u - o, u)
                r2, c2, valid = _neighbor(r, c, -dr, -dc, umask, H, W, WRAP)
                cidx = o * N + r2 * W + c2
                alpha += tl.load(A2 + cidx, mask=valid, other=0.0).to(acc_t)
            beta = tl.load(B + cidx, mask=valid, other=0.0).to(acc_t)
            mb = valid[:, None] & dmask[None, :]
            xb = tl.load(X + (r2.to(tl.int64) * s1 + c2.to(tl.int64) * s2)[:, None] + voff[None, :],
                         mask=mb, other=0.0).to(acc_t)
            if METRIC == 3:
                mu_b = tl.load(MEAN + r2 * W + c2, mask=valid, other=0.0)
                xb = tl.where(mb, xb - mu_b[:, None], 0.0)
            g += beta[:, None] * xb
    scale = tl.load(SCALE).to(acc_t)
    g = (g + alpha[:, None] * xa) * scale
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


def _pair_terms(X: Tensor, grid, distance: str, eps: float, block_u: Optional[int], block_d: Optional[int]):
    """The forward kernels: per-(offset, unit) distances and backward coefficients
    ``(dist, a1, a2, beta, mean)``, each ``(n_offsets, N)`` (``mean``: ``(N,)``) in the
    accumulation dtype, zero where the pair does not exist."""
    P, H, W, Q = X.shape
    N, D = H * W, P * Q
    metric = METRIC_CODES[distance]
    f64 = X.dtype == torch.float64
    acc_dtype = torch.float64 if f64 else torch.float32
    bu, bd = _blocks(X, block_u, block_d)
    layout = _layout(P, Q)
    dev = X.device
    mean = torch.zeros(N, dtype=acc_dtype, device=dev)
    s0, s1, s2, s3 = X.stride()
    if metric == 3:
        _unit_mean_kernel[(triton.cdiv(N, bu),)](
            X, mean, N, W, Q, D, s0, s1, s2, s3, ACC_F64=f64, LAYOUT=layout, BLOCK_U=bu, BLOCK_D=bd,
        )
    offs = _offsets_tensor(grid, dev)
    n_off = len(grid.offsets)
    dist = torch.empty(n_off, N, dtype=acc_dtype, device=dev)
    a1, a2, beta = torch.empty_like(dist), torch.empty_like(dist), torch.empty_like(dist)
    _pair_fwd_kernel[(triton.cdiv(N, bu),)](
        X, mean, offs, dist, a1, a2, beta,
        N, H, W, Q, D, s0, s1, s2, s3, n_off, eps,
        METRIC=metric, WRAP=bool(grid.wrap), ACC_F64=f64, LAYOUT=layout,
        OFF_PAD=triton.next_power_of_2(max(n_off, 1)), BLOCK_U=bu, BLOCK_D=bd,
    )
    return dist, a1, a2, beta, mean


class _NeighborDistanceMean(torch.autograd.Function):
    @staticmethod
    def forward(ctx, X: Tensor, grid, distance: str, eps: float, fallback, block_u, block_d) -> Tensor:
        dist, a1, a2, beta, mean = _pair_terms(X, grid, distance, eps, block_u, block_d)
        n_pairs = grid.n_pairs
        ctx.save_for_backward(X, mean, a1, a2, beta)
        ctx.grid, ctx.distance, ctx.n_pairs, ctx.fallback = grid, distance, n_pairs, fallback
        ctx.blocks = (block_u, block_d)
        return dist.sum() / n_pairs

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        X, mean, a1, a2, beta = ctx.saved_tensors
        grid = ctx.grid
        if torch.is_grad_enabled():  # create_graph=True: a differentiable gradient (plain ops)
            with torch.enable_grad():
                total = ctx.fallback(X, grid, ctx.distance)
                (g,) = torch.autograd.grad(total, X, (grad_out / ctx.n_pairs).to(total.dtype), create_graph=True)
            return g, None, None, None, None, None, None
        P, H, W, Q = X.shape
        N, D = H * W, P * Q
        bu, bd = _blocks(X, *ctx.blocks)
        f64 = X.dtype == torch.float64
        scale = (grad_out.to(a1.dtype) / ctx.n_pairs).reshape(1).contiguous()
        out = torch.empty(X.shape, dtype=X.dtype, device=X.device)  # contiguous
        s0, s1, s2, s3 = X.stride()
        o0, o1, o2, o3 = out.stride()
        _pair_bwd_kernel[(triton.cdiv(N, bu), triton.cdiv(D, bd))](
            X, mean, _offsets_tensor(grid, X.device), a1, a2, beta, scale, out,
            N, H, W, Q, D, s0, s1, s2, s3, o0, o1, o2, o3, len(grid.offsets),
            METRIC=METRIC_CODES[ctx.distance], WRAP=bool(grid.wrap), ACC_F64=f64,
            LAYOUT=_layout(P, Q), BLOCK_U=bu, BLOCK_D=bd,
        )
        return out, None, None, None, None, None, None


def neighbor_distance_mean(X: Tensor, grid, distance: str = "euclidean", *, eps: float,
                           fallback: Callable[[Tensor, Any, str], Tensor],
                           block_u: Optional[int] = None, block_d: Optional[int] = None) -> Tensor:
    r"""Mean over the grid's neighbour pairs of d(v_i, v_j), computed by the fused kernels.

    .. math:: \frac{1}{|P|}\sum_{(i, j)\in P} d(v_i, v_j),\qquad v_u = X[:, r_u, c_u, :]

    Args:
        X: the ``(pre, H, W, post)`` view of :func:`torchtopo.functional.unit_view` (any
            strides; weights ``(1, H, W, D)``, dense activations ``(B, H, W, 1)``, conv
            activations ``(B, H, W, h·w)``); float16, bfloat16, float32 or float64.
        grid: the :class:`torchtopo.Grid` (``H × W`` units).
        distance: ``"euclidean"``, ``"sqeuclidean"``, ``"cosine"`` or ``"correlation"``.
        eps: the constant ε of the angular distances' denominators (the caller's; torchtopo
            passes its ``EPS``, 1e-8).
        fallback: ``fallback(X, grid, distance)`` -> Σ over the neighbour pairs of d(v_i, v_j)
            in plain differentiable PyTorch ops (torchtopo passes its explicit pair-list sum).
            Used where the kernels do not apply (tori whose stencil offsets alias, empty
            vectors) and, under ``create_graph=True``, to give a gradient that can itself be
            differentiated (gradient penalties).
        block_u, block_d: tile sizes (units × vector elements); defaults depend on the layout.

    Returns:
        A differentiable scalar: float32 for half-precision ``X`` (fp32 accumulation), else of
        ``X``'s dtype.  A grid without pairs gives 0.  Tiny tori whose stencil offsets alias
        (:attr:`torchtopo.Grid.aliased`) and empty vectors use ``fallback``.

    Study: the WS / AS losses of Truong & Hasson (Truong & Hasson, arXiv:2508.00043).
    """
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
    n_pairs = grid.n_pairs
    if n_pairs == 0:
        out_dtype = torch.float32 if X.dtype in (torch.float16, torch.bfloat16) else X.dtype
        return X.sum().to(out_dtype) * 0.0
    if grid.aliased or X.shape[0] * X.shape[3] == 0:  # tiny torus, or empty vectors
        return fallback(X, grid, distance) / n_pairs
    _check_runnable(X)
    return _NeighborDistanceMean.apply(X, grid, distance, eps, fallback, block_u, block_d)
