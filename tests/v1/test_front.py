"""V1Front: Gabor kernels, bank vs brute force, noise, determinism, reload, shapes, bad input,
inside torchvision's resnet18."""
import io
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import torchtopo as tt
from torchtopo.v1 import V1Front, gabor_kernels, with_v1_front


def small(**kw):
    base = dict(image_size=32, visual_degrees=3.0, simple_channels=6, complex_channels=6, stride=2,
                kernel_size=None, noise=None)
    base.update(kw)
    return V1Front(**base)


def brute_rates(front, x):
    """Each cell on its own: conv of its one input channel with G_phi (and G_phi+90), in float64."""
    p = front.params
    out = []
    for i in range(front.out_channels):  # plain loop over cells: the oracle
        k = int(front.kernel_sizes[i])
        c = int(p["channel"][i])

        def g(dphi):
            return gabor_kernels(p["sf_cpd"][i:i + 1].double() / front.ppd, p["theta_deg"][i:i + 1].double(),
                                 p["phase_deg"][i:i + 1].double() + dphi, p["nx"][i:i + 1].double(),
                                 p["ny"][i:i + 1].double(), k)[:, None]

        q0 = F.conv2d(x[:, c:c + 1].double(), g(0.0), stride=front.stride, padding=k // 2)
        if bool(p["is_complex"][i]):
            q1 = F.conv2d(x[:, c:c + 1].double(), g(90.0), stride=front.stride, padding=k // 2)
            r = torch.sqrt((q0 ** 2 + q1 ** 2) / 2)
        else:
            r = q0.clamp_min(0)
        out.append(front.k_exc * r)
    return torch.cat(out, 1)


# ---------------------------------------------------------------- Gabor kernels
@settings(max_examples=12, deadline=None)
@given(f=st.floats(0.05, 0.3), theta=st.floats(0.0, 179.0))
def test_gabor_peak_frequency_and_orientation(f, theta):
    k = 101
    g = gabor_kernels(torch.tensor([f], dtype=torch.float64), torch.tensor([theta], dtype=torch.float64),
                      torch.tensor([0.0], dtype=torch.float64), torch.tensor([1.5], dtype=torch.float64),
                      torch.tensor([1.5], dtype=torch.float64), k)[0]
    n = 512
    spec = torch.fft.fft2(g, s=(n, n)).abs()
    fr = torch.fft.fftfreq(n, dtype=torch.float64)
    spec[:, fr < 0] = 0  # one half-plane (the spectrum of a real kernel is symmetric)
    idx = int(spec.argmax())
    vr, vc = fr[idx // n], fr[idx % n]
    fx, fy = float(vc), float(-vr)  # rows run downwards, y upwards
    assert math.hypot(fx, fy) == pytest.approx(f, abs=2.5 / n + 0.02 * f)
    ang = math.degrees(math.atan2(fy, fx)) % 180  # the wave vector: across the stripes, θ − 90°
    d = abs(ang - (theta - 90.0)) % 180
    assert min(d, 180 - d) < 2.5


@pytest.mark.parametrize("nx,ny,theta", [(0.5, 0.3, 0.0), (0.4, 0.8, 30.0), (1.0, 0.25, 120.0)])
def test_gabor_envelope_widths(nx, ny, theta):
    f = 0.1
    k = 201
    args = [torch.tensor([v], dtype=torch.float64) for v in (f, theta)]
    env2 = sum(gabor_kernels(args[0], args[1], torch.tensor([ph], dtype=torch.float64),
                             torch.tensor([nx], dtype=torch.float64), torch.tensor([ny], dtype=torch.float64), k)[0] ** 2
               for ph in (0.0, 90.0))
    env = env2.sqrt()  # quadrature pair: the envelope exactly
    r = torch.arange(k, dtype=torch.float64) - (k - 1) / 2
    x, y = r.view(1, k), -r.view(k, 1)
    t = math.radians(theta)
    xr, yr = x * math.sin(t) - y * math.cos(t), x * math.cos(t) + y * math.sin(t)  # across, along the stripes
    w = env / env.sum()
    assert float((w * xr ** 2).sum()).__pow__(0.5) == pytest.approx(nx / f, rel=0.01)
    assert float((w * yr ** 2).sum()).__pow__(0.5) == pytest.approx(ny / f, rel=0.01)
    assert float(env.max()) == pytest.approx(1 / (2 * math.pi * (nx / f) * (ny / f)), rel=1e-9)


# ---------------------------------------------------------------- the bank
@pytest.mark.parametrize("kw", [dict(), dict(kernel_size=9), dict(in_channels=1, stride=1),
                                dict(sampling="uniform", in_channels=4, stride=3)])
def test_bank_matches_brute_force(kw):
    front = small(**kw).double()
    x = torch.rand(2, front.in_channels, 32, 32, dtype=torch.float64)
    assert torch.allclose(front(x), brute_rates(front, x), rtol=1e-5, atol=1e-6)


def test_fft_path_matches_direct():
    front = small(simple_channels=4, complex_channels=4)
    x = torch.rand(2, 3, 32, 32)
    ref = front(x)
    front.fft_min_kernel = 3  # every kernel through the FFT bucket
    front._build()
    assert [b[0] for b in front._banks] == ["fft"]
    assert torch.allclose(front(x), ref, rtol=1e-4, atol=1e-4)


@settings(max_examples=8, deadline=None)
@given(h=st.integers(5, 40), w=st.integers(5, 40), stride=st.integers(1, 4), c=st.integers(1, 4),
       ks=st.sampled_from([None, 5, 11]), b=st.integers(1, 3))
def test_shapes(h, w, stride, c, ks, b):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        front = small(stride=stride, in_channels=c, kernel_size=ks, simple_channels=3, complex_channels=2)
        y = front(torch.rand(b, c, h, w))
    assert y.shape == (b, 5, (h - 1) // stride + 1, (w - 1) // stride + 1)
    assert torch.isfinite(y).all() and bool((y >= 0).all())


def test_params_layout():
    front = small(in_channels=2)
    p = front.params
    assert set(p) == {"sf_cpd", "theta_deg", "phase_deg", "nx", "ny", "channel", "is_complex"}
    assert all(v.dim() == 1 and v.numel() == 12 for v in p.values())
    assert p["is_complex"].tolist() == [False] * 6 + [True] * 6
    assert front.out_channels == 12
    assert float(p["sf_cpd"].max()) <= front.sf_max + 1e-6
    assert int(p["channel"].max()) <= 1


def test_truncated_fraction_and_macs():
    front = V1Front.imagenet(noise=None)
    assert 0.25 < front.truncated_fraction < 0.42  # about a third (Barbulescu et al., arXiv:2310.10575)
    half = tt.v1.envelope_half_width(front.sf_cpd.double() / front.ppd, front.theta_deg.double(),
                                     front.nx.double(), front.ny.double())
    assert front.truncated_fraction == pytest.approx(float((half > 12).double().mean()))
    auto = V1Front(noise=None, simple_channels=64, complex_channels=64)
    assert auto.truncated_fraction == 0.0 and bool((auto.kernel_sizes % 2 == 1).all())
    # MACs: q0 for every cell and q1 for complex cells, k^2 per output pixel
    brute = sum(int(auto.kernel_sizes[i]) ** 2 * (2 if bool(auto.is_complex[i]) else 1) for i in range(128)) * 56 * 56
    assert auto.macs() == brute
    assert front.macs() == 25 * 25 * 56 * 56 * (256 + 512)


# ---------------------------------------------------------------- noise
def test_neuronal_noise_variance_equals_mean():
    front = small(noise="neuronal")
    for mean_spikes in (5.0, 20.0):
        r = torch.full((200_000,), (mean_spikes - front.noise_level) / front.noise_scale)
        out = front.add_noise(r)
        s = front.noise_scale * out + front.noise_level  # back to spike units
        assert float(s.mean()) == pytest.approx(mean_spikes, rel=0.02)
        assert float(s.var()) == pytest.approx(mean_spikes, rel=0.05)


def test_gaussian_noise():
    front = small(noise="gaussian", noise_scale=0.5)
    out = front.add_noise(torch.full((100_000,), 3.0))
    assert float(out.mean()) == pytest.approx(3.0, abs=0.01)
    assert float(out.std()) == pytest.approx(0.5, rel=0.02)


def test_train_eval_and_stochastic_eval():
    x = torch.rand(2, 3, 32, 32)
    front = small(noise="neuronal")
    clean = front.rates(x)
    front.train()
    a, b = front(x), front(x)
    assert not torch.equal(a, b) and a.shape == clean.shape
    front.eval()
    assert torch.equal(front(x), clean) and torch.equal(front(x), front(x))
    se = small(noise="neuronal", stochastic_eval=True).eval()
    assert not torch.equal(se(x), se(x))
    # noise shape follows the input (any batch and size)
    front.train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert front(torch.rand(5, 3, 17, 45)).shape == (5, 12, 9, 23)


def test_noise_reparameterised_gradient():
    front = small(noise="neuronal").train()
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    front(x).sum().backward()
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0


def test_determinism_and_global_rng():
    x = torch.rand(2, 3, 32, 32)
    state = torch.get_rng_state()
    a, b, c = small(seed=5, noise="neuronal"), small(seed=5, noise="neuronal"), small(seed=6, noise="neuronal")
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)
    assert not torch.equal(a.sf_cpd, c.sf_cpd)
    assert torch.equal(a(x), b(x))  # same noise stream too
    a.reset_noise()
    b.reset_noise()
    assert torch.equal(a(x), b(x))
    assert torch.equal(state, torch.get_rng_state())


def test_state_dict_reload_bit_identical():
    x = torch.rand(2, 3, 32, 32)
    a = small(seed=1)
    b = small(seed=2)
    assert not torch.equal(a(x), b(x))
    b.load_state_dict(a.state_dict())
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)
    assert torch.equal(a(x), b(x))
    buf = io.BytesIO()
    torch.save(a, buf)
    buf.seek(0)
    c = torch.load(buf, weights_only=False)
    assert torch.equal(a(x), c(x))
    assert set(a.state_dict()) == {"sf_cpd", "theta_deg", "phase_deg", "nx", "ny", "channel", "is_complex"}


def test_gradcheck_float64():
    front = small(simple_channels=2, complex_channels=2, image_size=8, visual_degrees=1.0, in_channels=1).double()
    x = (torch.rand(1, 1, 8, 8, dtype=torch.float64) + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(front, (x,), eps=1e-6, atol=1e-5)


def test_zero_input_has_finite_gradient():
    front = small()
    x = torch.zeros(1, 3, 32, 32, requires_grad=True)
    front(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_autocast_and_dtype_moves():
    front = small()
    x = torch.rand(2, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = front(x)
    assert torch.isfinite(y).all()
    assert torch.allclose(y.float(), front(x), rtol=0.1, atol=0.1)
    d = small().double()
    assert d(x.double()).dtype == torch.float64


# ---------------------------------------------------------------- presets and bad input
def test_presets():
    a, b, c, m = V1Front.imagenet(), V1Front.tiny_imagenet(), V1Front.cifar(), V1Front.mnist()
    assert (a.image_size, a.kernel_size, a.stride, a.out_channels, a.sf_max) == (224, 25, 4, 512, 9.0)
    assert (b.image_size, b.kernel_size, b.stride) == (64, 31, 2) and b.sf_max == pytest.approx(32 / (2 * 2 ** 0.5))
    assert (c.image_size, c.kernel_size, c.stride) == (32, 15, 1)
    assert m.in_channels == 1 and m(torch.rand(2, 1, 28, 28)).shape == (2, 128, 14, 14)
    assert V1Front.cifar(seed=3, noise=None).noise is None


def test_sf_max_above_nyquist_warns_and_clips():
    nyq = (32 / 3) / (2 * 2 ** 0.5)
    with pytest.warns(UserWarning, match="Nyquist"):
        front = small(sf_max=5.0)
    assert front.sf_max == pytest.approx(nyq)
    assert float(front.sf_cpd.max()) <= nyq + 1e-5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small(sf_max=3.0)


def test_input_size_far_from_image_size_warns_once():
    front = small()
    with pytest.warns(UserWarning, match="image_size"):
        front(torch.rand(1, 3, 64, 64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        front(torch.rand(1, 3, 64, 64))
        small()(torch.rand(1, 3, 30, 34))


@pytest.mark.parametrize("kw,exc,match", [
    (dict(in_channels=0), ValueError, "in_channels"),
    (dict(simple_channels=0, complex_channels=0), ValueError, "simple_channels"),
    (dict(noise="poisson"), ValueError, "noise"),
    (dict(sampling="random"), ValueError, "sampling"),
    (dict(sf_min=3.5, sf_max=3.0), ValueError, "sf_min"),
    (dict(stride=0), ValueError, "stride"),
    (dict(kernel_size=0), ValueError, "kernel_size"),
    (dict(visual_degrees=-1.0), ValueError, "visual_degrees"),
    (dict(noise_scale="a"), TypeError, "noise_scale"),
    (dict(sf_table="x"), ValueError, "sf_table"),
])
def test_bad_arguments(kw, exc, match):
    with pytest.raises(exc, match=match):
        small(**kw)


def test_bad_input():
    front = small()
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        front(torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match="shape"):
        front(torch.rand(3, 32, 32))
    with pytest.raises(TypeError, match="Tensor"):
        front([1, 2])


# ---------------------------------------------------------------- inside models
def test_inside_torchvision_resnet18():
    from torchvision.models import resnet18

    model = resnet18(num_classes=7)
    front = V1Front.tiny_imagenet(simple_channels=16, complex_channels=16, image_size=32, visual_degrees=1.0,
                                  kernel_size=15)
    with_v1_front(model, front)
    assert isinstance(model.bn1, torch.nn.Identity) and isinstance(model.maxpool, torch.nn.Identity)
    assert model.conv1.bottleneck.weight.shape == (64, 32, 1, 1) and model.conv1.bottleneck.bias is None
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    y = model(x)
    assert y.shape == (2, 7)
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert model.conv1.front.sf_cpd.grad is None and all(p.requires_grad for p in model.parameters())
    assert not any(n.startswith("conv1.front") for n, _ in model.named_parameters())
    sd = model.state_dict()
    model2 = with_v1_front(resnet18(num_classes=7), V1Front.tiny_imagenet(
        simple_channels=16, complex_channels=16, image_size=32, visual_degrees=1.0, kernel_size=15, seed=9))
    model2.load_state_dict(sd)
    model.eval(), model2.eval()
    assert torch.equal(model(x), model2(x))


def test_vone_resnet18_and_generic_stem():
    m = tt.models.vone_resnet18(10, preset="cifar", simple_channels=8, complex_channels=8, noise=None)
    assert m(torch.rand(1, 3, 32, 32)).shape == (1, 10)
    g = tt.models.vone_resnet18(5, preset="mnist")
    assert g(torch.rand(1, 1, 28, 28)).shape == (1, 5)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.LazyLinear(3))
    with_v1_front(net, V1Front.mnist(simple_channels=4, complex_channels=4), stem="0")
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 3)
    with pytest.raises(ValueError, match="not a torchvision-style ResNet"):
        with_v1_front(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)), V1Front.mnist())
    with pytest.raises(ValueError, match="no module named 'nope'"):
        with_v1_front(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)), V1Front.mnist(), stem="nope")
    with pytest.raises(ValueError, match="in_channels"):
        with_v1_front(torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3)), V1Front.mnist(), stem="0")
    with pytest.raises(TypeError, match="V1Front"):
        with_v1_front(net, torch.nn.Identity())


def test_integer_images_and_bad_seed_are_clear_errors():
    front = V1Front(image_size=32, visual_degrees=2.0, simple_channels=4, complex_channels=4, stride=2)
    with pytest.raises(TypeError, match=r"floating-point.*x.float\(\) / 255"):
        front(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(TypeError, match="seed must be an int"):
        V1Front(image_size=32, simple_channels=4, complex_channels=4, seed="x")
    with pytest.raises(TypeError, match="seed must be an int"):
        tt.v1.distributions.sample_gabor_params(4, 4, seed="x")
