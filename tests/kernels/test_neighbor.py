"""Tests of the neighbour-distance kernels of the WS and AS losses (Truong & Hasson,
arXiv:2508.00043): the Triton kernels (run on CPU tensors under
``TRITON_INTERPRET=1``, set by conftest.py) against the PyTorch path, the chunked PyTorch path
against a brute-force loop over all unit pairs, and the backend dispatch.

Interpreted Triton is slow (about a second per forward + backward on these tiny sizes), so the
kernel tests use few, tiny cases.
"""
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import torchtopo as tt
import torchtopo.functional as F
import torchtopo.functional._neighbor as NB
import torchtopo.functional._neighbor_band as BW
import torchtopo.functional._neighbor_small as SM
import torchtopo.functional._neighbor_torch as T
import torchtopo.kernels as K

DISTANCES = ("euclidean", "sqeuclidean", "cosine", "correlation")
needs_kernels = pytest.mark.skipif(
    not K.HAS_TRITON or (not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1"),
    reason="Triton kernels unavailable (no triton, or no CUDA and no TRITON_INTERPRET=1)",
)
FEW = settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))


# ------------------------------------------------------------------------------ helpers
def kernel(X, grid, distance, sign="signed", **blocks):
    """The mean through the kernels' walks (tile sizes ``blocks``), as the dispatcher runs it."""
    if blocks:
        return NB.NeighborMean.apply(X, grid, distance, sign, NB.TritonWalker(**blocks))
    return F.neighbor_distance_mean(X, grid, distance=distance, sign=sign, backend="triton")


def tiles_only(mp):
    """Route every input through the tiled walks (no small-input path, no band walks)."""
    mp.setattr(T, "_SMALL_ELEMENTS", 0)
    mp.setattr(T, "_GRAM_ELEMENTS", 0)
    mp.setattr(T, "_BAND_MIN_D", 1 << 62)


def bands_only(mp, budget=1 << 20, min_chunk=32):
    """Route the angular distances on weights through the band walks (tile budget ``budget``)."""
    mp.setattr(T, "_SMALL_ELEMENTS", 0)
    mp.setattr(T, "_GRAM_ELEMENTS", 0)
    mp.setattr(T, "_BAND_MIN_D", 1)
    mp.setattr(BW, "_BAND_ELEMENTS", budget)
    mp.setattr(BW, "_MIN_CHUNK", min_chunk)


def torch_path(X, grid, distance, sign="signed"):
    return F.neighbor_distance_mean(X, grid, distance=distance, sign=sign, backend="torch")


def make_view(layout: str, H: int, W: int, a: int, b: int, dtype=torch.float64, seed: int = 0):
    """A leaf tensor and its (pre, H, W, post) unit view, in one of the three real layouts."""
    g = torch.Generator().manual_seed(seed)
    grid = tt.Grid(H, W)
    if layout == "rows":  # weight (N, D): view (1, H, W, D), D contiguous
        leaf = torch.randn(H * W, a, generator=g, dtype=dtype).requires_grad_()
        return leaf, F.unit_view(leaf, grid, "rows")
    if layout == "dense":  # activations (B, N): view (B, H, W, 1), units contiguous
        leaf = torch.randn(a, H * W, generator=g, dtype=dtype).requires_grad_()
        return leaf, F.unit_view(leaf, grid, "columns")
    # conv activations (B, C, h, w): view (B, H, W, h·w) with non-trivial strides everywhere
    leaf = torch.randn(a, H * W, 1, b, generator=g, dtype=dtype).requires_grad_()
    return leaf, F.unit_view(leaf, grid, "columns")


def both(X, leaf, grid, distance, sign="signed", **blocks):
    """(value, grad) from the kernels and from the torch path."""
    k = kernel(X, grid, distance, sign, **blocks)
    (gk,) = torch.autograd.grad(k, leaf)
    t = torch_path(X, grid, distance, sign)
    (gt,) = torch.autograd.grad(t, leaf)
    return k, gk, t, gt


def brute_force(leaf_view: torch.Tensor, grid: tt.Grid, distance: str, sign: str = "signed") -> torch.Tensor:
    """Plain loops over every pair of units, the distances of Truong & Hasson written out (the
    angular ones with ε² = 0.01 × the mean over units of ‖x̃‖² inside the norms)."""
    P, H, W, Q = leaf_view.shape
    V = [leaf_view[:, r, c, :].reshape(-1) for r in range(H) for c in range(W)]
    C = [v - v.mean() if distance == "correlation" else v for v in V]
    eps2 = 0.01 * sum((v * v).sum() for v in C) / len(C) + 1e-30
    total, count = leaf_view.new_zeros(()), 0
    for i in range(H * W):
        for j in range(i + 1, H * W):
            dr, dc = abs(i // W - j // W), abs(i % W - j % W)
            if grid.wrap:
                dr, dc = min(dr, H - dr), min(dc, W - dc)
            m = {"chebyshev": max(dr, dc), "manhattan": dr + dc, "euclidean": math.hypot(dr, dc)}[grid.metric]
            if m > grid.radius + 1e-9:
                continue
            x, y = V[i], V[j]
            if distance in ("euclidean", "sqeuclidean"):
                s = ((x - y) ** 2).sum()
                d = s if distance == "sqeuclidean" else (torch.sqrt(s) if s > 0 else s * 0)
            else:
                x, y = C[i], C[j]
                r = (x * y).sum() / (torch.sqrt((x * x).sum() + eps2) * torch.sqrt((y * y).sum() + eps2))
                d = 1 - {"signed": r, "absolute": r.abs(), "squared": r * r}[sign]
            total = total + d
            count += 1
    assert count == grid.n_pairs
    return total / count


# ----------------------------------------------------------- kernels vs the torch path
KERNEL_CASES = {
    # conv layout, radius 2, ragged unit tile (20 units, block 16) and vector tile (D = 6)
    "conv_radius2": ("conv", tt.Grid(4, 5, radius=2), 2, 3),
    # weights with D = 1 on a torus (every correlation distance is 1: zero-variance units)
    "rows_wrap_D1": ("rows", tt.Grid(5, 6, wrap=True), 1, 1),
    # a single-row grid of dense activations, von Neumann neighbourhood
    "single_row": ("dense", tt.Grid(1, 7, metric="manhattan"), 3, 1),
}


@needs_kernels
@pytest.mark.parametrize("case", sorted(KERNEL_CASES))
@pytest.mark.parametrize("distance", DISTANCES)
def test_kernel_matches_torch_path(case, distance):
    layout, grid, a, b = KERNEL_CASES[case]
    leaf, X = make_view(layout, grid.height, grid.width, a, b)
    k, gk, t, gt = both(X, leaf, grid, distance)
    assert k.dtype == torch.float64 and k.shape == ()
    assert torch.isfinite(k) and torch.isfinite(gk).all()
    torch.testing.assert_close(k, t, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gk, gt, rtol=1e-9, atol=1e-12)


@needs_kernels
@FEW
@given(
    layout=st.sampled_from(["rows", "dense", "conv"]),
    H=st.integers(1, 4),
    W=st.integers(2, 5),
    a=st.integers(1, 5),
    b=st.integers(1, 3),
    radius=st.sampled_from([1, 2, 1.5]),
    metric=st.sampled_from(["chebyshev", "manhattan", "euclidean"]),
    wrap=st.booleans(),
    distance=st.sampled_from(DISTANCES),
    seed=st.integers(0, 2**16),
)
def test_kernel_matches_torch_path_random(layout, H, W, a, b, radius, metric, wrap, distance, seed):
    grid = tt.Grid(H, W, radius=radius, metric=metric, wrap=wrap)
    if grid.n_pairs == 0:
        return
    leaf, X = make_view(layout, H, W, a, b, seed=seed)
    k, gk, t, gt = both(X, leaf, grid, distance)
    torch.testing.assert_close(k, t, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gk, gt, rtol=1e-9, atol=1e-12)


@needs_kernels
def test_kernel_several_tiles_in_both_dimensions():
    # 30 units in blocks of 8 (last one ragged), D = 11 in blocks of 8: 4 × 2 backward programs
    grid = tt.Grid(5, 6, wrap=True)
    leaf, X = make_view("rows", 5, 6, 11, 1, seed=3)
    k, gk, t, gt = both(X, leaf, grid, "correlation", block_u=8, block_d=8)
    torch.testing.assert_close(k, t, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gk, gt, rtol=1e-9, atol=1e-12)


@needs_kernels
@pytest.mark.parametrize("sign", ["absolute", "squared"])
@pytest.mark.parametrize("distance", ["cosine", "correlation"])
def test_kernel_sign_forms_match_torch_path_and_brute_force(distance, sign):
    """1 − |s| and 1 − s² are per-pair changes between the walks (d(1 − |s|)/ds = −sign(s),
    d(1 − s²)/ds = −2s): the kernels' walks give the brute-force value and gradient."""
    layout, grid, a, b = KERNEL_CASES["conv_radius2"]
    leaf, X = make_view(layout, grid.height, grid.width, a, b, seed=4)
    k, gk, t, gt = both(X, leaf, grid, distance, sign)
    torch.testing.assert_close(k, t, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gk, gt, rtol=1e-9, atol=1e-12)
    ref = brute_force(X, grid, distance, sign)
    (g_ref,) = torch.autograd.grad(ref, leaf)
    torch.testing.assert_close(k, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gk, g_ref, rtol=1e-9, atol=1e-12)


@needs_kernels
def test_kernel_zero_rows_and_huge_values_match_torch_path():
    """A zero weight row (bounded gradient through ε) and values of 10²⁰ in float32 (scaled by a
    power of two before any sum): the kernels' walks equal the torch path's, all finite."""
    grid = tt.Grid(4, 5, wrap=True)
    for distance, scale in [("cosine", 1.0), ("correlation", 1.0), ("euclidean", 1e20), ("correlation", 1e20)]:
        w = torch.randn(20, 6, generator=torch.Generator().manual_seed(6)) * scale
        w[7] = 0.0
        leaf = w.requires_grad_()
        X = F.unit_view(leaf, grid, "rows")
        k, gk, t, gt = both(X, leaf, grid, distance)
        assert torch.isfinite(k) and torch.isfinite(gk).all()
        torch.testing.assert_close(k, t, rtol=1e-5, atol=0)
        torch.testing.assert_close(gk, gt, rtol=1e-4, atol=1e-5 * float(gt.abs().max()))


# bf16 stores 8 mantissa bits: inputs and gradients are rounded to a relative 2^-8 ≈ 0.4 %.
BF16_RTOL = 2e-2


@needs_kernels
@pytest.mark.parametrize("distance", ["euclidean", "correlation"])
def test_kernel_bf16_accumulates_in_fp32(distance):
    grid = tt.Grid(4, 5)
    leaf32, X32 = make_view("rows", 4, 5, 24, 1, dtype=torch.float32, seed=5)
    leaf16 = leaf32.detach().bfloat16().requires_grad_()
    X16 = F.unit_view(leaf16, grid, "rows")
    k16 = kernel(X16, grid, distance)
    (g16,) = torch.autograd.grad(k16, leaf16)
    assert k16.dtype == torch.float32 and g16.dtype == torch.bfloat16
    # same rounded inputs in fp32 through the torch path: equal up to fp32 summation order
    ref_r = torch_path(X16.detach().float(), grid, distance)
    torch.testing.assert_close(k16, ref_r, rtol=1e-5, atol=1e-6)
    # against the unrounded fp32 input: within bf16 rounding (stated tolerance BF16_RTOL)
    t32 = torch_path(X32, grid, distance)
    (g32,) = torch.autograd.grad(t32, leaf32)
    torch.testing.assert_close(k16, t32.detach(), rtol=BF16_RTOL, atol=1e-3)
    torch.testing.assert_close(g16.float(), g32, rtol=BF16_RTOL, atol=BF16_RTOL * float(g32.abs().max()))


@needs_kernels
def test_kernel_fp16_returns_fp32():
    grid = tt.Grid(3, 4)
    w = torch.randn(12, 10).half()
    k = kernel(F.unit_view(w, grid, "rows"), grid, "cosine")
    t = torch_path(F.unit_view(w.float(), grid, "rows"), grid, "cosine")
    assert k.dtype == torch.float32
    torch.testing.assert_close(k, t, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("backend", ["torch", pytest.param("triton", marks=needs_kernels)])
def test_nan_propagates_into_value_and_gradient(distance, backend):
    """A NaN weight makes the loss NaN and the gradients of its unit and of its neighbours NaN
    (as plain autograd would), on both backends; units with no NaN neighbour keep finite ones
    for the Euclidean distances.  The angular ones' ε² is a mean over all units, so there
    every gradient is NaN."""
    grid = tt.Grid(4, 4)
    w = torch.randn(16, 4, dtype=torch.float64)
    w[5, 0] = float("nan")  # unit (1, 1)
    w.requires_grad_()
    loss = F.weight_similarity(w, grid, distance=distance, backend=backend)
    assert torch.isnan(loss)
    (g,) = torch.autograd.grad(loss, w)
    touched = {5} | {u for u in range(16) if max(abs(u // 4 - 1), abs(u % 4 - 1)) == 1}
    for u in range(16):
        assert bool(torch.isnan(g[u]).any()) == (u in touched or distance in ("cosine", "correlation")), u


@needs_kernels
def test_kernel_aliased_torus_falls_back_to_torch():
    grid = tt.Grid(2, 3, wrap=True)  # offsets alias on a 2-row torus
    assert grid.aliased
    leaf, X = make_view("rows", 2, 3, 4, 1, seed=1)
    k, gk, _, _ = both(X, leaf, grid, "cosine")
    ref = brute_force(X, grid, "cosine")
    torch.testing.assert_close(k, ref)


@needs_kernels
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_kernel_empty_vectors_match_torch_path(distance):
    grid = tt.Grid(3, 4)
    X = torch.zeros(1, 3, 4, 0)
    k = kernel(X, grid, distance)
    t = torch_path(X, grid, distance)
    assert float(k) == float(t) == (1.0 if distance == "cosine" else 0.0)


def test_kernel_bad_inputs():
    if not K.HAS_TRITON:
        pytest.skip("no triton")
    grid = tt.Grid(3, 4)
    X = torch.randn(1, 3, 4, 5)
    one = torch.ones(())
    with pytest.raises(ValueError, match="distance"):
        K.pair_sums(X, grid, "manhattan", one)
    with pytest.raises(ValueError, match="4-D"):
        K.pair_sums(X[0], grid, "cosine", one)
    with pytest.raises(ValueError, match="grid is 3×5"):
        K.pair_grad(X, tt.Grid(3, 5), "cosine", None, torch.zeros(3, 5), torch.zeros(4, 3, 5), one)
    with pytest.raises(TypeError, match="floating-point"):
        K.pair_sums(X.long(), grid, "cosine", one)


def test_kernel_on_cpu_without_interpreter_errors(monkeypatch):
    if not K.HAS_TRITON:
        pytest.skip("no triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        K.pair_sums(torch.randn(1, 3, 4, 5), tt.Grid(3, 4), "cosine", torch.ones(()))


# ------------------------------------------------------------- compiled for a GPU target
def _has_nvidia_backend() -> bool:
    try:
        from triton.backends import backends
    except Exception:
        return False
    return "nvidia" in backends


@pytest.mark.skipif(not K.HAS_TRITON or not _has_nvidia_backend(), reason="needs Triton's NVIDIA backend")
def test_kernels_compile_for_a_real_gpu_target():
    """The interpreter runs kernels as Python and accepts what the compiler may reject: compile a
    representative set of variants for sm_90 through Triton's front end and ptxas (no GPU
    needed), in a subprocess because TRITON_INTERPRET replaces triton.jit at import."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    script = Path(__file__).with_name("_compile_kernels.py")
    r = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert "compiled 22 kernel variants for sm_90" in r.stdout


# ----------------------------------------------------------------------------- dispatch
def test_forced_triton_errors_clearly_when_unavailable(monkeypatch):
    monkeypatch.setattr(K, "HAS_TRITON", False)
    w = torch.randn(12, 5)
    with pytest.raises(RuntimeError, match="backend='triton'.*Triton kernels are unavailable"):
        F.weight_similarity(w, (3, 4), backend="triton")
    monkeypatch.setenv("TORCHTOPO_BACKEND", "triton")
    with pytest.raises(RuntimeError, match="Triton kernels are unavailable"):
        F.activation_similarity(torch.randn(4, 12), (3, 4))
    # auto still works, on the torch path
    monkeypatch.setenv("TORCHTOPO_BACKEND", "auto")
    assert torch.isfinite(F.weight_similarity(w, (3, 4)))


def test_bad_backend_names(monkeypatch):
    with pytest.raises(ValueError, match="backend must be one of"):
        F.weight_similarity(torch.randn(12, 5), (3, 4), backend="cuda")
    monkeypatch.setenv("TORCHTOPO_BACKEND", "fast")
    with pytest.raises(ValueError, match="TORCHTOPO_BACKEND must be one of"):
        F.weight_similarity(torch.randn(12, 5), (3, 4))


@needs_kernels
def test_dispatch_routes_through_the_kernels(monkeypatch):
    calls = []
    real = K.pair_sums

    def spy(X, grid, distance, scale, **kw):
        calls.append((tuple(X.shape), distance))
        return real(X, grid, distance, scale, **kw)

    monkeypatch.setattr(K, "pair_sums", spy)
    w = torch.randn(12, 6, dtype=torch.float64)
    F.weight_similarity(w, (3, 4), distance="cosine")  # auto on a CPU tensor: torch
    assert calls == []
    monkeypatch.setenv("TORCHTOPO_BACKEND", "triton")
    # the Regularizer and terms use the dispatch without change
    model = torch.nn.Sequential(tt.TopoLinear(6, (3, 4)).double())
    with torch.no_grad():
        model[0].weight.copy_(w)
    reg = tt.attach(model, {"0": tt.WeightSimilarity(strength=2.0, distance="cosine")})
    p = reg.penalty()
    assert calls == [((1, 3, 4, 6), "cosine")]
    ref = 2.0 * F.weight_similarity(w, (3, 4), distance="cosine", backend="torch")
    torch.testing.assert_close(p, ref)
    reg.remove()


@needs_kernels
@pytest.mark.parametrize("bad", [0, 3, 12, -4, 2.0, True])
@pytest.mark.parametrize("which", ["block_u", "block_d"])
def test_kernel_block_sizes_must_be_powers_of_two(which, bad):
    leaf, X = make_view("rows", 3, 3, 4, 1)
    with pytest.raises(ValueError, match="power of 2"):
        kernel(X, tt.Grid(3, 3), "cosine", **{which: bad})


# ------------------------------------------------------- tiled torch path vs brute force
def assert_torch_path_matches_brute_force(X, leaf, grid, distance, sign="signed"):
    got = F.neighbor_distance_mean(X, grid, distance=distance, sign=sign, backend="torch")
    (g_got,) = torch.autograd.grad(got, leaf)
    ref = brute_force(X, grid, distance, sign)
    (g_ref,) = torch.autograd.grad(ref, leaf)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g_got, g_ref, rtol=1e-9, atol=1e-12)


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    layout=st.sampled_from(["rows", "dense", "conv"]),
    H=st.integers(1, 11),
    W=st.integers(1, 11),
    a=st.integers(1, 4),
    b=st.integers(1, 3),
    radius=st.sampled_from([1, 1.5, 2, 3]),
    metric=st.sampled_from(["chebyshev", "manhattan", "euclidean"]),
    wrap=st.booleans(),
    distance=st.sampled_from(DISTANCES),
    budget=st.sampled_from([1, 7, 13, 97, 600, 1 << 18]),
    seed=st.integers(0, 2**16),
    sign=st.sampled_from(["signed", "absolute", "squared"]),
    min_run=st.sampled_from([1, 64]),
)
def test_tiled_torch_path_matches_brute_force_on_larger_grids(
    layout, H, W, a, b, radius, metric, wrap, distance, budget, seed, sign, min_run, monkeypatch
):
    """Grids large enough for several bands of rows with halos on both sides, torus bands that
    wrap, flat pieces whose shifts cross row ends, and vector-only tiles whose products are
    deferred: every tile plan must give the brute-force value and gradient."""
    grid = tt.Grid(H, W, radius=radius, metric=metric, wrap=wrap)
    if grid.n_pairs == 0:
        return
    monkeypatch.setattr(T, "_CHUNK_ELEMENTS", budget)
    monkeypatch.setattr(T, "_MIN_RUN", min_run)  # 1: whole-grid tiles split along post wherever they fit
    tiles_only(monkeypatch)
    leaf, X = make_view(layout, H, W, a, b, seed=seed)
    sign = sign if distance in ("cosine", "correlation") else "signed"
    assert_torch_path_matches_brute_force(X, leaf, grid, distance, sign)


@pytest.mark.parametrize("layout, a, b", [("rows", 13, 1), ("conv", 2, 7)])
@pytest.mark.parametrize("wrap", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_whole_grid_tiles_split_along_post(layout, a, b, wrap, dtype, monkeypatch):
    """Weight-like views (few units, long vectors): whole-grid tiles cut along post only, the
    last chunk shorter (a size-1 chunk for the rows layout), their products deferred; value and
    gradient are the brute force's (float64) or the one-tile plan's (bfloat16, exact)."""
    H, W = 4, 5
    tiles_only(monkeypatch)
    monkeypatch.setattr(T, "_MIN_RUN", 1)
    monkeypatch.setattr(T, "_CHUNK_ELEMENTS", 2 * H * W * (4 if layout == "rows" else 3))  # chunks of 4 / 3
    grid = tt.Grid(H, W, radius=1.5, wrap=wrap)
    Q = a if layout == "rows" else b
    tiles = T._tiles((1 if layout == "rows" else a, H, W, Q), 2)
    assert all(t[2:] == (0, H) for t in tiles) and len({t[1].start for t in tiles}) == -(-Q // (T._CHUNK_ELEMENTS // (2 * H * W)))
    for distance in DISTANCES:
        leaf, X = make_view(layout, H, W, a, b, dtype=dtype, seed=5)
        if dtype == torch.float64:
            assert_torch_path_matches_brute_force(X, leaf, grid, distance)
            continue
        got = F.neighbor_distance_mean(X, grid, distance=distance, backend="torch")
        (g_got,) = torch.autograd.grad(got, leaf)
        with monkeypatch.context() as m:
            m.setattr(T, "_CHUNK_ELEMENTS", 1 << 18)  # one tile
            ref = F.neighbor_distance_mean(X, grid, distance=distance, backend="torch")
            (g_ref,) = torch.autograd.grad(ref, leaf)
        torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(g_got.float(), g_ref.float(), rtol=0, atol=0)


def test_weight_view_of_a_wide_conv_is_a_handful_of_whole_grid_tiles():
    """A ResNet-18 layer4 weight (512 units on 16 × 32, rows of 512·3·3 = 4608): whole-grid
    tiles along the rows (no halo), a few dozen at most, each within the budget; bands of grid
    rows would need one-row bands cut into hundreds of chunks."""
    for halo in (0, 2, 4):
        tiles = T._tiles((1, 16, 32, 4608), halo)
        assert 1 < len(tiles) <= 32
        assert all(t[2:] == (0, 16) and (t[1].stop - t[1].start) * 512 <= T._CHUNK_ELEMENTS for t in tiles)
        assert [t[1].start for t in tiles] == sorted({t[1].start for t in tiles}) and tiles[-1][1].stop == 4608


def assert_half_matches_fp32(leaf16, loss, grid, layout):
    """``loss`` of the unit view of the half-precision ``leaf16`` returns fp32, equal to the fp32
    computation on the same rounded numbers, and its gradient is that fp32 gradient rounded."""
    up = leaf16.detach().float().requires_grad_()
    view = "rows" if layout == "rows" else "columns"
    got, ref = loss(F.unit_view(leaf16, grid, view)), loss(F.unit_view(up, grid, view))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)
    (g16,) = torch.autograd.grad(got, leaf16)
    (g32,) = torch.autograd.grad(ref, up)
    assert g16.dtype == leaf16.dtype
    torch.testing.assert_close(g16.float(), g32.to(leaf16.dtype).float(), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("layout", ["rows", "dense", "conv"])
@pytest.mark.parametrize("wrap", [False, True])
@pytest.mark.parametrize("budget", [5, 64, 1 << 18])
def test_tiled_torch_path_half_precision(dtype, layout, wrap, budget, monkeypatch):
    """Half inputs: each tile is converted to fp32 (scratch copies, a fp32 gradient band copied
    out), so value and gradient equal the fp32 computation on the same (rounded) numbers."""
    monkeypatch.setattr(T, "_CHUNK_ELEMENTS", budget)
    tiles_only(monkeypatch)
    grid = tt.Grid(6, 7, radius=1.5, wrap=wrap)
    for distance in DISTANCES:
        leaf32, _ = make_view(layout, 6, 7, 5, 3, dtype=torch.float32, seed=11)
        leaf16 = leaf32.detach().to(dtype).requires_grad_()
        assert_half_matches_fp32(
            leaf16, lambda v: F.neighbor_distance_mean(v, grid, distance=distance, backend="torch"), grid, layout)


@pytest.mark.parametrize("H, W", [(2, 1), (5, 1), (4, 2), (7, 2)])
@pytest.mark.parametrize("budget", [1, 3, 1 << 18])
def test_tiled_torch_path_on_grids_narrower_than_the_stencil(H, W, budget, monkeypatch):
    """Offsets with |dc| ≥ W give flat shifts dr·W + dc that are negative or reach past the last
    unit; none of their pairs exist, and no piece may index outside the grid."""
    monkeypatch.setattr(T, "_CHUNK_ELEMENTS", budget)
    tiles_only(monkeypatch)
    for distance in DISTANCES:
        grid = tt.Grid(H, W, radius=2)
        leaf, X = make_view("rows", H, W, 3, 1, seed=H * 10 + W)
        assert_torch_path_matches_brute_force(X, leaf, grid, distance)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    P=st.integers(0, 40),
    H=st.integers(1, 30),
    W=st.integers(1, 30),
    Q=st.integers(0, 40),
    halo=st.integers(0, 6),
    budget=st.integers(1, 5000),
    min_run=st.integers(1, 80),
)
def test_tiles_cover_the_view_exactly_once_within_the_budget(P, H, W, Q, halo, budget, min_run, monkeypatch):
    monkeypatch.setattr(T, "_CHUNK_ELEMENTS", budget)
    monkeypatch.setattr(T, "_MIN_RUN", min_run)
    tiles_only(monkeypatch)
    tiles = T._tiles((P, H, W, Q), halo)
    cover = torch.zeros(P, H, W, Q, dtype=torch.int32)
    for ps, qs, r0, r1 in tiles:
        cover[ps, r0:r1, :, qs] += 1
        pc, qc, rows = ps.stop - ps.start, qs.stop - qs.start, r1 - r0
        assert pc >= 1 and qc >= 1 and rows >= 1
        loaded = rows if rows == H else min(H, rows + halo)  # whole-grid tiles need no halo
        # within the budget, unless the tile is already the smallest one (a row, its halo, one
        # element of post)
        assert pc * loaded * W * qc <= max(budget, min(H, 1 + halo) * W)
    assert bool((cover == 1).all())
    assert (len(tiles) == 0) == (P * H * W * Q == 0)


def test_vector_only_tiles_defer_their_products(monkeypatch):
    """A grid that fits whole in a tile is split along the vector only, and its products are
    multiply-added into tile-shaped buffers (no per-tile reduction); the result is unchanged."""
    calls = []
    real_flush = T._PairSums.flush

    def flush(self):
        calls.append((self.defer, len(self.bufs)))
        real_flush(self)

    monkeypatch.setattr(T._PairSums, "flush", flush)
    monkeypatch.setattr(T, "_CHUNK_ELEMENTS", 40)  # 4 × 5 units: one batch row per (half-budget) tile
    tiles_only(monkeypatch)
    grid = tt.Grid(4, 5)
    leaf, X = make_view("dense", 4, 5, 7, 1, seed=3)
    got = F.neighbor_distance_mean(X, grid, distance="correlation", backend="torch")
    # the units' means (one buffer), then ‖x̃‖² and one buffer per offset
    assert calls == [(True, 1), (True, 1 + len(grid.offsets))]
    torch.testing.assert_close(got, brute_force(X, grid, "correlation"), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("backend", ["torch", pytest.param("triton", marks=needs_kernels)])
def test_double_backward(distance, backend):
    """Gradients of the gradient (gradient penalties, meta-learning): create_graph=True gives a
    differentiable gradient on either backend, checked by gradgradcheck in float64."""
    grid = tt.Grid(3, 4, radius=1.5)
    w = (torch.randn(12, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) + 0.3)
    w.requires_grad_()

    def ws(w):
        return F.weight_similarity(w, grid, distance=distance, backend=backend)

    assert torch.autograd.gradgradcheck(ws, (w,))
    # a gradient penalty trains the weight through the gradient's norm
    (g,) = torch.autograd.grad(ws(w), w, create_graph=True)
    (gg,) = torch.autograd.grad(g.square().sum(), w)
    ref = NB.pair_mean_reference(F.unit_view(w, grid, "rows"), grid, distance)
    (g_ref,) = torch.autograd.grad(ref, w, create_graph=True)
    (gg_ref,) = torch.autograd.grad(g_ref.square().sum(), w)
    torch.testing.assert_close(gg, gg_ref)


@pytest.mark.parametrize("distance", DISTANCES)
def test_torch_path_gradcheck(distance, monkeypatch):
    monkeypatch.setattr(T, "_CHUNK_ELEMENTS", 8)
    tiles_only(monkeypatch)
    grid = tt.Grid(3, 4, radius=2, wrap=False)
    x = (torch.randn(3, 12, 2, dtype=torch.float64) + 0.5).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x: F.activation_similarity(x, grid, distance=distance, backend="torch"), (x,)
    )


@pytest.mark.parametrize("distance", DISTANCES)
def test_compile_mode_walks_match_the_chunked_path(distance, monkeypatch):
    """TORCHTOPO_COMPILE=1 routes through the functional walks given to torch.compile; here they
    run eagerly (compiling takes minutes on a small shared CPU) and must equal the chunked path."""
    calls = []

    def fake_compiled(name):
        calls.append(name)
        return {"sums": T._pair_sums_fused, "grad": T._pair_grad_fused}[name]

    grid = tt.Grid(5, 5, radius=2, wrap=True)
    assert not grid.aliased
    tiles_only(monkeypatch)
    leaf, X = make_view("conv", 5, 5, 3, 2, seed=7)
    ref = torch_path(X, grid, distance)
    (g_ref,) = torch.autograd.grad(ref, leaf)
    monkeypatch.setattr(T, "_compiled", fake_compiled)
    monkeypatch.setenv("TORCHTOPO_COMPILE", "1")
    got = torch_path(X, grid, distance)
    (g_got,) = torch.autograd.grad(got, leaf)
    assert calls == ["sums", "grad"]
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g_got, g_ref, rtol=1e-9, atol=1e-12)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    layout=st.sampled_from(["rows", "dense", "conv"]),
    H=st.integers(1, 8),
    W=st.integers(1, 8),
    a=st.integers(1, 4),
    b=st.integers(1, 3),
    radius=st.sampled_from([1, 1.5, 2]),
    wrap=st.booleans(),
    distance=st.sampled_from(DISTANCES),
    sign=st.sampled_from(["signed", "absolute", "squared"]),
    dtype=st.sampled_from([torch.float64, torch.float32]),
    seed=st.integers(0, 2**16),
)
def test_small_grid_walk_matches_brute_force_and_the_tiles(layout, H, W, a, b, radius, wrap, distance, sign, dtype, seed,
                                                          monkeypatch):
    """The small-grid walk (pairs gathered at once, no tiles) gives the brute-force value and
    gradient, and the tiled walk's."""
    grid = tt.Grid(H, W, radius=radius, wrap=wrap)
    if grid.n_pairs == 0 or grid.aliased:
        return
    sign = sign if distance in ("cosine", "correlation") else "signed"
    leaf, X = make_view(layout, H, W, a, b, dtype=dtype, seed=seed)
    assert T.small_input(X, grid, distance)
    got = torch_path(X, grid, distance, sign)
    (g_got,) = torch.autograd.grad(got, leaf)
    ref = brute_force(X.double(), grid, distance, sign)
    (g_ref,) = torch.autograd.grad(ref, leaf)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got.double(), ref, **tol)
    torch.testing.assert_close(g_got.double(), g_ref.double(), **tol)
    with monkeypatch.context() as m:  # (hypothesis reuses the fixture across examples)
        tiles_only(m)
        assert not T.small_input(X, grid, distance)
        tiles = torch_path(X, grid, distance, sign)
        (g_tiles,) = torch.autograd.grad(tiles, leaf)
    torch.testing.assert_close(got, tiles, **tol)
    torch.testing.assert_close(g_got, g_tiles, **tol)


SIGNED_FORMS = [(d, s) for d in DISTANCES for s in (("signed", "absolute", "squared") if d in ("cosine", "correlation") else ("signed",))]


@pytest.mark.parametrize("distance, sign", SIGNED_FORMS)
@pytest.mark.parametrize("layout", ["rows", "dense", "conv"])
def test_small_input_path_gradcheck(distance, sign, layout):
    """The small-input path's hand-written backward (Gram form for the angular distances, pair
    differences for the Euclidean ones) against finite differences, float64, on a torus with
    radius 1.5 and on a bounded grid with a Manhattan radius 2."""
    for grid in (tt.Grid(3, 4, radius=1.5, wrap=True), tt.Grid(3, 4, radius=2, metric="manhattan")):
        if grid.aliased:
            continue
        leaf, X = make_view(layout, 3, 4, 3, 2, seed=len(distance) + len(sign))
        leaf = (leaf.detach() + 0.3).requires_grad_()
        assert T.small_input(F.unit_view(leaf, grid, "rows" if layout == "rows" else "columns"), grid, distance)
        view = "rows" if layout == "rows" else "columns"
        assert torch.autograd.gradcheck(lambda x: torch_path(F.unit_view(x, grid, view), grid, distance, sign), (leaf,))


# ------------------------------------------------------------------ band walks
def band_mean(X, grid, distance, sign="signed"):
    return NB.NeighborMean.apply(X, grid, distance, sign, BW.BandWalker(BW.band_plan(grid)))


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    layout=st.sampled_from(["rows", "dense"]),
    H=st.integers(1, 9),
    W=st.integers(1, 9),
    a=st.integers(1, 5),
    radius=st.sampled_from([1, 1.5, 2, 3]),
    metric=st.sampled_from(["chebyshev", "manhattan", "euclidean"]),
    distance=st.sampled_from(["cosine", "correlation"]),
    sign=st.sampled_from(["signed", "absolute", "squared"]),
    budget=st.sampled_from([1, 13, 60, 1 << 20]),
    min_chunk=st.sampled_from([1, 2, 32]),
    seed=st.integers(0, 2**16),
)
def test_band_walks_match_brute_force(layout, H, W, a, radius, metric, distance, sign, budget, min_chunk, seed,
                                      monkeypatch):
    """The band walks (windows of consecutive units, batched products) give the brute-force
    value and gradient for every stencil without wrap-around, with tiles from one unit and a
    single vector element (halo rows zero-padded at the grid's ends) to the whole matrix, on
    weights and on dense activations (units with a stride of N)."""
    grid = tt.Grid(H, W, radius=radius, metric=metric)
    if grid.n_pairs == 0:
        return
    assert BW.band_plan(grid) is not None
    with monkeypatch.context() as m:
        m.setattr(BW, "_BAND_ELEMENTS", budget)
        m.setattr(BW, "_MIN_CHUNK", min_chunk)
        leaf, X = make_view(layout, H, W, a, 1, seed=seed)
        got = band_mean(X, grid, distance, sign)
        (g_got,) = torch.autograd.grad(got, leaf)
    ref = brute_force(X, grid, distance, sign)
    (g_ref,) = torch.autograd.grad(ref, leaf)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g_got, g_ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("walk", ["small", "band", "tiles"])
def test_autocast_does_not_lower_the_precision(walk, monkeypatch):
    """Under ``torch.autocast`` (bfloat16 on the CPU) the matrix products of the small-input path
    and of the band walks still run in float32: value and gradient equal the ones computed
    without autocast."""
    if walk == "band":
        bands_only(monkeypatch)
    elif walk == "tiles":
        tiles_only(monkeypatch)
    grid = tt.Grid(6, 7, radius=1.5)
    w = torch.randn(42, 300, generator=torch.Generator().manual_seed(0), requires_grad=True)
    for distance in DISTANCES:
        want = F.weight_similarity(w, grid, distance=distance, backend="torch")
        (g_want,) = torch.autograd.grad(want, w)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = F.weight_similarity(w, grid, distance=distance, backend="torch")
        (g_got,) = torch.autograd.grad(got, w)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(g_got, g_want, rtol=1e-5, atol=1e-8)


def test_band_plan_and_dispatch(monkeypatch):
    """The windows of a stencil (per dr the dc interval; dr = 0 from the unit itself); no plan on
    a torus; angular WS on a weight with rows of ≥ 256 elements that is not small takes the band
    walks, Euclidean distances, shorter rows and activations the tiled walks."""
    g = tt.Grid(4, 5)
    plan = BW.band_plan(g)
    assert [(s, lo, hi, [g.offsets[o] for o in idx]) for s, lo, hi, idx in plan] == [
        (0, 0, 1, [(0, 1)]), (5, -1, 1, [(1, -1), (1, 0), (1, 1)])]
    assert BW.band_plan(tt.Grid(4, 5, wrap=True)) is None
    assert [(s, lo, hi) for s, lo, hi, _ in BW.band_plan(tt.Grid(6, 7, radius=2, metric="manhattan"))] == [
        (0, 0, 2), (7, -1, 1), (14, 0, 0)]
    used = []
    real = BW.BandWalker.sums
    monkeypatch.setattr(BW.BandWalker, "sums", lambda self, *a: used.append(a[2]) or real(self, *a))
    grid = tt.Grid(16, 32)
    w = torch.randn(512, 576, requires_grad=True)
    for distance in DISTANCES:
        F.weight_similarity(w, grid, distance=distance, backend="torch").backward()
    F.weight_similarity(w[:, :255], grid, distance="cosine", backend="torch")
    F.activation_similarity(torch.randn(600, 512), grid, backend="torch")
    F.weight_similarity(w, tt.Grid(16, 32, wrap=True), distance="cosine", backend="torch")
    assert used == ["cosine", "correlation"]


def _band_direct_and_tiled(w, grid, sign="signed", monkeypatch=None):
    """(loss, grad) of cosine WS on ``w`` through the band walks with and without the direct
    windows, and whether the direct forward ran."""
    out, ran = [], []
    for direct in (True, False):
        with monkeypatch.context() as m:
            bands_only(m)
            m.setattr(BW, "_DIRECT", direct)
            real = BW.BandWalker._sums_direct
            m.setattr(BW.BandWalker, "_sums_direct", lambda self, *a: ran.append(direct) or real(self, *a))
            leaf = w.detach().clone().requires_grad_()
            loss = band_mean(F.unit_view(leaf, grid, "rows"), grid, "cosine", sign)
            out.append((loss.detach(), *torch.autograd.grad(loss, leaf)))
    return out[0], out[1], ran


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("H, W, radius", [(5, 6, 1.5), (16, 32, 1.5), (7, 9, 2), (9, 4, 3), (2, 3, 3), (1, 5, 2),
                                          (6, 1, 1.5)])
def test_band_direct_windows_match_the_tiles(dtype, H, W, radius, monkeypatch):
    """On the CPU, cosine WS on float32/64 weights takes the direct windows (windows of the
    weight itself, a zero-padded copy of the rows only for the few units whose window runs past
    an end, no pass for max |x|): the value and gradient equal the tiled band walks' and, in
    float64, the brute force — also on grids smaller than the stencil's reach."""
    grid = tt.Grid(H, W, radius=radius)
    w = torch.randn(H * W, 300, generator=torch.Generator().manual_seed(H * W), dtype=dtype)
    for sign in NB.SIGNS:
        (l_d, g_d), (l_t, g_t), ran = _band_direct_and_tiled(w, grid, sign, monkeypatch)
        assert ran == [True]
        tol = dict(rtol=1e-12, atol=1e-14) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(l_d, l_t, **tol)
        torch.testing.assert_close(g_d, g_t, **tol)
        if dtype == torch.float64:
            leaf = w.clone().requires_grad_()
            ref = brute_force(F.unit_view(leaf, grid, "rows"), grid, "cosine", sign)
            torch.testing.assert_close(l_d, ref.detach(), rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(g_d, torch.autograd.grad(ref, leaf)[0], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("scale", [1e20, 2.0 ** 16.5, 2.0 ** 17, 1e-20, 2.0 ** -16, 2.0 ** -17, 0.0])
def test_band_direct_windows_scale_decision(scale, monkeypatch):
    """The direct windows decide the call's scale from the units' squared norms: at and around
    the edges of the range where it is 1 (max |x| in [2⁻¹⁶, 2¹⁷)), far outside it, and for a zero
    weight, value and gradient equal the tiled walks' (which compute the scale from max |x|
    first) and are finite; some units' norms at the edge of the range do not change that."""
    grid = tt.Grid(6, 8, radius=1.5)
    g = torch.Generator().manual_seed(1)
    w = torch.randn(48, 260, generator=g, dtype=torch.float64)
    w = w / w.abs().max() * scale  # max |x| = scale exactly
    w[5] *= 1e-3  # one small unit
    (l_d, g_d), (l_t, g_t), ran = _band_direct_and_tiled(w, grid, "signed", monkeypatch)
    assert ran == [True]
    torch.testing.assert_close(l_d, l_t, rtol=1e-12, atol=0)
    torch.testing.assert_close(g_d, g_t, rtol=1e-12, atol=0)
    assert torch.isfinite(l_d) and torch.isfinite(g_d).all()
    if scale:
        assert g_d.abs().max() > 0


@pytest.mark.parametrize("scale", [1.0, 1e20, 2.0 ** 17, 1e-20, 2.0 ** -17, 0.0, float("nan")])
def test_small_path_raw_gram_scale_decision(scale, monkeypatch):
    """The small path on the CPU forms the cosine Gram from the raw weight and reads the scale off
    its diagonal: value and gradient equal those with the scale computed from max |x| first,
    inside, at the edges of and far outside the range where it is 1, for a zero weight and with
    a NaN; the raw Gram is formed only for cosine on float32/64 CPU tensors."""
    grid = tt.Grid(5, 6, radius=1.5)
    w = torch.randn(30, 40, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    w = w / w.abs().max() * (1.0 if math.isnan(scale) else scale)
    if math.isnan(scale):
        w[4, 4] = scale
    got = []
    for raw in (True, False):
        with monkeypatch.context() as m:
            m.setattr(SM, "_RAW_GRAM", raw)
            leaf = w.clone().requires_grad_()
            for sign in NB.SIGNS:
                loss = torch_path(F.unit_view(leaf, grid, "rows"), grid, "cosine", sign)
                got.append((loss.detach(), *torch.autograd.grad(loss, leaf)))
    n = len(got) // 2
    for (l_r, g_r), (l_s, g_s) in zip(got[:n], got[n:]):
        torch.testing.assert_close(l_r, l_s, rtol=1e-12, atol=0, equal_nan=True)
        torch.testing.assert_close(g_r, g_s, rtol=1e-12, atol=0, equal_nan=True)
    assert SM._raw_gram(w, "cosine") and SM._raw_gram(w.float(), "cosine")
    assert not SM._raw_gram(w, "correlation") and not SM._raw_gram(w.to(torch.bfloat16), "cosine")
    assert not SM._raw_gram(w.to("meta"), "cosine")


def test_band_direct_windows_nan_and_inf(monkeypatch):
    """A NaN or an infinity in the weight: the direct windows give what the tiled walks give (NaN
    propagates; never a silently finite loss)."""
    grid = tt.Grid(6, 8, radius=1.5)
    for bad in (float("nan"), float("inf")):
        w = torch.randn(48, 260, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        w[7, 3] = bad
        (l_d, g_d), (l_t, g_t), _ = _band_direct_and_tiled(w, grid, "signed", monkeypatch)
        assert torch.isnan(l_d) and torch.isnan(l_t)
        assert torch.equal(torch.isnan(g_d), torch.isnan(g_t))


def test_band_direct_windows_only_where_they_apply(monkeypatch):
    """The direct windows are taken only on the CPU, for cosine, on float32/64 weights with
    contiguous rows; never on another device's tensors (there the scale stays on the device: no
    read-back), for correlation, half precision or non-contiguous rows."""
    bands_only(monkeypatch)
    grid = tt.Grid(6, 8, radius=1.5)
    walker = BW.BandWalker(BW.band_plan(grid))
    w = torch.randn(48, 260)
    view = lambda t: F.unit_view(t, grid, "rows")  # noqa: E731
    assert walker._direct(view(w), "cosine")
    assert walker.scale(view(w)) is None
    assert not walker._direct(view(w), "correlation")
    assert not walker._direct(view(w.to(torch.bfloat16)), "cosine")
    assert not walker._direct(view(w.to("meta")), "cosine")
    assert walker.scale(view(w.to("meta"))) is not None
    assert not walker._direct(view(torch.randn(260, 48).t()), "cosine")
    # correlation given a deferred scale still computes its own (scale() does not know the distance)
    leaf = w.double().requires_grad_()
    got = NB.NeighborMean.apply(view(leaf), grid, "correlation", "signed", BW.BandWalker(BW.band_plan(grid)))
    torch.testing.assert_close(got, brute_force(view(leaf), grid, "correlation"), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("layout", ["rows", "dense"])
def test_band_walks_half_precision(dtype, layout, monkeypatch):
    """Half inputs: each band is converted to fp32 in its copy, so value and gradient equal the
    fp32 band walks' on the same rounded numbers."""
    monkeypatch.setattr(BW, "_BAND_ELEMENTS", 50)
    monkeypatch.setattr(BW, "_MIN_CHUNK", 2)
    grid = tt.Grid(5, 6, radius=1.5)
    for distance in ("cosine", "correlation"):
        leaf32, _ = make_view(layout, 5, 6, 7, 1, dtype=torch.float32, seed=4)
        leaf16 = leaf32.detach().to(dtype).requires_grad_()
        assert_half_matches_fp32(leaf16, lambda v: band_mean(v, grid, distance), grid, layout)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("layout", ["rows", "dense", "conv"])
def test_small_input_path_half_precision(dtype, layout):
    """Half inputs on the small-input path: converted to fp32 with the scale (one pass), so value
    and gradient equal the fp32 path's on the same rounded numbers (to fp32 rounding)."""
    grid = tt.Grid(5, 6, radius=1.5)
    for distance, sign in SIGNED_FORMS:
        leaf32, _ = make_view(layout, 5, 6, 4, 3, dtype=torch.float32, seed=2)
        leaf16 = leaf32.detach().to(dtype).requires_grad_()
        up = leaf16.detach().float().requires_grad_()
        view = "rows" if layout == "rows" else "columns"
        got = torch_path(F.unit_view(leaf16, grid, view), grid, distance, sign)
        ref = torch_path(F.unit_view(up, grid, view), grid, distance, sign)
        assert got.dtype == torch.float32 and T.small_input(F.unit_view(up, grid, view), grid, distance)
        torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)
        (g16,) = torch.autograd.grad(got, leaf16)
        (g32,) = torch.autograd.grad(ref, up)
        assert g16.dtype == dtype
        torch.testing.assert_close(g16.float(), g32.to(dtype).float(), rtol=0, atol=0)


def test_small_input_threshold_and_neighbour_cache():
    """Which inputs take the small-input path (N²·D ≤ 2²³ for the angular distances, pairs·D ≤
    2¹⁶ for the Euclidean ones), and the cached adjacency matrix: symmetric, 0/1, each unit's
    row summing to its number of neighbours, one entry per grid, device and dtype."""
    from torchtopo.functional import _neighbor_small as S

    g = tt.Grid(11, 11)
    assert T.small_input(torch.empty(1, 11, 11, 64), g, "cosine")
    assert T.small_input(torch.empty(1, 11, 11, 64), g, "euclidean")
    big = tt.Grid(16, 16)  # 256 units
    assert T.small_input(torch.empty(1, 16, 16, 128), big, "correlation")  # 2^23
    assert not T.small_input(torch.empty(1, 16, 16, 129), big, "correlation")
    assert not T.small_input(torch.empty(256, 16, 16, 1), big, "euclidean")  # 870 pairs x 256 > 2^16
    A, i, j, ij, k = S._neighbours(g, torch.device("cpu"), torch.float64)
    assert k.tolist() == [1.0, 1.0 / g.n_pairs, 2.0 / g.n_pairs] and k.dtype == torch.float64
    assert torch.equal(A, A.T) and set(A.unique().tolist()) == {0.0, 1.0} and float(A.diagonal().abs().sum()) == 0
    deg = torch.zeros(g.n_units).index_add_(0, i, torch.ones(len(i))).index_add_(0, j, torch.ones(len(j)))
    assert torch.equal(A.sum(1), deg.double()) and int(A.sum()) == 2 * g.n_pairs
    assert torch.equal(ij, torch.cat([i, j]))
    assert S._neighbours(tt.Grid(11, 11), torch.device("cpu"), torch.float64)[0] is A  # equal grids share it
    assert S._neighbours(g, torch.device("cpu"), torch.float32)[0].dtype == torch.float32


@pytest.mark.parametrize("distance, sign", [("correlation", "signed"), ("cosine", "squared"), ("euclidean", "signed")])
def test_small_input_path_saves_little(distance, sign):
    """The small-input path saves the input itself and tensors no larger than the scaled unit
    matrix (N × D), the N × N pair-similarity matrix or the pairs' differences (P × D)."""
    grid = tt.Grid(11, 11)
    w = torch.randn(121, 64, requires_grad=True)
    assert T.small_input(F.unit_view(w, grid, "rows"), grid, distance)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        loss = F.activation_similarity(w.T, grid, distance=distance, sign=sign, backend="torch")
    assert any(t.data_ptr() == w.data_ptr() for t in saved)
    bound = max(121 * 64, 121 * 121, grid.n_pairs * 64)
    assert all(t.numel() <= bound for t in saved) and sum(t.numel() for t in saved if t.data_ptr() != w.data_ptr()) <= 2 * bound
    loss.backward()
    assert torch.isfinite(w.grad).all()


def test_torch_path_saves_only_per_pair_state(monkeypatch):
    """Backward state of the tiled walks is X plus O(offsets × N) coefficients, never a copy of
    the pairs' vectors."""
    tiles_only(monkeypatch)
    grid = tt.Grid(16, 16, radius=2)
    w = torch.randn(256, 64, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = F.weight_similarity(w, grid, distance="correlation", backend="torch")
    n_off = len(grid.offsets)
    big = [t for t in saved if t.numel() > 4 * n_off * grid.n_units]
    assert len(big) == 1 and big[0].data_ptr() == w.data_ptr()  # only the input itself
    loss.backward()
    assert torch.isfinite(w.grad).all()


# ------------------------------------------------------- no device-to-host reads
_READBACKS = ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__")


def _forbid_readbacks(monkeypatch, allow_from: str = "\0"):
    """Make every Tensor method that reads a value back to the host (a device synchronisation
    on CUDA, a graph break or a data-dependent branch under ``torch.compile``) raise, unless
    its caller is a module whose name starts with ``allow_from`` (Triton's interpreter reads
    its CPU arguments by design)."""
    for name in _READBACKS:
        orig = getattr(torch.Tensor, name)

        def guard(self, *args, _orig=orig, _name=name, **kwargs):
            if sys._getframe(1).f_globals.get("__name__", "").startswith(allow_from):
                return _orig(self, *args, **kwargs)
            raise AssertionError(f"host read-back Tensor.{_name} in the training path")

        monkeypatch.setattr(torch.Tensor, name, guard)


def _ws_as_calls(dtype, scale, backend):
    """(leaf, loss function) pairs: WS on a weight and AS on dense and conv activations."""
    g = torch.Generator().manual_seed(3)
    grid = tt.Grid(5, 6, radius=1.5)
    w = (torch.randn(30, 7, generator=g) * scale).to(dtype).requires_grad_()
    a = (torch.randn(9, 30, generator=g) * scale).to(dtype).requires_grad_()
    c = (torch.randn(4, 30, 2, 3, generator=g) * scale).to(dtype).requires_grad_()
    calls = []
    for d in DISTANCES:
        calls.append((w, lambda x, d=d: F.weight_similarity(x, grid, distance=d, backend=backend)))
        for x in (a, c):
            calls.append((x, lambda x, d=d: F.activation_similarity(x, grid, distance=d, backend=backend)))
    return calls


@pytest.mark.parametrize("walk", ["small", "tiles", "band"])
@pytest.mark.parametrize("dtype, scale", [(torch.float32, 1.0), (torch.float32, 1e20), (torch.bfloat16, 1e-20)])
def test_torch_path_never_reads_back_to_the_host(walk, dtype, scale, monkeypatch):
    """Forward and backward of WS and AS on the PyTorch path read nothing back from the device
    (the per-call scale is a device tensor, always applied): with every read-back method
    raising, the losses and gradients are still computed, equal to the ones computed without
    the guard, and the gradients finite (the loss too, except the squared Euclidean mean of
    values of 10²⁰, which exceeds float32)."""
    if walk == "tiles":
        tiles_only(monkeypatch)
        monkeypatch.setattr(T, "_CHUNK_ELEMENTS", 40)  # several bands with halos
    if walk == "band":
        bands_only(monkeypatch, budget=60, min_chunk=2)  # several bands and vector chunks
        # the walks a device runs: the CPU-only direct windows read the norms' maximum on the
        # host by design (test_band_direct_windows_*)
        monkeypatch.setattr(BW, "_DIRECT", False)
    monkeypatch.setattr(SM, "_RAW_GRAM", False)  # (likewise the small path's raw Gram)
    calls = _ws_as_calls(dtype, scale, "torch")
    want = []
    for leaf, f in calls:  # unguarded: also fills the grid's caches (built once, on the CPU)
        loss = f(leaf)
        want.append((loss.detach(), *torch.autograd.grad(loss, leaf)))
    with monkeypatch.context() as m:
        _forbid_readbacks(m)
        got = []
        for leaf, f in calls:
            loss = f(leaf)
            (gr,) = torch.autograd.grad(loss, leaf)
            got.append((loss.detach(), gr))
    for (loss, gr), (w_loss, w_gr) in zip(got, want):
        assert torch.equal(loss, w_loss) and torch.equal(gr, w_gr)
        assert torch.isfinite(gr).all() and (torch.isfinite(loss) or scale > 1e19)


@needs_kernels
def test_kernel_path_never_reads_back_to_the_host(monkeypatch):
    """The Triton path reads nothing back either (only the interpreter, which runs the kernels
    on the host here, may read its arguments)."""
    calls = _ws_as_calls(torch.float32, 1e20, "triton")[6:9]  # cosine: WS, dense and conv AS
    for leaf, f in calls:
        torch.autograd.grad(f(leaf), leaf)
    with monkeypatch.context() as m:
        _forbid_readbacks(m, allow_from="triton")
        grads = [torch.autograd.grad(f(leaf), leaf)[0] for leaf, f in calls]
    assert all(torch.isfinite(gr).all() for gr in grads)


def test_torch_path_traces_into_one_graph(monkeypatch):
    """``torch.compile(fullgraph=True)`` (Dynamo only: the eager backend, no code generation)
    captures WS forward + backward whole, for the small-grid walk and for larger inputs (whose
    tiled walks, with their ``out=`` buffers, give way to the fused functional forms while
    traced): no graph break from a value read back to the host or a branch on the data."""
    grid = tt.Grid(4, 5)
    w = torch.randn(20, 6, requires_grad=True)
    for small in (1 << 16, 0):
        monkeypatch.setattr(T, "_SMALL_ELEMENTS", small)
        monkeypatch.setattr(T, "_GRAM_ELEMENTS", small)
        monkeypatch.setattr(T, "_CHUNK_ELEMENTS", 1 << 18 if small else 50)
        f = lambda x: F.weight_similarity(x * 1e20, grid, distance="cosine", backend="torch")  # noqa: E731
        (want,) = torch.autograd.grad(f(w), w)  # also fills the grid's caches
        torch._dynamo.reset()
        loss = torch.compile(f, fullgraph=True, backend="eager")(w)
        (got,) = torch.autograd.grad(loss, w)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6 * float(want.abs().max()))


# --------------------------------------------------------------------------- CUDA only
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("distance", DISTANCES)
def test_cuda_kernel_matches_torch_path(distance, dtype):
    grid = tt.Grid(37, 45, radius=2, wrap=True)
    w = torch.randn(grid.n_units, 300, device="cuda", dtype=dtype, requires_grad=True)
    k = F.weight_similarity(w, grid, distance=distance, backend="triton")
    (gk,) = torch.autograd.grad(k, w)
    t = F.weight_similarity(w, grid, distance=distance, backend="torch")
    (gt,) = torch.autograd.grad(t, w)
    tol = 1e-4 if dtype == torch.float32 else BF16_RTOL
    torch.testing.assert_close(k, t, rtol=tol, atol=tol)
    torch.testing.assert_close(gk.float(), gt.float(), rtol=tol, atol=tol * float(gt.abs().max()))
    act = torch.randn(96, grid.n_units, device="cuda", dtype=dtype)  # AS: units contiguous
    k = F.activation_similarity(act, grid, distance=distance, backend="triton")
    t = F.activation_similarity(act, grid, distance=distance, backend="torch")
    torch.testing.assert_close(k, t, rtol=tol, atol=tol)


@pytest.mark.cuda
def test_cuda_auto_picks_triton(monkeypatch):
    calls = []
    real = K.pair_sums
    monkeypatch.setattr(K, "pair_sums", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    act = torch.randn(32, 64, device="cuda")
    F.activation_similarity(act, (8, 8))
    assert calls == [1]


# ------------------------------------------------------------------------------ layering
def test_kernels_import_nothing_from_torchtopo():
    """Data flows one way: torchtopo passes eps and the fallback in; the kernels never import it."""
    import ast

    for path in (Path(__file__).parents[2] / "kernels").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] == "torchtopo" for n in names), (path.name, names)
