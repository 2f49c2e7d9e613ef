r"""Gaussian weight noise with exact restoration, and the readout's representational similarity
matrix (the weight-perturbation test of Truong & Hasson, arXiv:2508.00043)."""
from __future__ import annotations

import contextlib
from typing import Iterator, List, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from .._checks import check_nonneg, check_tensor, resolve_module
from ._image_ops import randn

__all__ = ["perturb_weights", "readout_rsm"]

ModuleRefs = Optional[Union[str, nn.Module, Sequence[Union[str, nn.Module]]]]


def _select_params(model: nn.Module, modules: ModuleRefs, include_bias: bool, who: str) -> List[nn.Parameter]:
    """The parameters of ``modules`` (default: the whole model), each once, in module order."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{who}: model must be an nn.Module, got {type(model).__name__}")
    if modules is None:
        mods = [model]
    else:
        if isinstance(modules, (str, nn.Module)):
            modules = [modules]
        mods = [resolve_module(model, m, who)[1] for m in modules]
    seen, out = set(), []
    for mod in mods:
        for n, p in mod.named_parameters():
            if id(p) in seen:
                continue
            if not include_bias and (n.endswith("bias") or p.dim() < 2):
                continue
            seen.add(id(p))
            out.append(p)
    return out


@contextlib.contextmanager
def perturb_weights(
    model: nn.Module,
    sigma: float,
    *,
    modules: ModuleRefs = None,
    relative: bool = False,
    include_bias: bool = True,
    generator: Optional[torch.Generator] = None,
) -> Iterator[nn.Module]:
    r"""Add Gaussian noise to a model's weights inside a ``with`` block; restore them exactly.

    .. math:: w \leftarrow w + \sigma\,\epsilon,\quad \epsilon \sim N(0, 1)
              \qquad(\text{or } \sigma \cdot \mathrm{SD}(w)\,\epsilon \text{ with } relative)

    The weight-perturbation test of Truong & Hasson (arXiv:2508.00043): noise on the topographic
    layer only (``modules="fc1"``) or on all layers (default).  The original values are
    copied before and written back afterwards (``copy_``), so the weights are bit-exactly
    restored even if the block raises.

    Args:
        model: the network.
        sigma: noise SD (≥ 0).
        modules: module names / modules whose parameters are perturbed (default: all).
        relative: scale σ by each parameter tensor's own SD.
        include_bias: also perturb biases (and other 1-D parameters).
        generator: for reproducible noise.

    Yields:
        the model, perturbed.

    Example:
        >>> with tt.robustness.perturb_weights(model, 0.05, modules="fc1"):
        ...     acc = evaluate(model)
    """
    who = "perturb_weights"
    sigma = check_nonneg(sigma, "sigma", who)
    params = _select_params(model, modules, include_bias, who)
    saved = [p.detach().clone() for p in params]
    try:
        with torch.no_grad():
            for p in params:
                n = randn(p.shape, generator, p.detach())
                scale = sigma * (p.detach().float().std().to(p.dtype) if relative and p.numel() > 1 else 1.0)
                p.add_(n * scale)
        yield model
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)


def readout_rsm(weight: Tensor) -> Tensor:
    r"""Representational similarity matrix of a readout's class weight vectors: the Pearson
    correlation between every pair of rows of ``weight`` (C × D), a (C, C) matrix."""
    check_tensor(weight, "weight (classes × features)", "readout_rsm", dims=(2,), floating=False)
    w = weight.detach().double()
    z = w - w.mean(1, keepdim=True)
    z = z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return z @ z.T
