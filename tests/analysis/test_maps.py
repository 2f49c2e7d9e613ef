"""tt.analysis (issue 4): every metric against a brute-force definition written with plain loops."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

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


# ----------------------------------------------------------------------------- unit statistics
def test_unit_entropy_brute_force_and_limits():
    a = torch.randn(300, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    a[:, 4] = 1.0
    h = A.unit_entropy(a, bins=10)
    for u in range(4):
        counts, _ = np.histogram(a[:, u].numpy(), bins=10, range=(a[:, u].min().item(), a[:, u].max().item()))
        p = counts[counts > 0] / counts.sum()
        assert h[u].item() == pytest.approx(-(p * np.log2(p)).sum(), abs=1e-9)
    assert h[4].item() == 0.0
    uni = torch.linspace(0, 1, 3200)[:, None].repeat(1, 2)
    assert A.unit_entropy(uni, bins=32)[0].item() == pytest.approx(5.0, abs=1e-3)
    with pytest.raises(ValueError, match="bins must be a positive int"):
        A.unit_entropy(a, bins=0)


def test_percent_zero_and_sensitivity():
    a = torch.tensor([[0.0, 1.0, -1.0], [0.0, 0.0, 2.0], [3.0, 0.0, -0.5], [0.0, 2.0, 1.0]])
    assert A.percent_zero(a.clamp_min(0)).tolist() == [75.0, 50.0, 50.0]
    assert A.percent_zero(a, pre_relu=True).tolist() == [75.0, 50.0, 50.0]
    v = A.input_sensitivity(a)
    for u in range(3):
        assert v[u].item() == pytest.approx(np.var(a[:, u].numpy(), ddof=1))


def test_effective_dimensionality():
    g = torch.Generator().manual_seed(3)
    iso = torch.randn(20000, 8, generator=g, dtype=torch.float64)
    assert A.effective_dimensionality(iso).item() == pytest.approx(8.0, rel=0.03)
    rank1 = torch.randn(500, 1, generator=g, dtype=torch.float64) * torch.randn(1, 8, generator=g, dtype=torch.float64)
    assert A.effective_dimensionality(rank1).item() == pytest.approx(1.0, abs=1e-9)
    x = torch.randn(60, 5, generator=g, dtype=torch.float64) * torch.tensor([3.0, 2.0, 1.0, 0.5, 0.1], dtype=torch.float64)
    lam = np.linalg.eigvalsh(np.cov(x.numpy(), rowvar=False))
    assert A.effective_dimensionality(x).item() == pytest.approx(lam.sum() ** 2 / (lam**2).sum(), rel=1e-9)
    assert A.effective_dimensionality(torch.ones(10, 3)).item() == 0.0


# ----------------------------------------------------------------------------- selectivity
def test_selectivity_brute_force():
    g = torch.Generator().manual_seed(4)
    a = torch.randn(90, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (90,), generator=g)
    d = A.selectivity(a, y, 3)
    for c in range(3):
        for u in range(4):
            x1 = a[y == c, u].numpy()
            x0 = a[y != c, u].numpy()
            ref = (x1.mean() - x0.mean()) / math.sqrt((x1.var(ddof=1) + x0.var(ddof=1)) / 2)
            assert d[c, u].item() == pytest.approx(ref, rel=1e-9)


def test_selectivity_separable_and_errors():
    y = torch.arange(4).repeat_interleave(25)
    a = torch.randn(100, 4) * 0.1
    a[torch.arange(100), y] += 5.0  # unit k fires for class k
    d = A.selectivity(a, y)
    assert (d.diagonal() > 10).all()
    off = d[~torch.eye(4, dtype=torch.bool)]
    assert (off < 0).all()
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        A.selectivity(a, y.float())
    with pytest.raises(ValueError, match="labels has 99 entries but activations has 100"):
        A.selectivity(a, y[:99])
    with pytest.raises(ValueError, match="num_classes is 2"):
        A.selectivity(a, y, 2)


def test_localization_and_experts():
    g = tt.Grid(8, 8)
    pos = g.positions
    clustered = ((pos[:, 0] < 3) & (pos[:, 1] < 3))[None]
    corners = torch.zeros(1, 64, dtype=torch.bool)
    corners[0, [0, 7, 56, 63]] = True
    score = A.localization_score(torch.cat([clustered, corners]), g)
    assert score[0] > 0.4 and score[1] < -0.5
    # brute-force: mean distance among the set vs all pairs
    idx = clustered[0].nonzero().flatten().tolist()
    d_set = np.mean([math.dist(pos[i].tolist(), pos[j].tolist()) for i in idx for j in idx if i != j])
    d_all = np.mean([math.dist(pos[i].tolist(), pos[j].tolist()) for i in range(64) for j in range(64) if i != j])
    assert score[0].item() == pytest.approx(1 - d_set / d_all, rel=1e-5)
    rnd = torch.zeros(200, 64, dtype=torch.bool)
    perm = torch.rand(200, 64, generator=torch.Generator().manual_seed(0)).argsort(1)[:, :10]
    rnd.scatter_(1, perm, True)
    assert abs(A.localization_score(rnd, g).mean().item()) < 0.03
    one = torch.zeros(1, 64, dtype=torch.bool)
    one[0, 3] = True
    assert math.isnan(A.localization_score(one, g).item())
    dprime = torch.where(clustered, 2.0, 0.0).repeat(2, 1)
    ex = A.expert_units(dprime, g, threshold=1.0)
    assert ex["count"].tolist() == [9, 9]
    assert ex["fraction"].item() == pytest.approx(9 / 64)
    assert ex["localization"][0].item() == pytest.approx(score[0].item())
    assert (ex["morans_i"] > 0.5).all()
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        A.localization_score(clustered.float(), g)
    with pytest.raises(ValueError, match="dprime must be 2-D"):
        A.expert_units(torch.randn(64), g)


# ----------------------------------------------------------------------------- stimuli and probes
def test_grating_definition():
    gr = A.grating((9, 11), [0, 90], [0.1, 0.25], [0, 90], contrast=0.8, channels=2)
    assert gr.shape == (2, 2, 2, 2, 9, 11)
    assert gr.min() >= 0.1 - 1e-6 and gr.max() <= 0.9 + 1e-6
    v = gr[0, 0, 0, 0]  # θ = 0: varies along x only
    assert torch.allclose(v, v[:1].expand_as(v))
    h = gr[1, 0, 0, 0]  # θ = 90: varies along y only
    assert torch.allclose(h, h[:, :1].expand_as(h))
    y, x = 2, 7
    ref = 0.5 + 0.4 * math.cos(2 * math.pi * 0.25 * (x - 5) + math.pi / 2)
    assert gr[0, 1, 1, 0, y, x].item() == pytest.approx(ref, abs=1e-6)
    with pytest.raises(ValueError, match="contrast must be in"):
        A.grating(8, 0, contrast=2)
    with pytest.raises(ValueError, match="size must be"):
        A.grating(0, 0)


class _GratingUnits(nn.Module):
    """A linear layer whose units are zero-mean gratings at known orientations."""

    def __init__(self, oris, size=21, f=0.15):
        super().__init__()
        w = A.grating(size, oris, f, 0.0)[:, 0, 0, 0] - 0.5
        self.fc = nn.Linear(size * size, len(oris), bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(w.reshape(len(oris), -1))

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_orientation_tuning_recovers_known_preferences():
    oris = [0.0, 45.0, 90.0, 135.0]
    m = _GratingUnits(oris)
    out = A.orientation_tuning(m, "fc", size=21, orientations=8, spatial_freqs=[0.15], phases=8)
    assert out["preferred"].tolist() == oris
    assert (out["osi"] > 0.5).all() and out["osi"][[0, 2]].min() > 0.95  # diagonals alias on 21 px
    assert out["responses"].shape == (8, 4)
    with pytest.raises(ValueError, match="orientations must be >= 2"):
        A.orientation_tuning(m, "fc", size=21, orientations=1)


class _SymmetryUnit(nn.Module):
    def __init__(self):
        super().__init__()
        self.out = nn.Identity()

    def forward(self, x):
        asym = (x - x.flip(-1)).abs().flatten(1).sum(1, keepdim=True)
        return self.out(torch.cat([-asym, asym], 1))


def test_symmetry_probe():
    sym, asym = A.symmetry_stimuli(8, 12, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sym, sym.flip(-1))
    assert not torch.equal(asym, asym.flip(-1))
    d = A.symmetry_selectivity(_SymmetryUnit(), "out", n=32, size=12)
    assert d[0] > 2 and d[1] < -2


class _CentreUnit(nn.Module):
    def __init__(self, size=15):
        super().__init__()
        y = torch.arange(size) - (size - 1) / 2
        self.register_buffer("w", torch.exp(-(y[:, None] ** 2 + y[None] ** 2) / 8).flatten())
        self.out = nn.Identity()

    def forward(self, x):
        return self.out((x.flatten(1) * self.w).sum(1, keepdim=True))


def test_eccentricity_probe():
    stim, ecc = A.eccentricity_stimuli(15, 4, n_angles=4)
    assert stim.shape == (16, 1, 15, 15) and ecc[0] == 0
    r = A.eccentricity_tuning(_CentreUnit(), "out", size=15, eccentricities=5)
    assert r["preferred"].item() == 0 and r["slope"].item() < 0
    assert (r["responses"][1:, 0] <= r["responses"][:-1, 0] + 1e-6).all()


# ----------------------------------------------------------------------------- collection, real model
def test_collect_activations_sources_and_mode():
    torch.manual_seed(0)
    m = tt.models.mnist_cnn()
    m.train()
    x = torch.randn(10, 1, 28, 28)
    y = torch.arange(10)
    m.eval()
    with torch.no_grad():
        ref = m.fc1(m.embed(x))
    m.train()
    a, lab = A.collect_activations(m, "fc1", x, batch_size=3)
    assert lab is None and m.training
    torch.testing.assert_close(a, ref)
    ds = torch.utils.data.TensorDataset(x, y)
    a2, lab2 = A.collect_activations(m, m.fc1, torch.utils.data.DataLoader(ds, batch_size=4))
    torch.testing.assert_close(a2, ref)
    assert torch.equal(lab2, y)
    a3, lab3, out = A.collect_activations(m, "fc1", ds, which="input", return_outputs=True)
    assert a3.shape == (10, 64) and out.shape == (10, 10)
    with pytest.raises(ValueError, match="no module named 'fc3'.*'fc1'"):
        A.collect_activations(m, "fc3", x)
    with pytest.raises(ValueError, match="which must be"):
        A.collect_activations(m, "fc1", x, which="both")
    with pytest.raises(TypeError, match="data must be"):
        A.collect_activations(m, "fc1", 3)


def test_analyses_on_a_real_model_and_sample():
    x, y = tt.data.mnist_sample_tensors("test")
    x, y = x[:200], y[:200]
    torch.manual_seed(0)
    m = tt.models.mnist_cnn()
    acts, lab = A.collect_activations(m, "fc1", (x, y))
    g = m.fc1.grid
    assert A.morans_i(acts, g).shape == (200,)
    assert torch.isfinite(A.neighbor_correlation(acts, g))
    assert A.unit_entropy(acts).shape == (121,)
    d = A.selectivity(acts, lab, 10)
    assert d.shape == (10, 121) and torch.isfinite(d).all()
    ex = A.expert_units(d, g)
    assert ex["mask"].shape == (10, 121)
    ot = A.orientation_tuning(m, "fc1", orientations=4, spatial_freqs=[0.1], phases=2)
    assert ot["osi"].shape == (121,) and ((ot["osi"] >= 0) & (ot["osi"] <= 1)).all()
