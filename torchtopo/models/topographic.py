"""The CNNs of Truong & Hasson (arXiv:2508.00043)."""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from ..data import CIFAR10_MEAN, CIFAR10_STD, MNIST_MEAN, MNIST_STD
from ..topographic import TopoLinear
from ._registry import NormalizeArg, input_normalize, register_model

__all__ = ["TopoCNN", "mnist_cnn", "cifar_cnn"]


class TopoCNN(nn.Module):
    """``normalize`` → ``features`` → global average pool → ``fc1`` (TopoLinear, 11 × 11) → ReLU
    → Dropout → ``fc2``.

    A forward hook on ``fc1`` sees its *pre-ReLU* output (the ReLU is the separate ``relu``
    module), which is what the Activation-Similarity loss and the analyses read.  ``normalize``
    is an ``nn.Identity`` unless an input normalisation is given.
    """

    def __init__(
        self,
        features: nn.Module,
        feat_dim: int,
        num_classes: int = 10,
        grid=(11, 11),
        dropout: float = 0.5,
        normalize: Optional[nn.Module] = None,
    ):
        super().__init__()
        self.normalize = normalize if normalize is not None else nn.Identity()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = TopoLinear(feat_dim, grid)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(self.fc1.out_features, num_classes)

    def embed(self, x: Tensor) -> Tensor:
        """The globally pooled features fed to ``fc1``."""
        return self.pool(self.features(self.normalize(x))).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.dropout(self.relu(self.fc1(self.embed(x)))))


@register_model()
def mnist_cnn(
    num_classes: int = 10,
    in_channels: int = 1,
    *,
    normalize: NormalizeArg = None,
    grid=(11, 11),
    dropout: float = 0.5,
) -> TopoCNN:
    """The MNIST CNN of Truong & Hasson (arXiv:2508.00043).

    conv3×3(in_channels→32)+ReLU+maxpool2, conv3×3(32→64)+ReLU+maxpool2, GAP → 64, fc1 64 → 121
    (11 × 11), ReLU, Dropout(0.5), fc2 121 → ``num_classes``.  Convolutions use padding 1.

    Args:
        num_classes: outputs of ``fc2``.
        in_channels: image channels (1 for MNIST).
        normalize: None/False: none; True: the MNIST mean/std (repeated over channels); or a
            ``(mean, std)`` pair: a :class:`torchtopo.data.Normalize` applied first, so the model
            takes images in [0, 1].
        grid: of ``fc1``.
        dropout: before ``fc2``.
    """
    norm = input_normalize(normalize, in_channels, (MNIST_MEAN, MNIST_STD), "MNIST", "mnist_cnn")
    features = nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    )
    return TopoCNN(features, 64, num_classes, grid, dropout, norm)


@register_model()
def cifar_cnn(
    num_classes: int = 10,
    in_channels: int = 3,
    *,
    normalize: NormalizeArg = None,
    grid=(11, 11),
    dropout: float = 0.5,
) -> TopoCNN:
    """The CIFAR-10 CNN of Truong & Hasson (arXiv:2508.00043).

    4 × [conv3×3 + BatchNorm + ReLU] with 32, 64, 128, 256 channels, maxpool2 after the first
    three, GAP → 256, fc1 256 → 121 (11 × 11), ReLU, Dropout(0.5), fc2 → ``num_classes``.

    Args:
        num_classes, in_channels, grid, dropout: as in :func:`mnist_cnn`.
        normalize: None/False: none; True: the CIFAR-10 mean/std; or a ``(mean, std)`` pair.
    """
    norm = input_normalize(normalize, in_channels, (CIFAR10_MEAN, CIFAR10_STD), "CIFAR-10", "cifar_cnn")
    layers, c_in = [], in_channels
    for k, c in enumerate((32, 64, 128, 256)):
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
        if k < 3:
            layers.append(nn.MaxPool2d(2))
        c_in = c
    return TopoCNN(nn.Sequential(*layers), 256, num_classes, grid, dropout, norm)
