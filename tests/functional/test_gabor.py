"""The one Gabor (torchtopo.functional.gabor) against closed forms: centre value, carrier direction
with y up, envelope widths, the integral, symmetries, the envelope's bounding box, and the fits'
parametrisation (Dapello et al. 2020; Barbulescu et al., arXiv:2310.10575)."""
import math

import pytest
import torch

import torchtopo as tt
from torchtopo.functional.gabor import ENVELOPE_SIGMAS, envelope_half_width, gabor_at, gabor_kernels


def t(*v):
    return torch.tensor(v, dtype=torch.float64)


def grid(k):
    r = torch.arange(k, dtype=torch.float64) - (k - 1) / 2
    return r.view(1, k), -r.view(k, 1)  # x to the right, y up


def one(f, theta, phase, nx, ny, k):
    return gabor_kernels(t(f), t(theta), t(phase), t(nx), t(ny), k)[0]


def test_exported_once():
    assert tt.functional.gabor_kernels is gabor_kernels is tt.v1.gabor_kernels
    assert tt.functional.envelope_half_width is envelope_half_width is tt.v1.envelope_half_width


@pytest.mark.parametrize("theta", [0.0, 37.0, 90.0, 151.0])
def test_even_gabor_peaks_at_the_centre(theta):
    f, nx, ny, k = 0.12, 0.6, 0.9, 41
    g = one(f, theta, 0.0, nx, ny, k)
    c = k // 2
    assert float(g[c, c]) == pytest.approx(1 / (2 * math.pi * (nx / f) * (ny / f)), rel=1e-12)
    assert int(g.argmax()) == c * k + c


def test_stripes_follow_theta_with_y_up():
    f, k = 0.1, 31
    x, y = grid(k)
    env0 = one(f, 0.0, 0.0, 0.5, 0.5, k) ** 2 + one(f, 0.0, 90.0, 0.5, 0.5, k) ** 2
    # θ = 0: horizontal stripes, the filter varies along y only: x′ = −y
    g0 = one(f, 0.0, 0.0, 0.5, 0.5, k)
    torch.testing.assert_close(g0, env0.sqrt() * torch.cos(2 * math.pi * f * y))
    carrier0 = g0 / env0.sqrt()
    torch.testing.assert_close(carrier0, carrier0[:, :1].expand(k, k), atol=1e-12, rtol=0)  # constant along rows
    assert float((carrier0[:, 0] - carrier0[0, 0]).abs().max()) > 1.0  # and varies along y
    # θ = 90°: vertical stripes, x′ = x
    g90 = one(f, 90.0, -90.0, 0.5, 0.5, k)  # cos(2π f x − 90°) = sin(2π f x)
    torch.testing.assert_close(g90, env0.sqrt() * torch.sin(2 * math.pi * f * x))
    # odd filters tell the sign of x′ = x sin θ − y cos θ: at θ = 0 it points down (y up)
    g0odd = one(f, 0.0, -90.0, 0.5, 0.5, k)  # sin(2π f x′) = −sin(2π f y)
    c = k // 2
    assert float(g0odd[c + 2, c]) > 0 > float(g0odd[c - 2, c])  # positive below the centre
    # θ = 45°: the stripes run up-right, constant along y = x (the anti-diagonal of the array)
    g45 = one(f, 45.0, 0.0, 0.5, 0.5, k) / (env0.sqrt() + 1e-300)
    torch.testing.assert_close(torch.flip(g45, (1,)).diagonal(), torch.ones(k, dtype=torch.float64), atol=1e-9, rtol=0)


def vonenet_closed_form(f, theta_deg, phase_deg, sx, sy, k):
    """Dapello et al. 2020's Gabor, written from its published equation: coordinates (a, b) with a
    the row offset (down) and b the column offset from the kernel centre, a′ = a cos θ + b sin θ,
    b′ = −a sin θ + b cos θ (θ, φ in radians), G = exp(−½(a′²/σx² + b′²/σy²)) / (2π σx σy)
    · cos(2π f a′ + φ).  Computed by a loop over pixels."""
    th, ph = math.radians(theta_deg), math.radians(phase_deg)
    out = torch.zeros(k, k, dtype=torch.float64)
    for i in range(k):
        for j in range(k):
            a, b = i - k // 2, j - k // 2
            ap, bp = a * math.cos(th) + b * math.sin(th), -a * math.sin(th) + b * math.cos(th)
            out[i, j] = (math.exp(-0.5 * (ap ** 2 / sx ** 2 + bp ** 2 / sy ** 2)) / (2 * math.pi * sx * sy)
                         * math.cos(2 * math.pi * f * ap + ph))
    return out


@pytest.mark.parametrize("theta", [0.0, 30.0, 45.0, 90.0, 120.0, 157.0])
def test_same_filter_as_vonenet_for_the_same_theta(theta):
    f, nx, ny, phase, k = 0.11, 0.45, 0.8, 37.0, 21
    got = one(f, theta, phase, nx, ny, k)
    torch.testing.assert_close(got, vonenet_closed_form(f, theta, phase, nx / f, ny / f, k), rtol=1e-12, atol=1e-15)
    if theta not in (0.0, 90.0):  # the old convention (θ the wave vector, y up) is a different filter
        assert float((got - vonenet_closed_form(f, theta + 90.0, phase, nx / f, ny / f, k)).abs().max()) > 1e-3


@pytest.mark.parametrize("nx,ny,theta", [(0.5, 0.3, 0.0), (0.4, 0.8, 30.0), (1.0, 0.25, 120.0)])
def test_quadrature_pair_gives_the_envelope(nx, ny, theta):
    f, k = 0.1, 61
    env = (one(f, theta, 0.0, nx, ny, k) ** 2 + one(f, theta, 90.0, nx, ny, k) ** 2).sqrt()
    x, y = grid(k)
    a = math.radians(theta)
    xr, yr = x * math.sin(a) - y * math.cos(a), x * math.cos(a) + y * math.sin(a)  # across, along the stripes
    sx, sy = nx / f, ny / f
    ref = torch.exp(-0.5 * (xr ** 2 / sx ** 2 + yr ** 2 / sy ** 2)) / (2 * math.pi * sx * sy)
    torch.testing.assert_close(env, ref, rtol=1e-10, atol=1e-16)


@pytest.mark.parametrize("phase", [0.0, 40.0, 90.0, 200.0])
def test_integral_is_the_carrier_at_zero_frequency(phase):
    # ∫ G = exp(−2π² nx²) cos φ for the unit-integral envelope
    f, nx, ny, k = 0.1, 0.35, 0.5, 201
    total = float(one(f, 25.0, phase, nx, ny, k).sum())
    assert total == pytest.approx(math.exp(-2 * math.pi ** 2 * nx ** 2) * math.cos(math.radians(phase)), abs=1e-9)


def test_odd_gabor_has_zero_mean_and_symmetries():
    g = one(0.15, 70.0, 90.0, 0.7, 0.4, 25)
    assert abs(float(g.sum())) < 1e-14
    torch.testing.assert_close(g, -torch.flip(g, (0, 1)))  # odd about the centre
    # θ and θ + 180° with φ → −φ describe the same Gabor
    torch.testing.assert_close(one(0.15, 70.0, 35.0, 0.7, 0.4, 25), one(0.15, 250.0, -35.0, 0.7, 0.4, 25))


def test_gabor_at_is_the_kernels_formula():
    f, theta, phase, nx, ny, k = t(0.08, 0.2), t(10.0, 135.0), t(0.0, 60.0), t(0.5, 1.2), t(0.3, 0.4), 17
    x, y = grid(k)
    v = f.view(-1, 1, 1)
    ref = gabor_at(x, y, v, theta.view(-1, 1, 1), phase.view(-1, 1, 1), nx.view(-1, 1, 1) / v,
                   ny.view(-1, 1, 1) / v, normalized=True)
    assert torch.equal(gabor_kernels(f, theta, phase, nx, ny, k), ref)
    # f = 0: an unmodulated Gaussian; scalars broadcast
    blob = gabor_at(x, y, 0.0, 30.0, 0.0, 2.0, 2.0)
    torch.testing.assert_close(blob, torch.exp(-(x ** 2 + y ** 2) / 8.0).expand(k, k))


def test_envelope_half_width_closed_form():
    f, nx, ny = t(0.1, 0.1, 0.1), t(0.5, 0.5, 0.5), t(0.2, 0.2, 0.2)
    half = envelope_half_width(f, t(0.0, 90.0, 45.0), nx, ny)
    sx, sy = 5.0, 2.0
    want = t(sx, sx, math.sqrt((sx ** 2 + sy ** 2) / 2)) * ENVELOPE_SIGMAS
    torch.testing.assert_close(half, want)
    assert ENVELOPE_SIGMAS == 2.0
    torch.testing.assert_close(envelope_half_width(f, t(0, 0, 0), nx, ny, n_sigmas=3.0), t(15.0, 15.0, 15.0))


def test_fits_model_is_this_gabor_with_y_up():
    # analysis.gabor_kernel = A · gabor_at(x − x0, y − y0, θ, φ) + c, y up, θ in degrees or radians
    th, ph, f, sx, sy, amp, x0, y0, c = 35.0, 20.0, 0.2, 2.0, 3.0, 1.5, 0.5, -1.0, 0.1
    k = 9
    x, y = grid(k)
    ref = amp * gabor_at(x - x0, y - y0, f, th, ph, sx, sy) + c
    kw = dict(frequency=f, sigma_x=sx, sigma_y=sy, amplitude=amp, center=(x0, y0), offset=c, dtype=torch.float64)
    torch.testing.assert_close(tt.analysis.gabor_kernel(k, theta_deg=th, phase_deg=ph, **kw), ref, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(tt.analysis.gabor_kernel(k, orientation=math.radians(th), phase=math.radians(ph), **kw),
                               ref, rtol=1e-12, atol=1e-14)
