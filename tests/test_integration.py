"""Every study's modules under torch.compile and DistributedDataParallel.

One matrix of small models — the topographic CNN with WS/AS terms, the HaH CNN with its layer-local
Hebbian terms, the LGN/lateral CNN with a WS term on its lateral layer, and a V1 front-end with a
topographic head — checked the same way.
"""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import torchtopo as tt


def _topo():
    m = tt.models.mnist_cnn(dropout=0.0)
    return m, {"fc1": [tt.WeightSimilarity(0.5, distance="cosine"), tt.ActivationSimilarity(0.5)]}


def _hah():
    m = tt.models.hah_cnn(widths=(8, 16))
    return m, tt.hebbian_terms(m, strengths=0.05)


def _lgn():
    m = tt.models.lgn_cnn(channels=8, hidden=16)
    return m, {"v1.conv": tt.WeightSimilarity(0.1, grid=(2, 4), distance="correlation"), "v1": tt.ActivationSimilarity(0.1, grid=(2, 4))}


def _v1():
    front = tt.V1Front.mnist(noise=None, simple_channels=16, complex_channels=16)
    m = nn.Sequential(front, nn.Conv2d(front.out_channels, 16, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), tt.TopoLinear(16, (3, 4)), nn.ReLU(), nn.Linear(12, 10))
    return m, {"5": tt.ActivationSimilarity(0.3), "1": tt.WeightSimilarity(0.1, grid=(4, 4))}


BUILDERS = {"topographic": _topo, "hah": _hah, "lgn": _lgn, "v1": _v1}


def _data(n=8):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def _build(kind):
    torch.manual_seed(0)
    model, terms = BUILDERS[kind]()
    return model.eval(), terms


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_lateral_module_name_exists():
    # guards the matrix above against renames
    assert {"v1", "v1.conv"} <= set(dict(tt.models.lgn_cnn().named_modules()))


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_torch_compile_matches_eager(kind):
    x, y = _data()
    model, terms = _build(kind)
    reg = tt.attach(model, terms)
    eager = F.cross_entropy(model(x), y) + reg.penalty()
    eager.backward()
    want = _grads(model)
    assert want, "no gradients"
    model.zero_grad(set_to_none=True)
    compiled = torch.compile(model, backend="aot_eager")
    got_loss = F.cross_entropy(compiled(x), y) + reg.penalty()
    got_loss.backward()
    got = _grads(model)
    torch.testing.assert_close(got_loss, eager, rtol=1e-5, atol=1e-6)
    assert set(got) == set(want)
    for n in want:
        torch.testing.assert_close(got[n], want[n], rtol=1e-4, atol=1e-6, msg=n)
    reg.remove()


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_moves_with_to_and_autocast(kind):
    x, y = _data(4)
    model, terms = _build(kind)
    model = model.to(torch.float64)
    reg = tt.attach(model, terms)
    loss = F.cross_entropy(model(x.double()), y) + reg.penalty()
    assert loss.dtype == torch.float64
    loss.backward()
    model = model.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = F.cross_entropy(model(x), y) + reg.penalty()
    loss.backward()
    assert torch.isfinite(loss)


def _ddp_worker(rank, world, tmp, x, y):
    # float64 throughout: the comparison is about what is summed, not about summation order
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    dist.init_process_group("gloo", init_method=f"file://{tmp}/init", rank=rank, world_size=world)
    shard = slice(rank * 4, rank * 4 + 4)
    out = {}
    for kind in sorted(BUILDERS):
        model, terms = _build(kind)
        model = model.double()
        ddp = DDP(model)
        reg = tt.attach(ddp, terms)
        (F.cross_entropy(ddp(x[shard]), y[shard]) + reg.penalty()).backward()
        out[kind] = _grads(model)
        reg.remove()
    torch.save(out, f"{tmp}/grads{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_gloo_matches_single_process(tmp_path, monkeypatch):
    import torch.multiprocessing as mp

    # the spawned workers unpickle _ddp_worker by its module, tests.test_integration (importlib
    # import mode): the repository root must be on their sys.path, which spawn copies from here
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))

    x, y = _data(8)
    x = x.double()
    mp.spawn(_ddp_worker, args=(2, str(tmp_path), x, y), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"grads{r}.pt") for r in range(2)]
    for kind in sorted(BUILDERS):
        model, terms = _build(kind)
        model = model.double()
        reg = tt.attach(model, terms)
        for shard in (slice(0, 4), slice(4, 8)):  # DDP averages the shards' gradients
            (0.5 * (F.cross_entropy(model(x[shard]), y[shard]) + reg.penalty())).backward()
        want = _grads(model)
        for r in range(2):
            assert set(ranks[r][kind]) == set(want), kind
            for n in want:
                torch.testing.assert_close(ranks[r][kind][n], want[n], rtol=1e-9, atol=1e-12, msg=f"{kind} rank {r}: {n}")
