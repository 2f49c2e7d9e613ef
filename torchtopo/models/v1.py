"""VOneResNet18 (Dapello et al. 2020; Barbulescu et al., arXiv:2310.10575): a
:class:`~torchtopo.V1Front` + 1×1 bottleneck + ResNet-18 from ``layer1`` on."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Optional

from torch import nn

from ..data import CIFAR10_MEAN, CIFAR10_STD, MNIST_MEAN, MNIST_STD
from ..v1 import V1Front, with_v1_front
from ._registry import IMAGENET_MEAN, IMAGENET_STD, NormalizeArg, input_normalize, register_model

__all__ = ["vone_resnet18"]

_PRESETS = {"imagenet": V1Front.imagenet, "tiny_imagenet": V1Front.tiny_imagenet,
            "cifar": V1Front.cifar, "mnist": V1Front.mnist}
# each preset's dataset: its name in errors and the (mean, std) that normalize=True applies
_STATS = {"imagenet": ("ImageNet", (IMAGENET_MEAN, IMAGENET_STD)),
          "tiny_imagenet": ("ImageNet", (IMAGENET_MEAN, IMAGENET_STD)),
          "cifar": ("CIFAR-10", (CIFAR10_MEAN, CIFAR10_STD)),
          "mnist": ("MNIST", (MNIST_MEAN, MNIST_STD))}


@register_model()
def vone_resnet18(
    num_classes: int = 1000,
    in_channels: Optional[int] = None,
    *,
    normalize: NormalizeArg = None,
    front: Optional[V1Front] = None,
    preset: str = "imagenet",
    **front_kwargs: Any,
) -> nn.Module:
    """VOneResNet18 (Dapello et al. 2020; Barbulescu et al. 2023 on Tiny ImageNet).

    A torchvision ``resnet18(num_classes=num_classes)`` (random init) whose conv1/bn1/relu/maxpool
    are replaced by ``front`` and a 1×1 convolution (front.out_channels → 64, no bias); see
    :func:`torchtopo.with_v1_front`.

    Args:
        num_classes: classifier outputs (200 for Tiny ImageNet).
        in_channels: image channels; None (the default) takes the preset's (3; 1 for
            ``"mnist"``) or the given front's.
        normalize: None/False (the default): none; True: the preset's dataset mean/std
            (ImageNet for ``"imagenet"`` and ``"tiny_imagenet"``, CIFAR-10, MNIST); or a
            ``(mean, std)`` pair.  With a normalisation, ``conv1`` is
            ``Sequential(normalize=Normalize, stem=V1Stem)`` and the model takes images in [0, 1].
        front: a ready :class:`~torchtopo.V1Front`; else one is built with
            ``V1Front.<preset>(**front_kwargs)``.
        preset: ``"imagenet"``, ``"tiny_imagenet"``, ``"cifar"`` or ``"mnist"``.
        **front_kwargs: overrides of the preset (e.g. ``sampling="uniform"``, ``noise=None``).

    Shapes: ``(B, front.in_channels, H, W)`` → ``(B, num_classes)``.
    """
    try:
        from torchvision.models import resnet18
    except ImportError as e:  # pragma: no cover
        raise ImportError("vone_resnet18 needs torchvision: pip install torchvision") from e
    if preset not in _PRESETS:
        raise ValueError(f"vone_resnet18: preset must be one of {tuple(_PRESETS)}, got {preset!r}")
    if front is None:
        if in_channels is not None:
            front_kwargs["in_channels"] = in_channels
        front = _PRESETS[preset](**front_kwargs)
    elif front_kwargs:
        raise ValueError(f"vone_resnet18: pass either front= or front keyword arguments, got both "
                         f"({sorted(front_kwargs)})")
    elif in_channels is not None and in_channels != front.in_channels:
        raise ValueError(f"vone_resnet18: in_channels={in_channels} but the front has "
                         f"in_channels={front.in_channels}")
    dataset, stats = _STATS[preset]
    norm = input_normalize(normalize, front.in_channels, stats, dataset, "vone_resnet18")
    model = resnet18(weights=None, num_classes=num_classes)
    if front.in_channels != 3:
        model.conv1 = nn.Conv2d(front.in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    model = with_v1_front(model, front)
    if norm is not None:
        model.conv1 = nn.Sequential(OrderedDict(normalize=norm, stem=model.conv1))
    return model
