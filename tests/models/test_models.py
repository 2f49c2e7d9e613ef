"""The study CNNs and the model registry (list_models / get_model, the shared arguments)."""
import pytest
import torch
from torch import nn

import torchtopo as tt

# small settings per factory, so that every registered model runs a forward on a CPU quickly
SMALL = {
    "mnist_cnn": ({}, 28),
    "cifar_cnn": ({}, 32),
    "hah_cnn": (dict(widths=(4, 8), image_size=16), 16),
    "vgg16_hah": (dict(cfg=(8, "M", 16, "M"), hah_layers=1), 4),  # the pools leave 1 × 1
    "lgn_cnn": (dict(channels=4, hidden=8), 16),
    "vone_resnet18": (dict(preset="cifar", simple_channels=4, complex_channels=4, noise=None), 32),
}


def test_study_architectures():
    m = tt.models.mnist_cnn()
    convs = [l for l in m.features if isinstance(l, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(1, 32, (3, 3)), (32, 64, (3, 3))]
    assert isinstance(m.fc1, tt.TopoLinear) and m.fc1.in_features == 64 and m.fc1.grid == tt.Grid(11, 11)
    assert m.fc2.in_features == 121 and m.fc2.out_features == 10 and m.dropout.p == 0.5
    assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    c = tt.models.cifar_cnn()
    convs = [l for l in c.features if isinstance(l, nn.Conv2d)]
    assert [cv.out_channels for cv in convs] == [32, 64, 128, 256]
    assert sum(isinstance(l, nn.BatchNorm2d) for l in c.features) == 4
    assert sum(isinstance(l, nn.MaxPool2d) for l in c.features) == 3
    assert c.fc1.in_features == 256 and c.fc1.out_features == 121
    # a hook on fc1 sees the pre-ReLU output (negative values present)
    seen = {}
    m.fc1.register_forward_hook(lambda mod, i, o: seen.setdefault("o", o))
    m(torch.randn(8, 1, 28, 28))
    assert (seen["o"] < 0).any()


def test_list_models():
    names = tt.models.list_models()
    assert names == sorted(names)
    assert set(names) == set(SMALL)


def test_get_model_builds_the_factory():
    torch.manual_seed(0)
    a = tt.models.get_model("mnist_cnn", num_classes=5, grid=(2, 3))
    torch.manual_seed(0)
    b = tt.models.mnist_cnn(5, grid=(2, 3))
    assert type(a) is type(b) and a.fc1.out_features == 6 and a.fc2.out_features == 5
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and torch.equal(pa, pb)


def test_get_model_unknown_name():
    with pytest.raises(ValueError, match="unknown model 'mnist_cn'.*did you mean 'mnist_cnn'"):
        tt.models.get_model("mnist_cn")
    with pytest.raises(ValueError, match="available: cifar_cnn"):
        tt.models.get_model("resnet50")
    with pytest.raises(TypeError, match="name must be a string"):
        tt.models.get_model(3)


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("in_channels", [1, 3])
def test_every_factory_takes_the_shared_arguments(name, in_channels):
    kwargs, size = SMALL[name]
    x = torch.rand(2, in_channels, size, size)
    stats = ([0.5] * in_channels, [0.25] * in_channels)
    outs = {}
    for normalize in (None, False, stats):
        torch.manual_seed(0)
        m = tt.models.get_model(name, num_classes=3, in_channels=in_channels, normalize=normalize, **kwargs).eval()
        has_norm = any(isinstance(mod, tt.data.Normalize) for mod in m.modules())
        assert has_norm == (normalize is stats)
        with torch.no_grad():
            outs[str(normalize)] = m(x if normalize is not stats else x * 0.25 + 0.5)
        assert outs[str(normalize)].shape == (2, 3)
    # the pair is applied first: feeding x*std + mean through it equals feeding x without it
    torch.testing.assert_close(outs[str(stats)], outs["None"])


@pytest.mark.parametrize("name", sorted(SMALL))
def test_normalize_true_uses_the_default_dataset(name):
    kwargs, size = SMALL[name]
    m = tt.models.get_model(name, num_classes=3, normalize=True, **kwargs)
    norms = [mod for mod in m.modules() if isinstance(mod, tt.data.Normalize)]
    assert len(norms) == 1
    channels = norms[0].mean.numel()
    expected = {"mnist_cnn": [tt.data.MNIST_MEAN], "hah_cnn": [tt.data.MNIST_MEAN],
                "lgn_cnn": [tt.data.MNIST_MEAN]}.get(name, list(tt.data.CIFAR10_MEAN))
    torch.testing.assert_close(norms[0].mean.flatten(), torch.tensor(expected)[:channels])
    assert m(torch.rand(2, channels, size, size)).shape == (2, 3)


def test_normalize_arguments():
    # single-channel statistics are repeated over the channels
    m = tt.models.mnist_cnn(in_channels=3, normalize=True)
    assert m.normalize.mean.flatten().tolist() == pytest.approx([tt.data.MNIST_MEAN] * 3)
    assert tt.models.vone_resnet18(10, preset="mnist", normalize=True).conv1.normalize.mean.numel() == 1
    with pytest.raises(ValueError, match="CIFAR-10 statistics"):
        tt.models.cifar_cnn(in_channels=1, normalize=True)
    with pytest.raises(ValueError, match="normalize's std must hold 1 or in_channels=3"):
        tt.models.cifar_cnn(normalize=((0.5, 0.5, 0.5), (0.2, 0.2)))
    with pytest.raises(TypeError, match="normalize must be None, a bool or a"):
        tt.models.lgn_cnn(normalize="imagenet")
    # the examples' defaults are unchanged: the HaH models normalise, the others do not
    assert isinstance(tt.models.hah_cnn(widths=(4,)).normalize, tt.data.Normalize)
    assert isinstance(tt.models.mnist_cnn().normalize, nn.Identity)


def test_vone_resnet18_in_channels_and_front():
    front = tt.V1Front.mnist(simple_channels=4, complex_channels=4)
    m = tt.models.vone_resnet18(4, front=front)
    assert m(torch.rand(1, 1, 28, 28)).shape == (1, 4)
    with pytest.raises(ValueError, match="in_channels=3 but the front has in_channels=1"):
        tt.models.vone_resnet18(4, 3, front=tt.V1Front.mnist(simple_channels=4, complex_channels=4))
    with pytest.raises(ValueError, match="preset must be one of"):
        tt.models.vone_resnet18(4, preset="svhn")


def test_hahnet_alias():
    assert tt.models.VGG is tt.models.HaHNet
    assert isinstance(tt.models.hah_cnn(widths=(4,)), tt.models.VGG)
