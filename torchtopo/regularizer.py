"""One mechanism to attach regularization terms to the layers of any model.

>>> reg = tt.attach(model, {"fc1": tt.WeightSimilarity(strength=1.0)})
>>> loss = task_loss + reg.penalty()

A :class:`Term` says what it needs from its layer (its weights, its input, its output).  The
:class:`Regularizer` registers one forward hook per layer whose terms need activations; the hook
keeps the layer's input and/or output of the *last* forward pass run with gradients enabled
(nothing is captured under ``torch.no_grad()``), and :meth:`Regularizer.penalty` releases them.
"""
from __future__ import annotations

import abc
import copy
import math
import numbers
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ._checks import resolve_module
from .grid import Grid, GridLike, as_grid

__all__ = ["Term", "Regularizer", "attach", "Strength", "describe_module", "infer_units"]

Strength = Union[float, Callable[[int], float]]


def describe_module(name: str, module: nn.Module) -> str:
    """``"'fc1' (Linear, weight (121, 64))"`` — for error messages."""
    w = getattr(module, "weight", None)
    shape = f", weight {tuple(w.shape)}" if isinstance(w, Tensor) else ""
    return f"{name!r} ({type(module).__name__}{shape})"


def infer_units(module: nn.Module) -> Optional[int]:
    """Number of output units (features/channels) of ``module``, if it can be read off it.

    Linear → ``out_features``; ConvNd → ``out_channels``; norms → ``num_features``; a container
    → the last such layer inside it; otherwise None (then checked at the first forward).
    """
    for m in [module] + list(reversed(list(module.modules()))):
        for attr in ("out_features", "out_channels", "num_features"):
            v = getattr(m, attr, None)
            if isinstance(v, int):
                return v
    return None


class Term(abc.ABC):
    """Base class of a regularization term attached to one layer.

    Subclasses set :attr:`needs_input` / :attr:`needs_output` and implement :meth:`loss`, and
    may override :meth:`bind` (validation at attach time) and :meth:`config`.

    Args:
        strength: the weight λ of the term in :meth:`Regularizer.penalty`: a non-negative number,
            or a callable ``strength(step) -> float`` (e.g. a warm-up schedule), ``step`` being
            the number of ``penalty()`` calls made before.
    """

    needs_input: bool = False
    needs_output: bool = False

    def __init__(self, strength: Strength = 1.0) -> None:
        if callable(strength):
            self.strength = strength
        elif isinstance(strength, numbers.Real) and not isinstance(strength, bool):
            if not math.isfinite(float(strength)) or float(strength) < 0:
                raise ValueError(
                    f"{type(self).__name__}: strength must be a finite number >= 0 or a callable "
                    f"of the step, got {strength!r}"
                )
            self.strength = float(strength)
        else:
            raise TypeError(
                f"{type(self).__name__}: strength must be a number or a callable of the step, "
                f"got {type(strength).__name__}"
            )

    def strength_at(self, step: int) -> float:
        return float(self.strength(step)) if callable(self.strength) else self.strength

    def bind(self, name: str, module: nn.Module) -> None:
        """Check that the term fits ``module`` (called by :func:`attach`); raise with the
        module's name, type and shape if not."""

    @abc.abstractmethod
    def loss(self, module: nn.Module, inputs: Optional[Tuple[Any, ...]], output: Any) -> Tensor:
        """The unscaled loss.  ``inputs``/``output`` are the captured input tuple and output of
        the layer's last forward (None unless the term needs them)."""

    def options(self) -> Dict[str, Any]:
        """The term's own options for :meth:`config` (JSON-able)."""
        return {}

    def config(self) -> Dict[str, Any]:
        s = self.strength
        if callable(s):
            s = f"callable:{getattr(s, '__qualname__', type(s).__name__)}"
        return {"type": type(self).__name__, "strength": s, **self.options()}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "type")
        return f"{type(self).__name__}({opts})"


class GridTerm(Term):
    """A term whose layer's units sit on a grid: the term's ``grid`` or the layer's ``.grid``."""

    def __init__(self, strength: Strength = 1.0, grid: Optional[GridLike] = None) -> None:
        super().__init__(strength)
        self.grid: Optional[Grid] = None if grid is None else as_grid(grid)

    def bind(self, name: str, module: nn.Module) -> None:
        if self.grid is None:
            g = getattr(module, "grid", None)
            if g is None:
                raise ValueError(
                    f"{type(self).__name__} on {describe_module(name, module)} needs a grid: pass "
                    f"grid=(H, W) to the term, or use a layer with a .grid attribute (tt.TopoLinear)"
                )
            self.grid = as_grid(g)

    def _check_units(self, name: str, module: nn.Module, n: Optional[int], what: str) -> None:
        if n is not None and n != self.grid.n_units:
            raise ValueError(
                f"{type(self).__name__} on {describe_module(name, module)}: the layer has {n} "
                f"{what} but the grid {self.grid.height}×{self.grid.width} has "
                f"{self.grid.n_units} units"
            )

    def options(self) -> Dict[str, Any]:
        return {"grid": None if self.grid is None else self.grid.config()}


class _Entry:
    __slots__ = ("key", "name", "module", "term")

    def __init__(self, key: str, name: str, module: nn.Module, term: Term) -> None:
        self.key, self.name, self.module, self.term = key, name, module, term


class Regularizer:
    """Terms attached to a model's layers; made by :func:`attach`.

    Attributes:
        step: the number of :meth:`penalty` calls so far; strength schedules are evaluated at
            it.  Settable (e.g. when resuming training).
    """

    def __init__(self, model: nn.Module, entries: List[_Entry]) -> None:
        self.model = model
        self.step = 0
        self._entries = entries
        self._captured: Dict[str, Tuple[Optional[tuple], Any]] = {}
        self._last: Dict[str, Tensor] = {}
        self._suspended = False
        self._handles = []
        seen = {}
        for e in entries:
            if e.term.needs_input or e.term.needs_output:
                seen.setdefault(e.name, (e.module, []))[1].append(e.term)
        for name, (module, terms) in seen.items():
            need_in = any(t.needs_input for t in terms)
            need_out = any(t.needs_output for t in terms)
            self._handles.append(module.register_forward_hook(self._make_hook(name, need_in, need_out)))

    # ----------------------------------------------------------------- capture
    def _make_hook(self, name: str, need_in: bool, need_out: bool):
        def hook(module, inputs, output):
            if self._suspended or not torch.is_grad_enabled():
                return
            self._captured[name] = (inputs if need_in else None, output if need_out else None)

        return hook

    # ------------------------------------------------------------------ public
    @property
    def terms(self) -> Dict[str, Term]:
        """``{key: term}``; the key is the module name (``name[i]`` when a module has several)."""
        return {e.key: e.term for e in self._entries}

    def _compute(self, e: _Entry) -> Optional[Tensor]:
        t = e.term
        if t.needs_input or t.needs_output:
            if e.name not in self._captured:
                return None
            inputs, output = self._captured[e.name]
            return t.loss(e.module, inputs, output)
        return t.loss(e.module, None, None)

    def penalty(self) -> Tensor:
        """Σ strength(step) × loss over the terms, differentiable; then releases the captured
        activations and advances :attr:`step`.

        Raises:
            RuntimeError: an activation term's layer has not run forward with gradients enabled
                since the last ``penalty()``.
        """
        total: Optional[Tensor] = None
        last = {}
        self._suspended = True
        try:
            for e in self._entries:
                l = self._compute(e)
                if l is None:
                    raise RuntimeError(
                        f"{type(e.term).__name__} on {e.name!r} has no captured activations: run "
                        f"the model forward with gradients enabled before penalty() (nothing is "
                        f"captured under torch.no_grad(), and penalty() releases what it used)"
                    )
                last[e.key] = l.detach()
                s = e.term.strength_at(self.step)
                total = s * l if total is None else total + s * l
        finally:
            self._suspended = False
        self._captured.clear()
        self._last = last
        self.step += 1
        if total is None:
            p = next(self.model.parameters(), None)
            return torch.zeros((), device=None if p is None else p.device)
        return total

    def losses(self) -> Dict[str, Tensor]:
        """Unscaled, detached loss per term, for logging.

        Terms on weights are computed now; activation terms use the activations captured since
        the last :meth:`penalty` if any, else report the value computed by that ``penalty()``.
        """
        out = {}
        self._suspended = True
        try:
            with torch.no_grad():
                for e in self._entries:
                    l = self._compute(e)
                    if l is None:
                        l = self._last.get(e.key)
                    if l is not None:
                        out[e.key] = l.detach()
        finally:
            self._suspended = False
        return out

    def clear(self) -> None:
        """Drop captured activations without computing anything."""
        self._captured.clear()

    def remove(self) -> None:
        """Remove every hook and captured tensor; the model is left as it was."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self._captured.clear()

    def config(self) -> Dict[str, Any]:
        """JSON-able description of the attached terms."""
        return {"step": self.step, "terms": {e.key: {"module": e.name, **e.term.config()} for e in self._entries}}

    def __enter__(self) -> "Regularizer":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def __repr__(self) -> str:
        lines = [f"  {k}: {t!r}" for k, t in self.terms.items()]
        return "Regularizer(\n" + "\n".join(lines) + "\n)"


def attach(model: nn.Module, terms: Mapping[str, Union[Term, Sequence[Term]]]) -> Regularizer:
    """Attach regularization terms to layers of ``model`` by module name.

    Args:
        model: any ``nn.Module`` (a DistributedDataParallel wrapper or a ``torch.compile``'d
            model too: names may omit the ``module.`` / ``_orig_mod.`` prefix).
        terms: ``{module_name: term}`` or ``{module_name: [term, ...]}``; each term is copied,
            so one instance can be reused for several layers.

    Returns:
        A :class:`Regularizer`; call :meth:`~Regularizer.penalty` after each forward pass.

    Raises:
        ValueError / TypeError at once, naming the module, its type and shape, when a name does
        not exist or a term does not fit its layer.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"attach: model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(terms, Mapping):
        raise TypeError(f"attach: terms must be a dict {{module_name: term}}, got {type(terms).__name__}")
    entries: List[_Entry] = []
    for name, spec in terms.items():
        if not isinstance(name, str):
            raise TypeError(f"attach: module names must be strings, got {type(name).__name__}")
        full, module = resolve_module(model, name, "attach")
        items = list(spec) if isinstance(spec, (list, tuple)) else [spec]
        for k, term in enumerate(items):
            if not isinstance(term, Term):
                raise TypeError(
                    f"attach: the value for {name!r} must be a torchtopo term (e.g. "
                    f"tt.WeightSimilarity(...)), got {type(term).__name__}"
                )
            term = copy.copy(term)
            term.bind(name, module)
            key = name if len(items) == 1 else f"{name}[{k}]"
            entries.append(_Entry(key, full, module, term))
    return Regularizer(model, entries)
