r"""Hebbian/anti-Hebbian (HaH) costs and divisive normalisation as pure functions.

Cekic, Bakiskan & Madhow, "Neuro-inspired deep neural networks with sparse, strong activations"
(ICIP 2022, arXiv:2202.13074).  The HaH block replaces conv → BatchNorm → ReLU in the first layers
of a CNN by

1. :func:`normalized_conv2d`: :math:`z_c(p) = \langle w_c, x_p\rangle / (\lVert w_c\rVert_2 + 10^{-6})`,
2. ReLU,
3. :func:`divisive_norm`: :math:`y_c(p) = a_c(p) / (\sigma S + (1-\sigma) s(p) + 10^{-7})`,
4. :func:`fractional_threshold`: keep about the top ``keep`` fraction of positions per map,

and adds the layer's HaH cost :func:`hebbian_cost` (to be *maximised*) to the training objective.
:func:`gdn` is the generalized divisive normalisation of Ballé, Laparra & Simoncelli
("Density modeling of images using a generalized normalization transformation", ICLR 2016),
offered alongside.

All functions take channels-first tensors ``(B, C, H, W)`` (``(B, C)`` too for
:func:`hebbian_cost`), are differentiable, and have no Python loops over units or pixels.
"""
from __future__ import annotations

import math
import numbers
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_4d, check_channels, check_fraction, check_nonneg, check_tensor, check_window

__all__ = [
    "normalized_conv2d",
    "normalized_weight",
    "divisive_norm",
    "fractional_threshold",
    "hebbian_cost",
    "hebbian_k",
    "gdn",
]

_IntPair = Union[int, Tuple[int, int]]


# ----------------------------------------------------------------------------- conv
def normalized_weight(weight: Tensor, eps: float = 1e-6) -> Tensor:
    r"""Each output filter divided by its ℓ2 norm: :math:`w_c / (\lVert w_c\rVert_2 + \epsilon)`.

    The norm runs over everything but the first dimension (in-channels × kernel).  Gradients
    flow through the division, so the result is invariant to rescaling a filter.

    Args:
        weight: ``(C_out, C_in / groups, kH, kW)`` (any shape whose first dim is the filters).
        eps: added to the norm (Cekic et al., arXiv:2202.13074: 1e-6).

    Returns:
        a tensor of ``weight``'s shape.
    """
    check_tensor(weight, "weight", "normalized_weight")
    if weight.dim() < 2:
        raise ValueError(
            f"normalized_weight: weight must have a filter dimension and at least one more, got "
            f"shape {tuple(weight.shape)}"
        )
    norm = weight.flatten(1).norm(dim=1).reshape((-1,) + (1,) * (weight.dim() - 1))
    return weight / (norm + eps)


def normalized_conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    stride: _IntPair = 1,
    padding: Union[_IntPair, str] = 0,
    dilation: _IntPair = 1,
    groups: int = 1,
    *,
    eps: float = 1e-6,
) -> Tensor:
    r"""Convolution with implicitly ℓ2-normalised filters (the HaH block's first step).

    .. math::

        z_c(p) = \frac{\langle w_c, x_p\rangle}{\lVert w_c\rVert_2 + \epsilon} + b_c

    where :math:`x_p` is the input patch at position :math:`p` and the norm runs over
    in-channels × kernel.  Dividing the output by the norm equals convolving with the divided
    filter (the division is per output channel), which is what is computed.  Scaling a filter by
    any positive factor leaves :math:`z` unchanged (up to ``eps``).

    Args:
        x: ``(B, C_in, H, W)``.
        weight: ``(C_out, C_in / groups, kH, kW)``.
        bias: ``(C_out,)`` or None (the paper uses no bias).
        stride, padding, dilation, groups: as :func:`torch.nn.functional.conv2d`.
        eps: added to each filter's norm.

    Returns:
        ``(B, C_out, H', W')``.
    """
    check_4d(x, "x", "normalized_conv2d")
    check_tensor(weight, "weight", "normalized_conv2d")
    if weight.dim() != 4:
        raise ValueError(
            f"normalized_conv2d: weight must be 4-D (C_out, C_in / groups, kH, kW), got shape "
            f"{tuple(weight.shape)}"
        )
    check_channels(x, weight.shape[1] * groups, "x", "normalized_conv2d")
    return F.conv2d(x, normalized_weight(weight, eps), bias, stride, padding, dilation, groups)


# ----------------------------------------------------------------------------- divisive norm
def divisive_norm(x: Tensor, *, sigma: float = 0.1, window: int = 3, eps: float = 1e-7) -> Tensor:
    r"""The HaH divisive normalisation (Cekic et al., arXiv:2202.13074).

    A local field shared by all channels, mixed with its per-image maximum:

    .. math::

        s(p) &= \frac{1}{C}\sum_c \max_{q \in N(p)} |a_c(q)|, \qquad S = \max_p s(p), \\
        y_c(p) &= \frac{a_c(p)}{\sigma S + (1-\sigma)\, s(p) + \epsilon}

    with :math:`N(p)` the ``window`` × ``window`` neighbourhood of :math:`p` (clipped at the
    border: positions outside the image are ignored).  Gradients flow through the denominator.

    Args:
        x: ``(B, C, H, W)`` (after the ReLU in the HaH block, but any sign works: :math:`|a|` is used).
        sigma: mixing weight σ ∈ [0, 1] of the global maximum (paper: 0.1).
        window: odd size of the max-pooling window (paper: 3).
        eps: added to the denominator (1e-7).

    Returns:
        ``(B, C, H, W)``; an all-zero image stays zero (finite).
    """
    fn = "divisive_norm"
    check_4d(x, "x", fn)
    sigma = check_fraction(sigma, "sigma", fn, closed_low=True, closed_high=True)
    window = check_window(window, fn)
    eps = check_nonneg(eps, "eps", fn)
    a = x.abs()
    if window > 1:
        # max_pool2d pads with -inf, so border windows are clipped to the image.
        a = F.max_pool2d(a, window, stride=1, padding=window // 2)
    s = a.mean(dim=1, keepdim=True)  # (B, 1, H, W)
    S = s.amax(dim=(2, 3), keepdim=True)  # (B, 1, 1, 1)
    return x / (sigma * S + (1.0 - sigma) * s + eps)


# ----------------------------------------------------------------------------- threshold
def fractional_threshold(x: Tensor, *, keep: float = 0.2) -> Tensor:
    r"""Keep about the top ``keep`` fraction of positions of every map (per image and channel).

    With :math:`n = H W` and :math:`k = \lfloor (1 - r)\, n\rfloor` (``r = keep``), let
    :math:`t_{bc}` be the k-th smallest value of map :math:`(b, c)`; then

    .. math::

        y_{bc}(p) = x_{bc}(p)\,[x_{bc}(p) > t_{bc}]

    (with :math:`k = 0` nothing is removed).  At most :math:`n - k \approx r n` values survive
    per map, fewer when values tie with :math:`t` (e.g. the zeros of a sparse ReLU map).  The
    mask is not differentiated (its gradient is zero almost everywhere); kept values pass their
    gradient unchanged.  Uses :func:`torch.kthvalue` (no full sort).

    Args:
        x: ``(B, C, H, W)``.
        keep: the keep ratio r ∈ (0, 1] (paper: 0.2).

    Returns:
        ``(B, C, H, W)``.
    """
    fn = "fractional_threshold"
    check_4d(x, "x", fn)
    keep = check_fraction(keep, "keep", fn, closed_high=True)
    B, C, H, W = x.shape
    n = H * W
    k = int(math.floor((1.0 - keep) * n + 1e-9))
    if k <= 0 or n == 0:
        return x
    flat = x.reshape(B, C, n)
    t = torch.kthvalue(flat.detach(), k, dim=-1, keepdim=True).values  # (B, C, 1)
    mask = flat > t
    return (flat * mask).reshape(B, C, H, W)


# ----------------------------------------------------------------------------- HaH cost
def hebbian_k(channels: int, k_ratio: float) -> int:
    r""":math:`K = \lceil \rho C \rceil`, the number of "winning" channels of the HaH cost.

    A tiny tolerance keeps e.g. ``0.1 · 30`` at 3 despite floating point.
    """
    return max(1, int(math.ceil(k_ratio * channels - 1e-9)))


def hebbian_cost(z: Tensor, *, k_ratio: float = 0.1, demote: float = 0.1, dim: int = 1) -> Tensor:
    r"""The Hebbian/anti-Hebbian (HaH) cost H of a layer's output (Cekic et al., arXiv:2202.13074).

    After a ReLU, at every image and position the C channels are split into the top
    :math:`K = \lceil \rho C\rceil` and the rest:

    .. math::

        T = \frac{1}{K} \sum_{\text{top } K} \mathrm{relu}(z_c), \qquad
        B = \frac{1}{C - K} \sum_{\text{rest}} \mathrm{relu}(z_c), \qquad
        H = \operatorname{mean}_{\text{images, positions}} (T - \lambda B)

    H is the quantity the paper *maximises* (strong winners, weak losers); a loss uses
    :math:`-H` (see :class:`torchtopo.HebbianLoss`).  The top K come from :func:`torch.topk`, the
    rest's sum is the total minus the top sum (no full sort).

    Args:
        z: the layer's output, channels at ``dim``: ``(B, C, H, W)`` for a convolution,
            ``(B, C)`` for a dense layer (then positions = 1).
        k_ratio: ρ ∈ (0, 1) (paper: 0.1); it must leave at least one channel in the rest,
            i.e. :math:`\lceil \rho C\rceil < C`.
        demote: λ ≥ 0, the weight of the rest's mean (paper: 0.1; the released code's 1.0 is
            not the paper's).
        dim: the channel dimension (honoured, unlike the released code's ``dim``).

    Returns:
        a scalar tensor (float32 for half-precision input).
    """
    fn = "hebbian_cost"
    check_tensor(z, "z", fn)
    if z.dim() < 2:
        raise ValueError(f"hebbian_cost: z must be at least 2-D (B, C, ...), got shape {tuple(z.shape)}")
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or not -z.dim() <= dim < z.dim():
        raise ValueError(f"hebbian_cost: dim must be an int in [{-z.dim()}, {z.dim()}), got {dim!r}")
    k_ratio = check_fraction(k_ratio, "k_ratio", fn)
    demote = check_nonneg(demote, "demote", fn)
    if z.numel() == 0:
        raise ValueError(
            f"hebbian_cost: z must hold at least one image and one position (the cost is a mean "
            f"over them), got shape {tuple(z.shape)}"
        )
    C = z.shape[dim]
    K = hebbian_k(C, k_ratio)
    if K >= C:
        raise ValueError(
            f"hebbian_cost: k_ratio={k_ratio} with C={C} channels (dimension {dim} of shape "
            f"{tuple(z.shape)}) gives K=ceil(k_ratio*C)={K} winners and no remaining channels; "
            f"use more channels or a smaller k_ratio (is dim the channel dimension?)"
        )
    if z.dtype in (torch.float16, torch.bfloat16):
        z = z.float()
    a = torch.relu(z)
    top = torch.topk(a, K, dim=dim, largest=True, sorted=False).values.sum(dim)
    rest = a.sum(dim) - top
    return (top / K - demote * rest / (C - K)).mean()


# ----------------------------------------------------------------------------- GDN
def gdn(x: Tensor, beta: Tensor, gamma: Tensor, *, inverse: bool = False) -> Tensor:
    r"""Generalized divisive normalisation (Ballé et al., ICLR 2016).

    .. math::

        y_i = \frac{x_i}{\sqrt{\beta_i + \sum_j \gamma_{ij} x_j^2}}
        \qquad\text{(inverse: } y_i = x_i \sqrt{\beta_i + \textstyle\sum_j \gamma_{ij} x_j^2}\text{)}

    at every position; the sum over j is a 1×1 convolution of :math:`x^2`.  ``beta`` must be
    positive and ``gamma`` non-negative (the module :class:`torchtopo.GDN` guarantees it by its
    re-parameterisation; here it is the caller's job).

    Args:
        x: ``(B, C, H, W)``.
        beta: ``(C,)``.
        gamma: ``(C, C)``, row i weighting the squared channels j for channel i.
        inverse: multiply instead of divide (the decoder's IGDN).

    Returns:
        ``(B, C, H, W)``.
    """
    fn = "gdn"
    check_4d(x, "x", fn)
    check_tensor(beta, "beta", fn)
    check_tensor(gamma, "gamma", fn)
    C = beta.shape[0] if beta.dim() == 1 else None
    if beta.dim() != 1 or gamma.shape != (C, C):
        raise ValueError(
            f"gdn: beta must be (C,) and gamma (C, C), got beta {tuple(beta.shape)} and gamma "
            f"{tuple(gamma.shape)}"
        )
    check_channels(x, C, "x", fn)
    norm = F.conv2d(x * x, gamma.reshape(C, C, 1, 1), beta)
    return x * torch.sqrt(norm) if inverse else x * torch.rsqrt(norm)
