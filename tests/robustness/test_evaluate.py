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


class _Brightness(nn.Module):
    """Predicts class 1 when the mean pixel exceeds 0.3, else 0."""

    def forward(self, x):
        m = x.flatten(1).mean(1)
        return torch.stack([0.3 - m, m - 0.3], 1)


def test_evaluate_corruptions_on_the_published_benchmark(tmp_path):
    """CIFAR-10-C written in its on-disk format: severity s has pixel value 30·s for every
    image (255 for snow at 1–2), a quarter of the labels are 1, so the brightness model (0 below
    severity 3, 1 from it) is right on 75 % at fog 1–2 and on 25 % otherwise."""
    import numpy as np

    n = 8
    labels = np.tile(np.arange(n) % 4 == 0, 5).astype(np.uint8)
    for kind in ("fog", "snow"):
        arr = np.concatenate([np.full((n, 32, 32, 3), 30 * s, dtype=np.uint8) for s in range(1, 6)])
        if kind == "snow":
            arr[: 2 * n] = 255  # snow at severities 1–2: bright, class 1 predicted
        np.save(tmp_path / f"{kind}.npy", arr)
    np.save(tmp_path / "labels.npy", labels)
    m = _Brightness()
    sets = {(k, s): tt.data.cifar10_c(tmp_path, k, s) for k in ("fog", "snow") for s in (1, 2, 3)}
    clean = (torch.full((4, 3, 32, 32), 0.9), torch.tensor([1, 1, 1, 0]))
    res = R.evaluate_corruptions(m, clean, datasets=sets)
    assert res["clean"] == 75.0
    assert res["severities"] == {"fog": [1, 2, 3], "snow": [1, 2, 3]}
    for kind, expect in (("fog", [75.0, 75.0, 25.0]), ("snow", [25.0, 25.0, 25.0])):
        want = [R.evaluate_accuracy(m, sets[(kind, s)]) for s in (1, 2, 3)]
        assert res["accuracy"][kind] == want == expect
        assert res["change"][kind] == [a - 75.0 for a in want]
    # a callable over the files; no clean data: no change reported
    res2 = R.evaluate_corruptions(m, datasets=lambda k, s: tt.data.cifar10_c(tmp_path, k, s), kinds=["fog"], severities=[3, 5])
    assert res2["clean"] is None and res2["change"]["fog"] is None and res2["accuracy"]["fog"] == [25.0, 25.0]
    with pytest.raises(KeyError, match=r"no entry for \('fog', 5\)"):
        R.evaluate_corruptions(m, clean, datasets=sets, kinds=["fog"], severities=[5])
    with pytest.raises(TypeError, match="datasets must be a mapping"):
        R.evaluate_corruptions(m, clean, datasets=[1, 2])
    with pytest.raises(ValueError, match=r"\(kind, severity\) pairs"):
        R.evaluate_corruptions(m, clean, datasets={"fog": sets[("fog", 1)]})
    with pytest.raises(FileNotFoundError, match="frost.npy' is missing"):
        R.evaluate_corruptions(m, datasets=lambda k, s: tt.data.cifar10_c(tmp_path, k, s), kinds=["frost"])
    with pytest.raises(ValueError, match="data .* is required without datasets="):
        R.evaluate_corruptions(m, kinds=["fog"])
