"""Lateral-kernel analyses: selectivity curve and association field (Bertoni et al., Front. Comput. Neurosci. 2021)."""
from __future__ import annotations

import math

import pytest
import torch

from torchtopo.analysis import (
    association_field,
    lateral_selectivity,
    plot_association_field,
    plot_lateral_selectivity,
    plot_unit_association_fields,
)


def _axial(a, b):
    d = abs(a - b) % math.pi
    return min(d, math.pi - d)


@pytest.mark.parametrize("measure", ["sum", "positive", "abs"])
def test_selectivity_matches_loop_oracle(measure):
    g = torch.Generator().manual_seed(0)
    C, L, bins = 7, 3, 4
    K = torch.randn(C, C, L, L, generator=g, dtype=torch.float64)
    th = torch.rand(C, generator=g, dtype=torch.float64) * math.pi
    mask = torch.tensor([True, True, False, True, True, True, False])
    r = lateral_selectivity(K, th, mask=mask, measure=measure, bins=bins, n_permutations=0)
    m = {"sum": lambda v: v, "positive": lambda v: max(v, 0.0), "abs": abs}[measure]
    deltas, strengths = [], []
    for i in range(C):
        for j in range(C):
            if i == j or not (mask[i] and mask[j]):
                continue
            s = sum(m(float(K[i, j, a, b])) for a in range(L) for b in range(L))
            deltas.append(_axial(float(th[i]), float(th[j])))
            strengths.append(s)
    assert r["strength"].numel() == len(strengths) == 20
    torch.testing.assert_close(torch.sort(r["strength"]).values, torch.sort(torch.tensor(strengths, dtype=torch.float64)).values)
    for b in range(bins):
        lo, hi = b * (math.pi / 2) / bins, (b + 1) * (math.pi / 2) / bins
        vals = [s for d, s in zip(deltas, strengths) if (lo < d <= hi) or (b == 0 and d == 0)]
        assert int(r["count"][b]) == len(vals)
        if vals:
            assert abs(float(r["mean"][b]) - sum(vals) / len(vals)) < 1e-10
    x = torch.tensor(deltas, dtype=torch.float64)
    y = torch.tensor(strengths, dtype=torch.float64)
    pr = ((x - x.mean()) * (y - y.mean())).sum() / torch.sqrt(((x - x.mean()) ** 2).sum() * ((y - y.mean()) ** 2).sum())
    assert abs(float(r["r"]) - float(pr)) < 1e-10
    assert torch.isnan(r["p_value"])


def test_selectivity_detects_similarity_structure():
    g = torch.Generator().manual_seed(1)
    C = 24
    th = torch.rand(C, generator=g) * math.pi
    d = torch.remainder(th[:, None] - th[None, :], math.pi)
    d = torch.minimum(d, math.pi - d)
    K = torch.exp(-(d / 0.3) ** 2)[:, :, None, None] * torch.ones(1, 1, 3, 3) + 0.05 * torch.randn(C, C, 3, 3, generator=g)
    r = lateral_selectivity(K, th, n_permutations=300)
    assert float(r["r"]) < -0.7 and float(r["p_value"]) < 0.01 and float(r["iso_minus_orth"]) > 0
    assert r["mean"][0] > r["mean"][-1]
    # the same K with no relation to orientation (shuffled units): no selectivity
    perm = torch.randperm(C, generator=g)
    r2 = lateral_selectivity(K, th[perm], n_permutations=300)
    assert abs(float(r2["r"])) < abs(float(r["r"])) / 2


def _field_kernel(th, L, where):
    """Excitatory K between iso-oriented channels only, at displacements along ('axial') or across
    ('flank') each target's preferred edge θ (the stripes' orientation; x right, y up)."""
    C = th.numel()
    K = torch.zeros(C, C, L, L, dtype=torch.float64)
    c = L // 2
    for i in range(C):
        phi = float(th[i]) + (0.0 if where == "axial" else math.pi / 2)
        for t in (-2, -1, 1, 2):
            dx, dy = round(t * math.cos(phi)), round(t * math.sin(phi))
            for j in range(C):
                if j != i and _axial(float(th[i]), float(th[j])) < 0.1:
                    K[i, j, c - dy, c + dx] = 1.0  # row index grows downwards: y up is c − dy
    return K


@pytest.mark.parametrize("base", [0.0, math.pi / 4])  # π/4: an edge up-right, which only y up reads as axial
@pytest.mark.parametrize("where, sign", [("axial", 1), ("flank", -1)])
def test_association_field_indices(where, sign, base):
    th = base + torch.tensor([0.0, 0.02, math.pi / 2, math.pi / 2 - 0.03, 0.05, math.pi / 2 + 0.04], dtype=torch.float64)
    K = _field_kernel(th, 5, where)
    f = association_field(K, th)
    assert sign * float(f["coaxial_index"]) > 0.9
    if where == "axial":
        assert float(f["cocircularity"]) > 0.9  # co-axial and parallel: δ = 0 = 2α
    # the pooled field holds all the excitatory off-centre strength
    assert abs(float(f["strength"].sum()) - float(K.clamp_min(0).sum())) < 1e-9
    # rotated into the target's frame, co-axial sources lie on the x axis (y_r ≈ 0; θ_i ≠ 0 is rounded)
    if where == "axial":
        assert float(f["y"][f["weight"] > 0].abs().max()) < 0.15
    size = f["strength"].shape[0]
    assert size == 2 * math.ceil(2 * math.sqrt(2)) + 1


def test_association_field_ignores_inhibition_and_self():
    th = torch.tensor([0.1, 1.0, 2.0])
    K = -torch.ones(3, 3, 3, 3)
    for i in range(3):
        K[i, i] = 5.0
    f = association_field(K, th)
    assert float(f["strength"].sum()) == 0.0
    assert float(f["coaxial_index"]) == 0.0 and float(f["cocircularity"]) == 0.0


def test_plots_return_figures():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = torch.Generator().manual_seed(2)
    K = torch.randn(6, 6, 5, 5, generator=g)
    th = torch.rand(6, generator=g) * math.pi
    figs = [
        plot_lateral_selectivity(lateral_selectivity(K, th, n_permutations=10)),
        plot_association_field(association_field(K, th)),
        plot_unit_association_fields(K, th, [0, 3, 5], ncols=2),
    ]
    for fig in figs:
        assert fig.axes
        plt.close(fig)


def test_bad_input():
    K = torch.randn(4, 4, 3, 3)
    th = torch.rand(4)
    with pytest.raises(ValueError, match=r"lateral_selectivity.*\(C, C, L, L\).*\(4, 3, 3, 3\)"):
        lateral_selectivity(torch.randn(4, 3, 3, 3), th)
    with pytest.raises(ValueError, match=r"association_field.*odd.*4"):
        association_field(torch.randn(4, 4, 4, 4), th)
    with pytest.raises(ValueError, match=r"orientations.*\(4,\).*\(5,\)"):
        lateral_selectivity(K, torch.rand(5))
    with pytest.raises(ValueError, match=r"mask.*bool.*\(4,\)"):
        lateral_selectivity(K, th, mask=torch.ones(4))
    with pytest.raises(ValueError, match=r"at least 2 channels.*1"):
        association_field(K, th, mask=torch.tensor([True, False, False, False]))
    with pytest.raises(ValueError, match=r"measure.*'max'"):
        lateral_selectivity(K, th, measure="max")
    with pytest.raises(ValueError, match=r"bins.*0"):
        lateral_selectivity(K, th, bins=0)
    with pytest.raises(TypeError, match=r"weight.*torch.Tensor"):
        lateral_selectivity(K.tolist(), th)
    with pytest.raises(ValueError, match=r"units.*\[\]"):
        plot_unit_association_fields(K, th, [])
