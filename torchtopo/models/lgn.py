"""LGN-CNN: an LGN filter, a first layer with learned lateral connections, a small classifier
(Bertoni et al., Front. Comput. Neurosci. 2021)."""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from ..data import MNIST_MEAN, MNIST_STD
from ..lgn import LateralConv2d, LGNFilter
from ._registry import NormalizeArg, input_normalize, register_model

__all__ = ["LGNCNN", "lgn_cnn"]


class LGNCNN(nn.Module):
    """``norm`` → ``lgn`` (ℓ0) → ``v1`` (ℓ1, :class:`~torchtopo.LateralConv2d`) → ``classifier``.

    The submodule names are what the analyses read: ``model.lgn.filter`` is ℓ0,
    ``model.v1.conv.weight`` the ℓ1 filters, ``model.v1.lateral_weight`` the lateral kernel K.
    """

    def __init__(self, lgn: LGNFilter, v1: LateralConv2d, classifier: nn.Module, norm: Optional[nn.Module] = None):
        super().__init__()
        self.norm = norm if norm is not None else nn.Identity()
        self.lgn = lgn
        self.v1 = v1
        self.classifier = classifier

    def features(self, x: Tensor) -> Tensor:
        """The ℓ1 output h_T, (B, C1, H, W)."""
        return self.v1(self.lgn(self.norm(x)))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


@register_model()
def lgn_cnn(
    num_classes: int = 10,
    in_channels: int = 1,
    *,
    normalize: NormalizeArg = None,
    lgn_kernel_size: int = 7,
    lgn_mode: str = "shared",
    channels: int = 32,
    kernel_size: int = 7,
    lateral_kernel_size: int = 5,
    steps: int = 3,
    update: str = "recurrent",
    rate: float = 0.5,
    hidden: int = 64,
    dropout: float = 0.0,
) -> LGNCNN:
    """The LGN-CNN of Bertoni et al.: ℓ0 → ℓ1 with lateral connections → classifier.

    Architecture::

        [Normalize(mean, std)]                       if normalize
        LGNFilter(in_channels, lgn_kernel_size)      ℓ0, one filter, same size
        LateralConv2d(C0, channels, kernel_size,     ℓ1: h0 = ReLU(conv(x)),
                      lateral_kernel_size, steps)        h_{t+1} = ReLU(h0 + K ⋆ h_t)
        MaxPool2d(2)
        Conv2d(channels, hidden, 3, padding=1) + BatchNorm2d + ReLU
        MaxPool2d(2)
        global average pool → Dropout(dropout) → Linear(hidden, num_classes)

    **Unconfirmed choices:** the paper confirms ℓ0 (one filter) and ℓ1 (filters
    with a lateral kernel over channel × space); the kernel sizes (7, 7, 5), the 32 ℓ1 filters,
    T = 3 recurrent steps, and the classifier after ℓ1 (one 3 × 3 conv block, pooling, a linear
    read-out) are this library's choices, kept small so that the emergence example trains on a
    CPU.  ℓ1 uses large (7 × 7) filters so that Gabor fits are meaningful; no BatchNorm sits
    between ℓ0 and ℓ1, so ℓ0's shape is not undone by a per-channel rescaling.

    Args:
        num_classes: classifier outputs.
        in_channels: image channels (1 for MNIST / grey patches, 3 for CIFAR-10).
        lgn_kernel_size, lgn_mode: of :class:`~torchtopo.LGNFilter`.
        channels, kernel_size, lateral_kernel_size, steps, update, rate: of
            :class:`~torchtopo.LateralConv2d`.
        hidden: channels of the classifier's conv block.
        dropout: before the linear read-out.
        normalize: None/False (the default): none; True: the MNIST mean/std (repeated over
            channels); or a ``(mean, std)`` pair: a :class:`torchtopo.data.Normalize` first layer,
            so the model takes images in [0, 1].

    Returns:
        an :class:`LGNCNN`; input (B, in_channels, H, W), H, W ≥ 4, output (B, num_classes).
    """
    norm = input_normalize(normalize, in_channels, (MNIST_MEAN, MNIST_STD), "MNIST", "lgn_cnn")
    lgn = LGNFilter(in_channels, lgn_kernel_size, mode=lgn_mode)
    v1 = LateralConv2d(
        lgn.out_channels, channels, kernel_size,
        lateral_kernel_size=lateral_kernel_size, steps=steps, update=update, rate=rate,
    )
    classifier = nn.Sequential(
        nn.MaxPool2d(2),
        nn.Conv2d(channels, hidden, 3, padding=1),
        nn.BatchNorm2d(hidden),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(hidden, num_classes),
    )
    return LGNCNN(lgn, v1, classifier, norm)
