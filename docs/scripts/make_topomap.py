"""Make the picture on the docs' front page: class-mean response maps of a topographic layer.

Trains two copies of ``tt.models.mnist_cnn()`` on the offline MNIST sample (``tt.data.mnist_sample``)
for a few hundred steps on the CPU — a control and one with the Weight-Similarity loss on
``fc1`` (121 units on an 11 × 11 grid) — then draws, for each digit class, the mean pre-ReLU
response of ``fc1`` to the test digits of that class (digits 0-4 are drawn), and each map's
Moran's I (the mean over all ten classes is in the row label).

    python docs/scripts/make_topomap.py            # writes docs/_static/topomap.png (~1.5 min)
    python docs/scripts/make_topomap.py --steps 60 # quicker, rougher

The docs build runs it only when the PNG is missing (or ``TORCHTOPO_DOCS_REGEN=1``).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import torchtopo as tt  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "_static" / "topomap.png"


def morans_i(maps: torch.Tensor, grid: tt.Grid) -> torch.Tensor:
    """Moran's I of each (H·W) map with binary neighbour weights (Moran 1950)."""
    i, j = grid.neighbor_pairs()
    z = maps - maps.mean(dim=1, keepdim=True)
    num = 2 * (z[:, i] * z[:, j]).sum(dim=1)  # each unordered pair counted both ways
    w = 2 * i.numel()
    return grid.n_units / w * num / z.square().sum(dim=1).clamp_min(1e-12)


def train(strength: float, steps: int, seed: int, x: torch.Tensor, y: torch.Tensor, lr: float = 1e-3):
    torch.manual_seed(seed)
    model = tt.models.mnist_cnn()
    terms = {"fc1": tt.WeightSimilarity(strength=strength, distance="correlation")} if strength else {}
    reg = tt.attach(model, terms)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (64,), generator=g)
        loss = F.cross_entropy(model(x[idx]), y[idx]) + reg.penalty()
        opt.zero_grad()
        loss.backward()
        opt.step()
    reg.remove()
    return model.eval()


@torch.no_grad()
def class_maps(model, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, float]:
    pre = model.fc1(model.embed(x))  # (n, 121) pre-ReLU
    acc = float((model(x).argmax(1) == y).float().mean())
    return torch.stack([pre[y == c].mean(0) for c in range(10)]), acc


def lam_of(label: str) -> float:
    return float(label.split("=")[-1]) if "=" in label else 0.0


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--strength", type=float, default=5.0)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    xtr, ytr = tt.data.mnist_sample_tensors("train")
    xte, yte = tt.data.mnist_sample_tensors("test")
    grid = tt.Grid(11, 11)

    import matplotlib.pyplot as plt

    rows = []
    for label, lam in (("control", 0.0), (f"Weight Similarity, λ = {args.strength:g}", args.strength)):
        model = train(lam, args.steps, args.seed, xtr, ytr, args.lr)
        maps, acc = class_maps(model, xte, yte)
        rows.append((label, maps, acc, morans_i(maps, grid)))

    # legible at the docs' page width (~750 px): 2 rows x 5 digits, large type, a colour bar
    digits = list(range(5))
    fig, axes = plt.subplots(2, len(digits), figsize=(8.4, 4.3), constrained_layout=True)
    for r, (label, maps, acc, mi) in enumerate(rows):
        for k, c in enumerate(digits):
            ax = axes[r, k]
            m = maps[c].reshape(11, 11)
            m = (m - m.mean()) / m.std().clamp_min(1e-8)
            im = ax.imshow(m.numpy(), cmap="RdBu_r", vmin=-2.5, vmax=2.5, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"digit {c}", fontsize=13)
            ax.set_xlabel(f"I = {float(mi[c]):.2f}", fontsize=12, labelpad=3)
        name = "control" if lam_of(label) == 0 else "Weight Similarity"
        axes[r, 0].set_ylabel(f"{name}\nmean I = {float(mi.mean()):.2f}", fontsize=12)
        rows[r] = (label, float(mi.mean()), acc)
    bar = fig.colorbar(im, ax=axes, shrink=0.85, pad=0.02)
    bar.set_label("response (SD from the map's mean)", fontsize=11)
    bar.ax.tick_params(labelsize=10)
    fig.suptitle("fc1 (11 × 11 units): mean pre-ReLU response per digit class", fontsize=13)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=150)
    plt.close(fig)
    meta = {
        "steps": args.steps,
        "strength": args.strength,
        "lr": args.lr,
        "seed": args.seed,
        "seconds": round(time.time() - t0, 1),
        "models": [{"label": l, "mean_morans_i": round(i, 3), "test_accuracy": round(a, 3)} for l, i, a in rows],
    }
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta, indent=1))
    return args.out


if __name__ == "__main__":
    main()
