r"""Robustness evaluation of the HaH study (Cekic et al., arXiv:2202.13074): PGD attacks in ℓ∞
and ℓ2 (Madry et al., ICLR 2018), Gaussian-noise accuracy, and activation sparsity statistics.

Images live in [0, 1] (put :class:`torchtopo.data.Normalize` first in the model); ε is in that
pixel scale (the paper's ℓ∞ 2/255 and ℓ2 0.25 on CIFAR-10).

**PGD and AutoAttack.**  PGD (Madry et al. 2018) is a dozen lines of PyTorch, has no
dependency, is fully tested here (it raises the loss and never leaves the ε-ball or [0, 1]) and
runs on any device.  The paper reports AutoAttack (Croce & Hein, ICML 2020), an ensemble at least
as strong as PGD: :func:`autoattack` runs it through the maintained ``torchattacks`` package
(``pip install 'torchtopo[attacks]'``); without it, PGD accuracies are upper bounds of what
AutoAttack would give.  Gradient masking is a known pitfall for defenses with hard thresholds
like HaH's: a large gap between PGD with few and many steps, with and without random restarts,
or between PGD and AutoAttack, is a warning sign; :func:`pgd_accuracy` takes ``steps`` and
``restarts`` for that check.

Every accuracy here is in percent (0 … 100), as everywhere in torchtopo.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._batching import eval_mode, iter_batches, model_device
from ._checks import check_choice, check_int, check_nonneg, check_real, check_tensor
from .robustness import evaluate_accuracy

__all__ = [
    "pgd",
    "accuracy",
    "pgd_robust",
    "pgd_accuracy",
    "autoattack",
    "gaussian_noise_accuracy",
    "sparsity_stats",
]

NORMS = ("linf", "l2")


def _check_xy(who: str, x, y) -> None:
    """``x`` a non-empty floating-point batch, ``y`` its (B,) integer labels."""
    check_tensor(x, "x (images in [0, 1])", who, nonempty=True)
    check_tensor(y, "y (labels)", who, floating=False)
    if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise TypeError(f"{who}: y must be an integer tensor of labels, got {y.dtype}")
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"{who}: y must be (B,) with B = x.shape[0] = {x.shape[0]} (one label per image), got shape {tuple(y.shape)}"
        )


def _check_clip(clip, who: str) -> Optional[Tuple[float, float]]:
    """``clip`` None or a pair (lo, hi) of finite numbers with lo < hi."""
    if clip is None:
        return None
    if not isinstance(clip, (tuple, list)) or len(clip) != 2:
        raise TypeError(f"{who}: clip must be None or a pair (lo, hi), got {clip!r}")
    lo = check_real(clip[0], "clip[0] (lo)", who)
    hi = check_real(clip[1], "clip[1] (hi)", who)
    if not lo < hi:
        raise ValueError(f"{who}: clip must be (lo, hi) with lo < hi, got {tuple(clip)!r}")
    return lo, hi


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
    clip = _check_clip(clip, who)
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
    """Top-1 accuracy in percent (0 … 100) of ``model`` in eval mode on ``(x, y)``: the same
    count as :func:`torchtopo.robustness.evaluate_accuracy` (which also takes Datasets and
    loaders), on tensors, with this module's input checks."""
    _check_xy("accuracy", x, y)
    return evaluate_accuracy(model, (x, y), batch_size=batch_size, device=model_device(model))


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
    r"""Accuracy (%) on :math:`\mathrm{clip}(x + \sigma n)`, :math:`n \sim \mathcal N(0, I)`
    (pixel scale, the paper's σ = 0.1 on CIFAR-10), with a fixed ``seed``."""
    _check_xy("gaussian_noise_accuracy", x, y)
    sigma = check_nonneg(sigma, "sigma", "gaussian_noise_accuracy")
    clip = _check_clip(clip, "gaussian_noise_accuracy")
    g = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)
    xn = x + sigma * noise
    if clip is not None:
        xn = xn.clamp(*clip)
    return accuracy(model, xn, y, batch_size=batch_size)


def pgd_robust(
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
) -> Tensor:
    """Per-image robustness under :func:`pgd`: a ``(B,)`` bool tensor (on the CPU), True where
    the image is classified right and every one of ``restarts`` random-start attacks fails.

    An image the model already gets wrong is False without being attacked (δ = 0 lies in the
    ball), and each restart attacks only the images that survived the earlier ones: the same
    criterion as attacking every image ``restarts`` times, at the cost of the survivors only.
    Arguments as :func:`pgd`; ``seed`` fixes the random starts.
    """
    who = "pgd_robust"
    _check_xy(who, x, y)
    eps = check_nonneg(eps, "eps", who)
    restarts = check_int(restarts, "restarts", who, minimum=1)
    dev = model_device(model)
    g = torch.Generator().manual_seed(int(seed))
    out = []
    for xb, yb in iter_batches((x, y), batch_size, who):
        xb, yb = xb.to(dev), yb.to(dev)
        with eval_mode(model), torch.no_grad():
            ok = model(xb).argmax(1) == yb
        for _ in range(restarts if eps > 0 else 0):
            idx = ok.nonzero().flatten()
            if idx.numel() == 0:
                break
            xa = pgd(model, xb[idx], yb[idx], eps=eps, norm=norm, steps=steps, step_size=step_size, generator=g)
            with eval_mode(model), torch.no_grad():
                ok[idx] = model(xa).argmax(1) == yb[idx]
        out.append(ok.cpu())
    return torch.cat(out)


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
    """Robust accuracy in percent (0 … 100) under :func:`pgd`: the share of True in
    :func:`pgd_robust` (an image counts as correct only if it is classified right and all of
    ``restarts`` random-start attacks fail; ``restarts=1`` is plain PGD).  Arguments as
    :func:`pgd`; ``seed`` fixes the random starts.
    """
    _check_xy("pgd_accuracy", x, y)
    ok = pgd_robust(model, x, y, eps=eps, norm=norm, steps=steps, step_size=step_size, restarts=restarts,
                    batch_size=batch_size, seed=seed)
    return 100.0 * float(ok.sum()) / x.shape[0]


#: torchattacks' names of the norms :func:`autoattack` takes (either spelling is accepted).
_AA_NORMS = {"linf": "Linf", "l2": "L2"}
_AA_VERSIONS = ("standard", "plus", "rand")


def _torchattacks():
    try:
        import torchattacks
    except ImportError as e:
        raise ImportError(
            "torchtopo.adversarial.autoattack runs AutoAttack through the 'torchattacks' package, "
            "which is not installed; install it with: pip install 'torchtopo[attacks]' "
            "(or pip install torchattacks). Without it, use pgd_accuracy (an upper bound)."
        ) from e
    return torchattacks


def autoattack(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    norm: str = "Linf",
    eps: float,
    version: str = "standard",
    batch_size: int = 256,
    seed: int = 0,
    n_classes: Optional[int] = None,
) -> float:
    r"""Robust accuracy in percent (0 … 100) under AutoAttack (Croce & Hein, ICML 2020), the
    attack the HaH study reports, through ``torchattacks.AutoAttack``.

    An image counts as correct when the model classifies it right after the whole ensemble has
    tried (the ensemble keeps the first successful adversarial example per image), untargeted,
    within :math:`\lVert\delta\rVert \le \epsilon` and [0, 1]:

    * ``"standard"``: APGD-CE, APGD-T, FAB-T, Square (5,000 queries), one restart each;
    * ``"plus"``: the same with more restarts, plus APGD-DLR and FAB;
    * ``"rand"``: APGD-CE and APGD-DLR with 20-fold expectation over transformation, for
      randomised defenses.

    The model runs in eval mode with frozen parameters (both restored afterwards); images it
    already misclassifies count as wrong without being attacked.  Needs
    ``pip install 'torchtopo[attacks]'``; a clear ``ImportError`` says so otherwise.

    Where we differ from the reference: ``torchattacks`` (3.5) builds the ensemble with its own
    defaults, 10 iterations for APGD-CE, APGD-T and FAB-T (9 target classes each), where Croce &
    Hein's reference code uses 100; Square keeps the reference's 5,000 queries.  Its gradient
    attacks are therefore weaker than the reference's, and on a CPU almost all the time goes to
    Square: every image that survives the gradient attacks costs 5,000 forward passes (measured
    on a small MNIST CNN, one busy core: 2–4 s per robust image and radius for a conv–BN–ReLU
    CNN, 6–9 s with HaH blocks, against well under 1 s for the three gradient attacks together).
    Passing only the images other attacks did not fool (e.g. the True of :func:`pgd_robust`)
    and counting the rest as broken is the usual worst case over attacks, and much cheaper.

    Args:
        model: maps ``x`` (images in [0, 1]) to logits.
        x: ``(B, C, H, W)`` images in [0, 1].
        y: ``(B,)`` integer labels.
        norm: ``"Linf"`` or ``"L2"`` (``"linf"``/``"l2"`` too).
        eps: radius ε in pixel scale (e.g. 8/255 for ℓ∞ on CIFAR-10); 0 gives the clean accuracy.
        version: ``"standard"``, ``"plus"`` or ``"rand"``.
        batch_size: images attacked at once.
        seed: the seed of the attacks' random draws.
        n_classes: number of classes (targets of APGD-T and FAB-T); default the width of the
            model's output.
    """
    who = "autoattack"
    _check_xy(who, x, y)
    if not isinstance(norm, str) or norm.lower() not in _AA_NORMS:
        raise ValueError(f"{who}: norm must be 'Linf' or 'L2', got {norm!r}")
    eps = check_nonneg(eps, "eps", who)
    check_choice(version, _AA_VERSIONS, "version", who)
    batch_size = check_int(batch_size, "batch_size", who, minimum=1)
    seed = check_int(seed, "seed", who)
    if bool((x.min() < 0) | (x.max() > 1)):
        raise ValueError(
            f"{who}: x must be images in [0, 1] (normalise inside the model), got values in "
            f"[{float(x.min()):.3g}, {float(x.max()):.3g}]"
        )
    ta = _torchattacks()
    dev = model_device(model)
    if n_classes is None:
        with eval_mode(model), torch.no_grad():
            n_classes = int(model(x[:1].to(dev)).shape[-1])
    n_classes = check_int(n_classes, "n_classes", who, minimum=2)
    need = 3 if version == "rand" else 4  # the DLR losses read the 3rd (untargeted) / 4th (targeted) largest logit
    if n_classes < need:
        raise ValueError(
            f"{who}: version={version!r} needs a model with at least {need} classes (AutoAttack's DLR loss), "
            f"got {n_classes}; use pgd_accuracy for fewer classes"
        )
    if eps == 0:
        return accuracy(model, x, y, batch_size=batch_size)
    correct = 0
    with eval_mode(model, freeze=True):
        attack = ta.AutoAttack(model, norm=_AA_NORMS[norm.lower()], eps=eps, version=version, n_classes=n_classes, seed=seed)
        for xb, yb in iter_batches((x, y), batch_size, who):
            xb, yb = xb.to(dev), yb.to(dev).long()
            with torch.no_grad():  # an image the model already gets wrong needs no attack
                keep = (model(xb).argmax(1) == yb).nonzero().flatten()
            if keep.numel() == 0:
                continue
            xa = attack(xb[keep], yb[keep])
            with torch.no_grad():
                correct += int((model(xa).argmax(1) == yb[keep]).sum())
    return 100.0 * correct / x.shape[0]


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
