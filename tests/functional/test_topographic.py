"""The topographic losses against brute-force definitions (WS and AS of Truong & Hasson,
arXiv:2508.00043; the spatial-correlation loss of TDANN, Margalit et al. 2024, Neuron)."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import torchtopo as tt
import torchtopo.functional as TF

from test_grid import oracle_pairs

DIST = ["euclidean", "sqeuclidean", "cosine", "correlation"]


def d_oracle(x, y, distance):
    x, y = x.double().tolist(), y.double().tolist()
    if distance in ("euclidean", "sqeuclidean"):
        s = sum((a - b) ** 2 for a, b in zip(x, y))
        return math.sqrt(s) if distance == "euclidean" else s
    if distance == "correlation":
        mx, my = sum(x) / len(x), sum(y) / len(y)
        x, y = [a - mx for a in x], [b - my for b in y]
    dot = sum(a * b for a, b in zip(x, y))
    nx, ny = math.sqrt(sum(a * a for a in x)), math.sqrt(sum(b * b for b in y))
    return 1 - dot / (nx * ny + 1e-8)


def mean_oracle(vectors, g, distance):
    pairs = oracle_pairs(g.height, g.width, g.radius, g.metric, g.wrap)
    if not pairs:
        return 0.0
    return sum(d_oracle(vectors[i], vectors[j], distance) for i, j in pairs) / len(pairs)


grid_st = st.builds(
    lambda h, w, r, m, wrap: tt.Grid(h, w, radius=r, metric=m, wrap=wrap),
    st.integers(1, 6),
    st.integers(1, 6),
    st.sampled_from([1, 2]),
    st.sampled_from(["chebyshev", "manhattan", "euclidean"]),
    st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(grid_st, st.integers(1, 7), st.sampled_from(DIST), st.sampled_from([torch.float32, torch.float64]), st.integers(0, 2**31))
def test_weight_similarity_matches_oracle(g, D, distance, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(g.n_units, D, generator=gen, dtype=torch.float64)
    got = TF.weight_similarity(w.to(dtype), g, distance=distance, backend="torch")
    want = mean_oracle(w.to(dtype).double(), g, distance)
    assert got.dtype == dtype
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    assert float(got) == pytest.approx(want, rel=tol, abs=tol)


@settings(max_examples=40, deadline=None)
@given(grid_st, st.integers(2, 6), st.sampled_from(DIST), st.integers(0, 2**31), st.booleans())
def test_activation_similarity_matches_oracle(g, B, distance, seed, conv):
    gen = torch.Generator().manual_seed(seed)
    if conv:
        a = torch.randn(B, g.n_units, 2, 3, generator=gen, dtype=torch.float64)
        vectors = a.permute(1, 0, 2, 3).reshape(g.n_units, -1)  # channel k: batch × positions
    else:
        a = torch.randn(B, g.n_units, generator=gen, dtype=torch.float64)
        vectors = a.T
    got = TF.activation_similarity(a, g, distance=distance, backend="torch")
    assert float(got) == pytest.approx(mean_oracle(vectors, g, distance), rel=1e-9, abs=1e-9)


def test_conv_weight_rows_are_units():
    g = tt.Grid(2, 4)
    w = torch.randn(8, 3, 3, 3, dtype=torch.float64)
    got = TF.weight_similarity(w, g, distance="cosine")
    assert float(got) == pytest.approx(mean_oracle(w.reshape(8, -1), g, "cosine"), rel=1e-10)
    # a 1-D weight: each unit's vector has length 1
    v = torch.randn(8, dtype=torch.float64)
    assert float(TF.weight_similarity(v, g)) == pytest.approx(mean_oracle(v[:, None], g, "euclidean"))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_accumulates_in_fp32(dtype):
    g = tt.Grid(8, 8)
    w = torch.randn(64, 300)
    for distance in DIST:
        ref = TF.weight_similarity(w.to(dtype).float(), g, distance=distance)
        got = TF.weight_similarity(w.to(dtype), g, distance=distance)
        assert got.dtype == torch.float32
        assert float(got) == pytest.approx(float(ref), rel=1e-5)


def test_views_not_copies():
    g = tt.Grid(3, 4)
    w = torch.randn(12, 5)
    assert TF.unit_view(w, g, "rows").data_ptr() == w.data_ptr()
    a = torch.randn(7, 12, 4, 4)
    X = TF.unit_view(a, g, "columns")
    assert X.shape == (7, 3, 4, 16) and X.data_ptr() == a.data_ptr()
    a2 = torch.randn(7, 12)
    assert TF.unit_view(a2, g, "columns").data_ptr() == a2.data_ptr()


@pytest.mark.parametrize("distance", DIST)
@pytest.mark.parametrize("grid", [tt.Grid(3, 4), tt.Grid(3, 3, wrap=True), tt.Grid(2, 2, wrap=True, radius=2), tt.Grid(1, 5)])
def test_gradcheck(distance, grid):
    w = torch.randn(grid.n_units, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: TF.weight_similarity(t, grid, distance=distance), (w,))
    a = torch.randn(5, grid.n_units, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: TF.activation_similarity(t, grid, distance=distance), (a,))


def test_gradcheck_spatial_correlation():
    g = tt.Grid(3, 3)
    a = torch.randn(6, 9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: TF.spatial_correlation(t, g), (a,))


def test_spatial_correlation_oracle():
    g = tt.Grid(3, 4, wrap=True)
    a = torch.randn(10, 12, dtype=torch.float64)
    got = TF.spatial_correlation(a, g)
    r, inv = [], []
    for i in range(12):
        for j in range(i + 1, 12):
            r.append(1 - d_oracle(a[:, i], a[:, j], "correlation"))
            inv.append(1 / (1 + float(g.sheet_distance(i, j))))
    mr, mi = sum(r) / len(r), sum(inv) / len(inv)
    cov = sum((x - mr) * (y - mi) for x, y in zip(r, inv))
    pear = cov / (math.sqrt(sum((x - mr) ** 2 for x in r)) * math.sqrt(sum((y - mi) ** 2 for y in inv)) + 1e-8)
    assert float(got) == pytest.approx(0.5 * (1 - pear), rel=1e-9)


def test_spatial_correlation_extremes_and_windows():
    g = tt.Grid(6, 6)
    # smooth random fields (neighbours correlated, far units not) give a low loss; noise ~ 1/2
    torch.manual_seed(0)
    field = torch.randn(400, 1, 12, 12, dtype=torch.float64)
    k = torch.ones(1, 1, 7, 7, dtype=torch.float64)
    smooth = torch.nn.functional.conv2d(field, k)[:, 0].reshape(400, 36)
    noise = torch.randn(400, 36, dtype=torch.float64)
    assert float(TF.spatial_correlation(smooth, g)) < 0.15
    assert abs(float(TF.spatial_correlation(noise, g)) - 0.5) < 0.1
    gen = torch.Generator().manual_seed(1)
    l1 = TF.spatial_correlation(smooth, g, neighborhood=3, generator=gen)
    l2 = TF.spatial_correlation(smooth, g, neighborhood=(3, 4), generator=gen)
    assert torch.isfinite(l1) and torch.isfinite(l2)
    with pytest.raises(ValueError, match="neighborhood"):
        TF.spatial_correlation(smooth, g, neighborhood=0)
    with pytest.raises(ValueError, match="at least 3 units"):
        TF.spatial_correlation(smooth, g, neighborhood=(1, 2))


def test_identical_and_dead_units_are_finite():
    g = tt.Grid(4, 4)
    for distance in DIST:
        w = torch.ones(16, 5, requires_grad=True)  # all neighbours identical
        loss = TF.weight_similarity(w, g, distance=distance)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(w.grad).all()
        a = torch.randn(8, 16)
        a[:, 3] = 0.0  # a dead unit: zero variance, zero norm
        a[:, 5] = 2.5  # a constant unit: zero variance
        a.requires_grad_(True)
        loss = TF.activation_similarity(a, g, distance=distance)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(a.grad).all()
    z = torch.zeros(8, 16, requires_grad=True)
    l = TF.spatial_correlation(z, g)
    l.backward()
    assert torch.isfinite(l) and torch.isfinite(z.grad).all()


def test_euclidean_zero_distance_value_and_gradient():
    g = tt.Grid(1, 2)
    w = torch.tensor([[1.0, 2.0], [1.0, 2.0]], requires_grad=True)
    loss = TF.weight_similarity(w, g)
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.equal(w.grad, torch.zeros_like(w))


def test_one_unit_grid_gives_zero():
    w = torch.randn(1, 3, requires_grad=True)
    loss = TF.weight_similarity(w, tt.Grid(1, 1))
    loss.backward()
    assert float(loss.detach()) == 0.0 and w.grad is not None


def test_bad_inputs():
    g = tt.Grid(11, 11)
    with pytest.raises(ValueError, match=r"100 units.*121 units"):
        TF.weight_similarity(torch.randn(100, 64), g)
    with pytest.raises(ValueError, match=r"distance must be one of"):
        TF.weight_similarity(torch.randn(121, 64), g, distance="manhattan")
    with pytest.raises(TypeError, match="torch.Tensor"):
        TF.weight_similarity([[1.0]], tt.Grid(1, 1))
    with pytest.raises(TypeError, match="floating-point"):
        TF.weight_similarity(torch.ones(121, 3, dtype=torch.long), g)
    with pytest.raises(ValueError, match="scalar"):
        TF.weight_similarity(torch.tensor(1.0), tt.Grid(1, 1))
    with pytest.raises(ValueError, match="batch size 1"):
        TF.activation_similarity(torch.randn(1, 121), g)
    with pytest.raises(ValueError, match="batch size 1"):
        TF.spatial_correlation(torch.randn(1, 121), g)
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        TF.activation_similarity(torch.randn(121), g)
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        TF.activation_similarity(torch.randn(2, 121, 2, 2, 2), g)
    with pytest.raises(ValueError, match=r"64 units.*121"):
        TF.activation_similarity(torch.randn(8, 64, 4, 4), g)
    with pytest.raises(TypeError, match="grid"):
        TF.weight_similarity(torch.randn(121, 3), 121)
    bad = torch.randn(121, 3)
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        TF.weight_similarity(bad, g, check_finite=True)
    assert torch.isnan(TF.weight_similarity(bad, g))  # documented: propagates by default
    a = torch.randn(4, 121)
    a[1, 1] = float("inf")
    with pytest.raises(ValueError, match="NaN or Inf"):
        TF.activation_similarity(a, g, check_finite=True)


def test_backend_selection(monkeypatch):
    w = torch.randn(9, 3)
    g = tt.Grid(3, 3)
    assert TF.resolve_backend(None, w) == "torch"  # CPU tensor: auto -> torch
    assert TF.resolve_backend("torch", w) == "torch"
    with pytest.raises(ValueError, match="backend must be one of"):
        TF.weight_similarity(w, g, backend="cuda")
    monkeypatch.setenv("TORCHTOPO_BACKEND", "nope")
    with pytest.raises(ValueError, match="TORCHTOPO_BACKEND"):
        TF.weight_similarity(w, g)
    monkeypatch.setenv("TORCHTOPO_BACKEND", "torch")
    assert torch.isfinite(TF.weight_similarity(w, g))


def test_mean_over_ordered_equals_unordered():
    # 11×11 Moore sheet: 840 ordered pairs, 420 unordered; the means agree
    g = tt.Grid(11, 11)
    w = torch.randn(121, 64, dtype=torch.float64)
    i, j = g.neighbor_pairs()
    ii, jj = torch.cat([i, j]), torch.cat([j, i])
    ordered = (w[ii] - w[jj]).norm(dim=1).mean()
    assert float(TF.weight_similarity(w, g)) == pytest.approx(float(ordered), rel=1e-12)
