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


def _centred(x, distance):
    x = x.double().tolist()
    if distance == "correlation":
        m = sum(x) / len(x)
        x = [a - m for a in x]
    return x


def eps2_oracle(vectors, distance):
    """ε² of the angular distances: 0.01 × the mean over units of ‖x̃‖² (+ 1e-30)."""
    sq = [sum(a * a for a in _centred(v, distance)) for v in vectors]
    return 0.01 * sum(sq) / len(sq) + 1e-30


def d_oracle(x, y, distance, sign="signed", eps2=0.0):
    if distance in ("euclidean", "sqeuclidean"):
        s = sum((a - b) ** 2 for a, b in zip(x.double().tolist(), y.double().tolist()))
        return math.sqrt(s) if distance == "euclidean" else s
    x, y = _centred(x, distance), _centred(y, distance)
    dot = sum(a * b for a, b in zip(x, y))
    s = dot / (math.sqrt(sum(a * a for a in x) + eps2) * math.sqrt(sum(b * b for b in y) + eps2))
    return 1 - {"signed": s, "absolute": abs(s), "squared": s * s}[sign]


def mean_oracle(vectors, g, distance, sign="signed"):
    pairs = oracle_pairs(g.height, g.width, g.radius, g.metric, g.wrap)
    if not pairs:
        return 0.0
    e2 = eps2_oracle(vectors, distance)
    return sum(d_oracle(vectors[i], vectors[j], distance, sign, e2) for i, j in pairs) / len(pairs)


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


FORMS = [(d, s) for d in DIST for s in (("signed", "absolute", "squared") if d in ("cosine", "correlation") else ("signed",))]


@settings(max_examples=60, deadline=None)
@given(grid_st, st.integers(2, 6), st.sampled_from(FORMS), st.integers(0, 2**31), st.sampled_from(["dense", "conv", "tokens"]))
def test_activation_similarity_matches_oracle(g, B, form, seed, layout):
    distance, sign = form
    gen = torch.Generator().manual_seed(seed)
    kw = {}
    if layout == "conv":
        a = torch.randn(B, g.n_units, 2, 3, generator=gen, dtype=torch.float64)
        vectors = a.permute(1, 0, 2, 3).reshape(g.n_units, -1)  # channel k: batch × positions
    elif layout == "tokens":  # (B, T, N) of a transformer: batch × tokens are the stimuli
        a = torch.randn(B, 3, g.n_units, generator=gen, dtype=torch.float64)
        vectors = a.reshape(-1, g.n_units).T
        kw = {"unit_dim": -1}
    else:
        a = torch.randn(B, g.n_units, generator=gen, dtype=torch.float64)
        vectors = a.T
    got = TF.activation_similarity(a, g, distance=distance, sign=sign, backend="torch", **kw)
    assert float(got) == pytest.approx(mean_oracle(vectors, g, distance, sign), rel=1e-9, abs=1e-9)


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


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("grid", [tt.Grid(3, 4), tt.Grid(3, 3, wrap=True), tt.Grid(2, 2, wrap=True, radius=2), tt.Grid(1, 5)])
def test_gradcheck(form, grid):
    distance, sign = form
    if sign == "signed":
        w = torch.randn(grid.n_units, 4, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda t: TF.weight_similarity(t, grid, distance=distance), (w,))
    a = torch.randn(5, grid.n_units, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: TF.activation_similarity(t, grid, distance=distance, sign=sign), (a,)
    )
    tok = torch.randn(2, 3, grid.n_units, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: TF.activation_similarity(t, grid, distance=distance, sign=sign, unit_dim=-1), (tok,)
    )


def test_gradcheck_spatial_correlation():
    g = tt.Grid(3, 3)
    a = torch.randn(6, 9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: TF.spatial_correlation(t, g), (a,))


def test_spatial_correlation_oracle():
    g = tt.Grid(3, 4, wrap=True)
    a = torch.randn(10, 12, dtype=torch.float64)
    got = TF.spatial_correlation(a, g)
    r, inv = [], []
    e2 = eps2_oracle(a.T, "correlation")
    for i in range(12):
        for j in range(i + 1, 12):
            r.append(1 - d_oracle(a[:, i], a[:, j], "correlation", eps2=e2))
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
    with pytest.raises(ValueError, match="at least 2 stimuli"):
        TF.activation_similarity(torch.randn(0, 121), g)
    with pytest.raises(ValueError, match="batch size 1"):
        TF.spatial_correlation(torch.randn(1, 121), g)
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        TF.activation_similarity(torch.randn(121), g)
    assert torch.isfinite(TF.activation_similarity(torch.randn(2, 121, 2, 2, 2), g))  # conv3d: C units
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


# ------------------------------------------------------------------ sign forms and unit_dim
def test_sign_forms_on_anticorrelated_neighbours():
    """r = −1 everywhere: 1 − r = 2, while the sign-agnostic forms see perfect similarity."""
    g = tt.Grid(1, 2)
    t = torch.linspace(-1, 1, 9, dtype=torch.float64)
    a = torch.stack([t, -t], dim=1)  # (9 stimuli, 2 units), r = −1
    shrink = 1 / (1 + 0.01)  # ε² = 0.01 × the mean ‖x̃‖² with equal norms
    assert float(TF.activation_similarity(a, g)) == pytest.approx(1 + shrink, rel=1e-12)
    assert float(TF.activation_similarity(a, g, sign="absolute")) == pytest.approx(1 - shrink, rel=1e-12)
    assert float(TF.activation_similarity(a, g, sign="squared")) == pytest.approx(1 - shrink**2, rel=1e-12)


@pytest.mark.parametrize("distance", ["euclidean", "sqeuclidean"])
@pytest.mark.parametrize("sign", ["absolute", "squared"])
def test_sign_forms_need_an_angular_distance(distance, sign):
    with pytest.raises(ValueError, match=r"sign='(absolute|squared)' needs an angular distance.*'(sq)?euclidean'"):
        TF.activation_similarity(torch.randn(4, 9), (3, 3), distance=distance, sign=sign)
    with pytest.raises(ValueError, match=r"sign must be one of \('signed', 'absolute', 'squared'\), got 'abs'"):
        TF.activation_similarity(torch.randn(4, 9), (3, 3), sign="abs")
    with pytest.raises(ValueError, match="sign must be one of"):
        TF.neighbor_distance_mean(torch.randn(1, 3, 3, 4), (3, 3), distance="cosine", sign=None)


def test_unit_dim_tokens_and_ambiguity():
    g = tt.Grid(3, 3)
    x = torch.randn(4, 5, 9, dtype=torch.float64)  # (B, T, N)
    want = TF.activation_similarity(x.reshape(20, 9), g)
    assert float(TF.activation_similarity(x, g, unit_dim=-1)) == pytest.approx(float(want), rel=1e-12)
    assert float(TF.activation_similarity(x, g, unit_dim=2)) == pytest.approx(float(want), rel=1e-12)
    with pytest.raises(ValueError, match=r"last dimension has 9: pass unit_dim=-1"):
        TF.activation_similarity(x, g)
    # T = N: silently taking T as the units was the old behaviour; now it asks
    sq = torch.randn(4, 9, 9, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"ambiguous.*dimensions 1 and 2 both have 9.*unit_dim=-1"):
        TF.activation_similarity(sq, g)
    with pytest.raises(ValueError, match=r"ambiguous"):
        TF.spatial_correlation(sq, g)
    by_tokens = TF.activation_similarity(sq, g, unit_dim=-1)
    assert float(by_tokens) == pytest.approx(float(TF.activation_similarity(sq.reshape(36, 9), g)), rel=1e-12)
    by_channels = TF.activation_similarity(sq, g, unit_dim=1)
    assert float(by_channels) == pytest.approx(float(TF.activation_similarity(sq.transpose(1, 2).reshape(36, 9), g)), rel=1e-12)
    assert float(TF.spatial_correlation(sq, g, unit_dim=-1)) == pytest.approx(
        float(TF.spatial_correlation(sq.reshape(36, 9), g)), rel=1e-12)
    # a non-contiguous input is reshaped (copied) correctly
    nc = torch.randn(5, 4, 9, dtype=torch.float64).transpose(0, 1)
    assert float(TF.activation_similarity(nc, g, unit_dim=-1)) == pytest.approx(
        float(TF.activation_similarity(nc.reshape(20, 9), g)), rel=1e-12)
    with pytest.raises(ValueError, match=r"unit_dim must be in \[-3, 2\].*got 3"):
        TF.activation_similarity(x, g, unit_dim=3)
    with pytest.raises(TypeError, match="unit_dim must be an int, got str"):
        TF.activation_similarity(x, g, unit_dim="-1")
    with pytest.raises(TypeError, match="unit_dim must be an int, got bool"):
        TF.activation_similarity(x, g, unit_dim=True)
    with pytest.raises(ValueError, match=r"has 4 units \(dimension 0"):
        TF.activation_similarity(x, g, unit_dim=0)


# ------------------------------------------------------------- bounded gradients, overflow
def _row_grad_norms(w, g, distance):
    w = w.clone().requires_grad_()
    TF.weight_similarity(w, g, distance=distance, backend="torch").backward()
    return w.grad.norm(dim=1)


@pytest.mark.parametrize("distance", ["cosine", "correlation"])
def test_gradient_at_a_zero_row_is_bounded(distance):
    """With ‖x‖‖y‖ + 1e-8 in the denominator a zero weight row had a gradient 10⁶–10⁷ times a
    typical row's; with ε inside the norms (ε = a tenth of the RMS norm) it is about 10 times,
    and never more than the analytic bound deg(u) / (ε · n_pairs)."""
    g = tt.Grid(11, 11)
    torch.manual_seed(0)
    w = torch.randn(121, 64) * 0.1
    typical = _row_grad_norms(w, g, distance).median()
    w[60] = 0.0
    n = _row_grad_norms(w, g, distance)
    assert torch.isfinite(n).all()
    assert n[60] <= 15 * typical
    x = w - w.mean(1, keepdim=True) if distance == "correlation" else w
    eps = math.sqrt(0.01 * float(x.square().sum(1).mean()))
    assert float(n[60]) <= 8 / (eps * g.n_pairs) * 1.001
    # dead and constant units of AS alike
    a = torch.randn(32, 121)
    typical = a.clone().requires_grad_()
    TF.activation_similarity(typical, g, distance=distance).backward()
    a[:, 60] = 0.0
    if distance == "correlation":
        a[:, 61] = 3.0  # constant: zero variance
    a.requires_grad_()
    TF.activation_similarity(a, g, distance=distance).backward()
    n = a.grad.norm(dim=0)
    assert float(n.max()) <= 20 * float(typical.grad.norm(dim=0).median())


@pytest.mark.parametrize("distance", ["cosine", "correlation"])
def test_one_sgd_step_on_a_zeroed_row_does_not_explode(distance):
    """Before: one SGD step moved a zeroed row from norm 0 to 4·10³.  Now it moves less than
    the other rows' norms."""
    torch.manual_seed(1)
    layer = tt.TopoLinear(64, (11, 11))
    with torch.no_grad():
        layer.weight[60] = 0.0
    reg = tt.attach(torch.nn.Sequential(layer), {"0": tt.WeightSimilarity(strength=1.0, distance=distance)})
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    reg.penalty().backward()
    opt.step()
    norms = layer.weight.detach().norm(dim=1)
    assert torch.isfinite(norms).all()
    assert 0 < float(norms[60]) < 0.1 * float(norms.median())
    reg.remove()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("distance", DIST)
def test_huge_values_do_not_overflow(dtype, distance):
    """Values of 10²⁰ in float32/bfloat16: squares (10⁴⁰) overflow the dtype, so each call
    divides by a power of two first.  Every distance whose mean fits gives a finite loss equal to
    the float64 one, and finite gradients; 10⁻³⁰ (squares underflow) alike."""
    g = tt.Grid(4, 5)
    for scale in (1e20, 1e-30):
        w64 = torch.randn(20, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * scale
        w = w64.to(dtype).requires_grad_()
        loss = TF.weight_similarity(w, g, distance=distance)
        loss.backward()
        loss = loss.detach()
        want = float(TF.weight_similarity(w.detach().double(), g, distance=distance))
        assert torch.isfinite(w.grad).all()
        if distance == "sqeuclidean":  # 10⁴¹ does not fit float32; 10⁻⁵⁹ underflows to 0
            assert float(loss) == (math.inf if scale > 1 else 0.0)
            continue
        assert math.isfinite(float(loss)) and float(loss) == pytest.approx(want, rel=1e-5)
    # sqeuclidean: per-pair sums of 10³⁷ whose sum over the 27 pairs overflows; the mean fits
    w = (torch.randn(20, 16, generator=torch.Generator().manual_seed(3)) * 1e18).to(dtype).requires_grad_()
    if distance == "sqeuclidean":
        loss = TF.weight_similarity(w, g, distance=distance).detach()
        want = float(TF.weight_similarity(w.detach().double(), g, distance=distance))
        assert 1e36 < want < 3e38 and float(loss) == pytest.approx(want, rel=1e-5)


def test_spatial_correlation_bounded_gradient_and_huge_values():
    """A dead unit had a gradient 10⁸ times a typical one (3·10⁶ vs 5·10⁻³); with ε inside the
    norms it is bounded.  Equal-variance units give exactly the ε-free loss (Pearson over the
    pairs is scale-free); 10²⁰ in float32 gives the float64 value."""
    g = tt.Grid(6, 6)
    torch.manual_seed(0)
    a = torch.randn(32, 36)
    a[:, 10] = 0.0
    a.requires_grad_()
    TF.spatial_correlation(a, g).backward()
    n = a.grad.norm(dim=0)
    assert float(n[10]) <= 20 * float(n.median())
    z = torch.randn(40, 36, dtype=torch.float64)
    z = (z - z.mean(0)) / z.std(0)  # equal variances
    c = torch.corrcoef(z.T)
    i, j = torch.triu_indices(36, 36, 1)
    inv = 1 / (1 + g.sheet_distance(i, j).double())
    want = 0.5 * (1 - torch.corrcoef(torch.stack([c[i, j], inv]))[0, 1])
    assert float(TF.spatial_correlation(z, g)) == pytest.approx(float(want), rel=1e-9)
    big = (z * 1e20).float().requires_grad_()
    loss = TF.spatial_correlation(big, g)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(float(want), rel=1e-4) and torch.isfinite(big.grad).all()


def test_scale_is_a_power_of_two_and_exact():
    """Scaled and unscaled sums agree exactly: the power of two changes exponents only."""
    from torchtopo.functional._neighbor import call_scale

    w = torch.randn(12, 7, dtype=torch.float64)
    assert float(call_scale(w)) == 1.0
    c = float(call_scale(w * 2.0**40))
    assert c == 2.0 ** round(math.log2(c)) and 2.0**16 <= float((w * 2.0**40).abs().max()) / c < 2.0**17
    c = float(call_scale(w * 2.0**-40))  # small inputs are brought into [2⁻¹⁶, 2⁻¹⁵)
    assert c == 2.0 ** round(math.log2(c)) and 2.0**-16 <= float((w * 2.0**-40).abs().max()) / c < 2.0**-15
    g = tt.Grid(3, 4)
    for distance in DIST:
        base = TF.weight_similarity(w, g, distance=distance)
        big = TF.weight_similarity(w * 2.0**40, g, distance=distance)
        p = {"sqeuclidean": 2, "euclidean": 1}.get(distance, 0)
        assert float(big) == float(base) * 2.0 ** (40 * p)
    assert float(call_scale(torch.zeros(3))) == 1.0 and float(call_scale(torch.tensor([float("nan")]))) == 1.0


@pytest.mark.parametrize("backend_small", [True, False])
def test_scale_keeps_extreme_magnitudes_finite(backend_small, monkeypatch):
    """Subnormal inputs: c is a normal number (at least the smallest), so 1/c stays finite and so
    does the loss (not the gradient: a scale-free loss has gradients ~1/|x| ≈ 10⁴¹); values
    near float32's largest: the correlation means are summed after scaling (an unscaled sum
    overflows), loss and gradient finite."""
    from torchtopo.functional import _neighbor_torch as T
    from torchtopo.functional._neighbor import call_scale

    if not backend_small:
        monkeypatch.setattr(T, "_SMALL_ELEMENTS", 0)
        monkeypatch.setattr(T, "_GRAM_ELEMENTS", 0)
        monkeypatch.setattr(T, "_CHUNK_ELEMENTS", 64)
    tiny = torch.finfo(torch.float32).tiny
    sub = torch.randn(40, 12) * tiny * 2.0**-10  # subnormal
    c = float(call_scale(sub))
    assert c >= tiny and 2.0**-16 <= float(sub.abs().max()) / c < 2.0**-15 and torch.isfinite(1 / call_scale(sub))
    assert float(call_scale(torch.full((3,), 2.0**-149))) == tiny  # the smallest subnormal: clamped
    huge = (torch.rand(64, 12) + 1) * 3e37
    assert not torch.isfinite(huge.sum(0)).all()  # the sum an unscaled mean would take
    g = tt.Grid(3, 4)
    for a in (sub, huge):
        for distance in ("cosine", "correlation"):
            x = a.clone().requires_grad_()
            loss = TF.activation_similarity(x, g, distance=distance, backend="torch")
            loss.backward()
            assert torch.isfinite(loss) and 0 < float(loss.detach()) < 2
            assert torch.isfinite(x.grad).all() or a.abs().max() < 1
