"""tt.adversarial: PGD (Madry et al., ICLR 2018), noise accuracy and sparsity statistics, the
evaluations of the HaH study (Cekic et al., arXiv:2202.13074)."""

import pytest
import torch
from torch import nn

import torchtopo as tt
from torchtopo import adversarial as adv

torch.set_num_threads(1)


def _model_and_data(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    x = torch.rand(8, 1, 6, 6)
    y = torch.randint(0, 3, (8,))
    return model, x, y


def _per_image_loss(model, x, y):
    with torch.no_grad():
        return nn.functional.cross_entropy(model(x), y, reduction="none")


@pytest.mark.parametrize("norm,eps", [("linf", 0.05), ("l2", 0.3)])
def test_pgd_increases_loss_and_respects_ball(norm, eps):
    model, x, y = _model_and_data()
    model.train()
    w_before = [p.detach().clone() for p in model.parameters()]
    xa = adv.pgd(model, x, y, eps=eps, norm=norm, steps=10, generator=torch.Generator().manual_seed(0))
    d = (xa - x).flatten(1)
    if norm == "linf":
        assert float(d.abs().max()) <= eps + 1e-6
    else:
        assert float(d.norm(dim=1).max()) <= eps + 1e-5
    assert xa.min() >= 0 and xa.max() <= 1
    la, l0 = _per_image_loss(model, xa, y), _per_image_loss(model, x, y)
    assert torch.all(la >= l0 - 1e-6) and float(la.mean()) > float(l0.mean())
    # no random start: the first step alone must beat a random point of the ball on average
    xn = adv.pgd(model, x, y, eps=eps, norm=norm, steps=1, random_start=False)
    assert float(_per_image_loss(model, xn, y).mean()) > float(l0.mean())
    # the model is left as it was
    assert model.training
    assert all(p.requires_grad and p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(w_before, model.parameters()))


def test_pgd_linear_model_reaches_the_optimum():
    """For a linear 2-class model the ℓ∞ / ℓ2 worst case is known in closed form: the margin
    drops by eps·‖w₁ − w₀‖₁ (ℓ∞) or eps·‖w₁ − w₀‖₂ (ℓ2), when no pixel hits [0, 1]."""
    torch.manual_seed(0)
    lin = nn.Linear(10, 2)
    x = torch.full((4, 10), 0.5)
    y = torch.zeros(4, dtype=torch.long)
    wd = (lin.weight[1] - lin.weight[0]).detach()
    with torch.no_grad():
        m0 = (lin(x)[:, 1] - lin(x)[:, 0])
    # (ℓ2 from a random start only converges geometrically to the optimum: start at x there)
    for norm, eps, drop, rs in (("linf", 0.01, 0.01 * wd.abs().sum(), True), ("l2", 0.05, 0.05 * wd.norm(), False)):
        xa = adv.pgd(lin, x, y, eps=eps, norm=norm, steps=30, random_start=rs)
        with torch.no_grad():
            m = lin(xa)[:, 1] - lin(xa)[:, 0]
        torch.testing.assert_close(m - m0, torch.full_like(m, float(drop)), rtol=1e-3, atol=1e-4)


def test_pgd_bad_input_and_eps_zero():
    model, x, y = _model_and_data()
    torch.testing.assert_close(adv.pgd(model, x, y, eps=0.0), x)
    with pytest.raises(ValueError, match="norm"):
        adv.pgd(model, x, y, eps=0.1, norm="l1")
    with pytest.raises(ValueError, match="eps"):
        adv.pgd(model, x, y, eps=-0.1)
    with pytest.raises(ValueError, match="steps"):
        adv.pgd(model, x, y, eps=0.1, steps=0)
    with pytest.raises(ValueError, match=r"y must be \(B,\)"):
        adv.pgd(model, x, y[:3], eps=0.1)
    with pytest.raises(TypeError, match="integer"):
        adv.pgd(model, x, y.float(), eps=0.1)


def test_bad_inputs_are_named():
    model, x, y = _model_and_data()
    for clip in ((1.0, 0.0), (0.5, 0.5)):
        with pytest.raises(ValueError, match=r"clip must be \(lo, hi\) with lo < hi"):
            adv.pgd(model, x, y, eps=0.1, clip=clip)
    with pytest.raises(TypeError, match="clip must be None or a pair"):
        adv.pgd(model, x, y, eps=0.1, clip=1.0)
    with pytest.raises(ValueError, match="clip.*finite"):
        adv.gaussian_noise_accuracy(model, x, y, clip=(0.0, float("inf")))
    xi = (x * 255).to(torch.uint8)
    for fn in (adv.accuracy, adv.pgd_accuracy, adv.pgd_robust, adv.gaussian_noise_accuracy):
        kw = {"eps": 0.1} if fn in (adv.pgd_accuracy, adv.pgd_robust) else {}
        with pytest.raises(TypeError, match=r"x \(images in \[0, 1\]\) must be a floating-point tensor, got dtype torch.uint8"):
            fn(model, xi, y, **kw)
        with pytest.raises(TypeError, match="must be a real tensor, got complex"):
            fn(model, x.to(torch.complex64), y, **kw)
        with pytest.raises(ValueError, match=r"one label per image\), got shape \(7,\)"):
            fn(model, x, y[:7], **kw)
        with pytest.raises(ValueError, match="at least one sample"):
            fn(model, x[:0], y[:0], **kw)


def test_accuracies_against_direct_count():
    model, x, y = _model_and_data(1)
    with torch.no_grad():
        want = 100.0 * float((model(x).argmax(1) == y).float().mean())  # percent
    assert adv.accuracy(model, x, y, batch_size=3) == pytest.approx(want)
    g = torch.Generator().manual_seed(5)
    xn = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    with torch.no_grad():
        want_n = 100.0 * float((model(xn).argmax(1) == y).float().mean())
    assert adv.gaussian_noise_accuracy(model, x, y, 0.2, seed=5) == pytest.approx(want_n)
    r0 = adv.pgd_accuracy(model, x, y, eps=0.0)
    assert r0 == pytest.approx(want)
    r = adv.pgd_accuracy(model, x, y, eps=0.3, steps=5, restarts=2, batch_size=3)
    assert 0.0 <= r <= want


def test_pgd_robust_per_image_criterion():
    """pgd_robust: False for every image the model gets wrong (never attacked), True only where
    every restart failed; restarts attack only the survivors, so with one seed the masks of more
    restarts are subsets of fewer; pgd_accuracy is its share in percent."""
    model, x, y = _model_and_data(2)
    with torch.no_grad():
        clean = model(x).argmax(1) == y
    assert 0 < int(clean.sum()) < x.shape[0]  # some right, some wrong: both branches run
    assert torch.equal(adv.pgd_robust(model, x, y, eps=0.0), clean)
    m1 = adv.pgd_robust(model, x, y, eps=0.2, steps=3, restarts=1, seed=4, batch_size=3)
    m3 = adv.pgd_robust(model, x, y, eps=0.2, steps=3, restarts=3, seed=4, batch_size=3)
    assert m1.dtype == torch.bool and m1.shape == (x.shape[0],)
    assert not bool((m1 & ~clean).any()) and not bool((m3 & ~m1).any())
    assert adv.pgd_accuracy(model, x, y, eps=0.2, steps=3, restarts=3, seed=4, batch_size=3) == pytest.approx(
        100.0 * float(m3.float().mean()))
    # a True image survives the same attack run directly on it (the per-image check is exact)
    idx = clean.nonzero().flatten()
    g = torch.Generator().manual_seed(4)
    xa = adv.pgd(model, x[idx[:3]], y[idx[:3]], eps=0.2, steps=3, generator=g)
    with torch.no_grad():
        direct = model(xa).argmax(1) == y[idx[:3]]
    assert torch.equal(adv.pgd_robust(model, x[idx[:3]], y[idx[:3]], eps=0.2, steps=3, seed=4), direct)
    with pytest.raises(ValueError, match="restarts"):
        adv.pgd_robust(model, x, y, eps=0.1, restarts=0)
    with pytest.raises(ValueError, match="eps"):
        adv.pgd_robust(model, x, y, eps=-0.1)


def test_sparsity_stats_against_direct_computation():
    torch.manual_seed(0)
    blk = tt.HaHBlock(1, 10, keep=0.2)
    model = nn.Sequential(blk)
    x = torch.rand(6, 1, 8, 8)
    s = adv.sparsity_stats(model, x, ["0.act", "0.conv"], batch_size=4)
    with torch.no_grad():
        a = blk(x)
    assert s["0.act"]["frac_zero"] == pytest.approx(float((a == 0).float().mean()), abs=1e-6)
    assert s["0.act"]["frac_zero"] >= 0.8 - 1e-6  # the threshold keeps at most 20 % per map
    pos = []
    for b in range(6):
        for i in range(8):
            for j in range(8):
                v = sorted((float(a[b, c, i, j]) for c in range(10)), reverse=True)
                if sum(v) > 0:
                    pos.append(v[0] / sum(v))  # ceil(0.1 * 10) = 1 channel
    assert s["0.act"]["top10_share"] == pytest.approx(sum(pos) / len(pos), rel=1e-5)
    with pytest.raises(ValueError, match="no module"):
        adv.sparsity_stats(model, x, ["nope"])


# ----------------------------------------------------------------------------- AutoAttack
def _ten_class_model(n=24, seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    x = torch.rand(n, 1, 6, 6)
    with torch.no_grad():
        y = model(x).argmax(1)  # clean accuracy 100 %
    return model, x, y


@pytest.mark.parametrize("norm,eps", [("Linf", 0.05), ("l2", 0.2)])
def test_autoattack_at_most_pgd(norm, eps):
    pytest.importorskip("torchattacks")
    model, x, y = _ten_class_model()
    model.train()
    pgd_acc = adv.pgd_accuracy(model, x, y, eps=eps, norm=norm.lower(), steps=20)
    aa = adv.autoattack(model, x, y, norm=norm, eps=eps, version="rand", batch_size=10)
    assert 0.0 <= aa <= pgd_acc < 100.0  # the ensemble is at least as strong as PGD here
    assert model.training and all(p.requires_grad and p.grad is None for p in model.parameters())
    assert adv.autoattack(model, x, y, eps=0.0) == 100.0


def test_autoattack_standard_version_runs():
    pytest.importorskip("torchattacks")
    model, x, y = _ten_class_model(n=4, seed=1)
    aa = adv.autoattack(model, x, y, eps=0.1, seed=3)
    assert aa <= adv.pgd_accuracy(model, x, y, eps=0.1)
    assert aa == adv.autoattack(model, x, y, eps=0.1, seed=3)  # seeded


def test_autoattack_counts_misclassified_images_as_wrong():
    pytest.importorskip("torchattacks")
    model, x, y = _ten_class_model(n=6, seed=2)
    y = y.clone()
    y[:2] = (y[:2] + 1) % 10  # two images the model gets wrong: never attacked, never counted right
    assert adv.accuracy(model, x, y) == pytest.approx(100 * 4 / 6)
    assert adv.autoattack(model, x, y, eps=0.05, version="rand", batch_size=4) <= 100 * 4 / 6 + 1e-9
    y[:] = (y + 1) % 10  # none right: nothing to attack
    assert adv.autoattack(model, x, y, eps=0.05, version="rand") == 0.0


def test_autoattack_bad_input():
    pytest.importorskip("torchattacks")
    model, x, y = _ten_class_model(n=4)
    with pytest.raises(ValueError, match="norm must be 'Linf' or 'L2', got 'L1'"):
        adv.autoattack(model, x, y, norm="L1", eps=0.1)
    with pytest.raises(ValueError, match="version must be one of"):
        adv.autoattack(model, x, y, eps=0.1, version="fast")
    with pytest.raises(ValueError, match=r"images in \[0, 1\]"):
        adv.autoattack(model, x * 3, y, eps=0.1)
    with pytest.raises(ValueError, match="eps"):
        adv.autoattack(model, x, y, eps=-1.0)
    m3, x3, y3 = _model_and_data()
    with pytest.raises(ValueError, match="at least 4 classes"):
        adv.autoattack(m3, x3, y3, eps=0.1)


def test_autoattack_without_torchattacks_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "torchattacks" or name.startswith("torchattacks."):
            raise ImportError("No module named 'torchattacks'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.delitem(__import__("sys").modules, "torchattacks", raising=False)
    model, x, y = _ten_class_model(n=4)
    with pytest.raises(ImportError, match=r"pip install 'torchtopo\[attacks\]'"):
        adv.autoattack(model, x, y, eps=0.1)
