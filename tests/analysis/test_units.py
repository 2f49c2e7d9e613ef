"""tt.analysis unit statistics (entropy, PoZ, input sensitivity, effective dimensionality) against plain definitions."""
import numpy as np
import pytest
import torch

from torchtopo import analysis as A


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
    with pytest.raises(ValueError, match="bins must be >= 1"):
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


@pytest.mark.parametrize("fn", [A.percent_zero, A.unit_entropy, A.input_sensitivity])
def test_empty_stimulus_set_is_a_clear_error(fn):
    with pytest.raises(ValueError, match="at least one sample"):
        fn(torch.zeros(0, 8))
