"""Copies of an attached model, pickling, and saving/resuming a regularizer."""
import copy
import io
import json
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import torchtopo as tt
import torchtopo.functional as TF


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 9), nn.ReLU(), nn.Linear(9, 4))


def _x(n=8, seed=0):
    return torch.randn(n, 6, generator=torch.Generator().manual_seed(seed))


def _attached():
    m = _model()
    return m, tt.attach(m, {"0": tt.ActivationSimilarity(1.0, grid=(3, 3))})


def _fc_out(model, x):
    return model[0](x)


# ------------------------------------------------------------------ copies of the model
def test_deepcopy_forward_does_not_feed_the_original():
    m, reg = _attached()
    c = copy.deepcopy(m)
    x = _x()
    m(x)
    c(_x(seed=5))  # the copy runs last: it must not replace the original's capture
    p = reg.penalty()
    torch.testing.assert_close(p, TF.activation_similarity(_fc_out(m, x), (3, 3)))
    p.backward()
    assert m[0].weight.grad.abs().sum() > 0
    assert c[0].weight.grad is None


def test_copy_alone_feeds_nothing():
    m, reg = _attached()
    c = copy.deepcopy(m)
    c(_x())
    with pytest.raises(RuntimeError, match="no captured activations"):
        reg.penalty()


def test_averaged_model_ema_update():
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    m, reg = _attached()
    ema = AveragedModel(m, multi_avg_fn=get_ema_multi_avg_fn(0.9))
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    x = _x()
    for _ in range(2):
        out = m(x)
        ema(x)  # an evaluation forward of the EMA copy between forward and penalty
        loss = out.square().mean() + reg.penalty()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.update_parameters(m)
    assert reg.step == 2
    assert all(p.grad is None for p in ema.parameters())
    # the EMA weights moved towards the trained ones
    assert not torch.equal(ema.module[0].weight, _model()[0].weight)


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_model_pickles_while_attached_and_the_copy_is_inert(how):
    m, reg = _attached()
    if how == "pickle":
        c = pickle.loads(pickle.dumps(m))
    else:
        buf = io.BytesIO()
        torch.save(m, buf)
        buf.seek(0)
        c = torch.load(buf, weights_only=False)
    torch.testing.assert_close(c(_x()), m(_x()))  # the same function; m ran last
    c(_x(seed=1))
    torch.testing.assert_close(reg.penalty(), TF.activation_similarity(_fc_out(m, _x()), (3, 3)))
    # the unpickled model can be regularized on its own
    reg2 = tt.attach(c, {"0": tt.ActivationSimilarity(1.0, grid=(3, 3))})
    c(_x(seed=2))
    torch.testing.assert_close(reg2.penalty(), TF.activation_similarity(_fc_out(c, _x(seed=2)), (3, 3)))


def test_remove_leaves_no_live_hook_on_original_or_copies():
    m, reg = _attached()
    c = copy.deepcopy(m)
    n_before = len(c[0]._forward_hooks)
    reg.remove()
    assert len(m[0]._forward_hooks) == 0
    assert all(not h.alive for h in c[0]._forward_hooks.values())  # copies were never live
    assert n_before == 1
    c(_x())
    m(_x())
    assert reg._captured == {}


def test_deepcopy_of_regularizer_copies_the_model():
    m, reg = _attached()
    reg.step = 5
    reg2 = copy.deepcopy(reg)
    assert reg2.model is not m and reg2.step == 5
    assert reg2.config() == reg.config()
    x = _x()
    reg2.model(x)
    with pytest.raises(RuntimeError, match="no captured activations"):
        reg.penalty()  # the copy's forward fed the copy's regularizer only
    torch.testing.assert_close(reg2.penalty(), TF.activation_similarity(_fc_out(reg2.model, x), (3, 3)))
    # copied together (one memo), the regularizer copy hooks the model copy
    both = copy.deepcopy({"model": m, "reg": reg})
    assert both["reg"].model is both["model"]
    reg2.remove()
    m(x)
    assert "0" in reg._captured  # removing the copy leaves the original attached


def test_regularizer_refuses_pickle_and_shallow_copy_with_the_way_out():
    m, reg = _attached()
    with pytest.raises(TypeError, match=r"cannot be pickled.*state_dict\(\).*from_config"):
        pickle.dumps(reg)
    with pytest.raises(TypeError, match="cannot be pickled"):
        copy.copy(reg)


# --------------------------------------------------------------------------- persisting
def _all_terms_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3), tt.HaHActivation(), nn.Conv2d(8, 8, 3), nn.Flatten(), tt.TopoLinear(8 * 4 * 4, (3, 4)), nn.Linear(12, 3)
    )


def _all_terms():
    return {
        "0": tt.HebbianLoss(0.2, k_ratio=0.25, local=True),
        "2": [tt.SpatialCorrelation(0.1, grid=(2, 4), neighborhood=(2, 3), seed=3), tt.WeightSimilarity(0.3, grid=tt.Grid(2, 4, radius=1.5, metric="euclidean", wrap=True), distance="cosine")],
        "4": [tt.ActivationSimilarity(0.5, distance="sqeuclidean"), tt.WeightSimilarity(lambda s: 0.1 * s)],
    }


def _xi(seed):
    return torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_from_config_rebuilds_an_equal_regularizer():
    model = _all_terms_model()
    reg = tt.attach(model, _all_terms())
    reg.step = 7
    cfg = json.loads(json.dumps(reg.config()))
    with pytest.raises(ValueError, match=r"'4\[1\]' \(WeightSimilarity\) has a callable strength \(callable:.*<lambda>\).*strengths="):
        tt.Regularizer.from_config(model, cfg)
    sched = lambda s: 0.1 * s  # noqa: E731
    reg2 = tt.Regularizer.from_config(_all_terms_model(), cfg, strengths={"4[1]": sched})
    want = reg.config()
    want["terms"]["4[1]"]["strength"] = reg2.config()["terms"]["4[1]"]["strength"]
    assert reg2.config() == want
    assert reg2.step == 7 and reg2.terms["4[1]"].strength is sched
    # and it computes the same penalty
    for r in (reg, reg2):
        r.model(_xi(0))
    torch.testing.assert_close(reg2.penalty(), reg.penalty())


def test_from_config_errors():
    model = _all_terms_model()
    with pytest.raises(TypeError, match="config must be the dict of Regularizer.config"):
        tt.Regularizer.from_config(model, {"fc1": 1})
    cfg = {"step": 0, "terms": {"4": {"module": "4", "type": "Nope", "strength": 1.0}}}
    with pytest.raises(ValueError, match=r"term '4' has type 'Nope', which is not a torchtopo term \(.*WeightSimilarity"):
        tt.Regularizer.from_config(model, cfg)
    cfg = {"step": 0, "terms": {"4": {"module": "4", "type": "WeightSimilarity", "strength": 1.0, "colour": "red"}}}
    with pytest.raises(TypeError, match=r"term '4': the options \['colour'\] do not fit WeightSimilarity"):
        tt.Regularizer.from_config(model, cfg)
    cfg = {"step": 0, "terms": {"4": {"module": "4", "type": "WeightSimilarity", "strength": 1.0}}}
    with pytest.raises(ValueError, match=r"strengths given for \['5'\]"):
        tt.Regularizer.from_config(model, cfg, strengths={"5": lambda s: 1.0})
    with pytest.raises(ValueError, match=r"config\['step'\] must be >= 0, got -1"):
        tt.Regularizer.from_config(model, {**cfg, "step": -1})


def test_resumed_run_continues_schedule_and_window_draws(tmp_path):
    sched = lambda s: 0.1 * (s + 1)  # noqa: E731

    def terms():
        return {"2": tt.SpatialCorrelation(sched, grid=(2, 4), neighborhood=2, seed=0), "4": tt.WeightSimilarity(sched)}

    def run(reg, steps):
        vals = []
        for s in steps:
            reg.model(_xi(s))
            vals.append(float(reg.penalty().detach()))
        return vals

    straight = tt.attach(_all_terms_model(), terms())
    want = run(straight, range(6))

    first = tt.attach(_all_terms_model(), terms())
    got = run(first, range(3))
    torch.save({"reg": first.state_dict(), "config": first.config()}, tmp_path / "ckpt.pt")
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert saved["reg"]["step"] == 3
    resumed = tt.Regularizer.from_config(_all_terms_model(), saved["config"], strengths={"2": sched, "4": sched})
    resumed.load_state_dict(saved["reg"])
    got += run(resumed, range(3, 6))
    assert got == pytest.approx(want, rel=1e-6)
    # without the term state the window draws restart: the values differ
    fresh = tt.attach(_all_terms_model(), terms())
    fresh.step = 3
    assert run(fresh, range(3, 6)) != pytest.approx(want[3:], rel=1e-6)


def test_load_state_dict_errors():
    reg = tt.attach(_all_terms_model(), {"4": tt.WeightSimilarity(1.0)})
    with pytest.raises(TypeError, match=r"state must be a dict with 'step' and 'terms'"):
        reg.load_state_dict({"step": 1})
    with pytest.raises(ValueError, match=r"saved terms \['5'\] do not match this regularizer's \['4'\]"):
        reg.load_state_dict({"step": 1, "terms": {"5": {}}})
    with pytest.raises(TypeError, match=r"state\['step'\] must be an int, got str"):
        reg.load_state_dict({"step": "1", "terms": {"4": {}}})
    reg.load_state_dict({"step": 4, "terms": {"4": {}}})
    assert reg.step == 4


def test_dropped_regularizer_leaves_no_hook():
    import gc

    m = _model()
    tt.attach(m, {"0": tt.ActivationSimilarity(1.0, grid=(3, 3))})
    gc.collect()
    assert len(m[0]._forward_hooks) == 0


def test_config_and_state_of_a_wrapped_model_rebuild_on_the_plain_model():
    wrapper = nn.Module()
    wrapper.module = _all_terms_model()  # the DistributedDataParallel / DataParallel layout
    sched = lambda s: 1.0  # noqa: E731
    reg = tt.attach(wrapper, {"module.2": tt.SpatialCorrelation(sched, grid=(2, 4), neighborhood=2, seed=0), "4": tt.WeightSimilarity(0.5)})
    wrapper.module(_xi(0))
    reg.penalty()
    plain = _all_terms_model()
    again = tt.Regularizer.from_config(plain, reg.config(), strengths={"module.2": sched})
    assert [e.module for e in again._entries] == [plain[2], plain[4]]
    again.load_state_dict(reg.state_dict())
    assert again.step == 1
    torch.testing.assert_close(again.terms["2"]._generator.get_state(), reg.terms["module.2"]._generator.get_state())


def test_every_term_type_and_option_survives_config_round_trip():
    from torchtopo._hooks import term_types

    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Flatten(), nn.Linear(8 * 6 * 6, 9))
    terms = {
        "0": [tt.HebbianLoss(0.2, k_ratio=0.25, demote=0.3, local=False), tt.SpatialCorrelation(0.1, grid=(2, 4), neighborhood=(1, 3), seed=4)],
        "2": [
            tt.ActivationSimilarity(0.5, grid=tt.Grid(3, 3, wrap=True), distance="cosine", sign="squared", unit_dim=-1, sync=True),
            tt.WeightSimilarity(0.3, grid=(3, 3), distance="sqeuclidean"),
        ],
    }
    reg = tt.attach(model, terms)
    assert {type(t).__name__ for t in reg.terms.values()} == set(term_types(tt.Term))  # all of them
    cfg = json.loads(json.dumps(reg.config()))
    again = tt.Regularizer.from_config(nn.Sequential(nn.Conv2d(1, 8, 3), nn.Flatten(), nn.Linear(8 * 6 * 6, 9)), cfg)
    assert again.config() == reg.config()
