"""The CNNs of Truong & Hasson (arXiv:2508.00043)."""
from __future__ import annotations

from torch import Tensor, nn

from ..topo import TopoLinear

__all__ = ["TopoCNN", "mnist_cnn", "cifar_cnn"]


class TopoCNN(nn.Module):
    """features → global average pool → ``fc1`` (TopoLinear, 11 × 11) → ReLU → Dropout → ``fc2``.

    A forward hook on ``fc1`` sees its *pre-ReLU* output (the ReLU is the separate ``relu``
    module), which is what the Activation-Similarity loss and the analyses read.
    """

    def __init__(self, features: nn.Module, feat_dim: int, num_classes: int = 10, grid=(11, 11), dropout: float = 0.5):
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = TopoLinear(feat_dim, grid)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(self.fc1.out_features, num_classes)

    def embed(self, x: Tensor) -> Tensor:
        """The globally pooled features fed to ``fc1``."""
        return self.pool(self.features(x)).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.dropout(self.relu(self.fc1(self.embed(x)))))


def mnist_cnn(num_classes: int = 10, *, grid=(11, 11), dropout: float = 0.5) -> TopoCNN:
    """MNIST CNN: conv3×3(1→32)+ReLU+maxpool2, conv3×3(32→64)+ReLU+maxpool2, GAP → 64,
    fc1 64 → 121 (11 × 11), ReLU, Dropout(0.5), fc2 121 → 10.  Convolutions use padding 1."""
    features = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    )
    return TopoCNN(features, 64, num_classes, grid, dropout)


def cifar_cnn(num_classes: int = 10, *, grid=(11, 11), dropout: float = 0.5, in_channels: int = 3) -> TopoCNN:
    """CIFAR-10 CNN: 4 × [conv3×3 + BatchNorm + ReLU] with 32, 64, 128, 256 channels, maxpool2
    after the first three, GAP → 256, fc1 256 → 121 (11 × 11), ReLU, Dropout(0.5), fc2 → 10."""
    layers, c_in = [], in_channels
    for k, c in enumerate((32, 64, 128, 256)):
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
        if k < 3:
            layers.append(nn.MaxPool2d(2))
        c_in = c
    return TopoCNN(nn.Sequential(*layers), 256, num_classes, grid, dropout)
