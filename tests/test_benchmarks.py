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


def test_train_step_benchmark_runs(tmp_path):
    """Every configuration of the training-step benchmark runs a step on a study CNN and the JSON
    holds one row per configuration, the plain step's overhead 0."""
    out = tmp_path / "ts.json"
    report = load_script("benchmarks/train_step.py").main(
        ["--models", "mnist_cnn", "--batch", "2", "--warmup", "0", "--repeats", "1", "--threads", "1", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["results"] == json.loads(json.dumps(report["results"]))
    assert [r["config"] for r in data["results"]] == ["plain", "WS", "AS", "Hebbian", "L2", "topoloss"]
    assert data["results"][0]["overhead"] == 0.0
    assert all(r["median_ms"] > 0 for r in data["results"])


def test_train_step_terms_add_to_the_loss():
    """Each configuration's penalty is a positive differentiable scalar on the model (so the
    timed steps do pay for the term), and ``plain`` has none."""
    ts = load_script("benchmarks/train_step.py")
    for name in ("resnet18", "hah_cnn"):
        model, shape = ts.make_model(name)
        for cfg in ("WS", "AS", "Hebbian", "topoloss"):
            m, _ = ts.make_model(name)
            m.load_state_dict(model.state_dict())
            penalty = ts.make_penalty(cfg, name, m)
            m(torch.rand(2, *shape) if name != "resnet18" else torch.rand(2, 3, 16, 16))
            p = penalty()
            assert p.dim() == 0 and p.requires_grad and float(p.detach()) != 0.0, (name, cfg)
        assert ts.make_penalty("plain", name, model)() is None
