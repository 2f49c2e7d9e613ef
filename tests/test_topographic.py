"""TopoLinear, the study CNNs, the offline data and the packaging."""
import io
import os
import subprocess
import sys
import zipfile

import pytest
import torch
from torch import nn

import torchtopo as tt


def test_topolinear_is_a_linear_on_a_grid():
    layer = tt.TopoLinear(64, (11, 11))
    assert isinstance(layer, nn.Linear)
    assert layer.out_features == 121 and layer.grid == tt.Grid(11, 11)
    x = torch.randn(3, 64)
    assert torch.allclose(layer(x), x @ layer.weight.T + layer.bias)
    assert "grid=11x11" in repr(layer)
    assert tt.TopoLinear(4, tt.Grid(2, 3, wrap=True), bias=False).bias is None


def test_from_linear_keeps_weights_device_dtype():
    lin = nn.Linear(5, 6).double()
    topo = tt.TopoLinear.from_linear(lin, (2, 3))
    assert topo.weight.dtype == torch.float64
    assert torch.equal(topo.weight, lin.weight) and torch.equal(topo.bias, lin.bias)
    assert topo.weight.data_ptr() != lin.weight.data_ptr()  # a copy, not shared storage
    x = torch.randn(4, 5, dtype=torch.float64)
    assert torch.equal(topo(x), lin(x))
    with pytest.raises(ValueError, match=r"6 out_features.*3×3 has 9"):
        tt.TopoLinear.from_linear(lin, (3, 3))
    with pytest.raises(TypeError, match="nn.Linear"):
        tt.TopoLinear.from_linear(nn.Conv2d(1, 6, 1), (2, 3))


def test_state_dict_round_trip():
    torch.manual_seed(0)
    a = tt.models.mnist_cnn()
    b = tt.models.mnist_cnn()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 1, 28, 28)
    a.eval(), b.eval()
    assert torch.equal(a(x), b(x))
    buf = io.BytesIO()
    torch.save(tt.TopoLinear(3, (2, 2)).state_dict(), buf)
    buf.seek(0)
    layer = tt.TopoLinear(3, (2, 2))
    layer.load_state_dict(torch.load(buf))
