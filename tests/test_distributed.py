"""The differentiable all-gather behind ``ActivationSimilarity(sync=True)``, with 2 gloo processes.

The semantics are defined against one process on the concatenated batch: every rank gets the
same loss value, and after DistributedDataParallel averages the parameter gradients they equal
the single-process gradients of (task loss on the whole batch + penalty on the whole batch).
"""
import inspect
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import torchtopo as tt
import torchtopo.functional as TF
from torchtopo._distributed import all_gather_batch, is_distributed

GRID = (3, 3)
SHARDS = {"even": (4, 4), "uneven": (3, 5)}


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 9), nn.Tanh(), nn.Linear(9, 3)).double()


def _data(n=8):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _has_sync():
    return "sync" in inspect.signature(tt.ActivationSimilarity).parameters


def _worker(rank, world, tmp):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    dist.init_process_group("gloo", init_method=f"file://{tmp}/init", rank=rank, world_size=world)
    x, y = _data()
    out = {}
    # 1. DDP, equal shards: penalty on the gathered fc activations
    model = _model()
    ddp = DDP(model)
    acts = {}
    model[0].register_forward_hook(lambda m, i, o: acts.__setitem__("h", o))
    shard = slice(rank * 4, rank * 4 + 4)
    logits = ddp(x[shard])
    pen = TF.activation_similarity(all_gather_batch(acts["h"]), GRID)
    (F.cross_entropy(logits, y[shard]) + 0.7 * pen).backward()
    out["ddp"] = {"penalty": pen.detach(), "grads": _grads(model)}
    # 2. uneven shards along dim 0 and along dim 1, no DDP: the gradient reaching each shard
    for name, dim in (("uneven", 0), ("uneven_dim1", 1)):
        a, b = SHARDS["uneven"]
        full = torch.randn(8, 9, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        if dim == 1:
            full = full.T.contiguous()  # (9, 8): units along dim 1 are the stimuli split here
        mine = (full.narrow(dim, 0, a) if rank == 0 else full.narrow(dim, a, b)).clone().requires_grad_()
        gathered = all_gather_batch(mine, dim=dim)
        z = gathered if dim == 0 else gathered.T
        loss = TF.activation_similarity(z, GRID, distance="cosine")
        loss.backward()
        out[name] = {"gathered": gathered.detach(), "loss": loss.detach(), "grad": mine.grad.clone()}
    # 3. through the term, if ActivationSimilarity has sync
    if _has_sync():
        model = _model()
        ddp = DDP(model)
        reg = tt.attach(ddp, {"0": tt.ActivationSimilarity(0.7, grid=GRID, sync=True)})
        (F.cross_entropy(ddp(x[shard]), y[shard]) + reg.penalty()).backward()
        out["term"] = {"penalty": reg.losses()["0"], "grads": _grads(model)}
        reg.remove()
    torch.save(out, f"{tmp}/out{rank}.pt")
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    import torch.multiprocessing as mp

    tmp = tmp_path_factory.mktemp("gloo")
    # spawn unpickles _worker by its module (importlib import mode): the repository root must be
    # on the workers' sys.path, which spawn copies from this process
    root = str(Path(__file__).resolve().parents[1])
    import sys

    added = root not in sys.path
    if added:
        sys.path.insert(0, root)
    try:
        mp.spawn(_worker, args=(2, str(tmp)), nprocs=2, join=True)
    finally:
        if added:
            sys.path.remove(root)
    return [torch.load(tmp / f"out{r}.pt") for r in range(2)]


def _single_ddp_reference():
    x, y = _data()
    model = _model()
    acts = {}
    model[0].register_forward_hook(lambda m, i, o: acts.__setitem__("h", o))
    logits = model(x)
    pen = TF.activation_similarity(acts["h"], GRID)
    (F.cross_entropy(logits, y) + 0.7 * pen).backward()
    return pen.detach(), _grads(model)


@pytest.mark.slow
def test_ddp_loss_and_gradients_equal_single_process_on_concatenated_batch(ranks):
    pen, grads = _single_ddp_reference()
    for r in range(2):
        got = ranks[r]["ddp"]
        torch.testing.assert_close(got["penalty"], pen, rtol=1e-12, atol=1e-14)
        assert set(got["grads"]) == set(grads)
        for n in grads:
            torch.testing.assert_close(got["grads"][n], grads[n], rtol=1e-9, atol=1e-12, msg=f"rank {r}: {n}")


@pytest.mark.slow
@pytest.mark.parametrize("case", ["uneven", "uneven_dim1"])
def test_uneven_shards_gather_in_rank_order_and_each_gets_its_gradient(ranks, case):
    dim = 0 if case == "uneven" else 1
    full = torch.randn(8, 9, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    if dim == 1:
        full = full.T.contiguous()
    full = full.clone().requires_grad_()
    loss = TF.activation_similarity(full if dim == 0 else full.T, GRID, distance="cosine")
    loss.backward()
    a, b = SHARDS["uneven"]
    for r, (start, n) in enumerate(((0, a), (a, b))):
        got = ranks[r][case]
        torch.testing.assert_close(got["gathered"], full.detach(), rtol=0, atol=0)
        torch.testing.assert_close(got["loss"], loss.detach(), rtol=1e-12, atol=1e-14)
        # every rank computed the same loss: the shard gets Σ over ranks = 2 × ∂L/∂x_r
        torch.testing.assert_close(got["grad"], 2 * full.grad.narrow(dim, start, n), rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_activation_similarity_sync_term(ranks):
    if "term" not in ranks[0]:
        pytest.skip("ActivationSimilarity has no sync argument in this build")
    pen, grads = _single_ddp_reference()
    for r in range(2):
        got = ranks[r]["term"]
        torch.testing.assert_close(got["penalty"], pen, rtol=1e-12, atol=1e-14)
        for n in grads:
            torch.testing.assert_close(got["grads"][n], grads[n], rtol=1e-9, atol=1e-12, msg=f"rank {r}: {n}")


def test_single_process_is_the_identity():
    assert not is_distributed()
    x = torch.randn(4, 3, requires_grad=True)
    assert all_gather_batch(x) is x
    assert all_gather_batch(x, dim=-1) is x


def test_bad_arguments():
    with pytest.raises(TypeError, match=r"all_gather_batch: x must be a torch.Tensor, got list"):
        all_gather_batch([1.0, 2.0])
    with pytest.raises(TypeError, match=r"dim must be an int, got float"):
        all_gather_batch(torch.zeros(2, 3), dim=0.0)
    with pytest.raises(ValueError, match=r"dim must be in \[-2, 1\] for x of shape \(2, 3\), got 2"):
        all_gather_batch(torch.zeros(2, 3), dim=2)
    with pytest.raises(ValueError, match=r"dim must be in .*got 0"):
        all_gather_batch(torch.tensor(1.0))
