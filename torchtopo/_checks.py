"""The one set of argument validators every torchtopo module uses (private).

Each check raises a ``TypeError`` (wrong kind of object) or ``ValueError`` (right kind, wrong
value) whose message names the calling function (``who``), the argument (``name``), what was
expected and what came, and returns the validated value so calls read as assignments::

    x = check_tensor(x, "x", "divisive_norm", dims=(4,))
    k = check_int(k, "kernel_size", "LGNFilter", minimum=1, odd=True)
"""
from __future__ import annotations

import difflib
import math
import numbers
from typing import Any, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

__all__ = [
    "EPS",
    "check_tensor",
    "check_4d",
    "check_channels",
    "check_finite",
    "check_int",
    "check_real",
    "check_positive",
    "check_nonneg",
    "check_fraction",
    "check_window",
    "check_choice",
    "check_bool",
    "resolve_module",
]

#: The one small constant added to norms and denominators across the library (cosine and
#: correlation distances, Pearson correlations): 1e-8, as in Truong & Hasson (arXiv:2508.00043).
EPS = 1e-8


def _shape(x: Any) -> str:
    return str(tuple(x.shape)) if isinstance(x, Tensor) else type(x).__name__


def check_tensor(
    x: Any,
    name: str,
    who: str,
    *,
    dims: Optional[Sequence[int]] = None,
    floating: bool = True,
    allow_complex: bool = False,
    nonempty: bool = False,
) -> Tensor:
    """``x`` must be a tensor; optionally of one of ``dims`` dimensionalities, floating point
    (``floating=True``, the default; complex only with ``allow_complex``) and with a non-empty
    first dimension (``nonempty``)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{who}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if x.is_complex() and not allow_complex:
        raise TypeError(f"{who}: {name} must be a real tensor, got complex dtype {x.dtype}")
    if floating and not (x.is_floating_point() or (allow_complex and x.is_complex())):
        raise TypeError(f"{who}: {name} must be a floating-point tensor, got dtype {x.dtype}")
    if dims is not None and x.dim() not in tuple(dims):
        want = " or ".join(f"{d}-D" for d in dims)
        raise ValueError(f"{who}: {name} must be {want}, got shape {tuple(x.shape)} ({x.dim()}-D)")
    if nonempty and (x.dim() == 0 or x.shape[0] == 0):
        raise ValueError(f"{who}: {name} must hold at least one sample (a non-empty first dimension), got shape {tuple(x.shape)}")
    return x


def check_4d(x: Any, name: str, who: str, *, floating: bool = True) -> Tensor:
    """``x`` must be a channels-first image batch (B, C, H, W)."""
    check_tensor(x, name, who, floating=floating)
    if x.dim() != 4:
        raise ValueError(
            f"{who}: {name} must be a 4-D channels-first tensor (B, C, H, W), got shape "
            f"{tuple(x.shape)} ({x.dim()}-D)"
        )
    return x


def check_channels(x: Tensor, channels: Optional[int], name: str, who: str, *, dim: int = 1) -> Tensor:
    """``x`` must have ``channels`` entries in dimension ``dim``; says so when it looks
    channels-last (the count sits in the last dimension instead)."""
    if channels is None or x.shape[dim] == channels:
        return x
    hint = ""
    if x.dim() >= 3 and x.shape[-1] == channels:
        hint = f"; it looks channels-last (B, H, W, C): permute it with {name}.permute(0, 3, 1, 2)"
    raise ValueError(
        f"{who}: {name} must have {channels} channels in dimension {dim} (channels-first "
        f"(B, C, H, W)), got shape {tuple(x.shape)}{hint}"
    )


def check_finite(x: Tensor, name: str, who: str) -> Tensor:
    """``x`` must hold no NaN or Inf (synchronises with the device: use outside hot paths)."""
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{who}: {name} contains NaN or Inf values")
    return x


def check_int(
    value: Any,
    name: str,
    who: str,
    *,
    minimum: Optional[int] = None,
    maximum: Optional[int] = None,
    odd: bool = False,
) -> int:
    """``value`` must be an int (not a bool) within [minimum, maximum], odd if asked."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{who}: {name} must be an int, got {type(value).__name__} ({value!r})")
    v = int(value)
    if minimum is not None and v < minimum:
        raise ValueError(f"{who}: {name} must be >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{who}: {name} must be <= {maximum}, got {v}")
    if odd and v % 2 == 0:
        raise ValueError(f"{who}: {name} must be odd (a centred kernel), got {v}")
    return v


def check_real(value: Any, name: str, who: str) -> float:
    """``value`` must be a finite real number (not a bool, not a string)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{who}: {name} must be a real number, got {type(value).__name__} ({value!r})")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{who}: {name} must be finite, got {value!r}")
    return v


def check_positive(value: Any, name: str, who: str, *, allow_zero: bool = False) -> float:
    """``value`` must be a finite real number > 0 (>= 0 with ``allow_zero``)."""
    v = check_real(value, name, who)
    if v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{who}: {name} must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")
    return v


def check_nonneg(value: Any, name: str, who: str) -> float:
    """``value`` must be a finite real number >= 0."""
    return check_positive(value, name, who, allow_zero=True)


def check_fraction(value: Any, name: str, who: str, *, closed_low: bool = False, closed_high: bool = False) -> float:
    """``value`` must lie in the unit interval, ends open unless ``closed_low``/``closed_high``."""
    v = check_real(value, name, who)
    lo_ok = v >= 0 if closed_low else v > 0
    hi_ok = v <= 1 if closed_high else v < 1
    if not (lo_ok and hi_ok):
        lo = "[0" if closed_low else "(0"
        hi = "1]" if closed_high else "1)"
        raise ValueError(f"{who}: {name} must be in {lo}, {hi}, got {value!r}")
    return v


def check_window(window: Any, who: str, name: str = "window") -> int:
    """``window`` must be an odd positive int (1, 3, 5, ...)."""
    if isinstance(window, bool) or not isinstance(window, numbers.Integral):
        raise TypeError(f"{who}: {name} must be an odd positive int, got {type(window).__name__}")
    if window < 1 or window % 2 == 0:
        raise ValueError(f"{who}: {name} must be an odd positive int (1, 3, 5, ...), got {window!r}")
    return int(window)


def check_choice(value: Any, choices: Sequence[str], name: str, who: str) -> str:
    """``value`` must be one of the strings ``choices``; suggests the closest on a typo."""
    if not isinstance(value, str) or value not in choices:
        close = difflib.get_close_matches(str(value), list(choices), n=1) if isinstance(value, str) else []
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{who}: {name} must be one of {tuple(choices)}, got {value!r}{hint}")
    return value


def check_bool(value: Any, name: str, who: str) -> bool:
    """``value`` must be a bool (a truthy string such as ``"no"`` is refused)."""
    if not isinstance(value, bool):
        raise TypeError(f"{who}: {name} must be True or False, got {type(value).__name__} ({value!r})")
    return value


def resolve_module(
    model: nn.Module, name: Union[str, nn.Module], who: str, *, unwrap: bool = True
) -> Tuple[str, nn.Module]:
    """Find the submodule ``name`` of ``model`` and return ``(full_name, module)``.

    An ``nn.Module`` is returned as it is (with the name ``""``).  With ``unwrap`` a name that
    omits the prefix of a wrapper is found too: ``module.`` (DistributedDataParallel,
    DataParallel) or ``_orig_mod.`` (``torch.compile``).  An unknown name raises a ValueError
    with the closest names the model has.
    """
    if isinstance(name, nn.Module):
        return "", name
    if not isinstance(name, str):
        raise TypeError(f"{who}: module names must be strings or nn.Modules, got {type(name).__name__}")
    modules = dict(model.named_modules())
    if name in modules:
        return name, modules[name]
    if unwrap:
        for prefix in ("module.", "_orig_mod.", "_orig_mod.module.", "module._orig_mod."):
            if prefix + name in modules:
                return prefix + name, modules[prefix + name]
    close = difflib.get_close_matches(name, [n for n in modules if n], n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(
        f"{who}: the model ({type(model).__name__}) has no module named {name!r}{hint} "
        f"(see model.named_modules())"
    )
