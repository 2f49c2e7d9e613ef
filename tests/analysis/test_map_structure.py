"""Statistics that tell smooth maps from striped ones and from a shared layout: directional
Moran's I, the mean map's share of variance, Moran's I of mean-subtracted maps and the pairwise-r
distribution against a control — against brute-force loops and closed forms."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import torchtopo as tt
from torchtopo import analysis as A

DIRS = {"horizontal": (0, 1), "vertical": (1, 0), "diagonal": (1, 1), "antidiagonal": (1, -1)}


# ----------------------------------------------------------------------------- oracles
def brute_directional(m, H, W, dr, dc, wrap=False):
    """Moran's I over the pairs (r, c)–(r + dr, c + dc), by a loop over the cells."""
    x = np.asarray(m, dtype=np.float64).reshape(H, W)
    z = x - x.mean()
    num, pairs = 0.0, 0
    for r in range(H):
        for c in range(W):
            r2, c2 = r + dr, c + dc
            if wrap:
                r2, c2 = r2 % H, c2 % W
            elif not (0 <= r2 < H and 0 <= c2 < W):
                continue
            num += 2 * z[r, c] * z[r2, c2]  # w_ij = w_ji = 1
            pairs += 1
    den = (z * z).sum()
    if pairs == 0:
        return math.nan
    if den == 0:
        return 0.0
    return (H * W / (2 * pairs)) * num / den


def brute_share(maps):
    x = np.asarray(maps, dtype=np.float64).reshape(len(maps), -1)
    K, N = x.shape
    mbar = [sum(x[k, i] for k in range(K)) / K for i in range(N)]
    mu = sum(x[k, i] for k in range(K) for i in range(N)) / (K * N)
    resid = sum((x[k, i] - mbar[i]) ** 2 for k in range(K) for i in range(N))
    total = sum((x[k, i] - mu) ** 2 for k in range(K) for i in range(N))
    return 1 - resid / total


# ----------------------------------------------------------------------------- directional Moran's I
@settings(max_examples=30, deadline=None)
@given(H=st.integers(1, 6), W=st.integers(1, 6), B=st.integers(1, 3), wrap=st.booleans(), seed=st.integers(0, 999))
def test_directional_matches_brute_force(H, W, B, wrap, seed):
    wrap = wrap and min(H, W) >= 3
    if H * W < 2:
        return
    maps = torch.randn(B, H, W, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    got = A.directional_morans_i(maps, tt.Grid(H, W, wrap=wrap), reduction="none")
    mean = A.directional_morans_i(maps, tt.Grid(H, W, wrap=wrap))
    assert set(got) == set(DIRS)
    for name, (dr, dc) in DIRS.items():
        want = [brute_directional(maps[b], H, W, dr, dc, wrap) for b in range(B)]
        assert got[name].shape == (B,)
        np.testing.assert_allclose(got[name].numpy(), want, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(float(mean[name]), np.mean(want), rtol=1e-9, atol=1e-12)


def test_stripes_closed_forms():
    r = torch.arange(8.0)
    rows = ((-1.0) ** r)[:, None].expand(8, 10)  # horizontal stripes one unit high: rows alternate
    d = A.directional_morans_i(rows[None])
    assert {k: float(v) for k, v in d.items()} == {"horizontal": 1.0, "vertical": -1.0, "diagonal": -1.0,
                                                   "antidiagonal": -1.0}
    d = A.directional_morans_i(rows.T.contiguous()[None])  # vertical stripes
    assert {k: float(v) for k, v in d.items()} == {"horizontal": -1.0, "vertical": 1.0, "diagonal": -1.0,
                                                   "antidiagonal": -1.0}
    board = (-1.0) ** (r[:, None] + r[None, :])  # checkerboard: both diagonals agree, both axes flip
    d = A.directional_morans_i(board[None])
    assert {k: float(v) for k, v in d.items()} == {"horizontal": -1.0, "vertical": -1.0, "diagonal": 1.0,
                                                   "antidiagonal": 1.0}
    # diagonal stripes of period 4: constant along (1, 1), opposite after (1, −1), in quadrature along the axes
    n = torch.arange(40.0)
    diag = torch.cos(2 * math.pi * (n[:, None] - n[None, :]) / 4)
    d = A.directional_morans_i(diag[None])
    assert float(d["diagonal"]) > 0.95 and float(d["antidiagonal"]) < -0.95
    assert abs(float(d["horizontal"])) < 0.05 and abs(float(d["vertical"])) < 0.05
    # a smooth blob: all four near +1, and the 8-neighbour I agrees
    blob = torch.exp(-((n[:, None] - 20) ** 2 + (n[None, :] - 15) ** 2) / 200.0)
    d = A.directional_morans_i(blob[None])
    assert min(float(v) for v in d.values()) > 0.9


def test_eight_neighbour_i_is_the_pair_weighted_mean_of_the_directions():
    H, W = 5, 7
    maps = torch.randn(4, H * W, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    d = A.directional_morans_i(maps, (H, W), reduction="none")
    n_pairs = {"horizontal": H * (W - 1), "vertical": (H - 1) * W, "diagonal": (H - 1) * (W - 1),
               "antidiagonal": (H - 1) * (W - 1)}
    combined = sum(n_pairs[k] * d[k] for k in d) / sum(n_pairs.values())
    torch.testing.assert_close(combined, A.morans_i(maps, (H, W)))


def test_directional_edge_cases():
    one_row = torch.randn(3, 1, 6, dtype=torch.float64)
    d = A.directional_morans_i(one_row, reduction="none")
    assert torch.isfinite(d["horizontal"]).all()
    for k in ("vertical", "diagonal", "antidiagonal"):
        assert torch.isnan(d[k]).all()  # documented: no pairs in that direction
    c = A.directional_morans_i(torch.ones(2, 4, 4), reduction="none")
    assert all(v.tolist() == [0.0, 0.0] for v in c.values())  # a constant map has no structure
    # layouts agree: (B, N) with a grid, (B, H, W), (N,) with a grid
    x = torch.randn(2, 4, 5)
    a = A.directional_morans_i(x, reduction="none")
    b = A.directional_morans_i(x.reshape(2, 20), tt.Grid(4, 5), reduction="none")
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    assert A.directional_morans_i(x[0].reshape(20), (4, 5), reduction="none")["vertical"].shape == (1,)


def test_directional_bad_inputs():
    with pytest.raises(TypeError, match="directional_morans_i: maps must be a torch.Tensor"):
        A.directional_morans_i([[1.0, 2.0]], (1, 2))
    with pytest.raises(ValueError, match="directional_morans_i: reduction must be one of .*'sum'"):
        A.directional_morans_i(torch.randn(2, 9), (3, 3), reduction="sum")
    with pytest.raises(ValueError, match="directional_morans_i: the maps have 12 units but the grid 3×3 has 9"):
        A.directional_morans_i(torch.randn(2, 12), (3, 3))
    with pytest.raises(ValueError, match="directional_morans_i: maps are 3×4 but the grid is 4×3"):
        A.directional_morans_i(torch.randn(2, 3, 4), (4, 3))
    with pytest.raises(ValueError, match="wrap-around grid needs both sides >= 3.*2×5"):
        A.directional_morans_i(torch.randn(2, 10), tt.Grid(2, 5, wrap=True))
    with pytest.raises(ValueError, match="no neighbour pairs"):
        A.directional_morans_i(torch.randn(2, 1, 1))
    bad = torch.randn(2, 9)
    bad[0, 3] = float("nan")
    with pytest.raises(ValueError, match="directional_morans_i: maps must be finite"):
        A.directional_morans_i(bad, (3, 3))
    with pytest.raises(TypeError, match="subtract_mean_map must be True or False, got int"):
        A.directional_morans_i(torch.randn(2, 9), (3, 3), subtract_mean_map=1)
    with pytest.raises(ValueError, match="at least one map"):
        A.directional_morans_i(torch.randn(0, 9), (3, 3))


# ----------------------------------------------------------------------------- mean-subtracted maps
def test_morans_i_of_mean_subtracted_maps():
    g = torch.Generator().manual_seed(4)
    n = torch.arange(9.0)
    layout = torch.exp(-((n[:, None] - 4) ** 2 + (n[None, :] - 4) ** 2) / 8.0)  # smooth, shared by every stimulus
    maps = 5 * layout + torch.randn(200, 9, 9, generator=g)  # + spatial noise per stimulus
    assert float(A.morans_i(maps).mean()) > 0.5  # the shared layout makes every map look smooth
    sub = A.morans_i(maps, subtract_mean_map=True)
    torch.testing.assert_close(sub, A.morans_i(maps - maps.mean(0, keepdim=True)))
    assert abs(float(sub.mean())) < 0.05  # the stimulus-driven part is noise
    d = A.directional_morans_i(maps, subtract_mean_map=True, reduction="none")
    ref = A.directional_morans_i(maps - maps.mean(0, keepdim=True), reduction="none")
    for k in d:
        torch.testing.assert_close(d[k], ref[k])
    assert A.morans_i(maps[:1], subtract_mean_map=True).tolist() == [0.0]  # one map minus itself


# ----------------------------------------------------------------------------- mean-map share
@settings(max_examples=15, deadline=None)
@given(K=st.integers(2, 5), N=st.integers(1, 7), shift=st.floats(-3, 3), seed=st.integers(0, 999))
def test_mean_map_share_matches_brute_force(K, N, shift, seed):
    g = torch.Generator().manual_seed(seed)
    maps = torch.randn(K, N, generator=g, dtype=torch.float64) + shift * torch.randn(N, generator=g, dtype=torch.float64)
    assert A.mean_map_share(maps) == pytest.approx(brute_share(maps), rel=1e-9, abs=1e-12)


def test_mean_map_share_closed_forms():
    m = torch.randn(3, 4, dtype=torch.float64)
    assert A.mean_map_share(m[:1].expand(5, 3, 4)) == pytest.approx(1.0)  # the same map for every stimulus
    assert A.mean_map_share(torch.stack([m, -m])) == pytest.approx(0.0, abs=1e-12)  # flat mean map
    # maps = layout + independent noise: share ≈ var(layout) / (var(layout) + var(noise))
    g = torch.Generator().manual_seed(0)
    layout = torch.randn(400, generator=g, dtype=torch.float64)
    maps = 2.0 * layout + torch.randn(2000, 400, generator=g, dtype=torch.float64)
    assert A.mean_map_share(maps) == pytest.approx(4.0 / 5.0, abs=0.02)
    assert A.mean_map_share(torch.full((3, 2, 2), 7.0)) == 0.0  # nothing to explain
    assert isinstance(A.mean_map_share(maps[:3].float()), float)


def test_mean_map_share_bad_inputs():
    with pytest.raises(TypeError, match="mean_map_share: maps must be a torch.Tensor"):
        A.mean_map_share([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(ValueError, match=r"mean_map_share: needs at least 2 maps.*\(1, 5\)"):
        A.mean_map_share(torch.randn(1, 5))
    with pytest.raises(ValueError, match="mean_map_share: maps must be 2-D or 3-D"):
        A.mean_map_share(torch.randn(5))
    with pytest.raises(ValueError, match="mean_map_share: maps must be finite"):
        A.mean_map_share(torch.tensor([[1.0, float("inf")], [0.0, 1.0]]))


# ----------------------------------------------------------------------------- pairwise-r distribution
def test_correlation_distribution_brute_force_and_control():
    g = torch.Generator().manual_seed(5)
    S, N = 60, 9
    base = torch.randn(S, 1, generator=g, dtype=torch.float64)
    sign = torch.tensor([1.0, -1.0] * 4 + [1.0], dtype=torch.float64)
    model = base * sign + 0.3 * torch.randn(S, N, generator=g, dtype=torch.float64)  # r near ±1: bimodal
    model[:, 4] = 2.0  # a dead unit: its pairs drop out
    control = torch.randn(S, N, generator=g, dtype=torch.float64)
    out = A.correlation_distribution(model, control, bins=10)
    pairs = [stats.pearsonr(model[:, i].numpy(), model[:, j].numpy())[0]
             for i in range(N) for j in range(i + 1, N) if 4 not in (i, j)]
    ctrl = [stats.pearsonr(control[:, i].numpy(), control[:, j].numpy())[0] for i in range(N) for j in range(i + 1, N)]
    np.testing.assert_allclose(out["pair_r"].numpy(), pairs, atol=1e-12)
    np.testing.assert_allclose(out["control_pair_r"].numpy(), ctrl, atol=1e-12)
    hist, edges = np.histogram(pairs, bins=10, range=(-1, 1), density=True)
    np.testing.assert_allclose(out["density"].numpy(), hist, atol=1e-12)
    np.testing.assert_allclose(out["edges"].numpy(), edges, atol=1e-12)
    assert float(out["mean"]) == pytest.approx(np.mean(pairs)) and float(out["mean_abs"]) == pytest.approx(np.mean(np.abs(pairs)))
    for key, r in (("bimodality", pairs), ("control_bimodality", ctrl)):
        n = len(r)
        G1, G2 = stats.skew(r, bias=False), stats.kurtosis(r, bias=False)
        assert float(out[key]) == pytest.approx((G1 ** 2 + 1) / (G2 + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))), rel=1e-9)
    assert float(out["bimodality"]) > 5 / 9 > float(out["control_bimodality"])
    assert float(out["ks"]) == pytest.approx(stats.ks_2samp(pairs, ctrl).statistic, abs=1e-12)
    hc, _ = np.histogram(ctrl, bins=10, range=(-1, 1), density=True)
    assert float(out["overlap"]) == pytest.approx(np.minimum(hist, hc).sum() * 0.2, abs=1e-12)
    alone = A.correlation_distribution(model, bins=10)
    assert "ks" not in alone and "control_density" not in alone


def test_correlation_distribution_bad_inputs():
    with pytest.raises(TypeError, match="correlation_distribution: activations must be a torch.Tensor"):
        A.correlation_distribution([[1.0]])
    with pytest.raises(ValueError, match="correlation_distribution: bins must be >= 1"):
        A.correlation_distribution(torch.randn(10, 5), bins=0)
    with pytest.raises(ValueError, match="correlation_distribution: control must have at least 4 pairs .* got 1"):
        A.correlation_distribution(torch.randn(10, 5), torch.randn(10, 2))
    with pytest.raises(ValueError, match="at least 2 stimuli"):
        A.correlation_distribution(torch.randn(1, 5))
    tied = A.correlation_distribution(torch.arange(10.0)[:, None].expand(10, 5))  # every r = 1
    assert float(tied["bimodality"]) == 0.0 and float(tied["mean"]) == pytest.approx(1.0)
