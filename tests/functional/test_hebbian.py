"""The HaH functions (Cekic et al., arXiv:2202.13074) and GDN (Ballé et al., ICLR 2016) of
torchtopo.functional.hebbian against brute-force oracles."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchtopo import functional as TF

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- oracles
def divisive_norm_oracle(x, sigma, window):
    B, C, H, W = x.shape
    r = window // 2
    s = torch.zeros(B, H, W, dtype=x.dtype)
    for b in range(B):
        for i in range(H):
            for j in range(W):
                tot = 0.0
                for c in range(C):
                    m = 0.0
                    for di in range(-r, r + 1):
                        for dj in range(-r, r + 1):
                            ii, jj = i + di, j + dj
                            if 0 <= ii < H and 0 <= jj < W:
                                m = max(m, abs(float(x[b, c, ii, jj])))
                    tot += m
                s[b, i, j] = tot / C
    y = torch.zeros_like(x)
    for b in range(B):
        S = float(s[b].max())
        for c in range(C):
            for i in range(H):
                for j in range(W):
                    y[b, c, i, j] = x[b, c, i, j] / (sigma * S + (1 - sigma) * float(s[b, i, j]) + 1e-7)
    return y


def hebbian_oracle(z, k_ratio, demote):
    """Full sort at every image and position (the definition), plain loops."""
    B, C = z.shape[:2]
    zz = z.reshape(B, C, -1)
    K = math.ceil(k_ratio * C - 1e-9)
    vals = []
    for b in range(B):
        for p in range(zz.shape[2]):
            a = sorted((max(0.0, float(zz[b, c, p])) for c in range(C)), reverse=True)
            top = sum(a[:K]) / K
            rest = sum(a[K:]) / (C - K)
            vals.append(top - demote * rest)
    return sum(vals) / len(vals)


# ----------------------------------------------------------------------------- GDN
def test_gdn_gradcheck_and_bad_input():
    xd = torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    beta = (torch.rand(3, dtype=torch.float64) + 0.5).requires_grad_()
    gamma = (torch.rand(3, 3, dtype=torch.float64) * 0.3).requires_grad_()
    for inv in (False, True):
        assert torch.autograd.gradcheck(lambda a, b, c: TF.gdn(a, b, c, inverse=inv), (xd, beta, gamma))
    with pytest.raises(ValueError, match=r"beta must be \(C,\) and gamma \(C, C\)"):
        TF.gdn(torch.randn(1, 3, 2, 2), torch.ones(3), torch.ones(2, 2))
    with pytest.raises(ValueError, match="channels-last"):
        TF.gdn(torch.randn(1, 2, 2, 3), torch.ones(3), torch.eye(3))


# ----------------------------------------------------------------------------- divisive norm
@pytest.mark.parametrize("sigma,window", [(0.1, 3), (0.5, 1), (1.0, 5), (0.0, 3)])
def test_divisive_norm_matches_loop_oracle(sigma, window):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    got = TF.divisive_norm(x, sigma=sigma, window=window)
    torch.testing.assert_close(got, divisive_norm_oracle(x, sigma, window))


def test_divisive_norm_zero_image_finite_and_gradcheck():
    y = TF.divisive_norm(torch.zeros(1, 2, 4, 4))
    assert torch.isfinite(y).all() and (y == 0).all()
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: TF.divisive_norm(a, sigma=0.1), (x,))


def test_divisive_norm_bad_input():
    with pytest.raises(ValueError, match=r"4-D channels-first"):
        TF.divisive_norm(torch.randn(8, 16))
    with pytest.raises(ValueError, match="window"):
        TF.divisive_norm(torch.randn(1, 2, 3, 3), window=2)
    with pytest.raises(ValueError, match="sigma"):
        TF.divisive_norm(torch.randn(1, 2, 3, 3), sigma=1.5)
    with pytest.raises(TypeError, match="floating"):
        TF.divisive_norm(torch.ones(1, 1, 2, 2, dtype=torch.long))


# ----------------------------------------------------------------------------- threshold
@settings(max_examples=25, deadline=None)
@given(
    B=st.integers(1, 3), C=st.integers(1, 4), H=st.integers(1, 9), W=st.integers(1, 9),
    keep=st.sampled_from([0.05, 0.2, 0.5, 0.9, 1.0]),
)
def test_threshold_keeps_top_fraction(B, C, H, W, keep):
    g = torch.Generator().manual_seed(B * 100 + C * 10 + H + W)
    x = torch.rand(B, C, H, W, generator=g) + 0.01  # distinct, positive
    y = TF.fractional_threshold(x, keep=keep)
    n = H * W
    k = math.floor((1 - keep) * n + 1e-9)
    kept = (y != 0).reshape(B, C, n).sum(-1)
    assert torch.all(kept == n - k)
    # the kept ones are the largest, unchanged
    for b in range(B):
        for c in range(C):
            v = x[b, c].flatten()
            order = sorted(range(n), key=lambda i: float(v[i]), reverse=True)
            want = torch.zeros(n)
            for i in order[: n - k]:
                want[i] = v[i]
            torch.testing.assert_close(y[b, c].flatten(), want)


def test_threshold_gradient_and_bad_input():
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: TF.fractional_threshold(a, keep=0.3), (x,))
    y = TF.fractional_threshold(x, keep=0.3)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y != 0).double())
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="keep"):
            TF.fractional_threshold(x, keep=bad)
    with pytest.raises(ValueError, match="4-D"):
        TF.fractional_threshold(torch.randn(3, 10))


# ----------------------------------------------------------------------------- hebbian cost
@pytest.mark.parametrize("C", [2, 3, 10, 17, 64])
@pytest.mark.parametrize("k_ratio", [0.05, 0.1, 0.3, 0.5])
def test_hebbian_cost_matches_full_sort_oracle(C, k_ratio):
    if math.ceil(k_ratio * C - 1e-9) >= C:
        pytest.skip("no rest")
    g = torch.Generator().manual_seed(C)
    z = torch.randn(2, C, 3, 2, generator=g, dtype=torch.float64)
    for demote in (0.1, 1.0):
        got = TF.hebbian_cost(z, k_ratio=k_ratio, demote=demote)
        assert got.shape == ()
        assert math.isclose(float(got), hebbian_oracle(z, k_ratio, demote), rel_tol=1e-10, abs_tol=1e-12)


def test_hebbian_cost_dense_and_dim():
    z = torch.randn(5, 20, dtype=torch.float64)
    assert math.isclose(float(TF.hebbian_cost(z)), hebbian_oracle(z, 0.1, 0.1), rel_tol=1e-10)
    zl = torch.randn(2, 3, 4, 20, dtype=torch.float64)  # channels last, dim honoured
    got = TF.hebbian_cost(zl, dim=-1)
    assert math.isclose(float(got), hebbian_oracle(zl.permute(0, 3, 1, 2), 0.1, 0.1), rel_tol=1e-10)


def test_hebbian_cost_gradcheck_and_half():
    z = torch.randn(2, 10, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: TF.hebbian_cost(a, k_ratio=0.2, demote=0.3), (z,))
    h = TF.hebbian_cost(torch.randn(2, 10, 3, 3).bfloat16())
    assert h.dtype == torch.float32 and torch.isfinite(h)
    assert float(TF.hebbian_cost(torch.zeros(1, 8, 2, 2))) == 0.0  # dead ReLUs: finite


def test_hebbian_cost_bad_input():
    for bad in (0.0, 1.0, -0.2, 1.3):
        with pytest.raises(ValueError, match="k_ratio"):
            TF.hebbian_cost(torch.randn(2, 8, 3, 3), k_ratio=bad)
    with pytest.raises(ValueError, match="no remaining channels"):
        TF.hebbian_cost(torch.randn(2, 2, 3, 3), k_ratio=0.6)
    with pytest.raises(ValueError, match="demote"):
        TF.hebbian_cost(torch.randn(2, 8), demote=-1)
    with pytest.raises(ValueError, match="at least 2-D"):
        TF.hebbian_cost(torch.randn(8))


@settings(max_examples=20, deadline=None)
@given(
    B=st.integers(1, 3), C=st.integers(2, 24), H=st.integers(1, 4), W=st.integers(1, 4),
    k_ratio=st.floats(0.01, 0.99), demote=st.floats(0.0, 2.0),
)
def test_hebbian_cost_hypothesis_vs_oracle(B, C, H, W, k_ratio, demote):
    if math.ceil(k_ratio * C - 1e-9) >= C:
        with pytest.raises(ValueError, match="no remaining channels"):
            TF.hebbian_cost(torch.randn(B, C, H, W), k_ratio=k_ratio)
        return
    g = torch.Generator().manual_seed(B + 7 * C + 31 * H + 97 * W)
    z = torch.randn(B, C, H, W, generator=g, dtype=torch.float64)
    got = float(TF.hebbian_cost(z, k_ratio=k_ratio, demote=demote))
    assert math.isclose(got, hebbian_oracle(z, k_ratio, demote), rel_tol=1e-9, abs_tol=1e-12)


# ----------------------------------------------------------------------------- normalized conv
def test_normalized_conv2d_gradcheck_and_bad_input():
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: TF.normalized_conv2d(a, b, padding=1), (x, w))
    with pytest.raises(ValueError, match="channels-last"):
        TF.normalized_conv2d(torch.randn(2, 8, 8, 2), w.detach())
    with pytest.raises(ValueError, match="weight must be 4-D"):
        TF.normalized_conv2d(torch.randn(2, 2, 8, 8), torch.randn(3, 2))
    with pytest.raises(ValueError, match="filter dimension"):
        TF.normalized_weight(torch.randn(3))


def test_hebbian_cost_empty_batch_is_a_clear_error():
    with pytest.raises(ValueError, match="at least one image"):
        TF.hebbian_cost(torch.zeros(0, 8))
    with pytest.raises(ValueError, match="at least one image"):
        TF.hebbian_cost(torch.zeros(0, 8, 4, 4))
