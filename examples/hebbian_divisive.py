"""Sparse, strong activations: standard CNN vs HaH blocks (Hebbian/anti-Hebbian + divisive norm).

Reproduces the evaluation of Cekic, Bakiskan & Madhow, "Neuro-inspired deep neural networks with
sparse, strong activations" (ICIP 2022, arXiv:2202.13074) with torchtopo: the same architecture
trained twice, once standard (conv → BatchNorm → ReLU) and once with HaH blocks on its first
layers (``tt.NormalizedConv2d`` → ReLU → ``tt.DivisiveNorm`` → ``tt.FractionalThreshold``) plus the
layer-local HaH cost (``tt.HebbianLoss`` through ``tt.attach``), then evaluated on clean images,
Gaussian noise, PGD ℓ∞ and ℓ2 (``tt.adversarial``), and activation sparsity.

    python examples/hebbian_divisive.py --quick                 # < 2 min on 2 cores
    python examples/hebbian_divisive.py                         # offline default, ~10 min
    python examples/hebbian_divisive.py --dataset cifar10 --data-root ~/data --device cuda

Offline default: the 4,000/1,000 real MNIST digits of ``tt.data.mnist_sample()`` and a small CNN
(``tt.models.hah_cnn``: two 3×3 conv blocks of 32 and 64 channels, both HaH in the HaH model).
``--dataset cifar10`` runs VGG16 (``tt.models.vgg16_hah``: HaH on conv1–6) with the paper's schedule
(Adam lr 1e-3, batch 128, 100 epochs, lr × 0.1 at epochs 60 and 80, the paper's α per layer).
Writes ``report.md``, ``results.json`` and PNG figures into ``--out``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Dict, List, Optional

import torch
from torch import nn

import torchtopo as tt
from torchtopo import adversarial as adv

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:  # the examples' shared helpers
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import add_common_args, fit, parse, pyplot, save_fig, start, write_results

#: Cekic et al.'s table (CIFAR-10, VGG16; AutoAttack; arXiv:2202.13074), in %.
PAPER = {
    "standard": {"clean": 92.5, "noise_0.1": 26.6, "linf_2/255": 10.4, "l2_0.25": 13.9},
    "hah": {"clean": 87.3, "noise_0.1": 64.0, "linf_2/255": 21.5, "l2_0.25": 27.6},
}
#: per dataset: the model and its keyword arguments for the standard and the HaH variant
MODELS = {
    "mnist_sample": ("hah_cnn", {"standard": {"hah": False}, "hah": {"hah": True}}),
    "mnist": ("hah_cnn", {"standard": {"hah": False}, "hah": {"hah": True}}),
    "cifar10": ("vgg16_hah", {"standard": {"hah_layers": 0}, "hah": {"hah_layers": 6}}),
}


# ------------------------------------------------------------------------------ configuration
def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, out="runs/hebbian_divisive", datasets=list(MODELS),
                    quick_help="fewer epochs and attack images (< 2 min on 2 cores)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--n-train", type=int, default=None, help="use only this many training images")
    p.add_argument("--n-test", type=int, default=None, help="use only this many test images")
    p.add_argument("--n-attack", type=int, default=None, help="test images attacked with PGD")
    p.add_argument("--pgd-steps", type=int, default=None)
    p.add_argument("--end-to-end", action="store_true", help="HaH cost end to end instead of layer-local")
    p.add_argument("--sigma", type=float, default=0.1, help="DivisiveNorm σ (paper 0.1)")
    p.add_argument("--keep", type=float, default=0.2, help="FractionalThreshold keep ratio (paper 0.2)")
    p.add_argument("--no-input-normalize", action="store_true",
                   help="feed [0, 1] pixels to the first conv (no mean/std normalisation layer)")
    a = parse(p, argv, offline=["mnist_sample"])
    cifar = a.dataset == "cifar10"
    if a.tiny:
        epochs, n_attack, steps = 1, 16, 2
        a.n_train = a.n_train or 128
        a.n_test = a.n_test or 48
    elif a.quick:
        epochs, n_attack, steps = (10 if cifar else 2), 100, 5
        if not cifar:
            a.n_train = a.n_train or 2000
    else:
        epochs, n_attack, steps = (100 if cifar else 6), (1000 if cifar else 500), (20 if cifar else 10)
    a.epochs = a.epochs if a.epochs is not None else epochs
    a.n_attack = a.n_attack if a.n_attack is not None else n_attack
    a.pgd_steps = a.pgd_steps if a.pgd_steps is not None else steps
    # noise σ and ε in pixel units ([0, 1] images): the paper's values, plus larger ones that
    # matter on MNIST (whose digits barely notice 2/255).
    if cifar:
        a.noise = [0.1]
        a.linf = [2 / 255]
        a.l2 = [0.25]
    else:
        a.noise = [0.1, 0.3, 0.5] if not a.tiny else [0.1]
        a.linf = [2 / 255, 0.1] if not a.tiny else [0.1]
        a.l2 = [0.25, 1.0] if not a.tiny else [1.0]
    return a


# ------------------------------------------------------------------------------ data and models
def load_data(args):
    """Training source and test tensors, images in [0, 1] (the models normalise).

    Returns ``(train, x_test, y_test)`` with ``train`` either a tensor pair or a Dataset (CIFAR
    with random-crop + flip augmentation)."""
    if args.dataset == "mnist_sample":
        xtr, ytr = tt.data.mnist_sample_tensors("train", normalize=False)
        xte, yte = tt.data.mnist_sample_tensors("test", normalize=False)
        if args.n_train:
            xtr, ytr = xtr[: args.n_train], ytr[: args.n_train]
        train = (xtr, ytr)
    else:
        if args.dataset == "mnist":
            tr = tt.data.mnist(args.data_root, train=True, normalize=False)
            te = tt.data.mnist(args.data_root, train=False, normalize=False)
        else:
            tr = tt.data.cifar10(args.data_root, train=True, normalize=False, augment=True)
            te = tt.data.cifar10(args.data_root, train=False, normalize=False)
        if args.n_train:
            tr = torch.utils.data.Subset(tr, range(min(args.n_train, len(tr))))
        train = tr
        xte, yte = tt.data.to_tensors(te, args.n_test or None, batch_size=1000, progress=True)
    if args.n_test:
        xte, yte = xte[: args.n_test], yte[: args.n_test]
    return train, xte, yte


def make_model(kind: str, args) -> nn.Module:
    name, variants = MODELS[args.dataset]
    return tt.models.get_model(name, sigma=args.sigma, keep=args.keep, normalize=not args.no_input_normalize,
                               **variants[kind])


def probe_layers(model: nn.Module, n: int) -> List[str]:
    """Output of the first ``n`` conv blocks' activation: the HaH block's thresholded output, or
    the standard block's ReLU."""
    names = []
    for i, blk in enumerate(model.features):
        if isinstance(blk, nn.Sequential) and len(names) < n:
            names.append(f"features.{i}.{len(blk) - 1}")
    return names


def epoch_batches(train, args, g: torch.Generator):
    """``epoch -> batches``: shuffled full batches of a tensor pair (one batch of all if fewer),
    or a shuffling DataLoader of a Dataset."""
    if isinstance(train, tuple):
        x, y = train
        return lambda ep: tt.data.batches(x, y, args.batch_size, generator=g, drop_last=x.shape[0] >= args.batch_size)
    loader = torch.utils.data.DataLoader(train, batch_size=args.batch_size, shuffle=True, generator=g, drop_last=True, num_workers=2)
    return lambda ep: loader


def train_model(kind: str, args, train, xte, yte):
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    model = make_model(kind, args).to(args.device)
    reg = None
    if kind == "hah":
        k = len(tt.hah_layer_names(model))
        reg = tt.attach(model, tt.hebbian_terms(model, tt.PAPER_HEBBIAN_STRENGTHS[:k], local=not args.end_to_end))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    milestones = [int(args.epochs * 0.6), int(args.epochs * 0.8)] if args.dataset == "cifar10" else []
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=0.1)
    t0 = time.time()
    hist = fit(model, epoch_batches(train, args, g), opt, epochs=args.epochs, reg=reg, sched=sched, device=args.device,
               log_terms=reg is not None, on_epoch=lambda m: {"test_acc": adv.accuracy(m, xte, yte)}, desc=f"train {kind}")
    if reg is not None:
        reg.remove()
    # H: the HaH objective per layer (the negated cost)
    history = [{"epoch": r["epoch"], "ce": r["ce"], "test_acc": r["test_acc"],
                "H": {k: -v for k, v in r.get("terms", {}).items()}} for r in hist]
    return model, history, time.time() - t0


# ------------------------------------------------------------------------------ evaluation
def evaluate(model: nn.Module, args, xte, yte) -> Dict:
    dev = args.device
    xa, ya = xte[: args.n_attack], yte[: args.n_attack]
    res = {"clean": adv.accuracy(model, xte, yte)}
    for s in args.noise:
        res[f"noise_{s:g}"] = adv.gaussian_noise_accuracy(model, xte, yte, s, seed=args.seed)
    res["clean_attack_subset"] = adv.accuracy(model, xa, ya)
    for e in args.linf:
        res[f"linf_{_eps_name(e)}"] = adv.pgd_accuracy(model, xa.to(dev), ya.to(dev), eps=e, norm="linf", steps=args.pgd_steps, seed=args.seed)
    for e in args.l2:
        res[f"l2_{e:g}"] = adv.pgd_accuracy(model, xa.to(dev), ya.to(dev), eps=e, norm="l2", steps=args.pgd_steps, seed=args.seed)
    layers = probe_layers(model, 2)
    res["sparsity"] = adv.sparsity_stats(model, xte[:500], layers)
    return res


def _eps_name(e: float) -> str:
    k = e * 255
    return f"{round(k)}/255" if abs(k - round(k)) < 1e-6 else f"{e:g}"


# ------------------------------------------------------------------------------ figures
def histograms(models: Dict[str, nn.Module], xte, out: str) -> str:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for j in range(2):
        ax = axes[j]
        for kind, m in models.items():
            a = tt.analysis.collect_activations(m, probe_layers(m, 2)[j], xte[:200])[0].flatten()
            # divide by the mean non-zero value, so the two models' scales compare
            nz = a[a > 0]
            frac0 = 1 - nz.numel() / max(1, a.numel())
            if nz.numel():
                ax.hist((nz / nz.mean()).numpy(), bins=60, histtype="step", density=True, log=True,
                        label=f"{kind} ({100 * frac0:.0f}% zero)")
        ax.set_title(f"block {j + 1} activations (non-zero, / mean)")
        ax.set_xlabel("activation / mean active")
        ax.legend()
    return save_fig(fig, out, "activation_histograms.png", dpi=120)


def curves(histories: Dict[str, List[Dict]], out: str) -> str:
    fig, ax = pyplot().subplots(1, 2, figsize=(9, 3.4))
    for kind, h in histories.items():
        ep = [r["epoch"] for r in h]
        ax[0].plot(ep, [r["ce"] for r in h], marker="o", label=kind)
        ax[1].plot(ep, [100 * r["test_acc"] for r in h], marker="o", label=kind)
    ax[0].set_title("training cross-entropy")
    ax[1].set_title("test accuracy (%)")
    for a in ax:
        a.set_xlabel("epoch")
        a.legend()
    return save_fig(fig, out, "training_curves.png", dpi=120)


def robustness_plot(results: Dict, args, out: str) -> str:
    keys = ["clean"] + [f"noise_{s:g}" for s in args.noise] + [f"linf_{_eps_name(e)}" for e in args.linf] + [f"l2_{e:g}" for e in args.l2]
    fig, ax = pyplot().subplots(figsize=(1.0 + 0.9 * len(keys), 3.4))
    w = 0.4
    for i, kind in enumerate(results):
        ax.bar([k + (i - 0.5) * w for k in range(len(keys))], [100 * results[kind][k] for k in keys], w, label=kind)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels(keys, rotation=30, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.legend()
    return save_fig(fig, out, "robustness.png", dpi=120)


# ------------------------------------------------------------------------------ report
def report(args, results, times, figs) -> str:
    lines = [
        "# Sparse, strong activations: standard vs HaH",
        "",
        f"Dataset `{args.dataset}`, {args.epochs} epochs, Adam lr {args.lr}, batch {args.batch_size}, seed {args.seed}; "
        f"HaH cost {'end to end' if args.end_to_end else 'layer-local'} with the paper's α per layer, "
        f"σ = {args.sigma}, keep = {args.keep}, ρ = 0.1, λ = 0.1; input normalisation "
        f"{'off' if args.no_input_normalize else 'on'}.  "
        f"Noise and ε in pixel units of [0, 1] images; PGD with {args.pgd_steps} steps, step 2.5ε/steps, "
        f"one random start, on the first {args.n_attack} test images.",
        "",
        "| model | " + " | ".join(k for k in results["standard"] if k not in ("sparsity",)) + " | train time (s) |",
        "|---|" + "---|" * (len([k for k in results["standard"] if k != "sparsity"]) + 1),
    ]
    for kind, r in results.items():
        lines.append(f"| {kind} | " + " | ".join(f"{100 * v:.1f}" for k, v in r.items() if k != "sparsity") + f" | {times[kind]:.0f} |")
    lines += ["", "Activation sparsity of the first two blocks' outputs (500 test images):", "",
              "| model | layer | % zero | % channels active per position | mean active value | top-10 % channels' share |",
              "|---|---|---|---|---|---|"]
    for kind, r in results.items():
        for layer, s in r["sparsity"].items():
            lines.append(f"| {kind} | `{layer}` | {100 * s['frac_zero']:.1f} | {100 * s['frac_active_channels']:.1f} | "
                         f"{s['mean_active']:.3g} | {100 * s['top10_share']:.1f} |")
    lines += [
        "",
        "## The paper's table (CIFAR-10, VGG16, AutoAttack), for comparison",
        "",
        "| model | clean | noise σ = 0.1 | ℓ∞ 2/255 | ℓ2 0.25 |",
        "|---|---|---|---|---|",
    ]
    for kind, r in PAPER.items():
        lines.append(f"| {kind} VGG16 (paper) | " + " | ".join(f"{v:.1f}" for v in r.values()) + " |")
    cifar = args.dataset == "cifar10"
    pairs = [("clean", "clean"), ("noise_0.1", "noise_0.1"), ("linf_2/255", "linf_2/255"), ("l2_0.25", "l2_0.25")]
    diffs = []
    for ours, theirs in pairs:
        if ours in results["standard"] and ours in results["hah"]:
            d = 100 * (results["hah"][ours] - results["standard"][ours])
            dp = PAPER["hah"][theirs] - PAPER["standard"][theirs]
            diffs.append(f"{ours}: {d:+.1f} points here, {dp:+.1f} in the paper")
    lines += ["", "HaH minus standard at the paper's operating points: " + "; ".join(diffs) + "."]
    lines += ["", "## Reading these numbers honestly", ""]
    if not cifar:
        lines += [
            "* This run is **not** the paper's setting: MNIST (here a 4,000-image sample unless "
            "`--dataset mnist`) with a two-block CNN and a few epochs, not CIFAR-10 with VGG16 for 100 "
            "epochs.  A standard CNN barely notices σ = 0.1 noise or ε = 2/255 on MNIST, so larger σ "
            "and ε columns are added.  Only the *direction* of the differences can be compared with "
            "the paper.",
            "* MNIST has a flat background.  After mean/std normalisation it is a constant non-zero "
            "input, so some first-layer channels respond equally at many positions; the fractional "
            "threshold then keeps \"the top 20 %\" of a map full of near-ties, and a tiny perturbation "
            "can decide which positions survive.  That is one suspect when HaH is *more* fragile than "
            "the standard CNN here; `--no-input-normalize` (zero background) tests it.  In our own "
            "6-epoch runs it raised HaH's ℓ∞ 2/255 accuracy (64 → 79 %) but not its noise or ℓ2 "
            "accuracy, so it is not the whole story.",
        ]
    lines += [
        "* The paper attacks with AutoAttack; this script uses PGD (`tt.adversarial.pgd`), which is "
        "weaker, so its robust accuracies are *upper bounds* of AutoAttack's.  HaH's hard threshold "
        "and divisive normalisation can mask gradients; check with more `--pgd-steps` before "
        "trusting a robustness gain.",
        "* One seed per model: differences of a few points are within seed-to-seed variation.",
        "",
    ]
    lines += [f"![{f}]({f})" for f in figs]
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    start(args)
    train, xte, yte = load_data(args)
    models, histories, times, results = {}, {}, {}, {}
    for kind in ("standard", "hah"):
        m, h, t = train_model(kind, args, train, xte, yte)
        models[kind], histories[kind], times[kind] = m, h, t
        results[kind] = evaluate(m, args, xte, yte)
        print(f"{kind}: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in results[kind].items() if k != "sparsity")
              + f" ({t:.0f} s training)")
    figs = []
    if not args.no_plots:
        figs = [curves(histories, args.out), robustness_plot(results, args, args.out), histograms(models, xte, args.out)]
    payload = {
        "config": {k: v for k, v in vars(args).items()},
        "results": results,
        "history": histories,
        "train_seconds": times,
        "paper_cifar10_vgg16_autoattack": PAPER,
    }
    write_results(args.out, payload, report(args, results, times, figs))
    print(f"wrote {os.path.join(args.out, 'report.md')}")
    return payload


if __name__ == "__main__":
    main()
