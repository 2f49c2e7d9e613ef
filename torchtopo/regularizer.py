"""One mechanism to attach regularization terms to the layers of any model.

>>> reg = tt.attach(model, {"fc1": tt.WeightSimilarity(strength=1.0)})
>>> loss = task_loss + reg.penalty()

A :class:`Term` says what it needs from its layer (its weights, its input, its output).  The
:class:`Regularizer` registers one forward hook per layer whose terms need activations; the hook
keeps the layer's input and/or output of the *last* forward pass run with gradients enabled
(nothing is captured under ``torch.no_grad()``), and :meth:`Regularizer.penalty` releases them.

Training-loop semantics:

* **Copies of the model** (``copy.deepcopy``, ``torch.optim.swa_utils.AveragedModel``, pickling
  with ``torch.save(model)``) carry a disabled hook: a copy's forward never feeds the original's
  regularizer, and the model pickles while attached.  ``copy.deepcopy(reg)`` copies the model
  too and returns a regularizer attached to that copy (``reg2.model``).
* **Gradient accumulation**: each micro-batch's activations are used by the ``penalty()`` that
  follows its forward, so call ``penalty()`` once per micro-batch, with ``advance=False`` on all
  but the last so that the strength schedule advances once per optimiser step::

      for i, (x, y) in enumerate(micro_batches):
          loss = F.cross_entropy(model(x), y) + reg.penalty(advance=i == len(micro_batches) - 1)
          (loss / len(micro_batches)).backward()

  An activation term then sees each micro-batch on its own (its statistics are over the
  micro-batch).  A second forward before ``penalty()`` overwrites the first's activations; that
  is warned about once per layer (``reg.clear()`` before the forward that counts drops an
  earlier capture on purpose, e.g. after an attack's forwards in adversarial training).
* **Activation checkpointing**: use ``torch.utils.checkpoint.checkpoint(..., use_reentrant=False)``:
  the forward is captured as usual and the recomputation that runs inside ``backward()`` is not.
  The reentrant variant runs the forward under ``no_grad``, so a layer inside it captures nothing
  (``penalty()`` then says there are no captured activations).
* **DistributedDataParallel**: each rank captures its own batch; ``ActivationSimilarity(sync=True)``
  gathers the batch over ranks.  **DataParallel** replicas are not supported for activation
  terms (the replicas' forwards would race for one capture): ``penalty()`` says so; weight terms
  work.
"""
from __future__ import annotations

import abc
import copy
import math
import numbers
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ._checks import check_bool, check_int, resolve_module
from ._hooks import Capture, CaptureHook, from_json, match_keys, plain_name, term_types, warn_once
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
            :attr:`Regularizer.step` (the number of ``penalty()`` calls made before that
            advanced it); it must return a finite number >= 0 (checked at each ``penalty()``).
    """

    needs_input: bool = False
    needs_output: bool = False
    #: True when :meth:`loss` reruns the layer on its captured input; the regularizer then runs
    #: :meth:`loss` under the autocast state the layer's forward ran under.
    recomputes: bool = False

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
        """The term's own options for :meth:`config` (JSON-able); they must be the keyword
        arguments of the term's constructor, so that :meth:`Regularizer.from_config` rebuilds it."""
        return {}

    def state_dict(self) -> Dict[str, Any]:
        """The term's mutable state: the state of every ``torch.Generator`` it holds (e.g. the
        window draws of :class:`~torchtopo.SpatialCorrelation`)."""
        gens = {k: v.get_state() for k, v in vars(self).items() if isinstance(v, torch.Generator)}
        return {"generators": gens} if gens else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        for k, st in dict(state).get("generators", {}).items():
            g = getattr(self, k, None)
            if not isinstance(g, torch.Generator):
                g = torch.Generator()
                setattr(self, k, g)
            g.set_state(st)

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
        step: the number of :meth:`penalty` calls so far (that advanced it); strength schedules
            are evaluated at it.  Settable, saved by :meth:`state_dict`.
    """

    def __init__(self, model: nn.Module, entries: List[_Entry]) -> None:
        self.model = model
        self.step = 0
        self._entries = entries
        self._captured: Dict[str, Capture] = {}
        self._last: Dict[str, Tensor] = {}
        self._suspended = False
        self._removed = False
        self._warned: set = set()
        self._hooks: Dict[str, CaptureHook] = {}
        self._handles = []
        seen = {}
        for e in entries:
            if e.term.needs_input or e.term.needs_output:
                seen.setdefault(e.name, (e.module, []))[1].append(e.term)
        for name, (module, terms) in seen.items():
            hook = CaptureHook(self, module, name, any(t.needs_input for t in terms), any(t.needs_output for t in terms))
            self._hooks[name] = hook
            self._handles.append(module.register_forward_hook(hook))

    # ----------------------------------------------------------------- capture
    def _store(self, name: str, capture: Capture) -> None:
        if name in self._captured:
            warn_once(
                self._warned, name,
                f"the layer {name!r} ran forward again before penalty(): only the last forward's "
                f"activations are used.  For gradient accumulation call penalty() after each "
                f"micro-batch's forward (advance=False on all but the last); see "
                f"torchtopo.regularizer.",
            )
        self._captured[name] = capture

    # ------------------------------------------------------------------ public
    @property
    def terms(self) -> Dict[str, Term]:
        """``{key: term}``; the key is the module name (``name[i]`` when a module has several)."""
        return {e.key: e.term for e in self._entries}

    def _compute(self, e: _Entry) -> Optional[Tensor]:
        t = e.term
        if not (t.needs_input or t.needs_output):
            return t.loss(e.module, None, None)
        if e.name not in self._captured:
            return None
        cap = self._captured[e.name]
        for what, z in (("input", cap.inputs[0] if t.needs_input and cap.inputs else None), ("output", cap.output if t.needs_output else None)):
            if isinstance(z, Tensor) and z.numel() == 0:
                raise ValueError(
                    f"{type(t).__name__} on {e.key!r}: the layer ran on an empty batch (its {what} "
                    f"has shape {tuple(z.shape)}); skip empty batches before the forward"
                )
        if t.recomputes:
            with cap.autocast.context():
                return t.loss(e.module, cap.inputs, cap.output)
        return t.loss(e.module, cap.inputs, cap.output)

    def _strength(self, e: _Entry) -> float:
        t = e.term
        if not callable(t.strength):
            return t.strength
        raw = t.strength(self.step)
        try:
            s = float(raw)
        except (TypeError, ValueError):
            s = None
        if s is None or not math.isfinite(s) or s < 0:
            raise ValueError(
                f"{type(t).__name__} on {e.key!r}: the strength schedule returned {raw!r} at step "
                f"{self.step}; it must return a finite number >= 0"
            )
        return s

    def _missing(self, e: _Entry) -> RuntimeError:
        hook = self._hooks.get(e.name)
        if hook is not None and hook.replica_called:
            return RuntimeError(
                f"{type(e.term).__name__} on {e.key!r}: the layer ran in nn.DataParallel replicas, "
                f"whose activations are not captured (they would race for one capture); use "
                f"DistributedDataParallel (one process per GPU) for activation terms"
            )
        return RuntimeError(
            f"{type(e.term).__name__} on {e.key!r} has no captured activations: run the model "
            f"forward with gradients enabled before penalty() (nothing is captured under "
            f"torch.no_grad(), and penalty() releases what it used)"
        )

    def penalty(self, *, advance: bool = True) -> Tensor:
        """Σ strength(step) × loss over the terms, differentiable; then releases the captured
        activations and, with ``advance`` (default), advances :attr:`step` by one.

        Args:
            advance: False keeps :attr:`step` (gradient accumulation: one ``penalty()`` per
                micro-batch, ``advance=True`` only on the last; see the module docstring).

        Raises:
            RuntimeError: an activation term's layer has not run forward with gradients enabled
                since the last ``penalty()``, or the regularizer was removed.
            ValueError: a strength schedule returned NaN, inf or a negative number; a layer ran
                on an empty batch.
        """
        if self._removed:
            raise RuntimeError(
                "penalty(): this regularizer was removed (reg.remove(), or its with-block ended): "
                "its hooks are gone and it captures nothing; attach the terms again with tt.attach()"
            )
        check_bool(advance, "advance", "penalty()")
        total: Optional[Tensor] = None
        last = {}
        self._suspended = True
        try:
            for e in self._entries:
                s = self._strength(e)
                l = self._compute(e)
                if l is None:
                    raise self._missing(e)
                last[e.key] = l.detach()
                total = s * l if total is None else total + s * l
        finally:
            self._suspended = False
        self._captured.clear()
        self._last = last
        if advance:
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
        """Remove every hook and captured tensor; the model is left as it was.  ``penalty()``
        then raises; :meth:`losses` still reports."""
        for h in self._handles:
            h.remove()
        for hook in self._hooks.values():
            hook._owner = None
        self._handles = []
        self._captured.clear()
        self._removed = True

    # ------------------------------------------------------------- persisting
    def config(self) -> Dict[str, Any]:
        """JSON-able description of the attached terms; :meth:`from_config` rebuilds them."""
        return {"step": self.step, "terms": {e.key: {"module": e.name, **e.term.config()} for e in self._entries}}

    def state_dict(self) -> Dict[str, Any]:
        """``{"step": step, "terms": {key: term.state_dict()}}``: what a resumed run needs
        besides the terms' options (:meth:`config`).  Loads with ``torch.load(weights_only=True)``."""
        return {"step": self.step, "terms": {e.key: e.term.state_dict() for e in self._entries}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :attr:`step` and the terms' state from :meth:`state_dict`; the term keys must
        match."""
        if not isinstance(state, Mapping) or "step" not in state or "terms" not in state:
            raise TypeError(f"load_state_dict: state must be a dict with 'step' and 'terms' (from Regularizer.state_dict()), got {state!r:.80}")
        step = check_int(state["step"], "state['step']", "load_state_dict", minimum=0)
        terms = state["terms"]
        mine = {e.key for e in self._entries}
        if isinstance(terms, Mapping) and set(terms) != mine:  # saved from a wrapped model?
            terms = match_keys(terms, [e.key for e in self._entries])
        if not isinstance(terms, Mapping) or set(terms) != mine:
            got = sorted(terms) if isinstance(terms, Mapping) else type(terms).__name__
            raise ValueError(f"load_state_dict: the saved terms {got} do not match this regularizer's {sorted(mine)}")
        for e in self._entries:
            e.term.load_state_dict(terms[e.key])
        self.step = step

    @classmethod
    def from_config(
        cls, model: nn.Module, config: Mapping[str, Any], *, strengths: Optional[Mapping[str, Strength]] = None
    ) -> "Regularizer":
        """Attach to ``model`` the terms that ``config`` (from :meth:`config`) describes, at its
        step.  A callable strength is stored as ``"callable:<name>"`` and cannot be rebuilt:
        pass it in ``strengths={key: schedule}`` (keys as in :attr:`terms`).  Term state (e.g.
        a generator's position) comes with :meth:`load_state_dict`."""
        if not isinstance(config, Mapping) or not isinstance(config.get("terms"), Mapping):
            raise TypeError(f"from_config: config must be the dict of Regularizer.config(), got {type(config).__name__}")
        strengths = dict(strengths or {})
        types, modules = term_types(Term), dict(model.named_modules())
        spec: Dict[str, List[Term]] = {}
        for key, tc in config["terms"].items():
            tc = dict(tc)
            name = plain_name(modules, key.rsplit("[", 1)[0] if key.endswith("]") else key)
            kind, strength = tc.pop("type", None), strengths.pop(key, tc.pop("strength", 1.0))
            tc.pop("module", None)
            if kind not in types:
                raise ValueError(f"from_config: term {key!r} has type {kind!r}, which is not a torchtopo term ({', '.join(sorted(types))})")
            if isinstance(strength, str):
                raise ValueError(
                    f"from_config: term {key!r} ({kind}) has a callable strength ({strength}), which "
                    f"a config cannot hold; pass it as from_config(..., strengths={{{key!r}: schedule}})"
                )
            try:
                term = types[kind](strength, **{k: from_json(k, v) for k, v in tc.items()})
            except TypeError as err:
                raise TypeError(f"from_config: term {key!r}: the options {sorted(tc)} do not fit {kind}: {err}") from None
            spec.setdefault(name, []).append(term)
        if strengths:
            raise ValueError(f"from_config: strengths given for {sorted(strengths)}, which are not terms of the config")
        reg = attach(model, spec)
        reg.step = check_int(config.get("step", 0), "config['step']", "from_config", minimum=0)
        return reg

    # ----------------------------------------------------------------- copies
    def __deepcopy__(self, memo) -> "Regularizer":
        model = copy.deepcopy(self.model, memo)
        modules = dict(model.named_modules())
        entries = [_Entry(e.key, e.name, modules[e.name], copy.deepcopy(e.term, memo)) for e in self._entries]
        new = type(self)(model, entries)
        new.step = self.step
        if self._removed:
            new.remove()
        return new

    def __reduce__(self):
        raise TypeError(
            "a Regularizer holds hooks on a live model and cannot be pickled or copied with "
            "copy.copy; save reg.config() and reg.state_dict() and rebuild with "
            "tt.Regularizer.from_config(model, config) + load_state_dict (copy.deepcopy(reg) "
            "copies the model too)"
        )

    def __del__(self) -> None:  # a dropped regularizer leaves no (dead) hooks behind
        for h in getattr(self, "_handles", ()):
            h.remove()

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
            model too: names may omit the ``module.`` / ``_orig_mod.`` prefix; activation terms
            do not work through ``nn.DataParallel`` replicas, see the module docstring).
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
