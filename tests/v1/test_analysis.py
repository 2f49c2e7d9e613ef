"""torchtopo.v1.analysis: conformance report, tuning, ablation, plots; the example's smoke run."""
import json
import math

import pytest
import torch
from _scripts import load_script
from scipy import stats

from torchtopo.v1 import V1Front
from torchtopo.v1 import analysis as A


def test_chi2_and_ks_p_values_match_scipy():
    for chi2, dof in ((3.0, 4), (20.0, 7), (0.5, 1)):
        assert A.chi2_sf(chi2, dof) == pytest.approx(stats.chi2.sf(chi2, dof), rel=1e-6)
    for d, n in ((0.05, 400), (0.02, 5000), (0.2, 30)):
        assert A.ks_sf(d, n) == pytest.approx(stats.kstwo.sf(d, n), abs=0.02)


def test_conformance_report_separates_biological_from_uniform():
    kw = dict(image_size=64, visual_degrees=2.0, simple_channels=1500, complex_channels=1500, kernel_size=9, noise=None)
    bio = A.conformance_report(V1Front(sampling="biological", **kw))
    uni = A.conformance_report(V1Front(sampling="uniform", **kw))
    for key in ("theta_deg", "nx", "ny", "sf_cpd_simple", "sf_cpd_complex"):
        assert bio[key]["p_chi2"] > 1e-3 and bio[key]["p_ks"] > 1e-3, key
        assert uni[key]["p_chi2"] < 1e-6, key
        assert bio[key]["n"] == 1500 if key.startswith("sf") else bio[key]["n"] == 3000
    # brute-force chi-square for orientation
    th = V1Front(sampling="biological", **kw).theta_deg.double()
    th = torch.where(th >= 157.5, th - 180, th)
    obs = [int(((th >= a) & (th < b)).sum()) for a, b in zip([-22.5, 22.5, 67.5, 112.5], [22.5, 67.5, 112.5, 157.5])]
    exp = [3000 * c / 246 for c in (66, 49, 77, 54)]
    assert bio["theta_deg"]["chi2"] == pytest.approx(sum((o - e) ** 2 / e for o, e in zip(obs, exp)), rel=1e-9)
    assert bio["copula"]["r_log_nx_log_sf"] > 0.5 and abs(uni["copula"]["r_log_nx_log_sf"]) < 0.1
    assert 0 <= bio["truncated_fraction"]["value"] <= 1
    with pytest.raises(TypeError, match="V1Front or a params dict"):
        A.conformance_report([1, 2])
    with pytest.raises(ValueError, match="missing"):
        A.conformance_report({"sf_cpd": torch.ones(3)})


def test_grating_tuning_recovers_orientation_and_sf():
    front = V1Front(image_size=48, visual_degrees=2.0, in_channels=1, simple_channels=8, complex_channels=8,
                    stride=1, noise=None, seed=2)
    t = A.grating_tuning(front, orientations=12, phases=4, sfs_cpd=[1.0, 1.4, 2.0, 2.8, 4.0, 5.6, 8.0])
    assert t["responses"].shape == (16, 7, 12)
    assert t["orientation_curves"].shape == (16, 12) and t["sf_curves"].shape == (16, 7)
    d = (t["preferred_theta_deg"] - front.theta_deg.double()).abs() % 180
    d = torch.minimum(d, 180 - d)
    # orientation steps are 15 degrees; broadband (small-n) cells may be off by one step
    assert float((d <= 15.0 + 1e-6).double().mean()) >= 0.8
    ratio = (t["preferred_sf_cpd"] / front.sf_cpd.double()).log2().abs()
    assert float((ratio <= 1.0).double().mean()) >= 0.7
    with pytest.raises(ValueError, match="orientations"):
        A.grating_tuning(front, orientations=0)


def test_subpopulations_and_silence():
    front = V1Front(image_size=32, visual_degrees=3.0, simple_channels=10, complex_channels=10, stride=2,
                    kernel_size=7, noise=None)
    pops = A.subpopulations(front)
    assert torch.equal(pops["complex"], front.is_complex)
    assert int(pops["high_sf"].sum()) == 10 and torch.equal(pops["high_sf_complex"], pops["high_sf"] & front.is_complex)
    x = torch.rand(2, 3, 32, 32)
    ref = front(x)
    pred = lambda p: p["is_complex"] & (p["sf_cpd"] > p["sf_cpd"].median())  # noqa: E731
    with A.silence(front, pred) as m:
        y = front(x)
    assert torch.equal(y[:, m], torch.zeros_like(y[:, m])) and torch.equal(y[:, ~m], ref[:, ~m])
    assert torch.equal(front(x), ref)  # hook removed
    with pytest.raises(ValueError, match="bool tensor of shape"):
        with A.silence(front, torch.ones(3, dtype=torch.bool)):
            pass


def test_ablation_study_and_weight_share():
    front = V1Front(image_size=16, visual_degrees=1.0, in_channels=1, simple_channels=4, complex_channels=4,
                    stride=2, kernel_size=5, noise=None)
    x = torch.rand(8, 1, 16, 16)

    def score():
        return float(front(x)[:, :4].sum())  # reads only the simple cells

    out = A.ablation_study(front, score, {"simple": ~front.is_complex, "complex": front.is_complex})
    assert out["none"]["score"] == pytest.approx(score())
    assert out["simple"]["score"] == 0.0 and out["complex"]["drop"] == 0.0
    assert out["simple"]["size"] == 4
    w = torch.zeros(3, 8, 1, 1)
    w[:, :4] = 1.0
    share = A.downstream_weight_share(w, {"simple": ~front.is_complex, "complex": front.is_complex})
    assert share["simple"] == pytest.approx(2.0) and share["complex"] == 0.0
    with pytest.raises(ValueError, match="shape"):
        A.downstream_weight_share(w, {"bad": torch.ones(3, dtype=torch.bool)})


def test_plots(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    front = V1Front.mnist(simple_channels=8, complex_channels=8)
    f1 = A.plot_conformance(front, str(tmp_path / "c.png"))
    f2 = A.plot_filters(front, 16, str(tmp_path / "f.png"))
    plt.close(f1)
    plt.close(f2)
    assert (tmp_path / "c.png").stat().st_size > 1000 and (tmp_path / "f.png").stat().st_size > 1000


def test_example_tiny_smoke(tmp_path):
    mod = load_script("examples/v1_front_robustness.py")
    out = tmp_path / "run"
    res = mod.main(["--tiny", "--threads", "1", "--out", str(out), "--n-train", "64", "--n-test", "32", "--seeds", "1",
                    "--corruptions", "gaussian_noise", "--no-ablation", "--no-plots"])
    assert (out / "report.md").exists() and (out / "results.json").exists()
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["clean"]) == {"biological", "uniform", "baseline"}
    assert math.isfinite(res["relative_difference_percent"]["ratio_of_means"])
    assert set(saved["corruption_accuracy"]["biological"]) == {"gaussian_noise"}
    assert "8.72" in (out / "report.md").read_text()
