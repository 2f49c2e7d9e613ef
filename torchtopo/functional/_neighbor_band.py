r"""Band walks of the angular neighbour distances as batched matrix products (private).

A peer of the tiled walks of :mod:`._neighbor_torch` for
:class:`~torchtopo.functional._neighbor.NeighborMean` (the WS and AS losses of Truong & Hasson,
arXiv:2508.00043), for the cosine and correlation distances on grids without wrap-around, with
units that are the rows of a matrix: weights ``(N, D)`` (view ``pre = 1``) or dense activations
``(B, N)`` (view ``post = 1``).

Without wrap-around a stencil offset (dr, dc) is the flat shift dr·W + dc of the row-major
units (pairs that cross a row's end are computed and dropped by the validity masks, as in the
tiled walks), and for each dr the offsets' dc form one interval, so the partners of unit u for
one dr are *consecutive* rows of the unit matrix: a window.  With the matrix padded by zero rows,
the windows of all units are one strided view (no copy: unit u's window starts one row after
unit u − 1's), and

* the forward's pair sums for one dr are one batched product ``bmm(z_u (1 × D), window_uᵀ
  (D × K))`` over all units (the dr = 0 window starts at u itself, so it gives ‖x̃_u‖² too);
* the backward's ∂/∂x̃_u = α_u x̃_u + Σ_o β_o[u] x̃_{u+o} + Σ_o β_o[u−o] x̃_{u−o} is one product
  ``coefficients (1 × K) @ window (K × D)`` per window: 2r + 1 of them for radius r.

Each product reads its window from a cache-sized tile (a band of units with the rows its windows
reach, × a chunk of the vector), copied once from memory with the call's scale and the units'
means applied, so the passes over memory are those of the tiled walks (forward: one read;
backward: one read and one write), while the arithmetic runs in a few BLAS calls instead of
one elementwise operator per offset and piece.  Measured (one core, forward + backward,
cosine): see ``benchmarks/README.md``.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ..grid import Grid
from ._neighbor import acc_dtype, call_scale, inv_scale, no_autocast

__all__ = ["BandWalker", "band_plan"]

# Tile budget in elements (a tile, its windows' products and the coefficient slices stay in a
# core's L2 cache); shortest vector chunk worth a tile of its own.
_BAND_ELEMENTS = 1 << 20
_MIN_CHUNK = 32


_PLANS: dict = {}


def band_plan(grid: Grid) -> Optional[List[Tuple[int, int, int, List[int]]]]:
    """The windows of ``grid``'s stencil, or None when the band walks do not apply (wrap-around,
    a dc set with a gap): per dr, ``(dr, lo, hi, offsets)`` with the window's flat shifts
    dr·W + lo … dr·W + hi and the indices of the stencil offsets it holds, in order of dc
    (for dr = 0 the window starts at dc = 0: the unit itself)."""
    if grid in _PLANS:
        return _PLANS[grid]
    plan = _PLANS[grid] = _band_plan(grid)
    return plan


def _band_plan(grid: Grid):
    if grid.wrap or not grid.offsets:
        return None
    W = grid.width
    plan = []
    for dr in sorted({dr for dr, _ in grid.offsets}):
        idx = [o for o, (r, _) in enumerate(grid.offsets) if r == dr]
        dcs = [grid.offsets[o][1] for o in idx]
        lo, hi = (0 if dr == 0 else min(dcs)), max(dcs)
        if sorted(dcs) != list(range(lo + (dr == 0), hi + 1)):
            return None
        plan.append((dr * W, lo, hi, sorted(idx, key=lambda o: grid.offsets[o][1])))
    return plan


def _matrix(X: Tensor) -> Tensor:
    """The ``(N, D)`` unit matrix of a ``(pre, H, W, post)`` view with pre = 1 or post = 1 (for
    post = 1 a transposed view: unit stride 1)."""
    P, H, W, Q = X.shape
    return X.reshape(H * W, Q) if P == 1 else X.reshape(P, H * W).t()


def _tiles(N: int, D: int, pad: int):
    """``(u0, u1, d0, d1)``: bands of units (each loaded with ``pad`` rows either side) × the
    whole vector, a band of at most about ``_BAND_ELEMENTS`` elements (the vector is cut in
    chunks only where one unit and its halo would not fit).  The windows of consecutive units
    overlap but for one row, so a batched product reads each row from memory once whatever the
    band's size; bands bound the copy's memory, and long ones keep the products' batches large
    (a batched product pays a fixed cost per matrix)."""
    dc = min(D, max(_MIN_CHUNK, _BAND_ELEMENTS // (4 * pad + 1)))
    uc = max(1, _BAND_ELEMENTS // dc - 2 * pad)
    return [(u, min(u + uc, N), d, min(d + dc, D)) for u in range(0, N, uc) for d in range(0, D, dc)]


def _shift_into(dst: Tensor, v: Tensor, sh: int) -> None:
    """dst[u] = v[u − sh] where 0 ≤ u − sh < N (dst is zero elsewhere already)."""
    N = v.shape[0]
    if sh >= 0:
        if sh < N:
            dst[sh:].copy_(v[: N - sh])
    elif -sh < N:
        dst[: N + sh].copy_(v[-sh:])


class _Tile:
    """A zero-padded, scaled (and centred) copy of units ``u0 − pad … u1 + pad`` × vector
    chunk ``d0 … d1`` of the unit matrix M, in a reused buffer laid out like M (unit-major for
    weights, vector-major for dense activations), with strided window views."""

    def __init__(self, M: Tensor, pad: int, acc: torch.dtype):
        self.M, self.pad, self.acc = M, pad, acc
        self.unit_major = M.stride(1) == 1 or M.shape[1] == 1
        self.buf = None

    def load(self, u0: int, u1: int, d0: int, d1: int, inv: Tensor, neg_mean: Optional[Tensor]) -> Tensor:
        N, pad = self.M.shape[0], self.pad
        rows, dc = u1 - u0 + 2 * pad, d1 - d0
        n = rows * dc
        if self.buf is None or self.buf.numel() < n:
            self.buf = torch.empty(n, dtype=self.acc, device=self.M.device)
        t = self.buf[:n].view(rows, dc) if self.unit_major else self.buf[:n].view(dc, rows).t()
        lo, hi = max(u0 - pad, 0), min(u1 + pad, N)
        if lo > u0 - pad:
            t[: lo - (u0 - pad)].zero_()
        if hi < u1 + pad:
            t[hi - (u0 - pad):].zero_()
        src, dst = self.M[lo:hi, d0:d1], t[lo - (u0 - pad): hi - (u0 - pad)]
        if neg_mean is None:  # x·(1/c) (exact), converted to the accumulation dtype: one pass
            torch.mul(src, inv.reshape(1), out=dst)
        else:  # x·(1/c) − mean, one rounding
            torch.addcmul(neg_mean[lo:hi, None], src, inv.reshape(1), out=dst)
        self.t = t
        return t

    def window(self, start: int, U: int, K: int) -> Tensor:
        """``(U, K, dc)``: for each of the band's U units u, the K rows from u + start on."""
        t = self.t
        su, sd = t.stride()
        return t.as_strided((U, K, t.shape[1]), (su, su, sd), t.storage_offset() + (self.pad + start) * su)


class BandWalker:
    """The two walks of :class:`~torchtopo.functional._neighbor.NeighborMean` as batched matrix
    products over windows of consecutive units (see the module docstring); for the angular
    distances on grids accepted by :func:`band_plan`, views with ``pre = 1`` or ``post = 1``."""

    scale = staticmethod(call_scale)

    def __init__(self, plan) -> None:
        self.plan = plan

    def _pad(self) -> int:
        return max(max(abs(s + lo), abs(s + hi)) for s, lo, hi, _ in self.plan)

    def sums(self, X: Tensor, grid: Grid, distance: str, c: Tensor):
        with no_autocast(X.device):  # the products in the accumulation dtype, also under autocast
            return self._sums(X, grid, distance, c)

    def grad(self, X: Tensor, grid: Grid, distance: str, mean: Optional[Tensor], alpha: Tensor, beta: Tensor,
             c: Tensor, state) -> Tensor:
        with no_autocast(X.device):
            return self._grad(X, grid, distance, mean, alpha, beta, c)

    def _sums(self, X: Tensor, grid: Grid, distance: str, c: Tensor):
        from ._neighbor_torch import _unit_means  # the tiled walks' means (one mechanism)

        acc = acc_dtype(X.dtype)
        inv = inv_scale(c)
        M = _matrix(X)
        N, D = M.shape
        mean = _unit_means(X, inv, acc) if distance == "correlation" else None
        neg = None if mean is None else mean.reshape(N).neg()
        pad = self._pad()
        q = X.new_zeros((len(grid.offsets), N), dtype=acc)
        nsq = X.new_zeros(N, dtype=acc)
        sums = [X.new_zeros((N, hi - lo + 1), dtype=acc) for _, lo, hi, _ in self.plan]
        tile = _Tile(M, pad, acc)
        for u0, u1, d0, d1 in _tiles(N, D, pad):
            tile.load(u0, u1, d0, d1, inv, neg)
            U = u1 - u0
            centre = tile.window(u0 - u0, U, 1)  # (U, 1, dc): the units themselves
            for (s, lo, hi, _), out in zip(self.plan, sums):
                w = tile.window(s + lo, U, hi - lo + 1)
                if hi == lo:  # one row: a multiply and a sum (bmm's N = 1 is slow)
                    out[u0:u1].add_(torch.mul(centre, w).sum(2))
                else:
                    out[u0:u1].add_(torch.bmm(centre, w.transpose(1, 2)).view(U, -1))
        for (s, lo, hi, idx), out in zip(self.plan, sums):
            if s == 0:
                nsq.copy_(out[:, 0])
            q[idx] = out[:, [grid.offsets[o][1] - lo for o in idx]].t()
        return mean, nsq, q, None

    def _grad(self, X: Tensor, grid: Grid, distance: str, mean: Optional[Tensor], alpha: Tensor,
              beta: Tensor, c: Tensor) -> Tensor:
        acc = alpha.dtype
        inv = inv_scale(c)
        M = _matrix(X)
        N, D = M.shape
        alpha, beta = alpha.reshape(N), beta.reshape(len(grid.offsets), N)
        neg = None if mean is None else mean.reshape(N).neg()
        pad = self._pad()
        # coefficient windows (start, (N, 1, K)): forward partners β_o[u] at u + o, backward ones
        # β_o[u − o] at u − o; for dr = 0 one window u − hi … u + hi with α at u
        windows = []
        for s, lo, hi, idx in self.plan:
            if s == 0:
                C = beta.new_zeros(N, 2 * hi + 1)
                C[:, hi] = alpha
                for o in idx:
                    dc = grid.offsets[o][1]
                    C[:, hi + dc] = beta[o]
                    _shift_into(C[:, hi - dc], beta[o], dc)  # β_o[u − o]
                windows.append((-hi, C))
                continue
            fwd = beta.new_zeros(N, hi - lo + 1)
            bwd = beta.new_zeros(N, hi - lo + 1)
            for o in idx:
                dc = grid.offsets[o][1]
                fwd[:, dc - lo] = beta[o]
                _shift_into(bwd[:, hi - dc], beta[o], s + dc)  # β_o[u − o]
            windows += [(s + lo, fwd), (-(s + hi), bwd)]
        windows = [(start, C[:, None, :]) for start, C in windows]
        out = torch.empty(X.shape, dtype=X.dtype, device=X.device)
        G = _matrix(out)
        tile = _Tile(M, pad, acc)
        for u0, u1, d0, d1 in _tiles(N, D, pad):
            tile.load(u0, u1, d0, d1, inv, neg)
            U = u1 - u0
            dst = G[u0:u1, d0:d1]
            direct = X.dtype == acc and dst.is_contiguous()  # the products go straight to the gradient
            g = dst.view(U, 1, d1 - d0) if direct else None
            for k, (start, coef) in enumerate(windows):
                w = tile.window(start, U, coef.shape[2])
                if k == 0:
                    g = torch.bmm(coef[u0:u1], w, out=g)
                elif coef.shape[2] == 1:  # one row: a broadcast multiply-add (bmm's K = 1 is slow)
                    g.addcmul_(coef[u0:u1], w)
                else:
                    g.baddbmm_(coef[u0:u1], w)
            if not direct:
                dst.copy_(g.view(U, -1))
        return out
