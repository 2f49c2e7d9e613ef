"""tt.robustness.perturb_weights and readout_rsm (the weight-perturbation test of Truong & Hasson,
arXiv:2508.00043): exact restoration, scope, relative noise, the RSM against numpy."""
import numpy as np
import pytest
import torch

import torchtopo as tt
from torchtopo import robustness as R


def _state(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_perturb_weights_restores_bit_exactly():
    torch.manual_seed(0)
    m = tt.models.mnist_cnn()
    before = _state(m)
    with R.perturb_weights(m, 0.3, generator=torch.Generator().manual_seed(0)):
        now = m.state_dict()
        assert all(not torch.equal(before[k], now[k]) for k in before if k.endswith("weight"))
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    with pytest.raises(RuntimeError, match="boom"):
        with R.perturb_weights(m, 1.0):
            raise RuntimeError("boom")
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_perturb_weights_scope_relative_and_errors():
    torch.manual_seed(0)
    m = tt.models.mnist_cnn()
    before = _state(m)
    with R.perturb_weights(m, 0.5, modules="fc1", include_bias=False, generator=torch.Generator().manual_seed(1)):
        s = m.state_dict()
        changed = {k for k in before if not torch.equal(before[k], s[k])}
        assert changed == {"fc1.weight"}
        d = s["fc1.weight"] - before["fc1.weight"]
        assert d.std().item() == pytest.approx(0.5, rel=0.1)
    with R.perturb_weights(m, 0.5, modules=["fc2"], relative=True, generator=torch.Generator().manual_seed(1)):
        d = m.fc2.weight - before["fc2.weight"]
        assert d.std().item() == pytest.approx(0.5 * before["fc2.weight"].std().item(), rel=0.2)
    with pytest.raises(ValueError, match="no module named 'fc9'"):
        with R.perturb_weights(m, 0.1, modules="fc9"):
            pass
    with pytest.raises(ValueError, match="sigma must be"):
        with R.perturb_weights(m, -1):
            pass


def test_readout_rsm_brute_force():
    w = torch.randn(4, 7, dtype=torch.float64)
    rsm = R.readout_rsm(w)
    for i in range(4):
        for j in range(4):
            assert rsm[i, j].item() == pytest.approx(np.corrcoef(w[i].numpy(), w[j].numpy())[0, 1])
