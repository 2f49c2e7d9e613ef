"""examples/hebbian_divisive.py (Cekic et al., arXiv:2202.13074): a tiny run and the CIFAR-10 configuration."""
import json

import pytest
import torch
from _scripts import load_script
from torch import nn

import torchtopo as tt
from torchtopo import adversarial as adv

torch.set_num_threads(1)


def test_example_tiny_run(tmp_path):
    mod = load_script("examples/hebbian_divisive.py")
    out = tmp_path / "run"
    payload = mod.main(["--tiny", "--out", str(out)])
    for f in ("report.md", "results.json", "activation_histograms.png", "robustness.png", "training_curves.png"):
        assert (out / f).exists(), f
    res = json.loads((out / "results.json").read_text())["results"]
    for kind in ("standard", "hah"):
        for k in ("clean", "noise_0.1", "linf_0.1", "l2_1"):
            assert 0.0 <= res[kind][k] <= 1.0
    # the HaH model's first block keeps at most 20 % of each map: mostly zeros
    first = next(iter(res["hah"]["sparsity"].values()))
    assert first["frac_zero"] >= 0.8 - 1e-6
    assert payload["results"]["hah"]["clean"] == res["hah"]["clean"]
    assert "paper" in (out / "report.md").read_text()


def test_example_cifar_config_is_the_papers(tmp_path):
    mod = load_script("examples/hebbian_divisive.py", "hebbian_divisive_cfg")
    a = mod.parse_args(["--dataset", "cifar10", "--data-root", str(tmp_path)])
    assert (a.epochs, a.batch_size, a.lr) == (100, 128, 1e-3)
    assert a.linf == [2 / 255] and a.l2 == [0.25] and a.noise == [0.1]
    m = mod.make_model("hah", a)
    assert len(tt.hah_layer_names(m)) == 6
    with pytest.raises(SystemExit):
        mod.parse_args(["--dataset", "cifar10"])  # no --data-root: refuses (never downloads)
