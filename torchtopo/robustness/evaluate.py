r"""Accuracy of a classifier on clean, corrupted and weight-perturbed inputs: the robustness
evaluations of Truong & Hasson (arXiv:2508.00043) and the ImageNet-C protocol (Hendrycks &
Dietterich, ICLR 2019)."""
from __future__ import annotations

import zlib
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from .._batching import eval_mode, iter_batches, model_device
from .._checks import check_choice, check_int, resolve_module
from .corruptions import COMMON_CORRUPTIONS, CORRUPTIONS, NOISE_CORRUPTIONS, corrupt
from .weights import ModuleRefs, perturb_weights, readout_rsm

__all__ = ["evaluate_accuracy", "evaluate_corruptions", "evaluate_weight_noise"]


def _rsm_cosine(a: Tensor, b: Tensor) -> float:
    """Cosine similarity of two RSMs over their off-diagonal upper triangles."""
    iu = torch.triu_indices(a.shape[0], a.shape[0], offset=1)
    va, vb = a[iu[0], iu[1]], b[iu[0], iu[1]]
    return float((va @ vb) / (va.norm() * vb.norm()).clamp_min(1e-12))


@torch.no_grad()
def evaluate_accuracy(
    model: nn.Module,
    data: Any,
    *,
    transform=None,
    batch_size: int = 128,
    device: Optional[Union[str, torch.device]] = None,
) -> float:
    """Top-1 accuracy (%) of ``model`` on ``data`` ((x, y) tensors, a Dataset or a DataLoader),
    optionally after ``transform(x)``; runs in eval mode and restores the previous mode."""
    who = "evaluate_accuracy"
    if device is None:
        device = model_device(model)
    correct = torch.zeros((), dtype=torch.long, device=device)
    n = 0
    with eval_mode(model):
        for x, y in iter_batches(data, batch_size, who, require_labels=True):
            x, y = x.to(device), y.to(device)
            if transform is not None:
                x = transform(x)
            correct += (model(x).argmax(1) == y).sum()
            n += y.numel()
    if n == 0:
        raise ValueError(f"{who}: data yielded no samples")
    return 100.0 * float(correct) / n


def evaluate_corruptions(
    model: nn.Module,
    data: Any = None,
    *,
    kinds: Optional[Sequence[str]] = None,
    severities: Optional[Union[Sequence[Union[int, float]], Dict[str, Sequence[Union[int, float]]]]] = None,
    datasets: Optional[Union[Mapping[Tuple[str, int], Any], Callable[[str, int], Any]]] = None,
    seed: int = 0,
    batch_size: int = 128,
    device: Optional[Union[str, torch.device]] = None,
    **corrupt_kwargs: Any,
) -> Dict[str, Any]:
    r"""Accuracy under each corruption and severity, and its change from clean accuracy.

    Two sources of corrupted images:

    * ``datasets=None`` (default): the images of ``data`` corrupted on the fly by :func:`corrupt`.
      They must be in [0, 1] (the model normalises).  Each (kind, severity) uses its own
      generator seeded from ``seed``, the kind and the severity value, so results are
      reproducible and every model sees the same corrupted images.
    * ``datasets``: the published benchmark itself — a mapping ``{(kind, severity): dataset}``
      or a callable ``(kind, severity) -> dataset``, e.g.
      ``lambda k, s: tt.data.cifar10_c(root, k, s)`` (:func:`torchtopo.data.cifar10_c`,
      :func:`torchtopo.data.tiny_imagenet_c`).  Each dataset's images are evaluated as they
      are; ``data`` (the clean test set) is then optional and gives ``"clean"`` and
      ``"change"`` (None without it).

    Args:
        model: the classifier.
        data: (x, y) tensors, a Dataset or a DataLoader of images in [0, 1] and labels.
        kinds: corruption kinds; default the noise kinds (:data:`NOISE_CORRUPTIONS`) without
            ``datasets``, the mapping's kinds (in order) or the 15 common corruptions with it.
        severities: a list used for every kind, or ``{kind: list}``; default
            (0.01, 0.05, 0.1, 0.15, 0.2) for the noise kinds (Truong & Hasson, arXiv:2508.00043)
            and 1 … 5 for the common corruptions (with a mapping: its severities per kind).
        datasets: the corrupted data sets (see above).
        seed: base seed.
        corrupt_kwargs: passed to :func:`corrupt` (e.g. ``exponent``, ``preset``).

    Returns:
        a dict: ``"clean"`` the clean accuracy (%), and ``"severities"``, ``"accuracy"`` (%) and
        ``"change"`` (accuracy − clean, percentage points), each a dict from kind to a list over
        the severities.
    """
    who = "evaluate_corruptions"
    if isinstance(kinds, str):
        kinds = [kinds]
    mapping = isinstance(datasets, Mapping)
    if datasets is not None and not mapping and not callable(datasets):
        raise TypeError(
            f"{who}: datasets must be a mapping {{(kind, severity): dataset}} or a callable "
            f"(kind, severity) -> dataset, got {type(datasets).__name__}"
        )
    if mapping:
        for key in datasets:
            if not (isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str)):
                raise ValueError(f"{who}: the keys of datasets must be (kind, severity) pairs, got {key!r}")
    if kinds is None:
        if mapping:
            kinds = list(dict.fromkeys(k for k, _ in datasets))
        else:
            kinds = list(COMMON_CORRUPTIONS if datasets is not None else NOISE_CORRUPTIONS)
    if datasets is None:
        for k in kinds:
            check_choice(k, CORRUPTIONS, "kinds", who)
        if data is None:
            raise ValueError(f"{who}: data (the clean images to corrupt) is required without datasets=")
    clean = None if data is None else evaluate_accuracy(model, data, batch_size=batch_size, device=device)
    out: Dict[str, Any] = {"clean": clean, "severities": {}, "accuracy": {}, "change": {}}
    for kind in kinds:
        if isinstance(severities, dict):
            sevs = list(severities.get(kind, ()))
        elif severities is not None:
            sevs = list(severities)
        elif mapping:
            sevs = [s for k, s in datasets if k == kind]
        else:
            sevs = [0.01, 0.05, 0.1, 0.15, 0.2] if kind in NOISE_CORRUPTIONS else [1, 2, 3, 4, 5]
        accs = []
        for sev in sevs:
            if datasets is not None:
                if mapping and (kind, sev) not in datasets:
                    raise KeyError(f"{who}: datasets has no entry for {(kind, sev)!r}; it has {list(datasets)!r}")
                ds = datasets[(kind, sev)] if mapping else datasets(kind, sev)
                accs.append(evaluate_accuracy(model, ds, batch_size=batch_size, device=device))
                continue
            g = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(f"{kind}:{float(sev)!r}".encode())) % (2**63))
            accs.append(
                evaluate_accuracy(
                    model,
                    data,
                    transform=lambda x, kind=kind, sev=sev, g=g: corrupt(x, kind, sev, generator=g, **corrupt_kwargs),
                    batch_size=batch_size,
                    device=device,
                )
            )
        out["severities"][kind] = sevs
        out["accuracy"][kind] = accs
        out["change"][kind] = None if clean is None else [a - clean for a in accs]
    return out


def evaluate_weight_noise(
    model: nn.Module,
    data: Any,
    sigmas: Sequence[float] = (0.01, 0.02, 0.05, 0.1, 0.2),
    *,
    modules: ModuleRefs = None,
    readout: Union[str, nn.Module, None] = None,
    repeats: int = 3,
    relative: bool = False,
    include_bias: bool = True,
    seed: int = 0,
    batch_size: int = 128,
    device: Optional[Union[str, torch.device]] = None,
) -> Dict[str, Any]:
    r"""Robustness to Gaussian weight noise (Truong & Hasson, arXiv:2508.00043).

    For each σ and ``repeats`` noise draws (:func:`perturb_weights`): (a) the accuracy change
    from the clean model, and (b) the cosine similarity between the readout's class-weight RSM
    (:func:`readout_rsm`, the Pearson correlations between its rows) before and after the
    perturbation, over the off-diagonal upper triangle:

    .. math:: \cos(\mathrm{RSM}, \mathrm{RSM}') = \frac{\langle u, u' \rangle}{\lVert u\rVert\,\lVert u'\rVert},
              \quad u = \mathrm{triu}_{>0}(\mathrm{RSM})

    (1 when the readout is not among the perturbed modules.)

    Args:
        model: the classifier.
        data: labelled data as in :func:`evaluate_corruptions`.
        sigmas: noise SDs.
        modules: perturbed modules (default: all layers); e.g. ``"fc1"``.
        readout: the readout layer (default: the last ``nn.Linear`` of the model).
        repeats: noise draws per σ (results averaged).

    Returns:
        a dict: ``"clean"`` accuracy (%), and lists over σ of ``"accuracy"``, ``"change"``
        (percentage points) and ``"rsm_cosine"``, means over the repeats; ``"sigmas"``.
    """
    who = "evaluate_weight_noise"
    repeats = check_int(repeats, "repeats", who, minimum=1)
    if readout is None:
        lin = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not lin:
            raise ValueError(f"{who}: the model has no nn.Linear readout; pass readout=")
        ro = lin[-1]
    else:
        ro = resolve_module(model, readout, who)[1]
    if not isinstance(getattr(ro, "weight", None), Tensor) or ro.weight.dim() != 2:
        raise TypeError(f"{who}: the readout must have a 2-D weight (classes × features), got {type(ro).__name__}")
    clean = evaluate_accuracy(model, data, batch_size=batch_size, device=device)
    rsm0 = readout_rsm(ro.weight)
    accs, rsms = [], []
    for si, sigma in enumerate(sigmas):
        a_s, r_s = [], []
        for r in range(repeats):
            dev = ro.weight.device
            g = torch.Generator(device=dev).manual_seed(seed * 1_000_003 + si * 1009 + r)
            with perturb_weights(model, float(sigma), modules=modules, relative=relative, include_bias=include_bias, generator=g):
                a_s.append(evaluate_accuracy(model, data, batch_size=batch_size, device=device))
                r_s.append(_rsm_cosine(rsm0, readout_rsm(ro.weight)))
        accs.append(sum(a_s) / repeats)
        rsms.append(sum(r_s) / repeats)
    return {
        "clean": clean,
        "sigmas": [float(s) for s in sigmas],
        "accuracy": accs,
        "change": [a - clean for a in accs],
        "rsm_cosine": rsms,
    }
