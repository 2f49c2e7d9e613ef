"""attach() / Regularizer / terms: the one mechanism that hangs losses on layers."""
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import torchtopo as tt
import torchtopo.functional as TF


def small_batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_penalty_equals_sum_of_scaled_losses():
    torch.manual_seed(0)
    model = tt.models.mnist_cnn()
    reg = tt.attach(
        model,
        {
            "fc1": [tt.WeightSimilarity(0.7, distance="cosine"), tt.ActivationSimilarity(0.3)],
            "features.3": tt.ActivationSimilarity(0.2, grid=(8, 8), distance="euclidean"),
        },
    )
    x, _ = small_batch()
    feats = {}
    hook = model.fc1.register_forward_hook(lambda m, i, o: feats.__setitem__("fc1", o))
    hook2 = model.features[3].register_forward_hook(lambda m, i, o: feats.__setitem__("c", o))
    model(x)
    hook.remove(), hook2.remove()
    want = (
        0.7 * TF.weight_similarity(model.fc1.weight, (11, 11), distance="cosine")
        + 0.3 * TF.activation_similarity(feats["fc1"], (11, 11))
        + 0.2 * TF.activation_similarity(feats["c"], (8, 8), distance="euclidean")
    )
    p = reg.penalty()
    assert torch.allclose(p, want)
    losses = reg.losses()
    assert set(losses) == {"fc1[0]", "fc1[1]", "features.3"}
    assert all(not l.requires_grad for l in losses.values())
    p.backward()
    assert model.fc1.weight.grad is not None and model.features[0].weight.grad is not None


def test_captures_only_with_grad_and_released_after_penalty():
    model = tt.models.mnist_cnn()
    reg = tt.attach(model, {"fc1": tt.ActivationSimilarity(1.0)})
    x, _ = small_batch()
    with torch.no_grad():
        model(x)
    assert reg._captured == {}
    with pytest.raises(RuntimeError, match="no captured activations"):
        reg.penalty()
    model(x)
    assert "fc1" in reg._captured
    first = reg.penalty()
    assert reg._captured == {}  # released
    assert torch.equal(reg.losses()["fc1"], first.detach())  # logging still works after release
    with pytest.raises(RuntimeError, match="forward"):
        reg.penalty()
    # only the last forward is kept (and a second forward before penalty() is warned about)
    model(x[:4])
    with pytest.warns(UserWarning, match="ran forward again before penalty"):
        model(x)
    assert reg._captured["fc1"][1].shape[0] == 16


def test_strength_schedule_and_step():
    model = tt.models.mnist_cnn()
    reg = tt.attach(model, {"fc1": tt.WeightSimilarity(lambda step: 0.1 * step)})
    l = TF.weight_similarity(model.fc1.weight, (11, 11)).detach()
    assert float(reg.penalty().detach()) == pytest.approx(0.0)
    assert float(reg.penalty().detach()) == pytest.approx(0.1 * float(l))
    assert reg.step == 2
    reg.step = 10
    assert float(reg.penalty().detach()) == pytest.approx(1.0 * float(l), rel=1e-6)
    cfg = reg.config()
    json.dumps(cfg)
    assert cfg["terms"]["fc1"]["strength"].startswith("callable:")


def test_config_is_json_and_describes_terms():
    model = tt.models.mnist_cnn()
    reg = tt.attach(model, {"fc1": tt.WeightSimilarity(0.5, distance="correlation"), "features.0": tt.SpatialCorrelation(0.1, grid=(4, 8), neighborhood=(2, 3), seed=1)})
    cfg = json.loads(json.dumps(reg.config()))
    t = cfg["terms"]["fc1"]
    assert t == {"module": "fc1", "type": "WeightSimilarity", "strength": 0.5, "grid": tt.Grid(11, 11).config(), "distance": "correlation"}
    assert cfg["terms"]["features.0"]["neighborhood"] == [2, 3]
    assert "WeightSimilarity" in repr(reg)


def test_remove_and_context_manager():
    model = tt.models.mnist_cnn()
    before = len(model.fc1._forward_hooks)
    with tt.attach(model, {"fc1": tt.ActivationSimilarity(1.0)}) as reg:
        assert len(model.fc1._forward_hooks) == before + 1
        model(small_batch()[0])
    assert len(model.fc1._forward_hooks) == before
    assert reg._captured == {}
    # one hook per module even with several activation terms
    reg = tt.attach(model, {"fc1": [tt.ActivationSimilarity(1.0), tt.SpatialCorrelation(1.0)]})
    assert len(model.fc1._forward_hooks) == before + 1
    reg.remove()
    assert len(model.fc1._forward_hooks) == before


def test_term_instance_reusable_for_several_layers():
    model = nn.Sequential(nn.Linear(4, 9), nn.ReLU(), nn.Linear(9, 9))
    term = tt.WeightSimilarity(1.0, grid=(3, 3))
    reg = tt.attach(model, {"0": term, "2": term})
    assert set(reg.losses()) == {"0", "2"}
    assert reg.terms["0"] is not reg.terms["2"]


def test_grid_from_layer_attribute_and_missing_grid():
    model = nn.Sequential(tt.TopoLinear(4, (2, 3)), nn.Linear(6, 6))
    reg = tt.attach(model, {"0": tt.WeightSimilarity()})
    assert reg.terms["0"].grid == tt.Grid(2, 3)
    with pytest.raises(ValueError, match=r"'1' \(Linear, weight \(6, 6\)\) needs a grid"):
        tt.attach(model, {"1": tt.WeightSimilarity()})


def test_attach_errors_name_module_type_and_shape():
    model = tt.models.mnist_cnn()
    with pytest.raises(ValueError, match=r"no module named 'fc3'.*'fc1'"):
        tt.attach(model, {"fc3": tt.WeightSimilarity()})
    with pytest.raises(ValueError, match=r"'fc2' \(Linear, weight \(10, 121\)\).*10 units.*11×11 has 121"):
        tt.attach(model, {"fc2": tt.WeightSimilarity(grid=(11, 11))})
    with pytest.raises(TypeError, match=r"'relu' \(ReLU\).*no weight"):
        tt.attach(model, {"relu": tt.WeightSimilarity(grid=(11, 11))})
    with pytest.raises(ValueError, match=r"'features.3' \(Conv2d.*64 output units.*121"):
        tt.attach(model, {"features.3": tt.ActivationSimilarity(grid=(11, 11))})
    with pytest.raises(TypeError, match="torchtopo term"):
        tt.attach(model, {"fc1": "ws"})
    with pytest.raises(TypeError, match="nn.Module"):
        tt.attach("model", {})
    with pytest.raises(TypeError, match="dict"):
        tt.attach(model, [("fc1", tt.WeightSimilarity())])
    with pytest.raises(ValueError, match="strength"):
        tt.WeightSimilarity(-1.0)
    with pytest.raises(TypeError, match="strength"):
        tt.WeightSimilarity("1")
    with pytest.raises(ValueError, match="distance"):
        tt.ActivationSimilarity(distance="l1")


def test_attach_finds_names_inside_compile_and_ddp_style_wrappers():
    model = tt.models.mnist_cnn()
    compiled = torch.compile(model, backend="aot_eager")  # not compiled until its first call
    reg = tt.attach(compiled, {"fc1": tt.WeightSimilarity()})
    assert reg.terms["fc1"].grid == tt.Grid(11, 11)
    wrapped = nn.Module()
    wrapped.module = model  # the DataParallel / DistributedDataParallel layout
    assert set(tt.attach(wrapped, {"fc1": tt.WeightSimilarity()}).terms) == {"fc1"}
    with pytest.raises(TypeError, match="module names must be strings"):
        tt.attach(model, {1: tt.WeightSimilarity()})


def test_activation_term_on_tuple_output_errors():
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 4)

        def forward(self, x):
            return self.lin(x), x

    model = Pair()
    reg = tt.attach(model, {"": tt.ActivationSimilarity(grid=(2, 2))})
    model(torch.randn(5, 3))
    with pytest.raises(TypeError, match="output must be a tensor"):
        reg.penalty()


def test_batch_size_one_is_a_clear_error():
    model = tt.models.mnist_cnn()
    reg = tt.attach(model, {"fc1": tt.ActivationSimilarity()})
    model(torch.randn(1, 1, 28, 28))
    with pytest.raises(ValueError, match="batch size 1"):
        reg.penalty()


def test_empty_regularizer():
    model = nn.Linear(2, 2)
    reg = tt.attach(model, {})
    p = reg.penalty()
    assert float(p) == 0.0 and reg.losses() == {}


def test_dead_units_finite_in_training_step():
    model = tt.models.mnist_cnn()
    with torch.no_grad():
        model.fc1.weight[:10] = 0.0
        model.fc1.bias[:10] = 0.0  # ten dead units: constant zero output
    reg = tt.attach(model, {"fc1": [tt.ActivationSimilarity(1.0), tt.WeightSimilarity(1.0, distance="cosine"), tt.SpatialCorrelation(1.0)]})
    x, y = small_batch()
    loss = F.cross_entropy(model(x), y) + reg.penalty()
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_training_reduces_topographic_loss():
    torch.manual_seed(0)
    model = tt.models.mnist_cnn()
    reg = tt.attach(model, {"fc1": tt.WeightSimilarity(5.0, distance="cosine")})
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = small_batch(32)
    start = float(reg.losses()["fc1"])
    for _ in range(30):
        loss = F.cross_entropy(model(x), y) + reg.penalty()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(reg.losses()["fc1"]) < 0.5 * start


def test_resnet18_linear_and_conv_layers():
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = tv.models.resnet18(num_classes=10)
    model.fc = tt.TopoLinear.from_linear(model.fc, grid=(2, 5))
    reg = tt.attach(
        model,
        {
            "fc": tt.WeightSimilarity(strength=1.0, distance="cosine"),
            "layer4": tt.ActivationSimilarity(grid=(16, 32), strength=0.5),
            "layer1.0.conv1": tt.WeightSimilarity(grid=(8, 8), strength=0.1),
            "layer2.1.conv2": [tt.ActivationSimilarity(grid=tt.Grid(8, 16, wrap=True)), tt.SpatialCorrelation(grid=(8, 16), neighborhood=4, seed=0)],
        },
    )
    x = torch.randn(2, 3, 32, 32)
    y = torch.tensor([1, 2])
    loss = F.cross_entropy(model(x), y) + reg.penalty()
    loss.backward()
    assert torch.isfinite(loss)
    assert model.layer1[0].conv1.weight.grad.abs().sum() > 0
    assert set(reg.losses()) == {"fc", "layer4", "layer1.0.conv1", "layer2.1.conv2[0]", "layer2.1.conv2[1]"}
    reg.remove()
    with pytest.raises(ValueError, match=r"'layer4' \(Sequential\).*512 output units.*121"):
        tt.attach(model, {"layer4": tt.ActivationSimilarity(grid=(11, 11))})


def test_cifar_cnn_with_terms():
    model = tt.models.cifar_cnn()
    reg = tt.attach(model, {"fc1": tt.ActivationSimilarity(1.0), "features.4": tt.WeightSimilarity(grid=(8, 8))})
    out = model(torch.randn(4, 3, 32, 32))
    assert out.shape == (4, 10)
    (out.sum() + reg.penalty()).backward()


def test_torch_compile_matches_eager():
    torch.manual_seed(0)
    model = tt.models.mnist_cnn().eval()  # eval: no dropout randomness
    reg = tt.attach(model, {"fc1": [tt.ActivationSimilarity(1.0), tt.WeightSimilarity(0.5, distance="cosine")]})
    x, y = small_batch(8)
    eager = F.cross_entropy(model(x), y) + reg.penalty()
    eager.backward()
    g_eager = model.fc1.weight.grad.clone()
    model.zero_grad()
    compiled = torch.compile(model, backend="aot_eager")
    comp = F.cross_entropy(compiled(x), y) + reg.penalty()
    comp.backward()
    assert torch.allclose(eager, comp, rtol=1e-5, atol=1e-6)
    assert torch.allclose(g_eager, model.fc1.weight.grad, rtol=1e-4, atol=1e-6)
    # the functional losses compile too
    f = torch.compile(lambda w: TF.weight_similarity(w, (11, 11), distance="correlation"), backend="aot_eager")
    assert torch.allclose(f(model.fc1.weight), TF.weight_similarity(model.fc1.weight, (11, 11), distance="correlation"))


def test_autocast_bf16():
    model = tt.models.mnist_cnn()
    reg = tt.attach(model, {"fc1": [tt.ActivationSimilarity(1.0), tt.WeightSimilarity(1.0)]})
    x, y = small_batch(8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        loss = F.cross_entropy(out, y) + reg.penalty()
    loss.backward()
    assert torch.isfinite(loss) and loss.dtype == torch.float32
