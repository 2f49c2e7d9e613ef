r"""The neighbour-distance mean shared by both backends (private).

:class:`NeighborMean` is the one autograd function behind the WS and AS losses (Truong & Hasson,
arXiv:2508.00043).  A backend only *walks*: its ``sums`` accumulates, per stencil offset o and
unit u, the pair sum ``q[o, u]`` (Σ (x − y)² for the Euclidean distances, Σ x̃·ỹ for the angular
ones) and each unit's ``‖x̃_u‖²``; its ``grad`` writes ``α_u x̃_u + Σ_o β[o, u] x̃_{u+o} +
Σ_o β[o, u−o] x̃_{u−o}``.  The PyTorch walks are in :mod:`._neighbor_torch`, the Triton ones in
``torchtopo.kernels``.  Everything between the two walks — the scale, the norms' ε, the sign
form, the per-pair distances and backward coefficients — is computed here, once, on
O(offsets × units) tensors, so both backends give the same values.

**Scale.**  Each call multiplies every load by 1/c for a power of two c (exact in floating
point): with k = ⌊log₂ max|x|⌋, c = 2^(k − clamp(k, −16, 16)) — 1 when the largest magnitude is
in [2⁻¹⁶, 2¹⁷), else the power of two that brings it into [2¹⁶, 2¹⁷) (large inputs) or
[2⁻¹⁶, 2⁻¹⁵) (small ones) — so sums of squares cannot overflow (values of 10²⁰ in float32 or
bfloat16) or underflow; the result is
multiplied back: d_sq = c²·d'_sq, d_eu = c·d'_eu (finite whenever the mean fits the dtype),
angular distances are scale-free.  c is a 0-d tensor computed on the input's device and always
applied (multiplying by 1 is exact), so no call reads a value back to the host: no device
synchronisation, no data-dependent branch (``torch.compile`` graphs stay whole).

**Norms with ε.**  With s = x̃·ỹ / (n_x n_y) the similarity of a pair,

.. math:: n_x = \sqrt{\lVert\tilde x\rVert^2 + \varepsilon^2},\qquad
          \varepsilon^2 = \delta\,\tfrac{1}{N}\textstyle\sum_u \lVert\tilde x_u\rVert^2 + 10^{-30},

δ = :data:`NORM_EPS_REL` (10⁻²): ε is a tenth of the units' root-mean-square norm, so a dead or
constant unit (or a zero weight row) gets a gradient of at most about 1/ε — about ten times a
typical unit's — instead of 1/10⁻⁸ (10⁶–10⁷ with the usual ``‖x‖‖y‖ + 1e-8`` denominator).  The
price: a unit with the mean norm has s shrunk by a factor 1/(1 + δ) (identical units have
d = 0.0099, not 0).  ε² depends on every unit and is differentiated as such.
"""
from __future__ import annotations

import contextlib
import math
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from .._checks import check_choice
from ..grid import Grid

__all__ = [
    "NORM_EPS_REL", "SIGNS", "call_scale", "call_scales", "inv_norms", "inv_scale", "eps_sq", "sign_form", "check_sign", "NeighborMean",
    "pair_mean_reference", "rescale", "no_autocast", "TritonWalker",
]

#: δ of the angular distances' ε² = δ · mean over units of ‖x̃‖² (see the module docstring).
NORM_EPS_REL = 1e-2
_EPS_FLOOR = 1e-30  # ε² when every unit is zero (then s = 0 and d = 1)
#: The sign forms of the angular distances: d = 1 − s, 1 − |s|, 1 − s².
SIGNS = ("signed", "absolute", "squared")
_SAFE_EXP = 16  # ⌊log₂ max |x|⌋ within ±16: no scaling needed (norm products < 2⁶⁸·D²)
_DEGREE = {"sqeuclidean": 2, "euclidean": 1, "cosine": 0, "correlation": 0}


def no_autocast(device: torch.device):
    """A context without autocast on ``device``'s type (the walks' matrix products must run in
    the accumulation dtype, not in autocast's half precision); a no-op when it is off."""
    if torch.is_autocast_enabled(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """The accumulation dtype: float32 for half inputs, else the input's."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


_SCALES: dict = {}


def _scale_table(acc: torch.dtype, device: torch.device) -> Tensor:
    """``[c, 1/c]`` of :func:`call_scales` for every binary exponent e of max |X| (``frexp``:
    max |X| = f·2^e, f ∈ [0.5, 1)), indexed by e (negative e from the end: the table's length
    is a power of two above twice the dtype's largest |e|).  Cached per dtype and device."""
    key = (acc, str(device))
    tab = _SCALES.get(key)
    if tab is None:
        fi = torch.finfo(acc)
        e_min = round(math.log2(fi.smallest_normal * fi.eps))  # the smallest subnormal's exponent
        n = 1 << (2 * max(-e_min, math.ceil(math.log2(fi.max)))).bit_length()
        e = torch.arange(n, dtype=torch.float64)
        e = torch.where(e < n // 2, e, e - n)  # the exponent each slot stands for
        k = e - 1 - (e - 1).clamp(-_SAFE_EXP, _SAFE_EXP)  # k − clamp(k, −16, 16), k = e − 1
        k = k.clamp_min(math.log2(fi.smallest_normal))
        tab = _SCALES[key] = torch.stack([torch.exp2(k), torch.exp2(-k)], 1).to(device=device, dtype=acc)
    return tab


def call_scales(X: Tensor) -> Tensor:
    """``[c, 1/c]`` (a length-2 tensor of the accumulation dtype on X's device): the power of two
    c = 2^(k − clamp(k, −16, 16)), k = ⌊log₂ max|X|⌋ (1 when max |X| is in [2⁻¹⁶, 2¹⁷), and for
    zero or non-finite inputs), at least the dtype's smallest normal number (so 1/c is finite).
    Computed on the device in a few 0-d operations (max |X|, its binary exponent, a look-up in a
    cached table): no host synchronisation, no data-dependent branch."""
    acc = acc_dtype(X.dtype)
    tab = _scale_table(acc, X.device)
    if X.numel() == 0:
        return tab[0]  # e = 0: [1, 1]
    lo, hi = torch.aminmax(X.detach())  # (faster here than a max-norm)
    m = torch.maximum(lo.neg(), hi).to(acc)  # NaN for NaN inputs
    return tab[torch.frexp(m).exponent.view(1)].view(2)  # frexp: e = 0 for 0, ±inf, NaN: c = 1
    # (a 1-element index tensor: a 0-d one would be read back to the host as a Python int)


def call_scale(X: Tensor) -> Tensor:
    """c of :func:`call_scales` as a 0-d tensor."""
    return call_scales(X)[0]


def inv_scale(c: Tensor) -> Tensor:
    """1/c for a scale of :func:`call_scale` (exact: a power of two within the dtype's range)."""
    return torch.reciprocal(c)


def eps_sq(nsq: Tensor) -> Tensor:
    """ε² = δ · mean over units of ‖x̃_u‖² (+ a floor), from the units' squared norms."""
    return NORM_EPS_REL * nsq.mean() + _EPS_FLOOR


def inv_norms(nsq: Tensor) -> Tensor:
    """1/n_u = (‖x̃_u‖² + ε²)^(−1/2) for the units' squared norms, ε² as :func:`eps_sq` (in
    three operators: δ/N·Σ instead of δ·mean, and the floor as a lower bound, not added: equal to
    rounding, and exactly when every unit is zero)."""
    return torch.add(nsq, nsq.sum(), alpha=NORM_EPS_REL / nsq.numel()).clamp_min_(_EPS_FLOOR).rsqrt_()


def sign_form(s: Tensor, sign: str) -> Tuple[Tensor, Tensor]:
    """``(f(s), f'(s))`` of d = 1 − f(s): f = s, |s| or s²."""
    if sign == "signed":
        return s, torch.ones_like(s)
    if sign == "absolute":
        return s.abs(), torch.sign(s)
    return s * s, 2.0 * s


def _pair_terms(q: Tensor, nsq: Optional[Tensor], grid: Grid, distance: str, sign: str, pair_list: bool):
    """Per-pair distances summed, and the backward coefficients ``(total, α (N,), β)``, in the
    scaled coordinates, from the walk's sums ``q`` and ``‖x̃‖² (N,)``.  ``q`` and β are laid
    out per (offset, unit) — ``(O, N)``, zero where the pair does not exist — or, with
    ``pair_list``, per pair of :meth:`Grid.neighbor_pairs` ``(P,)``."""
    N = grid.n_units
    if pair_list:
        i, j = grid.neighbor_pairs(q.device)
        valid = None
    else:
        valid, j = grid._offset_maps(q.device)
        q = q.reshape(j.shape)
    zero = torch.zeros((), dtype=q.dtype, device=q.device)
    if distance == "sqeuclidean":
        dist, a1, beta = q, torch.full_like(q, 2.0), torch.full_like(q, -2.0)
        a2 = a1
    elif distance == "euclidean":
        dist = torch.sqrt(q)  # q ≥ 0 (a sum of squares); NaN stays NaN
        a1 = torch.where(q > 0, dist.reciprocal(), zero)  # gradient 0 at x = y
        beta, a2 = -a1, a1
    else:
        na2 = nsq.reshape(N) + eps_sq(nsq)
        rn = torch.rsqrt(na2)
        n2i, n2j = (na2[i] if pair_list else na2), na2[j]  # junk where no pair: masked below
        rden = (rn[i] if pair_list else rn) * rn[j]  # 1/(n_x n_y), without forming n_x² n_y²
        s = q * rden
        if sign == "signed":  # f' = 1
            dist, beta, fs = 1.0 - s, rden.neg_(), s
        else:
            f, fp = sign_form(s, sign)
            dist, beta, fs = 1.0 - f, rden.mul_(fp).neg_(), fp * s
        a1, a2 = fs / n2i, fs / n2j
    if valid is not None:
        dist, a1, a2, beta = (torch.where(valid, t, zero) for t in (dist, a1, a2, beta))
        alpha = a1.sum(0).index_add(0, j.reshape(-1), a2.reshape(-1))
    else:
        alpha = torch.zeros(N, dtype=q.dtype, device=q.device).index_add_(0, i, a1).index_add_(0, j, a2)
    if distance in ("cosine", "correlation"):  # through ε²: ∂d/∂ε² = (α₁ + α₂)/2, ∂ε²/∂x̃_u = 2δx̃_u/N
        alpha = alpha + alpha.sum() * (NORM_EPS_REL / N)  # Σ_u α_u = Σ_pairs (α₁ + α₂)
    return dist.sum(), alpha, beta


def rescale(total_mean: Tensor, c: Union[Tensor, float], distance: str) -> Tensor:
    p = _DEGREE[distance]
    for _ in range(p):  # one factor at a time: c² alone may overflow where the mean fits
        total_mean = total_mean * c
    return total_mean


class NeighborMean(torch.autograd.Function):
    """Mean over the grid's neighbour pairs of d(v_i, v_j) for the ``(pre, H, W, post)`` view X,
    with the walks of ``walker`` (see the module docstring).  Saves X, the units' means and
    O(offsets × N) coefficients."""

    @staticmethod
    def forward(ctx, X: Tensor, grid: Grid, distance: str, sign: str, walker) -> Tensor:
        c = walker.scale(X)  # None: the walker decides it in its sums (the band walks' direct windows)
        mean, nsq, q, state = walker.sums(X, grid, distance, c)
        if c is None:
            c = walker.c
        pair_list = getattr(walker, "pair_list", False)
        total, alpha, beta = _pair_terms(q, nsq, grid, distance, sign, pair_list)
        ctx.save_for_backward(X, alpha, beta, *(() if mean is None else (mean,)))
        ctx.grid, ctx.distance, ctx.sign, ctx.walker, ctx.state, ctx.c = grid, distance, sign, walker, state, c
        return rescale(total / grid.n_pairs, c, distance)

    @staticmethod
    def backward(ctx, grad: Tensor):
        X, alpha, beta, *rest = ctx.saved_tensors
        c = ctx.c
        if torch.is_grad_enabled():  # create_graph=True: a differentiable gradient, in plain ops
            with torch.enable_grad():
                total = pair_mean_reference(X, ctx.grid, ctx.distance, ctx.sign)
                (g,) = torch.autograd.grad(total, X, grad.to(total.dtype), create_graph=True)
            return g, None, None, None, None
        k = grad.to(alpha.dtype) / ctx.grid.n_pairs  # ∂L/∂x = c^(p−1) ∂L'/∂x'
        p = _DEGREE[ctx.distance]
        if p != 1:  # a 0-d tensor operation (exact for c = 1): no branch on c's value
            k = k * c if p == 2 else k / c
        H, W = ctx.grid.height, ctx.grid.width
        beta = beta * k
        g = ctx.walker.grad(X, ctx.grid, ctx.distance, rest[0] if rest else None, (alpha * k).view(H, W),
                            beta if getattr(ctx.walker, "pair_list", False) else beta.view(-1, H, W), c, ctx.state)
        return g, None, None, None, None


def pair_mean_reference(X: Tensor, grid: Grid, distance: str, sign: str = "signed") -> Tensor:
    """The same mean from the explicit pair list, in plain differentiable ops (P × D memory for P
    pairs): for tiny tori whose stencil offsets alias, empty vectors, and gradients of the
    gradient.  The definition the walks are tested against."""
    acc = acc_dtype(X.dtype)
    c = call_scale(X)
    X = X.to(acc) / c
    if distance == "correlation":
        X = X - X.mean(dim=(0, 3), keepdim=True)
    i, j = grid.neighbor_pairs(X.device)
    Xf = X.flatten(1, 2)  # (pre, N, post)
    a, b = Xf[:, i], Xf[:, j]
    if distance in ("euclidean", "sqeuclidean"):
        s2 = (a - b).square().sum(dim=(0, 2))
        if distance == "sqeuclidean":
            d = s2
        else:
            pos = s2 > 0
            d = torch.where(pos, torch.sqrt(torch.where(pos, s2, 1.0)), s2 * 0)
    else:
        nsq = X.square().sum(dim=(0, 3)).reshape(-1)
        n2 = nsq + eps_sq(nsq)
        s = (a * b).sum(dim=(0, 2)) / (torch.sqrt(n2[i]) * torch.sqrt(n2[j]))
        d = 1.0 - sign_form(s, sign)[0]
    return rescale(d.sum() / grid.n_pairs, c, distance)


def check_sign(sign: str, distance: str, who: str) -> str:
    """``sign`` one of :data:`SIGNS`; only "signed" for the Euclidean distances."""
    check_choice(sign, SIGNS, "sign", who)
    if sign != "signed" and distance not in ("cosine", "correlation"):
        raise ValueError(
            f"{who}: sign={sign!r} needs an angular distance ('cosine' or 'correlation'), whose "
            f"similarity s has a sign; distance={distance!r} has none (use sign='signed')"
        )
    return sign



class TritonWalker:
    """The Triton backend's two walks (``torchtopo.kernels.pair_sums`` / ``pair_grad``) for
    :class:`NeighborMean`; ``block_u``/``block_d`` override the kernels' tile sizes."""

    def __init__(self, block_u: Optional[int] = None, block_d: Optional[int] = None) -> None:
        from torchtopo import kernels

        self.k, self.blocks = kernels, {"block_u": block_u, "block_d": block_d}

    def scale(self, X: Tensor) -> Tensor:
        return call_scale(X)  # on the device: no synchronisation

    def sums(self, X: Tensor, grid: Grid, distance: str, c: Tensor):
        return (*self.k.pair_sums(X, grid, distance, c, **self.blocks), None)

    def grad(self, X, grid, distance, mean, alpha, beta, c, state) -> Tensor:
        return self.k.pair_grad(X, grid, distance, mean, alpha, beta, c, **self.blocks)
