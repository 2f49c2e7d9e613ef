"""Putting a :class:`~torchtopo.v1.V1Front` in front of a model (Barbulescu et al., arXiv:2310.10575)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional, Sequence

from torch import nn

from .._checks import resolve_module
from .front import V1Front

__all__ = ["with_v1_front", "V1Stem"]


class V1Stem(nn.Sequential):
    """``front`` followed by ``bottleneck``: a 1×1 convolution without bias from the front's
    ``out_channels`` to the back-end's input channels (VOneResNet: 512 → 64).

    Shapes: ``(B, C_in, H, W)`` → ``(B, out_channels, H', W')`` with the front's stride.
    """

    def __init__(self, front: V1Front, out_channels: int) -> None:
        bottleneck = nn.Conv2d(front.out_channels, out_channels, kernel_size=1, bias=False)
        nn.init.kaiming_normal_(bottleneck.weight, mode="fan_out", nonlinearity="relu")
        super().__init__(OrderedDict(front=front, bottleneck=bottleneck))


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, leaf = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, leaf, module)


def with_v1_front(
    model: nn.Module,
    front: V1Front,
    *,
    stem: Optional[str] = None,
    out_channels: Optional[int] = None,
    remove: Optional[Sequence[str]] = None,
) -> nn.Module:
    """Replace a model's stem with ``front`` + a 1×1 bottleneck (no bias), in place.

    For a torchvision ResNet (the default when the model has ``conv1``, ``bn1``, ``relu``,
    ``maxpool`` and ``layer1``): ``conv1`` becomes :class:`V1Stem` ``(front, 1×1 conv
    front.out_channels → conv1.out_channels)`` and ``bn1``, ``relu``, ``maxpool`` become
    ``nn.Identity`` — VOneResNet's layout (Dapello et al. 2020; the ResNet from ``layer1`` on is
    the back-end).  The front's stride (4 in VOneNet) replaces the stem's 2 × 2 downsampling.

    For any other model name the module to replace with ``stem`` (its ``out_channels`` attribute,
    or ``out_channels``, gives the bottleneck's width) and the modules to neutralise with
    ``remove``.

    Args:
        model: the network (modified in place and returned).
        front: the :class:`V1Front`; its ``in_channels`` must match the model's input.
        stem: dotted name of the module to replace (default ``"conv1"`` for ResNets).
        out_channels: the bottleneck's output channels (default: the replaced module's
            ``out_channels``).
        remove: dotted names of modules replaced by ``nn.Identity`` (ResNet default: ``bn1``,
            ``relu``, ``maxpool``).

    Returns:
        ``model``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"with_v1_front: model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(front, V1Front):
        raise TypeError(f"with_v1_front: front must be a V1Front, got {type(front).__name__}")
    is_resnet = all(hasattr(model, a) for a in ("conv1", "bn1", "relu", "maxpool", "layer1"))
    if stem is None:
        if not is_resnet:
            raise ValueError(
                f"with_v1_front: model ({type(model).__name__}) is not a torchvision-style ResNet "
                f"(conv1, bn1, relu, maxpool, layer1); pass stem='<module name>' to replace")
        stem = "conv1"
        if remove is None:
            remove = ("bn1", "relu", "maxpool")
    stem, old = resolve_module(model, stem, "with_v1_front")
    if out_channels is None:
        out_channels = getattr(old, "out_channels", None)
        if not isinstance(out_channels, int):
            raise ValueError(
                f"with_v1_front: cannot read out_channels from {stem!r} ({type(old).__name__}); "
                f"pass out_channels=")
    in_ch = getattr(old, "in_channels", None)
    if isinstance(in_ch, int) and in_ch != front.in_channels:
        raise ValueError(
            f"with_v1_front: the replaced module {stem!r} reads {in_ch} input channels but the front "
            f"has in_channels={front.in_channels}")
    remove = [resolve_module(model, name, "with_v1_front")[0] for name in remove or ()]
    _set(model, stem, V1Stem(front, int(out_channels)))
    for name in remove:
        _set(model, name, nn.Identity())
    return model
