"""The V1 front's convolution engine against a brute-force oracle: every filter convolved on its
own input channel by a float64 ``conv2d`` with its own kernel, whatever the engine's bucketing,
kernel grouping or FFT path does."""
import math

import pytest
import torch
import torch.nn.functional as F

from torchtopo.functional.gabor import gabor_kernels
from torchtopo.v1 import V1Front, _bank


def _params(n, n_complex, in_channels, sizes, seed):
    g = torch.Generator().manual_seed(seed)
    f = 0.04 + 0.2 * torch.rand(n, generator=g, dtype=torch.float64)       # cycles/pixel
    theta = 180 * torch.rand(n, generator=g, dtype=torch.float64)
    phase = 360 * torch.rand(n, generator=g, dtype=torch.float64)
    nx = 0.2 + 0.8 * torch.rand(n, generator=g, dtype=torch.float64)
    ny = 0.2 + 1.2 * torch.rand(n, generator=g, dtype=torch.float64)
    channel = torch.randint(0, in_channels, (n,), generator=g)
    is_complex = torch.zeros(n, dtype=torch.bool)
    is_complex[torch.randperm(n, generator=g)[:n_complex]] = True
    sizes = torch.tensor(sizes, dtype=torch.long)[torch.randint(0, len(sizes), (n,), generator=g)]
    return f, theta, phase, nx, ny, channel, is_complex, sizes


def _oracle(x, f, theta, phase, nx, ny, channel, is_complex, sizes, gs, gc, stride):
    """Rates of every filter by a direct float64 convolution with its own kernel."""
    x = x.double()
    out = []
    for i in range(f.numel()):
        k = int(sizes[i])
        xc = x[:, int(channel[i]):int(channel[i]) + 1]
        gain = gc if is_complex[i] else gs
        ker = lambda dphi: gain * gabor_kernels(f[i:i + 1], theta[i:i + 1], phase[i:i + 1] + dphi,  # noqa: E731
                                                nx[i:i + 1], ny[i:i + 1], k).unsqueeze(1)
        q0 = F.conv2d(F.pad(xc, (k // 2,) * 4), ker(0.0), stride=stride)
        if is_complex[i]:
            q1 = F.conv2d(F.pad(xc, (k // 2,) * 4), ker(90.0), stride=stride)
            out.append(torch.sqrt(q0 * q0 + q1 * q1))
        else:
            out.append(F.relu(q0))
    return torch.cat(out, 1)


def _engine(x, params, gs, gc, stride, fft_min_kernel):
    f, theta, phase, nx, ny, channel, is_complex, sizes = params
    banks, weights, c_fft, perm_inv = _bank.build(f, theta, phase, nx, ny, channel, is_complex, sizes,
                                                  gs, gc, fft_min_kernel)
    return _bank.apply(x, banks, weights, c_fft, perm_inv, stride)


def _rel(a, b):
    return float((a.double() - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("fft_min_kernel", [_bank.FFT_MIN_KERNEL, 9, 10 ** 6])
@pytest.mark.parametrize("hw", [(20, 20), (17, 23)])
def test_engine_equals_direct_convolution(stride, fft_min_kernel, hw):
    """Mixed kernel sizes (some larger than the image), simple and complex cells, several input
    channels, any stride, odd and even image sizes; with the FFT path for none, some or (almost)
    all kernels: the rates equal the direct convolution within 1e-5 relative."""
    params = _params(40, 17, 3, [3, 5, 7, 9, 11, 13, 15, 19, 25, 29], seed=stride + 7 * hw[1] + fft_min_kernel % 97)
    x = torch.rand(2, 3, *hw, generator=torch.Generator().manual_seed(1))
    want = _oracle(x, *params, 2.5, 2.5 / math.sqrt(2), stride)
    got = _engine(x, params, 2.5, 2.5 / math.sqrt(2), stride, fft_min_kernel)
    assert got.shape == want.shape and got.dtype == torch.float32
    assert _rel(got, want) < 1e-5


def test_engine_one_kind_one_channel():
    """Only simple cells, only complex cells, a single input channel: the same equality."""
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    for n_complex in (0, 9):
        params = _params(9, n_complex, 1, [5, 9, 21], seed=n_complex)
        want = _oracle(x, *params, 1.0, 1.0, 2)
        assert _rel(_engine(x, params, 1.0, 1.0, 2, _bank.FFT_MIN_KERNEL), want) < 1e-5


@pytest.mark.parametrize("preset, kw", [(V1Front.tiny_imagenet, {"kernel_size": None}),
                                        (V1Front.cifar, {"kernel_size": None}),
                                        (V1Front.cifar, {})])
def test_front_rates_equal_direct_convolution(preset, kw):
    """The module end to end (σ-sized kernels, the faithful mode, and a forced size): ``rates``
    equal the oracle on its own parameters, kernel sizes and gains, in the module's filter order."""
    front = preset(noise=None, simple_channels=24, complex_channels=24, seed=3, **kw)
    p = front.params
    params = (p["sf_cpd"].double() / front.ppd, p["theta_deg"].double(), p["phase_deg"].double(),
              p["nx"].double(), p["ny"].double(), p["channel"], p["is_complex"], front.kernel_sizes)
    s = front.image_size
    x = torch.rand(2, 3, s, s, generator=torch.Generator().manual_seed(4))
    want = _oracle(x, *params, front.k_exc, front.k_exc / math.sqrt(2), front.stride)
    assert _rel(front.rates(x), want) < 1e-5


def test_engine_gradient_matches_direct_convolution():
    """The input gradient through the engine (direct and FFT buckets) equals the oracle's."""
    params = _params(12, 6, 2, [3, 7, 13], seed=5)
    x = torch.rand(2, 2, 15, 15, generator=torch.Generator().manual_seed(6))
    w = torch.rand(2, 12, 8, 8, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    x64 = x.double().requires_grad_()
    (_oracle(x64, *params, 1.0, 1.0, 2) * w).sum().backward()
    for fmk in (_bank.FFT_MIN_KERNEL, 7):
        x32 = x.clone().requires_grad_()
        (_engine(x32, params, 1.0, 1.0, 2, fmk) * w.float()).sum().backward()
        assert _rel(x32.grad, x64.grad) < 1e-5


def test_cached_spectrum_follows_its_kernel_tensor():
    """The FFT bucket's kernel spectra are cached per kernel tensor: a second call reuses it, an
    in-place change of the kernels invalidates it (the result follows the new kernels), and the
    entry goes when the tensor does."""
    n0 = len(_bank._SPECTRA)
    w = torch.randn(3, 9, 9)
    k1 = _bank.centred_spectrum(w, 9, 20, 20)
    assert _bank.centred_spectrum(w, 9, 20, 20) is k1
    w.mul_(2)
    assert torch.allclose(_bank.centred_spectrum(w, 9, 20, 20), 2 * k1, rtol=1e-5, atol=1e-4)
    assert len(_bank._SPECTRA) == n0 + 2  # one per version of the kernels
    del w
    assert len(_bank._SPECTRA) == n0
