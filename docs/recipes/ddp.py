"""DistributedDataParallel with a torchtopo regularizer, launched by torchrun.

    torchrun --standalone --nproc_per_node=2 docs/recipes/ddp.py --steps 20 --out runs/ddp

Attach the terms to the plain model, *then* wrap it: the hooks sit on the layers, which run
inside DDP's forward as usual.  Every process adds ``reg.penalty()`` to its own loss, and DDP
averages the gradients, penalty included.  ``sync=True`` makes an activation term gather the
batch of every process, so that its statistics are those of the global batch.
"""
import argparse
import os

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

import torchtopo as tt


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps per process")
    ap.add_argument("--batch", type=int, default=32, help="batch size per process")
    ap.add_argument("--out", default="runs/ddp", help="folder of the final checkpoint")
    args = ap.parse_args(argv)

    use_cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if use_cuda else "gloo")  # reads torchrun's environment
    rank, world = dist.get_rank(), dist.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)

    torch.manual_seed(0)  # the same initial weights everywhere (DDP also broadcasts them)
    model = tt.models.mnist_cnn().to(device)
    reg = tt.attach(model, {  # on the plain model, before wrapping
        "fc1": tt.WeightSimilarity(strength=1.0, distance="cosine"),
        # sync=True: correlations over the global batch (gathered from every process)
        "features.3": tt.ActivationSimilarity(grid=(8, 8), strength=0.5, sync=True),
    })
    ddp = DDP(model, device_ids=[local_rank] if use_cuda else None)
    opt = torch.optim.Adam(ddp.parameters(), lr=1e-3)

    # stand-in data: replace by your Dataset; the sampler gives each process its own shard
    n = args.steps * args.batch * world
    data = TensorDataset(torch.randn(n, 1, 28, 28), torch.randint(0, 10, (n,)))
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=args.batch, sampler=sampler)

    for epoch in range(1):
        sampler.set_epoch(epoch)
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            ce = F.cross_entropy(ddp(x), y)
            penalty = reg.penalty()  # same weights everywhere; all processes' batch
            opt.zero_grad(set_to_none=True)
            (ce + penalty).backward()  # DDP all-reduces (averages) every gradient
            opt.step()
    print(f"rank {rank}/{world}: step {reg.step}, cross-entropy {float(ce):.3f}, "
          f"penalty {float(penalty):.4f}", flush=True)

    if rank == 0:  # one process writes the checkpoint: the unwrapped model's weights
        os.makedirs(args.out, exist_ok=True)
        torch.save(model.state_dict(), os.path.join(args.out, "model.pt"))
    dist.barrier()
    reg.remove()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
