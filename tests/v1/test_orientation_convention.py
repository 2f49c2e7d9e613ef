"""One orientation convention across the library: θ is the orientation of the stripes of the
preferred grating, 0° horizontal, counter-clockwise with y up (VOneNet's, Dapello et al. 2020).
A V1Front filter, the gratings, orientation_tuning, grating_tuning and fit_gabor all agree."""
import math

import pytest
import torch
from torch import nn

import torchtopo as tt
from torchtopo.v1 import V1Front
from torchtopo.v1 import analysis as V1A

THETAS = [0.0, 30.0, 60.0, 90.0, 120.0, 150.0]
PHASES = [0.0, 40.0, -70.0, 100.0, 170.0, 20.0]
SF_CPD = 4.0  # at 32 px/degree: f = 0.125 cycles/pixel
SIZE = 64


def _axial_deg(a, b):
    d = (torch.as_tensor(a, dtype=torch.float64) - torch.as_tensor(b, dtype=torch.float64)).abs() % 180
    return torch.minimum(d, 180 - d)


@pytest.fixture(scope="module")
def front():
    """Six simple and six complex cells at the θ above, set through the state_dict."""
    f = V1Front(image_size=SIZE, visual_degrees=2.0, in_channels=1, simple_channels=6, complex_channels=6,
                kernel_size=31, stride=1, noise=None, sampling="uniform", seed=0)
    sd = f.state_dict()
    n = f.out_channels
    sd["theta_deg"] = torch.tensor(THETAS * 2, dtype=sd["theta_deg"].dtype)
    sd["phase_deg"] = torch.tensor(PHASES * 2, dtype=sd["phase_deg"].dtype)
    sd["sf_cpd"] = torch.full((n,), SF_CPD, dtype=sd["sf_cpd"].dtype)
    sd["nx"] = torch.full((n,), 0.6, dtype=sd["nx"].dtype)
    sd["ny"] = torch.full((n,), 0.9, dtype=sd["ny"].dtype)
    f.load_state_dict(sd)
    return f.eval()


def _simple_kernels(front):
    """The simple cells' linear kernels read from the front itself: for a unit impulse δ at the
    centre c, rates(δ) − rates(−δ) = k_exc · q with q(i, j) = K(c + h − i, c + h − j)."""
    x = torch.zeros(2, 1, SIZE, SIZE)
    c, h = SIZE // 2, 15
    x[0, 0, c, c], x[1, 0, c, c] = 1.0, -1.0
    with torch.no_grad():
        r = front.rates(x)
    q = (r[0] - r[1])[:6] / front.k_exc
    return torch.flip(q[:, c - h:c + h + 1, c - h:c + h + 1], (-2, -1)).double()


def _stripes_axis(k):
    """For an axis-aligned Gabor k = a(y) b(x) (rank 1): "horizontal" when the sign changes are
    along y only (b one-signed, a changing sign), "vertical" for the transpose."""
    u, s, vh = torch.linalg.svd(k)
    assert float(s[1] / s[0]) < 1e-5  # separable
    col, row = u[:, 0] * s[0].sqrt(), vh[0] * s[0].sqrt()
    big = lambda v: v[v.abs() > 0.05 * v.abs().max()]  # noqa: E731  (ignore the numerically zero tails)
    one_signed = lambda v: bool((big(v) > 0).all() or (big(v) < 0).all())  # noqa: E731
    if one_signed(row) and not one_signed(col):
        return "horizontal"
    if one_signed(col) and not one_signed(row):
        return "vertical"
    return "neither"


def test_theta_zero_is_horizontal_stripes(front):
    k = _simple_kernels(front)
    assert _stripes_axis(k[0]) == "horizontal"  # θ = 0: varies along y only
    assert _stripes_axis(k[3]) == "vertical"  # θ = 90°
    # θ = 30°: constant along the direction (cos 30°, sin 30°), y up: compare with the kernel
    # sampled along a line through the centre in that direction vs. across it
    x = torch.arange(-10, 11, dtype=torch.float64)

    def line(g, deg):  # g sampled along a line through the centre at ``deg``, y up (nearest pixel)
        rows = (15 - (x * math.sin(math.radians(deg))).round()).long()
        return g[rows, (15 + (x * math.cos(math.radians(deg))).round()).long()]

    for th in (30.0, 150.0):
        g = tt.analysis.gabor_kernel(31, theta_deg=th, frequency=0.125, sigma_x=100.0, sigma_y=100.0,
                                     dtype=torch.float64)
        assert float(line(g, th).min()) > 0.8  # on the central ON stripe all along (pixel rounding)
        assert float(line(g, th + 90.0).min()) < -0.9  # across the stripes
        assert float(line(g, 180.0 - th).min()) < -0.5  # the mirror image (y down) is not it


def test_fit_gabor_returns_the_fronts_theta_and_phase(front):
    r = tt.analysis.fit_gabor(_simple_kernels(front))
    assert float(r["r2"].min()) > 0.999
    err = _axial_deg(r["theta_deg"], THETAS)
    assert float(err.max()) < 0.5, r["theta_deg"]
    torch.testing.assert_close(r["orientation"], torch.deg2rad(r["theta_deg"]))
    dph = (r["phase_deg"].double() - torch.tensor(PHASES, dtype=torch.float64) + 180) % 360 - 180
    assert float(dph.abs().max()) < 1.0, r["phase_deg"]
    assert float((r["frequency"] - SF_CPD / front.ppd).abs().max()) < 1e-3


def test_orientation_tuning_of_a_front_unit_peaks_at_its_theta(front):
    out = tt.analysis.orientation_tuning(nn.Sequential(front), "0", size=SIZE, channels=1, orientations=12,
                                         spatial_freqs=[SF_CPD / front.ppd], phases=8)
    assert torch.equal(out["preferred"].double(), torch.tensor(THETAS * 2, dtype=torch.float64))
    assert float(out["osi"].min()) > 0.5


def test_grating_tuning_peaks_at_theta_and_uses_the_shared_gratings(front):
    t = V1A.grating_tuning(front, orientations=12, phases=8, sfs_cpd=[2.0, SF_CPD, 8.0])
    assert torch.equal(t["preferred_theta_deg"], torch.tensor(THETAS * 2, dtype=torch.float64))
    assert torch.equal(t["preferred_sf_cpd"], torch.full((12,), SF_CPD, dtype=torch.float64))
    # the response at (θ, f) is the centre rate to tt.analysis.grating, averaged over the phases
    g = tt.analysis.grating(SIZE, [30.0], [SF_CPD / front.ppd], torch.arange(8) * 45.0).flatten(0, 2)
    with torch.no_grad():
        r = front.rates(g)[:, :, SIZE // 2, SIZE // 2].double().mean(0)
    torch.testing.assert_close(t["responses"][:, 1, 2], r)


def test_grating_and_gabor_share_theta_and_phase():
    # a grating (θ, φ) is the carrier of the Gabor (θ, φ): their inner product peaks there
    size, f = 41, 0.1
    th = torch.arange(12, dtype=torch.float64) * 15.0
    g = tt.analysis.grating(size, th, f, [0.0, 90.0, 180.0], dtype=torch.float64)[:, 0, :, 0] - 0.5  # (O, P, H, W)
    ker = tt.analysis.gabor_kernel(size, theta_deg=60.0, phase_deg=90.0, frequency=f, sigma_x=6.0, sigma_y=8.0,
                                   dtype=torch.float64)
    dots = (g * ker).sum((-2, -1))  # (O, P)
    o, p = divmod(int(dots.argmax()), 3)
    assert (float(th[o]), p) == (60.0, 1)
