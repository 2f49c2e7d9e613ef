"""Topographic losses as pure functions (Truong & Hasson, arXiv:2508.00043).

All of them reduce to one primitive: the mean, over the unordered neighbour pairs (i, j) of a
:class:`~torchtopo.Grid`, of a distance d(v_i, v_j) between the units' vectors.  A unit's vector
is a row of a weight matrix (Weight Similarity) or a column of a batch of activations (Activation
Similarity).  Internally every input is viewed — without a copy — as a 4-D tensor
``X[pre, row, col, post]`` whose grid dimensions are 1 and 2 and whose vector is ``pre × post``:

=================================  =================  =========================
input                              view               vector of unit (r, c)
=================================  =================  =========================
weight (N, D...)                   (1, H, W, D)       the row: D incoming weights
activations (B, N)                 (B, H, W, 1)       the column: B responses
activations (B, C, h, w)           (B, H, W, h·w)     B·h·w responses of channel c
=================================  =================  =========================

The distances (Truong & Hasson, arXiv:2508.00043, eps = 1e-8):

* ``"euclidean"``: ‖x − y‖₂ (not squared; its gradient at x = y is taken as 0),
* ``"sqeuclidean"``: ‖x − y‖₂²,
* ``"cosine"``: 1 − x·y / (‖x‖‖y‖ + eps),
* ``"correlation"``: the cosine distance of x and y after centring each over its own elements,
  i.e. 1 − Pearson r (a zero-variance unit has distance 1 to every neighbour: finite).
"""
from __future__ import annotations

import math
import os
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..grid import Grid, GridLike, as_grid

__all__ = [
    "DISTANCES",
    "weight_similarity",
    "activation_similarity",
    "spatial_correlation",
    "neighbor_distance_mean",
    "unit_view",
    "resolve_backend",
]

#: The distances the topographic losses accept (see the module docstring for their formulas).
DISTANCES = ("euclidean", "sqeuclidean", "cosine", "correlation")
BACKENDS = ("auto", "torch", "triton")
EPS = 1e-8


# ----------------------------------------------------------------------------- dispatch
def _triton_ops():
    """The kernels' entry point, or None when Triton or the kernels are unavailable."""
    try:
        from torchtopo import kernels
    except Exception:  # pragma: no cover - broken optional install
        return None
    if not getattr(kernels, "HAS_TRITON", False):
        return None
    return getattr(kernels, "neighbor_distance_mean", None)


def resolve_backend(backend: Optional[str], x: Tensor) -> str:
    """Pick ``"torch"`` or ``"triton"`` for tensor ``x``.

    ``backend=None`` reads ``TORCHTOPO_BACKEND`` (default ``"auto"``).  ``"auto"`` chooses
    Triton for CUDA tensors when the kernels import, PyTorch otherwise.  Forcing ``"triton"``
    without Triton raises a RuntimeError; on CPU tensors it needs ``TRITON_INTERPRET=1``.
    """
    b = backend if backend is not None else os.environ.get("TORCHTOPO_BACKEND", "auto")
    if not isinstance(b, str) or b.lower() not in BACKENDS:
        src = "backend" if backend is not None else "TORCHTOPO_BACKEND"
        raise ValueError(f"{src} must be one of {BACKENDS}, got {b!r}")
    b = b.lower()
    if b == "auto":
        return "triton" if (x.is_cuda and _triton_ops() is not None) else "torch"
    if b == "triton" and _triton_ops() is None:
        raise RuntimeError(
            "backend='triton' was requested but the Triton kernels are unavailable: "
            "pip install 'torchtopo[triton]' (CPU tensors also need TRITON_INTERPRET=1)"
        )
    return b


# --------------------------------------------------------------------------- validation
def _check_distance(distance: str) -> None:
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")


def _check_tensor(x, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not (x.is_floating_point()):
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")


def _check_finite(x: Tensor, name: str) -> None:
    # opt-in: this syncs with the device
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or Inf values")


def unit_view(x: Tensor, grid: Grid, layout: str, *, name: str = "input") -> Tensor:
    """View ``x`` as ``X[pre, row, col, post]`` (see the module docstring), without copying.

    ``layout="rows"``: units are the rows of ``x`` (weights, N × ...).
    ``layout="columns"``: units are dimension 1 of ``x`` (activations B × N, B × C × h × w,
    or B × C × L).
    """
    H, W = grid.height, grid.width
    if layout == "rows":
        if x.dim() < 1:
            raise ValueError(f"{name} must have at least 1 dimension (units first), got a scalar")
        if x.shape[0] != grid.n_units:
            raise ValueError(
                f"{name} has {x.shape[0]} units (rows, shape {tuple(x.shape)}) but the grid "
                f"{H}×{W} has {grid.n_units} units"
            )
        return x.reshape(1, H, W, -1)
    if layout == "columns":
        if x.dim() not in (2, 3, 4):
            raise ValueError(
                f"{name} must be (B, N) or (B, C, L) or (B, C, H, W) with units on dimension 1, "
                f"got shape {tuple(x.shape)}"
            )
        if x.shape[1] != grid.n_units:
            raise ValueError(
                f"{name} has {x.shape[1]} units (dimension 1, shape {tuple(x.shape)}) but the "
                f"grid {H}×{W} has {grid.n_units} units"
            )
        X = x.unflatten(1, (H, W))
        if x.dim() == 2:
            return X.unsqueeze(-1)
        return X.flatten(3)
    raise ValueError(f"layout must be 'rows' or 'columns', got {layout!r}")


# ------------------------------------------------------------------------ torch backend
def _safe_sqrt(s: Tensor) -> Tensor:
    """sqrt with value 0 and gradient 0 at 0 (instead of an infinite gradient)."""
    pos = ~(s <= 0)  # NaN stays NaN (never silently zeroed)
    return torch.where(pos, torch.sqrt(torch.where(pos, s, torch.ones_like(s))), torch.zeros_like(s))


def _pair_distance(a: Tensor, b: Tensor, na: Optional[Tensor], nb: Optional[Tensor], distance: str) -> Tensor:
    if distance in ("euclidean", "sqeuclidean"):
        s = (a - b).square().sum(dim=(0, -1))
        return _safe_sqrt(s) if distance == "euclidean" else s
    dot = (a * b).sum(dim=(0, -1))
    return 1.0 - dot / (na * nb + EPS)


# Tile budget of the PyTorch path's walks, in elements of the input.  A tile and the temporaries
# of one operation on it stay within a core's L2 cache, so of the several passes each walk makes
# over a tile only the first reads from memory; peak extra memory is a few tiles whatever the
# input's size (plus the gradient and O(offsets × N) coefficients).
_CHUNK_ELEMENTS = 1 << 18


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
    is split along ``pre`` (no halo needed; half-budget tiles); a larger one into bands of grid
    rows, and only where a single band with its halo is still too large along ``post`` too."""
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


def _tile(X: Tensor, ps: slice, qs: slice, lo: int, hi: int, wrap: bool, mean: Optional[Tensor],
          scratch: _Scratch):
    """Grid rows ``lo .. hi-1`` of one tile (mod H with ``wrap``, clipped to the grid without),
    in the accumulation dtype and centred by ``mean``, with a size-1 ``post`` squeezed away
    (a trailing size-1 dim makes broadcasts slow).  Returns ``(x, base)``: x's row k is grid
    row base + k.  A view of X where nothing needs converting; else a copy into ``scratch``."""
    H = X.shape[1]
    if not wrap:
        lo, hi = max(lo, 0), min(hi, H)
    if lo >= 0 and hi <= H:
        x = X[ps, lo:hi, :, qs]
        m = None if mean is None else mean[lo:hi]
    else:
        idx = torch.arange(lo, hi, device=X.device) % H
        x = X[ps, :, :, qs].index_select(1, idx)
        m = None if mean is None else mean.index_select(0, idx)
    if x.shape[3] == 1:
        x = x[..., 0]
    if m is not None:  # centred (and converted: fp32 accumulation for half inputs) in one pass
        x = torch.sub(x, m if x.dim() == 3 else m[None, :, :, None], out=scratch.get("tile", x.shape))
    elif x.dtype != scratch.dtype:
        x = scratch.get("tile", x.shape).copy_(x)
    return x, lo


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
            self.bufs[key][0][: a.shape[0]].addcmul_(a, b)

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


def _pair_sums_fused(X: Tensor, mean: Optional[Tensor], pieces, angular: bool, acc: torch.dtype):
    """Functional form of the forward walk (for ``torch.compile``, which fuses each product with
    its reduction, so nothing of the input's size is allocated): ``(‖x̃‖² or None, q)``."""
    H, W = X.shape[1], X.shape[2]
    x = X.to(acc)
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
    return nsq, torch.stack(qs)


def _pair_grad_fused(X: Tensor, mean: Optional[Tensor], alpha: Tensor, beta: Tensor, pieces, acc: torch.dtype):
    """Functional form of the backward walk (for ``torch.compile``: one fused pass)."""
    H, W = X.shape[1], X.shape[2]
    x = X.to(acc)
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
    if name not in _COMPILED:
        fn = {"sums": _pair_sums_fused, "grad": _pair_grad_fused}[name]
        _COMPILED[name] = torch.compile(fn, dynamic=False)
    return _COMPILED[name]


def _walk_sums(X: Tensor, grid: Grid, mean: Optional[Tensor], angular: bool, acc: torch.dtype):
    """The forward walk, tile by tile: ``(‖x̃‖², q)`` with ``q[o]`` the pair sums for stencil
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
        x, _ = _tile(X, ps, qs, r0, r1 + reach, wrap, mean, scratch)  # local row k = grid row r0 + k
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


def _walk_grad(X: Tensor, grid: Grid, mean: Optional[Tensor], alpha: Tensor, beta: Tensor,
               acc: torch.dtype) -> Tensor:
    """The backward walk, tile by tile: ∂/∂x_i = α_i x̃_i + Σ_o β_o(i) x̃_{i+o} + Σ_o β_o(i−o) x̃_{i−o}
    for the (H, W) map α and the (offsets, H, W) pair coefficients β (zero where a pair does not
    exist, which is what makes the flat pieces of :func:`_walk_sums` exact here too).  Each tile
    writes its band of the gradient once, reading its rows and the rows its pairs reach on both
    sides.  (Centring is exact, tile by tile: with a zero-variance unit β is −1/eps, so centring
    after the fact would amplify rounding into its neighbours' gradients.)"""
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
        x, base = _tile(X, ps, qs, r0 - reach, r1 + reach, wrap, mean, scratch)
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


def _differentiable_grad(X: Tensor, grid: Grid, distance: str, grad: Tensor) -> Tensor:
    """∂(grad · Σ d)/∂X as a differentiable function of X, for double backward (gradient
    penalties, meta-learning): recomputed through :func:`_neighbor_sum_pairs`, whose plain ops
    autograd can differentiate again.  Only taken under ``create_graph=True``."""
    with torch.enable_grad():
        total = _neighbor_sum_pairs(X, grid, distance)
        (g,) = torch.autograd.grad(total, X, grad.to(total.dtype), create_graph=True)
    return g


class _NeighborSumTorch(torch.autograd.Function):
    """Σ over neighbour pairs of d(v_i, v_j) with the same walk as the Triton kernels: per
    offset, the pair sums q (Σ(x−y)² or Σx̃·ỹ) accumulated tile by tile on shifted views
    (:func:`_walk_sums`), then per-pair distances and backward coefficients, and the gradient
    in one more walk (:func:`_walk_grad`; see ``torchtopo.kernels.neighbor`` for the algebra).
    Saves only X and O(offsets × N) coefficients."""

    @staticmethod
    def forward(ctx, X: Tensor, grid: Grid, distance: str) -> Tensor:
        P, H, W, Q = X.shape
        D = P * Q
        acc = torch.float32 if X.dtype in (torch.float16, torch.bfloat16) else X.dtype
        mean = None
        if distance == "correlation":
            mean = X.sum(dim=(0, 3), dtype=acc) / max(D, 1)  # (H, W)
        angular = distance in ("cosine", "correlation")
        use_compile = _use_compile()
        pieces = None
        if use_compile:
            pieces = [_pair_blocks(H, W, dr, dc, grid.wrap) for dr, dc in grid.offsets]
            nsq, q = _compiled("sums")(X, mean, pieces, angular, acc)
        else:
            nsq, q = _walk_sums(X, grid, mean, angular, acc)
        n_off = q.shape[0]
        valid, partner = grid._offset_maps(X.device)
        valid = valid.view(n_off, H, W)
        if distance == "sqeuclidean":
            dist = q
            a1 = a2 = torch.full_like(q, 2.0)
            beta = torch.full_like(q, -2.0)
        elif distance == "euclidean":
            dist = _safe_sqrt(q)
            pos = q > 0
            a1 = a2 = torch.where(pos, 1.0 / torch.where(pos, dist, 1.0), 0.0)
            beta = -a1
        else:
            na = _safe_sqrt(nsq)
            nb = na.view(-1)[partner].view(n_off, H, W)  # each pair's second norm (junk where no pair)
            den = na * nb + EPS
            dist = 1.0 - q / den
            beta = -1.0 / den
            k = q / (den * den)
            a1 = torch.where(na > 0, k * nb / torch.where(na > 0, na, 1.0), 0.0)
            a2 = torch.where(nb > 0, k * na / torch.where(nb > 0, nb, 1.0), 0.0)
        total = torch.where(valid, dist, 0.0).sum()
        a1 = torch.where(valid, a1, 0.0)
        a2 = a1 if a2 is a1 else torch.where(valid, a2, 0.0)
        ctx.save_for_backward(X, mean if mean is not None else q[:0], a1, a2, torch.where(valid, beta, 0.0))
        ctx.pieces, ctx.grid, ctx.has_mean, ctx.use_compile = pieces, grid, mean is not None, use_compile
        ctx.distance = distance
        return total

    @staticmethod
    def backward(ctx, grad: Tensor):
        X, mean, a1, a2, beta = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: the gradient must be differentiable
            return _differentiable_grad(X, ctx.grid, ctx.distance, grad), None, None
        mean = mean if ctx.has_mean else None
        acc = a1.dtype
        grad = grad.to(acc)
        # α: Σ_o α₁ at each pair's first unit plus Σ_o α₂ moved to its second unit (α₂ is 0 where
        # there is no pair, so those land harmlessly on unit 0)
        _, partner = ctx.grid._offset_maps(X.device)
        alpha = a1.sum(0).view(-1).index_add(0, partner.view(-1), a2.view(-1)).view(a1.shape[1:])
        alpha, beta = alpha * grad, beta * grad
        if ctx.use_compile:
            grad_x = _compiled("grad")(X, mean, alpha[None, :, :, None], beta[:, None, :, :, None], ctx.pieces, acc)
            return grad_x, None, None
        return _walk_grad(X, ctx.grid, mean, alpha, beta, acc), None, None


def _neighbor_sum_pairs(X: Tensor, grid: Grid, distance: str) -> Tensor:
    """The same sum from the explicit pair list, in plain differentiable ops (P × D memory for
    P pairs): for tiny tori whose stencil offsets alias, and for gradients of the gradient."""
    if X.dtype in (torch.float16, torch.bfloat16):
        X = X.float()  # fp32 accumulation
    if distance == "correlation":
        X = X - X.mean(dim=(0, 3), keepdim=True)
    norm = None
    if distance in ("cosine", "correlation"):
        norm = _safe_sqrt(X.square().sum(dim=(0, 3), keepdim=True))  # (1, H, W, 1)
    i, j = grid.neighbor_pairs(X.device)
    Xf = X.flatten(1, 2)
    a, b = Xf[:, i].unsqueeze(2), Xf[:, j].unsqueeze(2)
    if norm is None:
        na = nb = None
    else:
        nf = norm.flatten(1, 2)
        na, nb = nf[0, i, 0].unsqueeze(-1), nf[0, j, 0].unsqueeze(-1)
    return _pair_distance(a, b, na, nb, distance).sum()


def _neighbor_sum_torch(X: Tensor, grid: Grid, distance: str) -> Tensor:
    """Sum over neighbour pairs of d(v_i, v_j); X is the (pre, H, W, post) view.

    Shifted views of the grid in cache-sized tiles (peak extra memory: a few tiles of
    ``_CHUNK_ELEMENTS`` plus O(offsets × N)); fp32 accumulation for half inputs."""
    if grid.aliased:  # tiny torus: stencil offsets alias, use the explicit unique pairs
        return _neighbor_sum_pairs(X, grid, distance)
    return _NeighborSumTorch.apply(X, grid, distance)


def neighbor_distance_mean(
    X: Tensor,
    grid: GridLike,
    *,
    distance: str = "euclidean",
    backend: Optional[str] = None,
) -> Tensor:
    """Mean over the grid's neighbour pairs of d(v_i, v_j), for a ``(pre, H, W, post)`` view.

    The primitive behind :func:`weight_similarity` and :func:`activation_similarity`; use those.
    Returns a float32 scalar for half-precision inputs, else a scalar of ``X``'s dtype.  A grid
    without pairs (1 × 1) gives 0.

    Backends: ``"triton"`` runs the fused kernels of :mod:`torchtopo.kernels`; ``"torch"`` walks
    the same pairs on shifted views of the grid, in tiles small enough to stay in a core's cache
    while every offset's pass runs over them (peak extra memory: the gradient plus a few
    tiles), saving only ``X`` and per-pair coefficients for the backward pass.  Both support
    gradients of the gradient (``create_graph=True``, e.g. gradient penalties): that backward
    recomputes through the explicit pair list, in plain differentiable ops (P × D memory for P
    pairs).  With ``TORCHTOPO_COMPILE=1`` the PyTorch path's two walks go through
    ``torch.compile`` (fused loops; the first call for each shape compiles for a while).
    """
    grid = as_grid(grid)
    _check_distance(distance)
    n_pairs = grid.n_pairs
    if n_pairs == 0:
        return X.sum() * 0.0
    if resolve_backend(backend, X) == "triton":
        return _triton_ops()(X, grid, distance)
    return _neighbor_sum_torch(X, grid, distance) / n_pairs


# --------------------------------------------------------------------------- public API
def weight_similarity(
    weight: Tensor,
    grid: GridLike,
    *,
    distance: str = "euclidean",
    backend: Optional[str] = None,
    check_finite: bool = False,
) -> Tensor:
    r"""Weight-Similarity (WS) loss of Truong & Hasson (arXiv:2508.00043).

    .. math:: S_{WS}(W) = \frac{1}{|P|} \sum_{(i, j) \in P} d(w_i, w_j)

    with :math:`w_k` row k of ``weight`` (the unit's incoming weights, everything after the
    first dimension flattened; bias excluded) and P the unordered neighbour pairs of ``grid``.

    Args:
        weight: (N, ...) with N = ``grid.n_units``; a conv weight (C_out, C_in, k, k) has one
            unit per output channel.
        grid: a :class:`~torchtopo.Grid` or ``(H, W)``.
        distance: ``"euclidean"`` (default), ``"sqeuclidean"``, ``"cosine"`` or ``"correlation"``.
        backend: ``None`` (``TORCHTOPO_BACKEND``, default ``"auto"``), ``"torch"`` or ``"triton"``.
        check_finite: raise a ValueError on NaN/Inf (syncs with the device); by default
            non-finite weights propagate into the loss.

    Returns:
        A scalar tensor (float32 for half-precision weights).
    """
    _check_tensor(weight, "weight")
    grid = as_grid(grid)
    _check_distance(distance)
    if check_finite:
        _check_finite(weight, "weight")
    X = unit_view(weight, grid, "rows", name="weight")
    return neighbor_distance_mean(X, grid, distance=distance, backend=backend)


def _stimuli_view(activations: Tensor, grid: Grid, who: str) -> Tensor:
    _check_tensor(activations, "activations")
    X = unit_view(activations, grid, "columns", name="activations")
    n_stim = X.shape[0] * X.shape[3]
    if n_stim < 2:
        raise ValueError(
            f"{who} needs at least 2 stimuli per unit (batch × positions) to compare response "
            f"profiles, got activations of shape {tuple(activations.shape)} (batch size 1)"
        )
    return X


def activation_similarity(
    activations: Tensor,
    grid: GridLike,
    *,
    distance: str = "correlation",
    backend: Optional[str] = None,
    check_finite: bool = False,
) -> Tensor:
    r"""Activation-Similarity (AS) loss (Truong & Hasson, arXiv:2508.00043; the AS training code
    is not released, this is the natural reading of the paper).

    .. math:: S_{AS}(A) = \frac{1}{|P|} \sum_{(i, j) \in P} d(a_{:, i}, a_{:, j})

    with :math:`a_{:, k}` unit k's responses over the batch (its *pre-ReLU* activations in the
    study).  With the default correlation distance this is the mean over neighbour pairs of
    1 − Pearson r over the batch.

    Args:
        activations: (B, N) for a dense layer, or (B, C, H, W) / (B, C, L) for a convolution,
            where the C channels are the units and batch × positions are the stimuli.
        grid: a :class:`~torchtopo.Grid` or ``(H, W)`` with N (or C) units.
        distance: ``"correlation"`` (default), ``"cosine"``, ``"euclidean"``, ``"sqeuclidean"``.
        backend, check_finite: as in :func:`weight_similarity`.

    Raises:
        ValueError: fewer than 2 stimuli (batch size 1 on a dense layer), wrong rank or unit
            count.
    """
    grid = as_grid(grid)
    _check_distance(distance)
    X = _stimuli_view(activations, grid, "activation_similarity")
    if check_finite:
        _check_finite(activations, "activations")
    return neighbor_distance_mean(X, grid, distance=distance, backend=backend)


def _pearson(x: Tensor, y: Tensor) -> Tensor:
    x = x - x.mean()
    y = y - y.mean()
    return (x * y).sum() / (_safe_sqrt(x.square().sum()) * _safe_sqrt(y.square().sum()) + EPS)


def spatial_correlation(
    activations: Tensor,
    grid: GridLike,
    *,
    neighborhood: Optional[int | Tuple[int, int]] = None,
    generator: Optional[torch.Generator] = None,
    check_finite: bool = False,
) -> Tensor:
    r"""TDANN-style spatial-correlation loss (Lee et al. 2020; Margalit et al. 2024).

    Within a neighbourhood of units,

    .. math:: L = \tfrac12 \bigl(1 - \operatorname{Pearson}_{i<j}\bigl(r_{ij},\;
              \tfrac{1}{1 + d_{ij}}\bigr)\bigr)

    with :math:`r_{ij}` the Pearson correlation of units i and j over the stimuli and
    :math:`d_{ij}` their Euclidean distance on the sheet (in grid steps, torus-aware with
    ``wrap``).  L is 0 when response similarity falls off with distance exactly like
    1 / (1 + d), ½ when unrelated to it.

    Args:
        activations: (B, N) or (B, C, H, W) / (B, C, L) as in :func:`activation_similarity`.
        grid: the sheet.
        neighborhood: ``None`` uses all units (an n × n correlation matrix: fine for small
            sheets); an int ``k`` or ``(kh, kw)`` samples one random ``kh × kw`` window of the
            grid per call, as TDANN does to avoid the N × N cost.
        generator: a ``torch.Generator`` (CPU) for the window draw; the global RNG otherwise.
        check_finite: as in :func:`weight_similarity`.
    """
    grid = as_grid(grid)
    X = _stimuli_view(activations, grid, "spatial_correlation")
    if check_finite:
        _check_finite(activations, "activations")
    H, W = grid.height, grid.width
    if neighborhood is not None:
        kh, kw = (neighborhood, neighborhood) if isinstance(neighborhood, int) else tuple(neighborhood)
        if not (isinstance(kh, int) and isinstance(kw, int)) or kh < 1 or kw < 1:
            raise ValueError(f"neighborhood must be a positive int or (kh, kw), got {neighborhood!r}")
        kh, kw = min(kh, H), min(kw, W)
        r0 = int(torch.randint(0, H - kh + 1, (1,), generator=generator))
        c0 = int(torch.randint(0, W - kw + 1, (1,), generator=generator))
        X = X[:, r0 : r0 + kh, c0 : c0 + kw]
        rows = torch.arange(r0, r0 + kh).repeat_interleave(kw)
        cols = torch.arange(c0, c0 + kw).repeat(kh)
        units = rows * W + cols
    else:
        units = torch.arange(grid.n_units)
    n = units.numel()
    if n < 3:
        raise ValueError(f"spatial_correlation needs at least 3 units in the neighbourhood, got {n}")
    if X.dtype in (torch.float16, torch.bfloat16):
        X = X.float()
    Z = X.permute(1, 2, 0, 3).reshape(n, -1)  # (units, stimuli)
    Z = Z - Z.mean(dim=1, keepdim=True)
    Z = Z / (_safe_sqrt(Z.square().sum(dim=1, keepdim=True)) + EPS)
    i, j = torch.triu_indices(n, n, offset=1)
    r = (Z @ Z.T)[i.to(Z.device), j.to(Z.device)]
    d = grid.sheet_distance(units[i], units[j]).to(device=Z.device, dtype=Z.dtype)
    return 0.5 * (1.0 - _pearson(r, 1.0 / (1.0 + d)))
