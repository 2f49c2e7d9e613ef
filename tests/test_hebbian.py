"""HaH layers, functional forms and the Hebbian term (STUDIES.md §3) against brute-force oracles."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import torchtopo as tt
from torchtopo import functional as TF

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- oracles
def divisive_norm_oracle(x, sigma, window):
    B, C, H, W = x.shape
    r = window // 2
    s = torch.zeros(B, H, W, dtype=x.dtype)
    for b in range(B):
        for i in range(H):
            for j in range(W):
                tot = 0.0
                for c in range(C):
                    m = 0.0
                    for di in range(-r, r + 1):
                        for dj in range(-r, r + 1):
                            ii, jj = i + di, j + dj
                            if 0 <= ii < H and 0 <= jj < W:
                                m = max(m, abs(float(x[b, c, ii, jj])))
                    tot += m
                s[b, i, j] = tot / C
    y = torch.zeros_like(x)
    for b in range(B):
        S = float(s[b].max())
        for c in range(C):
            for i in range(H):
                for j in range(W):
                    y[b, c, i, j] = x[b, c, i, j] / (sigma * S + (1 - sigma) * float(s[b, i, j]) + 1e-7)
    return y


def hebbian_oracle(z, k_ratio, demote):
    """Full sort at every image and position (the definition), plain loops."""
    B, C = z.shape[:2]
    zz = z.reshape(B, C, -1)
    K = math.ceil(k_ratio * C - 1e-9)
    vals = []
    for b in range(B):
        for p in range(zz.shape[2]):
            a = sorted((max(0.0, float(zz[b, c, p])) for c in range(C)), reverse=True)
            top = sum(a[:K]) / K
            rest = sum(a[K:]) / (C - K)
            vals.append(top - demote * rest)
    return sum(vals) / len(vals)


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


def test_gdn_state_dict_roundtrip_and_gradcheck():
    torch.manual_seed(1)
    g = tt.GDN(4, inverse=True)
    with torch.no_grad():
        g.gamma_param.add_(0.1 * torch.rand(4, 4))
    h = tt.GDN(4, inverse=True)
    h.load_state_dict(g.state_dict())
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(g(x), h(x))
    assert set(g.state_dict()) == {"beta_param", "gamma_param"}
    xd = torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    beta = (torch.rand(3, dtype=torch.float64) + 0.5).requires_grad_()
    gamma = (torch.rand(3, 3, dtype=torch.float64) * 0.3).requires_grad_()
    for inv in (False, True):
        assert torch.autograd.gradcheck(lambda a, b, c: TF.gdn(a, b, c, inverse=inv), (xd, beta, gamma))


def test_gdn_bad_input():
    with pytest.raises(ValueError, match="channels-last"):
        tt.GDN(3)(torch.randn(2, 5, 5, 3))
    with pytest.raises(ValueError, match="4-D"):
        tt.GDN(3)(torch.randn(2, 3))
    with pytest.raises(ValueError, match="channels"):
        tt.GDN(0)


# ----------------------------------------------------------------------------- divisive norm
@pytest.mark.parametrize("sigma,window", [(0.1, 3), (0.5, 1), (1.0, 5), (0.0, 3)])
def test_divisive_norm_matches_loop_oracle(sigma, window):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    got = TF.divisive_norm(x, sigma=sigma, window=window)
    torch.testing.assert_close(got, divisive_norm_oracle(x, sigma, window))
    torch.testing.assert_close(tt.DivisiveNorm(sigma, window)(x), got)


def test_divisive_norm_zero_image_finite_and_gradcheck():
    y = TF.divisive_norm(torch.zeros(1, 2, 4, 4))
    assert torch.isfinite(y).all() and (y == 0).all()
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: TF.divisive_norm(a, sigma=0.1), (x,))


def test_divisive_norm_bad_input():
    with pytest.raises(ValueError, match=r"4-D channels-first"):
        TF.divisive_norm(torch.randn(8, 16))
    with pytest.raises(ValueError, match="window"):
        tt.DivisiveNorm(window=2)
    with pytest.raises(ValueError, match="sigma"):
        tt.DivisiveNorm(sigma=1.5)
    with pytest.raises(TypeError, match="floating"):
        TF.divisive_norm(torch.ones(1, 1, 2, 2, dtype=torch.long))


# ----------------------------------------------------------------------------- threshold
@settings(max_examples=25, deadline=None)
@given(
    B=st.integers(1, 3), C=st.integers(1, 4), H=st.integers(1, 9), W=st.integers(1, 9),
    keep=st.sampled_from([0.05, 0.2, 0.5, 0.9, 1.0]),
)
def test_threshold_keeps_top_fraction(B, C, H, W, keep):
    g = torch.Generator().manual_seed(B * 100 + C * 10 + H + W)
    x = torch.rand(B, C, H, W, generator=g) + 0.01  # distinct, positive
    y = TF.fractional_threshold(x, keep=keep)
    n = H * W
    k = math.floor((1 - keep) * n + 1e-9)
    kept = (y != 0).reshape(B, C, n).sum(-1)
    assert torch.all(kept == n - k)
    # the kept ones are the largest, unchanged
    for b in range(B):
        for c in range(C):
            v = x[b, c].flatten()
            order = sorted(range(n), key=lambda i: float(v[i]), reverse=True)
            want = torch.zeros(n)
            for i in order[: n - k]:
                want[i] = v[i]
            torch.testing.assert_close(y[b, c].flatten(), want)


def test_threshold_about_keep_fraction_on_real_sized_maps():
    x = torch.randn(4, 8, 32, 32)
    y = tt.FractionalThreshold(0.2)(x)
    frac = (y != 0).float().mean((2, 3))
    assert torch.allclose(frac, torch.full_like(frac, 0.2), atol=1.0 / 1024 + 1e-6)


def test_threshold_gradient_and_bad_input():
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: TF.fractional_threshold(a, keep=0.3), (x,))
    y = TF.fractional_threshold(x, keep=0.3)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y != 0).double())
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="keep"):
            tt.FractionalThreshold(bad)
    with pytest.raises(ValueError, match="4-D"):
        TF.fractional_threshold(torch.randn(3, 10))


# ----------------------------------------------------------------------------- hebbian cost
@pytest.mark.parametrize("C", [2, 3, 10, 17, 64])
@pytest.mark.parametrize("k_ratio", [0.05, 0.1, 0.3, 0.5])
def test_hebbian_cost_matches_full_sort_oracle(C, k_ratio):
    if math.ceil(k_ratio * C - 1e-9) >= C:
        pytest.skip("no rest")
    g = torch.Generator().manual_seed(C)
    z = torch.randn(2, C, 3, 2, generator=g, dtype=torch.float64)
    for demote in (0.1, 1.0):
        got = TF.hebbian_cost(z, k_ratio=k_ratio, demote=demote)
        assert got.shape == ()
        assert math.isclose(float(got), hebbian_oracle(z, k_ratio, demote), rel_tol=1e-10, abs_tol=1e-12)


def test_hebbian_cost_dense_and_dim():
    z = torch.randn(5, 20, dtype=torch.float64)
    assert math.isclose(float(TF.hebbian_cost(z)), hebbian_oracle(z, 0.1, 0.1), rel_tol=1e-10)
    zl = torch.randn(2, 3, 4, 20, dtype=torch.float64)  # channels last, dim honoured
    got = TF.hebbian_cost(zl, dim=-1)
    assert math.isclose(float(got), hebbian_oracle(zl.permute(0, 3, 1, 2), 0.1, 0.1), rel_tol=1e-10)


def test_hebbian_cost_gradcheck_and_half():
    z = torch.randn(2, 10, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: TF.hebbian_cost(a, k_ratio=0.2, demote=0.3), (z,))
    h = TF.hebbian_cost(torch.randn(2, 10, 3, 3).bfloat16())
    assert h.dtype == torch.float32 and torch.isfinite(h)
    assert float(TF.hebbian_cost(torch.zeros(1, 8, 2, 2))) == 0.0  # dead ReLUs: finite


def test_hebbian_cost_bad_input():
    for bad in (0.0, 1.0, -0.2, 1.3):
        with pytest.raises(ValueError, match="k_ratio"):
            TF.hebbian_cost(torch.randn(2, 8, 3, 3), k_ratio=bad)
        with pytest.raises(ValueError, match="k_ratio"):
            tt.HebbianLoss(1.0, k_ratio=bad)
    with pytest.raises(ValueError, match="no remaining channels"):
        TF.hebbian_cost(torch.randn(2, 2, 3, 3), k_ratio=0.6)
    with pytest.raises(ValueError, match="demote"):
        TF.hebbian_cost(torch.randn(2, 8), demote=-1)
    with pytest.raises(ValueError, match="at least 2-D"):
        TF.hebbian_cost(torch.randn(8))


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


def test_normalized_conv_gradcheck_and_bad_input():
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: TF.normalized_conv2d(a, b, padding=1), (x, w))
    conv = tt.NormalizedConv2d(3, 4, 3)
    with pytest.raises(ValueError, match="channels-last"):
        conv(torch.randn(2, 8, 8, 3))
    with pytest.raises(ValueError, match="4-D"):
        conv(torch.randn(2, 3))


# ----------------------------------------------------------------------------- HebbianLoss term
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


@settings(max_examples=20, deadline=None)
@given(
    B=st.integers(1, 3), C=st.integers(2, 24), H=st.integers(1, 4), W=st.integers(1, 4),
    k_ratio=st.floats(0.01, 0.99), demote=st.floats(0.0, 2.0),
)
def test_hebbian_cost_hypothesis_vs_oracle(B, C, H, W, k_ratio, demote):
    if math.ceil(k_ratio * C - 1e-9) >= C:
        with pytest.raises(ValueError, match="no remaining channels"):
            TF.hebbian_cost(torch.randn(B, C, H, W), k_ratio=k_ratio)
        return
    g = torch.Generator().manual_seed(B + 7 * C + 31 * H + 97 * W)
    z = torch.randn(B, C, H, W, generator=g, dtype=torch.float64)
    got = float(TF.hebbian_cost(z, k_ratio=k_ratio, demote=demote))
    assert math.isclose(got, hebbian_oracle(z, k_ratio, demote), rel_tol=1e-9, abs_tol=1e-12)


def test_normalized_conv_unbatched_like_conv2d():
    conv = tt.NormalizedConv2d(2, 3, 3, padding=1)
    x = torch.randn(2, 5, 5)
    torch.testing.assert_close(conv(x), conv(x.unsqueeze(0))[0])
