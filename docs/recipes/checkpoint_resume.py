"""Checkpoint and resume a run that uses a torchtopo regularizer.

    python docs/recipes/checkpoint_resume.py --steps 40 --save-at 20 --out runs/ckpt

A regularizer has state of its own: its ``step`` (where the strength schedules are) and the
terms' random generators (e.g. the window draws of ``SpatialCorrelation``).
``reg.state_dict()`` holds both and ``reg.load_state_dict()`` restores them; ``reg.config()``
describes the terms, so that ``tt.Regularizer.from_config(model, config)`` can rebuild them
without the code that declared them.  Everything loads with ``torch.load(weights_only=True)``.
"""
import argparse
import os

import torch
import torch.nn.functional as F

import torchtopo as tt


def warmup(step):  # a strength schedule: 0 -> 1 over the first 20 steps
    return min(1.0, step / 20)


def build(seed=0):
    torch.manual_seed(seed)
    model = tt.models.mnist_cnn()
    reg = tt.attach(model, {
        "fc1": tt.WeightSimilarity(strength=warmup, distance="cosine"),
        "features.3": tt.SpatialCorrelation(grid=(8, 8), neighborhood=4, seed=seed,
                                            strength=0.5),
    })
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return model, reg, opt


def batch(step, size=16):  # stand-in data, a function of the step: replace by your loader
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(size, 1, 28, 28, generator=g)
    return x, torch.randint(0, 10, (size,), generator=g)


def train(model, reg, opt, start, stop):
    model.train()
    for step in range(start, stop):
        x, y = batch(step)
        loss = F.cross_entropy(model(x), y) + reg.penalty()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def save(path, model, opt, reg, step):
    torch.save({
        "step": step,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "regularizer": reg.state_dict(),   # step + the terms' generators
        "regularizer_config": reg.config(),  # the terms, to rebuild them elsewhere
        "torch_rng": torch.get_rng_state(),  # dropout draws
    }, path)


def resume(path):
    ckpt = torch.load(path, weights_only=True)
    model, reg, opt = build()  # the same model, terms and optimizer as the first run ...
    model.load_state_dict(ckpt["model"])  # ... then their saved states
    opt.load_state_dict(ckpt["optimizer"])
    reg.load_state_dict(ckpt["regularizer"])
    torch.set_rng_state(ckpt["torch_rng"])
    return model, reg, opt, ckpt["step"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40, help="total optimizer steps")
    ap.add_argument("--save-at", type=int, default=20, help="step of the checkpoint")
    ap.add_argument("--out", default="runs/ckpt", help="folder of the checkpoint")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "checkpoint.pt")

    model, reg, opt = build()
    train(model, reg, opt, 0, args.save_at)
    save(path, model, opt, reg, args.save_at)
    reg.remove()  # (the first process ends here)

    model, reg, opt, step = resume(path)
    print(f"resumed at step {step}; the regularizer's step is {reg.step}, "
          f"WS strength {warmup(reg.step):.2f}")
    train(model, reg, opt, step, args.steps)
    print({k: round(float(v), 4) for k, v in reg.losses().items()})
    return model, reg


if __name__ == "__main__":
    main()
