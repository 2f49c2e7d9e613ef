"""tt.analysis stimuli and tuning probes (gratings, symmetry, eccentricity) on units of known tuning."""
import math

import pytest
import torch
from torch import nn

from torchtopo import analysis as A


# ----------------------------------------------------------------------------- stimuli and probes
def test_grating_definition():
    gr = A.grating((9, 11), [0, 90], [0.1, 0.25], [0, 90], contrast=0.8, channels=2)
    assert gr.shape == (2, 2, 2, 2, 9, 11)
    assert gr.min() >= 0.1 - 1e-6 and gr.max() <= 0.9 + 1e-6
    h = gr[0, 0, 0, 0]  # θ = 0: horizontal stripes, varies along y only
    assert torch.allclose(h, h[:, :1].expand_as(h)) and float(h[:, 0].std()) > 0.1
    v = gr[1, 0, 0, 0]  # θ = 90: vertical stripes, varies along x only
    assert torch.allclose(v, v[:1].expand_as(v)) and float(v[0].std()) > 0.1
    # every pixel against the closed form: x right, y up, x′ = x sin θ − y cos θ
    for o, th in enumerate([0.0, 90.0]):
        for fi, f in enumerate([0.1, 0.25]):
            for p, ph in enumerate([0.0, 90.0]):
                for row in range(9):
                    for col in range(11):
                        x, y = col - 5, 4 - row
                        xp = x * math.sin(math.radians(th)) - y * math.cos(math.radians(th))
                        ref = 0.5 + 0.4 * math.cos(2 * math.pi * f * xp + math.radians(ph))
                        assert gr[o, fi, p, 1, row, col].item() == pytest.approx(ref, abs=1e-6)
    # θ = 45°: the stripes run up-right (constant along y = x)
    d = A.grating(9, 45.0, 0.13, 0.0, dtype=torch.float64)[0, 0, 0, 0]
    torch.testing.assert_close(torch.flip(d, (1,)).diagonal(), torch.ones(9, dtype=torch.float64))
    with pytest.raises(ValueError, match="contrast must be in"):
        A.grating(8, 0, contrast=2)
    with pytest.raises(ValueError, match="size must be"):
        A.grating(0, 0)


class _GratingUnits(nn.Module):
    """A linear layer whose units are zero-mean gratings at known orientations."""
    def __init__(self, oris, size=21, f=0.15):
        super().__init__()
        w = A.grating(size, oris, f, 0.0)[:, 0, 0, 0] - 0.5
        self.fc = nn.Linear(size * size, len(oris), bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(w.reshape(len(oris), -1))

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_orientation_tuning_recovers_known_preferences():
    oris = [0.0, 45.0, 90.0, 135.0]
    m = _GratingUnits(oris)
    out = A.orientation_tuning(m, "fc", size=21, orientations=8, spatial_freqs=[0.15], phases=8)
    assert out["preferred"].tolist() == oris
    assert (out["osi"] > 0.5).all() and out["osi"][[0, 2]].min() > 0.95  # diagonals alias on 21 px
    assert out["responses"].shape == (8, 4)
    with pytest.raises(ValueError, match="orientations must be >= 2"):
        A.orientation_tuning(m, "fc", size=21, orientations=1)


class _SymmetryUnit(nn.Module):
    def __init__(self):
        super().__init__()
        self.out = nn.Identity()

    def forward(self, x):
        asym = (x - x.flip(-1)).abs().flatten(1).sum(1, keepdim=True)
        return self.out(torch.cat([-asym, asym], 1))


def test_symmetry_probe():
    sym, asym = A.symmetry_stimuli(8, 12, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sym, sym.flip(-1))
    assert not torch.equal(asym, asym.flip(-1))
    d = A.symmetry_selectivity(_SymmetryUnit(), "out", n=32, size=12)
    assert d[0] > 2 and d[1] < -2


class _CentreUnit(nn.Module):
    def __init__(self, size=15):
        super().__init__()
        y = torch.arange(size) - (size - 1) / 2
        self.register_buffer("w", torch.exp(-(y[:, None] ** 2 + y[None] ** 2) / 8).flatten())
        self.out = nn.Identity()

    def forward(self, x):
        return self.out((x.flatten(1) * self.w).sum(1, keepdim=True))


def test_eccentricity_probe():
    stim, ecc = A.eccentricity_stimuli(15, 4, n_angles=4)
    assert stim.shape == (16, 1, 15, 15) and ecc[0] == 0
    r = A.eccentricity_tuning(_CentreUnit(), "out", size=15, eccentricities=5)
    assert r["preferred"].item() == 0 and r["slope"].item() < 0
    assert (r["responses"][1:, 0] <= r["responses"][:-1, 0] + 1e-6).all()
