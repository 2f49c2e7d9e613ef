"""The published common-corruption benchmarks on disk, as Datasets (private; exported by
:mod:`torchtopo.data`).  Hendrycks & Dietterich, "Benchmarking neural network robustness to common
corruptions and perturbations" (ICLR 2019).  Nothing here downloads.
"""
from __future__ import annotations

import os
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ._checks import check_choice, check_int
from .robustness.corruptions import COMMON_CORRUPTIONS

__all__ = ["BENCHMARK_CORRUPTIONS", "CIFAR10C", "TinyImageNetC", "cifar10_c", "tiny_imagenet_c"]

#: The corruptions of the published sets: the 15 of the benchmark, then the 4 held-out ones.
BENCHMARK_CORRUPTIONS: Tuple[str, ...] = COMMON_CORRUPTIONS + ("speckle_noise", "gaussian_blur", "spatter", "saturate")

_CIFAR_LAYOUT = (
    "CIFAR-10-C's published layout: <root>/<corruption>.npy, a uint8 array of shape "
    "(50000, 32, 32, 3) holding the 10,000 CIFAR-10 test images at severity 1, then 2, … 5, and "
    "<root>/labels.npy, their (50000,) labels (e.g. <root>/fog.npy, <root>/labels.npy). "
    "torchtopo never downloads data"
)
_TINY_LAYOUT = (
    "Tiny ImageNet-C's published layout: <root>/<corruption>/<severity>/<wnid>/*.JPEG, one "
    "folder per class (WordNet id, e.g. n01443537) under each severity 1 … 5 (e.g. "
    "<root>/fog/3/n01443537/val_68.JPEG); the class index is the wnid's rank among the sorted "
    "folders. torchtopo never downloads data"
)
_IMAGE_EXT = (".jpeg", ".jpg", ".png")


def _check_args(root, corruption, severity, who: str) -> Tuple[str, str, int]:
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"{who}: root must be a path (str or os.PathLike), got {type(root).__name__}")
    check_choice(corruption, BENCHMARK_CORRUPTIONS, "corruption", who)
    severity = check_int(severity, "severity", who, minimum=1, maximum=5)
    root = os.path.expanduser(os.fspath(root))
    return root, corruption, severity


class CIFAR10C(Dataset):
    """One corruption at one severity of CIFAR-10-C: items ``(image, label)`` with ``image`` a
    (3, 32, 32) float32 tensor in [0, 1] (then ``transform(image)`` if given) and ``label`` an
    int.  The arrays are memory-mapped; see :func:`cifar10_c`."""

    def __init__(self, root, corruption: str, severity: int, transform: Optional[Callable] = None) -> None:
        who = "cifar10_c"
        root, corruption, severity = _check_args(root, corruption, severity, who)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"{who}: root {root!r} is not a folder. Expected {_CIFAR_LAYOUT}")
        path, lpath = os.path.join(root, corruption + ".npy"), os.path.join(root, "labels.npy")
        for p in (path, lpath):
            if not os.path.isfile(p):
                raise FileNotFoundError(f"{who}: {p!r} is missing. Expected {_CIFAR_LAYOUT}")
        images = np.load(path, mmap_mode="r")
        labels = np.load(lpath, mmap_mode="r")
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] % 5:
            raise ValueError(
                f"{who}: {path!r} holds an array of shape {images.shape} and dtype {images.dtype}; "
                f"expected uint8 (5·n, H, W, 3), the five severities stacked. Expected {_CIFAR_LAYOUT}"
            )
        n = images.shape[0] // 5
        if labels.ndim != 1 or labels.shape[0] not in (n, 5 * n):
            raise ValueError(
                f"{who}: {lpath!r} holds an array of shape {labels.shape}; expected ({5 * n},) or ({n},) "
                f"labels for the {5 * n} images of {path!r}"
            )
        self.images = images[(severity - 1) * n : severity * n]
        self.labels = labels[(severity - 1) * n : severity * n] if labels.shape[0] == 5 * n else labels
        self.corruption, self.severity, self.transform = corruption, severity, transform

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int):
        x = torch.from_numpy(np.array(self.images[i], dtype=np.float32)).permute(2, 0, 1) / 255.0
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[i])


class TinyImageNetC(Dataset):
    """One corruption at one severity of Tiny ImageNet-C: items ``(image, label)`` with
    ``image`` a (3, 64, 64) float32 tensor in [0, 1] (then ``transform(image)`` if given);
    ``classes`` the sorted wnids, ``samples`` the (path, label) list.  See
    :func:`tiny_imagenet_c`."""

    def __init__(self, root, corruption: str, severity: int, transform: Optional[Callable] = None) -> None:
        who = "tiny_imagenet_c"
        root, corruption, severity = _check_args(root, corruption, severity, who)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"{who}: root {root!r} is not a folder. Expected {_TINY_LAYOUT}")
        folder = os.path.join(root, corruption, str(severity))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{who}: {folder!r} is missing. Expected {_TINY_LAYOUT}")
        self.classes: List[str] = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
        self.samples: List[Tuple[str, int]] = []
        for k, wnid in enumerate(self.classes):
            d = os.path.join(folder, wnid)
            for f in sorted(os.listdir(d)):
                if f.lower().endswith(_IMAGE_EXT):
                    self.samples.append((os.path.join(d, f), k))
        if not self.samples:
            raise FileNotFoundError(f"{who}: no images (*.JPEG) in the class folders of {folder!r}. Expected {_TINY_LAYOUT}")
        self.corruption, self.severity, self.transform = corruption, severity, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        try:
            from PIL import Image
        except ImportError as e:  # pragma: no cover - Pillow comes with torchvision
            raise ImportError("tiny_imagenet_c reads JPEG files with Pillow: pip install pillow") from e
        path, y = self.samples[i]
        with Image.open(path) as im:
            a = np.asarray(im.convert("RGB"), dtype=np.float32)
        x = torch.from_numpy(a.copy()).permute(2, 0, 1) / 255.0
        if self.transform is not None:
            x = self.transform(x)
        return x, y


def cifar10_c(root, corruption: str, severity: int, *, transform: Optional[Callable] = None) -> CIFAR10C:
    """CIFAR-10-C (Hendrycks & Dietterich, ICLR 2019) from disk: the 10,000 CIFAR-10 test images
    under ``corruption`` at ``severity`` (1 … 5), as a Dataset of ((3, 32, 32) images in [0, 1],
    labels).  Reads ``<root>/<corruption>.npy`` ((50000, 32, 32, 3) uint8, severities 1 … 5 in
    blocks of 10,000) and ``<root>/labels.npy``; a missing folder or file raises
    ``FileNotFoundError`` naming the expected layout.  Never downloads.

    ``corruption``: one of :data:`BENCHMARK_CORRUPTIONS` (the 15, plus the held-out
    speckle_noise, gaussian_blur, spatter, saturate).  Pass the Datasets to
    :func:`torchtopo.robustness.evaluate_corruptions` (``datasets=``) to report on the benchmark.
    """
    return CIFAR10C(root, corruption, severity, transform)


def tiny_imagenet_c(root, corruption: str, severity: int, *, transform: Optional[Callable] = None) -> TinyImageNetC:
    """Tiny ImageNet-C (Hendrycks & Dietterich, ICLR 2019) from disk: the 10,000 Tiny ImageNet
    validation images under ``corruption`` at ``severity`` (1 … 5), as a Dataset of
    ((3, 64, 64) images in [0, 1], labels).  Reads ``<root>/<corruption>/<severity>/<wnid>/*.JPEG``;
    the label is the wnid's index among the sorted class folders (the order of torchvision's
    ``ImageFolder`` over Tiny ImageNet's ``train``, so a model trained with
    :func:`torchtopo.data.tiny_imagenet` gets matching labels).  A missing folder raises
    ``FileNotFoundError`` naming the expected layout.  Never downloads.
    """
    return TinyImageNetC(root, corruption, severity, transform)
