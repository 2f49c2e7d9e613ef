"""tt.analysis map statistics (Moran's I, correlations) against brute-force definitions written with plain loops."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import torchtopo as tt
from torchtopo import analysis as A


# ----------------------------------------------------------------------------- oracles
def brute_morans_i(m, H, W, radius=1, metric="chebyshev"):
    x = np.asarray(m, dtype=np.float64).reshape(H * W)
    z = x - x.mean()
    num, wsum = 0.0, 0.0
    for a in range(H * W):
        for b in range(H * W):
            if a == b:
                continue
            dr, dc = abs(a // W - b // W), abs(a % W - b % W)
            d = {"chebyshev": max(dr, dc), "manhattan": dr + dc, "euclidean": math.hypot(dr, dc)}[metric]
            if d <= radius + 1e-9:
                num += z[a] * z[b]
                wsum += 1
    den = (z * z).sum()
    if den == 0:
        return 0.0
    return (H * W / wsum) * num / den


def brute_pearson(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a - a.mean(), b - b.mean()
    return (a * b).sum() / math.sqrt((a * a).sum() * (b * b).sum())


# ----------------------------------------------------------------------------- Moran's I
@settings(max_examples=25, deadline=None)
@given(
    H=st.integers(2, 6),
    W=st.integers(2, 6),
    metric=st.sampled_from(["chebyshev", "manhattan", "euclidean"]),
    radius=st.sampled_from([1, 1.5, 2]),
    seed=st.integers(0, 1000),
)
def test_morans_i_matches_brute_force(H, W, metric, radius, seed):
    g = tt.Grid(H, W, radius=radius, metric=metric)
    maps = torch.randn(3, H * W, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    got = A.morans_i(maps, g)
    for k in range(3):
        assert got[k].item() == pytest.approx(brute_morans_i(maps[k], H, W, radius, metric), rel=1e-9, abs=1e-12)


def test_morans_i_ramp_noise_checkerboard_constant():
    g = tt.Grid(11, 11)
    r = torch.arange(11.0)
    ramp = (r[:, None] + r[None, :]).reshape(1, -1)
    assert A.morans_i(ramp, g).item() > 0.8
    noise = torch.randn(400, 121, generator=torch.Generator().manual_seed(0))
    assert abs(A.morans_i(noise, g).mean().item()) < 0.03  # E[I] = -1/(N-1) ≈ -0.008
    board = ((r[:, None] + r[None, :]) % 2).reshape(1, -1)
    assert A.morans_i(board, tt.Grid(11, 11, metric="manhattan")).item() == pytest.approx(-1.0)
    assert A.morans_i(torch.ones(2, 121), g).tolist() == [0.0, 0.0]


def test_morans_i_layouts_agree_and_default_grid():
    x = torch.randn(4, 5, 7)
    a = A.morans_i(x)
    b = A.morans_i(x.reshape(4, 35), tt.Grid(5, 7))
    c = A.morans_i(x, (5, 7))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)
    assert A.morans_i(x[0].reshape(35), (5, 7)).shape == (1,)


def test_morans_i_bad_inputs():
    with pytest.raises(TypeError, match="maps must be a torch.Tensor"):
        A.morans_i([[1.0, 2.0]], (1, 2))
    with pytest.raises(ValueError, match="12 units but the grid 11×11 has 121"):
        A.morans_i(torch.randn(2, 12), (11, 11))
    with pytest.raises(ValueError, match="maps are 3×4 but the grid is 4×3"):
        A.morans_i(torch.randn(2, 3, 4), (4, 3))
    with pytest.raises(ValueError, match="1-D map needs a grid"):
        A.morans_i(torch.randn(9))
    with pytest.raises(ValueError, match="must be 1-D or 2-D or 3-D"):
        A.morans_i(torch.randn(1, 2, 3, 4))


# ----------------------------------------------------------------------------- correlations
def test_correlation_matrix_and_dead_units():
    a = torch.randn(50, 6, dtype=torch.float64)
    a[:, 2] = 3.0  # dead unit
    r = A.correlation_matrix(a)
    for i in range(6):
        for j in range(6):
            if 2 in (i, j):
                assert math.isnan(r[i, j].item())
            else:
                assert r[i, j].item() == pytest.approx(brute_pearson(a[:, i], a[:, j]), abs=1e-12)
    with pytest.raises(ValueError, match="at least 2 stimuli"):
        A.correlation_matrix(torch.randn(1, 4))


def test_neighbor_correlation_brute_force():
    g = tt.Grid(3, 4)
    a = torch.randn(40, 12, dtype=torch.float64)
    a[:, 5] = 0.0
    vals = []
    for i in range(12):
        for j in range(i + 1, 12):
            if max(abs(i // 4 - j // 4), abs(i % 4 - j % 4)) == 1 and 5 not in (i, j):
                vals.append(brute_pearson(a[:, i], a[:, j]))
    assert A.neighbor_correlation(a, g).item() == pytest.approx(np.mean(vals), abs=1e-12)


def test_correlation_vs_distance_brute_force():
    H, W = 3, 4
    a = torch.randn(30, H * W, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = A.correlation_vs_distance(a, (H, W))
    groups = {}
    for i in range(H * W):
        for j in range(i + 1, H * W):
            d = round(math.hypot(i // W - j // W, i % W - j % W), 9)
            groups.setdefault(d, []).append(brute_pearson(a[:, i], a[:, j]))
    ds = sorted(groups)
    assert out["distance"].tolist() == pytest.approx(ds)
    assert out["mean"].tolist() == pytest.approx([np.mean(groups[d]) for d in ds])
    assert out["std"].tolist() == pytest.approx([np.std(groups[d], ddof=1) if len(groups[d]) > 1 else 0 for d in ds])
    assert out["count"].tolist() == [len(groups[d]) for d in ds]
    assert out["pair_r"].numel() == H * W * (H * W - 1) // 2
    binned = A.correlation_vs_distance(a, (H, W), bins=3)
    assert int(binned["count"].sum()) == out["pair_r"].numel()
    with pytest.raises(TypeError, match="bins must be"):
        A.correlation_vs_distance(a, (H, W), bins="x")


def test_correlation_vs_distance_needs_increasing_bin_edges():
    acts = torch.randn(20, 9)
    with pytest.raises(ValueError, match="strictly increasing"):
        A.correlation_vs_distance(acts, (3, 3), bins=torch.tensor([3.0, 1.0, 2.0]))
