"""VOneResNet18 (Barbulescu et al., arXiv:2310.10575): a :class:`~torchtopo.V1Front` + 1×1 bottleneck + ResNet-18 from
``layer1`` on."""
from __future__ import annotations

from typing import Any, Optional

from torch import nn

from ..v1 import V1Front, with_v1_front

__all__ = ["vone_resnet18"]

_PRESETS = {"imagenet": V1Front.imagenet, "tiny_imagenet": V1Front.tiny_imagenet,
            "cifar": V1Front.cifar, "mnist": V1Front.mnist}


def vone_resnet18(num_classes: int = 1000, *, front: Optional[V1Front] = None, preset: str = "imagenet",
                  **front_kwargs: Any) -> nn.Module:
    """VOneResNet18 (Dapello et al. 2020; Barbulescu et al. 2023 on Tiny ImageNet).

    A torchvision ``resnet18(num_classes=num_classes)`` (random init) whose conv1/bn1/relu/maxpool
    are replaced by ``front`` and a 1×1 convolution (front.out_channels → 64, no bias); see
    :func:`torchtopo.with_v1_front`.

    Args:
        num_classes: classifier outputs (200 for Tiny ImageNet).
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
    if front is None:
        if preset not in _PRESETS:
            raise ValueError(f"vone_resnet18: preset must be one of {tuple(_PRESETS)}, got {preset!r}")
        front = _PRESETS[preset](**front_kwargs)
    elif front_kwargs:
        raise ValueError(f"vone_resnet18: pass either front= or front keyword arguments, got both "
                         f"({sorted(front_kwargs)})")
    model = resnet18(weights=None, num_classes=num_classes)
    if front.in_channels != 3:
        model.conv1 = nn.Conv2d(front.in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return with_v1_front(model, front)
