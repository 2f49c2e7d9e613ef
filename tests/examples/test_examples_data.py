"""The examples' torchvision-dataset branches (CIFAR-10, full MNIST, Tiny ImageNet), which the
offline CI cannot reach with real data: the loaders are replaced by small fake datasets of the
right shapes, and each example's ``load_data`` must turn them into the tensors it trains on."""
import pytest
import torch
from _scripts import load_script

import torchtopo as tt


class FakeImages(torch.utils.data.Dataset):
    """n images of shape ``shape`` in [0, 1] with int labels, like a torchvision dataset."""

    def __init__(self, n, shape, classes=10):
        g = torch.Generator().manual_seed(n)
        self.x = torch.rand(n, *shape, generator=g)
        self.y = torch.randint(0, classes, (n,), generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


@pytest.fixture
def fake_datasets(monkeypatch):
    monkeypatch.setattr(tt.data, "cifar10", lambda root, train=True, **kw: FakeImages(60 if train else 30, (3, 32, 32)))
    monkeypatch.setattr(tt.data, "mnist", lambda root, train=True, **kw: FakeImages(50 if train else 20, (1, 28, 28)))
    monkeypatch.setattr(tt.data, "tiny_imagenet",
                        lambda root, split="train", **kw: FakeImages(40 if split == "train" else 16, (3, 64, 64), 200))


@pytest.mark.parametrize("dataset, n_train, n_test, shape", [
    ("cifar10", None, None, (3, 32, 32)), ("cifar10", 25, 7, (3, 32, 32)), ("mnist", 12, None, (1, 28, 28)),
])
def test_topographic_example_loads_torchvision_data(fake_datasets, tmp_path, dataset, n_train, n_test, shape):
    mod = load_script("examples/topographic_mnist.py")
    argv = ["--dataset", dataset, "--data-root", str(tmp_path), "--out", str(tmp_path / "out")]
    argv += ["--n-train", str(n_train)] if n_train else []
    argv += ["--n-test", str(n_test)] if n_test else []
    xtr, ytr, xte, yte, mean, std = mod.load_data(mod.parse_args(argv))
    full = {"cifar10": (60, 30), "mnist": (50, 20)}[dataset]
    assert xtr.shape == (n_train or full[0], *shape) and ytr.shape == (xtr.shape[0],)
    assert xte.shape == (n_test or full[1], *shape) and yte.dtype == torch.int64
    ref = tt.data.cifar10(None, train=True) if dataset == "cifar10" else tt.data.mnist(None, train=True)
    assert torch.equal(xtr, ref.x[: xtr.shape[0]])  # the first n, in order
    assert len(mean) == shape[0] and len(std) == shape[0]


@pytest.mark.parametrize("dataset, shape, classes", [("cifar10", (3, 32, 32), 10), ("tiny-imagenet", (3, 64, 64), 200),
                                                     ("mnist", (1, 28, 28), 10)])
def test_v1_example_loads_torchvision_data(fake_datasets, tmp_path, dataset, shape, classes):
    mod = load_script("examples/v1_front_robustness.py")
    argv = ["--dataset", dataset, "--data-root", str(tmp_path), "--out", str(tmp_path / "out"),
            "--n-train", "9", "--n-test", "5"]
    xtr, ytr, xte, yte, mean, std, ncls = mod.load_data(mod.parse_args(argv))
    assert xtr.shape == (9, *shape) and xte.shape == (5, *shape) and ncls == classes
    # a fixed random subset (seed 1234), the same on every call
    again = mod.load_data(mod.parse_args(argv))
    assert torch.equal(xtr, again[0]) and torch.equal(yte, again[3])


def test_hebbian_example_loads_torchvision_data(fake_datasets, tmp_path):
    mod = load_script("examples/hebbian_divisive.py")
    argv = ["--dataset", "cifar10", "--data-root", str(tmp_path), "--out", str(tmp_path / "out"),
            "--n-train", "11", "--n-test", "6"]
    train, xte, yte = mod.load_data(mod.parse_args(argv))
    assert len(train) == 11 and xte.shape == (6, 3, 32, 32) and yte.shape == (6,)
