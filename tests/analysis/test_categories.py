"""tt.analysis category measures (d′ selectivity, localisation, expert units) against brute-force definitions."""
import math

import numpy as np
import pytest
import torch

import torchtopo as tt
from torchtopo import analysis as A


# ----------------------------------------------------------------------------- selectivity
def test_selectivity_brute_force():
    g = torch.Generator().manual_seed(4)
    a = torch.randn(90, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (90,), generator=g)
    d = A.selectivity(a, y, 3)
    for c in range(3):
        for u in range(4):
            x1 = a[y == c, u].numpy()
            x0 = a[y != c, u].numpy()
            ref = (x1.mean() - x0.mean()) / math.sqrt((x1.var(ddof=1) + x0.var(ddof=1)) / 2)
            assert d[c, u].item() == pytest.approx(ref, rel=1e-9)


def test_selectivity_separable_and_errors():
    y = torch.arange(4).repeat_interleave(25)
    a = torch.randn(100, 4) * 0.1
    a[torch.arange(100), y] += 5.0  # unit k fires for class k
    d = A.selectivity(a, y)
    assert (d.diagonal() > 10).all()
    off = d[~torch.eye(4, dtype=torch.bool)]
    assert (off < 0).all()
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        A.selectivity(a, y.float())
    with pytest.raises(ValueError, match="labels has 99 entries but activations has 100"):
        A.selectivity(a, y[:99])
    with pytest.raises(ValueError, match="num_classes is 2"):
        A.selectivity(a, y, 2)


def test_localization_and_experts():
    g = tt.Grid(8, 8)
    pos = g.positions
    clustered = ((pos[:, 0] < 3) & (pos[:, 1] < 3))[None]
    corners = torch.zeros(1, 64, dtype=torch.bool)
    corners[0, [0, 7, 56, 63]] = True
    score = A.localization_score(torch.cat([clustered, corners]), g)
    assert score[0] > 0.4 and score[1] < -0.5
    # brute-force: mean distance among the set vs all pairs
    idx = clustered[0].nonzero().flatten().tolist()
    d_set = np.mean([math.dist(pos[i].tolist(), pos[j].tolist()) for i in idx for j in idx if i != j])
    d_all = np.mean([math.dist(pos[i].tolist(), pos[j].tolist()) for i in range(64) for j in range(64) if i != j])
    assert score[0].item() == pytest.approx(1 - d_set / d_all, rel=1e-5)
    rnd = torch.zeros(200, 64, dtype=torch.bool)
    perm = torch.rand(200, 64, generator=torch.Generator().manual_seed(0)).argsort(1)[:, :10]
    rnd.scatter_(1, perm, True)
    assert abs(A.localization_score(rnd, g).mean().item()) < 0.03
    one = torch.zeros(1, 64, dtype=torch.bool)
    one[0, 3] = True
    assert math.isnan(A.localization_score(one, g).item())
    dprime = torch.where(clustered, 2.0, 0.0).repeat(2, 1)
    ex = A.expert_units(dprime, g, threshold=1.0)
    assert ex["count"].tolist() == [9, 9]
    assert ex["fraction"].item() == pytest.approx(9 / 64)
    assert ex["localization"][0].item() == pytest.approx(score[0].item())
    assert (ex["morans_i"] > 0.5).all()
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        A.localization_score(clustered.float(), g)
    with pytest.raises(ValueError, match="dprime must be 2-D"):
        A.expert_units(torch.randn(64), g)
