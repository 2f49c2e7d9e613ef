"""Training-loop semantics of a Regularizer: gradient accumulation, remove(), schedules,
empty batches, DataParallel replicas, activation checkpointing, and HebbianLoss(local=True)'s
recomputation (autocast, other hooks)."""
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

import torchtopo as tt
import torchtopo.functional as TF

GRID = (3, 3)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 9), nn.Tanh(), nn.Linear(9, 4)).double()


def _data(n=8):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 6, generator=g, dtype=torch.float64), torch.randint(0, 4, (n,), generator=g)


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters()}


# ------------------------------------------------------------------ gradient accumulation
def test_accumulation_recipe_one_step_and_per_micro_batch_penalty():
    x, y = _data()
    sched = lambda s: 0.5 + s  # noqa: E731
    model = _model()
    reg = tt.attach(model, {"0": [tt.ActivationSimilarity(sched, grid=GRID), tt.WeightSimilarity(sched, grid=GRID)]})
    micro = [(x[:4], y[:4]), (x[4:], y[4:])]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the recipe warns about nothing
        for i, (xb, yb) in enumerate(micro):
            loss = F.cross_entropy(model(xb), yb) + reg.penalty(advance=i == len(micro) - 1)
            (loss / len(micro)).backward()
    assert reg.step == 1
    got = _grads(model)
    # reference: the mean over micro-batches of (task + 0.5 · AS(micro-batch) + 0.5 · WS)
    ref = _model()
    total = 0
    for xb, yb in micro:
        h = ref[0](xb)
        total = total + F.cross_entropy(ref(xb), yb) + 0.5 * TF.activation_similarity(h, GRID) + 0.5 * TF.weight_similarity(ref[0].weight, GRID)
    (total / len(micro)).backward()
    for n, g in _grads(ref).items():
        torch.testing.assert_close(got[n], g, rtol=1e-10, atol=1e-12, msg=n)


def test_second_forward_before_penalty_warns_once_per_layer():
    x, _ = _data()
    model = _model()
    reg = tt.attach(model, {"0": tt.ActivationSimilarity(1.0, grid=GRID)})
    model(x[:4])
    with pytest.warns(UserWarning, match=r"'0' ran forward again before penalty\(\).*only the last.*advance=False") as rec:
        model(x[4:])
    assert rec[0].filename == __file__  # points at the user's forward, not into torch
    torch.testing.assert_close(reg.penalty(), TF.activation_similarity(model[0](x[4:]), GRID))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(x[:4])
        model(x[4:])  # said once per layer
    reg.penalty()


def test_penalty_advance_must_be_bool():
    reg = tt.attach(_model(), {"0": tt.WeightSimilarity(grid=GRID)})
    with pytest.raises(TypeError, match=r"advance must be True or False, got int \(0\)"):
        reg.penalty(advance=0)


def test_penalty_after_remove_says_hooks_are_gone():
    x, _ = _data()
    model = _model()
    with tt.attach(model, {"0": tt.ActivationSimilarity(1.0, grid=GRID), "2": tt.WeightSimilarity(grid=(2, 2))}) as reg:
        model(x)
        reg.penalty()
    model(x)
    with pytest.raises(RuntimeError, match=r"penalty\(\): this regularizer was removed .*hooks are gone.*tt.attach"):
        reg.penalty()
    assert set(reg.losses()) == {"0", "2"}  # logging still reports


# ------------------------------------------------------------------- bad inputs at penalty
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.5, "x", None])
def test_schedule_returning_a_bad_strength_names_term_and_step(bad):
    model = _model()
    reg = tt.attach(model, {"0": tt.WeightSimilarity(lambda s: 1.0 if s < 2 else bad, grid=GRID)})
    reg.penalty(), reg.penalty()
    with pytest.raises(ValueError, match=r"WeightSimilarity on '0': the strength schedule returned .* at step 2; it must return a finite number >= 0"):
        reg.penalty()
    assert reg.step == 2


def test_empty_batch_is_a_clear_error():
    model = _model()
    reg = tt.attach(model, {"0": tt.ActivationSimilarity(1.0, grid=GRID)})
    model(torch.zeros(0, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"ActivationSimilarity on '0': the layer ran on an empty batch \(its output has shape \(0, 9\)\)"):
        reg.penalty()
    conv = nn.Sequential(nn.Conv2d(1, 8, 3))
    reg = tt.attach(conv, {"0": tt.HebbianLoss(1.0, k_ratio=0.25)})
    conv(torch.zeros(0, 1, 5, 5))
    with pytest.raises(ValueError, match=r"HebbianLoss on '0': the layer ran on an empty batch \(its input has shape \(0, 1, 5, 5\)\)"):
        reg.penalty()


def test_dataparallel_replica_forward_is_refused_clearly():
    model = _model()
    reg = tt.attach(model, {"0": tt.ActivationSimilarity(1.0, grid=GRID)})
    replica = model[0]._replicate_for_data_parallel()  # what nn.DataParallel runs on each GPU
    for k, p in model[0].named_parameters():
        setattr(replica, k, p)  # as torch.nn.parallel.replicate does (with the GPU's copy)
    replica(_data()[0])
    with pytest.raises(RuntimeError, match=r"ran in nn.DataParallel replicas.*DistributedDataParallel"):
        reg.penalty()


# --------------------------------------------------------------------- checkpointing
def test_non_reentrant_checkpoint_captures_forward_not_recomputation():
    x, y = _data()
    model = _model()
    reg = tt.attach(model, {"0": tt.ActivationSimilarity(1.0, grid=GRID)})
    h = checkpoint(model[0], x, use_reentrant=False)
    loss = F.cross_entropy(model[2](model[1](h)), y) + reg.penalty()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss.backward()  # recomputes model[0]: not captured
    assert reg._captured == {}
    got = _grads(model)
    ref = _model()
    h = ref[0](x)
    (F.cross_entropy(ref[2](ref[1](h)), y) + TF.activation_similarity(h, GRID)).backward()
    for n, g in _grads(ref).items():
        torch.testing.assert_close(got[n], g, rtol=1e-10, atol=1e-12, msg=n)


def test_reentrant_checkpoint_captures_nothing_and_its_recomputation_neither():
    x, y = _data()
    model = _model()
    reg = tt.attach(model, {"0": tt.ActivationSimilarity(1.0, grid=GRID)})
    x.requires_grad_()
    h = checkpoint(model[0], x, use_reentrant=True)  # forward under no_grad
    with pytest.raises(RuntimeError, match="no captured activations"):
        reg.penalty()
    F.cross_entropy(model[2](model[1](h)), y).backward()  # reruns model[0] with grad enabled
    assert reg._captured == {}


# ------------------------------------------------------------- HebbianLoss(local=True)
def _conv_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))


def test_local_hebbian_recomputes_under_the_forward_autocast():
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    model = _conv_net()
    reg = tt.attach(model, {"2": tt.HebbianLoss(1.0, k_ratio=0.25)})
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(x)
        with torch.no_grad():
            want = -TF.hebbian_cost(model[2](model[1](model[0](x))), k_ratio=0.25, demote=0.1)
    got = reg.penalty()  # called outside the autocast block: the recomputation is still bf16
    assert torch.equal(got.detach(), want)
    with torch.no_grad():
        fp32 = -TF.hebbian_cost(model[2](model[1](model[0](x))), k_ratio=0.25, demote=0.1)
    assert not torch.equal(got.detach(), fp32)
    # and a float32 forward is recomputed in float32 even when penalty() runs under autocast
    model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = reg.penalty()
    torch.testing.assert_close(got.detach(), fp32, rtol=1e-6, atol=1e-7)


def test_local_hebbian_fires_no_hook_and_keeps_other_captures():
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    model = _conv_net()
    calls = []
    model[2].register_forward_hook(lambda m, i, o: calls.append(o.shape))
    heb = tt.attach(model, {"2": tt.HebbianLoss(1.0, k_ratio=0.25)})
    act = tt.attach(model, {"2": tt.ActivationSimilarity(1.0, grid=(2, 4))})
    out = model[2](model[1](model[0](x)))
    assert len(calls) == 1
    heb.penalty()
    assert len(calls) == 1  # the recomputation fired no hook
    assert act._captured["2"].output is out  # nor replaced the other regularizer's capture
    act.penalty().backward()
    assert model[0].weight.grad is not None  # the AS capture is the real, end-to-end output


# ------------------------------------------------------------------------ torch.compile
def test_compiled_model_with_capture_hook_matches_eager():
    x, y = _data()
    model = _model()
    reg = tt.attach(model, {"0": tt.ActivationSimilarity(1.0, grid=GRID)})
    (F.cross_entropy(model(x), y) + reg.penalty()).backward()
    want = _grads(model)
    model.zero_grad(set_to_none=True)
    compiled = torch.compile(model, backend="aot_eager")
    reg2 = tt.attach(compiled, {"0": tt.ActivationSimilarity(1.0, grid=GRID)})  # '_orig_mod.0'
    reg.remove()
    assert reg2.config()["terms"]["0"]["module"] == "_orig_mod.0"
    (F.cross_entropy(compiled(x), y) + reg2.penalty()).backward()
    for n, g in _grads(model).items():
        torch.testing.assert_close(g, want[n], rtol=1e-8, atol=1e-10, msg=n)
