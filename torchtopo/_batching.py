"""Batches, devices and eval mode: the one copy every evaluation loop uses (private)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Optional, Tuple

import torch
from torch import Tensor, nn

__all__ = ["iter_batches", "model_device", "eval_mode"]


def iter_batches(
    data: Any, batch_size: int, who: str, *, require_labels: bool = False
) -> Iterator[Tuple[Tensor, Optional[Tensor]]]:
    """Yield ``(x, y or None)`` batches from any of the data forms torchtopo accepts.

    ``data`` may be a tensor of inputs, an ``(x, y)`` pair of tensors, a ``Dataset`` (read in
    order by a ``DataLoader`` of ``batch_size``) or any iterable of batches (a ``DataLoader``),
    each a tensor or an ``(x, y, ...)`` tuple.  With ``require_labels`` a batch without labels
    raises a ValueError naming ``who``.
    """
    from torch.utils.data import DataLoader, Dataset

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"{who}: batch_size must be an int >= 1, got {batch_size!r}")

    def _out(x: Tensor, y: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
        if require_labels and y is None:
            raise ValueError(f"{who}: data must yield labels: pass (images, labels) or a labelled loader")
        return x, y

    if isinstance(data, Tensor):
        for k in range(0, data.shape[0], batch_size):
            yield _out(data[k : k + batch_size], None)
        return
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        x, y = data
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"{who}: inputs and labels must have the same length, got {x.shape[0]} inputs and {y.shape[0]} labels"
            )
        for k in range(0, x.shape[0], batch_size):
            yield _out(x[k : k + batch_size], y[k : k + batch_size])
        return
    if isinstance(data, Dataset) and not isinstance(data, DataLoader):
        data = DataLoader(data, batch_size=batch_size, shuffle=False)
    if not hasattr(data, "__iter__"):
        raise TypeError(
            f"{who}: data must be a tensor, an (x, y) tuple of tensors, a Dataset or a DataLoader, "
            f"got {type(data).__name__}"
        )
    for b in data:
        if isinstance(b, Tensor):
            yield _out(b, None)
        elif isinstance(b, (tuple, list)) and len(b) >= 1 and isinstance(b[0], Tensor):
            yield _out(b[0], b[1] if len(b) > 1 and isinstance(b[1], Tensor) else None)
        else:
            raise TypeError(f"{who}: each batch must be a tensor or an (x, y, ...) tuple, got {type(b).__name__}")


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); CPU for a stateless model."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


@contextmanager
def eval_mode(model: nn.Module, *, freeze: bool = False) -> Iterable[nn.Module]:
    """``model.eval()`` for the block, its training flag restored afterwards; with ``freeze``
    also no parameter gradients (adversarial attacks differentiate the input only)."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()] if freeze else []
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, f in flags:
            p.requires_grad_(f)
        model.train(was_training)
