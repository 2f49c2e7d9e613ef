"""examples/v1_front_robustness.py (Barbulescu et al., arXiv:2310.10575): a tiny run end to end,
resume from checkpoints, a truncated checkpoint retrained, the follow-up code's options."""
import json
import os

import pytest
import torch
from _scripts import load_script

import torchtopo as tt

torch.set_num_threads(1)
ARGS = ["--tiny", "--threads", "1", "--n-train", "64", "--n-test", "40", "--corruptions", "gaussian_noise", "contrast"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("v1")
    mod = load_script("examples/v1_front_robustness.py", "v1_example_tiny")
    res = mod.main(ARGS + ["--out", str(out)])
    return mod, out, res


def test_tiny_run_reports_seeds_intervals_and_nyquist_share(tiny):
    mod, out, res = tiny
    saved = json.loads((out / "results.json").read_text())
    assert saved["seeds"] == [0, 1] and saved["n_test"] == 40
    rel = saved["relative_difference_percent"]
    assert rel["overall"]["n"] == 2 and len(rel["overall"]["values"]) == 2
    assert rel["overall"]["ci_low"] <= rel["overall"]["mean"] <= rel["overall"]["ci_high"]
    assert set(rel["per_corruption"]) == {"gaussian_noise", "contrast"}
    # the digit front cuts the complex-cell table at Nyquist (4.95 c/deg at 14 px/deg)
    assert saved["nyquist"]["cut_complex_percent"] == pytest.approx(41, abs=2)
    text = (out / "report.md").read_text()
    assert "Verdict on the paper's claim" in text and "What this run can decide" in text
    assert "± 0.00 (n = 1" not in text and "nan" not in text
    for f in ("relative_difference.png", "severity.png", "filters_biological.png", "conformance_uniform.png"):
        assert (out / f).stat().st_size > 1000, f
    assert len(list((out / "checkpoints").glob("*.pt"))) == 6


def test_rerun_reuses_checkpoints_and_retrains_a_truncated_one(tiny):
    mod, out, res = tiny
    ck = out / "checkpoints"
    stamps = {p.name: os.stat(p).st_mtime_ns for p in ck.glob("*.pt")}
    bad = ck / "uniform_seed1.pt"
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.warns(UserWarning, match="uniform_seed1.pt is unreadable"):
        again = mod.main(ARGS + ["--out", str(out), "--no-plots", "--no-ablation"])
    now = {p.name: os.stat(p).st_mtime_ns for p in ck.glob("*.pt")}
    assert (ck / "uniform_seed1.pt.corrupt").exists() and now["uniform_seed1.pt"] != stamps["uniform_seed1.pt"]
    assert {k: v for k, v in now.items() if k != "uniform_seed1.pt"} == {
        k: v for k, v in stamps.items() if k != "uniform_seed1.pt"}  # nothing else retrained
    assert again["clean"]["biological"]["values"] == res["clean"]["biological"]["values"]


def test_follow_up_options_envelope_table_and_coupled_uniform(tmp_path):
    mod = load_script("examples/v1_front_robustness.py", "v1_example_opts")
    a = mod.parse_args(["--envelope-table", "4x4", "--uniform", "coupled", "--out", str(tmp_path)])
    assert mod.sampling_of("uniform", a) == "unif3" and mod.sampling_of("biological", a) == "biological"
    for variant in ("biological", "uniform"):
        net = mod.build_model(variant, a, 1, 10, (0.1,), (0.3,), seed=3)
        p = mod.find_front(net).params
        assert float(p["nx"].max()) <= tt.v1.distributions.NXNY_EDGES[4] + 1e-6 <= 1.0
        assert float(p["ny"].max()) <= tt.v1.distributions.NXNY_EDGES[4] + 1e-6
    base = mod.find_front(mod.build_model("biological", mod.parse_args(["--out", str(tmp_path)]), 1, 10, (0.1,), (0.3,), 3))
    assert float(base.params["ny"].max()) > tt.v1.distributions.NXNY_EDGES[4]  # the 5×5 table reaches further
    # the rank of nx is kept (its coupling with the spatial frequency survives the remap)
    assert torch.equal(torch.argsort(p["nx"]), torch.argsort(mod.find_front(mod.build_model(
        "uniform", mod.parse_args(["--uniform", "coupled", "--out", str(tmp_path)]), 1, 10, (0.1,), (0.3,), 3)).params["nx"]))


def test_cli_messages(tmp_path, capsys):
    mod = load_script("examples/v1_front_robustness.py", "v1_example_cli")
    a = mod.parse_args(["--out", str(tmp_path)])
    assert a.seeds == 5 and a.n_test is None and len(a.corruptions) == 15  # the default: 5 seeds, whole test set
    with pytest.raises(SystemExit):
        mod.parse_args(["--corruption-root", str(tmp_path)])
    assert "only with --dataset tiny-imagenet" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        mod.parse_args(["--corruptions", "rain"])
    assert "unknown ['rain']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        mod.parse_args(["--dataset", "tiny-imagenet", "--data-root", str(tmp_path), "--corruption-root", str(tmp_path)])
    assert "Tiny-ImageNet-C" in capsys.readouterr().err


def test_published_tiny_imagenet_c_is_read_from_disk(tmp_path):
    """A fake Tiny-ImageNet-C in the published layout (two classes, one JPEG each per severity)."""
    from PIL import Image

    mod = load_script("examples/v1_front_robustness.py", "v1_example_tic")
    g = torch.Generator().manual_seed(0)
    for s in range(1, 6):
        for wnid in ("n01443537", "n01629819"):
            d = tmp_path / "fog" / str(s) / wnid
            d.mkdir(parents=True)
            arr = (torch.rand(64, 64, 3, generator=g) * 255).to(torch.uint8).numpy()
            Image.fromarray(arr).save(d / "val_0.JPEG")
    a = mod.parse_args(["--dataset", "tiny-imagenet", "--data-root", str(tmp_path), "--corruption-root", str(tmp_path),
                        "--corruptions", "fog", "--out", str(tmp_path / "o")])

    class Always(torch.nn.Module):  # predicts class 1 everywhere
        def forward(self, x):
            return torch.tensor([0.0, 1.0]).expand(x.shape[0], 2)

    acc = mod.corruption_eval({"m": Always()}, None, None, a)
    assert acc == {"m": {"fog": [50.0] * 5}}  # one image of each class per severity
