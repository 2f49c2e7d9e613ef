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


def test_study_architectures():
    m = tt.models.mnist_cnn()
    convs = [l for l in m.features if isinstance(l, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(1, 32, (3, 3)), (32, 64, (3, 3))]
    assert isinstance(m.fc1, tt.TopoLinear) and m.fc1.in_features == 64 and m.fc1.grid == tt.Grid(11, 11)
    assert m.fc2.in_features == 121 and m.fc2.out_features == 10 and m.dropout.p == 0.5
    assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    c = tt.models.cifar_cnn()
    convs = [l for l in c.features if isinstance(l, nn.Conv2d)]
    assert [cv.out_channels for cv in convs] == [32, 64, 128, 256]
    assert sum(isinstance(l, nn.BatchNorm2d) for l in c.features) == 4
    assert sum(isinstance(l, nn.MaxPool2d) for l in c.features) == 3
    assert c.fc1.in_features == 256 and c.fc1.out_features == 121
    # a hook on fc1 sees the pre-ReLU output (negative values present)
    seen = {}
    m.fc1.register_forward_hook(lambda mod, i, o: seen.setdefault("o", o))
    m(torch.randn(8, 1, 28, 28))
    assert (seen["o"] < 0).any()
