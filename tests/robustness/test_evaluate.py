"""tt.robustness evaluations: accuracy, accuracy under corruptions (seeded per kind and severity)
and under weight noise, with the readout-RSM similarity."""
import pytest
import torch
from torch import nn

import torchtopo as tt
from torchtopo import robustness as R


def _digits(n=32):
    x, y = tt.data.mnist_sample_tensors("test", normalize=False)
    return x[:n], y[:n]


class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def test_evaluate_weight_noise_and_corruptions():
    torch.manual_seed(0)
    m = _Toy()
    x = torch.rand(60, 1, 2, 2)
    y = m(x).argmax(1)  # the model is right on every sample
    out = R.evaluate_weight_noise(m, (x, y), [0.0, 5.0], repeats=2)
    assert out["clean"] == 100.0
    assert out["change"][0] == 0.0 and out["rsm_cosine"][0] == pytest.approx(1.0)
    assert out["change"][1] < 0 and out["rsm_cosine"][1] < 0.99
    fc1_only = R.evaluate_weight_noise(m, (x, y), [1.0], modules="fc1", readout="fc2")
    assert fc1_only["rsm_cosine"] == [pytest.approx(1.0)]  # readout untouched
    cor = R.evaluate_corruptions(m, (x, y), kinds=["white", "contrast"], severities={"white": [0.0, 0.5], "contrast": [1]})
    assert cor["change"]["white"][0] == 0.0 and cor["severities"]["contrast"] == [1]
    again = R.evaluate_corruptions(m, (x, y), kinds=["white"], severities=[0.5])
    assert again["accuracy"]["white"][0] == cor["accuracy"]["white"][1]  # same seed → same images
    with pytest.raises(ValueError, match="kinds must be one of.*got 'blur'"):
        R.evaluate_corruptions(m, (x, y), kinds=["blur"])
    with pytest.raises(ValueError, match="must yield labels"):
        R.evaluate_accuracy(m, x)
    with pytest.raises(ValueError, match="repeats must be"):
        R.evaluate_weight_noise(m, (x, y), [0.1], repeats=0)


def test_on_a_real_model():
    x, y = _digits(64)
    torch.manual_seed(0)
    m = tt.models.mnist_cnn()
    m.features = nn.Sequential(tt.data.Normalize((tt.data.MNIST_MEAN,), (tt.data.MNIST_STD,)), *m.features)
    res = R.evaluate_corruptions(m, (x, y), kinds=["pink", "snow"], severities={"pink": [0.1], "snow": [2]})
    assert set(res["accuracy"]) == {"pink", "snow"}
    wn = R.evaluate_weight_noise(m, (x, y), [0.05], modules="fc1", readout="fc2", repeats=1)
    assert len(wn["accuracy"]) == 1
