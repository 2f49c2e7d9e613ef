"""The HaH study's architectures (Cekic et al., arXiv:2202.13074)."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

from torch import Tensor, nn

from ..data import CIFAR10_MEAN, CIFAR10_STD, MNIST_MEAN, MNIST_STD
from ..hebbian import HaHActivation, NormalizedConv2d
from ._registry import NormalizeArg, input_normalize, register_model

__all__ = ["HaHNet", "VGG", "vgg16_hah", "hah_cnn", "VGG16_CFG"]

#: VGG16's convolution widths, "M" = 2×2 max-pool (CIFAR-style VGG16: 13 convs, 5 pools).
VGG16_CFG: Tuple = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def _block(c_in: int, c_out: int, hah: bool, sigma: float, keep: float) -> nn.Sequential:
    if hah:
        return nn.Sequential(NormalizedConv2d(c_in, c_out, 3, padding=1), HaHActivation(sigma, keep))
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=False))


class HaHNet(nn.Module):
    """A plain feed-forward CNN: ``normalize`` → ``features`` (conv blocks and max-pools) →
    flatten → ``classifier`` (one linear layer).  :func:`vgg16_hah` fills it with VGG16's
    convolutions, :func:`hah_cnn` with a small MNIST stack.

    Each conv block is ``features[i]`` = ``Sequential(conv, ...)``: a HaH block is
    ``(NormalizedConv2d, HaHActivation)``, a standard one ``(Conv2d, BatchNorm2d, ReLU)``; the
    convolution is always ``features[i][0]`` (attach :class:`~torchtopo.HebbianLoss` there).
    """

    def __init__(self, features: nn.Sequential, feat_dim: int, num_classes: int, normalize: Optional[nn.Module]) -> None:
        super().__init__()
        self.normalize = normalize if normalize is not None else nn.Identity()
        self.features = features
        self.classifier = nn.Linear(feat_dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(self.normalize(x)).flatten(1))


#: The former name of :class:`HaHNet` (the class also builds non-VGG stacks).
VGG = HaHNet


@register_model()
def vgg16_hah(
    num_classes: int = 10,
    in_channels: int = 3,
    *,
    normalize: NormalizeArg = True,
    hah_layers: int = 6,
    sigma: float = 0.1,
    keep: float = 0.2,
    cfg: Sequence = VGG16_CFG,
) -> HaHNet:
    """VGG16 for 32 × 32 CIFAR-10 with HaH blocks on the first ``hah_layers`` convolutions
    (Cekic et al., arXiv:2202.13074: conv1–6, 64, 64, 128, 128, 256, 256 channels).

    The 13 convolutions are 3 × 3 with padding 1; the HaH ones are ``NormalizedConv2d`` (no bias)
    → ReLU → DivisiveNorm(σ) → FractionalThreshold(keep), the others conv → BatchNorm → ReLU; a
    2 × 2 max-pool after conv 2, 4, 7, 10, 13; the 512-d result feeds one linear classifier.
    ``hah_layers=0`` is the standard VGG16(-BN) baseline (a working one: the released code's
    baseline was broken).

    Args:
        num_classes: outputs.
        in_channels: 3 for CIFAR.
        normalize: True (the default): a :class:`torchtopo.data.Normalize` first layer with the
            CIFAR-10 mean/std, so the model takes images in [0, 1]; a ``(mean, std)`` pair for
            other statistics; None/False for none.
        hah_layers: number of leading convolutions made HaH blocks (0–13; the paper: 6).
        sigma, keep: of the HaH blocks (paper 0.1, 0.2).
        cfg: the widths and pools (default VGG16).

    Returns:
        a :class:`HaHNet`; ``torchtopo.hah_layer_names(model)`` are the HaH convolutions, and
        ``tt.attach(model, tt.hebbian_terms(model))`` adds the paper's HaH costs.
    """
    n_conv = sum(1 for c in cfg if c != "M")
    if not 0 <= hah_layers <= n_conv:
        raise ValueError(f"vgg16_hah: hah_layers must be in [0, {n_conv}], got {hah_layers!r}")
    layers, c_in, k = [], in_channels, 0
    for c in cfg:
        if c == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers.append(_block(c_in, c, k < hah_layers, sigma, keep))
            c_in, k = c, k + 1
    norm = input_normalize(normalize, in_channels, (CIFAR10_MEAN, CIFAR10_STD), "CIFAR-10", "vgg16_hah")
    return HaHNet(nn.Sequential(*layers), c_in, num_classes, norm)


@register_model()
def hah_cnn(
    num_classes: int = 10,
    in_channels: int = 1,
    *,
    normalize: NormalizeArg = True,
    hah: bool = True,
    widths: Sequence[int] = (32, 64),
    image_size: int = 28,
    sigma: float = 0.1,
    keep: float = 0.2,
) -> HaHNet:
    """A small MNIST-sized CNN for the HaH study's offline example.

    For each width: a 3 × 3 conv block (HaH block when ``hah``, else conv → BatchNorm → ReLU)
    followed by a 2 × 2 max-pool; then flatten and one linear classifier.  With the defaults:
    28 → 14 → 7 px, 64 · 7 · 7 = 3136 features.

    Args:
        num_classes, in_channels: outputs and image channels.
        normalize: True (the default): the MNIST mean/std (repeated over channels) as a first
            :class:`torchtopo.data.Normalize` layer, so the model takes images in [0, 1]; a
            ``(mean, std)`` pair for other statistics; None/False for none.
        hah, widths, image_size, sigma, keep: the blocks, their widths, the input size and the
            HaH blocks' σ and kept fraction.
    """
    norm = input_normalize(normalize, in_channels, (MNIST_MEAN, MNIST_STD), "MNIST", "hah_cnn")
    layers, c_in, s = [], in_channels, image_size
    for c in widths:
        layers += [_block(c_in, c, hah, sigma, keep), nn.MaxPool2d(2)]
        c_in, s = c, s // 2
    return HaHNet(nn.Sequential(*layers), c_in * s * s, num_classes, norm)
