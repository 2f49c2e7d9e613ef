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

import os
from typing import Optional, Tuple

import torch
from torch import Tensor

from .._checks import EPS, check_choice, check_tensor
from .._checks import check_finite as require_finite
from ..grid import Grid, GridLike, as_grid
from ._neighbor_torch import neighbor_sum, neighbor_sum_pairs, safe_sqrt

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
    check_choice(distance, DISTANCES, "distance", "neighbor_distance_mean")
    n_pairs = grid.n_pairs
    if n_pairs == 0:
        return X.sum() * 0.0
    if resolve_backend(backend, X) == "triton":
        return _triton_ops()(X, grid, distance, eps=EPS, fallback=neighbor_sum_pairs)
    return neighbor_sum(X, grid, distance) / n_pairs


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
    return neighbor_distance_mean(X, grid, distance=distance, backend=backend)


def _stimuli_view(activations: Tensor, grid: Grid, who: str) -> Tensor:
    check_tensor(activations, "activations", who)
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
    check_choice(distance, DISTANCES, "distance", "activation_similarity")
    X = _stimuli_view(activations, grid, "activation_similarity")
    if check_finite:
        require_finite(activations, "activations", "activation_similarity")
    return neighbor_distance_mean(X, grid, distance=distance, backend=backend)


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
        require_finite(activations, "activations", "spatial_correlation")
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
    Z = Z / (safe_sqrt(Z.square().sum(dim=1, keepdim=True)) + EPS)
    i, j = torch.triu_indices(n, n, offset=1)
    r = (Z @ Z.T)[i.to(Z.device), j.to(Z.device)]
    d = grid.sheet_distance(units[i], units[j]).to(device=Z.device, dtype=Z.dtype)
    return 0.5 * (1.0 - _pearson(r, 1.0 / (1.0 + d)))

