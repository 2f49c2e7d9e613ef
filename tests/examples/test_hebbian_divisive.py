"""examples/hebbian_divisive.py (Cekic et al., arXiv:2202.13074): a tiny run end to end (curves,
paired comparisons, the attack named), the σ / input-normalisation sweep and the CIFAR-10 setup."""
import json

import pytest
import torch
from _scripts import load_script

import torchtopo as tt

torch.set_num_threads(1)


def test_example_tiny_run(tmp_path):
    pytest.importorskip("matplotlib")
    mod = load_script("examples/hebbian_divisive.py")
    out = tmp_path / "run"
    payload = mod.main(["--tiny", "--threads", "1", "--out", str(out)])
    for f in ("report.md", "results.json", "activation_histograms.png", "robustness_curves.png", "training_curves.png"):
        assert (out / f).exists(), f
    saved = json.loads((out / "results.json").read_text())
    a = saved["config"]
    for name in ("standard", "HaH (σ=0.1)"):
        runs = saved["runs"][name]
        assert [r["seed"] for r in runs] == [0, 1]
        for r in runs:
            assert len(r["noise"]) == len(a["curves"]["noise"]) and len(r["linf"]) == len(a["curves"]["linf"])
            assert all(0.0 <= v <= 100.0 for v in r["noise"] + r["linf"] + r["l2"] + [r["clean"]])  # percent
            assert r["noise"][0] == r["clean"]  # σ = 0 is the clean accuracy
            for norm in ("linf", "l2"):  # nested balls, survivors attacked: the PGD curves never rise
                assert r[norm][0] == pytest.approx(r["clean_attack_subset"])
                assert all(b <= a_ for a_, b in zip(r[norm], r[norm][1:]))
            assert set(r["seconds"]) >= {"noise", "pgd_linf", "pgd_l2"}
    # the HaH model's first block keeps at most 20 % of each map: mostly zeros
    assert saved["summary"]["HaH (σ=0.1)"]["frac_zero_block1"]["mean"] >= 80 - 1e-6
    cmp = saved["comparisons"]["HaH (σ=0.1)"]
    assert cmp["vs"] == "standard" and cmp["seeds"] == [0, 1]
    assert cmp["measures"]["clean"]["n"] == 2 and "verdict" in cmp["measures"]["clean"]
    text = (out / "report.md").read_text()
    assert "What this run can decide" in text and "What it cannot decide" in text and "nan" not in text
    assert "Where the time went" in text and "± 0.00" not in text
    assert ("no AutoAttack" in text) or ("AutoAttack (standard version" in text)  # says which attack
    assert payload["summary"]["standard"]["n"] == 2


def test_sweep_conditions_and_attack_defaults(tmp_path):
    mod = load_script("examples/hebbian_divisive.py", "hebbian_divisive_sweep")
    a = mod.parse_args(["--out", str(tmp_path)])
    assert a.seeds == 3 and a.sigmas == [0.1, 1.0] and a.input_norm == "both"
    assert (a.pgd_steps, a.pgd_restarts) == (20, 2)
    names = [c["name"] for c in mod.conditions(a)]
    assert names == ["standard", "HaH (σ=0.1)", "HaH (σ=1)", "standard (raw input)", "HaH (σ=0.1, raw input)"]
    full = mod.parse_args(["--out", str(tmp_path), "--full-grid"])
    assert [c["name"] for c in mod.conditions(full)] == names + ["HaH (σ=1, raw input)"]
    refs = {c["name"]: c["ref"] for c in mod.conditions(full)}
    assert refs["HaH (σ=1, raw input)"] == "standard (raw input)" and refs["HaH (σ=0.1)"] == "standard"
    # AutoAttack runs on PGD's survivors among the attack images, at points on the PGD curves
    assert 0 < a.n_autoattack <= a.n_attack and 2 / 255 in a.curves["linf"] and 0.25 in a.curves["l2"]
    with pytest.raises(SystemExit):
        mod.parse_args(["--out", str(tmp_path), "--n-attack", "10", "--n-autoattack", "20"])
    # the standard MNIST model must degrade over the curves: they reach far past the paper's points
    assert max(a.curves["noise"]) >= 1.0 and max(a.curves["linf"]) >= 0.3 and max(a.curves["l2"]) >= 3.0
    m = mod.make_model(mod.conditions(full)[5], full)
    assert isinstance(m.normalize, torch.nn.Identity) and len(tt.hah_layer_names(m)) == 2  # raw input, HaH blocks
    assert m.features[0][1].norm.sigma == pytest.approx(1.0)  # σ of the divisive normalisation


def test_example_cifar_config_is_the_papers(tmp_path):
    mod = load_script("examples/hebbian_divisive.py", "hebbian_divisive_cfg")
    a = mod.parse_args(["--dataset", "cifar10", "--data-root", str(tmp_path)])
    assert (a.epochs, a.batch_size, a.lr) == (100, 128, 1e-3)
    assert 2 / 255 in a.curves["linf"] and 0.25 in a.curves["l2"] and 0.1 in a.curves["noise"]
    assert a.sigmas == [0.1] and a.input_norm == "on" and not a.end_to_end  # layer-local, as the released code
    m = mod.make_model(mod.conditions(a)[1], a)
    assert len(tt.hah_layer_names(m)) == 6
    with pytest.raises(SystemExit):
        mod.parse_args(["--dataset", "cifar10"])  # no --data-root: refuses (never downloads)
