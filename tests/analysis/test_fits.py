"""fit_log, fit_gabor, radial_symmetry and the kernel generators (the filter analyses of Bertoni et al., Front. Comput. Neurosci. 2021)."""
from __future__ import annotations

import math

import pytest
import torch

import torchtopo as tt
from torchtopo.analysis import fit_gabor, fit_log, gabor_kernel, log_kernel, radial_symmetry


def _gabor_loop(k, th, f, sx, sy, ph, amp=1.0, x0=0.0, y0=0.0):
    """The Gabor pixel by pixel: x right, y up, θ (radians) the stripes' orientation, so the
    carrier runs along x′ = x sin θ − y cos θ and the stripes along y′ = x cos θ + y sin θ."""
    out = torch.zeros(k, k, dtype=torch.float64)
    c = (k - 1) / 2
    for i in range(k):
        for j in range(k):
            x, y = j - c - x0, (c - i) - y0
            xp = x * math.sin(th) - y * math.cos(th)
            yp = x * math.cos(th) + y * math.sin(th)
            out[i, j] = amp * math.exp(-0.5 * (xp**2 / sx**2 + yp**2 / sy**2)) * math.cos(2 * math.pi * f * xp + ph)
    return out


def _log_loop(k, s, amp=1.0, x0=0.0, y0=0.0):
    out = torch.zeros(k, k, dtype=torch.float64)
    c = (k - 1) / 2
    for i in range(k):
        for j in range(k):
            q = ((j - c - x0) ** 2 + (c - i - y0) ** 2) / (2 * s * s)  # y up
            out[i, j] = amp * (1 - q) * math.exp(-q)
    return out


def _random_gabor_params(n, seed):
    g = torch.Generator().manual_seed(seed)
    u = lambda lo, hi: lo + (hi - lo) * float(torch.rand(1, generator=g))  # noqa: E731
    return [
        dict(th=u(0, math.pi), f=u(0.1, 0.25), sx=u(1.8, 3.0), sy=u(1.8, 3.5), ph=u(-math.pi, math.pi),
             amp=u(0.5, 2.0), x0=u(-1, 1), y0=u(-1, 1))
        for _ in range(n)
    ]


def _axial_err(a, b, period):
    d = torch.remainder(a - b + period / 2, period) - period / 2
    return d.abs()


def test_kernel_generators_match_loops():
    torch.testing.assert_close(
        gabor_kernel(9, orientation=0.7, frequency=0.2, sigma_x=2.0, sigma_y=3.0, phase=0.4, amplitude=1.5,
                     center=(0.5, -1.0), dtype=torch.float64),
        _gabor_loop(9, 0.7, 0.2, 2.0, 3.0, 0.4, 1.5, 0.5, -1.0),
    )
    torch.testing.assert_close(
        log_kernel(9, 1.7, amplitude=-2.0, center=(0.3, 0.2), dtype=torch.float64), _log_loop(9, 1.7, -2.0, 0.3, 0.2)
    )


@pytest.mark.parametrize("noise", [0.0, 0.02])
def test_fit_gabor_recovers_parameters(noise):
    params = _random_gabor_params(24, seed=3)
    k = torch.stack([_gabor_loop(15, p["th"], p["f"], p["sx"], p["sy"], p["ph"], p["amp"], p["x0"], p["y0"])
                     for p in params])
    g = torch.Generator().manual_seed(11)
    amp = torch.tensor([p["amp"] for p in params], dtype=torch.float64)
    k = k + noise * amp[:, None, None] * torch.randn(k.shape, generator=g, dtype=torch.float64)
    r = fit_gabor(k)
    tol = 5e-2 if noise else 1e-4
    true = {n: torch.tensor([p[n] for p in params], dtype=torch.float64) for n in params[0]}
    for name, key in (("frequency", "f"), ("sigma_x", "sx"), ("sigma_y", "sy"), ("amplitude", "amp")):
        rel = (r[name] / true[key] - 1).abs()
        assert rel.max() < tol, (name, rel.max())
    assert _axial_err(r["orientation"], true["th"], math.pi).max() < tol * math.pi
    assert _axial_err(r["phase"], true["ph"], 2 * math.pi).max() < tol * 2 * math.pi
    assert (r["center"][:, 0] - true["x0"]).abs().max() < tol * 15
    assert (r["center"][:, 1] - true["y0"]).abs().max() < tol * 15
    assert r["r2"].min() > (0.99999 if noise == 0 else 0.9)
    assert ((r["orientation"] >= 0) & (r["orientation"] < math.pi)).all()
    assert ((r["phase"] > -math.pi) & (r["phase"] <= math.pi)).all()
    torch.testing.assert_close(r["theta_deg"], torch.rad2deg(r["orientation"]))
    torch.testing.assert_close(r["phase_deg"], torch.rad2deg(r["phase"]))


def test_fit_gabor_is_per_filter_and_keeps_leading_shape():
    params = _random_gabor_params(6, seed=5)
    k = torch.stack([_gabor_loop(11, p["th"], p["f"], 1.8, 2.2, p["ph"]) for p in params]).float()
    k = k + 0.05 * torch.randn(k.shape, generator=torch.Generator().manual_seed(0))
    batch = fit_gabor(k.reshape(2, 3, 11, 11))
    assert batch["r2"].shape == (2, 3) and batch["center"].shape == (2, 3, 2)
    assert batch["fitted"].shape == (2, 3, 11, 11) and batch["r2"].dtype == torch.float32
    for i in range(6):  # one at a time: the same answer (no coupling between filters)
        one = fit_gabor(k[i])
        assert one["r2"].shape == ()
        torch.testing.assert_close(one["r2"], batch["r2"].flatten()[i], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(one["frequency"], batch["frequency"].flatten()[i], atol=1e-4, rtol=1e-4)
    # the fitted kernel is the model at the returned parameters, in radians or in degrees
    i = 4
    deg = gabor_kernel(11, theta_deg=batch["theta_deg"].flatten()[i], phase_deg=batch["phase_deg"].flatten()[i],
                       frequency=float(batch["frequency"].flatten()[i]),
                       sigma_x=float(batch["sigma_x"].flatten()[i]), sigma_y=float(batch["sigma_y"].flatten()[i]),
                       amplitude=float(batch["amplitude"].flatten()[i]),
                       center=tuple(batch["center"].reshape(-1, 2)[i].tolist()), offset=float(batch["offset"].flatten()[i]))
    torch.testing.assert_close(deg, batch["fitted"].reshape(-1, 11, 11)[i], atol=1e-4, rtol=1e-4)
    rebuilt = gabor_kernel(11, orientation=float(batch["orientation"].flatten()[i]),
                           frequency=float(batch["frequency"].flatten()[i]),
                           sigma_x=float(batch["sigma_x"].flatten()[i]), sigma_y=float(batch["sigma_y"].flatten()[i]),
                           phase=float(batch["phase"].flatten()[i]), amplitude=float(batch["amplitude"].flatten()[i]),
                           center=tuple(batch["center"].reshape(-1, 2)[i].tolist()),
                           offset=float(batch["offset"].flatten()[i]))
    torch.testing.assert_close(rebuilt, batch["fitted"].reshape(-1, 11, 11)[i], atol=1e-4, rtol=1e-4)


def test_fit_gabor_r2_is_low_on_noise():
    noise = torch.randn(200, 7, 7, generator=torch.Generator().manual_seed(0))
    r = fit_gabor(noise)
    assert (r["r2"] > 0.8).float().mean() < 0.05
    # and the R² matches its definition
    ss_res = ((noise.double() - r["fitted"].double()) ** 2).sum((1, 2))
    ss_tot = ((noise.double() - noise.double().mean((1, 2), keepdim=True)) ** 2).sum((1, 2))
    torch.testing.assert_close(r["r2"].double(), 1 - ss_res / ss_tot, atol=1e-5, rtol=1e-5)


def test_fit_gabor_without_offset():
    k = _gabor_loop(13, 1.0, 0.15, 2.0, 2.5, 0.3) + 0.3
    r0 = fit_gabor(k, offset=False)
    r1 = fit_gabor(k, offset=True)
    assert float(r0["offset"]) == 0.0
    assert abs(float(r1["offset"]) - 0.3) < 1e-3 and float(r1["r2"]) > float(r0["r2"])


@pytest.mark.parametrize("noise", [0.0, 0.02])
def test_fit_log_recovers_parameters(noise):
    cases = [(0.9, 1.0, 0.0, 0.0), (1.5, -2.0, 0.4, -0.3), (2.2, 0.5, -0.5, 0.2), (1.2, -0.7, 0.0, 0.6)]
    k = torch.stack([_log_loop(13, s, a, x0, y0) for s, a, x0, y0 in cases])
    amp = torch.tensor([abs(c[1]) for c in cases], dtype=torch.float64)
    k = k + noise * amp[:, None, None] * torch.randn(k.shape, generator=torch.Generator().manual_seed(2),
                                                      dtype=torch.float64)
    r = fit_log(k)
    tol = 5e-2 if noise else 1e-5
    s = torch.tensor([c[0] for c in cases], dtype=torch.float64)
    a = torch.tensor([c[1] for c in cases], dtype=torch.float64)
    assert ((r["sigma"] / s - 1).abs() < tol).all(), r["sigma"]
    assert ((r["amplitude"] / a - 1).abs() < tol).all(), r["amplitude"]
    c = torch.tensor([[x0, y0] for _, _, x0, y0 in cases], dtype=torch.float64)
    assert ((r["center"] - c).abs() < tol * 13).all()
    if noise == 0:
        assert (r["residual"] < 1e-5).all() and (r["r2"] > 1 - 1e-8).all()
    else:
        assert (r["residual"] < 0.3).all()
    # residual matches its definition
    torch.testing.assert_close(r["residual"], ((k - r["fitted"]).norm(dim=(1, 2)) / k.norm(dim=(1, 2))))


def test_fit_log_single_filter_and_offset():
    k = log_kernel(9, 1.3, amplitude=2.0) - 0.1
    r = fit_log(k)
    assert r["sigma"].shape == () and r["center"].shape == (2,)
    assert abs(float(r["sigma"]) - 1.3) < 1e-3 and abs(float(r["offset"]) + 0.1) < 1e-3
    r_no = fit_log(k, offset=False)
    assert float(r_no["offset"]) == 0.0 and float(r_no["r2"]) < float(r["r2"])


def _radial_oracle(f: torch.Tensor) -> float:
    h, w = f.shape
    groups = {}
    for i in range(h):
        for j in range(w):
            key = round(4 * ((i - (h - 1) / 2) ** 2 + (j - (w - 1) / 2) ** 2))
            groups.setdefault(key, []).append(float(f[i, j]))
    mean = float(f.mean())
    ss_res = ss_tot = 0.0
    for i in range(h):
        for j in range(w):
            key = round(4 * ((i - (h - 1) / 2) ** 2 + (j - (w - 1) / 2) ** 2))
            g = groups[key]
            ss_res += (float(f[i, j]) - sum(g) / len(g)) ** 2
            ss_tot += (float(f[i, j]) - mean) ** 2
    return max(0.0, 1 - ss_res / ss_tot)


def test_radial_symmetry_matches_loop_and_ranks():
    g = torch.Generator().manual_seed(0)
    fs = torch.randn(5, 7, 7, generator=g, dtype=torch.float64)
    got = radial_symmetry(fs)
    for i in range(5):
        assert abs(float(got[i]) - _radial_oracle(fs[i])) < 1e-10
    even = torch.randn(6, 8, generator=g, dtype=torch.float64)  # even sizes: half-pixel centre
    assert abs(float(radial_symmetry(even)) - _radial_oracle(even)) < 1e-10
    assert float(radial_symmetry(log_kernel(11, 2.0, dtype=torch.float64))) > 1 - 1e-12
    gab = gabor_kernel(11, orientation=0.3, frequency=0.2, sigma_x=2, sigma_y=2, dtype=torch.float64)
    assert float(radial_symmetry(gab)) < 0.6
    assert float(radial_symmetry(torch.ones(5, 5))) == 1.0  # constant: symmetric, not NaN


@pytest.mark.parametrize("fn", [fit_log, fit_gabor])
def test_fit_bad_input(fn):
    name = fn.__name__
    with pytest.raises(TypeError, match=f"{name}.*torch.Tensor.*list"):
        fn([[1.0, 2.0]])
    with pytest.raises(ValueError, match=rf"{name}.*\(\.\.\., H, W\).*\(5,\)"):
        fn(torch.randn(5))
    with pytest.raises(ValueError, match=rf"{name}.*at least 3×3.*\(2, 5\)"):
        fn(torch.randn(4, 2, 5))
    with pytest.raises(TypeError, match=f"{name}.*floating-point.*int64"):
        fn(torch.ones(5, 5, dtype=torch.long))
    bad = torch.randn(5, 5)
    bad[1, 1] = float("nan")
    with pytest.raises(ValueError, match=f"{name}.*NaN"):
        fn(bad)
    with pytest.raises(ValueError, match=f"{name}.*iters.*-1"):
        fn(torch.randn(5, 5), iters=-1)


def test_gabor_kernel_bad_angles():
    kw = dict(frequency=0.1, sigma_x=2.0, sigma_y=2.0)
    with pytest.raises(ValueError, match=r"gabor_kernel: give theta_deg \(degrees\) or orientation \(radians\), not both"):
        gabor_kernel(9, theta_deg=30.0, orientation=0.5, **kw)
    with pytest.raises(ValueError, match=r"gabor_kernel: give phase_deg .* not both"):
        gabor_kernel(9, theta_deg=30.0, phase_deg=0.0, phase=0.0, **kw)
    with pytest.raises(TypeError, match=r"gabor_kernel: missing the orientation"):
        gabor_kernel(9, **kw)
    with pytest.raises(TypeError, match=r"gabor_kernel: theta_deg must be a real number, got str"):
        gabor_kernel(9, theta_deg="30", **kw)
    with pytest.raises(ValueError, match=r"gabor_kernel: orientation must be finite, got nan"):
        gabor_kernel(9, orientation=float("nan"), **kw)


def test_exported():
    for n in ("fit_log", "fit_gabor", "radial_symmetry", "lateral_selectivity", "association_field"):
        assert n in tt.analysis.__all__ and callable(getattr(tt.analysis, n))


@pytest.mark.parametrize("fn", [fit_log, fit_gabor])
def test_fit_dead_and_constant_filters_are_finite_and_not_fits(fn):
    k = torch.stack([torch.zeros(7, 7), torch.full((7, 7), 0.3), log_kernel(7, 1.2)])
    r = fn(k)
    for name, v in r.items():
        assert torch.isfinite(v).all(), name
    assert float(r["r2"][0]) == 0.0 and float(r["r2"][1]) == 0.0


def test_fit_gabor_chunks_match_one_batch():
    params = _random_gabor_params(7, seed=9)
    k = torch.stack([_gabor_loop(9, p["th"], p["f"], 1.6, 2.0, p["ph"]) for p in params]).reshape(7, 1, 9, 9)
    one = fit_gabor(k, iters=20)
    chunked = fit_gabor(k, iters=20, chunk_size=3)
    for name in one:
        assert chunked[name].shape == one[name].shape, name
        torch.testing.assert_close(chunked[name], one[name], atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="chunk_size.*0"):
        fit_gabor(k, chunk_size=0)


@pytest.mark.parametrize("sigma", [0.0, -1.0, float("nan")])
def test_log_kernel_needs_a_positive_sigma(sigma):
    with pytest.raises(ValueError, match="sigma"):
        log_kernel(5, sigma)
