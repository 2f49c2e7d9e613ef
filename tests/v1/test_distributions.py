"""Sampled receptive-field parameters vs the published tables (De Valois et al. 1982; Ringach
2002; as tabulated by Barbulescu et al., arXiv:2310.10575), n >= 20,000."""
import math

import pytest
import torch
from scipy import stats

from torchtopo.v1 import distributions as D

# The tables, typed again from the publications (independent of the module's copy).
ORI_EDGES = [-22.5, 22.5, 67.5, 112.5, 157.5]
ORI_COUNTS = [66, 49, 77, 54]
SF_EDGES = [0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0, 5.6, 8.0, 11.2]
SF_ALL = [4, 4, 8, 25, 32, 26, 28, 12]
SF_SIMPLE = [4, 4, 8, 25, 33, 26, 28, 12, 8]
SF_COMPLEX = [0, 0, 9, 9, 7, 10, 23, 12, 14]
NXNY = [[2, 0, 1, 0, 0], [8, 9, 4, 1, 0], [1, 2, 19, 17, 3], [0, 0, 1, 7, 4], [0, 0, 0, 0, 0]]
N_EDGES = [10 ** e for e in [-1.0, -0.76, -0.52, -0.28, -0.04, 0.2]]
N = 20_000


@pytest.fixture(scope="module")
def bio():
    return D.sample_gabor_params(N, N, in_channels=3, sampling="biological", sf_max=11.5, seed=3)


@pytest.fixture(scope="module")
def bio_all():
    return D.sample_gabor_params(N, 0, sampling="biological", sf_max=9.0, sf_table="all", seed=4)


def _hist(values, edges):
    counts = [0] * (len(edges) - 1)
    v = values.tolist()
    for x in v:  # plain loop: the brute-force binning
        for i in range(len(edges) - 1):
            if edges[i] <= x < edges[i + 1] or (i == len(edges) - 2 and x == edges[-1]):
                counts[i] += 1
                break
    return counts


def _chi2_p(obs, probs):
    keep = [i for i, p in enumerate(probs) if p > 0]
    if sum(obs[i] for i in range(len(obs)) if i not in keep) > 0:
        return 0.0  # samples in a bin the table leaves empty: no match
    n = sum(obs)
    o = [obs[i] for i in keep]
    e = [n * probs[i] for i in keep]
    return stats.chisquare(o, e).pvalue


def _probs(counts):
    s = sum(counts)
    return [c / s for c in counts]


def test_tables_match_studies():
    assert list(D.ORIENTATION_EDGES) == ORI_EDGES and list(D.ORIENTATION_COUNTS) == ORI_COUNTS
    assert list(D.SF_EDGES) == SF_EDGES
    assert list(D.SF_COUNTS_ALL) == SF_ALL and list(D.SF_COUNTS_SIMPLE) == SF_SIMPLE
    assert list(D.SF_COUNTS_COMPLEX) == SF_COMPLEX
    assert [list(r) for r in D.NXNY_COUNTS] == NXNY and sum(map(sum, NXNY)) == 79
    assert D.NXNY_EDGES == pytest.approx(N_EDGES)
    for key in ("orientation", "spatial_frequency", "nx_ny", "sf_corr"):
        assert len(D.CITATIONS[key]) > 20


def test_orientation_chi2(bio):
    th = bio["theta_deg"]
    assert float(th.min()) >= 0 and float(th.max()) < 180
    folded = torch.where(th >= 157.5, th - 180, th)
    assert _chi2_p(_hist(folded, ORI_EDGES), _probs(ORI_COUNTS)) > 1e-3
    # uniform within a bin: KS against the piecewise-uniform CDF, inside the 90-degree bin
    inb = folded[(folded >= 67.5) & (folded < 112.5)]
    assert stats.kstest(inb.numpy(), "uniform", args=(67.5, 45.0)).pvalue > 1e-3


def test_phase_uniform(bio):
    assert stats.kstest(bio["phase_deg"].numpy(), "uniform", args=(0, 360)).pvalue > 1e-3


@pytest.mark.parametrize("kind,counts", [("simple", SF_SIMPLE), ("complex", SF_COMPLEX)])
def test_sf_chi2_by_cell_type(bio, kind, counts):
    sel = bio["is_complex"] if kind == "complex" else ~bio["is_complex"]
    sf = bio["sf_cpd"][sel]
    assert sf.numel() == N
    assert _chi2_p(_hist(sf, SF_EDGES), _probs(counts)) > 1e-3
    # log2-uniform within a bin
    lo, hi = 2.8, 4.0
    inb = sf[(sf >= lo) & (sf < hi)].log2()
    assert stats.kstest(inb.numpy(), "uniform", args=(math.log2(lo), math.log2(hi) - math.log2(lo))).pvalue > 1e-3


def test_sf_all_table_and_cut(bio_all):
    sf = bio_all["sf_cpd"]
    assert _chi2_p(_hist(sf, SF_EDGES[:9]), _probs(SF_ALL)) > 1e-3
    cut = D.sample_gabor_params(N, 0, sf_min=1.0, sf_max=5.0, sf_table="all", seed=5)["sf_cpd"]
    assert float(cut.min()) >= 1.0 and float(cut.max()) <= 5.0
    # the partial bin [4, 5.6) keeps log2(5/4)/log2(5.6/4) of its mass
    w = [0, 0, 8, 25, 32, 26, 28 * math.log2(5 / 4) / math.log2(5.6 / 4), 0]
    assert _chi2_p(_hist(cut, [0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0, 5.0, 8.0]), _probs(w)) > 1e-3


def test_nx_ny_joint(bio):
    nx, ny = bio["nx"], bio["ny"]
    rows = [sum(r) for r in NXNY]
    cols = [sum(c) for c in zip(*NXNY)]
    assert _chi2_p(_hist(nx, N_EDGES), _probs(rows)) > 1e-3
    assert _chi2_p(_hist(ny, N_EDGES), _probs(cols)) > 1e-3
    # the joint: 5x5 contingency against the table's cells
    ix = torch.bucketize(nx, torch.tensor(N_EDGES[1:-1], dtype=torch.float64), right=True)
    iy = torch.bucketize(ny, torch.tensor(N_EDGES[1:-1], dtype=torch.float64), right=True)
    joint = torch.zeros(5, 5)
    for a, b in zip(ix.tolist(), iy.tolist()):
        joint[a, b] += 1
    flat = [c for r in NXNY for c in r]
    assert _chi2_p(joint.flatten().long().tolist(), _probs(flat)) > 1e-3


def test_copula_correlation(bio, bio_all):
    for p in (bio_all,):
        r = float(torch.corrcoef(torch.stack([p["nx"].log(), p["sf_cpd"].log()]))[0, 1])
        assert r == pytest.approx(0.74, abs=0.02)
    r0 = D.sample_gabor_params(N, 0, sf_corr=0.0, sf_table="all", seed=1)
    assert abs(float(torch.corrcoef(torch.stack([r0["nx"].log(), r0["sf_cpd"].log()]))[0, 1])) < 0.03


def test_uniform_variants():
    u1 = D.sample_gabor_params(N, 0, sampling="uniform", sf_table="all", seed=2)
    assert stats.kstest(u1["theta_deg"].numpy(), "uniform", args=(0, 180)).pvalue > 1e-3
    assert stats.kstest(u1["sf_cpd"].log2().numpy(), "uniform", args=(math.log2(0.5), 4.0)).pvalue > 1e-3
    lo, span = -1.0, 1.2
    for k in ("nx", "ny"):
        assert stats.kstest(u1[k].log10().numpy(), "uniform", args=(lo, span)).pvalue > 1e-3

    def corr(p, a, b):
        return float(torch.corrcoef(torch.stack([p[a].log(), p[b].log()]))[0, 1])

    assert abs(corr(u1, "nx", "ny")) < 0.03 and abs(corr(u1, "nx", "sf_cpd")) < 0.03
    u2 = D.sample_gabor_params(N, 0, sampling="unif2", sf_table="all", seed=2)
    assert corr(u2, "nx", "ny") > 0.3 and abs(corr(u2, "nx", "sf_cpd")) < 0.03
    u3 = D.sample_gabor_params(N, 0, sampling="unif3", sf_table="all", seed=2)
    assert corr(u3, "nx", "ny") > 0.3 and corr(u3, "nx", "sf_cpd") > 0.6
    # the control does not match the biological tables (the chi-square test has power)
    th = torch.where(u1["theta_deg"] >= 157.5, u1["theta_deg"] - 180, u1["theta_deg"])
    assert _chi2_p(_hist(th, ORI_EDGES), _probs(ORI_COUNTS)) < 1e-6
    assert _chi2_p(_hist(u1["nx"], N_EDGES), _probs([sum(r) for r in NXNY])) < 1e-6


def test_channel_uniform_and_seed():
    p = D.sample_gabor_params(N, 0, in_channels=4, seed=0)
    counts = torch.bincount(p["channel"], minlength=4).tolist()
    assert stats.chisquare(counts).pvalue > 1e-3
    q = D.sample_gabor_params(N, 0, in_channels=4, seed=0)
    r = D.sample_gabor_params(N, 0, in_channels=4, seed=1)
    assert all(torch.equal(p[k], q[k]) for k in p)
    assert not torch.equal(p["sf_cpd"], r["sf_cpd"])


def test_global_rng_untouched():
    state = torch.get_rng_state()
    D.sample_gabor_params(100, 100, seed=0)
    assert torch.equal(state, torch.get_rng_state())


def test_binned_distribution_icdf_cdf_roundtrip():
    d = D.sf_distribution("complex", 0.0, 9.0)
    u = torch.linspace(0, 0.999, 101, dtype=torch.float64)
    v, _ = d.icdf(u)
    assert torch.allclose(d.cdf(v), u, atol=1e-9)
    assert float(v.min()) >= 1.0  # the first two complex bins are empty


@pytest.mark.parametrize("kw,match", [
    (dict(sampling="gaussian"), "sampling"),
    (dict(sf_table="foveal"), "sf_table"),
    (dict(in_channels=0), "in_channels"),
    (dict(sf_corr=1.0), "sf_corr"),
    (dict(sf_min=20.0, sf_max=30.0), "does not overlap"),
])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        D.sample_gabor_params(10, 10, **kw)
    with pytest.raises(ValueError, match="n_simple"):
        D.sample_gabor_params(-1, 10)
    with pytest.raises(ValueError, match="positive"):
        D.sample_gabor_params(0, 0)
