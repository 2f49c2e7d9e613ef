"""The HaH layers, GDN, the Hebbian term, to_hah and the HaH models (Cekic et al.,
arXiv:2202.13074; GDN: Ballé et al., ICLR 2016)."""
import pytest
import torch
from torch import nn

import torchtopo as tt
from torchtopo import functional as TF

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- GDN
def test_gdn_closed_form_at_init():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 4, 3) * 3
    y = tt.GDN(5)(x)
    torch.testing.assert_close(y, x / torch.sqrt(1 + 0.1 * x ** 2), rtol=1e-5, atol=1e-6)
    yi = tt.GDN(5, inverse=True)(x)
    torch.testing.assert_close(yi, x * torch.sqrt(1 + 0.1 * x ** 2), rtol=1e-5, atol=1e-6)


def test_gdn_mixes_channels_and_stays_nonnegative():
    torch.manual_seed(0)
    g = tt.GDN(3)
    with torch.no_grad():
        g.gamma_param.fill_(-5.0)  # raw values below the bound: effective gamma is 0, beta 1
        g.beta_param.fill_(-1.0)
    assert (g.gamma >= 0).all() and (g.beta >= g.beta_min - 1e-12).all()
    g = tt.GDN(3)
    with torch.no_grad():
        g.gamma_param.copy_(torch.sqrt(torch.tensor([[0.1, 0.2, 0.0], [0.0, 0.1, 0.0], [0.3, 0.0, 0.1]])))
    x = torch.randn(2, 3, 2, 2)
    want = torch.empty_like(x)
    gam = g.gamma.detach()
    for i in range(3):
        want[:, i] = x[:, i] / torch.sqrt(1 + sum(gam[i, j] * x[:, j] ** 2 for j in range(3)))
    torch.testing.assert_close(g(x), want, rtol=1e-5, atol=1e-6)


def test_gdn_gradient_leaves_lower_bound_upwards():
    g = tt.GDN(2)
    with torch.no_grad():
        g.gamma_param.zero_()  # at / below the bound
    x = torch.randn(1, 2, 3, 3)
    # minimising -y² wants larger y: smaller gamma -> no gradient passes downwards
    (-(g(x) ** 2).sum()).backward()
    assert torch.all(g.gamma_param.grad == 0)
    g.zero_grad()
    ((g(x) ** 2).sum()).backward()  # wants larger gamma: passes
    assert torch.any(g.gamma_param.grad != 0)


def test_gdn_state_dict_roundtrip():
    torch.manual_seed(1)
    g = tt.GDN(4, inverse=True)
    with torch.no_grad():
        g.gamma_param.add_(0.1 * torch.rand(4, 4))
    h = tt.GDN(4, inverse=True)
    h.load_state_dict(g.state_dict())
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(g(x), h(x))
    assert set(g.state_dict()) == {"beta_param", "gamma_param"}


def _compressai_state(beta, gamma, beta_min=1e-6, pedestal=2.0 ** -36):
    """A state dict in the format of compressai.layers.GDN: parameters stored as
    sqrt(θ + pedestal), buffers pedestal and lower_bound.bound = sqrt(minimum + pedestal)."""
    return {
        "beta": torch.sqrt(beta + pedestal),
        "gamma": torch.sqrt(gamma + pedestal),
        "beta_reparam.pedestal": torch.tensor([pedestal]),
        "beta_reparam.lower_bound.bound": torch.tensor([(beta_min + pedestal) ** 0.5]),
        "gamma_reparam.pedestal": torch.tensor([pedestal]),
        "gamma_reparam.lower_bound.bound": torch.tensor([pedestal ** 0.5]),
    }


@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_loads_compressai_state_dict(inverse):
    beta = torch.tensor([1.5, 0.5, 2.0])
    gamma = torch.tensor([[0.2, 0.0, 0.1], [0.05, 0.3, 0.0], [0.0, 0.4, 0.1]])
    g = tt.GDN(3, inverse=inverse)
    res = g.load_state_dict(_compressai_state(beta, gamma))
    assert not res.missing_keys and not res.unexpected_keys
    torch.testing.assert_close(g.beta.detach(), beta)
    torch.testing.assert_close(g.gamma.detach(), gamma)
    x = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    norm = beta.view(1, 3, 1, 1) + torch.einsum("ij,bjhw->bihw", gamma, x ** 2)
    want = x * norm.sqrt() if inverse else x / norm.sqrt()
    torch.testing.assert_close(g(x), want, rtol=1e-5, atol=1e-6)
    # inside a model, under a prefix; and with another pedestal (re-encoded with ours)
    m = nn.Sequential(nn.Identity(), tt.GDN(3, inverse=inverse))
    sd = {"1." + k: v for k, v in _compressai_state(beta, gamma, pedestal=2.0 ** -20).items()}
    m.load_state_dict(sd)
    torch.testing.assert_close(m[1].gamma.detach(), gamma, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(m(x), want, rtol=1e-5, atol=1e-5)
    # its own names still load, and a wrong shape is still an error
    h = tt.GDN(3, inverse=inverse)
    h.load_state_dict(g.state_dict())
    torch.testing.assert_close(h(x), g(x))
    with pytest.raises(RuntimeError, match="size mismatch"):
        tt.GDN(4).load_state_dict(_compressai_state(beta, gamma))


def test_gdn_bad_input():
    with pytest.raises(ValueError, match="channels-last"):
        tt.GDN(3)(torch.randn(2, 5, 5, 3))
    with pytest.raises(ValueError, match="4-D"):
        tt.GDN(3)(torch.randn(2, 3))
    with pytest.raises(ValueError, match="channels"):
        tt.GDN(0)
    with pytest.raises(ValueError, match="beta_min"):
        tt.GDN(3, beta_min=0.0)
    with pytest.raises(ValueError, match="gamma_init"):
        tt.GDN(3, gamma_init=-0.1)


# ----------------------------------------------------------------------------- divisive norm, threshold
def test_divisive_norm_module():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    for sigma, window in [(0.1, 3), (1.0, 5)]:
        torch.testing.assert_close(tt.DivisiveNorm(sigma, window)(x), TF.divisive_norm(x, sigma=sigma, window=window))
    with pytest.raises(ValueError, match="window"):
        tt.DivisiveNorm(window=2)
    with pytest.raises(ValueError, match="sigma"):
        tt.DivisiveNorm(sigma=1.5)


def test_threshold_about_keep_fraction_on_real_sized_maps():
    x = torch.randn(4, 8, 32, 32)
    y = tt.FractionalThreshold(0.2)(x)
    frac = (y != 0).float().mean((2, 3))
    assert torch.allclose(frac, torch.full_like(frac, 0.2), atol=1.0 / 1024 + 1e-6)


def test_threshold_module_bad_keep():
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="keep"):
            tt.FractionalThreshold(bad)


# ----------------------------------------------------------------------------- normalized conv
def test_normalized_conv_formula_and_scale_invariance():
    torch.manual_seed(0)
    conv = tt.NormalizedConv2d(3, 5, 3, padding=1)
    assert conv.bias is None
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    conv = conv.double()
    y = conv(x)
    plain = nn.functional.conv2d(x, conv.weight, padding=1)
    norms = conv.weight.flatten(1).norm(dim=1)
    torch.testing.assert_close(y, plain / (norms + 1e-6).reshape(1, -1, 1, 1))
    with torch.no_grad():
        conv.weight.mul_(torch.tensor([7.0, 0.5, 3.0, 100.0, 0.25], dtype=torch.float64).reshape(-1, 1, 1, 1))
    torch.testing.assert_close(conv(x), y, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(TF.normalized_conv2d(x, conv.weight, padding=1), conv(x))


def test_normalized_conv_dropin_and_from_conv():
    base = nn.Conv2d(4, 6, 3, stride=2, padding=1, padding_mode="reflect")
    nc = tt.NormalizedConv2d.from_conv(base)
    x = torch.randn(2, 4, 9, 9)
    assert nc(x).shape == base(x).shape
    torch.testing.assert_close(nc.weight, base.weight)
    w = base.weight / (base.weight.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1) + 1e-6)
    want = nn.functional.conv2d(nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"), w, stride=2)
    torch.testing.assert_close(nc(x), want)
    nb = tt.NormalizedConv2d(4, 6, 3, bias=True)
    nb2 = tt.NormalizedConv2d(4, 6, 3, bias=True)
    nb2.load_state_dict(nb.state_dict())
    torch.testing.assert_close(nb(x), nb2(x))


def test_normalized_conv_bad_input():
    conv = tt.NormalizedConv2d(3, 4, 3)
    with pytest.raises(ValueError, match="channels-last"):
        conv(torch.randn(2, 8, 8, 3))
    with pytest.raises(ValueError, match="4-D"):
        conv(torch.randn(2, 3))


def test_normalized_conv_unbatched_like_conv2d():
    conv = tt.NormalizedConv2d(2, 3, 3, padding=1)
    x = torch.randn(2, 5, 5)
    torch.testing.assert_close(conv(x), conv(x.unsqueeze(0))[0])


# ----------------------------------------------------------------------------- HebbianLoss term
def test_hebbian_loss_bad_options():
    for bad in (0.0, 1.0, -0.2, 1.3):
        with pytest.raises(ValueError, match="k_ratio"):
            tt.HebbianLoss(1.0, k_ratio=bad)
    with pytest.raises(ValueError, match="demote"):
        tt.HebbianLoss(1.0, demote=-1)


def _two_layer():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 8, 3, padding=1), nn.ReLU(), tt.NormalizedConv2d(8, 20, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(20, 3),
    )


@pytest.mark.parametrize("local", [True, False])
def test_hebbian_loss_value_and_gradient_locality(local):
    model = _two_layer()
    reg = tt.attach(model, {"2": tt.HebbianLoss(0.5, k_ratio=0.1, demote=0.1, local=local)})
    x = torch.randn(3, 2, 5, 5)
    model(x)
    with torch.no_grad():
        z = model[2](model[1](model[0](x)))
    p = reg.penalty()
    torch.testing.assert_close(p, -0.5 * TF.hebbian_cost(z), rtol=1e-5, atol=1e-6)
    p.backward()
    assert model[2].weight.grad is not None and model[2].weight.grad.abs().sum() > 0
    g0 = model[0].weight.grad
    if local:
        assert g0 is None or torch.all(g0 == 0)
    else:
        assert g0 is not None and g0.abs().sum() > 0
    assert torch.isfinite(reg.losses()["2"])
    assert reg.config()["terms"]["2"]["local"] is local
    reg.remove()


def test_hebbian_loss_local_with_task_loss_matches_separate_grads():
    """local=True: penalty's gradient on the layer = d(-αH)/dW with the input fixed; the task
    loss's gradient is unchanged by the recomputation."""
    model = _two_layer()
    x, y = torch.randn(4, 2, 5, 5), torch.tensor([0, 1, 2, 0])
    reg = tt.attach(model, {"2": tt.HebbianLoss(0.3)})
    task = nn.functional.cross_entropy(model(x), y)
    (task + reg.penalty()).backward()
    g_all = model[2].weight.grad.clone()
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    g_task = model[2].weight.grad.clone()
    model.zero_grad()
    h = model[1](model[0](x)).detach()
    (-0.3 * TF.hebbian_cost(model[2](h))).backward()
    torch.testing.assert_close(g_all, g_task + model[2].weight.grad, rtol=1e-5, atol=1e-7)
    reg.remove()


def test_hebbian_loss_bind_errors():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4, 8))
    with pytest.raises(TypeError, match=r"'2' \(Linear, weight \(8, 4\)\).*convolution"):
        tt.attach(model, {"2": tt.HebbianLoss(1.0)})
    with pytest.raises(ValueError, match=r"'0' \(Conv2d, weight \(4, 1, 3, 3\)\).*k_ratio"):
        tt.attach(model, {"0": tt.HebbianLoss(1.0, k_ratio=0.9)})
    with pytest.raises(TypeError, match="local"):
        tt.HebbianLoss(1.0, local="yes")
    term = tt.HebbianLoss(1.0, local=False)
    term.bind("conv", nn.Conv2d(1, 10, 3))
    with pytest.raises(ValueError, match=r"4-D channels-first.*\(5, 10\)"):
        term.loss(None, None, torch.randn(5, 10))
    with pytest.raises(ValueError, match="channels-last"):
        term.loss(None, None, torch.randn(2, 6, 6, 10))


# ----------------------------------------------------------------------------- blocks, conversion, models
def test_hah_block_pipeline_matches_functional():
    torch.manual_seed(0)
    blk = tt.HaHBlock(3, 10, sigma=0.2, keep=0.3)
    x = torch.randn(2, 3, 8, 8)
    want = TF.fractional_threshold(
        TF.divisive_norm(torch.relu(TF.normalized_conv2d(x, blk.conv.weight, padding=1)), sigma=0.2), keep=0.3
    )
    torch.testing.assert_close(blk(x), want)
    blk2 = tt.HaHBlock(3, 10, sigma=0.2, keep=0.3)
    blk2.load_state_dict(blk.state_dict())
    torch.testing.assert_close(blk2(x), want)


def test_to_hah_on_vgg_and_resnet_styles():
    vgg = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
    )
    w0 = vgg[0].weight.detach().clone()
    tt.to_hah(vgg, 2, keep=0.3)
    assert isinstance(vgg[0], tt.NormalizedConv2d) and isinstance(vgg[1], tt.HaHActivation)
    assert isinstance(vgg[3], tt.NormalizedConv2d) and isinstance(vgg[4], tt.HaHActivation)
    assert type(vgg[6]) is nn.Conv2d and isinstance(vgg[7], nn.ReLU)
    torch.testing.assert_close(vgg[0].weight, w0)
    assert vgg[1].threshold.keep == 0.3
    assert tt.hah_layer_names(vgg) == ["0", "3"]
    assert vgg(torch.rand(2, 3, 8, 8)).shape == (2, 16, 4, 4)
    with pytest.raises(ValueError, match="only 1 convertible"):
        tt.to_hah(vgg, 2)
    with pytest.raises(ValueError, match="n_blocks must be >= 1"):
        tt.to_hah(vgg, 0)

    torchvision = pytest.importorskip("torchvision")
    res = torchvision.models.resnet18(num_classes=5)
    tt.to_hah(res, 3)
    names = tt.hah_layer_names(res)
    assert names == ["conv1", "layer1.0.conv1", "layer1.0.conv2"]
    assert isinstance(res.bn1, tt.HaHActivation) and isinstance(res.layer1[0].bn2, tt.HaHActivation)
    assert type(res.layer2[0].downsample[0]) is nn.Conv2d
    reg = tt.attach(res, tt.hebbian_terms(res, 0.01))
    x = torch.rand(2, 3, 32, 32)
    loss = nn.functional.cross_entropy(res(x), torch.tensor([0, 1])) + reg.penalty()
    loss.backward()
    assert set(reg.losses()) == set(names)
    assert torch.isfinite(res.conv1.weight.grad).all()


def test_vgg16_hah_structure_and_training_step():
    m = tt.models.vgg16_hah(num_classes=10)
    names = tt.hah_layer_names(m)
    assert len(names) == 6
    assert [m.get_submodule(n).out_channels for n in names] == [64, 64, 128, 128, 256, 256]
    assert sum(isinstance(x, nn.BatchNorm2d) for x in m.modules()) == 7
    base = tt.models.vgg16_hah(hah_layers=0)
    assert not tt.hah_layer_names(base) and sum(isinstance(x, nn.Conv2d) for x in base.modules()) == 13
    terms = tt.hebbian_terms(m)
    assert [t.strength for t in terms.values()] == list(tt.PAPER_HEBBIAN_STRENGTHS)
    reg = tt.attach(m, terms)
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    x, y = torch.rand(2, 3, 32, 32), torch.tensor([3, 7])
    loss = nn.functional.cross_entropy(m(x), y) + reg.penalty()
    loss.backward()
    opt.step()
    assert all(torch.isfinite(p).all() for p in m.parameters())
    m2 = tt.models.vgg16_hah()
    m2.load_state_dict(m.state_dict())
    m.eval(), m2.eval()
    torch.testing.assert_close(m(x), m2(x))
    with pytest.raises(ValueError, match="hah_layers"):
        tt.models.vgg16_hah(hah_layers=14)
    with pytest.raises(ValueError, match="strengths"):
        tt.hebbian_terms(m, [0.1] * 7)


def test_hah_model_under_bf16_autocast_and_to():
    m = tt.models.hah_cnn(widths=(8, 16)).to(torch.device("cpu"), torch.float64).float()
    reg = tt.attach(m, tt.hebbian_terms(m, [0.0045, 0.0025]))
    x = torch.rand(3, 1, 28, 28)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(x)
        p = reg.penalty()
    assert p.dtype == torch.float32 and torch.isfinite(p)
    (out.float().logsumexp(1).mean() + p).backward()
    assert all(torch.isfinite(q.grad).all() for q in m.parameters() if q.grad is not None)
    reg.remove()
