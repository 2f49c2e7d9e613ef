"""Collecting a layer's activations over a data set, the input of every topographic analysis
(Truong & Hasson, arXiv:2508.00043)."""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from .._batching import eval_mode, iter_batches, model_device
from .._checks import check_choice, resolve_module

__all__ = ["collect_activations"]


@torch.no_grad()
def collect_activations(
    model: nn.Module,
    module_or_name: Union[str, nn.Module],
    data: Any,
    *,
    batch_size: int = 128,
    device: Optional[Union[str, torch.device]] = None,
    which: str = "output",
    transform: Optional[Callable[[Tensor], Tensor]] = None,
    max_batches: Optional[int] = None,
    return_outputs: bool = False,
) -> Tuple[Tensor, ...]:
    """Run ``model`` over ``data`` and collect one layer's output (or input) with a forward hook.

    The model runs in ``eval()`` mode under ``torch.no_grad()`` and its previous mode is
    restored afterwards.  Collected tensors are moved to the CPU and concatenated.

    Args:
        model: any module.
        module_or_name: the layer (or its name in ``model.named_modules()``), e.g. ``"fc1"``
            (whose output is the *pre-ReLU* map in :func:`torchtopo.models.mnist_cnn`).
        data: a tensor of inputs, an ``(x, y)`` tuple of tensors, a Dataset or a DataLoader
            (batches ``x`` or ``(x, y, ...)``).
        batch_size: for tensors and Datasets.
        device: where to run (default: the model's parameters' device).
        which: ``"output"`` or ``"input"`` (the layer's first positional input).
        transform: applied to each input batch before the model (e.g. a corruption).
        max_batches: stop after this many batches.
        return_outputs: also return the model's outputs (e.g. logits).

    Returns:
        ``(acts, labels)`` — ``acts`` (S, ...) and ``labels`` (S,) or None when the data have
        none — plus ``outputs`` (S, ...) when ``return_outputs``.
    """
    who = "collect_activations"
    check_choice(which, ("output", "input"), "which", who)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"{who}: batch_size must be a positive int, got {batch_size!r}")
    _, module = resolve_module(model, module_or_name, who)
    if device is None:
        device = model_device(model)
    store: list = []

    def hook(mod, inputs, output):
        t = output if which == "output" else inputs[0]
        if not isinstance(t, Tensor):
            raise TypeError(f"{who}: the layer's {which} is a {type(t).__name__}, not a tensor")
        store.append(t.detach().cpu())

    handle = module.register_forward_hook(hook)
    labels, outs = [], []
    try:
        with eval_mode(model):
            for k, (x, y) in enumerate(iter_batches(data, batch_size, who)):
                if max_batches is not None and k >= max_batches:
                    break
                x = x.to(device)
                if transform is not None:
                    x = transform(x)
                out = model(x)
                if return_outputs:
                    outs.append(out.detach().cpu())
                if y is not None:
                    labels.append(y.cpu())
    finally:
        handle.remove()
    if not store:
        raise ValueError(f"{who}: data yielded no batches (or the layer never ran)")
    acts = torch.cat(store)
    lab = torch.cat(labels) if labels and len(labels) == len(store) else None
    if return_outputs:
        return acts, lab, torch.cat(outs)
    return acts, lab
