"""The recipe scripts of ``docs/recipes/`` run, at a tiny size, and do what their pages say.

Each page shows its script with ``literalinclude``, so what is tested here is what users read.
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import torchtopo as tt

RECIPES = Path(__file__).resolve().parent.parent / "docs" / "recipes"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", RECIPES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_every_recipe_script_has_a_page_in_the_index():
    index = (RECIPES / "index.rst").read_text(encoding="utf-8")
    scripts = sorted(p.stem for p in RECIPES.glob("*.py"))
    assert len(scripts) >= 6
    for s in scripts:
        pages = [p for p in RECIPES.glob("*.rst") if f"literalinclude:: {s}.py" in p.read_text(encoding="utf-8")]
        assert pages, f"no page shows docs/recipes/{s}.py"
        assert re.search(rf"^\s+{pages[0].stem}\s*$", index, re.M), f"{pages[0].name} is not in the recipes' toctree"


# ------------------------------------------------------------------ AMP + accumulation
def test_accumulated_micro_batches_give_the_full_batch_gradient():
    """n micro-batches, each loss (CE + penalty) / n, add up to the gradient of the full
    batch's mean CE + the penalty (a weight term: the same at every micro-batch)."""
    amp = load("amp_accumulation")
    torch.manual_seed(0)
    model = tt.models.mnist_cnn().eval()  # no dropout: the same function twice
    reg = tt.attach(model, {"fc1": tt.WeightSimilarity(strength=1.0, distance="cosine")})
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    for i, (xb, yb) in enumerate(zip(x.chunk(4), y.chunk(4))):
        amp.micro_step(model, reg, xb, yb, accum_steps=4, last=i == 3, amp=False)
    assert reg.step == 1  # the schedule advanced once, on the last micro-batch
    accumulated = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    (F.cross_entropy(model(x), y) + reg.penalty()).backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(accumulated[n], p.grad, rtol=1e-4, atol=1e-6, msg=n)
    assert reg.step == 2


def test_amp_accumulation_recipe_trains_in_bf16():
    amp = load("amp_accumulation")
    torch.manual_seed(0)
    before = params(tt.models.mnist_cnn())
    model, reg, logs = amp.main(steps=2, micro_batch=4, accum_steps=2, amp=True)
    assert reg.step == 2  # 2 optimizer steps (of 2 micro-batches each)
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values()) and logs["penalty"] > 0
    after = params(model)
    assert not torch.equal(before["fc1.weight"], after["fc1.weight"])


# ----------------------------------------------------------------------------- DDP
def test_ddp_recipe_under_torchrun_with_two_gloo_processes(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(RECIPES / "ddp.py"), "--steps", "2", "--batch", "4", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    for rank in (0, 1):
        assert re.search(rf"rank {rank}/2: step 2, cross-entropy [\d.]+, penalty [\d.]+", r.stdout), r.stdout
    state = torch.load(out / "model.pt", weights_only=True)
    model = tt.models.mnist_cnn()
    model.load_state_dict(state)  # the unwrapped model's keys, no "module." prefix
    torch.manual_seed(0)
    init = tt.models.mnist_cnn().state_dict()
    assert not torch.equal(init["fc1.weight"], state["fc1.weight"])


# ------------------------------------------------------------------------- EMA / SWA
def test_ema_copy_made_before_attach_and_measured_separately():
    ema = load("ema_swa")
    model, avg = ema.train("ema", steps=4, batch=4, decay=0.5)
    # the copy carries no hook of the training regularizer
    assert all(not m._forward_hooks for m in avg.module.modules())
    a, m = avg.module.fc1.weight, model.fc1.weight
    assert not torch.equal(a, m) and torch.isfinite(a).all()
    assert int(avg.n_averaged) == 4


def test_swa_averages_from_swa_start_on():
    ema = load("ema_swa")
    _, avg = ema.train("swa", steps=6, batch=4, swa_start=3)
    assert int(avg.n_averaged) == 3


# ------------------------------------------------------------------------- Lightning
def test_lightning_training_step_adds_the_penalty():
    pytest.importorskip("lightning")
    rec = load("lightning_module")
    torch.manual_seed(0)
    before = params(tt.models.mnist_cnn())
    module, trainer = rec.main(max_epochs=1, limit_train_batches=2, limit_val_batches=1,
                               enable_progress_bar=False, enable_model_summary=False,
                               enable_checkpointing=False)
    assert module.reg.step == 2  # one penalty() per training_step
    assert float(trainer.callback_metrics["train/topo"]) > 0
    assert not torch.equal(before["fc1.weight"], module.model.fc1.weight.detach())


# ------------------------------------------------------------------- transformer LM
def test_transformer_lm_recipe_puts_ws_on_the_mlps():
    lm = load("transformer_lm")
    model, reg, history = lm.main(steps=8, batch=4, context=16, d_model=16, d_ff=16)
    assert sorted(reg.terms) == ["encoder.layers.0.linear1", "encoder.layers.1.linear1"]
    assert history[-1] < history[0]  # it learns (bytes of its own source)
    model.zero_grad(set_to_none=True)
    reg.penalty().backward()  # the penalty reaches exactly the MLPs' first weights
    with_grad = sorted(n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0)
    assert with_grad == ["encoder.layers.0.linear1.weight", "encoder.layers.1.linear1.weight"]
    with pytest.raises(AssertionError, match="side"):
        lm.topographic_mlps(lm.TinyLM(256, d_model=16, d_ff=20, context=8))


def test_a_copy_made_after_attach_does_not_feed_the_regularizer():
    """What the EMA page says of copies made after ``tt.attach``."""
    from torch.optim.swa_utils import AveragedModel

    model = tt.models.mnist_cnn()
    reg = tt.attach(model, {"features.3": tt.ActivationSimilarity(grid=(8, 8))})
    avg = AveragedModel(model)
    avg(torch.randn(2, 1, 28, 28))  # the copy's forward, with gradients enabled
    with pytest.raises(RuntimeError, match="captured"):
        reg.penalty()
    model(torch.randn(2, 1, 28, 28))
    assert reg.penalty() > 0


# ------------------------------------------------------------------ checkpoint/resume
def test_resumed_run_ends_with_the_weights_of_the_uninterrupted_run(tmp_path):
    rec = load("checkpoint_resume")
    model, reg, _ = rec.build()
    rec.train(model, reg, _, 0, 6)
    straight = params(model)
    assert reg.step == 6
    resumed, reg2 = rec.main(["--steps", "6", "--save-at", "3", "--out", str(tmp_path)])
    assert reg2.step == 6
    for k, v in params(resumed).items():
        torch.testing.assert_close(v, straight[k], rtol=0, atol=0, msg=k)


def test_checkpoint_rebuilds_from_config_and_state(tmp_path):
    rec = load("checkpoint_resume")
    model, reg, opt = rec.build()
    rec.train(model, reg, opt, 0, 3)
    rec.save(tmp_path / "c.pt", model, opt, reg, 3)
    ckpt = torch.load(tmp_path / "c.pt", weights_only=True)
    other = tt.models.mnist_cnn()
    other.load_state_dict(ckpt["model"])
    again = tt.Regularizer.from_config(other, ckpt["regularizer_config"], strengths={"fc1": rec.warmup})
    again.load_state_dict(ckpt["regularizer"])
    assert again.step == reg.step == 3 and sorted(again.terms) == sorted(reg.terms)
    # the same state: the next penalties agree (same windows drawn, same schedule position)
    x, _ = rec.batch(3)
    model(x), other(x)
    torch.testing.assert_close(again.penalty(), reg.penalty())
