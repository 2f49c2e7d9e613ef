"""Every study's modules under torch.compile and DistributedDataParallel.

One matrix of small models — the topographic CNN with WS/AS terms, the HaH CNN with its layer-local
Hebbian terms, the LGN/lateral CNN with a WS term on its lateral layer, and a V1 front-end with a
topographic head — checked the same way.

All multi-process checks share one spawn of 2 gloo processes (starting them is the slow part): the
matrix under DDP, and the differentiable all-gather behind ``ActivationSimilarity(sync=True)``,
whose semantics are defined against one process on the concatenated batch: every rank gets the
same loss value, and after DDP averages the parameter gradients they equal the single-process
gradients of (task loss on the whole batch + penalty on the whole batch).
"""
import inspect
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import torchtopo as tt
import torchtopo.functional as TF
from torchtopo._distributed import all_gather_batch


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


# ------------------------------------------------------------------ 2 gloo processes
GRID = (3, 3)
UNEVEN = (3, 5)


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 9), nn.Tanh(), nn.Linear(9, 3)).double()


def _mlp_data(n=8):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def _uneven_full(dim):
    full = torch.randn(8, 9, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    return full if dim == 0 else full.T.contiguous()  # dim 1: (9, 8), stimuli along dim 1


def _has_sync():
    return "sync" in inspect.signature(tt.ActivationSimilarity).parameters


def _gather_cases(rank):
    from torch.nn.parallel import DistributedDataParallel as DDP

    x, y = _mlp_data()
    shard = slice(rank * 4, rank * 4 + 4)
    out = {}
    # DDP, equal shards: the penalty on the gathered activations of the first layer
    model = _mlp()
    ddp = DDP(model)
    acts = {}
    model[0].register_forward_hook(lambda m, i, o: acts.__setitem__("h", o))
    logits = ddp(x[shard])
    pen = TF.activation_similarity(all_gather_batch(acts["h"]), GRID)
    (F.cross_entropy(logits, y[shard]) + 0.7 * pen).backward()
    out["ddp"] = {"penalty": pen.detach(), "grads": _grads(model)}
    # uneven shards along dim 0 and dim 1, no DDP: the gradient reaching each shard
    for dim in (0, 1):
        a, b = UNEVEN
        full = _uneven_full(dim)
        mine = (full.narrow(dim, 0, a) if rank == 0 else full.narrow(dim, a, b)).clone().requires_grad_()
        gathered = all_gather_batch(mine, dim=dim)
        loss = TF.activation_similarity(gathered if dim == 0 else gathered.T, GRID, distance="cosine")
        loss.backward()
        out[f"uneven{dim}"] = {"gathered": gathered.detach(), "loss": loss.detach(), "grad": mine.grad.clone()}
    if _has_sync():  # through the term
        model = _mlp()
        ddp = DDP(model)
        reg = tt.attach(ddp, {"0": tt.ActivationSimilarity(0.7, grid=GRID, sync=True)})
        (F.cross_entropy(ddp(x[shard]), y[shard]) + reg.penalty()).backward()
        out["term"] = {"penalty": reg.losses()["0"], "grads": _grads(model)}
        reg.remove()
    return out


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
    out["gather"] = _gather_cases(rank)
    torch.save(out, f"{tmp}/grads{rank}.pt")
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    import torch.multiprocessing as mp

    tmp = tmp_path_factory.mktemp("gloo")
    # the spawned workers unpickle _ddp_worker by its module, tests.test_integration (importlib
    # import mode): the repository root must be on their sys.path, which spawn copies from here
    root = str(Path(__file__).resolve().parents[1])
    added = root not in sys.path
    if added:
        sys.path.insert(0, root)
    try:
        x, y = _data(8)
        mp.spawn(_ddp_worker, args=(2, str(tmp), x.double(), y), nprocs=2, join=True)
    finally:
        if added:
            sys.path.remove(root)
    return [torch.load(tmp / f"grads{r}.pt") for r in range(2)]


@pytest.mark.slow
def test_ddp_gloo_matches_single_process(ranks):
    x, y = _data(8)
    x = x.double()
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


def _gathered_reference():
    x, y = _mlp_data()
    model = _mlp()
    acts = {}
    model[0].register_forward_hook(lambda m, i, o: acts.__setitem__("h", o))
    logits = model(x)
    pen = TF.activation_similarity(acts["h"], GRID)
    (F.cross_entropy(logits, y) + 0.7 * pen).backward()
    return pen.detach(), _grads(model)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["ddp", "term"])
def test_all_gather_loss_and_ddp_gradients_equal_single_process_on_concatenated_batch(ranks, case):
    if case == "term" and "term" not in ranks[0]["gather"]:
        pytest.skip("ActivationSimilarity has no sync argument in this build")
    pen, grads = _gathered_reference()
    for r in range(2):
        got = ranks[r]["gather"][case]
        torch.testing.assert_close(got["penalty"], pen, rtol=1e-12, atol=1e-14)
        assert set(got["grads"]) == set(grads)
        for n in grads:
            torch.testing.assert_close(got["grads"][n], grads[n], rtol=1e-9, atol=1e-12, msg=f"rank {r}: {n}")


@pytest.mark.slow
@pytest.mark.parametrize("dim", [0, 1])
def test_all_gather_uneven_shards_in_rank_order_each_gets_its_gradient(ranks, dim):
    full = _uneven_full(dim).clone().requires_grad_()
    loss = TF.activation_similarity(full if dim == 0 else full.T, GRID, distance="cosine")
    loss.backward()
    a, b = UNEVEN
    for r, (start, n) in enumerate(((0, a), (a, b))):
        got = ranks[r]["gather"][f"uneven{dim}"]
        torch.testing.assert_close(got["gathered"], full.detach(), rtol=0, atol=0)
        torch.testing.assert_close(got["loss"], loss.detach(), rtol=1e-12, atol=1e-14)
        # every rank computed the same loss: the shard gets the sum over ranks, 2 × ∂L/∂x_r
        torch.testing.assert_close(got["grad"], 2 * full.grad.narrow(dim, start, n), rtol=1e-9, atol=1e-12)
