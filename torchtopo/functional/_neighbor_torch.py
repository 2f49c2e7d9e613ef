"""The PyTorch backend of the neighbour-distance sums (private; the peer of ``kernels/neighbor.py``).

:class:`TorchWalker` gives :class:`~torchtopo.functional._neighbor.NeighborMean` its two walks
over the ``(pre, H, W, post)`` unit view of :func:`torchtopo.functional.unit_view`, the same
walks as the Triton kernels: per stencil offset, the pair sums accumulated on shifted views of
the grid in cache-sized tiles (:func:`_walk_sums`), and the gradient from the per-pair
coefficients in one more walk (:func:`_walk_grad`).  The distances are those of
:mod:`torchtopo.functional.topographic` (Truong & Hasson, arXiv:2508.00043).
"""
from __future__ import annotations

import math
import os
from typing import Optional

import torch
from torch import Tensor

from ..grid import Grid
from ._neighbor import acc_dtype, call_scale, inv_scale

__all__ = ["safe_sqrt", "TorchWalker", "small_input", "band_input"]


def safe_sqrt(s: Tensor) -> Tensor:
    """sqrt with value 0 and gradient 0 at 0 (instead of an infinite gradient)."""
    pos = ~(s <= 0)  # NaN stays NaN (never silently zeroed)
    return torch.where(pos, torch.sqrt(torch.where(pos, s, torch.ones_like(s))), torch.zeros_like(s))


# Tile budget of the PyTorch path's walks, in elements of the input.  A tile and the temporaries
# of one operation on it stay within a core's L2 cache, so of the several passes each walk makes
# over a tile only the first reads from memory; peak extra memory is a few tiles whatever the
# input's size (plus the gradient and O(offsets × N) coefficients).
_CHUNK_ELEMENTS = 1 << 18
# Shortest chunk of ``post`` (contiguous elements per unit) for which whole-grid tiles split
# along ``post`` are preferred to bands of grid rows with halos.
_MIN_RUN = 64


def _col_pairs(W: int, dc: int, wrap: bool):
    """Column slices ``(ca, cb)``: every column c in ``ca`` pairs with c + dc (mod W with
    ``wrap``) in ``cb``; one piece, or two where the offset wraps around."""
    if dc >= 0:
        out = [(slice(0, W - dc), slice(dc, W))] if dc < W else []
        if wrap and dc:
            out.append((slice(W - dc, W), slice(0, dc)))
    else:
        k = -dc
        out = [(slice(k, W), slice(0, W - k))] if k < W else []
        if wrap:
            out.append((slice(0, k), slice(W - k, W)))
    return out


def _pair_blocks(H: int, W: int, dr: int, dc: int, wrap: bool):
    """Rectangular pieces ``(ra, ca, rb, cb)`` of slices that pair every unit (r, c) in
    ``[ra, ca]`` with its neighbour (r + dr, c + dc) in ``[rb, cb]`` (torus-aware: up to 4
    pieces with ``wrap``).  Views only: no roll, no copy."""
    if wrap:
        rows = [(slice(0, H - dr), slice(dr, H))] + ([(slice(H - dr, H), slice(0, dr))] if dr else [])
    else:
        rows = [(slice(0, H - dr), slice(dr, H))] if dr < H else []
    return [(ra, ca, rb, cb) for ra, rb in rows for ca, cb in _col_pairs(W, dc, wrap)]


def _tiles(shape, halo: int):
    """Tiles ``(pre slice, post slice, r0, r1)`` of a ``(pre, H, W, post)`` view, each of at most
    about ``_CHUNK_ELEMENTS`` elements counting ``halo`` extra grid rows.  A grid that fits whole
    is split along ``pre`` (no halo needed; half-budget tiles); one whose units fit a half-budget
    tile with contiguous runs of at least ``_MIN_RUN`` elements of ``post`` is split along
    ``post`` (whole grid, no halo); a larger one into bands of grid rows, and only where a
    single band with its halo is still too large along ``post`` too."""
    P, H, W, Q = shape
    if P * H * W * Q == 0:
        return []
    budget = _CHUNK_ELEMENTS
    row = W * Q
    if H * row <= budget:
        # whole-grid tiles (no halo) take half the budget: with the tile-shaped product buffers
        # of the forward walk they stay closer to L2 (about 12 % faster for AS at 128² units
        # × batch 256 in an interleaved A/B), while bands need the full budget to amortise halos
        pc, qc, rc = max(1, min(P, (budget // 2) // (H * row))), Q, H
    elif (budget // 2) // (H * W) >= min(Q, _MIN_RUN):
        # the whole grid × chunks of post (weight views: few units, long rows): no halo, since
        # the pair sums over the vector add across chunks, and a handful of tiles where bands
        # of one row would need hundreds (e.g. 512 units × 4608: 18 tiles, not ~1000)
        pc, qc, rc = 1, (budget // 2) // (H * W), H
    else:
        pc, rc, qc = 1, budget // row - halo, Q
        if rc < 1:
            rc, qc = 1, max(1, budget // ((1 + halo) * W))
        rc = min(rc, H)
    return [
        (slice(p, min(p + pc, P)), slice(q, min(q + qc, Q)), r, min(r + rc, H))
        for p in range(0, P, pc)
        for q in range(0, Q, qc)
        for r in range(0, H, rc)
    ]


class _Scratch:
    """Flat buffers the walks reuse from tile to tile (tile copies, products, a half-precision
    gradient band), so the loops allocate nothing of a tile's size."""

    def __init__(self, device: torch.device, dtype: torch.dtype):
        self.device, self.dtype, self.bufs = device, dtype, {}

    def get(self, key: str, shape) -> Tensor:
        n = math.prod(shape)
        buf = self.bufs.get(key)
        if buf is None or buf.numel() < n:
            buf = self.bufs[key] = torch.empty(n, device=self.device, dtype=self.dtype)
        return buf[:n].view(shape)


def _tile(X: Tensor, ps: slice, qs: slice, lo: int, hi: int, wrap: bool, inv: Tensor,
          neg_mean: Optional[Tensor], scratch: _Scratch):
    """Grid rows ``lo .. hi-1`` of one tile (mod H with ``wrap``, clipped to the grid without),
    multiplied by the call's 1/c (the 0-d tensor ``inv``) and centred by ``−neg_mean``, in the
    accumulation dtype, with a size-1 ``post`` squeezed away (a trailing size-1 dim makes
    broadcasts slow).  Returns ``(x, base)``: x's row k is grid row base + k.  Always a copy
    into ``scratch``, made in one fused pass (scale, convert, centre); it is the tile's one read
    from memory, the offsets' passes then read the cache-sized copy."""
    H = X.shape[1]
    if not wrap:
        lo, hi = max(lo, 0), min(hi, H)
    if lo >= 0 and hi <= H:
        x = X[ps, lo:hi, :, qs]
        m = None if neg_mean is None else neg_mean[lo:hi]
    else:
        idx = torch.arange(lo, hi, device=X.device) % H
        x = X[ps, :, :, qs].index_select(1, idx)
        m = None if neg_mean is None else neg_mean.index_select(0, idx)
    if X.shape[3] == 1:  # (not a size-1 chunk of a longer post: deferred buffers keep their rank)
        x = x[..., 0]
    out = scratch.get("tile", x.shape)
    if m is not None:  # x/c − mean: x·(1/c) is exact (a power of two), so one rounding, as before
        return torch.addcmul(m if x.dim() == 3 else m[None, :, :, None], x, inv, out=out), lo
    return torch.mul(x, _factor(inv), out=out), lo


def _factor(inv: Tensor) -> Tensor:
    """The 0-d scale as a 1-element tensor: it then takes part in type promotion, so a half
    input is multiplied in the accumulation dtype (exact), not rounded to half first."""
    return inv.reshape(1)


def _unit_means(X: Tensor, inv: Tensor, acc: torch.dtype) -> Tensor:
    """Each unit's mean over its vector of X/c, ``(H, W)``: the loads scaled before any sum (no
    overflow for values near the dtype's largest), accumulated tile by tile as the forward
    walk's products are (:class:`_PairSums`)."""
    P, H, W, Q = X.shape
    s = X.new_zeros((H, W), dtype=acc)
    tiles = _tiles(X.shape, 0)
    sums = _PairSums(_Scratch(X.device, acc), defer=len(tiles) > 1 and tiles[0][2:] == (0, H))
    f = _factor(inv)
    for ps, qs, r0, r1 in tiles:
        x = X[ps, r0:r1, :, qs]
        sums.add(0, x[..., 0] if Q == 1 else x, f, s[r0:r1], 2)
    sums.flush()
    return s / max(P * Q, 1)


def _vector_sum(t: Tensor, unit_dims: int) -> Tensor:
    """Σ over the vector dims of a tile piece ``(pre, units..., [post])`` with ``unit_dims`` unit
    dimensions after ``pre`` (i.e. over ``pre`` and ``post``): the units' map."""
    return t.sum(dim=(0,) + tuple(range(1 + unit_dims, t.dim())))


class _PairSums:
    """Where the forward walk's products go: summed over the vector at once into their target
    map, or (``defer``) multiply-added into a tile-shaped buffer per piece and summed at
    :meth:`flush` (for tiles that repeat the same pieces along the vector)."""

    def __init__(self, scratch: _Scratch, defer: bool):
        self.scratch, self.defer, self.bufs = scratch, defer, {}

    def add(self, key, a: Tensor, b: Tensor, target: Tensor, unit_dims: int) -> None:
        if not self.defer:  # the product in a scratch buffer, reduced at once
            target.add_(_vector_sum(torch.mul(a, b, out=self.scratch.get("prod", a.shape)), unit_dims))
            return
        if key not in self.bufs:  # the first tile is the largest: its product fills the buffer
            self.bufs[key] = (torch.mul(a, b), target, unit_dims)
        else:
            buf = self.bufs[key][0]  # a later tile may be shorter along pre or post
            buf[tuple(slice(0, n) for n in a.shape)].addcmul_(a, b)

    def flush(self) -> None:
        for buf, target, unit_dims in self.bufs.values():
            target.add_(_vector_sum(buf, unit_dims))
        self.bufs = {}


def _expand(m: Tensor, ndim: int) -> Tensor:
    """A per-unit map (h, w) or (L,) as a factor broadcasting over a tile piece of ``ndim`` dims."""
    return m.view((1,) + tuple(m.shape) + (1,) * (ndim - 1 - m.dim()))


def _place(v: Tensor, rs: slice, cs: slice, H: int, W: int, vec: bool) -> Tensor:
    """Zero-pad a block ``v`` computed on rows ``rs`` and columns ``cs`` back to the H×W grid."""
    pad = (cs.start, W - cs.stop, rs.start, H - rs.stop)
    return torch.nn.functional.pad(v, ((0, 0) + pad) if vec else pad)


def _pair_sums_fused(X: Tensor, inv: Tensor, centre: bool, pieces, angular: bool, acc: torch.dtype):
    """Functional form of the forward walk (for ``torch.compile``, which fuses each product with
    its reduction, so nothing of the input's size is allocated): ``(mean or None, ‖x̃‖² or
    None, q)`` of X/c (``inv`` = 1/c), centred with ``centre``."""
    H, W = X.shape[1], X.shape[2]
    x = X.to(acc) * inv
    mean = x.mean(dim=(0, 3)) if centre else None
    if mean is not None:
        x = x - mean[None, :, :, None]
    nsq = (x * x).sum(dim=(0, 3)) if angular else None
    qs = []
    for pcs in pieces:
        q = x.new_zeros((H, W))
        for ra, ca, rb, cb in pcs:
            a, b = x[:, ra, ca], x[:, rb, cb]
            v = (a * b).sum(dim=(0, 3)) if angular else (a - b).square().sum(dim=(0, 3))
            q = q + _place(v, ra, ca, H, W, False)
        qs.append(q)
    return mean, nsq, torch.stack(qs)


def _pair_grad_fused(X: Tensor, inv: Tensor, mean: Optional[Tensor], alpha: Tensor, beta: Tensor, pieces,
                     acc: torch.dtype):
    """Functional form of the backward walk (for ``torch.compile``: one fused pass)."""
    H, W = X.shape[1], X.shape[2]
    x = X.to(acc) * inv
    if mean is not None:
        x = x - mean[None, :, :, None]
    g = x * alpha
    for o, pcs in enumerate(pieces):
        for ra, ca, rb, cb in pcs:
            bo = beta[o][:, ra, ca]
            g = g + _place(bo * x[:, rb, cb], ra, ca, H, W, True)
            g = g + _place(bo * x[:, ra, ca], rb, cb, H, W, True)
    return g.to(X.dtype)


_COMPILED: dict = {}


def _use_compile() -> bool:
    """``TORCHTOPO_COMPILE=1``: run the PyTorch path's two walks through ``torch.compile``
    (fused loops, no chunk temporaries; the first call per shape compiles for a while)."""
    return os.environ.get("TORCHTOPO_COMPILE", "0").lower() in ("1", "true", "yes")


def _compiled(name: str):
    if torch.compiler.is_compiling():  # traced by an enclosing torch.compile: inline, not nested
        return {"sums": _pair_sums_fused, "grad": _pair_grad_fused}[name]
    if name not in _COMPILED:
        fn = {"sums": _pair_sums_fused, "grad": _pair_grad_fused}[name]
        _COMPILED[name] = torch.compile(fn, dynamic=False)
    return _COMPILED[name]


def _walk_sums(X: Tensor, grid: Grid, inv: Tensor, neg_mean: Optional[Tensor], angular: bool, acc: torch.dtype):
    """The forward walk over X/c (``inv`` = 1/c, centred by ``−neg_mean``), tile by tile:
    ``(‖x̃‖², q)`` with ``q[o]`` the pair sums for stencil
    offset o (Σ x̃_i·x̃_j for the angular distances, Σ (x_i − x_j)² otherwise) at each pair's
    first unit.  A tile holds its band of grid rows plus the rows below it that its pairs
    reach, so all the offsets' passes over it after the first read cache, not memory.

    Without wrap-around an offset (dr, dc) is one flat shift dr·W + dc of the row-major units,
    so each offset is one contiguous piece; the pairs it makes across a row's end are not
    neighbours, and their sums land where the validity mask drops them.  On a torus the
    columns that wrap are separate rectangular pieces."""
    P, H, W, Q = X.shape
    wrap, offsets = grid.wrap, grid.offsets
    reach = max(dr for dr, _ in offsets)
    cols = [_col_pairs(W, dc, wrap) for _, dc in offsets]
    q = X.new_zeros((len(offsets), H, W), dtype=acc)
    nsq = X.new_zeros((H, W), dtype=acc) if angular else None
    scratch = _Scratch(X.device, acc)
    tiles = _tiles(X.shape, 2 * reach)
    # Tiles that split only the vector (whole grid, chunks of pre) see the same pieces every
    # time: their products accumulate in tile-shaped buffers (one fused multiply-add per piece)
    # and are reduced over the vector once at the end, instead of a product and a reduction
    # per tile.
    sums = _PairSums(scratch, defer=len(tiles) > 1 and tiles[0][2:] == (0, H))
    for ps, qs, r0, r1 in tiles:
        x, _ = _tile(X, ps, qs, r0, r1 + reach, wrap, inv, neg_mean, scratch)  # local row k = grid row r0 + k
        xf = x.flatten(1, 2)  # local unit k·W + c
        if angular:
            core = xf[:, : (r1 - r0) * W]
            sums.add(-1, core, core, nsq.view(-1)[r0 * W : r1 * W], 1)
        for o, (dr, dc) in enumerate(offsets):
            n = (r1 if wrap else min(r1, H - dr)) - r0  # rows whose pairs exist
            if wrap:
                pieces = [(x[:, :n, ca], x[:, dr : dr + n, cb], q[o, r0 : r0 + n, ca], 2) for ca, cb in cols[o]]
            else:
                a0, L, sh = max(0, -dc), n * W - abs(dc), dr * W + dc
                pieces = [] if L <= 0 else [
                    (xf[:, a0 : a0 + L], xf[:, a0 + sh : a0 + sh + L], q[o].view(-1)[r0 * W + a0 : r0 * W + a0 + L], 1)
                ]
            for i, (a, b, target, unit_dims) in enumerate(pieces if n > 0 else ()):
                if not angular:
                    a = b = torch.sub(a, b, out=scratch.get("diff", a.shape))
                sums.add((o, i), a, b, target, unit_dims)
    sums.flush()
    return nsq, q


def _walk_grad(X: Tensor, grid: Grid, inv: Tensor, neg_mean: Optional[Tensor], alpha: Tensor, beta: Tensor,
               acc: torch.dtype) -> Tensor:
    """The backward walk over X/c (as :func:`_walk_sums`), tile by tile: ∂/∂x_i = α_i x̃_i + Σ_o β_o(i) x̃_{i+o} + Σ_o β_o(i−o) x̃_{i−o}
    for the (H, W) map α and the (offsets, H, W) pair coefficients β (zero where a pair does not
    exist, which is what makes the flat pieces of :func:`_walk_sums` exact here too).  Each tile
    writes its band of the gradient once, reading its rows and the rows its pairs reach on both
    sides.  (Centring is exact, tile by tile: centring after the fact would amplify rounding
    into the gradients of a zero-variance unit's neighbours, whose β is −1/(ε n_y).)"""
    P, H, W, Q = X.shape
    wrap, offsets = grid.wrap, grid.offsets
    reach = max(dr for dr, _ in offsets)
    cols = [_col_pairs(W, dc, wrap) for _, dc in offsets]
    # β seen from each pair's second unit: beta_b[o][r] = β_o[r − dr] (rows mod H)
    beta_b = [torch.roll(beta[o], dr, 0) if dr else beta[o] for o, (dr, _) in enumerate(offsets)] if wrap else None
    beta_f = beta.flatten(1)
    out = torch.empty(X.shape, dtype=X.dtype, device=X.device)
    scratch = _Scratch(X.device, acc)
    for ps, qs, r0, r1 in _tiles(X.shape, 2 * reach):
        x, base = _tile(X, ps, qs, r0 - reach, r1 + reach, wrap, inv, neg_mean, scratch)
        oc = out[ps, r0:r1, :, qs]
        if x.dim() == 3:  # post == 1, squeezed by _tile
            oc = oc[..., 0]
        k = r0 - base  # local row of grid row r0
        xc = x[:, k : k + r1 - r0]
        g = oc if X.dtype == acc else scratch.get("grad", xc.shape)  # half: an fp32 band, copied out
        torch.mul(xc, _expand(alpha[r0:r1], x.dim()), out=g)
        xf, gf, u0, t0 = x.flatten(1, 2), g.flatten(1, 2), r0 * W, base * W  # flat: unit u is gf[u - u0], xf[u - t0]
        for o, (dr, dc) in enumerate(offsets):
            i_hi = r1 if wrap else min(r1, H - dr)  # first units of pairs in this band: r0 .. i_hi-1
            j_lo = r0 if wrap else max(r0, dr)  # second units of pairs in this band: j_lo .. r1-1
            if wrap:
                pieces = []
                for ca, cb in cols[o]:
                    if i_hi > r0:
                        pieces.append((g[:, : i_hi - r0, ca], beta[o][r0:i_hi, ca], x[:, k + dr : k + dr + i_hi - r0, cb]))
                    if r1 > j_lo:
                        pieces.append((g[:, j_lo - r0 : r1 - r0, cb], beta_b[o][j_lo:r1, ca], x[:, j_lo - base - dr : r1 - base - dr, ca]))
            else:  # flat shift sh; pairs across a row's end have β = 0
                sh = dr * W + dc
                i0, i1 = u0 + max(0, -dc), i_hi * W - max(0, dc)  # first units i, partner i + sh
                v0, v1 = max(u0, sh + t0), min(r1 * W, H * W + sh)  # second units v, partner v − sh
                pieces = []
                if i1 > i0:
                    pieces.append((gf[:, i0 - u0 : i1 - u0], beta_f[o, i0:i1], xf[:, i0 + sh - t0 : i1 + sh - t0]))
                if v1 > v0:
                    pieces.append((gf[:, v0 - u0 : v1 - u0], beta_f[o, v0 - sh : v1 - sh], xf[:, v0 - sh - t0 : v1 - sh - t0]))
            for target, coef, src in pieces:
                target.addcmul_(_expand(coef, src.dim()), src)
        if g is not oc:
            oc.copy_(g)
    return out


class TorchWalker:
    """The PyTorch backend's two walks for :class:`~torchtopo.functional._neighbor.NeighborMean`:
    :func:`_walk_sums` and :func:`_walk_grad` (or their ``torch.compile``d functional forms with
    ``TORCHTOPO_COMPILE=1``, and while an enclosing ``torch.compile`` traces them: the tiles'
    ``out=`` buffers do not trace), on X multiplied by the call's 1/c (a 0-d device tensor,
    fused into each tile's copy: no host synchronisation)."""

    scale = staticmethod(call_scale)

    def sums(self, X: Tensor, grid: Grid, distance: str, c: Tensor):
        acc = acc_dtype(X.dtype)
        inv = inv_scale(c)
        H, W = X.shape[1], X.shape[2]
        angular = distance in ("cosine", "correlation")
        if _use_compile() or torch.compiler.is_compiling():  # the tiles' out= buffers do not trace
            pieces = [_pair_blocks(H, W, dr, dc, grid.wrap) for dr, dc in grid.offsets]
            mean, nsq, q = _compiled("sums")(X, inv, distance == "correlation", pieces, angular, acc)
            return mean, nsq, q, pieces
        mean = _unit_means(X, inv, acc) if distance == "correlation" else None
        nsq, q = _walk_sums(X, grid, inv, None if mean is None else mean.neg(), angular, acc)
        return mean, nsq, q, None

    def grad(self, X: Tensor, grid: Grid, distance: str, mean: Optional[Tensor], alpha: Tensor, beta: Tensor,
             c: Tensor, pieces) -> Tensor:
        acc = alpha.dtype
        inv = inv_scale(c)
        if pieces is not None:
            return _compiled("grad")(X, inv, mean, alpha[None, :, :, None], beta[:, None, :, :, None], pieces, acc)
        return _walk_grad(X, grid, inv, None if mean is None else mean.neg(), alpha, beta, acc)


# The small-input path (:mod:`._neighbor_small`: whole-tensor operators, no tiles) is taken up
# to these sizes (set by measurement, see ``small_input``).  Angular distances: N × N × vector,
# the Gram matrix's multiply-adds.  Euclidean distances: pairs × vector, each gathered side.
_GRAM_ELEMENTS = 1 << 23
_SMALL_ELEMENTS = 1 << 16


def small_input(X: Tensor, grid: Grid, distance: str) -> bool:
    """Whether the unit view X takes the small-input path (never with ``TORCHTOPO_COMPILE=1``).

    Angular distances: N²·D ≤ 2²³; Euclidean: pairs·D ≤ 2¹⁶.  Measured on one core (forward +
    backward, small path / tiled walks, rows = WS on an (N, D) weight, dense = AS on (D, N)):
    cosine rows N²D = 2¹⁹ (121 × 64) 0.37, 2²¹ (64 × 576) 0.45, 2²³ (121 × 784, 128 × 576)
    0.73–0.77, 2²⁴ 0.87–0.99, 2²⁶ (256 × 1152) 1.36; correlation dense 2²¹ 0.56, 2²⁴ 0.96,
    2²⁶ 2.9.  Euclidean rows pairs·D = 2¹⁴ 0.46–0.48, 2¹⁶ 0.71–0.72, 2¹⁷ 0.94–1.17,
    2¹⁹–2²⁰ 1.1–1.4."""
    if _use_compile():
        return False
    vec = X.shape[0] * X.shape[3]
    if distance in ("cosine", "correlation"):
        return grid.n_units * grid.n_units * vec <= _GRAM_ELEMENTS
    return grid.n_pairs * vec <= _SMALL_ELEMENTS


def band_input(X: Tensor, distance: str) -> bool:
    """Whether the unit view X may take the band walks of :mod:`._neighbor_band` (batched
    matrix products over windows of consecutive units; the grid must suit them too): angular
    distances, weights (``pre = 1``) with rows of at least ``_BAND_MIN_D`` elements, not under
    ``torch.compile`` (strided windows and ``out=`` buffers do not trace).  A batched product
    pays a fixed cost per unit, and BLAS takes slow paths for short rows, so rows under 256
    elements stay with the tiled walks (measured, one core, cosine forward + backward, band /
    tiles, medians of 9–15 interleaved runs [minima]: 16384 units × 256: 0.63 [0.64], 0.70
    [0.69]; 4096 × 256: 0.60 [0.61]; 1024 × 256: 0.89 [0.73]; 256 × 256: 0.92 [0.98]; 1024 ×
    512: 0.41 [0.29]; 512 × 576: 0.69–0.88; 128 × 1152: 0.86–0.90; 256 × 2304: 0.33; 512 ×
    4608: 0.65; but × 128: 2.2–5.5 and 16384 × 64: 2.1–2.6).  Dense activations (``post = 1``)
    would be windows with a stride of N between a unit's elements: 2.6–3.4× the tiled walks'
    time, not used."""
    return (distance in ("cosine", "correlation") and X.shape[0] == 1 and X.shape[3] >= _BAND_MIN_D
            and not _use_compile() and not torch.compiler.is_compiling())


_BAND_MIN_D = 256
