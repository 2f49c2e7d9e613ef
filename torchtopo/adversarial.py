r"""Robustness evaluation of the HaH study (Cekic et al., arXiv:2202.13074): PGD attacks in ℓ∞
and ℓ2 (Madry et al., ICLR 2018), Gaussian-noise accuracy, and activation sparsity statistics.

Images live in [0, 1] (put :class:`torchtopo.data.Normalize` first in the model); ε is in that
pixel scale (the paper's ℓ∞ 2/255 and ℓ2 0.25 on CIFAR-10).

**Why our own PGD and not AutoAttack.**  PGD (Madry et al. 2018) is a dozen lines of PyTorch,
has no dependency, is fully tested here (it raises the loss and never leaves the ε-ball or
[0, 1]) and runs on any device.  The reference AutoAttack is not a PyPI package (it installs
from git), so the library cannot depend on it.  The paper reports AutoAttack, an ensemble at
least as strong as PGD: **our PGD accuracies are upper bounds** of what AutoAttack would give,
so compare them with the paper's table as such.  Gradient masking is a known pitfall for
defenses with hard thresholds like HaH's: a large gap between PGD with few and many steps, or
with and without random restarts, is a warning sign; :func:`pgd_accuracy` takes ``steps`` and
``restarts`` for that check.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._batching import eval_mode, iter_batches, model_device
from ._checks import check_choice, check_int, check_nonneg, check_tensor
from .robustness import evaluate_accuracy

__all__ = [
    "pgd",
    "accuracy",
    "pgd_accuracy",
    "gaussian_noise_accuracy",
    "sparsity_stats",
]

NORMS = ("linf", "l2")


def _check_xy(who: str, x, y) -> None:
    """``x`` a floating-point batch, ``y`` its (B,) integer labels."""
    check_tensor(x, "x", who)
    check_tensor(y, "y (labels)", who, floating=False)
    if y.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{who}: y must be an integer tensor of labels, got {y.dtype}")
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"{who}: y must be (B,) with B = x.shape[0] = {x.shape[0]}, got shape {tuple(y.shape)}")


def _per_sample_norm(d: Tensor) -> Tensor:
    return d.flatten(1).norm(dim=1).clamp_min(1e-12).reshape((-1,) + (1,) * (d.dim() - 1))


def _project(delta: Tensor, eps: float, norm: str) -> Tensor:
    if norm == "linf":
        return delta.clamp(-eps, eps)
    n = _per_sample_norm(delta)
    return delta * torch.clamp(eps / n, max=1.0)


def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: str = "linf",
    steps: int = 20,
    step_size: Optional[float] = None,
    random_start: bool = True,
    loss_fn: Optional[Callable[[Tensor, Tensor], Tensor]] = None,
    clip: Optional[Tuple[float, float]] = (0.0, 1.0),
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    r"""Projected gradient descent (Madry et al., ICLR 2018), untargeted, in ℓ∞ or ℓ2.

    Maximises the loss L(f(x + δ), y) over :math:`\lVert\delta\rVert \le \epsilon`:

    .. math::

        \delta \leftarrow \Pi_{\epsilon}\big(\delta + \alpha\, g\big),\qquad
        g = \operatorname{sign}\nabla_\delta L \;(\ell_\infty), \quad
        g = \nabla_\delta L / \lVert\nabla_\delta L\rVert_2 \;(\ell_2)

    with :math:`\Pi_\epsilon` the projection on the ball (clamp for ℓ∞, rescaling for ℓ2) and
    :math:`x + \delta` clipped to ``clip``.  The model runs in eval mode with its parameters
    frozen (both restored afterwards); no parameter gradient is touched.

    Args:
        model: maps ``x`` to logits.
        x: ``(B, ...)`` images in ``clip`` range.
        y: ``(B,)`` labels.
        eps: radius ε (pixel scale); 0 returns ``x``.
        norm: ``"linf"`` or ``"l2"``.
        steps: iterations (≥ 1).
        step_size: α; default 2.5 ε / steps.
        random_start: start from a uniform point of the ball (ℓ∞) or a random direction at a
            uniform radius (ℓ2).
        loss_fn: default cross-entropy (summed over the batch, so each image gets its own
            gradient).
        clip: valid pixel range, or None.
        generator: for the random start.

    Returns:
        ``x_adv`` detached, with :math:`\lVert x_{adv} - x\rVert \le \epsilon` per image.

    Note:
        The attack runs forward passes with gradients enabled, so the hooks of a
        :func:`torchtopo.attach` regularizer on ``model`` capture them: for adversarial
        training, call :meth:`~torchtopo.Regularizer.penalty` after the forward pass on
        ``x_adv`` (or ``reg.clear()`` first).
    """
    who = "pgd"
    _check_xy(who, x, y)
    eps = check_nonneg(eps, "eps", who)
    check_choice(norm, NORMS, "norm", who)
    steps = check_int(steps, "steps", who, minimum=1)
    if eps == 0:
        return x.detach().clone()
    alpha = 2.5 * eps / steps if step_size is None else check_nonneg(step_size, "step_size", who)
    loss_fn = loss_fn or (lambda logits, t: F.cross_entropy(logits, t, reduction="sum"))
    x = x.detach()
    lo, hi = (None, None) if clip is None else clip

    def clipped(d: Tensor) -> Tensor:
        if clip is None:
            return d
        return (x + d).clamp(lo, hi) - x

    if random_start:
        if norm == "linf":
            delta = (torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device) * 2 - 1) * eps
        else:
            d = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
            r = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), generator=generator, dtype=x.dtype).to(x.device)
            delta = d / _per_sample_norm(d) * r * eps
        delta = clipped(delta)
    else:
        delta = torch.zeros_like(x)
    with eval_mode(model, freeze=True):
        for _ in range(steps):
            delta.requires_grad_(True)
            with torch.enable_grad():
                loss = loss_fn(model(x + delta), y)
                (g,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                if norm == "linf":
                    step = g.sign()
                else:
                    step = g / _per_sample_norm(g)
                delta = clipped(_project(delta.detach() + alpha * step, eps, norm))
    return (x + delta).detach()


def accuracy(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 256) -> float:
    """Top-1 accuracy (fraction in [0, 1]) of ``model`` in eval mode on ``(x, y)``: the same
    count as :func:`torchtopo.robustness.evaluate_accuracy` (which gives percent and also takes
    Datasets and loaders), on tensors, with this module's input checks."""
    _check_xy("accuracy", x, y)
    return evaluate_accuracy(model, (x, y), batch_size=batch_size, device=model_device(model)) / 100.0


def gaussian_noise_accuracy(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    sigma: float = 0.1,
    *,
    clip: Optional[Tuple[float, float]] = (0.0, 1.0),
    seed: int = 0,
    batch_size: int = 256,
) -> float:
    r"""Accuracy on :math:`\mathrm{clip}(x + \sigma n)`, :math:`n \sim \mathcal N(0, I)` (pixel
    scale, the paper's σ = 0.1 on CIFAR-10), with a fixed ``seed``."""
    _check_xy("gaussian_noise_accuracy", x, y)
    sigma = check_nonneg(sigma, "sigma", "gaussian_noise_accuracy")
    g = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)
    xn = x + sigma * noise
    if clip is not None:
        xn = xn.clamp(*clip)
    return accuracy(model, xn, y, batch_size=batch_size)


def pgd_accuracy(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: str = "linf",
    steps: int = 20,
    step_size: Optional[float] = None,
    restarts: int = 1,
    batch_size: int = 256,
    seed: int = 0,
) -> float:
    """Robust accuracy (fraction in [0, 1]) under :func:`pgd`.

    An image counts as correct only if all of ``restarts`` random-start attacks fail
    (``restarts=1`` is plain PGD).  Arguments as :func:`pgd`; ``seed`` fixes the random starts.
    """
    who = "pgd_accuracy"
    _check_xy(who, x, y)
    restarts = check_int(restarts, "restarts", who, minimum=1)
    dev = model_device(model)
    g = torch.Generator().manual_seed(int(seed))
    correct = torch.zeros((), dtype=torch.long, device=dev)
    for xb, yb in iter_batches((x, y), batch_size, who):
        xb, yb = xb.to(dev), yb.to(dev)
        ok = torch.ones(xb.shape[0], dtype=torch.bool, device=dev)
        for _ in range(restarts):
            xa = pgd(model, xb, yb, eps=eps, norm=norm, steps=steps, step_size=step_size, generator=g)
            with eval_mode(model), torch.no_grad():
                ok &= model(xa).argmax(1) == yb
        correct += ok.sum()
    return float(correct) / max(1, x.shape[0])


def sparsity_stats(
    model: nn.Module, x: Tensor, layers: Sequence[str], *, batch_size: int = 256, tol: float = 0.0
) -> Dict[str, Dict[str, float]]:
    r"""Activation sparsity of the named layers' outputs on ``x``.

    Per layer, over all images, channels and positions of the output :math:`a`:

    * ``frac_zero``: fraction with :math:`|a| \le` ``tol``;
    * ``frac_active_channels``: mean over images and positions of the fraction of channels
      whose value exceeds ``tol`` (the population sparsity the HaH cost targets);
    * ``mean_active``: mean of :math:`a` over the active entries (how *strong* the survivors
      are), and ``mean``: the plain mean;
    * ``top10_share``: mean over images and positions of the share of the total
      :math:`\sum_c \mathrm{relu}(a_c)` carried by the top 10 % channels (⌈0.1 C⌉).

    Returns:
        ``{layer: {stat: float}}``.
    """
    from .analysis import collect_activations

    out = {}
    for n in layers:
        a = collect_activations(model, n, x, batch_size=batch_size)[0].float()
        active = a > tol
        C = a.shape[1] if a.dim() >= 2 else 1
        r = a.clamp_min(0)
        if a.dim() >= 2 and C > 1:
            k = max(1, math.ceil(0.1 * C))
            top = torch.topk(r, k, dim=1).values.sum(1)
            tot = r.sum(1)
            share = (top / tot.clamp_min(1e-12))[tot > 0]
            top_share = float(share.mean()) if share.numel() else float("nan")
            frac_ch = float(active.float().mean(1).mean())
        else:
            top_share, frac_ch = float("nan"), float(active.float().mean())
        out[n] = {
            "frac_zero": float((a.abs() <= tol).float().mean()),
            "frac_active_channels": frac_ch,
            "mean": float(a.mean()),
            "mean_active": float(a[active].mean()) if bool(active.any()) else 0.0,
            "top10_share": top_share,
        }
    return out
