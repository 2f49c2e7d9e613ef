"""A V1-like front-end with biological vs uniform receptive-field sampling: corruption robustness.

Reproduces the design of Barbulescu, Marques & Oliveira (arXiv:2310.10575) with
torchtopo: three variants of the same network are trained —

* ``biological``: ``tt.V1Front(sampling="biological")`` + 1×1 bottleneck + back-end;
* ``uniform``: the same with ``sampling="uniform"`` (the control);
* ``baseline``: a plain learned stem (conv → BatchNorm → ReLU) + the same back-end;

then evaluated on the 15 common corruptions × 5 severities (``tt.robustness.corrupt``).  The
corruption robustness of a model is its mean top-1 accuracy over the 75 corrupted test sets, and
the paper's *relative difference* is ``(R_bio − R_unif) / R_unif`` (8.72 % on Tiny ImageNet-C
with a ResNet-18 back-end).  The report adds the conformance of the sampled fronts to the primate
tables, a filter grid, and a sub-population ablation (silence front channels by cell type,
spatial frequency and envelope size; compare how much of the bottleneck's weight reads them).

    python examples/v1_front_robustness.py --quick              # < 2 min on 2 cores
    python examples/v1_front_robustness.py                      # default (13 min measured on 2 busy cores)
    python examples/v1_front_robustness.py --dataset tiny-imagenet --data-root ~/data/tiny-imagenet-200 --device cuda
    python examples/v1_front_robustness.py --dataset cifar10 --data-root ~/data --device cuda

Offline by default: the 4,000/1,000 real MNIST digits of ``tt.data.mnist_sample()`` with
``V1Front.mnist()`` (28 px = 2°, grayscale; 32 simple + 32 complex cells) and a small CNN
back-end.  With ``--dataset
tiny-imagenet`` the models are the study's (``tt.models.vone_resnet18(preset="tiny_imagenet")``
vs torchvision's ResNet-18; SGD lr 0.1, weight decay 5e-4, batch 128, noise off); with
``cifar10`` the CIFAR preset.  Writes ``report.md``, ``results.json`` and PNG figures to ``--out``.
"""
from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from typing import Dict, List, Optional

import torch
from torch import nn

import torchtopo as tt

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:  # the examples' shared helpers
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import add_common_args, fit, mean_sd, parse, progress, pyplot, save_fig, start, write_results

V1A = tt.v1.analysis
VARIANTS = ("biological", "uniform", "baseline")
PAPER_RELATIVE_DIFF = 8.72  # %, Barbulescu et al. 2023, Tiny ImageNet-C, VOneResNet18
PRESETS = {"tiny-imagenet": "tiny_imagenet", "cifar10": "cifar"}  # V1Front preset of each torchvision dataset


# ------------------------------------------------------------------------------ configuration
def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, out="runs/v1_front_robustness", datasets=["mnist_sample", "tiny-imagenet", "cifar10"],
                    seeds="models per variant (default 2; 1 with --quick)",
                    quick_help="1 seed, 2 epochs, 1,500 training and 200 test images (< 2 min)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None, help="SGD learning rate (default 0.1 as the study; 0.05 on MNIST)")
    p.add_argument("--noise", default="none", choices=["none", "neuronal", "gaussian"],
                   help="front noise during training (the study trains with noise off)")
    p.add_argument("--n-train", type=int, default=None)
    p.add_argument("--n-test", type=int, default=None, help="test images (default 500 on the MNIST sample, 2,000 otherwise)")
    p.add_argument("--corruptions", nargs="+", default=None, metavar="KIND",
                   help="subset of tt.robustness.COMMON_CORRUPTIONS (default: all 15)")
    a = parse(p, argv, offline=["mnist_sample"])
    small = a.dataset == "mnist_sample"
    if a.tiny:
        seeds, epochs, n_train, n_test = 1, 1, 256, 100
    elif a.quick:
        seeds, epochs, n_train, n_test = 1, 2, 1500, 200
    else:
        seeds, epochs, n_train, n_test = 2, (4 if small else 60), None, (500 if small else 2000)
    a.seeds = a.seeds or seeds
    a.epochs = a.epochs or epochs
    a.n_train = a.n_train or n_train
    a.n_test = a.n_test or n_test
    a.batch_size = a.batch_size or (32 if small else 128)
    a.lr = a.lr or (0.05 if small else 0.1)
    if a.seeds < 1 or a.epochs < 1:
        p.error("--seeds and --epochs must be >= 1")
    if a.corruptions is None:
        a.corruptions = ["gaussian_noise"] if a.tiny else list(tt.robustness.COMMON_CORRUPTIONS)
    bad = [k for k in a.corruptions if k not in tt.robustness.COMMON_CORRUPTIONS]
    if bad:
        p.error(f"--corruptions: unknown {bad}; choose from {', '.join(tt.robustness.COMMON_CORRUPTIONS)}")
    return a


# ------------------------------------------------------------------------------ data and models
def load_data(args):
    """(x_train, y_train, x_test, y_test, mean, std, n_classes), images in [0, 1]."""
    if args.dataset == "mnist_sample":
        xtr, ytr = tt.data.mnist_sample_tensors("train", normalize=False)
        xte, yte = tt.data.mnist_sample_tensors("test", normalize=False)
        mean, std, ncls = (tt.data.MNIST_MEAN,), (tt.data.MNIST_STD,), 10
    else:
        if args.dataset == "cifar10":
            tr = tt.data.cifar10(args.data_root, train=True, normalize=False)
            te = tt.data.cifar10(args.data_root, train=False, normalize=False)
            mean, std, ncls = tt.data.CIFAR10_MEAN, tt.data.CIFAR10_STD, 10
        else:
            tr = tt.data.tiny_imagenet(args.data_root, "train", normalize=False)
            te = tt.data.tiny_imagenet(args.data_root, "val", normalize=False)
            mean, std, ncls = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 200

        # a fixed random subset of each split (seed 1234), the same on every machine
        xtr, ytr = tt.data.to_tensors(tr, args.n_train, seed=1234, num_workers=2, progress=True)
        xte, yte = tt.data.to_tensors(te, args.n_test, seed=1234, num_workers=2, progress=True)
    if args.n_train is not None:
        xtr, ytr = xtr[: args.n_train], ytr[: args.n_train]
    if args.n_test is not None:
        xte, yte = xte[: args.n_test], yte[: args.n_test]
    return xtr, ytr, xte, yte, mean, std, ncls


class SmallNet(nn.Module):
    """MNIST network: ``stem`` (learned conv 5×5 stride 2 → 32 ch, BN, ReLU; replaced by the V1
    front + 1×1 bottleneck in the V1 variants) → conv3×3 32→64, BN, ReLU, maxpool 2 → conv3×3
    64→64, BN, ReLU → global average pool → linear 64 → classes."""

    def __init__(self, in_channels: int, n_classes: int, mean, std) -> None:
        super().__init__()
        self.norm = tt.data.Normalize(mean, std)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 32, 5, stride=2, padding=2, bias=False),
                                  nn.BatchNorm2d(32), nn.ReLU())
        self.body = nn.Sequential(
            nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, n_classes))

    def forward(self, x):
        return self.body(self.stem(self.norm(x)))


def build_model(variant: str, args, in_channels: int, n_classes: int, mean, std, seed: int) -> nn.Module:
    noise = None if args.noise == "none" else args.noise
    torch.manual_seed(seed)  # the back-end's initialisation (the front has its own generator)
    if args.dataset == "mnist_sample":
        net = SmallNet(in_channels, n_classes, mean, std)
        if variant != "baseline":
            # a 32 + 32 bank (the preset has 64 + 64): enough for digits, and half the CPU time
            front = tt.V1Front.mnist(sampling=variant, noise=noise, seed=seed, simple_channels=32,
                                     complex_channels=32)
            tt.with_v1_front(net, front, stem="stem", out_channels=32)
            net.stem.add_module("bn", nn.BatchNorm2d(32))
            net.stem.add_module("relu", nn.ReLU())
        return net
    if variant == "baseline":  # the study's control: torchvision's ResNet-18 with its learned stem
        from torchvision.models import resnet18

        return nn.Sequential(tt.data.Normalize(mean, std), resnet18(weights=None, num_classes=n_classes))
    return tt.models.get_model("vone_resnet18", num_classes=n_classes, normalize=(mean, std),
                               preset=PRESETS[args.dataset], sampling=variant, noise=noise, seed=seed)


def find_front(model: nn.Module) -> Optional[tt.V1Front]:
    for m in model.modules():
        if isinstance(m, tt.V1Front):
            return m
    return None


def train(model: nn.Module, xtr, ytr, args, seed: int, desc: str) -> List[float]:
    """SGD with momentum, one-cycle schedule; random horizontal flips on the torchvision datasets.
    Returns the mean training loss per epoch."""
    model.to(args.device)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    steps = args.epochs * -(-xtr.shape[0] // args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.15)
    g = torch.Generator().manual_seed(seed)

    def batches(epoch):
        for x, y in tt.data.batches(xtr, ytr, args.batch_size, generator=g):
            if args.dataset != "mnist_sample":  # the study's augmentation: random flips
                flip = torch.rand(x.shape[0], generator=g) < 0.5
                x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            yield x, y

    history = fit(model, batches, opt, epochs=args.epochs, sched=sched, sched_every="batch", device=args.device, desc=desc)
    model.eval()
    return [h["loss_per_sample"] for h in history]


def accuracy(model: nn.Module, x, y, args) -> float:
    """Top-1 accuracy in percent (eval mode)."""
    return tt.robustness.evaluate_accuracy(model, (x, y), batch_size=500, device=args.device)


def corruption_eval(models: Dict[str, List[nn.Module]], xte, yte, args) -> Dict[str, Dict[str, List[List[float]]]]:
    """acc[variant][kind] = [[acc per severity] per seed]; every model sees the same corrupted
    images (one generator per kind and severity)."""
    kinds = args.corruptions
    acc = {v: {k: [[0.0] * 5 for _ in ms] for k in kinds} for v, ms in models.items()}
    for kind, s in progress(list(itertools.product(kinds, range(1, 6))), "corruptions"):
        g = torch.Generator().manual_seed(args.seed * 1000 + tt.robustness.COMMON_CORRUPTIONS.index(kind) * 10 + s)
        xc = torch.cat([tt.robustness.corrupt(xte[i:i + 250], kind, s, generator=g)
                        for i in range(0, xte.shape[0], 250)])
        for v, ms in models.items():
            for j, m in enumerate(ms):
                acc[v][kind][j][s - 1] = accuracy(m, xc, yte, args)
    return acc


# ------------------------------------------------------------------------------ main
def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    t0 = start(args)
    xtr, ytr, xte, yte, mean, std, ncls = load_data(args)
    cin = xtr.shape[1]
    models: Dict[str, List[nn.Module]] = {v: [] for v in VARIANTS}
    train_log: Dict[str, List[List[float]]] = {v: [] for v in VARIANTS}
    clean: Dict[str, List[float]] = {v: [] for v in VARIANTS}
    for s in range(args.seed, args.seed + args.seeds):
        for v in VARIANTS:
            m = build_model(v, args, cin, ncls, mean, std, seed=s)
            train_log[v].append(train(m, xtr, ytr, args, seed=s, desc=f"{v} seed {s}"))
            clean[v].append(accuracy(m, xte, yte, args))
            models[v].append(m)
    corr = corruption_eval(models, xte, yte, args)
    kinds = list(args.corruptions)

    # robustness R = mean accuracy over the 75 corrupted sets, per model
    R = {v: [statistics.fmean(corr[v][k][j][s] for k in kinds for s in range(5)) for j in range(args.seeds)]
         for v in VARIANTS}
    Rm = {v: statistics.fmean(R[v]) for v in VARIANTS}
    rel = 100.0 * (Rm["biological"] - Rm["uniform"]) / Rm["uniform"]
    rel_base_bio = 100.0 * (Rm["biological"] - Rm["baseline"]) / Rm["baseline"]
    rel_base_unif = 100.0 * (Rm["uniform"] - Rm["baseline"]) / Rm["baseline"]
    # (R over the corruptions evaluated: all 15 unless --corruptions)
    rel_per_seed = [100.0 * (R["biological"][j] - R["uniform"][j]) / R["uniform"][j] for j in range(args.seeds)]
    # normalised robustness (R / clean), a common alternative
    Rn = {v: statistics.fmean(R[v][j] / max(clean[v][j], 1e-9) for j in range(args.seeds)) for v in VARIANTS}

    # fronts: conformance, ablation, downstream weights
    fronts = {v: find_front(models[v][0]) for v in ("biological", "uniform")}
    conf = {v: V1A.conformance_report(f) for v, f in fronts.items()}
    g_abl = torch.Generator().manual_seed(args.seed + 99)
    x_noisy = tt.robustness.corrupt(xte, "gaussian_noise", 3, generator=g_abl)
    ablation, wshare = {}, {}
    for v, f in fronts.items():
        m = models[v][0]
        pops = V1A.subpopulations(f)
        ablation[v] = {
            "clean": V1A.ablation_study(f, lambda: accuracy(m, xte, yte, args), pops),
            "gaussian_noise_3": V1A.ablation_study(f, lambda: accuracy(m, x_noisy, yte, args), pops),
        }
        stem = [mod for mod in m.modules() if isinstance(mod, tt.v1.V1Stem)][0]
        wshare[v] = V1A.downstream_weight_share(stem.bottleneck.weight, pops)

    results = {
        "config": {k: v for k, v in vars(args).items()},
        "clean_accuracy": clean,
        "corruption_accuracy": corr,
        "robustness_mean_corruption_accuracy": R,
        "relative_difference_bio_vs_uniform_percent": rel,
        "relative_difference_bio_vs_uniform_per_seed_percent": rel_per_seed,
        "relative_difference_bio_vs_baseline_percent": rel_base_bio,
        "relative_difference_uniform_vs_baseline_percent": rel_base_unif,
        "normalised_robustness": Rn,
        "paper_relative_difference_percent": PAPER_RELATIVE_DIFF,
        "conformance": {v: {k: {kk: vv for kk, vv in d.items() if kk not in ("observed", "expected")}
                            for k, d in c.items()} for v, c in conf.items()},
        "ablation": ablation,
        "downstream_weight_share": wshare,
        "train_loss": train_log,
        "seconds": time.time() - t0,
    }
    figs = [] if args.no_plots else make_figures(args, corr, kinds, fronts, conf)
    write_results(args.out, results, report(args, results, kinds, figs))
    print("clean: " + ", ".join(f"{v} {mean_sd(clean[v])[0]:.2f}%" for v in VARIANTS))
    print("mean corruption accuracy: " + ", ".join(f"{v} {Rm[v]:.2f}%" for v in VARIANTS))
    print(f"relative difference biological vs uniform: {rel:+.2f}% (paper: +{PAPER_RELATIVE_DIFF}% on Tiny ImageNet-C)")
    print(f"wrote {args.out}/report.md ({time.time() - t0:.0f} s)")
    return results


def make_figures(args, corr, kinds, fronts, conf) -> List[str]:
    plt = pyplot()
    out: List[str] = []
    fig, ax = plt.subplots(figsize=(11, 3.6))
    w = 0.27
    for i, v in enumerate(VARIANTS):
        means = [statistics.fmean(statistics.fmean(r) for r in corr[v][k]) for k in kinds]
        ax.bar([j + (i - 1) * w for j in range(len(kinds))], means, w, label=v)
    ax.set_xticks(range(len(kinds)))
    ax.set_xticklabels(kinds, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("accuracy (%), mean over severities")
    ax.legend(fontsize=8)
    save_fig(fig, args.out, "corruptions.png", out)

    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    for v in VARIANTS:
        per_sev = [statistics.fmean(statistics.fmean(r[s] for r in corr[v][k]) for k in kinds) for s in range(5)]
        ax.plot(range(1, 6), per_sev, "o-", label=v)
    ax.set_xlabel("severity")
    ax.set_ylabel("mean accuracy over 15 corruptions (%)")
    ax.legend(fontsize=8)
    save_fig(fig, args.out, "severity.png", out)

    for v, f in fronts.items():
        plt.close(V1A.plot_conformance(f, os.path.join(args.out, f"conformance_{v}.png"), report=conf[v]))
        plt.close(V1A.plot_filters(f, 32, os.path.join(args.out, f"filters_{v}.png")))
        out += [f"conformance_{v}.png", f"filters_{v}.png"]
    return out


def report(args, r, kinds, figs) -> str:
    clean, R = r["clean_accuracy"], r["robustness_mean_corruption_accuracy"]
    rel = r["relative_difference_bio_vs_uniform_percent"]
    lines = [
        "# V1 front: biological vs uniform receptive-field sampling",
        "",
        f"Dataset: `{args.dataset}` ({'the offline MNIST sample, V1Front.mnist()' if args.dataset == 'mnist_sample' else args.data_root}); "
        f"{args.seeds} seed(s) per variant, {args.epochs} epoch(s), batch {args.batch_size}, SGD lr {args.lr} "
        f"(one-cycle), weight decay 5e-4, front noise during training: {args.noise}.  "
        f"Corruptions: the 15 common corruptions × 5 severities of `tt.robustness.corrupt` on "
        f"{len(next(iter(next(iter(r['corruption_accuracy'].values())).values())))} model(s) per variant"
        f"{'' if args.n_test is None else f', {args.n_test} test images'}.  Run time {r['seconds']:.0f} s.",
        "",
        f"Robustness R = mean top-1 accuracy over the {5 * len(kinds)} corrupted test sets"
        f"{'' if len(kinds) == 15 else ' (a subset: ' + ', '.join(kinds) + ')'}; the paper's relative "
        "difference is (R_bio − R_unif) / R_unif.",
        "",
        "| variant | clean acc. (%) | R (%) | R / clean |",
        "|---|---|---|---|",
    ]
    for v in VARIANTS:
        cm, cs = mean_sd(clean[v])
        rm, rs = mean_sd(R[v])
        lines.append(f"| {v} | {cm:.2f} ± {cs:.2f} | {rm:.2f} ± {rs:.2f} | {r['normalised_robustness'][v]:.3f} |")
    per_seed = ", ".join(f"{x:+.2f}" for x in r["relative_difference_bio_vs_uniform_per_seed_percent"])
    lines += [
        "",
        f"**Relative difference, biological vs uniform: {rel:+.2f} %** (per seed: {per_seed}); "
        f"biological vs baseline {r['relative_difference_bio_vs_baseline_percent']:+.2f} %, "
        f"uniform vs baseline {r['relative_difference_uniform_vs_baseline_percent']:+.2f} %.",
        "",
        f"The paper reports +{PAPER_RELATIVE_DIFF} % on Tiny ImageNet-C (VOneResNet18, 64 px / 2°, 60 epochs). "
        + ("This run is not that experiment: 28-px grayscale digits with a 3-layer back-end trained for a "
           "few epochs on 4,000 images, and our corruptions are re-implementations (frost is synthetic; "
           "see `tt.robustness.corrupt`).  Digits are low-frequency, high-contrast shapes and several "
           "corruptions (brightness, contrast, fog) barely matter or saturate on them, so the size — "
           "even the sign — of the difference need not carry over; with few seeds the seed-to-seed spread "
           "above is the yardstick for whether the difference is real."
           if args.dataset == "mnist_sample" else
           "Differences from the study: corruptions re-implemented in torch (frost synthetic), the number of "
           "seeds and epochs given above."),
        "",
        "## Accuracy per corruption (mean over severities and seeds)",
        "",
        "| corruption | " + " | ".join(VARIANTS) + " |",
        "|---|" + "---|" * len(VARIANTS),
    ]
    for k in kinds:
        vals = [statistics.fmean(statistics.fmean(x) for x in r["corruption_accuracy"][v][k]) for v in VARIANTS]
        lines.append(f"| {k} | " + " | ".join(f"{x:.1f}" for x in vals) + " |")
    lines += ["", "## Conformance of the sampled fronts to the primate tables", "",
              "chi-square / KS p-values per parameter (the uniform front is tested against the biological "
              "tables too: it is expected to fail them).", "",
              "| front | " + " | ".join(k for k in r["conformance"]["biological"] if "p_chi2" in r["conformance"]["biological"][k])
              + " | r(log nx, log sf) |",
              "|---|" + "---|" * (1 + sum("p_chi2" in d for d in r["conformance"]["biological"].values()))]
    for v, c in r["conformance"].items():
        cells = [f"{d['p_chi2']:.2g} / {d['p_ks']:.2g}" for d in c.values() if "p_chi2" in d]
        lines.append(f"| {v} | " + " | ".join(cells) + f" | {c['copula']['r_log_nx_log_sf']:.2f} |")
    lines += ["", "## Sub-population ablation (first seed)", "",
              "Accuracy drop (percentage points) when the front channels of a sub-population are silenced, on clean "
              "images and under Gaussian noise (severity 3), and the share of the 1×1 bottleneck's weight "
              "magnitude reading the sub-population relative to its size (1 = proportional).  Silencing "
              "half of the front also shifts the input statistics of the BatchNorm after the bottleneck "
              "(whose running statistics come from training), so large drops partly measure that shift; "
              "compare sub-populations of equal size across the two fronts rather than the absolute drops.", "",
              "| sub-population | bio: n | bio: drop clean | bio: drop noise | bio: weight share | "
              "unif: n | unif: drop clean | unif: drop noise | unif: weight share |",
              "|---|---|---|---|---|---|---|---|---|"]
    ab, ws = r["ablation"], r["downstream_weight_share"]
    for pop in ab["biological"]["clean"]:
        if pop == "none":
            continue
        row = [pop]
        for v in ("biological", "uniform"):
            row += [str(ab[v]["clean"][pop]["size"]), f"{ab[v]['clean'][pop]['drop']:.1f}",
                    f"{ab[v]['gaussian_noise_3'][pop]['drop']:.1f}", f"{ws[v][pop]:.2f}"]
        lines.append("| " + " | ".join(row) + " |")
    if figs:
        lines += ["", "## Figures", ""] + [f"![{f}]({f})" for f in figs]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
