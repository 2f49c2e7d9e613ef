r"""The small-input path of the neighbour-distance mean (private).

For small sheets — the 11 × 11 ``fc1`` of Truong & Hasson (arXiv:2508.00043), ResNet's 64-unit
convolutions — the cost of :class:`~torchtopo.functional._neighbor.NeighborMean`'s walks is not
arithmetic but the fixed cost of their small operators (one per tile, offset and piece).
:class:`SmallNeighborMean` computes the same mean in a handful of whole-tensor operators on the
``(pre, N, post)`` view of X/c (c the call's power-of-two scale of
:func:`~torchtopo.functional._neighbor.call_scale`, as everywhere):

* **angular distances** (cosine, correlation after centring each unit): one Gram matrix
  G = Z Zᵀ (N × N), n_u² = G_uu + ε², the pair similarities s_uv = G_uv / (n_u n_v) masked by
  the grid's symmetric 0/1 adjacency matrix A (cached per grid, device and dtype), summed:

  .. math:: \text{mean} = 1 - \frac{1}{2P}\sum_{u,v} A_{uv} f(s_{uv}),\qquad f(s) = s,\ |s|,\ s^2

  and the gradient in two more matrix products,
  ∂/∂z_u = k [α_u z_u − n_u⁻¹ Σ_v F_uv n_v⁻¹ z_v] with F = A ⊙ f′(S), α_u = n_u⁻² Σ_v (F ⊙ S)_uv
  (+ the ε² term α_u += δ/N Σ_w α_w), the same coefficients as the walks' (see
  :mod:`torchtopo.functional._neighbor`).  The Gram costs N²·D multiply-adds where the walks
  need (offsets + 1)·N·D, so it is used only where it measured faster: N²·D ≤ 2²³
  (``_GRAM_ELEMENTS`` in :mod:`._neighbor_torch`; e.g. 0.37× the tiled walks' time at 121 units
  × 64, 0.73–0.77× at 2²³, 0.87–0.99× at 2²⁴, 1.4–2.9× at 2²⁶, one core);
* **Euclidean distances**: both sides of every pair gathered at once (P × D elements),
  differences, their squared norms; the gradient ±(coefficient × difference) added back to both
  units of each pair.  Differences are formed explicitly (not ‖x‖² + ‖y‖² − 2x·y, which
  cancels for near-identical neighbours).

Values and gradients agree with the walks to rounding (tests: ``tests/kernels/test_neighbor.py``).
"""
from __future__ import annotations

import math
from typing import Dict, Tuple

import torch
from torch import Tensor

from ..grid import Grid
from ._neighbor import NORM_EPS_REL, acc_dtype, call_scales, inv_norms, no_autocast, pair_mean_reference, rescale
from ._neighbor_band import _NSQ_HI, _NSQ_LO

__all__ = ["SmallNeighborMean"]

_ANGULAR = ("cosine", "correlation")
_CACHE: Dict[tuple, Tuple[Tensor, ...]] = {}
_CACHE_MAX = 64
#: Whether the CPU may form the cosine Gram from the raw input (:func:`_raw_gram`); tests switch
#: it off to compare.
_RAW_GRAM = True


def _neighbours(grid: Grid, device: torch.device, dtype: torch.dtype):
    """``(A, i, j, ij, k)``: the symmetric 0/1 adjacency matrix (N × N, ``dtype``), the pair
    list (i < j), the two concatenated, and the constants ``k = [1, 1/P, 2/P]`` (P pairs) as
    tensors (a Python number in an operator is first made a tensor: one more operator each
    call); cached per grid, device and dtype."""
    key = (grid, str(device), dtype)
    hit = _CACHE.get(key)
    if hit is None:
        i, j = grid.neighbor_pairs(device)
        N, P = grid.n_units, grid.n_pairs
        A = torch.zeros(N, N, dtype=dtype, device=device)
        A[i, j] = 1.0
        A[j, i] = 1.0
        k = torch.tensor([1.0, 1.0 / P, 2.0 / P], dtype=dtype, device=device)
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        hit = _CACHE[key] = (A, i, j, torch.cat([i, j]), k)
    return hit


def _units(x: Tensor, shape, inv: Tensor) -> Tuple[Tensor, int]:
    """x/c in the accumulation dtype, as a 2-D or 3-D tensor with the units on one dimension,
    for the ``(pre, H, W, post)`` unit view ``shape`` of x (``inv`` = 1/c, a 1-element tensor), without reordering x's elements:
    ``(N, post)`` for weights (``pre = 1``), ``(pre, N)`` for dense activations (``post = 1``),
    ``(pre, N, post)`` otherwise; and that dimension.  One fused pass (convert, scale): the
    1-element factor takes part in type promotion, so a half input is multiplied in fp32."""
    P, H, W, Q = shape
    N = H * W
    if P == 1:
        Z, ud = x.reshape(N, Q), 0
    elif Q == 1:
        Z, ud = x.reshape(P, N), 1
    else:
        Z, ud = x.reshape(P, N, Q), 1
    return (Z if inv is None else torch.mul(Z, inv)), ud


def _raw_gram(x: Tensor, distance: str) -> bool:
    """Whether the cosine Gram may be formed from x itself, the scale then read off its diagonal
    (as the band walks' direct windows do; see :mod:`._neighbor_band`): the CPU, float32/64,
    not while compiling.  m = max ‖x_u‖² in [n·2⁻³², 2³⁴) (n elements per unit) implies max |x| in
    [2⁻¹⁶, 2¹⁷), where the call's scale is 1: no pass for max |x| and no scaled copy."""
    return (_RAW_GRAM and distance == "cosine" and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
            and not torch.compiler.is_compiling())


def _vec_dims(Z: Tensor, ud: int) -> Tuple[int, ...]:
    return tuple(d for d in range(Z.dim()) if d != ud)


def _per_unit(v: Tensor, Z: Tensor, ud: int) -> Tensor:
    """A length-N vector shaped to broadcast along Z's unit dimension."""
    shape = [1] * Z.dim()
    shape[ud] = -1
    return v.view(shape)


def _gram(Z: Tensor, ud: int) -> Tensor:
    """G = Σ over the vector of z_u z_v, (N, N)."""
    if Z.dim() == 2:
        return torch.mm(Z, Z.t()) if ud == 0 else torch.mm(Z.t(), Z)
    return torch.tensordot(Z, Z, dims=([0, 2], [0, 2]))


def _mix(M: Tensor, Z: Tensor, ud: int) -> Tensor:
    """Σ_v M_uv z_v for every unit u, in Z's layout."""
    if Z.dim() == 2:
        return torch.mm(M, Z) if ud == 0 else torch.mm(Z, M.t())
    return torch.matmul(M, Z)  # (N, N) @ (pre, N, post): batched over pre


class SmallNeighborMean(torch.autograd.Function):
    """Mean over the grid's neighbour pairs of d(v_i, v_j) for the ``(pre, H, W, post)`` unit
    view ``shape`` of x (``x.reshape(shape)``, taken inside: no view node in the graph), in
    whole-tensor operators (see the module docstring).  For grids without aliased offsets and
    non-empty vectors (the dispatcher sends the others to the pair list)."""

    @staticmethod
    def forward(ctx, x: Tensor, shape, grid: Grid, distance: str, sign: str) -> Tensor:
        with no_autocast(x.device):  # the products in the accumulation dtype, also under autocast
            return SmallNeighborMean._forward(ctx, x, shape, grid, distance, sign)

    @staticmethod
    def _forward(ctx, x: Tensor, shape, grid: Grid, distance: str, sign: str) -> Tensor:
        acc = acc_dtype(x.dtype)
        A, i, j, ij, k = _neighbours(grid, x.device, acc)  # k = [1, 1/P, 2/P]
        G = None
        if _raw_gram(x, distance):  # the CPU, cosine, float32/64: the scale from the Gram's diagonal
            Z, ud = _units(x, shape, None)
            G = _gram(Z, ud)
            m = float(G.diagonal().max())  # the CPU: a read, not a synchronisation
            n = math.prod(shape) // grid.n_units
            cs = k[:1].expand(2) if n * _NSQ_LO <= m < _NSQ_HI else call_scales(x)
            if G is not None and float(cs[0]) != 1.0:  # out of range: scaled, as everywhere
                G = None
        else:
            cs = call_scales(x)  # [c, 1/c]
        if G is None:
            Z, ud = _units(x, shape, cs[1:])
        P = grid.n_pairs
        ctx.grid, ctx.distance, ctx.sign, ctx.ud, ctx.shape = grid, distance, sign, ud, shape
        if distance in _ANGULAR:  # scale-free: ∂L/∂x = ∂L/∂x̃ / c
            if distance == "correlation":
                Z = Z - Z.mean(_vec_dims(Z, ud), keepdim=True)
            if G is None:
                G = _gram(Z, ud)
            rn = inv_norms(G.diagonal())  # 1/n_u
            M = G.mul_(A)  # A ⊙ G (the diagonal, read above, is zeroed)
            if sign == "signed":  # Σ_uv A_uv s_uv = rnᵀ (A ⊙ G) rn
                y = torch.mv(M, rn)
                ctx.save_for_backward(x, Z, rn, y, cs[1] * k[1])
                total = torch.dot(rn, y)
            else:
                S = M.mul_(rn.unsqueeze(1)).mul_(rn)  # A ⊙ S
                ctx.save_for_backward(x, Z, rn, S, cs[1] * k[1])
                total = S.abs().sum() if sign == "absolute" else torch.dot(S.view(-1), S.view(-1))
            return torch.add(k[0], total, alpha=-0.5 / P)  # 1 − Σ_uv A_uv f(s_uv) / (2P)
        D = Z.index_select(ud, ij)
        Dif = torch.sub(D.narrow(ud, 0, P), D.narrow(ud, P, P))  # x̃_i − x̃_j per pair
        if distance == "sqeuclidean":  # ∂/∂x_i = 2c(x̃_i − x̃_j)/P
            ctx.save_for_backward(x, Dif, cs[0] * k[2])
            return rescale(torch.dot(Dif.view(-1), Dif.view(-1)) * k[1], cs[0], distance)
        d = torch.linalg.vector_norm(Dif, dim=_vec_dims(Dif, ud))  # ∂/∂x_i = (x̃_i − x̃_j)/(d̃ P)
        ctx.save_for_backward(x, Dif, d, k[1])
        return rescale(d.sum() * k[1], cs[0], distance)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, *saved = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: a differentiable gradient, in plain ops
            with torch.enable_grad():
                total = pair_mean_reference(x.reshape(ctx.shape), ctx.grid, ctx.distance, ctx.sign)
                (g,) = torch.autograd.grad(total, x, grad.to(total.dtype), create_graph=True)
            return g, None, None, None, None
        with no_autocast(x.device):
            g = SmallNeighborMean._grad(ctx, x, saved, grad * saved[-1])
        return g.reshape(x.shape).to(x.dtype), None, None, None, None

    @staticmethod
    def _grad(ctx, x: Tensor, saved, k: Tensor) -> Tensor:
        """The gradient for the loss's gradient times the forward's factor ``k``."""
        grid, distance, ud = ctx.grid, ctx.distance, ctx.ud
        if distance in _ANGULAR:
            Z, rn, t, _ = saved
            A = _neighbours(grid, x.device, Z.dtype)[0]
            if ctx.sign == "signed":  # α_u = n_u⁻² Σ_v A_uv s_uv = n_u⁻³ y_u; F = A
                alpha = (rn * t).mul_(rn).mul_(rn)
                Y = _mix(A, Z * _per_unit(rn, Z, ud), ud)  # Σ_v A_uv z_v / n_v
            else:  # t = A ⊙ S: F = A ⊙ f'(S), α_u = n_u⁻² Σ_v (F ⊙ S)_uv
                F = torch.sign(t) if ctx.sign == "absolute" else torch.add(t, t)
                alpha = (F * t).sum(1).mul_(rn).mul_(rn)
                Y = _mix(F.mul_(rn), Z, ud)  # Σ_v F_uv z_v / n_v
            alpha = torch.add(alpha, alpha.sum(), alpha=NORM_EPS_REL / grid.n_units)  # through ε²
            g = (Z * _per_unit(alpha, Z, ud)).addcmul_(Y, _per_unit(rn, Z, ud), value=-1).mul_(k)
        else:
            Dif, *rest = saved[:-1]
            if distance == "sqeuclidean":
                Dif = Dif * k
            else:  # 0 at d = 0
                d = rest[0]
                Dif = Dif * _per_unit(torch.where(d > 0, k / d, 0.0), Dif, ud)
            _, i, j, _, _ = _neighbours(grid, x.device, Dif.dtype)
            shape = list(Dif.shape)
            shape[ud] = grid.n_units
            g = Dif.new_zeros(shape).index_add_(ud, i, Dif).index_add_(ud, j, Dif, alpha=-1)
        return g
