"""TopoLinear, the study CNNs, the offline data and the packaging."""
import io
import os
import subprocess
import sys
import zipfile

import pytest
import torch
from torch import nn

import torchtopo as tt


def test_topolinear_is_a_linear_on_a_grid():
    layer = tt.TopoLinear(64, (11, 11))
    assert isinstance(layer, nn.Linear)
    assert layer.out_features == 121 and layer.grid == tt.Grid(11, 11)
    x = torch.randn(3, 64)
    assert torch.allclose(layer(x), x @ layer.weight.T + layer.bias)
    assert "grid=11x11" in repr(layer)
    assert tt.TopoLinear(4, tt.Grid(2, 3, wrap=True), bias=False).bias is None


def test_from_linear_keeps_weights_device_dtype():
    lin = nn.Linear(5, 6).double()
    topo = tt.TopoLinear.from_linear(lin, (2, 3))
    assert topo.weight.dtype == torch.float64
    assert torch.equal(topo.weight, lin.weight) and torch.equal(topo.bias, lin.bias)
    assert topo.weight.data_ptr() != lin.weight.data_ptr()  # a copy, not shared storage
    x = torch.randn(4, 5, dtype=torch.float64)
    assert torch.equal(topo(x), lin(x))
    with pytest.raises(ValueError, match=r"6 out_features.*3×3 has 9"):
        tt.TopoLinear.from_linear(lin, (3, 3))
    with pytest.raises(TypeError, match="nn.Linear"):
        tt.TopoLinear.from_linear(nn.Conv2d(1, 6, 1), (2, 3))


def test_state_dict_round_trip():
    torch.manual_seed(0)
    a = tt.models.mnist_cnn()
    b = tt.models.mnist_cnn()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 1, 28, 28)
    a.eval(), b.eval()
    assert torch.equal(a(x), b(x))
    buf = io.BytesIO()
    torch.save(tt.TopoLinear(3, (2, 2)).state_dict(), buf)
    buf.seek(0)
    layer = tt.TopoLinear(3, (2, 2))
    layer.load_state_dict(torch.load(buf))


# ------------------------------------------------------------ activation terms on transformers
import torchtopo.functional as TF  # noqa: E402


def _capture(module):
    out = {}
    module.register_forward_hook(lambda m, i, o: out.__setitem__("y", o))
    return out


@pytest.mark.parametrize("batch_first", [True, False])
def test_as_on_transformer_linears_takes_the_last_dimension_as_units(batch_first):
    """linear1 / linear2 of a TransformerEncoderLayer output (B, T, N) (or (T, B, N)); with
    T = N the old default took the tokens as units.  The term reads the units off the Linear
    (its last dimension) and batch × tokens are the stimuli."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=16, dropout=0.0, batch_first=batch_first).double()
    terms = {"linear1": tt.ActivationSimilarity(grid=(4, 4)),
             "linear2": tt.ActivationSimilarity(grid=(4, 4), distance="cosine", sign="absolute")}
    reg = tt.attach(layer, terms)
    cap1, cap2 = _capture(layer.linear1), _capture(layer.linear2)
    x = torch.randn(3, 16, 16, dtype=torch.float64)  # T = N = 16
    layer(x)
    y1, y2 = cap1["y"].detach(), cap2["y"].detach()
    assert y1.shape[-1] == 16 and y1.shape[1] == 16
    want = (TF.activation_similarity(y1.reshape(-1, 16), (4, 4))
            + TF.activation_similarity(y2.reshape(-1, 16), (4, 4), distance="cosine", sign="absolute"))
    p = reg.penalty()
    assert float(p.detach()) == pytest.approx(float(want), rel=1e-10)
    p.backward()
    assert all(torch.isfinite(q.grad).all() for q in layer.parameters() if q.grad is not None)
    # explicit unit_dim=1 on the same layer is honoured (tokens as units), and differs
    reg.remove()
    reg = tt.attach(layer, {"linear1": tt.ActivationSimilarity(grid=(4, 4), unit_dim=1)})
    layer(x)
    tokens = TF.activation_similarity(cap1["y"].detach(), (4, 4), unit_dim=1)
    assert float(reg.penalty().detach()) == pytest.approx(float(tokens), rel=1e-10) and float(tokens) != pytest.approx(float(want))


def test_ambiguous_unit_dimension_asks_for_unit_dim():
    """A module that is not a Linear/Conv (here the LayerNorm after attention) gives (B, T, N)
    with T = N: the term cannot tell and says so at penalty time."""
    layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0, batch_first=True)
    reg = tt.attach(layer, {"norm1": tt.ActivationSimilarity(grid=(4, 4))})
    layer(torch.randn(2, 16, 16))
    with pytest.raises(ValueError, match=r"ActivationSimilarity on 'norm1': the unit dimension .* \(2, 16, 16\) is ambiguous.*unit_dim=-1"):
        reg.penalty()
    reg.remove()
    reg = tt.attach(layer, {"norm1": tt.ActivationSimilarity(grid=(4, 4), unit_dim=-1)})
    layer(torch.randn(2, 16, 16))
    assert torch.isfinite(reg.penalty())
    reg.remove()
    reg = tt.attach(layer, {"norm1": tt.ActivationSimilarity(grid=(4, 4))})
    layer(torch.randn(2, 5, 16))  # T ≠ N: a hint, not a silent wrong answer
    with pytest.raises(ValueError, match=r"last dimension has 16: pass unit_dim=-1"):
        reg.penalty()


def test_mha_out_proj_fails_at_attach_with_the_reason():
    layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0, batch_first=True)
    for term in (tt.ActivationSimilarity(grid=(4, 4)), tt.SpatialCorrelation(grid=(4, 4))):
        with pytest.raises(ValueError, match=r"'self_attn.out_proj'.*MultiheadAttention.*multi_head_attention_forward.*never runs.*'self_attn'"):
            tt.attach(layer, {"self_attn.out_proj": term})
    assert tt.attach(layer, {"self_attn.out_proj": tt.WeightSimilarity(grid=(4, 4))}).penalty() > 0  # its weights are used
    # the MultiheadAttention itself works: its output is out_proj's
    reg = tt.attach(layer, {"self_attn": tt.ActivationSimilarity(grid=(4, 4))})
    cap = _capture(layer.self_attn)
    layer(torch.randn(3, 7, 16))
    want = TF.activation_similarity(cap["y"][0].detach().reshape(-1, 16), (4, 4))
    assert float(reg.penalty().detach()) == pytest.approx(float(want), rel=1e-5)


def test_as_on_torchvision_vit():
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    vit = tv.models.VisionTransformer(image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16,
                                      mlp_dim=32, num_classes=10)
    block = "encoder.layers.encoder_layer_0"
    with pytest.raises(ValueError, match="never runs"):
        tt.attach(vit, {f"{block}.self_attention.out_proj": tt.ActivationSimilarity(grid=(4, 4))})
    reg = tt.attach(vit, {f"{block}.mlp.0": tt.ActivationSimilarity(grid=(4, 8), sign="squared"),
                          f"{block}.self_attention": tt.ActivationSimilarity(grid=(4, 4))})
    mods = dict(vit.named_modules())
    c_mlp, c_att = _capture(mods[f"{block}.mlp.0"]), _capture(mods[f"{block}.self_attention"])
    x = torch.randn(2, 3, 32, 32)
    vit(x)
    assert c_mlp["y"].shape == (2, 17, 32)  # 16 patches + the class token
    want = (TF.activation_similarity(c_mlp["y"].detach().reshape(-1, 32), (4, 8), sign="squared")
            + TF.activation_similarity(c_att["y"][0].detach().reshape(-1, 16), (4, 4)))
    p = reg.penalty()
    assert float(p.detach()) == pytest.approx(float(want), rel=1e-5)
    p.backward()


def test_activation_term_options_and_bad_inputs():
    t = tt.ActivationSimilarity(2.0, (3, 3), distance="cosine", sign="absolute", unit_dim=-1, sync=True)
    cfg = t.config()
    assert cfg["sign"] == "absolute" and cfg["unit_dim"] == -1 and cfg["sync"] is True
    assert "sign='absolute'" in repr(t) and "sync=True" in repr(t)
    assert tt.SpatialCorrelation(unit_dim=1, sync=True).config()["sync"] is True
    with pytest.raises(ValueError, match=r"ActivationSimilarity: sign must be one of"):
        tt.ActivationSimilarity(sign="abs")
    with pytest.raises(ValueError, match=r"sign='squared' needs an angular distance"):
        tt.ActivationSimilarity(distance="euclidean", sign="squared")
    with pytest.raises(TypeError, match=r"ActivationSimilarity: unit_dim must be an int, got float"):
        tt.ActivationSimilarity(unit_dim=1.0)
    with pytest.raises(TypeError, match=r"SpatialCorrelation: sync must be True or False, got str"):
        tt.SpatialCorrelation(sync="yes")


def test_spatial_correlation_validates_its_arguments():
    t = tt.SpatialCorrelation(grid=(4, 4), neighborhood=[2, 3], seed=7)
    assert t.neighborhood == (2, 3) and t.seed == 7
    assert t.config()["neighborhood"] == [2, 3] and t.config()["seed"] == 7
    assert tt.SpatialCorrelation(neighborhood=2).neighborhood == 2
    bad = [
        ({"seed": "x"}, TypeError, r"SpatialCorrelation: seed must be an int, got str \('x'\)"),
        ({"seed": 1.0}, TypeError, r"seed must be an int, got float"),
        ({"seed": True}, TypeError, r"seed must be an int, got bool"),
        ({"seed": -1}, ValueError, r"seed must be >= 0, got -1"),
        ({"neighborhood": (2,)}, ValueError,
         r"SpatialCorrelation: neighborhood must be an int or a pair \(kh, kw\) of ints, got 1 entries: \(2,\)"),
        ({"neighborhood": (2, 3, 4)}, ValueError, r"got 3 entries"),
        ({"neighborhood": 2.5}, TypeError,
         r"SpatialCorrelation: neighborhood must be None, an int >= 1 or a pair \(kh, kw\) of ints, got float \(2.5\)"),
        ({"neighborhood": "3"}, TypeError, r"neighborhood must be None.*got str"),
        ({"neighborhood": True}, TypeError, r"neighborhood must be None.*got bool"),
        ({"neighborhood": 0}, ValueError, r"neighborhood must be >= 1, got 0"),
        ({"neighborhood": (2, 0)}, ValueError, r"neighborhood\[1\] must be >= 1, got 0"),
        ({"neighborhood": (2, 2.0)}, TypeError, r"neighborhood\[1\] must be an int, got float"),
        ({"unit_dim": "1"}, TypeError, r"SpatialCorrelation: unit_dim must be an int, got str"),
    ]
    for kwargs, err, match in bad:
        with pytest.raises(err, match=match):
            tt.SpatialCorrelation(**kwargs)
    # the functional form takes the same values and gives the same errors
    with pytest.raises(TypeError, match=r"spatial_correlation: neighborhood must be None.*got float \(2.5\)"):
        TF.spatial_correlation(torch.randn(4, 16), (4, 4), neighborhood=2.5)
    with pytest.raises(ValueError, match=r"spatial_correlation: neighborhood must be an int or a pair"):
        TF.spatial_correlation(torch.randn(4, 16), (4, 4), neighborhood=(2,))


def test_distance_terms_validate_backend():
    for cls in (tt.WeightSimilarity, tt.ActivationSimilarity):
        assert cls(backend="Torch").backend == "Torch"  # any case, as resolve_backend takes it
        with pytest.raises(ValueError, match=rf"{cls.__name__}: backend must be one of \('auto', 'torch', 'triton'\), got 'cuda'"):
            cls(backend="cuda")
        with pytest.raises(TypeError, match=rf"{cls.__name__}: backend must be None or one of .*got int"):
            cls(backend=1)


def test_sync_without_distributed_is_the_local_loss():
    """sync=True gathers over torch.distributed ranks; without a process group it is the
    rank's own batch (the DDP semantics are tested with the all-gather)."""
    torch.manual_seed(0)
    model = nn.Sequential(tt.TopoLinear(5, (3, 3)))
    x = torch.randn(6, 5)
    a = tt.attach(model, {"0": tt.ActivationSimilarity(sync=True)})
    model(x)
    pa = a.penalty()
    a.remove()
    b = tt.attach(model, {"0": tt.ActivationSimilarity()})
    model(x)
    assert float(pa.detach()) == float(b.penalty().detach())
