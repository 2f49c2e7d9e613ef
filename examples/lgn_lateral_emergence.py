"""LGN pre-filter and learned lateral connections: what emerges when an LGN-CNN is trained.

After Bertoni, Montobbio, Sarti & Citti, "Emergence of Lie symmetries in functional architectures
learned by CNNs" (Front. Comput. Neurosci. 2021) and LGN-CNN (Bertoni, Citti & Sarti 2022).
The model ``tt.models.lgn_cnn`` (ℓ0: one learned filter, ℓ1: 7×7 filters with a learned lateral
kernel K, a small classifier) is trained end to end from several seeds, then per seed:

- ℓ0 is fitted by a Laplacian of Gaussian (``tt.analysis.fit_log``: σ, R², residual) and its
  isotropy measured (``radial_symmetry``: 1 = radially symmetric);
- the ℓ1 filters are fitted by Gabor functions (``tt.analysis.fit_gabor``: share with R² > 0.8,
  and how the well-fitted filters' orientations cover six 30° bins);
- K's strength is related to the orientation difference of the filters it connects
  (``tt.analysis.lateral_selectivity``) with three measures — net Σ K, excitatory Σ max(K, 0),
  absolute Σ |K| — each against a baseline of K with shuffled entries, and its association field
  is drawn (``tt.analysis.association_field``).

The lateral claim (similarly tuned filters are connected more strongly) is *testable* in a seed
only when at least ``--min-fitted`` ℓ1 filters fit a Gabor with R² > 0.8, their orientations
cover at least ``--min-orientation-bins`` of the six bins and every orientation-difference bin
has pairs; the report says "not testable in this run" with the reason otherwise, and gives a
verdict only from two or more testable seeds (mean ± SE and 95 % interval of r − shuffled r).
Every number is also computed for the untrained network of the same seed (the chance level).

    python examples/lgn_lateral_emergence.py --quick --threads 1    # 2 seeds × 150 steps (~1 min, 1 core): too short to test
    python examples/lgn_lateral_emergence.py                        # 3 seeds × 2,000 steps (17 min on one idle core)
    python examples/lgn_lateral_emergence.py --dataset cifar10 --data-root ~/data

Data.  The offline default (``--dataset auto`` = ``natural`` when scikit-image is installed) is
32 × 32 grey patches of the natural photographs that scikit-image ships (astronaut, camera, cat,
coffee, rocket, coins, moon, brick, grass, gravel, a Hubble field, a microscopy slide), the task
being to tell which photograph a patch comes from; each photograph's left 80 % feeds training and
its right 20 % the test set.  Why: the study's claims are about natural images (CIFAR-10 in the
predecessor), whose 1/f statistics and oriented edges are what LoG and Gabor filters are matched
to; MNIST digits are binary strokes on a flat background, a poorer test of that emergence.  A
random contrast/brightness change per patch (x → a·x + b) keeps the mean luminance from being a
shortcut.  ``--dataset mnist_sample`` (``tt.data.mnist_sample()``) is the fallback without
scikit-image; ``mnist`` and ``cifar10`` read torchvision's folders under ``--data-root`` (no
download), ℓ0 shared across the three CIFAR channels and the ℓ1 fits on each filter's achromatic
part (the sum over its input channels).

Training choices.  Adam (lr 2e-3, cosine decay), batch 32; the lateral propagation runs
``lgn_cnn``'s default number of steps unless ``--lateral-steps``.  The random initial ℓ0 and ℓ1
filters are scaled by ``--init-scale`` 0.2 (still random, no shape imposed): in a short CPU run the
learned structure otherwise stays buried under the initial noise (pilot, 400 steps on the natural
patches: share of ℓ1 filters with Gabor R² > 0.8 went from 0 % at scale 1 to 19 % at scale 0.2).

Writes ``report.md``, ``results.json`` and PNG figures into ``--out``.
"""
from __future__ import annotations

import argparse
import inspect
import math
import os
import sys
import time
from typing import Dict, List, Optional, Tuple

import torch

import torchtopo as tt

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:  # the examples' shared helpers
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import add_common_args, fit, make_parser, open_dataset, parse, progress, say, start, write_results
from _lgn_report import aggregate, make_figures, report

NATURAL_IMAGES = (
    "astronaut", "camera", "chelsea", "coffee", "rocket", "coins",
    "moon", "brick", "grass", "gravel", "hubble_deep_field", "immunohistochemistry",
)
OPTIMIZERS = {
    "adam": lambda params, a: torch.optim.Adam(params, lr=a.lr, weight_decay=a.weight_decay),
    "sgd": lambda params, a: torch.optim.SGD(params, lr=a.lr, momentum=0.9, weight_decay=a.weight_decay),
}
#: the lateral propagation steps of ``tt.models.lgn_cnn`` (the example's default, kept in sync)
LGN_STEPS = inspect.signature(tt.models.lgn_cnn).parameters["steps"].default
EXAMPLE = "python examples/lgn_lateral_emergence.py --quick --threads 1 --out runs/lgn_quick"
EXTRA = {"auto": "natural when scikit-image is installed, else mnist_sample",
         "natural": "offline: 32×32 grey patches of scikit-image's photographs (pip install scikit-image)"}
ORIENTATION_BINS = 6  # 30° bins for the coverage of the well-fitted filters' orientations


# ------------------------------------------------------------------------------ configuration
def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = make_parser(__doc__, EXAMPLE)
    add_common_args(p, out="runs/lgn_lateral_emergence", datasets=["auto", "natural", "mnist_sample", "mnist", "cifar10"],
                    extra_datasets=EXTRA, seeds="independently trained networks (default 3; 2 with --quick)",
                    quick_help="2 seeds × 150 steps: runs everything, too short for emergence (the report says so)")
    p.add_argument("--steps", type=int, default=None, help="training steps (mini-batches); default 2,000")
    p.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    p.add_argument("--lr", type=float, default=2e-3, help="learning rate (default 2e-3, cosine decay)")
    p.add_argument("--channels", type=int, default=32, help="ℓ1 filters (default 32)")
    p.add_argument("--lateral-steps", type=int, default=LGN_STEPS,
                   help=f"T, the lateral propagation steps of LateralConv2d (default {LGN_STEPS}, lgn_cnn's)")
    p.add_argument("--lateral-kernel-size", type=int, default=5, help="spatial size of K (default 5)")
    p.add_argument("--update", default="recurrent", choices=["recurrent", "euler", "diffusion"],
                   help="the lateral update rule (see tt.LateralConv2d; the study's exact rule is unconfirmed)")
    p.add_argument("--optimizer", default="adam", choices=list(OPTIMIZERS), help="optimizer (default adam)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="L2 on all weights (coupled, as in torch.optim)")
    p.add_argument("--init-scale", type=float, default=0.2,
                   help="multiply the random initial ℓ0 and ℓ1 filters by this (no structure is imposed)")
    p.add_argument("--r2-threshold", type=float, default=0.8, help="Gabor fit R² above which a filter counts as fitted")
    p.add_argument("--min-fitted", type=int, default=8, help="fitted ℓ1 filters needed to test the lateral claim")
    p.add_argument("--min-orientation-bins", type=int, default=4,
                   help=f"of {ORIENTATION_BINS} 30° bins, how many the fitted filters' orientations must cover")
    p.add_argument("--permutations", type=int, default=2000, help="orientation permutations of the p-value")
    p.add_argument("--shuffles", type=int, default=20, help="shuffled-K draws of the baseline")
    a = parse(p, argv, offline=["auto", "natural", "mnist_sample"])
    if a.steps is None:
        a.steps = 6 if a.tiny else (150 if a.quick else 2000)
    a.seeds = a.seeds or (2 if a.tiny or a.quick else 3)
    if a.tiny:
        a.batch_size = min(a.batch_size, 8)
        a.permutations = min(a.permutations, 20)
        a.shuffles = min(a.shuffles, 3)
        a.channels = min(a.channels, 8)
    if a.dataset == "auto":
        try:
            import skimage  # noqa: F401
            a.dataset = "natural"
        except ImportError:
            a.dataset = "mnist_sample"
    if a.seeds < 1 or a.steps < 1:
        p.error("--seeds and --steps must be >= 1")
    return a


# ------------------------------------------------------------------------------ data
class NaturalPatches:
    """Random 32×32 grey patches of scikit-image's photographs; label = which photograph."""

    def __init__(self, split: str, size: int = 32, seed: int = 0, jitter: bool = True):
        try:
            import skimage.data as skd
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("--dataset natural needs scikit-image: pip install scikit-image") from e
        self.images: List[torch.Tensor] = []
        for name in NATURAL_IMAGES:
            im = torch.as_tensor(getattr(skd, name)()).float() / 255.0
            if im.dim() == 3:
                im = (im[..., :3] * torch.tensor([0.299, 0.587, 0.114])).sum(-1)
            w = im.shape[1]
            cut = int(0.8 * w)
            self.images.append(im[:, :cut] if split == "train" else im[:, cut:])
        self.size = size
        self.jitter = jitter
        self.gen = torch.Generator().manual_seed(seed)
        self.num_classes = len(self.images)

    def batch(self, n: int) -> Tuple[torch.Tensor, torch.Tensor]:
        g, s = self.gen, self.size
        y = torch.randint(0, self.num_classes, (n,), generator=g)
        xs = []
        for k in y.tolist():  # data loading: one crop per sample
            im = self.images[k]
            i = int(torch.randint(0, im.shape[0] - s + 1, (1,), generator=g))
            j = int(torch.randint(0, im.shape[1] - s + 1, (1,), generator=g))
            xs.append(im[i:i + s, j:j + s])
        x = torch.stack(xs)[:, None]
        flip = torch.rand(n, generator=g) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if self.jitter:
            a = 0.6 + 0.8 * torch.rand(n, 1, 1, 1, generator=g)
            b = 0.4 * torch.rand(n, 1, 1, 1, generator=g) - 0.2
            x = a * (x - 0.5) + 0.5 + b
        return (x - 0.45) / 0.25, y

    def fixed(self, n: int, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
        old = self.gen
        self.gen = torch.Generator().manual_seed(seed)
        try:
            return self.batch(n)
        finally:
            self.gen = old


class TensorBatches:
    def __init__(self, x: torch.Tensor, y: torch.Tensor, seed: int = 0):
        self.x, self.y = x, y
        self.gen = torch.Generator().manual_seed(seed)
        self.num_classes = int(y.max()) + 1

    def batch(self, n: int) -> Tuple[torch.Tensor, torch.Tensor]:
        i = torch.randint(0, self.x.shape[0], (n,), generator=self.gen)
        return self.x[i], self.y[i]

    def fixed(self, n: int, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
        n = min(n, self.x.shape[0])
        return self.x[:n], self.y[:n]


def load_data(a: argparse.Namespace, seed: int):
    """(train, test, in_channels): objects with ``batch(n)``, ``fixed(n, seed)`` and ``num_classes``."""
    if a.dataset == "natural":
        return NaturalPatches("train", seed=seed), NaturalPatches("test", seed=seed + 1, jitter=False), 1
    if a.dataset == "mnist_sample":
        xtr, ytr = tt.data.mnist_sample_tensors("train")
        xte, yte = tt.data.mnist_sample_tensors("test")
        return TensorBatches(xtr, ytr, seed), TensorBatches(xte, yte), 1
    loader = tt.data.cifar10 if a.dataset == "cifar10" else tt.data.mnist
    tr = open_dataset(a.dataset, a.data_root, loader, train=True)
    te = open_dataset(a.dataset, a.data_root, loader, train=False)
    xtr, ytr = tt.data.to_tensors(tr, min(len(tr), 10000 if not (a.quick or a.tiny) else 2000))
    xte, yte = tt.data.to_tensors(te, min(len(te), 2000))
    return TensorBatches(xtr, ytr, seed), TensorBatches(xte, yte), xtr.shape[1]


# ------------------------------------------------------------------------------ analyses
def l1_filters(model) -> torch.Tensor:
    """The ℓ1 filters' achromatic part: Σ over input channels, (C, k, k)."""
    return model.v1.conv.weight.detach().sum(1)


def _f(x) -> Optional[float]:
    """A float, or None when not finite (JSON and report carry no NaN)."""
    x = float(x)
    return x if math.isfinite(x) else None


def analyse(model, a: argparse.Namespace, seed: int, lateral: bool = True) -> Dict:
    """ℓ0 LoG fit and isotropy; ℓ1 Gabor fits and orientation coverage; with ``lateral`` the
    selectivity of K (net, excitatory, absolute) against shuffled-K baselines and testability."""
    log = tt.analysis.fit_log(model.lgn.filter.detach())
    gab = tt.analysis.fit_gabor(l1_filters(model))
    good = gab["r2"] > a.r2_threshold
    theta = torch.rad2deg(gab["orientation"]) % 180.0
    bins = torch.bincount((theta[good] // (180.0 / ORIENTATION_BINS)).long().clamp(max=ORIENTATION_BINS - 1),
                          minlength=ORIENTATION_BINS)
    res = {
        "l0": {k: (_f(v) if v.numel() == 1 else [_f(t) for t in v.flatten()]) for k, v in log.items() if k != "fitted"},
        "l1": {"r2": [_f(v) for v in gab["r2"]], "n_fitted": int(good.sum()), "share_r2_above": float(good.float().mean()),
               "median_r2": _f(gab["r2"].median()), "orientation_deg": [_f(v) for v in theta],
               "orientation_bins_covered": int((bins > 0).sum()), "orientation_bin_counts": bins.tolist()},
        "_log": log, "_gabor": gab, "_good": good,
    }
    if not lateral:
        return res
    K = model.v1.lateral_weight.detach()
    mask = good if int(good.sum()) >= 2 else gab["r2"] >= gab["r2"].median()
    g = torch.Generator().manual_seed(seed + 7)
    shuffled = [K.flatten()[torch.randperm(K.numel(), generator=g)].reshape(K.shape) for _ in range(a.shuffles)]
    lat = {"units_used": int(mask.sum()), "units_rule": f"R² > {a.r2_threshold}" if int(good.sum()) >= 2 else
           "R² ≥ median (fewer than 2 filters fitted; descriptive only)", "K_abs_mean": float(K.abs().mean())}
    for measure in progress(("sum", "positive", "abs"), "lateral measures"):
        sel = tt.analysis.lateral_selectivity(K, gab["orientation"], mask=mask, measure=measure,
                                              n_permutations=a.permutations, seed=seed)
        rs = [float(tt.analysis.lateral_selectivity(Ks, gab["orientation"], mask=mask, measure=measure,
                                                    n_permutations=0)["r"]) for Ks in shuffled]
        rs = [r for r in rs if math.isfinite(r)]
        m = sum(rs) / len(rs) if rs else None
        sd = math.sqrt(sum((r - m) ** 2 for r in rs) / (len(rs) - 1)) if len(rs) > 1 else None
        lat[measure] = {"r": _f(sel["r"]), "p_value": _f(sel["p_value"]), "iso_minus_orth": _f(sel["iso_minus_orth"]),
                        "shuffled_r_mean": m, "shuffled_r_sd": sd, "bin_centers_deg": [float(v) for v in sel["bin_centers"]],
                        "mean_strength": [_f(v) for v in sel["mean"]], "count": [int(v) for v in sel["count"]]}
        if measure == "sum":
            res["_sel"] = sel
    field = tt.analysis.association_field(K, gab["orientation"], mask=mask)
    fs = [tt.analysis.association_field(Ks, gab["orientation"], mask=mask) for Ks in shuffled[:5]]
    for k in ("coaxial_index", "cocircularity"):
        lat[k] = _f(field[k])
        vals = [float(f[k]) for f in fs if math.isfinite(float(f[k]))]
        lat[k + "_shuffled"] = sum(vals) / len(vals) if vals else None
    reasons = []
    if int(good.sum()) < a.min_fitted:
        reasons.append(f"{int(good.sum())} of {len(good)} ℓ1 filters fit a Gabor with R² > {a.r2_threshold} "
                       f"(need {a.min_fitted})")
    if res["l1"]["orientation_bins_covered"] < a.min_orientation_bins:
        reasons.append(f"their orientations cover {res['l1']['orientation_bins_covered']} of {ORIENTATION_BINS} 30° bins "
                       f"(need {a.min_orientation_bins})")
    empty = sum(c == 0 for c in lat["sum"]["count"])
    if empty:
        reasons.append(f"{empty} of {len(lat['sum']['count'])} orientation-difference bins have no pairs")
    lat["testable"], lat["not_testable_because"] = not reasons, reasons
    res["lateral"], res["_field"], res["_mask"] = lat, field, mask
    return res


def evaluate(model, data, n: int = 2000, batch: int = 250) -> float:
    """Top-1 accuracy (%) on a fixed set of n test items."""
    x, y = data.fixed(n, seed=12345)
    return tt.robustness.evaluate_accuracy(model, (x, y), batch_size=batch)


def _public(d: Dict) -> Dict:
    return {k: v for k, v in d.items() if not k.startswith("_")}


def run_seed(a: argparse.Namespace, seed: int) -> Tuple[Dict, object, Dict, Dict, List[float]]:
    train, test, in_ch = load_data(a, seed)
    torch.manual_seed(seed)  # the model's initialisation (after loading: a DataLoader draws a seed)
    model = tt.models.get_model("lgn_cnn", num_classes=train.num_classes, in_channels=in_ch, channels=a.channels,
                                steps=a.lateral_steps, lateral_kernel_size=a.lateral_kernel_size, update=a.update)
    with torch.no_grad():
        model.lgn.weight.mul_(a.init_scale)
        model.v1.conv.weight.mul_(a.init_scale)
    before = analyse(model, a, seed, lateral=False)
    opt = OPTIMIZERS[a.optimizer](model.parameters(), a)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, a.steps))
    losses: List[torch.Tensor] = []
    t0 = time.time()
    fit(model.to(a.device), lambda ep: (train.batch(a.batch_size) for _ in range(a.steps)), opt, sched=sched,
        sched_every="batch", device=a.device, step_losses=losses, desc=f"train seed {seed}")
    model.cpu().eval()
    losses_f = [float(v) for v in torch.stack(losses)] if losses else []
    train_s = time.time() - t0
    acc = evaluate(model, test, n=200 if a.tiny else 2000)
    after = analyse(model, a, seed)
    tail = losses_f[-max(1, len(losses_f) // 10):]
    head = losses_f[-2 * len(tail):-len(tail)] or tail
    rec = {"seed": seed, "train_seconds": train_s, "test_accuracy": acc, "chance_accuracy": 100.0 / train.num_classes,
           "final_loss": sum(tail) / len(tail), "loss_previous_tenth": sum(head) / len(head),
           "trained": _public(after), "untrained": _public(before)}
    lat = after["lateral"]
    say(f"seed {seed}: test accuracy {acc:.1f} % (chance {100.0 / train.num_classes:.1f} %), ℓ0 LoG R² "
        f"{after['l0']['r2']:.2f}, isotropy {after['l0']['radial_symmetry']:.2f}; {after['l1']['n_fitted']} of "
        f"{a.channels} ℓ1 filters fitted, {after['l1']['orientation_bins_covered']}/{ORIENTATION_BINS} orientation bins; "
        + ("lateral claim testable" if lat["testable"] else "lateral claim not testable: " + "; ".join(lat["not_testable_because"])))
    return rec, model, after, before, losses_f


# ------------------------------------------------------------------------------ main
def main(argv: Optional[List[str]] = None) -> Dict:
    a = parse_args(argv)
    t0 = start(a)
    recs, shown = [], None  # the figures' seed: the first whose lateral claim is testable, else the first
    for seed in range(a.seed, a.seed + a.seeds):
        rec, model, after, before, losses = run_seed(a, seed)
        recs.append(rec)
        if shown is None or (not shown[1]["lateral"]["testable"] and after["lateral"]["testable"]):
            shown = (model, after, before, losses, seed)
    results = {"config": dict(vars(a)), "seeds": recs, **aggregate(a, recs)}
    results["seconds"] = time.time() - t0
    results["figure_seed"] = shown[4]
    results["figures"] = [] if a.no_plots else make_figures(a.out, *shown)
    write_results(a.out, results, report(a, results))
    say(f"lateral claim: {results['lateral_verdict']}")
    say(f"wrote {os.path.join(a.out, 'report.md')} ({results['seconds']:.0f} s)")
    return results


if __name__ == "__main__":
    main()
