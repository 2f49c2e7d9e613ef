"""Sparse, strong activations: standard CNN vs HaH blocks (Hebbian/anti-Hebbian + divisive norm).

Reproduces the evaluation of Cekic, Bakiskan & Madhow, "Neuro-inspired deep neural networks with
sparse, strong activations" (ICIP 2022, arXiv:2202.13074) with torchtopo: the same architecture
trained standard (conv → BatchNorm → ReLU) and with HaH blocks on its first layers
(``tt.NormalizedConv2d`` → ReLU → ``tt.DivisiveNorm`` → ``tt.FractionalThreshold``) plus the HaH
cost (``tt.HebbianLoss`` through ``tt.attach``, layer-local by default as the authors' released
code trains: each layer's term updates only that layer's weights), then evaluated as *curves*:
accuracy against Gaussian-noise σ and against the PGD radius ε in ℓ∞ and ℓ2, over a range wide
enough that the standard model degrades, and with AutoAttack (the paper's attack, through
``tt.adversarial.autoattack`` when ``torchattacks`` is installed) at the paper's operating points.

The default run sweeps the divisive normalisation's σ (0.1, the paper's, and 1.0, the released
package's default) and the input normalisation (mean/std on, or raw [0, 1] pixels: on MNIST the
normalised flat background is a constant non-zero input that local divisive normalisation at
σ = 0.1 amplifies): five conditions (standard and HaH σ 0.1 and 1 with normalisation; standard
and HaH σ 0.1 on raw input; ``--full-grid`` adds HaH σ = 1 on raw input), 3 seeds each.  Every
HaH condition is compared with the standard model of the same input normalisation and the same
seeds (paired differences, mean ± SE and a 95 % t interval); a claim gets a verdict only when
the interval excludes 0.

Attacks: PGD with 20 steps and 2 random restarts on the first 100 test images for the ε curves
(radii ascending, each attacking only the images no smaller radius broke; restarts only on the
survivors), and AutoAttack at the paper's two points on the first 10 of them (CPU; 200 on a GPU),
run on the images PGD did not fool — an image counts robust only if neither attack fools it.

    python examples/hebbian_divisive.py --quick --threads 1    # 2 seeds, 3 conditions, 1 epoch, no AutoAttack (~2.5 min, 1 core)
    python examples/hebbian_divisive.py --threads 1            # the default: 3 seeds × 5 conditions, 4 epochs (~30 min, 1 core)
    python examples/hebbian_divisive.py --dataset cifar10 --data-root ~/data --device cuda

Time of the default on one CPU core: 1,801 s wall (30 min), measured with one torch thread on a
shared 2-core machine while other jobs ran (load average about 2-2.5): training 37 % (a HaH model
trains about 4× slower than the standard one: max-pooling, the threshold's per-map k-th value and
the HaH cost's top-k take 70 % of its training step on a CPU), the PGD
curves 26 %, AutoAttack 26 % (its Square attack: 5,000 forward passes per image that survives the
gradient attacks), clean and noise accuracy 10 %.  The report's last table has the breakdown.

Offline default: the 4,000/1,000 real MNIST digits of ``tt.data.mnist_sample()`` and a small CNN
(``tt.models.hah_cnn``: two 3×3 conv blocks of 32 and 64 channels, both HaH in the HaH model: the
paper's "first blocks").  ``--dataset cifar10`` runs VGG16 (``tt.models.vgg16_hah``: HaH on conv1–6)
with the paper's schedule (Adam lr 1e-3, batch 128, 100 epochs, lr × 0.1 at epochs 60 and 80, the
paper's α per layer).  Noise and ε are in pixel units of [0, 1] images.  Writes ``report.md``,
``results.json``, PNG figures and ``checkpoints/`` (a rerun reuses trained models) into ``--out``.
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
from _common import Checkpoints, add_common_args, fit, make_parser, open_dataset, parse, progress, say, start, write_results
from _hah_report import PAPER, eps_name, figures, report, summarise

EXAMPLE = "python examples/hebbian_divisive.py --quick --threads 1 --out runs/hah_quick"
#: per dataset: the model and its keyword arguments for the standard and the HaH variant
MODELS = {
    "mnist_sample": ("hah_cnn", {"standard": {"hah": False}, "hah": {"hah": True}}),
    "mnist": ("hah_cnn", {"standard": {"hah": False}, "hah": {"hah": True}}),
    "cifar10": ("vgg16_hah", {"standard": {"hah_layers": 0}, "hah": {"hah_layers": 6}}),
}
#: the curves' points (pixel units); 0 is the clean accuracy on the same images
CURVES = {
    "digits": {"noise": [0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0], "linf": [0.0, 2 / 255, 0.05, 0.1, 0.15, 0.2, 0.3],
               "l2": [0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0]},
    "quick": {"noise": [0.0, 0.1, 0.3, 0.5, 1.0], "linf": [0.0, 2 / 255, 0.1, 0.2], "l2": [0.0, 0.25, 1.0, 2.0]},
    "tiny": {"noise": [0.0, 0.1, 0.5], "linf": [0.0, 0.1], "l2": [0.0, 1.0]},
    "cifar10": {"noise": [0.0, 0.05, 0.1, 0.15, 0.2, 0.3], "linf": [0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255],
                "l2": [0.0, 0.1, 0.25, 0.5, 1.0]},
}
#: AutoAttack's operating points: the paper's (ℓ∞ 2/255, ℓ2 0.25)
AA_POINTS = [("linf", 2 / 255), ("l2", 0.25)]


# ------------------------------------------------------------------------------ configuration
def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = make_parser(__doc__, EXAMPLE)
    add_common_args(p, out="runs/hebbian_divisive", datasets=list(MODELS),
                    seeds="models per condition (default 3; 2 with --quick); verdicts need >= 2",
                    quick_help="2 seeds, standard + HaH at σ 0.1 and 1, 1 epoch on 2,000 digits, shorter curves")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 4 on digits, 100 on CIFAR-10)")
    p.add_argument("--batch-size", type=int, default=128, help="batch size (default 128, the paper's)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3, the paper's)")
    p.add_argument("--n-train", type=int, default=None, help="use only this many training images")
    p.add_argument("--n-test", type=int, default=None, help="use only this many test images (default all)")
    p.add_argument("--n-attack", type=int, default=None,
                   help="test images attacked with PGD for the ε curves (default 100 on digits, 1,000 on CIFAR-10)")
    p.add_argument("--n-autoattack", type=int, default=None,
                   help="of those, images attacked with AutoAttack at the paper's points where PGD did not fool the "
                        "model (0: none; default 200 on a GPU, 10 on CPU, none with --quick on CPU: its Square "
                        "attack costs 2-6 s per robust image and point on one CPU core)")
    p.add_argument("--autoattack-conditions", default="paper", choices=["paper", "all"],
                   help="AutoAttack the paper's pair only (standard and HaH at σ 0.1 with input normalisation) or every condition")
    p.add_argument("--pgd-steps", type=int, default=None, help="PGD iterations (default 20; 10 with --quick)")
    p.add_argument("--pgd-restarts", type=int, default=None, help="PGD random restarts (default 2; 1 with --quick)")
    p.add_argument("--end-to-end", action="store_true",
                   help="HaH cost end to end instead of layer-local (the released code's training)")
    p.add_argument("--sigmas", type=float, nargs="+", default=None, metavar="SIGMA",
                   help="σ of the divisive normalisation, one HaH condition each (default 0.1 = the paper's, "
                        "and 1.0 = the released package's, on digits; 0.1 on CIFAR-10)")
    p.add_argument("--keep", type=float, default=0.2, help="FractionalThreshold keep ratio (paper 0.2)")
    p.add_argument("--input-norm", default=None, choices=["on", "off", "both"],
                   help="mean/std input normalisation (on), raw [0, 1] pixels (off) or both as conditions "
                        "(default both on digits, on for CIFAR-10)")
    p.add_argument("--full-grid", action="store_true",
                   help="with --input-norm both, every σ on raw input too (default: raw input for the first σ only)")
    p.add_argument("--no-resume", action="store_true", help="retrain even when a checkpoint exists")
    a = parse(p, argv, offline=["mnist_sample"])
    cifar = a.dataset == "cifar10"
    if a.tiny:
        seeds, epochs, n_attack, n_aa, steps, restarts, curves = 2, 1, 16, 0, 2, 1, "tiny"
        a.n_train, a.n_test = a.n_train or 128, a.n_test or 48
    elif a.quick:
        seeds, epochs, n_attack, n_aa, steps, restarts, curves = 2, (10 if cifar else 1), 100, 0, 10, 1, "quick"
        if not cifar:
            a.n_train = a.n_train or 2000
    else:
        seeds, epochs, n_attack, n_aa, steps, restarts = 3, (100 if cifar else 4), (1000 if cifar else 100), 10, 20, 2
        curves = "cifar10" if cifar else "digits"
    a.seeds = a.seeds or seeds
    a.epochs = a.epochs if a.epochs is not None else epochs
    a.n_attack = a.n_attack if a.n_attack is not None else n_attack
    gpu = str(a.device).startswith("cuda")
    a.n_autoattack = a.n_autoattack if a.n_autoattack is not None else min(200 if gpu and not a.tiny else n_aa, a.n_attack)
    a.pgd_steps = a.pgd_steps if a.pgd_steps is not None else steps
    a.pgd_restarts = a.pgd_restarts if a.pgd_restarts is not None else restarts
    a.sigmas = a.sigmas or ([0.1] if cifar or a.tiny else [0.1, 1.0])
    a.input_norm = a.input_norm or ("on" if cifar or a.quick or a.tiny else "both")
    a.curves = {k: list(v) for k, v in CURVES["cifar10" if cifar else curves].items()}
    a.autoattack = autoattack_available() and a.n_autoattack > 0
    if a.n_autoattack > a.n_attack:
        p.error(f"--n-autoattack ({a.n_autoattack}) must be at most --n-attack ({a.n_attack}): AutoAttack runs on "
                "the attack images PGD did not fool")
    for norm, e in AA_POINTS if a.autoattack else []:  # AutoAttack's points on the PGD curves
        if not any(abs(v - e) < 1e-12 for v in a.curves[norm]):
            a.curves[norm] = sorted(a.curves[norm] + [e])
    if a.seeds < 1 or any(s <= 0 for s in a.sigmas):
        p.error("--seeds must be >= 1 and every --sigmas value > 0")
    return a


def autoattack_available() -> bool:
    try:
        import torchattacks  # noqa: F401
    except ImportError:
        return False
    return hasattr(adv, "autoattack")


def conditions(a) -> List[Dict]:
    """Standard and one HaH model per σ, for each input normalisation asked for; with both, the
    raw-input HaH models use only the first σ (the paper's) unless ``--full-grid``."""
    out = []
    for norm in ([True, False] if a.input_norm == "both" else [a.input_norm == "on"]):
        tail = "" if norm else ", raw input"
        std = "standard" + ("" if norm else " (raw input)")
        out.append({"name": std, "kind": "standard", "sigma": None, "norm": norm, "ref": None})
        sig = a.sigmas if norm or a.full_grid or a.input_norm != "both" else a.sigmas[:1]
        out += [{"name": f"HaH (σ={s:g}{tail})", "kind": "hah", "sigma": s, "norm": norm, "ref": std} for s in sig]
    for c in out:
        c["tag"] = f"{c['kind']}_s{c['sigma']}_{'norm' if c['norm'] else 'raw'}".replace(".", "p")
    return out


# ------------------------------------------------------------------------------ data and models
def load_data(args):
    """``(train, x_test, y_test)``, images in [0, 1] (the models normalise); ``train`` is a tensor
    pair or a Dataset (CIFAR with random-crop + flip augmentation)."""
    if args.dataset == "mnist_sample":
        xtr, ytr = tt.data.mnist_sample_tensors("train", normalize=False)
        xte, yte = tt.data.mnist_sample_tensors("test", normalize=False)
        if args.n_train:
            xtr, ytr = xtr[: args.n_train], ytr[: args.n_train]
        train = (xtr, ytr)
    else:
        if args.dataset == "mnist":
            tr = open_dataset("mnist", args.data_root, tt.data.mnist, train=True, normalize=False)
            te = open_dataset("mnist", args.data_root, tt.data.mnist, train=False, normalize=False)
        else:
            tr = open_dataset("cifar10", args.data_root, tt.data.cifar10, train=True, normalize=False, augment=True)
            te = open_dataset("cifar10", args.data_root, tt.data.cifar10, train=False, normalize=False)
        if args.n_train:
            tr = torch.utils.data.Subset(tr, range(min(args.n_train, len(tr))))
        train = tr
        xte, yte = tt.data.to_tensors(te, args.n_test or None, batch_size=1000, progress=True)
    if args.n_test:
        xte, yte = xte[: args.n_test], yte[: args.n_test]
    return train, xte, yte


def make_model(cond: Dict, args) -> nn.Module:
    name, variants = MODELS[args.dataset]
    return tt.models.get_model(name, sigma=cond["sigma"] or 0.1, keep=args.keep, normalize=cond["norm"],
                               **variants[cond["kind"]])


def probe_layers(model: nn.Module, n: int) -> List[str]:
    """Output of the first ``n`` conv blocks: the HaH block's thresholded output, or the
    standard block's ReLU."""
    names = []
    for i, blk in enumerate(model.features):
        if isinstance(blk, nn.Sequential) and len(names) < n:
            names.append(f"features.{i}.{len(blk) - 1}")
    return names


def epoch_batches(train, args, g: torch.Generator):
    """``epoch -> batches``: shuffled batches of a tensor pair, or a shuffling DataLoader."""
    if isinstance(train, tuple):
        x, y = train
        return lambda ep: tt.data.batches(x, y, args.batch_size, generator=g, drop_last=x.shape[0] >= args.batch_size)
    loader = torch.utils.data.DataLoader(train, batch_size=args.batch_size, shuffle=True, generator=g, drop_last=True,
                                         num_workers=2)
    return lambda ep: loader


def train_model(cond: Dict, seed: int, args, train, xte, yte):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = make_model(cond, args).to(args.device)
    reg = None
    if cond["kind"] == "hah":
        k = len(tt.hah_layer_names(model))
        reg = tt.attach(model, tt.hebbian_terms(model, tt.PAPER_HEBBIAN_STRENGTHS[:k], local=not args.end_to_end))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    milestones = [int(args.epochs * 0.6), int(args.epochs * 0.8)] if args.dataset == "cifar10" else []
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=0.1)
    xs, ys = xte[:1000], yte[:1000]
    hist = fit(model, epoch_batches(train, args, g), opt, epochs=args.epochs, reg=reg, sched=sched, device=args.device,
               log_terms=reg is not None, on_epoch=lambda m: {"test_acc": adv.accuracy(m, xs.to(args.device), ys.to(args.device))},
               desc=f"train {cond['name']} seed {seed}")
    if reg is not None:
        reg.remove()
    model.eval()
    # H: the HaH objective per layer (the negated cost); test accuracy (%) on up to 1,000 test images
    return model, [{"epoch": r["epoch"], "ce": r["ce"], "test_acc": r["test_acc"],
                    "H": {k: -v for k, v in r.get("terms", {}).items()}} for r in hist]


# ------------------------------------------------------------------------------ evaluation
def paper_pair(cond: Dict) -> bool:
    """The paper's setting: the standard model or HaH at σ = 0.1, both with input normalisation."""
    return cond["norm"] and (cond["kind"] == "standard" or abs(cond["sigma"] - 0.1) < 1e-12)


def pgd_curve(model: nn.Module, x, y, eps: List[float], norm: str, args, seed: int):
    """Accuracy (%) at each radius of ``eps`` (ascending) and the per-image robust masks.

    The ℓp balls nest, so an image PGD fools within a smaller radius is fooled within every
    larger one: each radius attacks only the images that survived the previous ones (the worst
    case over the attacks run, and the curve's cost is that of its survivors)."""
    alive = torch.ones(y.shape[0], dtype=torch.bool)
    accs, masks = [], []
    for e in eps:
        idx = alive.nonzero().flatten()
        if idx.numel():
            alive[idx] = adv.pgd_robust(model, x[idx], y[idx], eps=e, norm=norm, steps=args.pgd_steps,
                                        restarts=args.pgd_restarts, seed=seed)
        accs.append(100.0 * float(alive.sum()) / y.shape[0])
        masks.append(alive.clone())
    return accs, masks


def evaluate(model: nn.Module, args, xte, yte, seed: int, cond: Dict) -> Dict:
    """Accuracies in percent: clean; the noise curve on the test set; the PGD ε curves on the
    first ``n_attack`` test images; AutoAttack at the paper's points on the first
    ``n_autoattack`` of them that PGD did not fool; activation sparsity; seconds per part."""
    dev = args.device
    xa, ya = xte[: args.n_attack].to(dev), yte[: args.n_attack].to(dev)
    t = {"noise": time.time()}
    res = {"clean": adv.accuracy(model, xte.to(dev), yte.to(dev)), "clean_attack_subset": adv.accuracy(model, xa, ya)}
    res["noise"] = [res["clean"] if s == 0 else adv.gaussian_noise_accuracy(model, xte.to(dev), yte.to(dev), s, seed=seed)
                    for s in args.curves["noise"]]
    t["noise"] = time.time() - t["noise"]
    masks = {}
    for norm in ("linf", "l2"):
        t0 = time.time()
        res[norm], masks[norm] = pgd_curve(model, xa, ya, args.curves[norm], norm, args, seed)
        t[f"pgd_{norm}"] = time.time() - t0
    if args.autoattack and (args.autoattack_conditions == "all" or paper_pair(cond)):
        n = args.n_autoattack
        res["autoattack_clean_subset"] = adv.accuracy(model, xa[:n], ya[:n])
        for norm, e in progress(AA_POINTS, "AutoAttack"):
            t0 = time.time()
            alive = masks[norm][next(i for i, v in enumerate(args.curves[norm]) if abs(v - e) < 1e-12)][:n]
            idx = alive.nonzero().flatten()
            kept = 0
            if idx.numel():  # AutoAttack on the PGD survivors: an image counts robust only if neither attack fools it
                pct = adv.autoattack(model, xa[:n][idx], ya[:n][idx], norm=norm, eps=e, seed=seed)
                kept = round(pct * idx.numel() / 100)
            res[f"autoattack_{norm}_{eps_name(e)}"] = 100.0 * kept / n
            res[f"autoattack_pgd_{norm}_{eps_name(e)}"] = 100.0 * float(alive.sum()) / n  # PGD alone, same images
            t[f"autoattack_{norm}"] = time.time() - t0
    res["sparsity"] = adv.sparsity_stats(model, xte[:500].to(dev), probe_layers(model, 2))
    res["seconds"] = t
    return res


# ------------------------------------------------------------------------------ main
def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    t0 = start(args)
    train, xte, yte = load_data(args)
    conds = conditions(args)
    sig = {k: v for k, v in vars(args).items() if k in ("dataset", "epochs", "batch_size", "lr", "n_train", "keep",
                                                         "end_to_end", "tiny")}
    evsig = {k: v for k, v in vars(args).items() if k in ("curves", "n_test", "n_attack", "n_autoattack", "pgd_steps",
                                                           "pgd_restarts", "autoattack", "autoattack_conditions")}
    evsig["curve_pgd"] = "nested radii, survivors only"  # older evaluations attacked every image at every radius
    ck = Checkpoints(os.path.join(args.out, "checkpoints"), sig)
    runs: Dict[str, List[Dict]] = {c["name"]: [] for c in conds}
    first: Dict[str, nn.Module] = {}
    fresh = {"trained": 0, "evaluated": 0, "models": len(conds) * args.seeds}  # the rest come from checkpoints/
    say(f"{len(conds)} conditions × {args.seeds} seeds; attacks: PGD ({args.pgd_steps} steps, {args.pgd_restarts} "
        f"restart(s)) for the curves" + (", AutoAttack at the paper's points" if args.autoattack else
                                         ", no AutoAttack (torchattacks not installed or --n-autoattack 0)"))
    for seed in range(args.seed, args.seed + args.seeds):
        for c in conds:
            tag = f"{c['tag']}_seed{seed}"
            model = make_model(c, args)
            blob = None if args.no_resume else ck.load(tag, model)
            if blob is None:
                fresh["trained"] += 1
                t1 = time.time()
                model, hist = train_model(c, seed, args, train, xte, yte)
                ck.save(tag, model, history=hist, train_seconds=time.time() - t1)
                blob = {"history": hist, "train_seconds": time.time() - t1}
            model.to(args.device).eval()
            ev = None if args.no_resume else ck.load_json(tag + ".eval.json")
            if ev is None or ev.get("sig") != evsig:
                fresh["evaluated"] += 1
                ev = {"sig": evsig, **evaluate(model, args, xte, yte, seed, c)}
                ck.save_json(tag + ".eval.json", ev)
            ev = {k: v for k, v in ev.items() if k != "sig"}
            runs[c["name"]].append({"seed": seed, **ev, "history": blob["history"],
                                    "train_seconds": float(blob["train_seconds"])})
            first.setdefault(c["name"], model)
            say(f"{c['name']}, seed {seed}: clean {ev['clean']:.1f} %, noise σ=0.1 {ev['noise'][args.curves['noise'].index(0.1)]:.1f} %"
                if 0.1 in args.curves["noise"] else f"{c['name']}, seed {seed}: clean {ev['clean']:.1f} %")
    payload = summarise(args, conds, runs)
    payload["seconds"] = time.time() - t0
    payload["n_test"] = int(xte.shape[0])
    payload["this_invocation"] = fresh
    figs = [] if args.no_plots else figures(args, conds, payload, first, xte)
    write_results(args.out, payload, report(args, conds, payload, figs))
    for line in payload["verdict_lines"]:
        say(line)
    say(f"wrote {os.path.join(args.out, 'report.md')} ({payload['seconds']:.0f} s)")
    return payload


__all__ = ["main", "parse_args", "conditions", "make_model", "load_data", "PAPER"]

if __name__ == "__main__":
    main()
