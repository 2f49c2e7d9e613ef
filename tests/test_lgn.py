"""LGNFilter, LateralConv2d and lgn_cnn (Bertoni et al., Front. Comput. Neurosci. 2021) against
loop oracles."""
from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import torchtopo as tt


def _corr2d_loop(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Zero-padded same-size 2-D cross-correlation of one (H, W) map, plain loops."""
    h, w = x.shape
    kh, kw = k.shape
    ph, pw = kh // 2, kw // 2
    out = torch.zeros(h, w, dtype=x.dtype)
    for i in range(h):
        for j in range(w):
            s = 0.0
            for a in range(kh):
                for b in range(kw):
                    ii, jj = i + a - ph, j + b - pw
                    if 0 <= ii < h and 0 <= jj < w:
                        s += float(x[ii, jj]) * float(k[a, b])
            out[i, j] = s
    return out


def _lateral_oracle(h: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """(K ⋆ h)_i = Σ_j K[i, j] ⋆ h_j with the loop correlation; h (B, C, H, W)."""
    b, c = h.shape[:2]
    out = torch.zeros_like(h)
    for n in range(b):
        for i in range(c):
            for j in range(c):
                out[n, i] += _corr2d_loop(h[n, j], K[i, j])
    return out


# ------------------------------------------------------------------------------ LGNFilter
@settings(max_examples=6, deadline=None)
@given(c=st.integers(1, 3), k=st.sampled_from([1, 3, 5]), h=st.integers(3, 7), w=st.integers(3, 7))
def test_lgn_shared_matches_loop(c, k, h, w):
    torch.manual_seed(0)
    m = tt.LGNFilter(c, k).double()
    x = torch.randn(2, c, h, w, dtype=torch.float64)
    y = m(x)
    assert y.shape == x.shape
    for n in range(2):
        for ch in range(c):
            torch.testing.assert_close(y[n, ch], _corr2d_loop(x[n, ch], m.filter.detach()))


def test_lgn_luminance():
    torch.manual_seed(0)
    m = tt.LGNFilter(3, 5, mode="luminance").double()
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    y = m(x)
    assert y.shape == (2, 1, 6, 6) and m.out_channels == 1
    lum = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    for n in range(2):
        torch.testing.assert_close(y[n, 0], _corr2d_loop(lum[n], m.filter.detach()))


def test_lgn_radial_constraint_is_symmetric_and_trains():
    torch.manual_seed(0)
    m = tt.LGNFilter(1, 7, radial=True)
    f = m.filter.detach()
    for g in (f.flip(0), f.flip(1), f.t(), f.rot90(1, (0, 1))):
        torch.testing.assert_close(g, f)
    # 7×7 centred: distinct r² values in {0..18}: 0,1,2,4,5,8,9,10,13,18
    assert m.radial_profile.numel() == 10
    m(torch.randn(2, 1, 8, 8)).square().sum().backward()
    assert m.radial_profile.grad is not None and torch.isfinite(m.radial_profile.grad).all()
    assert tt.analysis.radial_symmetry(m.filter.detach()) > 0.999


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_lgn_padding_modes(mode):
    torch.manual_seed(0)
    m = tt.LGNFilter(2, 3, padding_mode=mode)
    x = torch.randn(1, 2, 5, 6)
    ref = F.conv2d(F.pad(x.reshape(2, 1, 5, 6), (1, 1, 1, 1), mode=mode), m.filter.reshape(1, 1, 3, 3))
    torch.testing.assert_close(m(x), ref.reshape(1, 2, 5, 6))


def test_lgn_gradcheck():
    torch.manual_seed(0)
    m = tt.LGNFilter(2, 3).double()
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    w = m.weight

    def f(x_, w_):
        with torch.no_grad():
            m.weight.copy_(w_.detach())
        return F.conv2d(x_.reshape(2, 1, 4, 5), w_.reshape(1, 1, 3, 3), padding=1).reshape(1, 2, 4, 5)

    assert torch.autograd.gradcheck(lambda x_: m(x_), (x,))
    assert torch.autograd.gradcheck(f, (x, w.detach().clone().requires_grad_()))


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        (dict(in_channels=1, kernel_size=4), ValueError, ["kernel_size", "odd", "4"]),
        (dict(in_channels=0, kernel_size=3), ValueError, ["in_channels", ">= 1", "0"]),
        (dict(in_channels=1, kernel_size=3.0), TypeError, ["kernel_size", "int", "float"]),
        (dict(in_channels=1, kernel_size=3, mode="rgb"), ValueError, ["mode", "'rgb'"]),
        (dict(in_channels=1, kernel_size=3, padding_mode="wrap"), ValueError, ["padding_mode", "'wrap'"]),
    ],
)
def test_lgn_bad_args(kwargs, exc, words):
    with pytest.raises(exc) as e:
        tt.LGNFilter(**kwargs)
    for w in words:
        assert w in str(e.value)


def test_lgn_bad_input():
    m = tt.LGNFilter(3, 3)
    with pytest.raises(ValueError, match=r"input must have 3 channels.*got shape \(2, 1, 5, 5\)"):
        m(torch.randn(2, 1, 5, 5))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\).*\(3, 5, 5\)"):
        m(torch.randn(3, 5, 5))
    with pytest.raises(TypeError, match="torch.Tensor"):
        m([[1.0]])


# ------------------------------------------------------------------------------ LateralConv2d
@pytest.mark.parametrize("update", ["recurrent", "euler", "diffusion"])
def test_lateral_matches_loop_oracle(update):
    torch.manual_seed(0)
    m = tt.LateralConv2d(2, 3, 3, lateral_kernel_size=3, steps=2, update=update, rate=0.4,
                         lateral_init="normal", lateral_std=0.3).double()
    x = torch.randn(2, 2, 5, 4, dtype=torch.float64)
    W, b, K = m.conv.weight.detach(), m.conv.bias.detach(), m.lateral_weight.detach()
    h0 = torch.zeros(2, 3, 5, 4, dtype=torch.float64)
    for n in range(2):
        for o in range(3):
            acc = torch.full((5, 4), float(b[o]), dtype=torch.float64)
            for i in range(2):
                acc += _corr2d_loop(x[n, i], W[o, i])
            h0[n, o] = acc
    h0 = h0.clamp_min(0)
    h = h0
    for _ in range(2):
        kh = _lateral_oracle(h, K)
        if update == "recurrent":
            h = (h0 + kh).clamp_min(0)
        elif update == "euler":
            h = (0.6 * h + 0.4 * (h0 + kh)).clamp_min(0)
        else:
            h = (h + 0.4 * kh).clamp_min(0)
    y, states = m(x, return_states=True)
    torch.testing.assert_close(y, h)
    assert len(states) == 3
    torch.testing.assert_close(states[0], h0)
    torch.testing.assert_close(states[-1], y)


@pytest.mark.parametrize("update", ["recurrent", "euler", "diffusion"])
def test_lateral_zero_kernel_and_zero_steps_equal_relu_conv(update):
    torch.manual_seed(1)
    x = torch.randn(3, 2, 8, 7)
    m = tt.LateralConv2d(2, 4, 5, lateral_kernel_size=3, steps=4, update=update)
    assert torch.count_nonzero(m.lateral_weight) == 0  # zero init
    ref = F.relu(m.conv(x))
    torch.testing.assert_close(m(x), ref)
    m0 = tt.LateralConv2d(2, 4, 5, lateral_kernel_size=3, steps=0, update=update, lateral_init="normal")
    torch.testing.assert_close(m0(x), F.relu(m0.conv(x)))
    # and a non-zero K with steps > 0 does change the output
    m1 = tt.LateralConv2d(2, 4, 5, lateral_kernel_size=3, steps=2, update=update, lateral_init="normal",
                          lateral_std=0.5)
    assert not torch.allclose(m1(x), F.relu(m1.conv(x)))


@settings(max_examples=8, deadline=None)
@given(
    cin=st.integers(1, 3), cout=st.integers(1, 4), k=st.sampled_from([1, 3, 5]), lk=st.sampled_from([1, 3]),
    steps=st.integers(0, 3), stride=st.integers(1, 2), h=st.integers(4, 9), w=st.integers(4, 9),
)
def test_lateral_shapes(cin, cout, k, lk, steps, stride, h, w):
    m = tt.LateralConv2d(cin, cout, k, lateral_kernel_size=lk, steps=steps, stride=stride)
    y = m(torch.randn(2, cin, h, w))
    assert y.shape == (2, cout, (h - 1) // stride + 1, (w - 1) // stride + 1)
    assert m.lateral_weight.shape == (cout, cout, lk, lk)
    assert (y >= 0).all()


@pytest.mark.parametrize("update", ["recurrent", "euler", "diffusion"])
def test_lateral_gradcheck(update):
    torch.manual_seed(0)
    m = tt.LateralConv2d(2, 2, 3, lateral_kernel_size=3, steps=2, update=update, lateral_init="normal",
                         lateral_std=0.2).double()
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    K = m.lateral_weight.detach().clone().requires_grad_()
    W = m.conv.weight.detach().clone().requires_grad_()

    def f(x_, K_, W_):
        h0 = F.relu(F.conv2d(x_, W_, m.conv.bias, padding=1))
        h = h0
        for _ in range(2):
            kh = F.conv2d(h, K_, padding=1)
            h = {"recurrent": lambda: F.relu(h0 + kh), "euler": lambda: F.relu(0.5 * h + 0.5 * (h0 + kh)),
                 "diffusion": lambda: F.relu(h + 0.5 * kh)}[update]()
        return h

    torch.testing.assert_close(m(x), f(x, K, W))
    assert torch.autograd.gradcheck(f, (x, K, W))
    assert torch.autograd.gradcheck(lambda x_: m(x_), (x,))
    m(x).sum().backward()
    assert m.lateral_weight.grad is not None and m.conv.weight.grad is not None


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        (dict(steps=-1), ValueError, ["steps", ">= 0", "-1"]),
        (dict(kernel_size=4), ValueError, ["kernel_size", "odd", "4"]),
        (dict(lateral_kernel_size=2), ValueError, ["lateral_kernel_size", "odd", "2"]),
        (dict(steps=1.5), TypeError, ["steps", "int", "float"]),
        (dict(update="leaky"), ValueError, ["update", "'leaky'"]),
        (dict(update="euler", rate=1.5), ValueError, ["rate", "(0, 1]", "1.5"]),
        (dict(update="diffusion", rate=0.0), ValueError, ["rate", "> 0"]),
        (dict(lateral_init="ones"), ValueError, ["lateral_init", "'ones'"]),
        (dict(out_channels=0), ValueError, ["out_channels", ">= 1", "0"]),
    ],
)
def test_lateral_bad_args(kwargs, exc, words):
    base = dict(in_channels=1, out_channels=2, kernel_size=3, lateral_kernel_size=3, steps=1)
    base.update(kwargs)
    with pytest.raises(exc) as e:
        tt.LateralConv2d(**base)
    for w in words:
        assert w in str(e.value)


def test_lateral_wrong_channels():
    m = tt.LateralConv2d(3, 4, 3, lateral_kernel_size=3, steps=1)
    with pytest.raises(ValueError, match=r"input must have 3 channels.*got shape \(1, 2, 6, 6\)"):
        m(torch.randn(1, 2, 6, 6))


def test_state_dict_round_trip():
    torch.manual_seed(0)
    for make in (
        lambda: tt.LGNFilter(3, 5),
        lambda: tt.LGNFilter(3, 5, radial=True, mode="luminance"),
        lambda: tt.LateralConv2d(2, 3, 3, lateral_kernel_size=3, steps=2, lateral_init="normal"),
        lambda: tt.models.lgn_cnn(10, 3, channels=4),
    ):
        a, b = make(), make()
        for p in b.parameters():
            torch.nn.init.normal_(p)
        buf = io.BytesIO()
        torch.save(a.state_dict(), buf)
        buf.seek(0)
        b.load_state_dict(torch.load(buf))
        a.eval(), b.eval()
        x = torch.rand(2, a.in_channels if hasattr(a, "in_channels") else 3, 12, 12)
        torch.testing.assert_close(a(x), b(x))


# ------------------------------------------------------------------------------ lgn_cnn
def test_lgn_cnn_trains_on_mnist_sample():
    torch.manual_seed(0)
    x, y = tt.data.mnist_sample_tensors("train")
    x, y = x[:256], y[:256]
    model = tt.models.lgn_cnn(10, 1, channels=8, steps=1)
    assert model(x[:4]).shape == (4, 10)
    assert isinstance(model.lgn, tt.LGNFilter) and isinstance(model.v1, tt.LateralConv2d)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    K0 = model.v1.lateral_weight.detach().clone()
    first = None
    for step in range(25):
        i = torch.randint(0, 256, (32,))
        loss = F.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = float(loss.detach()) if first is None else first
    model.eval()
    with torch.no_grad():
        final = float(F.cross_entropy(model(x), y))
    assert final < first
    assert not torch.equal(model.v1.lateral_weight.detach(), K0)  # K learns from zero
    assert model.features(x[:2]).shape == (2, 8, 28, 28)


def test_lgn_cnn_normalize_and_rgb():
    m = tt.models.lgn_cnn(5, 3, channels=4, normalize=(tt.data.CIFAR10_MEAN, tt.data.CIFAR10_STD),
                          lgn_mode="luminance")
    assert m.lgn.out_channels == 1 and m.v1.in_channels == 1
    assert m(torch.rand(2, 3, 16, 16)).shape == (2, 5)


def test_autocast_bf16_and_to():
    torch.manual_seed(0)
    m = torch.nn.Sequential(tt.LGNFilter(1, 5), tt.LateralConv2d(1, 4, 3, lateral_kernel_size=3, steps=2,
                                                                  lateral_init="normal"))
    x = torch.randn(2, 1, 8, 8)
    ref = m(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
    assert y.dtype == torch.bfloat16 and torch.isfinite(y.float()).all()
    torch.testing.assert_close(y.float(), ref, atol=0.1, rtol=0.05)
    m64 = m.to(torch.float64)
    assert m64(x.double()).dtype == torch.float64
