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

The distances (Truong & Hasson, arXiv:2508.00043), with s the similarity of an angular pair:

* ``"euclidean"``: ‖x − y‖₂ (not squared; its gradient at x = y is taken as 0),
* ``"sqeuclidean"``: ‖x − y‖₂²,
* ``"cosine"``: 1 − s, s = x·y / (n_x n_y) with n_x = √(‖x‖² + ε²),
* ``"correlation"``: the cosine distance of x and y after centring each over its own elements,
  i.e. 1 − Pearson r,

and for the angular two the sign forms ``sign="absolute"`` (1 − |s|) and ``"squared"`` (1 − s²).

ε² = 0.01 · (mean over the units of ‖x̃‖²): the released code (and torchtopo before) divides by
‖x‖‖y‖ + 10⁻⁸, whose gradient at a zero weight row or a dead/constant unit is 10⁶–10⁷ times a
typical one (one SGD step moved a zeroed row from norm 0 to 4·10³); with ε inside the norms it
is at most about ten times a typical unit's, at the price of shrinking s by about 1 % (identical
units have d ≈ 0.0099; a zero-variance unit still has d = 1 to every neighbour).  Inputs whose
magnitude is outside [2⁻¹⁶, 2¹⁷) are divided by a power of two before any sum (exact), so values
of 10²⁰ in float32 or bfloat16 give finite losses and gradients (the squared Euclidean mean is
finite whenever it fits the dtype).  See ``torchtopo.functional._neighbor``.
"""
from __future__ import annotations

import math
import os
from typing import Optional, Tuple

import torch
from torch import Tensor

from .._checks import EPS, check_choice, check_int, check_tensor
from .._checks import check_finite as require_finite
from ..grid import Grid, GridLike, as_grid
from ._neighbor import (
    SIGNS,
    NeighborMean,
    TritonWalker,
    acc_dtype,
    call_scale,
    check_sign,
    eps_sq,
    pair_mean_reference,
)
from ._neighbor_band import BandWalker, band_plan
from ._neighbor_small import SmallNeighborMean
from ._neighbor_torch import TorchWalker, band_input, safe_sqrt, small_input

__all__ = [
    "DISTANCES",
    "SIGNS",
    "weight_similarity",
    "activation_similarity",
    "spatial_correlation",
    "neighbor_distance_mean",
    "unit_view",
    "resolve_unit_dim",
    "resolve_backend",
]

#: The distances the topographic losses accept (see the module docstring for their formulas).
DISTANCES = ("euclidean", "sqeuclidean", "cosine", "correlation")
BACKENDS = ("auto", "torch", "triton")


# ----------------------------------------------------------------------------- dispatch
def _triton_ops():
    """The kernels' entry point, or None when Triton or the kernels are unavailable."""
    try:
        from torchtopo import kernels
    except Exception:  # pragma: no cover - broken optional install
        return None
    if not getattr(kernels, "HAS_TRITON", False):
        return None
    return getattr(kernels, "pair_sums", None)


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


def resolve_unit_dim(shape, n_units: int, unit_dim: Optional[int], who: str, name: str = "activations") -> int:
    """The (non-negative) dimension of an activation tensor of ``shape`` that holds the units.

    ``unit_dim=None``: dimension 1 (``(B, N)``, channels-first ``(B, C, ...)``), except that a
    3-D ``(B, ·, ·)`` tensor whose dimensions 1 and 2 both have ``n_units`` entries is
    ambiguous — ``(B, C, L)`` or token activations ``(B, T, N)`` with T = N — and raises; and a
    tensor whose dimension 1 does not fit but whose last does gets a hint to pass
    ``unit_dim=-1``.
    """
    nd = len(shape)
    if unit_dim is None:
        if nd == 3 and shape[1] == shape[2] == n_units:
            raise ValueError(
                f"{who}: the unit dimension of {name} of shape {tuple(shape)} is ambiguous: "
                f"dimensions 1 and 2 both have {n_units} entries, the grid's unit count. Pass "
                f"unit_dim=1 for (B, C, L) channels or unit_dim=-1 for (B, T, N) token "
                f"activations of a transformer (all other dimensions are stimuli)"
            )
        if nd >= 3 and shape[1] != n_units and shape[-1] == n_units:
            raise ValueError(
                f"{who}: {name} of shape {tuple(shape)} has {shape[1]} entries in dimension 1 "
                f"but the grid has {n_units} units; its last dimension has {n_units}: pass "
                f"unit_dim=-1 for (B, T, N) token activations"
            )
        return 1
    ud = check_int(unit_dim, "unit_dim", who)
    if not -nd <= ud < nd:
        raise ValueError(f"{who}: unit_dim must be in [{-nd}, {nd - 1}] for {name} of shape {tuple(shape)}, got {ud}")
    return ud % nd


def unit_view(x: Tensor, grid: Grid, layout: str, *, name: str = "input", unit_dim: Optional[int] = 1,
              who: str = "unit_view") -> Tensor:
    """View ``x`` as ``X[pre, row, col, post]`` (see the module docstring), without copying
    (a copy only where ``x``'s strides do not allow merging the dimensions before or after the
    units).

    ``layout="rows"``: units are the rows of ``x`` (weights, N × ...).
    ``layout="columns"``: units are dimension ``unit_dim`` of ``x`` (see
    :func:`resolve_unit_dim`; default 1: activations B × N, B × C × h × w, B × C × L), every
    other dimension holds stimuli (``pre`` the ones before it, ``post`` the ones after).
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
        if x.dim() < 2:
            raise ValueError(
                f"{name} must be (B, N), (B, C, L), (B, C, H, W) or (B, T, N) (units on one "
                f"dimension, stimuli on the others), got shape {tuple(x.shape)}"
            )
        ud = resolve_unit_dim(x.shape, grid.n_units, unit_dim, who, name)
        if x.shape[ud] != grid.n_units:
            raise ValueError(
                f"{name} has {x.shape[ud]} units (dimension {ud}, shape {tuple(x.shape)}) but the "
                f"grid {H}×{W} has {grid.n_units} units"
            )
        return x.reshape(math.prod(x.shape[:ud]), H, W, math.prod(x.shape[ud + 1:]))
    raise ValueError(f"layout must be 'rows' or 'columns', got {layout!r}")


def neighbor_distance_mean(
    X: Tensor,
    grid: GridLike,
    *,
    distance: str = "euclidean",
    sign: str = "signed",
    backend: Optional[str] = None,
) -> Tensor:
    """Mean over the grid's neighbour pairs of d(v_i, v_j), for a ``(pre, H, W, post)`` view.

    The primitive behind :func:`weight_similarity` and :func:`activation_similarity`; use those.
    ``sign`` as in :func:`activation_similarity`.  Returns a float32 scalar for half-precision
    inputs, else a scalar of ``X``'s dtype.  A grid without pairs (1 × 1) gives 0.  Small inputs
    take a PyTorch path in a handful of whole-tensor operators (the study's 11 × 11 × 64 sheet,
    ResNet's 64-unit convolutions): for the angular distances the N × N Gram matrix masked by
    the grid's adjacency (N²·D ≤ 2²³), for the Euclidean ones both sides of every pair gathered
    at once (pairs·D ≤ 2¹⁶); below those sizes it is faster than the tiled walks (measured, see
    ``torchtopo.functional._neighbor_torch.small_input``).  Larger weights with rows of ≥ 256
    elements on grids without wrap-around take, for the angular distances, band walks: each
    unit's partners in one stencil row are consecutive rows of the weight, so both walks are a
    few batched matrix products over strided windows (``torchtopo.functional._neighbor_band``).

    Backends: ``"triton"`` runs the fused kernels of :mod:`torchtopo.kernels`; ``"torch"`` walks
    the same pairs on shifted views of the grid, in tiles small enough to stay in a core's cache
    while every offset's pass runs over them (peak extra memory: the gradient plus a few
    tiles).  Both only walk (pair sums forward, the gradient backward); the per-pair algebra in
    between is shared, so they give the same values, and both save only ``X`` and per-pair
    coefficients for the backward pass.  Both support gradients of the gradient
    (``create_graph=True``, e.g. gradient penalties): that backward recomputes through the
    explicit pair list, in plain differentiable ops (P × D memory for P pairs).  With
    ``TORCHTOPO_COMPILE=1`` the PyTorch path's two walks go through ``torch.compile`` (fused
    loops; the first call for each shape compiles for a while).
    """
    grid = as_grid(grid)
    check_choice(distance, DISTANCES, "distance", "neighbor_distance_mean")
    check_sign(sign, distance, "neighbor_distance_mean")
    return _mean(X, X, grid, distance, sign, backend)


def _mean(x: Tensor, X: Tensor, grid: Grid, distance: str, sign: str, backend: Optional[str]) -> Tensor:
    """The dispatch of :func:`neighbor_distance_mean` for the unit view ``X`` of ``x`` (the
    small-input path takes x itself and reshapes inside: no view node to differentiate)."""
    if grid.n_pairs == 0:
        return X.sum().to(acc_dtype(X.dtype)) * 0.0
    if grid.aliased or X.shape[0] * X.shape[3] == 0:  # tiny torus, or empty vectors: the pair list
        return pair_mean_reference(X, grid, distance, sign)
    if resolve_backend(backend, X) == "triton":
        return NeighborMean.apply(X, grid, distance, sign, TritonWalker())
    if small_input(X, grid, distance):
        return SmallNeighborMean.apply(x, tuple(X.shape), grid, distance, sign)
    plan = band_plan(grid) if band_input(X, distance) else None
    return NeighborMean.apply(X, grid, distance, sign, TorchWalker() if plan is None else BandWalker(plan))


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
    check_tensor(weight, "weight", "weight_similarity")
    grid = as_grid(grid)
    check_choice(distance, DISTANCES, "distance", "weight_similarity")
    if check_finite:
        require_finite(weight, "weight", "weight_similarity")
    X = unit_view(weight, grid, "rows", name="weight")
    return _mean(weight, X, grid, distance, "signed", backend)


def _stimuli_view(activations: Tensor, grid: Grid, who: str, unit_dim: Optional[int]) -> Tensor:
    check_tensor(activations, "activations", who)
    X = unit_view(activations, grid, "columns", name="activations", unit_dim=unit_dim, who=who)
    n_stim = X.shape[0] * X.shape[3]
    if n_stim < 2:
        raise ValueError(
            f"{who} needs at least 2 stimuli per unit (the product of the dimensions other than "
            f"the units'), got activations of shape {tuple(activations.shape)}"
            + (" (batch size 1)" if activations.shape[0] == 1 else "")
        )
    return X


def activation_similarity(
    activations: Tensor,
    grid: GridLike,
    *,
    distance: str = "correlation",
    sign: str = "signed",
    unit_dim: Optional[int] = None,
    backend: Optional[str] = None,
    check_finite: bool = False,
) -> Tensor:
    r"""Activation-Similarity (AS) loss (Truong & Hasson, arXiv:2508.00043).

    .. math:: S_{AS}(A) = \frac{1}{|P|} \sum_{(i, j) \in P} d(a_{:, i}, a_{:, j})

    with :math:`a_{:, k}` unit k's responses over the stimuli (its *pre-ReLU* activations in the
    study).  With the default correlation distance this is the mean over neighbour pairs of
    1 − Pearson r over the batch; ``sign`` picks how the sign of r counts:

    ========== ============ ==========================================================
    sign       d            what it produced here (MNIST sample, ``mnist_cnn``, λ = 1,
                            3 seeds to a validation plateau; mean over seeds)
    ========== ============ ==========================================================
    "signed"   1 − r        maps *smoother* than WS (Moran's I 0.40 vs 0.21, control
                            0.01), neighbour r 0.90, smooth blobs
    "absolute" 1 − |r|      Moran's I 0.03, the most bimodal correlation histogram
                            (Sarle's coefficient 0.77 vs 0.47 for the control, peaks
                            at ±1), salt-and-pepper maps with some stripe contrast
    "squared"  1 − r²       as "absolute" (one seed)
    ========== ============ ==========================================================

    The paper reports AS maps as "bimodal, not smooth, striped" (the opposite of WS).  That is
    reproduced by a sign-agnostic form ("absolute"/"squared") or by the authors' released WS
    loss applied to the *untransposed* (B, N) batch (each "unit" a contiguous chunk of
    batch × units memory: alternating stripes, Moran's I −0.32, vertical minus horizontal
    directional Moran's I 1.01 in absolute value) — not by 1 − r, which gives the smoothest maps of all.
    The paper's exact AS is unconfirmed: its training code is not released.  "signed" (the
    natural reading) stays the default.

    Args:
        activations: units on dimension ``unit_dim``, stimuli on all the others: (B, N) for a
            dense layer, (B, C, H, W) / (B, C, L) for a convolution (the C channels are the
            units, batch × positions the stimuli), (B, T, N) tokens of a transformer with
            ``unit_dim=-1`` (batch × tokens the stimuli).
        grid: a :class:`~torchtopo.Grid` or ``(H, W)`` with N (or C) units.
        distance: ``"correlation"`` (default), ``"cosine"``, ``"euclidean"``, ``"sqeuclidean"``.
        sign: ``"signed"`` (d as above), ``"absolute"`` (1 − |s|, s the cosine similarity or
            Pearson r) or ``"squared"`` (1 − s²); the latter two only for the angular
            distances (ValueError otherwise).
        unit_dim: the dimension holding the units; None (default): dimension 1, and a clear
            error when a 3-D input has the grid's unit count in dimensions 1 and 2 (pass 1 or
            −1) — see :func:`resolve_unit_dim`.
        backend, check_finite: as in :func:`weight_similarity`.

    Raises:
        ValueError: fewer than 2 stimuli (batch size 1 on a dense layer), wrong rank or unit
            count, an ambiguous unit dimension, a sign form for a Euclidean distance.
    """
    grid = as_grid(grid)
    check_choice(distance, DISTANCES, "distance", "activation_similarity")
    check_sign(sign, distance, "activation_similarity")
    X = _stimuli_view(activations, grid, "activation_similarity", unit_dim)
    if check_finite:
        require_finite(activations, "activations", "activation_similarity")
    return _mean(activations, X, grid, distance, sign, backend)


def check_neighborhood(neighborhood, who: str):
    """``neighborhood`` for :func:`spatial_correlation`: None, an int k ≥ 1 or a pair
    ``(kh, kw)`` of ints ≥ 1 (a list is taken as a pair); returned as None, an int or a tuple."""
    if neighborhood is None:
        return None
    if isinstance(neighborhood, (tuple, list)):
        if len(neighborhood) != 2:
            raise ValueError(
                f"{who}: neighborhood must be an int or a pair (kh, kw) of ints, got "
                f"{len(neighborhood)} entries: {neighborhood!r}"
            )
        return tuple(check_int(k, f"neighborhood[{i}]", who, minimum=1) for i, k in enumerate(neighborhood))
    if isinstance(neighborhood, bool) or not isinstance(neighborhood, int):
        raise TypeError(
            f"{who}: neighborhood must be None, an int >= 1 or a pair (kh, kw) of ints, got "
            f"{type(neighborhood).__name__} ({neighborhood!r})"
        )
    return check_int(neighborhood, "neighborhood", who, minimum=1)


def check_backend(backend, who: str) -> Optional[str]:
    """``backend`` None or one of :data:`BACKENDS` (any case), as :func:`resolve_backend` takes it."""
    if backend is None:
        return None
    if not isinstance(backend, str):
        raise TypeError(f"{who}: backend must be None or one of {BACKENDS}, got {type(backend).__name__} ({backend!r})")
    check_choice(backend.lower(), BACKENDS, "backend", who)
    return backend


def _pearson(x: Tensor, y: Tensor) -> Tensor:
    x = x - x.mean()
    y = y - y.mean()
    return (x * y).sum() / (safe_sqrt(x.square().sum()) * safe_sqrt(y.square().sum()) + EPS)


def spatial_correlation(
    activations: Tensor,
    grid: GridLike,
    *,
    neighborhood: Optional[int | Tuple[int, int]] = None,
    generator: Optional[torch.Generator] = None,
    unit_dim: Optional[int] = None,
    check_finite: bool = False,
) -> Tensor:
    r"""TDANN-style spatial-correlation loss (Lee et al. 2020; Margalit et al. 2024).

    Within a neighbourhood of units,

    .. math:: L = \tfrac12 \bigl(1 - \operatorname{Pearson}_{i<j}\bigl(r_{ij},\;
              \tfrac{1}{1 + d_{ij}}\bigr)\bigr)

    with :math:`r_{ij}` the Pearson correlation of units i and j over the stimuli (with ε inside
    the norms as in the module docstring, so a dead or constant unit has r = 0 and a bounded
    gradient; Pearson over the pairs is scale-free, so for units of equal variance the loss is
    exactly the ε-free one) and
    :math:`d_{ij}` their Euclidean distance on the sheet (in grid steps, torus-aware with
    ``wrap``).  L is 0 when response similarity falls off with distance exactly like
    1 / (1 + d), ½ when unrelated to it.

    Args:
        activations: (B, N), (B, C, H, W) / (B, C, L), or (B, T, N) with ``unit_dim=-1``, as
            in :func:`activation_similarity`.
        grid: the sheet.
        neighborhood: ``None`` uses all units (an n × n correlation matrix: fine for small
            sheets); an int ``k`` or ``(kh, kw)`` samples one random ``kh × kw`` window of the
            grid per call, as TDANN does to avoid the N × N cost.
        generator: a ``torch.Generator`` (CPU) for the window draw; the global RNG otherwise.
        unit_dim: the dimension holding the units, as in :func:`activation_similarity`.
        check_finite: as in :func:`weight_similarity`.
    """
    grid = as_grid(grid)
    neighborhood = check_neighborhood(neighborhood, "spatial_correlation")
    X = _stimuli_view(activations, grid, "spatial_correlation", unit_dim)
    if check_finite:
        require_finite(activations, "activations", "spatial_correlation")
    H, W = grid.height, grid.width
    if neighborhood is not None:
        kh, kw = (neighborhood, neighborhood) if isinstance(neighborhood, int) else neighborhood
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
    X = X.to(acc_dtype(X.dtype)) / call_scale(X)  # a power of two: no overflow at 1e20
    Z = X.permute(1, 2, 0, 3).reshape(n, -1)  # (units, stimuli)
    Z = Z - Z.mean(dim=1, keepdim=True)
    nsq = Z.square().sum(dim=1, keepdim=True)
    Z = Z / torch.sqrt(nsq + eps_sq(nsq))  # ε inside the norms, as the angular distances
    i, j = torch.triu_indices(n, n, offset=1)
    r = (Z @ Z.T)[i.to(Z.device), j.to(Z.device)]
    d = grid.sheet_distance(units[i], units[j]).to(device=Z.device, dtype=Z.dtype)
    return 0.5 * (1.0 - _pearson(r, 1.0 / (1.0 + d)))

