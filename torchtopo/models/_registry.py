"""The model registry and the input-normalisation argument every factory shares (private).

The pattern of ``torchvision.models._api``: each factory is decorated with
:func:`register_model`, :func:`list_models` names them, :func:`get_model` builds one by name::

    model = tt.models.get_model("mnist_cnn", num_classes=10, normalize=True)
"""
from __future__ import annotations

import difflib
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar, Union

from torch import nn

from ..data import Normalize

__all__ = ["register_model", "list_models", "get_model", "input_normalize", "NormalizeArg"]

F = TypeVar("F", bound=Callable[..., nn.Module])

#: The registered factories by name.
_MODELS: Dict[str, Callable[..., nn.Module]] = {}

#: What every factory's ``normalize`` accepts: None/False (none), True (the default dataset's
#: statistics) or a ``(mean, std)`` pair (numbers or per-channel sequences).
NormalizeArg = Union[None, bool, Tuple[Any, Any], Sequence[Any]]

#: The per-channel mean and std of ImageNet pixels in [0, 1] (the torchvision convention).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def register_model(name: Optional[str] = None) -> Callable[[F], F]:
    """Decorator: register a factory under ``name`` (default: the function's name)."""

    def wrapper(fn: F) -> F:
        key = fn.__name__ if name is None else name
        if key in _MODELS:
            raise ValueError(f"register_model: a model is already registered under the name {key!r}")
        _MODELS[key] = fn
        return fn

    return wrapper


def list_models() -> List[str]:
    """The names :func:`get_model` accepts, sorted."""
    return sorted(_MODELS)


def get_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` with the factory's keyword arguments.

    Every factory takes ``num_classes``, ``in_channels`` and ``normalize`` (None/False: no input
    normalisation; True: the mean/std of the model's default dataset; or a ``(mean, std)`` pair);
    the rest are the factory's own (see its docstring).  An unknown name raises a ValueError
    listing the closest registered names.
    """
    if not isinstance(name, str):
        raise TypeError(f"get_model: name must be a string, got {type(name).__name__}")
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"get_model: unknown model {name!r}{hint} (available: {', '.join(list_models())})")
    return _MODELS[name](**kwargs)


def input_normalize(
    normalize: NormalizeArg, in_channels: int, default: Tuple[Any, Any], dataset: str, who: str
) -> Optional[Normalize]:
    """The first layer a factory's ``normalize`` asks for, or None.

    ``default`` is the ``(mean, std)`` of the factory's default dataset (named ``dataset`` in
    errors), used for ``normalize=True``; single-channel statistics are repeated over
    ``in_channels``.  A pair's mean and std must each be a number or hold 1 or ``in_channels``
    values.
    """
    if normalize is None or normalize is False:
        return None
    if normalize is True:
        mean, std = (_as_list(s) for s in default)
        if len(mean) == 1 and in_channels != 1:
            mean, std = mean * in_channels, std * in_channels
        if len(mean) != in_channels:
            raise ValueError(
                f"{who}: normalize=True uses the {dataset} statistics ({len(mean)} channels) but "
                f"in_channels={in_channels}; pass normalize=(mean, std) or normalize=None"
            )
        return Normalize(mean, std)
    if isinstance(normalize, (tuple, list)) and len(normalize) == 2:
        mean, std = (_as_list(s) for s in normalize)
        for label, v in (("mean", mean), ("std", std)):
            if len(v) not in (1, in_channels):
                raise ValueError(
                    f"{who}: normalize's {label} must hold 1 or in_channels={in_channels} values, "
                    f"got {len(v)}"
                )
        return Normalize(mean, std)
    raise TypeError(
        f"{who}: normalize must be None, a bool or a (mean, std) pair, got {type(normalize).__name__} "
        f"({normalize!r})"
    )


def _as_list(v: Any) -> List[float]:
    if hasattr(v, "tolist"):
        v = v.tolist()
    return [float(s) for s in v] if isinstance(v, (tuple, list)) else [float(v)]
