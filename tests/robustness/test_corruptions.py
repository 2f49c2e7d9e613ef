"""tt.robustness.corrupt: the noises of Truong & Hasson and the ImageNet-C corruptions (Hendrycks &
Dietterich 2019): shapes, ranges, determinism, statistics, severity ordering, closed forms."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import torchtopo as tt
from torchtopo import robustness as R
from torchtopo.robustness._image_ops import dct_matrix, jpeg_plane


def _digits(n=32):
    x, y = tt.data.mnist_sample_tensors("test", normalize=False)
    return x[:n], y[:n]


def _rgb(n=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    return torch.nn.functional.interpolate(coarse, size=size, mode="bilinear", align_corners=False).clamp(0, 1)


def _sev(kind):
    return 0.1 if kind in R.NOISE_CORRUPTIONS else 3


def test_names():
    assert R.COMMON_CORRUPTIONS == (
        "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
        "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
        "jpeg_compression",
    )
    assert set(R.CORRUPTIONS) == set(R.COMMON_CORRUPTIONS) | {"white", "pink", "salt_and_pepper"}
    assert tt.robustness is R


@settings(max_examples=15, deadline=None)
@given(
    kind=st.sampled_from(R.CORRUPTIONS),
    B=st.integers(1, 2),
    C=st.sampled_from([1, 2, 3]),
    H=st.integers(1, 12),
    W=st.integers(1, 12),
)
def test_any_shape_stays_finite_in_range(kind, B, C, H, W):
    x = torch.rand(B, C, H, W, generator=torch.Generator().manual_seed(H * 13 + W))
    y = R.corrupt(x, kind, 0.2 if kind in R.NOISE_CORRUPTIONS else 5, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize("kind", R.CORRUPTIONS)
def test_every_kind_shape_range_determinism(kind):
    for x in (_digits(6)[0], _rgb(3, 32), _rgb(2, 20)[..., :17].contiguous()):
        y1 = R.corrupt(x, kind, _sev(kind), generator=torch.Generator().manual_seed(5))
        y2 = R.corrupt(x, kind, _sev(kind), generator=torch.Generator().manual_seed(5))
        assert y1.shape == x.shape and y1.dtype == x.dtype
        assert torch.isfinite(y1).all() and y1.min() >= 0 and y1.max() <= 1
        assert torch.equal(y1, y2)
        assert not torch.equal(y1, x)
    y64 = R.corrupt(_rgb(2, 16).double(), kind, _sev(kind), generator=torch.Generator().manual_seed(0))
    assert y64.dtype == torch.float64


def test_unknown_kind_and_bad_severity_and_bad_input():
    x = _digits(2)[0]
    with pytest.raises(ValueError, match="kind must be one of.*jpeg_compression.*got 'fros'; did you mean 'frost'"):
        R.corrupt(x, "fros", 1)
    for bad in (0, 6, 2.5):
        with pytest.raises(ValueError, match="integer 1 … 5"):
            R.corrupt(x, "fog", bad)
    with pytest.raises(ValueError, match=">= 0"):
        R.corrupt(x, "white", -0.1)
    with pytest.raises(ValueError, match="pixel fraction"):
        R.corrupt(x, "salt_and_pepper", 1.5)
    with pytest.raises(TypeError, match="severity of 'white' must be a real number"):
        R.corrupt(x, "white", "high")
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        R.corrupt(x[0], "white", 0.1)
    with pytest.raises(TypeError, match="floating-point"):
        R.corrupt((x * 255).to(torch.uint8), "white", 0.1)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        R.corrupt(np.zeros((1, 1, 4, 4)), "white", 0.1)
    with pytest.raises(TypeError, match="must be a real tensor, got complex"):
        R.corrupt(x.to(torch.complex64), "fog", 1)
    for empty in (x[:0], x[:, :, :0], x[:, :0]):
        with pytest.raises(ValueError, match=r"at least one image with at least one pixel, got shape"):
            R.corrupt(empty, "jpeg_compression", 1)
    with pytest.raises(ValueError, match="preset must be one of.*got 'cifar'; did you mean 'cifar10'"):
        R.corrupt(x, "fog", 1, preset="cifar")
    with pytest.raises(TypeError, match="exponent must be a real number"):
        R.corrupt(x, "pink", 0.1, exponent="x")
    with pytest.raises(ValueError, match="every entry of shape must be >= 1, got 0"):
        R.pink_noise((1, 1, 0, 4))
    with pytest.raises(TypeError, match="every entry of shape must be an int"):
        R.pink_noise((1, 1, 2.5, 4))


def test_white_noise_statistics():
    x = torch.full((8, 2, 32, 32), 0.5)
    y = R.corrupt(x, "white", 0.05, generator=torch.Generator().manual_seed(0))
    d = y - x
    assert d.mean().abs() < 0.003 and d.std().item() == pytest.approx(0.05, rel=0.03)
    assert torch.equal(R.corrupt(x, "white", 0.0), x)


@settings(max_examples=10, deadline=None)
@given(p=st.sampled_from([0.01, 0.05, 0.1, 0.2, 0.5]), C=st.integers(1, 3), seed=st.integers(0, 100))
def test_salt_and_pepper_fraction(p, C, seed):
    x = torch.full((4, C, 64, 64), 0.5)
    y = R.corrupt(x, "salt_and_pepper", p, generator=torch.Generator().manual_seed(seed))
    hit = y != 0.5
    # same pixels on every channel, and set to the same value there
    assert torch.equal(hit, hit[:, :1].expand_as(hit))
    assert torch.equal(y, y[:, :1].expand_as(y))
    n = hit[:, 0].numel()
    frac = hit[:, 0].float().mean().item()
    assert abs(frac - p) < 4 * math.sqrt(p * (1 - p) / n) + 1e-9
    vals = y[:, 0][hit[:, 0]]
    assert set(vals.unique().tolist()) <= {0.0, 1.0}
    if vals.numel() > 200:
        assert abs((vals == 1).float().mean().item() - 0.5) < 0.1


def _radial_slope(noise):
    """Log-log slope of the radially averaged power spectrum (fit over mid frequencies)."""
    Hn = noise.shape[-1]
    P = (torch.fft.fft2(noise.double()).abs() ** 2).mean(dim=(0, 1))
    f = torch.fft.fftfreq(Hn, dtype=torch.float64)
    fr = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    sel = (fr > 2 / Hn) & (fr < 0.4)
    slope = np.polyfit(np.log(fr[sel].numpy()), np.log(P[sel].numpy()), 1)[0]
    return slope


@pytest.mark.parametrize("exponent", [0.0, 1.0, 2.0])
def test_pink_spectrum_slope_by_fit(exponent):
    n = R.pink_noise((4, 2, 128, 128), exponent=exponent, generator=torch.Generator().manual_seed(0))
    assert _radial_slope(n) == pytest.approx(-exponent, abs=0.1)
    m = n.mean(dim=(2, 3))
    s = n.std(dim=(2, 3), correction=0)
    assert m.abs().max() < 1e-5 and (s - 1).abs().max() < 1e-5  # z-scored per image and channel


def test_pink_corruption_uses_exponent():
    x = torch.full((4, 1, 128, 128), 0.5)
    d1 = R.corrupt(x, "pink", 0.05, generator=torch.Generator().manual_seed(0)) - x
    d2 = R.corrupt(x, "pink", 0.05, generator=torch.Generator().manual_seed(0), exponent=2.0) - x
    assert _radial_slope(d1) == pytest.approx(-1.0, abs=0.15)
    assert _radial_slope(d2) == pytest.approx(-2.0, abs=0.15)
    assert d1.std().item() == pytest.approx(0.05, rel=0.05)


def test_closed_forms():
    x = _rgb(2, 16)
    c = R.corrupt(x, "contrast", 2)  # 16 px: the CIFAR-10-C table, c = 0.5
    m = x.mean((2, 3), keepdim=True)
    torch.testing.assert_close(c, (x - m) * 0.5 + m)
    torch.testing.assert_close(R.corrupt(x, "contrast", 2, preset="imagenet"), (x - m) * 0.3 + m)
    g = _digits(2)[0]
    torch.testing.assert_close(R.corrupt(g, "brightness", 1), (g + 0.05).clamp(0, 1))
    torch.testing.assert_close(R.corrupt(g, "brightness", 1, preset="tiny_imagenet"), (g + 0.1).clamp(0, 1))
    b = R.corrupt(x, "brightness", 3, preset="imagenet")
    V = x.amax(1, keepdim=True)
    torch.testing.assert_close(b, (x * (V + 0.3).clamp(max=1) / V).clamp(0, 1))  # H and S kept, V + c
    flat = torch.full((1, 3, 16, 16), 0.4)
    assert (R.corrupt(flat, "jpeg_compression", 5) - flat).abs().max() < 2 / 255
    for preset, c in (("imagenet", 60), ("cifar10", 500)):
        sh = R.corrupt(torch.full((64, 1, 32, 32), 0.5), "shot_noise", 1, preset=preset, generator=torch.Generator().manual_seed(0))
        assert sh.mean().item() == pytest.approx(0.5, abs=0.005)
        assert sh.var().item() == pytest.approx(0.5 / c, rel=0.05)  # Poisson(x c)/c has variance x/c


def test_jpeg_dct_is_orthonormal_round_trip():
    D = dct_matrix(8, torch.float64, "cpu")
    torch.testing.assert_close(D @ D.T, torch.eye(8, dtype=torch.float64))
    x = torch.rand(2, 1, 24, 24, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ones = torch.ones(8, 8, dtype=torch.float64)  # quantisation step 1 of 255: almost lossless
    y = jpeg_plane((x * 255)[:, 0], ones) / 255
    assert (y - x[:, 0]).abs().max() <= 0.5 / 255 * 8
