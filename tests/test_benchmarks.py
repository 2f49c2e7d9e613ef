"""The benchmark scripts are not tests (nothing here times anything), but they must run, and the
baselines they time must compute the same quantity as torchtopo, or their ratios mean nothing."""
import json

import pytest
import torch
from _scripts import load_script


@pytest.fixture(scope="module")
def neighbor_penalty():
    return load_script("benchmarks/neighbor_penalty.py")


@pytest.mark.parametrize("kind, distance", [("WS", "cosine"), ("WS", "euclidean"), ("AS", "correlation"), ("AS", "sqeuclidean")])
def test_baselines_compute_the_same_loss(neighbor_penalty, kind, distance):
    """The naive gather (and, for AS correlation, the full N×N matrix) are the same mean over
    neighbour pairs as torchtopo's loss: the speed ratios compare like with like."""
    case = {"kind": kind, "H": 7, "D": 12, "distance": distance}
    ours = float(neighbor_penalty.build("torch", case, "cpu", torch.float64).loss().detach())
    impls = ["naive gather"] + (["full NxN"] if (kind, distance) == ("AS", "correlation") else [])
    for impl in impls:
        theirs = float(neighbor_penalty.build(impl, case, "cpu", torch.float64).loss().detach())
        assert theirs == pytest.approx(ours, rel=1e-6), impl


def test_neighbor_penalty_runs_and_writes_json(neighbor_penalty, tmp_path):
    out = tmp_path / "np.json"
    report = neighbor_penalty.main(["--sizes", "5:8,8:4", "--repeats", "1", "--no-memory", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["results"] == json.loads(json.dumps(report["results"]))
    impls = {(r["kind"], r["impl"]) for r in data["results"]}
    assert {("WS", "ref"), ("WS", "torch"), ("WS", "naive gather"), ("WS", "topoloss"),
            ("AS", "ref"), ("AS", "torch"), ("AS", "naive gather"), ("AS", "full NxN")} <= impls
    assert all(r["median_s"] > 0 for r in data["results"])


def test_hah_block_benchmark_runs(tmp_path):
    out = tmp_path / "hah.json"
    load_script("benchmarks/hah_block.py").main(["--batch", "2", "--channels", "3", "4", "--size", "8", "--warmup", "0",
                             "--repeat", "1", "--out", str(out)])
    assert json.loads(out.read_text())
