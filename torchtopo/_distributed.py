"""A differentiable all-gather of the batch over ``torch.distributed`` ranks (private).

Under DistributedDataParallel each rank sees its own shard of the batch, so a loss over the
batch's statistics (a correlation over stimuli, as in ``ActivationSimilarity``) is computed per
shard.  :func:`all_gather_batch` concatenates the shards of every rank in rank order, so every
rank computes the same loss as one process would on the concatenated batch, and gradients flow
back to each rank's own shard, as ``torch.nn.SyncBatchNorm`` does for its statistics.

Gradient semantics.  Every rank computes the loss L of the whole batch.  Rank r's shard ``x_r``
receives, in backward, the *sum over ranks* of their ∂L/∂x_r (an ``all_reduce`` of the gradient
of the gathered tensor, then rank r's slice).  As every rank's L is the same, that is
``world_size`` × ∂L/∂x_r, and DistributedDataParallel's *average* of the parameter gradients over
ranks then gives exactly the single-process gradient ∂L/∂θ on the concatenated batch (the task
loss, a mean over each shard, averages to the mean over the whole batch the same way).  This is
the reduction of ``torch.distributed.nn.functional.all_gather``.

Shards may differ in size along ``dim`` (e.g. the last batch of an epoch): they are padded for
the collective and trimmed after.
"""
from __future__ import annotations

from typing import List

import torch
from torch import Tensor

__all__ = ["all_gather_batch", "is_distributed"]


def is_distributed() -> bool:
    """True when ``torch.distributed`` is initialised with more than one rank."""
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _sizes(n: int, device: torch.device) -> List[int]:
    dist = torch.distributed
    mine = torch.tensor([n], dtype=torch.long, device=device)
    out = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(out, mine)
    return [int(s) for s in out]


class _AllGatherBatch(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, dim: int) -> Tensor:
        dist = torch.distributed
        sizes = _sizes(x.shape[dim], x.device)
        ctx.dim, ctx.sizes, ctx.rank = dim, sizes, dist.get_rank()
        biggest = max(sizes)
        x = x.contiguous()
        if x.shape[dim] < biggest:
            pad = list(x.shape)
            pad[dim] = biggest - x.shape[dim]
            x = torch.cat([x, x.new_zeros(pad)], dim=dim)
        parts = [torch.empty_like(x) for _ in sizes]
        dist.all_gather(parts, x)
        return torch.cat([p.narrow(dim, 0, n) for p, n in zip(parts, sizes)], dim=dim)

    @staticmethod
    def backward(ctx, grad: Tensor):
        grad = grad.contiguous().clone()
        torch.distributed.all_reduce(grad)  # Σ over ranks of ∂L_rank/∂(gathered batch)
        start = sum(ctx.sizes[: ctx.rank])
        return grad.narrow(ctx.dim, start, ctx.sizes[ctx.rank]), None


def all_gather_batch(x: Tensor, dim: int = 0) -> Tensor:
    """Concatenate ``x`` of every rank along ``dim``, in rank order, differentiably.

    Forward: ``torch.cat([x_0, …, x_{W-1}], dim)`` (all ranks get the same tensor; the other
    dimensions must agree, ``dim`` may differ).  Backward: rank r's slice of the gradient summed
    over ranks (see the module docstring: with DistributedDataParallel's averaging the parameter
    gradients equal one process's on the concatenated batch).  Returns ``x`` itself when
    ``torch.distributed`` is not initialised or has one rank.

    Every rank must call it the same number of times, in the same order (it is a collective).
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"all_gather_batch: x must be a torch.Tensor, got {type(x).__name__}")
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"all_gather_batch: dim must be an int, got {type(dim).__name__} ({dim!r})")
    if x.dim() == 0 or not -x.dim() <= dim < x.dim():
        raise ValueError(f"all_gather_batch: dim must be in [{-x.dim()}, {x.dim() - 1}] for x of shape {tuple(x.shape)}, got {dim}")
    if not is_distributed():
        return x
    return _AllGatherBatch.apply(x, dim % x.dim())
