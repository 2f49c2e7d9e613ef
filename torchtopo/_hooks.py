"""The forward hook a :class:`torchtopo.Regularizer` hangs on a layer (private).

The hook is a small picklable object, not a closure, so that a model stays copyable and
picklable while a regularizer is attached:

* it holds *weak* references to its regularizer and to the layer it was registered on, and
  captures only when called by that very layer object.  ``copy.deepcopy(model)`` (and so
  ``torch.optim.swa_utils.AveragedModel``) copies the hook along with the layer's hook dict; the
  copy is called with the *copied* layer, so it does nothing: a copy never feeds the original's
  regularizer.
* pickled (``torch.save(model)``, ``pickle.dumps(model)``) it is stored as a disabled hook: the
  unpickled model carries a hook that does nothing.

It also records the autocast state its layer ran under, so a term that reruns its layer
(``HebbianLoss(local=True)``) can rerun it the same way, and skips the recomputation forward
that activation checkpointing runs during ``backward()``.

The two helpers at the end turn a ``Regularizer.config()`` back into terms.
"""
from __future__ import annotations

import os
import sys
import threading
import warnings
import weakref
from typing import Any, Dict, Mapping, NamedTuple, Optional

import torch
from torch import Tensor, nn

from .grid import Grid

__all__ = ["AutocastState", "Capture", "CaptureHook", "autocast_state", "in_backward", "warn_once", "term_types", "from_json", "plain_name", "strip_wrappers", "match_keys"]


class AutocastState(NamedTuple):
    """The autocast state of one device type at the time of a forward."""

    device_type: str
    enabled: bool
    dtype: torch.dtype

    def context(self):
        """A context manager that restores this state (enabled or disabled)."""
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.enabled)


def _first_tensor(obj: Any) -> Optional[Tensor]:
    if isinstance(obj, Tensor):
        return obj
    if isinstance(obj, (tuple, list)):
        for o in obj:
            t = _first_tensor(o)
            if t is not None:
                return t
    return None


def autocast_state(*objs: Any) -> AutocastState:
    """The autocast state for the device of the first tensor found in ``objs`` (CPU if none)."""
    t = None
    for o in objs:
        t = _first_tensor(o)
        if t is not None:
            break
    dev = t.device.type if t is not None else "cpu"
    try:
        return AutocastState(dev, torch.is_autocast_enabled(dev), torch.get_autocast_dtype(dev))
    except (RuntimeError, TypeError, AttributeError):  # a device type autocast does not know
        return AutocastState(dev, False, torch.float32)


def in_backward() -> bool:
    """True while autograd's engine runs a backward pass on this thread (e.g. the recomputation
    forward of ``torch.utils.checkpoint``)."""
    f = getattr(torch._C, "_current_graph_task_id", None)
    return f is not None and f() != -1


class Capture(NamedTuple):
    """What the hook keeps of one forward of its layer."""

    inputs: Optional[tuple]
    output: Any
    autocast: AutocastState


class CaptureHook:
    """Forward hook keeping the last input and/or output of one layer for a regularizer.

    Args:
        owner: the regularizer; it must provide ``_store(name, capture)`` and ``_suspended``.
        module: the layer the hook is registered on (only calls with this object capture).
        name: the layer's name in the model.
        need_in / need_out: what to keep.
    """

    def __init__(self, owner: Any, module: nn.Module, name: str, need_in: bool, need_out: bool) -> None:
        self._owner = weakref.ref(owner)
        self._module = weakref.ref(module)
        self.name, self.need_in, self.need_out = name, need_in, need_out
        self.replica_called = False

    @property
    def alive(self) -> bool:
        return self._owner is not None and self._owner() is not None

    def __call__(self, module: nn.Module, inputs: tuple, output: Any) -> None:
        owner = None if self._owner is None else self._owner()
        if owner is None or owner._suspended or not torch.is_grad_enabled() or in_backward():
            return
        if module is not self._module():
            # a deep copy of the layer (copy.deepcopy, AveragedModel) shares nothing with us;
            # a DataParallel replica shares the hook dict: remember, penalty() says why it fails
            if getattr(module, "_is_replica", False):
                self.replica_called = True
            return
        owner._store(self.name, Capture(inputs if self.need_in else None, output if self.need_out else None, autocast_state(inputs, output)))

    # a copy or an unpickled hook is disabled: it must not feed (or keep alive) the original
    def __deepcopy__(self, memo) -> "CaptureHook":
        return _disabled(self.name)

    def __reduce__(self):
        return (_disabled, (self.name,))

    def __repr__(self) -> str:
        return f"CaptureHook({self.name!r}, {'live' if self.alive else 'disabled'})"


def _disabled(name: str) -> CaptureHook:
    h = CaptureHook.__new__(CaptureHook)
    h._owner = h._module = None
    h.name, h.need_in, h.need_out, h.replica_called = name, False, False, False
    return h


_warn_lock = threading.Lock()
_INTERNAL = (os.path.dirname(torch.__file__), os.path.dirname(os.path.abspath(__file__)))


def _user_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside torch and torchtopo (the user's call)."""
    frame, level = sys._getframe(2), 2  # 1 = warn_once's caller as seen from warnings.warn
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_INTERNAL):
        frame, level = frame.f_back, level + 1
    return level if frame is not None else 2


def warn_once(seen: set, key: str, message: str) -> None:
    """Issue ``message`` as a UserWarning the first time ``key`` is added to ``seen``, pointing
    at the user's line (the first frame outside torch and torchtopo)."""
    with _warn_lock:
        if key in seen:
            return
        seen.add(key)
    warnings.warn(message, UserWarning, stacklevel=_user_stacklevel())


def strip_wrappers(key: str) -> str:
    """``key`` without leading ``module.`` / ``_orig_mod.`` (DDP, DataParallel, torch.compile)."""
    while key.startswith(("module.", "_orig_mod.")):
        key = key.split(".", 1)[1]
    return key


def match_keys(saved: Mapping[str, Any], keys: list) -> Mapping[str, Any]:
    """``saved`` re-keyed by ``keys`` when they match up to wrapper prefixes, else ``saved``."""
    plain = {strip_wrappers(k): v for k, v in saved.items()}
    out = {k: plain[strip_wrappers(k)] for k in keys if strip_wrappers(k) in plain}
    return out if len(out) == len(keys) == len(plain) else saved


def plain_name(modules: Mapping[str, nn.Module], name: str) -> str:
    """``name`` without a wrapper's ``module.`` / ``_orig_mod.`` prefixes when ``modules`` (a
    model's named modules) lacks it as it is, so a config saved from a wrapped model rebuilds on
    the plain one (the other direction :func:`torchtopo._checks.resolve_module` handles)."""
    while name not in modules:
        for prefix in ("module.", "_orig_mod."):
            if name.startswith(prefix):
                name = name[len(prefix):]
                break
        else:
            return name
    return name


def term_types(base: type) -> Dict[str, type]:
    """``{class name: class}`` of the public, concrete subclasses of ``base`` (the terms)."""
    out, todo = {}, [base]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            todo.append(sub)
            if not sub.__name__.startswith("_") and not getattr(sub, "__abstractmethods__", None):
                out.setdefault(sub.__name__, sub)
    return out


def from_json(key: str, value: Any) -> Any:
    """A term option as its constructor takes it: a grid's config dict → Grid, list → tuple."""
    if key == "grid" and isinstance(value, Mapping):
        return Grid(**value)
    return tuple(value) if isinstance(value, list) else value
