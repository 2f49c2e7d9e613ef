import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import torchtopo as tt


def oracle_pairs(H, W, radius, metric, wrap):
    """Every unordered pair (i < j) whose grid distance is within radius: plain loops."""
    out = set()
    N = H * W
    for i in range(N):
        for j in range(i + 1, N):
            dr, dc = abs(i // W - j // W), abs(i % W - j % W)
            if wrap:
                dr, dc = min(dr, H - dr), min(dc, W - dc)
            d = {"chebyshev": max(dr, dc), "manhattan": dr + dc, "euclidean": math.hypot(dr, dc)}[metric]
            if d <= radius + 1e-9:
                out.add((i, j))
    return out


grids = st.tuples(
    st.integers(1, 12),
    st.integers(1, 12),
    st.sampled_from([1, 1.5, 2, 3]),
    st.sampled_from(["chebyshev", "manhattan", "euclidean"]),
    st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(grids)
def test_neighbor_pairs_match_oracle(spec):
    H, W, r, metric, wrap = spec
    g = tt.Grid(H, W, radius=r, metric=metric, wrap=wrap)
    i, j = g.neighbor_pairs()
    got = list(zip(i.tolist(), j.tolist()))
    assert len(got) == len(set(got)), "each unordered pair once"
    assert all(a < b for a, b in got)
    assert set(got) == oracle_pairs(H, W, r, metric, wrap)
    assert g.n_pairs == len(got)
    assert got == sorted(got)
    assert i.dtype == torch.long
    # neighbor counts are consistent with the pairs
    assert int(g.neighbor_counts().sum()) == 2 * len(got)


def test_truong_hasson_grid():
    g = tt.Grid(11, 11)
    assert g.n_units == 121
    assert g.n_pairs == 420  # the 11×11 fc1 sheet of Truong & Hasson (arXiv:2508.00043)
    assert tt.Grid(11, 11, metric="manhattan").n_pairs == 2 * 11 * 10
    counts = g.neighbor_counts()
    assert int(counts.max()) == 8 and int(counts.min()) == 3


def test_positions_and_distance():
    g = tt.Grid(3, 4)
    pos = g.positions
    assert pos.shape == (12, 2)
    assert pos[5].tolist() == [1, 1]  # row-major
    assert float(g.distance(0, 11)) == 3.0  # chebyshev: max(2, 3)
    assert float(tt.Grid(3, 4, metric="manhattan").distance(0, 11)) == 5.0
    assert float(tt.Grid(3, 4, metric="euclidean").distance(0, 11)) == pytest.approx(math.sqrt(13))
    assert float(tt.Grid(3, 4, wrap=True).distance(0, 3)) == 1.0
    d = g.distance(torch.tensor([0, 1]), torch.tensor([[0], [4]]))
    assert d.shape == (2, 2)
    with pytest.raises(IndexError):
        g.distance(0, 12)


def test_pairs_cached_and_on_device():
    g = tt.Grid(5, 5)
    a = g.neighbor_pairs()
    assert g.neighbor_pairs()[0] is a[0]
    i, j = g.neighbor_pairs("cpu")
    assert i.device.type == "cpu"
    if torch.cuda.is_available():  # pragma: no cover
        assert g.neighbor_pairs("cuda")[0].is_cuda


def test_for_units():
    assert tt.Grid.for_units(121).shape == (11, 11)
    assert tt.Grid.for_units(512).shape == (16, 32)
    assert tt.Grid.for_units(12).shape == (3, 4)
    with pytest.warns(UserWarning, match="prime"):
        assert tt.Grid.for_units(13).shape == (1, 13)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tt.Grid.for_units(1)
    with pytest.raises(ValueError):
        tt.Grid.for_units(0)
    with pytest.raises(TypeError):
        tt.Grid.for_units(2.5)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(height=0, width=3), ValueError, "height"),
        (dict(height=3, width=-1), ValueError, "width"),
        (dict(height=2.0, width=3), TypeError, "height"),
        (dict(height=True, width=3), TypeError, "height"),
        (dict(height=3, width=3, radius=0), ValueError, "radius"),
        (dict(height=3, width=3, radius=float("inf")), ValueError, "radius"),
        (dict(height=3, width=3, radius="1"), TypeError, "radius"),
        (dict(height=3, width=3, metric="cosine"), ValueError, "metric"),
        (dict(height=3, width=3, radius=(2,)), TypeError, r"Grid: radius must be a real number, got tuple \(\(2,\)\)"),
        (dict(height=3, width=3, radius=-2.5), ValueError, r"Grid: radius must be a finite number > 0, got -2.5"),
        (dict(height=3, width=3, radius=float("nan")), ValueError, r"Grid: radius must be finite, got nan"),
        (dict(height=3, width=3, metric=2.5), ValueError, r"Grid: metric must be one of \('chebyshev', 'manhattan', 'euclidean'\), got 2.5"),
        (dict(height=3, width=3, metric="euclid"), ValueError, r"got 'euclid'; did you mean 'euclidean'\?"),
        (dict(height=3, width=3, wrap="no"), TypeError, r"Grid: wrap must be True or False, got str \('no'\)"),
        (dict(height=3, width=3, wrap=1), TypeError, r"Grid: wrap must be True or False, got int \(1\)"),
        (dict(height=3, width=3, wrap=None), TypeError, r"Grid: wrap must be True or False, got NoneType"),
    ],
)
def test_bad_grid(kwargs, exc, match):
    h, w = kwargs.pop("height"), kwargs.pop("width")
    with pytest.raises(exc, match=match):
        tt.Grid(h, w, **kwargs)


def test_fractional_radius_is_a_real_radius():
    # 2.5 is a valid radius (Euclidean discs of non-integer radius); it is kept as given
    g = tt.Grid(5, 5, radius=2.5, metric="euclidean")
    assert g.radius == 2.5 and g.config()["radius"] == 2.5
    assert set(zip(*[t.tolist() for t in g.neighbor_pairs()])) == oracle_pairs(5, 5, 2.5, "euclidean", False)


def test_as_grid_and_equality():
    assert tt.as_grid((2, 3)) == tt.Grid(2, 3)
    assert tt.Grid(2, 3) != tt.Grid(2, 3, wrap=True)
    assert tt.Grid(**tt.Grid(4, 5, radius=2, metric="euclidean").config()) == tt.Grid(4, 5, radius=2, metric="euclidean")
    for bad in [(2,), (2, 3, 4), "2x3", (2.0, 3)]:
        with pytest.raises(TypeError, match="grid"):
            tt.as_grid(bad)
    assert "Grid(11, 11)" == repr(tt.Grid(11, 11))


def test_adjacency_symmetric():
    g = tt.Grid(4, 4, wrap=True)
    A = g.adjacency()
    assert torch.equal(A, A.T)
    assert int(A.sum()) == 2 * g.n_pairs
    assert torch.all(A.diagonal() == 0)
