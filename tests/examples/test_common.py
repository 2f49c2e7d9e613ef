"""examples/_common.py and _store.py: the lock on --out, atomic files, unreadable checkpoints
retrained, --help text, dataset messages, statistics without spread from one value."""
import json
import math
import os
import subprocess
import sys

import pytest
import torch
from _scripts import load_script
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "examples"))
import _common as C  # noqa: E402
import _store as S  # noqa: E402

SCRIPTS = ["topographic_mnist", "v1_front_robustness", "hebbian_divisive", "lgn_lateral_emergence"]


# ------------------------------------------------------------------------------ lock
def test_lock_refuses_a_live_run_and_takes_over_a_stale_one(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".lock").write_text(str(other.pid))
        with pytest.raises(SystemExit, match=rf"another run \(PID {other.pid}\) is writing into"):
            S.OutLock(str(tmp_path)).acquire()
        assert (tmp_path / ".lock").read_text() == str(other.pid)  # left alone
    finally:
        other.kill()
        other.wait()
    # the process is gone: its lock is stale and taken over
    with pytest.warns(UserWarning, match="stale lock"):
        lock = S.OutLock(str(tmp_path)).acquire()
    assert (tmp_path / ".lock").read_text() == str(os.getpid())
    S.OutLock(str(tmp_path)).acquire()  # our own lock: re-entrant
    lock.release()
    assert not (tmp_path / ".lock").exists()


def test_start_locks_out_and_sets_threads(tmp_path):
    import argparse

    a = argparse.Namespace(out=str(tmp_path / "o"), threads=None, shard=(0, 2))
    C.start(a)
    assert a.threads == 1 and torch.get_num_threads() == 1  # one per process when sharded
    assert (tmp_path / "o" / ".lock").read_text() == str(os.getpid())
    b = argparse.Namespace(out=str(tmp_path / "p"), threads=None)
    C.set_threads(b)
    assert b.threads == C.cores()
    with pytest.raises(SystemExit, match="--threads must be >= 1"):
        C.set_threads(argparse.Namespace(threads=0))
    torch.set_num_threads(1)


# ------------------------------------------------------------------------------ files
def test_atomic_write_leaves_no_temporary_file(tmp_path):
    C.write_results(str(tmp_path), {"a": float("nan"), "b": [1.5, float("inf")], "c": torch.tensor(2.0)}, "# r")
    assert sorted(os.listdir(tmp_path)) == ["report.md", "results.json"]
    assert json.loads((tmp_path / "results.json").read_text()) == {"a": None, "b": [1.5, None], "c": 2.0}
    assert (tmp_path / "report.md").read_text() == "# r\n"


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_unreadable_checkpoint_is_named_moved_aside_and_retrained(tmp_path, damage):
    ck = S.Checkpoints(str(tmp_path), {"epochs": 1})
    m = nn.Linear(3, 2)
    ck.save("model", m, history=[1.0, 2.0])
    path = tmp_path / "model.pt"
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"not a checkpoint", "empty": b""}[damage])
    with pytest.warns(UserWarning, match=r"model\.pt is unreadable"):
        assert ck.load("model", nn.Linear(3, 2)) is None  # -> the caller retrains
    assert (tmp_path / "model.pt.corrupt").exists() and not path.exists()
    ck.save("model", m)
    m2 = nn.Linear(3, 2)
    assert ck.load("model", m2) is not None and torch.equal(m2.weight, m.weight)


def test_checkpoint_roundtrip_weights_only_and_stale_signature(tmp_path):
    m = nn.Linear(3, 2)
    S.Checkpoints(str(tmp_path), {"epochs": 1, "t": (1, 2)}).save("m", m, loss=[0.5])
    blob = torch.load(tmp_path / "m.pt", weights_only=True)  # plain tensors, numbers, lists
    assert blob["loss"] == [0.5]
    assert S.Checkpoints(str(tmp_path), {"epochs": 1, "t": (1, 2)}).load("m", nn.Linear(3, 2))["loss"] == [0.5]
    assert S.Checkpoints(str(tmp_path), {"epochs": 2}).load("m", nn.Linear(3, 2)) is None  # stale: retrain
    assert S.Checkpoints(str(tmp_path), {"epochs": 1, "t": (1, 2)}).load("m", nn.Linear(4, 2)) is None
    (tmp_path / "e.json").write_text('{"a": 1')  # a JSON cut short
    with pytest.warns(UserWarning, match="unreadable"):
        assert S.Checkpoints(str(tmp_path), {}).load_json("e.json") is None


# ------------------------------------------------------------------------------ statistics
def test_mean_se_ci_has_no_spread_from_one_value():
    s = C.mean_se_ci([3.0])
    assert s["n"] == 1 and s["se"] is None and C.fmt_mean(s) == "3.00 (n = 1, no spread)"
    assert "no verdict" in C.ci_verdict(s, positive="+", negative="-")
    s = C.mean_se_ci([1.0, 2.0, 3.0, float("nan"), None])
    assert s["n"] == 3 and s["mean"] == 2.0 and s["se"] == pytest.approx(1 / math.sqrt(3))
    assert s["ci_low"] == pytest.approx(2.0 - 4.303 / math.sqrt(3))  # t(0.975, 2 df)
    assert C.fmt_mean(s) == "2.00 ± 0.58 [-0.48, 4.48] (n = 3)"
    assert C.ci_verdict(C.mean_se_ci([1.0, 1.2, 0.9]), positive="up", negative="down").startswith("up")
    assert C.ci_verdict(C.mean_se_ci([-1.0, -1.2, -0.9]), positive="up", negative="down").startswith("down")
    assert C.ci_verdict(s, positive="up", negative="down").startswith("cannot tell")
    assert "did not vary" in C.ci_verdict(C.mean_se_ci([2.0, 2.0]), positive="up", negative="down")


# ------------------------------------------------------------------------------ command line
@pytest.mark.parametrize("name", SCRIPTS)
def test_help_shows_description_layouts_example_and_every_option(name, capsys):
    mod = load_script(f"examples/{name}.py", f"{name}_help")
    with pytest.raises(SystemExit):
        mod.parse_args(["--help"])
    out = capsys.readouterr().out
    assert mod.__doc__.split("\n")[0] in out and "Writes ``report.md``" in out  # the whole docstring
    assert "data layouts (--dataset NAME --data-root DIR):" in out and "example:\n  python examples/" in out
    assert "cifar-10-batches-py" in out and "mnist_sample" in out
    parser = _parser_of(mod)
    for act in parser._actions:
        if act.option_strings and act.help is not None and act.dest != "help":
            assert act.help and act.help.strip(), act.dest  # help text for every option


def _parser_of(mod):
    captured = {}
    orig = mod.parse

    def grab(p, argv, **kw):
        captured["p"] = p
        return orig(p, argv, **kw)

    mod.parse = grab
    try:
        mod.parse_args([])
    finally:
        mod.parse = orig
    return captured["p"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_offers_the_same_dataset_names(name, capsys):
    mod = load_script(f"examples/{name}.py", f"{name}_ds")
    choices = next(a.choices for a in _parser_of(mod)._actions if a.dest == "dataset")
    assert set(C.DATASETS) <= set(choices)
    with pytest.raises(SystemExit):
        mod.parse_args(["--dataset", "cifar10"])  # needs --data-root
    assert "cifar-10-batches-py" in capsys.readouterr().err


def test_unsupported_dataset_and_missing_folder_messages(tmp_path, capsys):
    mod = load_script("examples/hebbian_divisive.py", "hebbian_ds_msg")
    with pytest.raises(SystemExit):
        mod.parse_args(["--dataset", "tiny-imagenet", "--data-root", str(tmp_path)])
    assert "not supported by this study's example; choose from mnist_sample, mnist, cifar10" in capsys.readouterr().err
    import torchtopo as tt

    for name, loader in (("cifar10", tt.data.cifar10), ("mnist", tt.data.mnist), ("tiny-imagenet", tt.data.tiny_imagenet)):
        for root in (str(tmp_path / "nowhere"), str(tmp_path)):
            with pytest.raises(SystemExit) as e:
                C.open_dataset(name, root, loader)
            msg = str(e.value)
            assert f"--dataset {name}: cannot read --data-root" in msg and "Expected layout: " + C.DATASETS[name] in msg
            assert "download=True" not in msg
