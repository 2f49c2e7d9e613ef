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
one elementwise operator per offset and piece.

**Direct windows.**  On the CPU, for cosine on float32/float64 weights whose call scale is 1
(the usual case), the tile copy does nothing but pad the grid's ends, so every window is a
strided view of the weight itself (no copy), except for the few units (at most K − 1 at each end
for a window of K rows) whose window runs past an end, which read a zero-padded copy of those
rows: the forward is then one read of the weight, and the backward's products write into the
gradient directly.  The
scale is decided after the forward's products, from the units' squared norms (no separate
pass for max |x|): with m the largest ‖x_u‖², D·2⁻³² ≤ m < 2³⁴ implies max |x| ∈ [2⁻¹⁶, 2¹⁷),
i.e. c = 1, and the raw products are the scaled ones; otherwise c is computed as everywhere and,
when it is not 1, the sums are redone through the tiles.  The norms are read on the host, which
on the CPU costs nothing (the CUDA path never takes this branch).  Measured (one core, forward +
backward, cosine): see ``benchmarks/README.md``.
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
#: Whether the CPU may take the direct windows (see the module docstring); tests switch it off
#: to compare the two.
_DIRECT = True
# m = max ‖x_u‖² in [D·2⁻³², 2³⁴) ⟹ max |x| in [2⁻¹⁶, 2¹⁷) ⟹ call scale c = 1.
_NSQ_LO, _NSQ_HI = 2.0 ** -32, 2.0 ** 34


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


def _window(M: Tensor, first: int, start: int, U: int, K: int) -> Tensor:
    """``(U, K, D)``: for units ``first … first + U − 1`` of the row-major matrix M, the K rows
    from u + start on, as a strided view of M (no copy; every row must exist)."""
    su, sd = M.stride()
    return M.as_strided((U, K, M.shape[1]), (su, su, sd), M.storage_offset() + (first + start) * su)


def _direct_ranges(M: Tensor, start: int, K: int):
    """``(u0, u1, rows)`` covering the units u of M (N rows) with at least one of the K rows
    u + start … u + start + K − 1 inside M: ``rows`` (u1 − u0, K, D) are windows of M itself
    where all K rows exist, else of a zero-padded copy of the few rows involved (at most
    K − 1 units at each end)."""
    N, D = M.shape
    lo, hi = max(0, -start), min(N, N - start - K + 1)  # units whose K rows all exist
    out = []
    if lo < hi:
        out.append((lo, hi, _window(M, lo, start, hi - lo, K)))
    for u0, u1 in ((max(0, -start - K + 1), min(lo, N)), (max(hi, 0, lo), min(N, N - start))):
        if u0 >= u1:
            continue
        r0, r1 = u0 + start, u1 - 1 + start + K  # rows [r0, r1) of the padded copy
        buf = M.new_zeros(r1 - r0, D)
        a, b = max(r0, 0), min(r1, N)
        buf[a - r0: b - r0].copy_(M[a:b])
        out.append((u0, u1, _window(buf, u0, -u0, u1 - u0, K)))
    return out


class BandWalker:
    """The two walks of :class:`~torchtopo.functional._neighbor.NeighborMean` as batched matrix
    products over windows of consecutive units (see the module docstring); for the angular
    distances on grids accepted by :func:`band_plan`, views with ``pre = 1`` or ``post = 1``.

    :meth:`scale` returns None where the direct windows apply: the scale is then decided by
    :meth:`sums` and left in :attr:`c`."""

    def __init__(self, plan) -> None:
        self.plan = plan
        self.c: Optional[Tensor] = None

    def _pad(self) -> int:
        return max(max(abs(s + lo), abs(s + hi)) for s, lo, hi, _ in self.plan)

    def _direct(self, X: Tensor, distance: str) -> bool:
        """Whether the direct windows apply (before the scale is known): CPU, cosine, float32 or
        float64 weights with contiguous rows, a stencil with dr = 0 offsets (its window gives
        every unit's norm and coefficient α), not while compiling."""
        if not _DIRECT or distance != "cosine" or X.device.type != "cpu" or X.shape[0] != 1:
            return False
        if X.dtype not in (torch.float32, torch.float64) or torch.compiler.is_compiling():
            return False
        M = _matrix(X)
        return M.stride(1) == 1 and M.shape[1] > 0 and self.plan[0][0] == 0

    def scale(self, X: Tensor) -> Optional[Tensor]:
        return None if self._direct(X, "cosine") else call_scale(X)

    def sums(self, X: Tensor, grid: Grid, distance: str, c: Optional[Tensor]):
        with no_autocast(X.device):  # the products in the accumulation dtype, also under autocast
            if c is None and distance == "cosine":
                return self._sums_direct(X, grid, distance)
            if c is None:  # (scale() does not know the distance)
                c = call_scale(X)
            self.c = c
            return self._sums(X, grid, distance, c)

    def grad(self, X: Tensor, grid: Grid, distance: str, mean: Optional[Tensor], alpha: Tensor, beta: Tensor,
             c: Tensor, state) -> Tensor:
        with no_autocast(X.device):
            return self._grad(X, grid, distance, mean, alpha, beta, c, direct=state == "direct")

    def _assemble(self, grid: Grid, sums: List[Tensor], N: int, acc: torch.dtype, device):
        q = torch.zeros((len(grid.offsets), N), dtype=acc, device=device)
        nsq = None
        for (s, lo, hi, idx), out in zip(self.plan, sums):
            if s == 0:
                nsq = out[:, 0].clone()
            q[idx] = out[:, [grid.offsets[o][1] - lo for o in idx]].t()
        return nsq, q

    def _sums_direct(self, X: Tensor, grid: Grid, distance: str):
        """The forward's products on the raw weight (windows of the weight itself; the few units
        whose window runs past an end: a zero-padded copy of those rows), then the scale from
        the norms."""
        M = _matrix(X)
        N, D = M.shape
        sums = [M.new_zeros((N, hi - lo + 1)) for _, lo, hi, _ in self.plan]
        for (s, lo, hi, _), out in zip(self.plan, sums):
            for u0, u1, rows in _direct_ranges(M, s + lo, hi - lo + 1):
                torch.bmm(_window(M, u0, 0, u1 - u0, 1), rows.transpose(1, 2), out=out[u0:u1].view(u1 - u0, 1, -1))
        nsq, q = self._assemble(grid, sums, N, M.dtype, M.device)
        m = float(nsq.max())  # the CPU: a read, not a synchronisation
        if D * _NSQ_LO <= m < _NSQ_HI:
            c = M.new_ones(())
        else:  # out of range, zero or not finite: the scale as everywhere
            c = call_scale(X)
            if float(c) != 1.0:
                self.c = c
                return self._sums(X, grid, distance, c)
        self.c = c
        return None, nsq, q, "direct"

    def _sums(self, X: Tensor, grid: Grid, distance: str, c: Tensor):
        from ._neighbor_torch import _unit_means  # the tiled walks' means (one mechanism)

        acc = acc_dtype(X.dtype)
        inv = inv_scale(c)
        M = _matrix(X)
        N, D = M.shape
        mean = _unit_means(X, inv, acc) if distance == "correlation" else None
        neg = None if mean is None else mean.reshape(N).neg()
        pad = self._pad()
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
        nsq, q = self._assemble(grid, sums, N, acc, X.device)
        return mean, nsq, q, None

    def _windows(self, grid: Grid, alpha: Tensor, beta: Tensor, N: int):
        """Coefficient windows ``(start, (N, 1, K))``: forward partners β_o[u] at u + o, backward
        ones β_o[u − o] at u − o; for dr = 0 one window u − hi … u + hi with α at u."""
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
        return [(start, C[:, None, :]) for start, C in windows]

    @staticmethod
    def _combine(g: Optional[Tensor], windows, u0: int, u1: int, rows) -> Tensor:
        """g[u] = Σ over the windows of coefficients[u] @ rows(start, U, K)[u], for units u0 … u1 − 1
        (into ``g`` when given: the first product overwrites it)."""
        U = u1 - u0
        for k, (start, coef) in enumerate(windows):
            w = rows(start, U, coef.shape[2])
            if k == 0:
                g = torch.bmm(coef[u0:u1], w, out=g)
            elif coef.shape[2] == 1:  # one row: a broadcast multiply-add (bmm's K = 1 is slow)
                g.addcmul_(coef[u0:u1], w)
            else:
                g.baddbmm_(coef[u0:u1], w)
        return g

    def _grad(self, X: Tensor, grid: Grid, distance: str, mean: Optional[Tensor], alpha: Tensor,
              beta: Tensor, c: Tensor, direct: bool = False) -> Tensor:
        acc = alpha.dtype
        inv = inv_scale(c)
        M = _matrix(X)
        N, D = M.shape
        alpha, beta = alpha.reshape(N), beta.reshape(len(grid.offsets), N)
        neg = None if mean is None else mean.reshape(N).neg()
        pad = self._pad()
        windows = self._windows(grid, alpha, beta, N)
        out = torch.empty(X.shape, dtype=X.dtype, device=X.device)
        G = _matrix(out)
        tile = _Tile(M, pad, acc)
        if direct:  # c = 1, float32/64 rows: windows of the weight itself, products into G
            for k, (start, coef) in enumerate(windows):  # the first (dr = 0) covers every unit
                for u0, u1, rows in _direct_ranges(M, start, coef.shape[2]):
                    g = G[u0:u1].view(u1 - u0, 1, D)
                    if k == 0:
                        torch.bmm(coef[u0:u1], rows, out=g)
                    else:
                        g.baddbmm_(coef[u0:u1], rows)
            return out
        for u0, u1, d0, d1 in _tiles(N, D, pad):
            tile.load(u0, u1, d0, d1, inv, neg)
            U = u1 - u0
            dst = G[u0:u1, d0:d1]
            direct_out = X.dtype == acc and dst.is_contiguous()  # the products go straight to the gradient
            g = self._combine(dst.view(U, 1, d1 - d0) if direct_out else None, windows, u0, u1,
                              lambda start, n, K: tile.window(start, n, K))
            if not direct_out:
                dst.copy_(g.view(U, -1))
        return out
