"""Topographic regularization: Weight Similarity (WS) vs Activation Similarity (AS).

Reproduces Truong & Hasson, "Beyond topography: topographic regularization improves robustness
and reshapes representations in convolutional neural networks" (STUDIES.md §1) with torchtopo:
the study CNN (``tt.models.mnist_cnn``: fc1 = 121 units on an 11×11 grid), trained as a control
(λ = 0) and with WS or AS on ``fc1`` at several strengths λ and seeds, then evaluated with
``tt.analysis`` and ``tt.robustness``.

    python examples/topographic_mnist.py --quick --out runs/topographic    # < 2 min on 2 cores
    python examples/topographic_mnist.py                                    # default grid
    python examples/topographic_mnist.py --full                             # 13 conditions × 10 models
    python examples/topographic_mnist.py --dataset cifar10 --data-root ~/data

Offline by default: the 4,000/1,000 real MNIST digits of ``tt.data.mnist_sample()``.  Writes
``report.md``, ``results.json`` and PNG figures into ``--out``; trained models are kept in
``--out/checkpoints`` and a rerun skips the ones already finished (``--no-resume`` retrains).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

import torchtopo as tt

try:
    from tqdm.auto import tqdm
except ImportError:  # pragma: no cover
    def tqdm(it=None, **kw):
        return it


# ------------------------------------------------------------------------------ configuration
def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/topographic_mnist", help="output folder (report.md, results.json, PNGs)")
    p.add_argument("--quick", action="store_true", help="control + WS + AS at λ=1, 1 seed, 3 epochs (< 2 min)")
    p.add_argument("--full", action="store_true", help="the paper's grid: control + WS/AS × λ∈{0.1,0.3,0.5,1,2,3}, 10 seeds, all epochs")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # CI smoke test
    p.add_argument("--dataset", default="mnist_sample", choices=["mnist_sample", "mnist", "cifar10"])
    p.add_argument("--data-root", default=None, help="folder with torchvision's MNIST / CIFAR-10 (no download)")
    p.add_argument("--lambdas", type=float, nargs="+", default=None, help="λ grid for WS and AS")
    p.add_argument("--seeds", type=int, default=None, help="models per condition")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--ws-distance", default=None, help="WS distance (default: correlation on MNIST, cosine on CIFAR-10)")
    p.add_argument("--as-distance", default="correlation")
    p.add_argument("--n-train", type=int, default=None, help="use only this many training images")
    p.add_argument("--n-test", type=int, default=None, help="use only this many test images")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-resume", action="store_true", help="retrain even if a checkpoint exists")
    p.add_argument("--no-plots", action="store_true")
    a = p.parse_args(argv)
    cifar = a.dataset == "cifar10"
    if a.full:
        lam, seeds, epochs = [0.1, 0.3, 0.5, 1.0, 2.0, 3.0], 10, (30 if cifar else 10)
    elif a.quick:
        lam, seeds, epochs = [1.0], 1, 3
    elif a.tiny:
        lam, seeds, epochs = [1.0], 1, 1
    else:
        lam, seeds, epochs = [0.3, 1.0, 3.0], 3, (30 if cifar else 10)
    a.lambdas = a.lambdas if a.lambdas is not None else lam
    a.seeds = a.seeds if a.seeds is not None else seeds
    a.epochs = a.epochs if a.epochs is not None else epochs
    if a.tiny:
        a.n_train = a.n_train or 640
        a.n_test = a.n_test or 200
    a.ws_distance = a.ws_distance or ("cosine" if cifar else "correlation")
    if a.dataset != "mnist_sample" and a.data_root is None:
        p.error(f"--dataset {a.dataset} needs --data-root DIR (torchtopo never downloads data)")
    if any(l <= 0 for l in a.lambdas):
        p.error("--lambdas must be positive (the control, λ = 0, is always trained)")
    return a


def conditions(args) -> List[Dict]:
    out = [{"name": "control", "method": "control", "lam": 0.0}]
    for method in ("WS", "AS"):
        for lam in args.lambdas:
            out.append({"name": f"{method}_{lam:g}", "method": method, "lam": float(lam)})
    return out


# ------------------------------------------------------------------------------ data and model
def load_data(args):
    """(x_train, y_train, x_test, y_test) with images in [0, 1]; the model normalises."""
    if args.dataset == "mnist_sample":
        xtr, ytr = tt.data.mnist_sample_tensors("train", normalize=False)
        xte, yte = tt.data.mnist_sample_tensors("test", normalize=False)
        mean, std = (tt.data.MNIST_MEAN,), (tt.data.MNIST_STD,)
    else:
        if args.dataset == "mnist":
            tr = tt.data.mnist(args.data_root, train=True, normalize=False)
            te = tt.data.mnist(args.data_root, train=False, normalize=False)
            mean, std = (tt.data.MNIST_MEAN,), (tt.data.MNIST_STD,)
        else:
            tr = tt.data.cifar10(args.data_root, train=True, normalize=False)
            te = tt.data.cifar10(args.data_root, train=False, normalize=False)
            mean, std = tt.data.CIFAR10_MEAN, tt.data.CIFAR10_STD

        def stack(ds, n):
            n = len(ds) if n is None else min(n, len(ds))
            loader = torch.utils.data.DataLoader(ds, batch_size=1000, shuffle=False)
            xs, ys, got = [], [], 0
            for x, y in loader:
                xs.append(x)
                ys.append(y)
                got += x.shape[0]
                if got >= n:
                    break
            return torch.cat(xs)[:n], torch.cat(ys)[:n]

        xtr, ytr = stack(tr, args.n_train)
        xte, yte = stack(te, args.n_test)
    if args.n_train is not None:
        xtr, ytr = xtr[: args.n_train], ytr[: args.n_train]
    if args.n_test is not None:
        xte, yte = xte[: args.n_test], yte[: args.n_test]
    return xtr, ytr, xte, yte, mean, std


def make_model(args, mean, std) -> nn.Module:
    """The study CNN with a Normalize layer first, so the model takes images in [0, 1]."""
    if args.dataset == "cifar10":
        m = tt.models.cifar_cnn()
    else:
        m = tt.models.mnist_cnn()
    m.features = nn.Sequential(tt.data.Normalize(mean, std), *m.features)
    return m


def make_term(cond, args):
    if cond["method"] == "WS":
        return tt.WeightSimilarity(strength=cond["lam"], distance=args.ws_distance)
    if cond["method"] == "AS":
        return tt.ActivationSimilarity(strength=cond["lam"], distance=args.as_distance)
    return None


def train_model(cond, seed, args, data, mean, std, desc=""):
    """Adam lr 1e-3, batch 64, a seeded 80/20 train/validation split, no augmentation."""
    xtr, ytr = data[0], data[1]
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(xtr.shape[0], generator=g)
    n_val = xtr.shape[0] // 5
    val_idx, tr_idx = perm[:n_val], perm[n_val:]
    model = make_model(args, mean, std).to(args.device)
    term = make_term(cond, args)
    reg = tt.attach(model, {"fc1": term}) if term is not None else None
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    bs = args.batch_size
    n_batches = tr_idx.numel() // bs  # drop the last incomplete batch (AS needs >= 2 stimuli)
    history = []
    for epoch in tqdm(range(args.epochs), desc=desc, leave=False):
        model.train()
        order = tr_idx[torch.randperm(tr_idx.numel(), generator=g)]
        tot_ce = torch.zeros((), device=args.device)
        tot_s = torch.zeros((), device=args.device)
        for b in range(n_batches):
            idx = order[b * bs : (b + 1) * bs]
            x, y = xtr[idx].to(args.device), ytr[idx].to(args.device)
            ce = F.cross_entropy(model(x), y)
            loss = ce
            if reg is not None:
                pen = reg.penalty()
                loss = ce + pen
                tot_s += pen.detach()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot_ce += ce.detach()
        val_acc = accuracy(model, xtr[val_idx], ytr[val_idx], args.device)
        history.append({"epoch": epoch + 1, "ce": float(tot_ce) / max(n_batches, 1),
                        "penalty": float(tot_s) / max(n_batches, 1), "val_acc": val_acc})
    if reg is not None:
        reg.remove()
    return model, history


@torch.no_grad()
def accuracy(model, x, y, device, transform=None, batch_size=500) -> float:
    model.eval()
    correct = 0
    for k in range(0, x.shape[0], batch_size):
        xb = x[k : k + batch_size].to(device)
        if transform is not None:
            xb = transform(xb)
        correct += int((model(xb).argmax(1) == y[k : k + batch_size].to(device)).sum())
    return 100.0 * correct / max(x.shape[0], 1)


# ------------------------------------------------------------------------------ evaluation
def evaluate(model, args, data) -> Dict:
    """Every per-model evaluation of STUDIES.md §1 that the library offers."""
    A = tt.analysis
    xte, yte = data[2], data[3]
    grid = model.fc1.grid
    acts, labels = A.collect_activations(model, "fc1", (xte, yte), batch_size=500, device=args.device)
    res: Dict = {"acc": accuracy(model, xte, yte, args.device)}
    res["morans_i"] = float(A.morans_i(acts, grid).mean())
    res["neighbor_r"] = float(A.neighbor_correlation(acts, grid))
    return res


# ------------------------------------------------------------------------------ aggregation
def mean_sd(vals):
    v = [x for x in vals if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not v:
        return float("nan"), float("nan")
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return m, sd


def summarise(results: Dict[str, List[Dict]], keys: List[str]) -> Dict[str, Dict[str, List[float]]]:
    out = {}
    for name, runs in results.items():
        out[name] = {k: list(mean_sd([r[k] for r in runs if k in r])) for k in keys}
        out[name]["n"] = len(runs)
    return out


def table(summary, conds, keys, fmt) -> str:
    head = "| condition | n | " + " | ".join(keys) + " |"
    sep = "|---|---|" + "---|" * len(keys)
    rows = [head, sep]
    for c in conds:
        s = summary.get(c["name"])
        if s is None:
            continue
        cells = []
        for k in keys:
            m, sd = s[k]
            cells.append(fmt.get(k, "{:.3f}").format(m) + (f" ± {fmt.get(k, '{:.3f}').format(sd)}" if s["n"] > 1 else ""))
        rows.append(f"| {c['name']} | {s['n']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


# ------------------------------------------------------------------------------ figures
def figures(args, models_by_cond, data, out) -> List[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    A = tt.analysis
    files = []
    xte, yte = data[2], data[3]
    names = list(models_by_cond)
    fig, axes = plt.subplots(len(names), 10, figsize=(12, 1.3 * len(names) + 0.5), squeeze=False)
    for r, name in enumerate(names):
        model = models_by_cond[name]
        acts, labels = A.collect_activations(model, "fc1", (xte, yte), batch_size=500, device=args.device)
        for c in range(10):
            ax = axes[r][c]
            sel = labels == c
            m = acts[sel].mean(0).reshape(11, 11) if sel.any() else torch.zeros(11, 11)
            ax.imshow(m.numpy(), cmap="viridis")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(str(c), fontsize=8)
            if c == 0:
                ax.set_ylabel(name, fontsize=7)
    fig.suptitle("mean pre-ReLU fc1 map per class (one model per condition)")
    fig.tight_layout()
    path = os.path.join(out, "maps_per_class.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    files.append(path)
    return files


# ------------------------------------------------------------------------------ main
def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), int(os.environ.get("OMP_NUM_THREADS", "64")))))
    out = args.out
    ckdir = os.path.join(out, "checkpoints")
    os.makedirs(ckdir, exist_ok=True)
    t0 = time.time()
    data = load_data(args)
    mean, std = data[4], data[5]
    conds = conditions(args)
    jobs = [(c, args.seed + s) for c in conds for s in range(args.seeds)]
    results: Dict[str, List[Dict]] = {c["name"]: [] for c in conds}
    first_model: Dict[str, nn.Module] = {}
    bar = tqdm(jobs, desc="models")
    for cond, seed in bar:
        tag = f"{cond['name']}_seed{seed}"
        ck = os.path.join(ckdir, tag + ".pt")
        model = None
        if not args.no_resume and os.path.exists(ck):
            blob = torch.load(ck, map_location="cpu", weights_only=False)
            if blob.get("epochs") == args.epochs and blob.get("dataset") == args.dataset:
                model = make_model(args, mean, std)
                model.load_state_dict(blob["state_dict"])
                model.to(args.device)
                history = blob["history"]
        if model is None:
            model, history = train_model(cond, seed, args, data, mean, std, desc=tag)
            torch.save({"state_dict": model.state_dict(), "history": history, "epochs": args.epochs,
                        "dataset": args.dataset, "condition": cond, "seed": seed}, ck)
        res = evaluate(model, args, data)
        res.update({"seed": seed, "val_acc": history[-1]["val_acc"] if history else None})
        results[cond["name"]].append(res)
        first_model.setdefault(cond["name"], model)
    keys = ["acc", "morans_i", "neighbor_r"]
    summary = summarise(results, keys)
    fmt = {"acc": "{:.2f}"}
    tab = table(summary, conds, keys, fmt)
    print()
    print(tab)
    files = [] if args.no_plots else figures(args, first_model, data, out)
    elapsed = time.time() - t0
    payload = {
        "config": {k: v for k, v in vars(args).items()},
        "conditions": conds,
        "results": results,
        "summary": summary,
        "figures": [os.path.basename(f) for f in files],
        "elapsed_s": elapsed,
    }
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(payload, f, indent=1, default=float)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("# Topographic regularization: WS vs AS (Truong & Hasson)\n\n")
        f.write(f"Dataset: {args.dataset}, {data[0].shape[0]} training / {data[2].shape[0]} test images; "
                f"{args.epochs} epochs, {args.seeds} seed(s) per condition, λ ∈ {args.lambdas}; "
                f"WS distance {args.ws_distance}, AS distance {args.as_distance}. Run time {elapsed:.0f} s.\n\n")
        f.write("acc: test accuracy (%); morans_i: Moran's I of each test image's 11×11 pre-ReLU fc1 map "
                "(8 neighbours), averaged; neighbor_r: mean Pearson r of neighbouring units over the test set.\n\n")
        f.write(tab + "\n\n")
        for p in files:
            f.write(f"![{os.path.basename(p)}]({os.path.basename(p)})\n\n")
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
