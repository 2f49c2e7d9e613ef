"""An LGN pre-filter and a convolution with learned lateral connections.

Bertoni, Montobbio, Sarti & Citti, "Emergence of Lie symmetries in functional architectures
learned by CNNs" (Front. Comput. Neurosci. 2021), after LGN-CNN (Bertoni, Citti & Sarti, Neural
Networks 2022): a single learned filter ℓ0 in front of the first layer becomes a Laplacian of
Gaussian when the network is trained on natural images; the first-layer filters ℓ1 become
Gabor-like; a learned lateral kernel over (channel, space) becomes orientation-selective.
"""
from __future__ import annotations

from typing import List, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import check_4d, check_channels, check_choice, check_int, check_real

__all__ = ["LGNFilter", "LateralConv2d"]

_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma weights


def _check_input(x: Tensor, channels: int, who: str) -> Tensor:
    check_4d(x, "input", who)
    return check_channels(x, channels, "input", who)


class LGNFilter(nn.Module):
    r"""ℓ0 of LGN-CNN: one learned 2-D filter, same-size output.

    .. math::

        y_c = \ell_0 \star x_c \quad (\text{mode} = \text{"shared"}), \qquad
        y = \ell_0 \star \textstyle\sum_c w_c x_c \quad (\text{mode} = \text{"luminance"})

    with :math:`\star` the cross-correlation of :func:`torch.nn.functional.conv2d`, zero padding
    ``kernel_size // 2`` (or ``padding_mode``), no bias.

    **Choice of colour handling (documented, the study does not say):** the default
    ``mode="shared"`` applies the *same* filter to every input channel independently, so the
    layer is a drop-in in front of any model (``out_channels == in_channels``) and the colour
    information reaches ℓ1 untouched, as an LGN made of identical centre-surround cells per cone
    channel would.  ``mode="luminance"`` first takes the luminance (BT.601 weights
    0.299/0.587/0.114 for 3 channels, the channel mean otherwise) and returns one channel.

    The study observes that ℓ0 *becomes* radially symmetric (a Laplacian of Gaussian); nothing
    imposes it by default.  ``radial=True`` parameterises the filter by one value per distinct
    squared radius :math:`r^2 = i^2 + j^2` around the centre, which makes it exactly invariant to
    the 8 symmetries of the square grid (a constraint for ablations, off by default).

    Initialisation: like ``nn.Conv2d``, uniform in :math:`\pm 1/k` (no centre-surround prior).

    Args:
        in_channels: number of input channels C.
        kernel_size: odd side k of the filter (7 in LGN-CNN's CIFAR-10 setting is a common
            choice; **unconfirmed**).
        mode: ``"shared"`` or ``"luminance"`` (see above).
        radial: constrain the filter to radial symmetry.
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.

    Shape:
        input (B, C, H, W) → output (B, C, H, W) (``"shared"``) or (B, 1, H, W) (``"luminance"``).

    Attributes:
        out_channels: C or 1.
    """

    def __init__(
        self,
        in_channels: int,
        kernel_size: int,
        *,
        mode: str = "shared",
        radial: bool = False,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        where = "LGNFilter"
        self.in_channels = check_int(in_channels, "in_channels", where, minimum=1)
        self.kernel_size = check_int(kernel_size, "kernel_size", where, minimum=1, odd=True)
        check_choice(mode, ("shared", "luminance"), "mode", where)
        check_choice(padding_mode, ("zeros", "reflect", "replicate", "circular"), "padding_mode", where)
        self.mode = mode
        self.radial = bool(radial)
        self.padding_mode = padding_mode
        self.out_channels = in_channels if mode == "shared" else 1
        k = kernel_size
        bound = 1.0 / k
        if self.radial:
            c = k // 2
            ii, jj = torch.meshgrid(torch.arange(k) - c, torch.arange(k) - c, indexing="ij")
            r2 = ii**2 + jj**2
            values, index = torch.unique(r2.flatten(), return_inverse=True)
            self.register_buffer("radius_index", index.reshape(k, k), persistent=False)
            self.radial_profile = nn.Parameter(torch.empty(values.numel()).uniform_(-bound, bound))
        else:
            self.weight = nn.Parameter(torch.empty(k, k).uniform_(-bound, bound))
        if mode == "luminance":
            w = torch.tensor(_LUMA) if in_channels == 3 else torch.full((in_channels,), 1.0 / in_channels)
            self.register_buffer("luma", w.reshape(1, -1, 1, 1), persistent=False)

    @property
    def filter(self) -> Tensor:
        """The (k, k) filter ℓ0."""
        if self.radial:
            return self.radial_profile[self.radius_index]
        return self.weight

    def forward(self, x: Tensor) -> Tensor:
        _check_input(x, self.in_channels, "LGNFilter")
        if self.mode == "luminance":
            x = (x * self.luma.to(x.dtype)).sum(1, keepdim=True)
        b, c, h, w = x.shape
        p = self.kernel_size // 2
        z = x.reshape(b * c, 1, h, w)
        kern = self.filter.to(x.dtype).reshape(1, 1, self.kernel_size, self.kernel_size)
        if self.padding_mode == "zeros":
            y = F.conv2d(z, kern, padding=p)
        else:
            y = F.conv2d(F.pad(z, (p, p, p, p), mode=self.padding_mode), kern)
        return y.reshape(b, c, h, w)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, kernel_size={self.kernel_size}, mode={self.mode!r}, "
            f"radial={self.radial}, padding_mode={self.padding_mode!r}"
        )


_UPDATES = ("recurrent", "euler", "diffusion")


class LateralConv2d(nn.Module):
    r"""ℓ1 of LGN-CNN: a convolution followed by ``steps`` rounds of learned lateral propagation.

    .. math::

        h_0 = \mathrm{ReLU}(W \star x + b), \qquad
        h_{t+1} = \begin{cases}
        \mathrm{ReLU}(h_0 + K \star h_t) & \text{update} = \text{"recurrent"} \\
        \mathrm{ReLU}\big((1-\eta)\,h_t + \eta\,(h_0 + K \star h_t)\big) & \text{update} = \text{"euler"} \\
        \mathrm{ReLU}(h_t + \eta\, K \star h_t) & \text{update} = \text{"diffusion"}
        \end{cases}

    for :math:`t = 0 \dots T-1`, output :math:`h_T`.  :math:`K` (``lateral_weight``, shape
    (C_out, C_out, L, L)) connects every channel to every channel over an L × L neighbourhood:
    ``(K ⋆ h)_i(p) = Σ_j Σ_u K[i, j, u] h_j(p + u − L//2)``, i.e. ``K[i, j]`` is the connection
    *from* channel j *to* channel i.  Each step is one ``conv2d`` (out → out channels).

    With :math:`K = 0` all three forms return :math:`h_0 = \mathrm{ReLU}(W \star x + b)`, and so
    does ``steps=0``.  ``"euler"`` is an explicit Euler step, rate :math:`\eta`, of
    :math:`\dot h = -h + h_0 + K \star h` (``rate=1`` is ``"recurrent"``); ``"diffusion"`` is the
    KerCNN form (the lateral kernel applied as a diffusion to post-ReLU activations).

    **Unconfirmed (Bertoni et al. 2021):** the exact update rule, the number of steps T and the kernel
    sizes are not given in the paper; ``"recurrent"`` is the documented faithful default, the
    other forms and all sizes are options.  Also a choice of this implementation: ``K`` starts at
    zero (``lateral_init="zeros"``) so that whatever structure it has after training was learned,
    not seeded; ``lateral_init="normal"`` draws N(0, s²) entries, s = ``lateral_std``, instead.

    Args:
        in_channels: input channels.
        out_channels: number of filters C_out (the channels K connects).
        kernel_size: odd side of the feed-forward filters W (padding ``kernel_size // 2``).
        lateral_kernel_size: odd side L of K.
        steps: T ≥ 0 propagation steps.
        update: ``"recurrent"``, ``"euler"`` or ``"diffusion"``.
        rate: η of ``"euler"`` and ``"diffusion"``, in (0, 1] for ``"euler"``.
        stride: stride of the feed-forward convolution (the lateral steps keep the size).
        bias: bias of the feed-forward convolution.
        lateral_init: ``"zeros"`` or ``"normal"``.
        lateral_std: standard deviation of the ``"normal"`` init.

    Shape:
        input (B, C_in, H, W) → output (B, C_out, H', W'), H' = ⌊(H − 1)/stride⌋ + 1.

    Attributes:
        conv: the feed-forward ``nn.Conv2d`` (its ``weight`` are the ℓ1 filters).
        lateral_weight: K, (C_out, C_out, L, L).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        lateral_kernel_size: int,
        steps: int,
        update: str = "recurrent",
        rate: float = 0.5,
        stride: int = 1,
        bias: bool = True,
        lateral_init: str = "zeros",
        lateral_std: float = 0.01,
    ) -> None:
        super().__init__()
        where = "LateralConv2d"
        self.in_channels = check_int(in_channels, "in_channels", where, minimum=1)
        self.out_channels = check_int(out_channels, "out_channels", where, minimum=1)
        self.kernel_size = check_int(kernel_size, "kernel_size", where, minimum=1, odd=True)
        self.lateral_kernel_size = check_int(lateral_kernel_size, "lateral_kernel_size", where, minimum=1, odd=True)
        self.steps = check_int(steps, "steps", where, minimum=0)
        self.stride = check_int(stride, "stride", where, minimum=1)
        check_choice(update, _UPDATES, "update", where)
        rate = check_real(rate, "rate", where)
        if update == "euler" and not 0.0 < rate <= 1.0:
            raise ValueError(f"{where}: rate must be in (0, 1] for update='euler', got {rate}")
        if update == "diffusion" and rate <= 0.0:
            raise ValueError(f"{where}: rate must be > 0 for update='diffusion', got {rate}")
        check_choice(lateral_init, ("zeros", "normal"), "lateral_init", where)
        self.update = update
        self.rate = float(rate)
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=bias
        )
        lk = lateral_kernel_size
        k = torch.zeros(out_channels, out_channels, lk, lk)
        if lateral_init == "normal":
            k.normal_(0.0, float(lateral_std))
        self.lateral_weight = nn.Parameter(k)

    def _step(self, h0: Tensor, h: Tensor) -> Tensor:
        kh = F.conv2d(h, self.lateral_weight.to(h.dtype), padding=self.lateral_kernel_size // 2)
        if self.update == "recurrent":
            return F.relu(h0 + kh)
        if self.update == "euler":
            return F.relu((1.0 - self.rate) * h + self.rate * (h0 + kh))
        return F.relu(h + self.rate * kh)

    def forward(self, x: Tensor, *, return_states: bool = False) -> Union[Tensor, Tuple[Tensor, List[Tensor]]]:
        """Propagate; with ``return_states=True`` also return ``[h_0, …, h_T]``."""
        _check_input(x, self.in_channels, "LateralConv2d")
        h0 = F.relu(self.conv(x))
        h = h0
        states = [h0] if return_states else None
        for _ in range(self.steps):  # one conv2d per step over all channels and positions
            h = self._step(h0, h)
            if states is not None:
                states.append(h)
        if return_states:
            return h, states
        return h

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"lateral_kernel_size={self.lateral_kernel_size}, steps={self.steps}, update={self.update!r}, "
            f"rate={self.rate}, stride={self.stride}"
        )
