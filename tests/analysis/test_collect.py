"""tt.analysis.collect_activations on every data source, and the analyses on a real model and sample."""
import pytest
import torch

import torchtopo as tt
from torchtopo import analysis as A


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
