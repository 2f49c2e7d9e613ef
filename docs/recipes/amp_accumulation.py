"""Plain PyTorch: bf16 autocast and gradient accumulation with a torchtopo regularizer.

    python docs/recipes/amp_accumulation.py            # 50 optimizer steps on random data

The regularizer is one more term of the loss: call ``reg.penalty()`` once per micro-batch,
right after that micro-batch's forward, and scale it like the rest of the loss;
``advance=False`` on all but the last micro-batch of a step keeps strength schedules counting
optimizer steps.
"""
import torch
import torch.nn.functional as F

import torchtopo as tt


def micro_step(model, reg, x, y, accum_steps, last, amp=True):
    """Forward + backward of one micro-batch; the gradients add up in ``.grad``.  ``last``:
    the optimizer steps after this one (the strength schedule advances once per step)."""
    device_type = x.device.type
    # bf16 needs no GradScaler (float16 on CUDA does: torch.amp.GradScaler)
    dtype = torch.bfloat16
    with torch.autocast(device_type, dtype=dtype, enabled=amp):
        ce = F.cross_entropy(model(x), y)
        # this micro-batch's activations (AS) and the current weights (WS)
        penalty = reg.penalty(advance=last)
        loss = ce + penalty
    (loss / accum_steps).backward()  # 1/n: the n micro-batches add up to one batch's mean
    return ce.detach(), penalty.detach()


def train(model, reg, loader, opt, accum_steps=4, amp=True):
    model.train()
    opt.zero_grad(set_to_none=True)
    for i, (x, y) in enumerate(loader):
        # one optimizer step per accum_steps micro-batches
        last = (i + 1) % accum_steps == 0
        ce, penalty = micro_step(model, reg, x, y, accum_steps, last, amp)
        if last:
            opt.step()
            opt.zero_grad(set_to_none=True)
    # micro-batches left over at the end (len(loader) not a multiple) are dropped here
    opt.zero_grad(set_to_none=True)
    return {"ce": float(ce), "penalty": float(penalty)}


def main(steps=50, micro_batch=16, accum_steps=4, amp=True):
    torch.manual_seed(0)
    model = tt.models.mnist_cnn()
    reg = tt.attach(model, {
        "fc1": tt.WeightSimilarity(strength=1.0, distance="cosine"),
        "features.3": tt.ActivationSimilarity(grid=(8, 8), strength=0.5),
    })
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    # stand-in data: replace by your DataLoader of micro-batches
    loader = [(torch.randn(micro_batch, 1, 28, 28), torch.randint(0, 10, (micro_batch,)))
              for _ in range(steps * accum_steps)]
    logs = train(model, reg, loader, opt, accum_steps, amp)
    print(logs, reg.losses())
    return model, reg, logs


if __name__ == "__main__":
    main()
