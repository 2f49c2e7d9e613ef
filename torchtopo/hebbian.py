r"""Sparse, strong activations: the HaH block, its Hebbian/anti-Hebbian cost, and GDN.

Cekic, Bakiskan & Madhow, "Neuro-inspired deep neural networks with sparse, strong activations"
(ICIP 2022, arXiv:2202.13074).  In a few lines::

    model = tt.to_hah(torchvision.models.vgg16_bn(num_classes=10), n_blocks=6)
    reg = tt.attach(model, tt.hebbian_terms(model, tt.PAPER_HEBBIAN_STRENGTHS))
    loss = F.cross_entropy(model(x), y) + reg.penalty()   # penalty() = -Σ α_l H_l

Defaults are the paper's (demote λ = 0.1, σ = 0.1, keep r = 0.2, ρ = 0.1), not the released
package's (1.0, 1.0, 0.1), whose defaults differ from the paper.  :class:`GDN` is the
generalized divisive normalisation of Ballé, Laparra & Simoncelli (ICLR 2016).
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ._checks import (
    check_4d,
    check_bool,
    check_channels,
    check_fraction,
    check_int,
    check_nonneg,
    check_positive,
    check_window,
)
from ._parametrize import NonNegative
from .functional.hebbian import (
    divisive_norm,
    fractional_threshold,
    gdn,
    hebbian_cost,
    hebbian_k,
    normalized_weight,
)
from .regularizer import Strength, Term, describe_module

__all__ = [
    "NormalizedConv2d",
    "DivisiveNorm",
    "FractionalThreshold",
    "GDN",
    "HaHActivation",
    "HaHBlock",
    "HebbianLoss",
    "to_hah",
    "hah_layer_names",
    "hebbian_terms",
    "PAPER_HEBBIAN_STRENGTHS",
]

#: α of the HaH cost on the first six VGG16 conv layers in Cekic et al. (arXiv:2202.13074).
PAPER_HEBBIAN_STRENGTHS: Tuple[float, ...] = (0.0045, 0.0025, 0.0013, 0.001, 0.0008, 0.0005)


# ----------------------------------------------------------------------------- layers
class NormalizedConv2d(nn.Conv2d):
    r"""A drop-in :class:`torch.nn.Conv2d` with implicitly ℓ2-normalised filters (HaH step 1).

    .. math::

        z_c(p) = \frac{\langle w_c, x_p\rangle}{\lVert w_c\rVert_2 + \epsilon} \;(+\, b_c)

    the norm over in-channels × kernel, ε = 1e-6.  The stored ``weight`` is unconstrained;
    gradients flow through the division, so the output is invariant to rescaling a filter.
    Same constructor as ``nn.Conv2d`` (every ``padding_mode`` works), except that ``bias``
    defaults to False, as in the paper.  Study: Cekic et al., arXiv:2202.13074.

    Shapes: ``(B, C_in, H, W)`` → ``(B, C_out, H', W')`` as ``nn.Conv2d``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = False,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
        *,
        eps: float = 1e-6,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode, device=device, dtype=dtype,
        )
        self.eps = check_nonneg(eps, "eps", "NormalizedConv2d")

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, *, bias: Optional[bool] = None) -> "NormalizedConv2d":
        """A NormalizedConv2d with ``conv``'s hyper-parameters and weights (copied).

        Args:
            conv: an ``nn.Conv2d``.
            bias: keep a bias (copied when ``conv`` has one); default: drop it (the paper's
                block has none: the threshold and the normalisation make it redundant).
        """
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"NormalizedConv2d.from_conv: expected an nn.Conv2d, got {type(conv).__name__}")
        keep_bias = False if bias is None else bool(bias)
        new = cls(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
            conv.dilation, conv.groups, keep_bias, conv.padding_mode,
            device=conv.weight.device, dtype=conv.weight.dtype,
        )
        with torch.no_grad():
            new.weight.copy_(conv.weight)
            if keep_bias and conv.bias is not None:
                new.bias.copy_(conv.bias)
            elif keep_bias:
                new.bias.zero_()
        return new

    def normalized_weight(self) -> Tensor:
        """The effective filters :math:`w_c / (\\lVert w_c\\rVert_2 + \\epsilon)`."""
        return normalized_weight(self.weight, self.eps)

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        return super()._conv_forward(input, normalized_weight(weight, self.eps), bias)

    def forward(self, input: Tensor) -> Tensor:
        if isinstance(input, Tensor) and input.dim() == 3:  # unbatched (C, H, W), as nn.Conv2d
            return super().forward(input.unsqueeze(0)).squeeze(0)
        check_4d(input, "input", "NormalizedConv2d")
        check_channels(input, self.in_channels, "input", "NormalizedConv2d")
        return super().forward(input)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", eps={self.eps}"


class DivisiveNorm(nn.Module):
    r"""The HaH divisive normalisation (Cekic et al., arXiv:2202.13074); no parameters.

    .. math::

        s(p) = \frac{1}{C}\sum_c \max_{q \in N(p)} |a_c(q)|,\quad S = \max_p s(p),\quad
        y_c(p) = \frac{a_c(p)}{\sigma S + (1-\sigma) s(p) + \epsilon}

    See :func:`torchtopo.functional.divisive_norm`.  Shapes: ``(B, C, H, W)`` → same.

    Args:
        sigma: σ ∈ [0, 1] (paper 0.1).
        window: odd neighbourhood size (paper 3).
        eps: 1e-7.
    """

    def __init__(self, sigma: float = 0.1, window: int = 3, eps: float = 1e-7) -> None:
        super().__init__()
        self.sigma = check_fraction(sigma, "sigma", "DivisiveNorm", closed_low=True, closed_high=True)
        self.window = check_window(window, "DivisiveNorm")
        self.eps = check_nonneg(eps, "eps", "DivisiveNorm")

    def forward(self, x: Tensor) -> Tensor:
        return divisive_norm(x, sigma=self.sigma, window=self.window, eps=self.eps)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, window={self.window}, eps={self.eps}"


class FractionalThreshold(nn.Module):
    r"""Keep the top ``keep`` fraction of positions of each map (HaH step 4; no parameters).

    Per image and channel, values above the k-th smallest survive,
    :math:`k = \lfloor (1 - r) H W\rfloor`; see :func:`torchtopo.functional.fractional_threshold`.
    Shapes: ``(B, C, H, W)`` → same.  Study: Cekic et al., arXiv:2202.13074.

    Args:
        keep: r ∈ (0, 1] (paper 0.2; the released package's 0.1 is not the paper's).
    """

    def __init__(self, keep: float = 0.2) -> None:
        super().__init__()
        self.keep = check_fraction(keep, "keep", "FractionalThreshold", closed_high=True)

    def forward(self, x: Tensor) -> Tensor:
        return fractional_threshold(x, keep=self.keep)

    def extra_repr(self) -> str:
        return f"keep={self.keep}"


class GDN(nn.Module):
    r"""Generalized divisive normalisation (Ballé et al., ICLR 2016), or its inverse.

    .. math::

        y_i = \frac{x_i}{\sqrt{\beta_i + \sum_j \gamma_{ij} x_j^2}}
        \qquad (\text{inverse: } y_i = x_i\sqrt{\beta_i + \textstyle\sum_j\gamma_{ij}x_j^2})

    Non-negative re-parameterisation: the stored parameters are
    :math:`\tilde\beta = \sqrt{\beta + p}` and :math:`\tilde\gamma = \sqrt{\gamma + p}`
    (pedestal :math:`p = 2^{-36}`); the effective values are
    :math:`\max(\tilde\theta, \sqrt{m + p})^2 - p`, so β ≥ ``beta_min`` and γ ≥ 0 always (the
    lower bound lets gradients that push upwards through).  β starts at 1 and γ at
    ``gamma_init`` · I, so at initialisation :math:`y = x/\sqrt{1 + 0.1 x^2}` elementwise.

    Shapes: ``(B, C, H, W)`` → same.

    ``load_state_dict`` also takes CompressAI's ``GDN`` state dicts (Bégaint et al.,
    arXiv:2011.03029): ``beta``, ``gamma`` (stored as here) and their buffers
    ``*_reparam.pedestal``, ``*_reparam.lower_bound.bound``; the effective values
    :math:`\max(\tilde\theta, \text{bound})^2 - \text{pedestal}` are re-encoded with this module's.

    Args:
        channels: C.
        inverse: multiply instead of divide (IGDN).
        beta_min: lower bound of β (1e-6).
        gamma_init: diagonal of γ at initialisation (0.1).
    """

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1) -> None:
        super().__init__()
        self.channels = check_int(channels, "channels", "GDN", minimum=1)
        self.inverse = bool(inverse)
        self.beta_min = check_positive(beta_min, "beta_min", "GDN")
        gamma_init = check_nonneg(gamma_init, "gamma_init", "GDN")
        self._beta_reparam = NonNegative(self.beta_min)
        self._gamma_reparam = NonNegative(0.0)
        self.beta_param = nn.Parameter(self._beta_reparam.init(torch.ones(self.channels)))
        self.gamma_param = nn.Parameter(self._gamma_reparam.init(gamma_init * torch.eye(self.channels)))

    @property
    def beta(self) -> Tensor:
        """Effective β (C,), ≥ ``beta_min``."""
        return self._beta_reparam(self.beta_param)

    @property
    def gamma(self) -> Tensor:
        """Effective γ (C, C), ≥ 0."""
        return self._gamma_reparam(self.gamma_param)

    def forward(self, x: Tensor) -> Tensor:
        check_4d(x, "x", "GDN")
        check_channels(x, self.channels, "x", "GDN")
        return gdn(x, self.beta, self.gamma, inverse=self.inverse)

    def extra_repr(self) -> str:
        return f"{self.channels}, inverse={self.inverse}"

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        for name, rp in (("beta", self._beta_reparam), ("gamma", self._gamma_reparam)):  # CompressAI's names
            if prefix + name in state_dict and prefix + name + "_param" not in state_dict:
                stored = state_dict.pop(prefix + name)
                ped, bound = (state_dict.pop(prefix + name + k, None) for k in ("_reparam.pedestal", "_reparam.lower_bound.bound"))
                ped = rp.pedestal if ped is None else float(ped.reshape(-1)[0])
                bound = rp.bound if bound is None else float(bound.reshape(-1)[0])
                if isinstance(stored, Tensor):
                    stored = rp.init((stored.clamp_min(bound) ** 2 - ped).clamp_min(0.0))
                state_dict[prefix + name + "_param"] = stored
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)


class HaHActivation(nn.Sequential):
    """ReLU → :class:`DivisiveNorm` → :class:`FractionalThreshold`: what follows the
    normalised convolution in a HaH block (submodules ``relu``, ``norm``, ``threshold``)."""

    def __init__(self, sigma: float = 0.1, keep: float = 0.2, window: int = 3) -> None:
        super().__init__()
        self.add_module("relu", nn.ReLU())
        self.add_module("norm", DivisiveNorm(sigma, window))
        self.add_module("threshold", FractionalThreshold(keep))


class HaHBlock(nn.Module):
    r"""The HaH block of Cekic et al. (arXiv:2202.13074), replacing conv → BatchNorm → ReLU:

    ``conv`` (:class:`NormalizedConv2d`, no bias) → ReLU → :class:`DivisiveNorm` (σ) →
    :class:`FractionalThreshold` (keep).  Attach :class:`HebbianLoss` to ``block.conv``.

    Shapes: ``(B, C_in, H, W)`` → ``(B, C_out, H', W')``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size=3,
        stride=1,
        padding=1,
        *,
        sigma: float = 0.1,
        keep: float = 0.2,
        window: int = 3,
    ) -> None:
        super().__init__()
        self.conv = NormalizedConv2d(in_channels, out_channels, kernel_size, stride, padding)
        self.act = HaHActivation(sigma, keep, window)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv(x))


# ----------------------------------------------------------------------------- the term
class HebbianLoss(Term):
    r"""The Hebbian/anti-Hebbian term (Cekic et al., arXiv:2202.13074) for :func:`torchtopo.attach`.

    Attach it to a convolution (``nn.Conv2d`` or :class:`NormalizedConv2d`; in a HaH block the
    block's ``conv``).  Its loss is :math:`-H(z)`, ``z`` the layer's output and H
    :func:`torchtopo.functional.hebbian_cost` (ReLU, then mean over images and positions of the
    top-K channel mean minus ``demote`` × the rest's mean, :math:`K = \lceil \rho C\rceil`), so
    minimising ``task_loss + reg.penalty()`` maximises :math:`\sum_l \alpha_l H_l`, the paper's
    objective :math:`\mathrm{CE} - \sum_l \alpha_l H_l`.

    ``local=True`` (the authors' training): the term's gradient reaches only this layer's own
    parameters: the layer is recomputed inside the loss on its captured input, *detached*
    (one extra forward of that layer, under the autocast state the layer's forward ran under,
    calling its ``forward`` directly so that no forward hook, e.g. another regularizer's
    capture, sees it).  ``local=False``: plain end-to-end gradient through the
    captured output, reaching every earlier layer too.

    Args:
        strength: α (a number or a callable of the step); the paper's per-layer values are
            :data:`PAPER_HEBBIAN_STRENGTHS`.
        k_ratio: ρ ∈ (0, 1) (paper 0.1).
        demote: λ ≥ 0 (paper 0.1).
        local: layer-local gradient (default) or end to end.
    """

    def __init__(self, strength: Strength = 1.0, k_ratio: float = 0.1, demote: float = 0.1, local: bool = True) -> None:
        super().__init__(strength)
        self.k_ratio = check_fraction(k_ratio, "k_ratio", "HebbianLoss")
        self.demote = check_nonneg(demote, "demote", "HebbianLoss")
        self.local = check_bool(local, "local", "HebbianLoss")
        self.needs_input = local
        self.needs_output = not local
        self.recomputes = local
        self._channels: Optional[int] = None
        self._name = "?"

    def bind(self, name: str, module: nn.Module) -> None:
        if not isinstance(module, nn.Conv2d):
            raise TypeError(
                f"HebbianLoss on {describe_module(name, module)}: the layer must be a 2-D "
                f"convolution (nn.Conv2d or tt.NormalizedConv2d), whose output channels are the "
                f"competing units; in a tt.HaHBlock attach it to the block's '.conv'"
            )
        C = module.out_channels
        K = hebbian_k(C, self.k_ratio)
        if K >= C:
            raise ValueError(
                f"HebbianLoss on {describe_module(name, module)}: k_ratio={self.k_ratio} with "
                f"{C} output channels leaves no channel outside the top K={K}; use a smaller k_ratio"
            )
        self._channels = C
        self._name = name

    def _check(self, z: Any, what: str) -> Tensor:
        if not isinstance(z, Tensor):
            raise TypeError(f"HebbianLoss on {self._name!r}: the layer's {what} must be a tensor, got {type(z).__name__}")
        if z.dim() != 4:
            raise ValueError(
                f"HebbianLoss on {self._name!r}: the convolution's {what} must be 4-D channels-first "
                f"(B, C, H, W), got shape {tuple(z.shape)} ({z.dim()}-D)"
            )
        return z

    def loss(self, module: nn.Module, inputs: Optional[Tuple[Any, ...]], output: Any) -> Tensor:
        if self.local:
            if not inputs:
                raise ValueError(f"HebbianLoss on {self._name!r}: no captured input to recompute the layer on")
            x = self._check(inputs[0], "input")
            z = module.forward(x.detach())  # .forward: no other hook sees the recomputation
        else:
            z = self._check(output, "output")
        check_channels(z, self._channels, "output", f"HebbianLoss on {self._name!r}")
        return -hebbian_cost(z, k_ratio=self.k_ratio, demote=self.demote)

    def options(self) -> Dict[str, Any]:
        return {"k_ratio": self.k_ratio, "demote": self.demote, "local": self.local}


# ----------------------------------------------------------------------------- conversion
def _default_skip(name: str, conv: nn.Conv2d) -> bool:
    return any(part in ("downsample", "shortcut") for part in name.split("."))


def to_hah(
    model: nn.Module,
    n_blocks: int,
    *,
    sigma: float = 0.1,
    keep: float = 0.2,
    window: int = 3,
    skip: Optional[Callable[[str, nn.Conv2d], bool]] = None,
) -> nn.Module:
    """Turn the first ``n_blocks`` conv blocks of a VGG/ResNet-style model into HaH blocks, in
    place (Cekic et al., arXiv:2202.13074).

    Convolutions are visited in registration order (``model.named_modules()``), skipping
    residual projections (modules under ``downsample`` / ``shortcut``; change with ``skip``).
    For each one:

    * the ``nn.Conv2d`` becomes a :class:`NormalizedConv2d` with the same weights and no bias;
    * the next sibling that is a ``BatchNorm2d`` (conv → BN → ReLU, as in VGG-BN and ResNet) or,
      without one, a ``ReLU`` (conv → ReLU, plain VGG) becomes a :class:`HaHActivation`
      (ReLU → DivisiveNorm → FractionalThreshold).  A ReLU after it is then harmless (its input
      is already non-negative).  In a ResNet basic block this puts the HaH activation before the
      residual addition.

    Args:
        model: the model (modified and returned).
        n_blocks: how many convolutions to convert (≥ 1); all of them must exist.
        sigma, keep, window: of :class:`DivisiveNorm` and :class:`FractionalThreshold`.
        skip: ``skip(name, conv) -> bool``, convolutions not to count.

    Returns:
        ``model``; :func:`hah_layer_names` lists the converted convolutions for
        :func:`hebbian_terms`.

    Raises:
        ValueError: fewer than ``n_blocks`` convertible convolutions, or one of them has no
            BatchNorm2d/ReLU sibling after it.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"to_hah: model must be an nn.Module, got {type(model).__name__}")
    n_blocks = check_int(n_blocks, "n_blocks", "to_hah", minimum=1)
    skip = _default_skip if skip is None else skip
    convs = [
        (n, m) for n, m in model.named_modules()
        if type(m) is nn.Conv2d and not skip(n, m)
    ]
    if len(convs) < n_blocks:
        raise ValueError(
            f"to_hah: n_blocks={n_blocks} but the model ({type(model).__name__}) has only "
            f"{len(convs)} convertible nn.Conv2d layers: {[n for n, _ in convs]}"
        )
    modules = dict(model.named_modules())
    plan = []
    for name, conv in convs[:n_blocks]:
        parent_name, _, attr = name.rpartition(".")
        parent = modules[parent_name] if parent_name else model
        children = list(parent.named_children())
        idx = [c for c, _ in children].index(attr)
        target = None
        for cname, child in children[idx + 1:]:
            if isinstance(child, (nn.BatchNorm2d, nn.ReLU)):
                target = cname
                break
            if isinstance(child, nn.Conv2d):
                break
        if target is None:
            raise ValueError(
                f"to_hah: {describe_module(name, conv)} has no BatchNorm2d or ReLU registered after "
                f"it in {type(parent).__name__} {parent_name or '(the model)'!r}; convert it by hand "
                f"with tt.HaHBlock / tt.NormalizedConv2d + tt.HaHActivation"
            )
        plan.append((parent, attr, conv, target))
    for parent, attr, conv, target in plan:
        setattr(parent, attr, NormalizedConv2d.from_conv(conv))
        setattr(parent, target, HaHActivation(sigma, keep, window))
    return model


def hah_layer_names(model: nn.Module) -> List[str]:
    """Names of the :class:`NormalizedConv2d` layers of ``model``, in registration order."""
    return [n for n, m in model.named_modules() if isinstance(m, NormalizedConv2d)]


def hebbian_terms(
    model: nn.Module,
    strengths: Union[float, Sequence[float]] = PAPER_HEBBIAN_STRENGTHS,
    *,
    k_ratio: float = 0.1,
    demote: float = 0.1,
    local: bool = True,
) -> Dict[str, HebbianLoss]:
    """``{name: HebbianLoss}`` for :func:`torchtopo.attach`, one per HaH convolution.

    Args:
        model: a model with :class:`NormalizedConv2d` layers (from :func:`to_hah`,
            :class:`HaHBlock` or :func:`torchtopo.models.vgg16_hah`).
        strengths: one α for all, or one per layer in order (the paper's six values by
            default; a shorter list covers the first layers only, a longer one is an error).
        k_ratio, demote, local: see :class:`HebbianLoss`.
    """
    names = hah_layer_names(model)
    if not names:
        raise ValueError(f"hebbian_terms: the model ({type(model).__name__}) has no tt.NormalizedConv2d layer")
    if isinstance(strengths, numbers.Real):
        strengths = [float(strengths)] * len(names)
    strengths = list(strengths)
    if len(strengths) > len(names):
        raise ValueError(
            f"hebbian_terms: {len(strengths)} strengths for {len(names)} HaH layers {names}"
        )
    return {n: HebbianLoss(s, k_ratio=k_ratio, demote=demote, local=local) for n, s in zip(names, strengths)}
