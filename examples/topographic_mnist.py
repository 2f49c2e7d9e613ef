"""Topographic regularization: Weight Similarity (WS) vs Activation Similarity (AS).

Reproduces Truong & Hasson, "Beyond topography: topographic regularization improves robustness
and reshapes representations in convolutional neural networks" (STUDIES.md §1) with torchtopo:
the study CNN (``tt.models.mnist_cnn``: fc1 = 121 units on an 11×11 grid), trained as a control
(λ = 0) and with WS or AS on ``fc1`` at several strengths λ and seeds, then evaluated with
``tt.analysis`` and ``tt.robustness``: accuracy, weight-noise and input-noise robustness, unit
entropy and PoZ, correlation structure, Moran's I, expert units and their localisation,
orientation, symmetry and eccentricity probes.

    python examples/topographic_mnist.py --quick --out runs/topographic    # < 2 min on 2 cores
    python examples/topographic_mnist.py                                    # default grid (~10-15 min)
    python examples/topographic_mnist.py --full                             # 13 conditions × 10 models
    python examples/topographic_mnist.py --dataset cifar10 --data-root ~/data

Offline by default: the 4,000/1,000 real MNIST digits of ``tt.data.mnist_sample()``.  Writes
``report.md``, ``results.json`` and PNG figures into ``--out``; trained models (and their
evaluations) are kept in ``--out/checkpoints`` and a rerun skips the finished ones
(``--no-resume`` retrains).
"""
from __future__ import annotations

import argparse
import hashlib
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


NOISE_LEVELS = [0.01, 0.05, 0.1, 0.15, 0.2]
WEIGHT_SIGMAS = [0.01, 0.02, 0.05, 0.1, 0.2]


# ------------------------------------------------------------------------------ configuration
def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/topographic_mnist", help="output folder (report.md, results.json, PNGs)")
    p.add_argument("--quick", action="store_true", help="control + WS + AS at λ=1, 1 seed, 3 epochs (< 2 min)")
    p.add_argument("--full", action="store_true", help="the paper's grid: control + WS/AS × λ∈{0.1,0.3,0.5,1,2,3}, 10 seeds")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # CI smoke test
    p.add_argument("--dataset", default="mnist_sample", choices=["mnist_sample", "mnist", "cifar10"])
    p.add_argument("--data-root", default=None, help="folder with torchvision's MNIST / CIFAR-10 (no download)")
    p.add_argument("--lambdas", type=float, nargs="+", default=None, help="λ grid for WS and AS")
    p.add_argument("--seeds", type=int, default=None, help="models per condition")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None, help="default 64 (the paper's); 32 on the small MNIST sample")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-3, the paper's; 3e-3 on the small sample)")
    p.add_argument("--ws-distance", default=None, help="WS distance (default: correlation on MNIST, cosine on CIFAR-10)")
    p.add_argument("--as-distance", default="correlation")
    p.add_argument("--n-train", type=int, default=None, help="use only this many training images")
    p.add_argument("--n-test", type=int, default=None, help="use only this many test images")
    p.add_argument("--common-corruptions", action="store_true", help="also evaluate the 15 ImageNet-C corruptions (on by default with --full)")
    p.add_argument("--weight-repeats", type=int, default=None, help="noise draws per weight-noise level")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-resume", action="store_true", help="retrain even if a checkpoint exists")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--no-train", action="store_true",
                   help="report only the models already in --out/checkpoints (train nothing)")
    p.add_argument("--shard", default=None, metavar="K/N",
                   help="train and evaluate only every N-th model starting at K (run N such processes in "
                        "parallel, then once without --shard to collect everything into the report)")
    a = p.parse_args(argv)
    if a.shard is not None:
        try:
            k, n = (int(v) for v in a.shard.split("/"))
            assert 0 <= k < n
        except (ValueError, AssertionError):
            p.error(f"--shard must be K/N with 0 <= K < N, got {a.shard!r}")
        a.shard = (k, n)
    cifar = a.dataset == "cifar10"
    small = a.dataset == "mnist_sample"
    if a.full:
        lam, seeds, epochs = [0.1, 0.3, 0.5, 1.0, 2.0, 3.0], 10, (30 if cifar else 10)
    elif a.quick:
        lam, seeds, epochs = [1.0], 1, 4
    elif a.tiny:
        lam, seeds, epochs = [1.0], 1, 1
    else:
        lam, seeds, epochs = [0.3, 1.0, 3.0], 3, (30 if cifar else 10)
    a.lambdas = sorted(a.lambdas if a.lambdas is not None else lam)
    a.seeds = a.seeds if a.seeds is not None else seeds
    a.epochs = a.epochs if a.epochs is not None else epochs
    # The 4,000-digit sample gives 15× fewer steps per epoch than full MNIST: a smaller batch and
    # a slightly larger step let 10 epochs converge.  Full datasets use the paper's 64 / 1e-3.
    a.batch_size = a.batch_size if a.batch_size is not None else (32 if small else 64)
    a.lr = a.lr if a.lr is not None else (3e-3 if small else 1e-3)
    a.common_corruptions = a.common_corruptions or a.full
    a.weight_repeats = a.weight_repeats if a.weight_repeats is not None else (1 if (a.quick or a.tiny) else 2)
    if a.tiny:
        a.n_train = a.n_train or 320
        a.n_test = a.n_test or 100
    a.ws_distance = a.ws_distance or ("cosine" if cifar else "correlation")
    if a.dataset != "mnist_sample" and a.data_root is None:
        p.error(f"--dataset {a.dataset} needs --data-root DIR (torchtopo never downloads data)")
    if any(l <= 0 for l in a.lambdas):
        p.error("--lambdas must be positive (the control, λ = 0, is always trained)")
    if a.seeds < 1 or a.epochs < 1:
        p.error("--seeds and --epochs must be >= 1")
    return a


def conditions(args) -> List[Dict]:
    out = [{"name": "control", "method": "control", "lam": 0.0}]
    for method in ("WS", "AS"):
        for lam in args.lambdas:
            out.append({"name": f"{method}_{lam:g}", "method": method, "lam": float(lam)})
    return out


def representative_lambda(args) -> float:
    """The λ used in the per-model figures: 1 if in the grid, else the middle one."""
    return 1.0 if 1.0 in args.lambdas else args.lambdas[len(args.lambdas) // 2]


# ------------------------------------------------------------------------------ data and model
def load_data(args):
    """(x_train, y_train, x_test, y_test, mean, std) with images in [0, 1]; the model normalises."""
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

        xtr, ytr = tt.data.to_tensors(tr, args.n_train, batch_size=1000, progress=True)
        xte, yte = tt.data.to_tensors(te, args.n_test, batch_size=1000, progress=True)
    if args.n_train is not None:
        xtr, ytr = xtr[: args.n_train], ytr[: args.n_train]
    if args.n_test is not None:
        xte, yte = xte[: args.n_test], yte[: args.n_test]
    return xtr, ytr, xte, yte, mean, std


def make_model(args, mean, std) -> nn.Module:
    """The study CNN with a Normalize layer first, so the model takes images in [0, 1]."""
    m = tt.models.cifar_cnn() if args.dataset == "cifar10" else tt.models.mnist_cnn()
    m.features = nn.Sequential(tt.data.Normalize(mean, std), *m.features)
    return m


def make_term(cond, args):
    if cond["method"] == "WS":
        return tt.WeightSimilarity(strength=cond["lam"], distance=args.ws_distance)
    if cond["method"] == "AS":
        return tt.ActivationSimilarity(strength=cond["lam"], distance=args.as_distance)
    return None


def train_model(cond, seed, args, data, mean, std, desc=""):
    """Adam, a seeded 80/20 train/validation split, no augmentation; CE + λ·S on fc1."""
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
        val_acc = tt.robustness.evaluate_accuracy(model, (xtr[val_idx], ytr[val_idx]), device=args.device)
        history.append({"epoch": epoch + 1, "ce": float(tot_ce) / max(n_batches, 1),
                        "penalty": float(tot_s) / max(n_batches, 1), "val_acc": val_acc})
    if reg is not None:
        reg.remove()
    return model, history


# ------------------------------------------------------------------------------ evaluation
EVAL_VERSION = 3


def eval_key(args) -> str:
    cfg = {"v": EVAL_VERSION, "n_test": args.n_test, "common": args.common_corruptions,
           "rep": args.weight_repeats, "dataset": args.dataset}
    return hashlib.sha1(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:10]


def evaluate(model, args, data, seed: int) -> Dict:
    """Every per-model evaluation of STUDIES.md §1 (scalars and short curves, JSON-able)."""
    A, R = tt.analysis, tt.robustness
    xte, yte = data[2], data[3]
    grid = model.fc1.grid
    dev = args.device
    C, H = xte.shape[1], xte.shape[-1]
    acts, labels = A.collect_activations(model, "fc1", (xte, yte), batch_size=128, device=dev)
    post = acts.clamp_min(0)
    res: Dict = {"acc": R.evaluate_accuracy(model, (xte, yte), device=dev)}
    # smoothness and correlation structure
    res["morans_i"] = float(A.morans_i(acts, grid).mean())
    res["neighbor_r"] = float(A.neighbor_correlation(acts, grid))
    cvd = A.correlation_vs_distance(acts, grid)
    res["corr_distance"] = cvd["distance"].tolist()
    res["corr_mean"] = cvd["mean"].tolist()
    hist = torch.histc(cvd["pair_r"].float(), bins=40, min=-1, max=1)
    res["corr_hist"] = (hist / hist.sum().clamp_min(1)).tolist()
    res["corr_abs_mean"] = float(cvd["pair_r"].abs().mean()) if cvd["pair_r"].numel() else float("nan")
    # bimodality coefficient of the pairwise r distribution: (skew² + 1) / kurtosis; > 5/9 suggests bimodal
    r = cvd["pair_r"].double()
    if r.numel() > 3 and float(r.std()) > 0:
        z = (r - r.mean()) / r.std()
        res["corr_bimodality"] = float(((z**3).mean() ** 2 + 1) / (z**4).mean())
    else:
        res["corr_bimodality"] = float("nan")
    # unit statistics
    res["entropy"] = float(A.unit_entropy(acts).mean())
    res["poz"] = float(A.percent_zero(post).mean())
    res["dead_units"] = int((A.percent_zero(post) >= 100).sum())
    res["ed_acts"] = float(A.effective_dimensionality(acts))
    res["ed_weights"] = float(A.effective_dimensionality(model.fc1.weight.detach(), center=False))
    res["sensitivity"] = float(A.input_sensitivity(acts).mean())
    res["weight_norm"] = float(model.fc1.weight.detach().norm(dim=1).mean())
    # category selectivity and localisation
    d = A.selectivity(acts, labels, 10)
    ex = A.expert_units(d, grid, threshold=1.0)
    loc = ex["localization"]
    res["expert_fraction"] = float(ex["fraction"])
    res["expert_count"] = float(ex["count"].float().mean())
    res["localization"] = float(loc[torch.isfinite(loc)].mean()) if bool(torch.isfinite(loc).any()) else float("nan")
    res["dprime_morans_i"] = float(ex["morans_i"].mean())
    # input corruptions (Truong & Hasson's three noises) at 0.01 … 0.2
    cor = R.evaluate_corruptions(model, (xte, yte), kinds=R.NOISE_CORRUPTIONS,
                                 severities=NOISE_LEVELS, seed=1234, device=dev)
    res["noise_change"] = cor["change"]
    if args.common_corruptions:
        cc = R.evaluate_corruptions(model, (xte, yte), kinds=R.COMMON_CORRUPTIONS, seed=4321, device=dev)
        res["common_change"] = cc["change"]
        res["common_mean_change"] = float(sum(sum(v) for v in cc["change"].values()) / (5 * len(cc["change"])))
    # weight perturbation: fc1 only and all layers
    for scope, mods in (("fc1", "fc1"), ("all", None)):
        wn = R.evaluate_weight_noise(model, (xte, yte), WEIGHT_SIGMAS, modules=mods, readout="fc2",
                                     repeats=args.weight_repeats, seed=seed, device=dev)
        res[f"wnoise_{scope}_change"] = wn["change"]
        res[f"wnoise_{scope}_rsm"] = wn["rsm_cosine"]
    # probes: orientation, symmetry, eccentricity (pre-ReLU fc1; OSI on the rectified output)
    ot = A.orientation_tuning(model, "fc1", size=H, channels=C)
    res["osi"] = float(ot["osi"].mean())
    res["preferred_orientation"] = ot["preferred"].tolist()
    # smoothness of the orientation preference map: Moran's I of cos 2θ and sin 2θ, averaged
    th = ot["preferred"].double() * math.pi / 90
    res["orientation_morans_i"] = float(A.morans_i(torch.stack([th.cos(), th.sin()]).float(), grid).mean())
    res["symmetry_abs_dprime"] = float(A.symmetry_selectivity(model, "fc1", size=H, channels=C).abs().mean())
    ecc = A.eccentricity_tuning(model, "fc1", size=H, channels=C)
    res["eccentricity_slope"] = float(ecc["slope"].mean())
    return res


# ------------------------------------------------------------------------------ aggregation
def _finite(vals):
    return [x for x in vals if x is not None and not (isinstance(x, float) and math.isnan(x))]


def mean_sd(vals):
    v = _finite(vals)
    if not v:
        return float("nan"), float("nan")
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return m, sd


def mean_curve(curves):
    curves = [c for c in curves if c]
    if not curves:
        return [], []
    n = min(len(c) for c in curves)
    ms = [mean_sd([c[k] for c in curves]) for k in range(n)]
    return [m for m, _ in ms], [s for _, s in ms]


SCALARS = ["acc", "morans_i", "neighbor_r", "corr_abs_mean", "corr_bimodality", "entropy", "poz", "dead_units",
           "ed_acts", "ed_weights", "sensitivity", "weight_norm", "expert_fraction", "localization",
           "dprime_morans_i", "osi", "orientation_morans_i", "symmetry_abs_dprime", "eccentricity_slope",
           "noise_mean_change", "wnoise_fc1_change_0.1", "wnoise_all_change_0.1", "wnoise_all_rsm_0.1",
           "common_mean_change"]


def derive(res: Dict) -> None:
    """Scalar summaries of the curves, added in place."""
    ch = res.get("noise_change", {})
    if ch:
        res["noise_mean_change"] = sum(sum(v) for v in ch.values()) / sum(len(v) for v in ch.values())
        for kind, v in ch.items():
            res[f"noise_{kind}_mean_change"] = sum(v) / len(v)
    k = WEIGHT_SIGMAS.index(0.1)
    for key in ("wnoise_fc1_change", "wnoise_all_change", "wnoise_all_rsm", "wnoise_fc1_rsm"):
        if key in res:
            res[f"{key}_0.1"] = res[key][k]


def summarise(results: Dict[str, List[Dict]]) -> Dict[str, Dict]:
    out = {}
    for name, runs in results.items():
        if not runs:
            continue
        s = {"n": len(runs)}
        keys = set().union(*[r.keys() for r in runs])
        for k in sorted(keys):
            vals = [r.get(k) for r in runs]
            if all(isinstance(v, (int, float)) or v is None for v in vals):
                s[k] = list(mean_sd(vals))
            elif all(isinstance(v, list) for v in vals if v is not None) and k != "preferred_orientation":
                s[k] = list(mean_curve([v for v in vals if v is not None]))
            elif all(isinstance(v, dict) for v in vals if v is not None):
                s[k] = {kk: list(mean_curve([v[kk] for v in vals if v is not None])) for kk in vals[0]}
        out[name] = s
    return out


def fmt_cell(m, sd, n, f="{:.3f}"):
    if m is None or (isinstance(m, float) and math.isnan(m)):
        return "–"
    return f.format(m) + (f" ± {f.format(sd)}" if n > 1 else "")


def table(summary, conds, keys, fmt) -> str:
    head = "| condition | n | " + " | ".join(f"`{k}`" for k in keys) + " |"  # code spans: no stray italics
    rows = [head, "|---|---|" + "---|" * len(keys)]
    for c in conds:
        s = summary.get(c["name"])
        if s is None:
            continue
        cells = [fmt_cell(*s.get(k, [float("nan"), float("nan")]), s["n"], fmt.get(k, "{:.3f}")) for k in keys]
        rows.append(f"| {c['name']} | {s['n']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


# ------------------------------------------------------------------------------ claims
def _diff(summary, a, b, key, results=None):
    """(mean difference a − b, its standard error, mean a, mean b).

    Models of the same seed share their initialisation and train/validation split across
    conditions, so when both conditions have the same seeds the difference is paired by seed
    (SE = SD of the per-seed differences / √n); otherwise the two means are compared (Welch SE)."""
    if a not in summary or b not in summary or key not in summary[a] or key not in summary[b]:
        return None
    (ma, sa), (mb, sb) = summary[a][key], summary[b][key]
    if any(isinstance(v, float) and math.isnan(v) for v in (ma, mb)):
        return None
    if results is not None:
        ra = {r["seed"]: r.get(key) for r in results.get(a, [])}
        rb = {r["seed"]: r.get(key) for r in results.get(b, [])}
        common = sorted(k for k in set(ra) & set(rb)
                        if isinstance(ra[k], (int, float)) and isinstance(rb[k], (int, float))
                        and ra[k] == ra[k] and rb[k] == rb[k])
        if len(common) >= 2 and len(common) == len(ra) == len(rb):
            d = [ra[k] - rb[k] for k in common]
            m, sd = mean_sd(d)
            return m, sd / math.sqrt(len(d)), ma, mb
    na, nb = summary[a]["n"], summary[b]["n"]
    se = math.sqrt((sa**2) / na + (sb**2) / nb) if na > 1 and nb > 1 else float("nan")
    return ma - mb, se, ma, mb


def _verdict(d, higher_is_claim=True, tolerance=None):
    """``higher_is_claim``: the claim says a > b.  ``tolerance``: the claim says a is not lower
    than b by more than this (accuracy "largely kept")."""
    if d is None:
        return "cannot tell (not measured)"
    diff, se, ma, mb = d
    if tolerance is not None:
        margin = max(tolerance, 2 * se) if se == se else tolerance
        if diff >= 0:
            return f"agrees (no drop: {diff:+.2f})"
        if -diff <= tolerance:
            return f"agrees (drop {-diff:.2f} ≤ {tolerance:g})"
        if -diff <= margin:
            return f"cannot tell (drop {-diff:.2f} > {tolerance:g} but within 2 SE = {margin:.2f})"
        return f"disagrees (drop {-diff:.2f} > {margin:.2f})"
    sign = 1 if higher_is_claim else -1
    if se != se or se == 0:
        if diff == 0:
            return "cannot tell (equal)"
        return ("agrees in direction (1 model per condition, no test)" if sign * diff > 0 else
                "disagrees in direction (1 model per condition, no test)")
    t = sign * diff / se
    if t > 2:
        return f"agrees (difference {diff:+.3g}, {abs(diff / se):.1f} SE)"
    if t < -2:
        return f"disagrees (difference {diff:+.3g}, {abs(diff / se):.1f} SE the other way)"
    return f"cannot tell (difference {diff:+.3g} is within 2 SE = {2 * se:.3g})"


def claims(summary, args, results=None) -> List[str]:
    lam = representative_lambda(args)
    ws, as_ = f"WS_{lam:g}", f"AS_{lam:g}"
    strong = max(args.lambdas)
    wss, ass = f"WS_{strong:g}", f"AS_{strong:g}"
    lines = []

    def row(claim, key, a, b, higher=True, what="", tolerance=None):
        d = _diff(summary, a, b, key, results)
        nums = "" if d is None else f" — {a} {d[2]:.3g} vs {b} {d[3]:.3g}"
        lines.append(f"| {claim} | {what or key} | {_verdict(d, higher, tolerance)}{nums} |")

    lines.append("| published claim | measure | our run |")
    lines.append("|---|---|---|")
    row("WS gives smooth maps", "morans_i", ws, "control", what="Moran's I (λ=%g)" % lam)
    row("WS gives correlated neighbourhoods", "neighbor_r", ws, "control", what="neighbour r (λ=%g)" % lam)
    row("AS: bimodal inter-unit correlations", "corr_bimodality", as_, "control", what="bimodality coeff. of pairwise r")
    row("AS: no spatial smoothness (vs WS)", "morans_i", ws, as_, what="Moran's I, WS − AS")
    row("WS improves robustness to image degradation on MNIST", "noise_mean_change", ws, "control",
        what="mean acc. change over white/pink/s&p (pp)")
    row("AS improves image-degradation robustness (claimed on CIFAR-10)", "noise_mean_change", as_, "control",
        what="mean acc. change over white/pink/s&p (pp)")
    row("WS improves weight-perturbation robustness", "wnoise_all_change_0.1", ws, "control",
        what="acc. change, σ=0.1 all layers (pp)")
    row("AS improves weight-perturbation robustness", "wnoise_all_change_0.1", as_, "control",
        what="acc. change, σ=0.1 all layers (pp)")
    row("WS keeps readout geometry under weight noise", "wnoise_all_rsm_0.1", ws, "control",
        what="RSM cosine, σ=0.1 all layers")
    row("WS raises unit input sensitivity", "sensitivity", ws, "control", what="mean activation variance")
    row("WS raises functional localisation", "localization", ws, "control", what="expert localisation score")
    pairs = [("WS", ws), ("AS", as_)] + ([("WS", wss), ("AS", ass)] if strong != lam else [])
    for m, a in pairs:
        row(f"accuracy largely kept ({m})", "acc", a, "control",
            what=f"test acc. (%) at λ={a.split('_', 1)[1]}, tolerance 1 pp", tolerance=1.0)
    return lines


# ------------------------------------------------------------------------------ figures
def figures(args, summary, conds, reps, data, out) -> List[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    A, P = tt.analysis, tt.plot
    files = []
    xte, yte = data[2], data[3]

    def save(fig, name):
        path = os.path.join(out, name)
        fig.savefig(path, dpi=90)
        plt.close(fig)
        files.append(path)

    lams = args.lambdas
    ctrl = summary.get("control", {})

    def vs_lambda(key, ylabel, ax):
        series = {}
        for method in ("WS", "AS"):
            ms = [summary.get(f"{method}_{l:g}", {}).get(key, [float("nan")] * 2) for l in lams]
            series[method] = (lams, [m[0] for m in ms], [m[1] for m in ms])
        P.metric_vs_strength(series, ax=ax, ylabel=ylabel, control=tuple(ctrl.get(key, [float("nan")] * 2)))

    # 1. accuracy, smoothness, entropy/PoZ, localisation vs λ
    panels = [("acc", "test accuracy (%)"), ("morans_i", "Moran's I (fc1 map)"), ("neighbor_r", "neighbour r"),
              ("entropy", "unit entropy (bits)"), ("poz", "PoZ (%)"), ("sensitivity", "input sensitivity (var)"),
              ("localization", "expert localisation"), ("ed_acts", "effective dim. (acts)"), ("osi", "mean OSI")]
    fig, axes = plt.subplots(3, 3, figsize=(12, 9))
    for (key, yl), ax in zip(panels, axes.flat):
        vs_lambda(key, yl, ax)
    fig.suptitle("metrics vs λ (mean ± SD over seeds; black: control)")
    fig.tight_layout()
    save(fig, "metrics_vs_lambda.png")

    show = [c["name"] for c in conds
            if (c["method"] == "control" or c["lam"] == representative_lambda(args)) and c["name"] in summary]
    # 2. weight-noise robustness
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, key, yl, tl in ((axes[0], "wnoise_fc1_change", "accuracy change (pp)", "noise on fc1"),
                            (axes[1], "wnoise_all_change", "accuracy change (pp)", "noise on all layers"),
                            (axes[2], "wnoise_all_rsm", "readout RSM cosine", "readout RSM, all layers")):
        P.accuracy_vs_severity({n: (WEIGHT_SIGMAS, *summary[n][key]) for n in show if key in summary.get(n, {})},
                               ax=ax, xlabel="weight noise σ", ylabel=yl, title=tl)
        ax.set_xscale("log")
    fig.tight_layout()
    save(fig, "weight_noise.png")

    # 3. input-corruption robustness
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, kind in zip(axes, tt.robustness.NOISE_CORRUPTIONS):
        series = {n: (NOISE_LEVELS, *summary[n]["noise_change"][kind]) for n in show if "noise_change" in summary.get(n, {})}
        P.accuracy_vs_severity(series, ax=ax, xlabel="σ" if kind != "salt_and_pepper" else "p", title=kind)
    fig.tight_layout()
    save(fig, "corruptions.png")
    if args.common_corruptions and all("common_change" in summary.get(n, {}) for n in show):
        kinds = tt.robustness.COMMON_CORRUPTIONS
        fig, axes = plt.subplots(3, 5, figsize=(16, 9))
        for ax, kind in zip(axes.flat, kinds):
            P.accuracy_vs_severity({n: ([1, 2, 3, 4, 5], *summary[n]["common_change"][kind]) for n in show}, ax=ax, title=kind)
        fig.tight_layout()
        save(fig, "common_corruptions.png")

    # 4. correlation structure: curves and histograms (mean over seeds)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    curves = {}
    for n in show:
        s = summary[n]
        curves[n] = {"distance": torch.tensor(s["corr_distance"][0]), "mean": torch.tensor(s["corr_mean"][0]),
                     "std": torch.tensor(s["corr_mean"][1])}
    P.correlation_vs_distance(curves, ax=axes[0], title="response correlation vs grid distance")
    centres = torch.linspace(-1, 1, 41)[:-1] + 1 / 40
    for n in show:
        axes[1].plot(centres.numpy(), summary[n]["corr_hist"][0], label=n)
    axes[1].set_xlabel("pairwise response correlation r")
    axes[1].set_ylabel("share of unit pairs")
    axes[1].legend(fontsize=7)
    axes[1].set_title("distribution of pairwise r", fontsize=9)
    fig.tight_layout()
    save(fig, "correlation_structure.png")

    # 5. per-model maps: class means, experts, orientation preference (first seed)
    for n, model in reps.items():
        acts, labels = A.collect_activations(model, "fc1", (xte, yte), batch_size=128, device=args.device)
        means = torch.stack([acts[labels == c].mean(0) if (labels == c).any() else torch.zeros(acts.shape[1]) for c in range(10)])
        fig = P.grid_maps(means, model.fc1.grid, titles=[str(c) for c in range(10)],
                          suptitle=f"{n}: mean pre-ReLU fc1 map per class")
        save(fig, f"maps_per_class_{n}.png")
        d = A.selectivity(acts, labels, 10)
        fig = P.expert_map(d, model.fc1.grid, threshold=1.0)
        fig.suptitle(f"{n}: d′ per class, experts (d′ > 1) outlined", fontsize=9)
        save(fig, f"experts_{n}.png")
    fig, axes = plt.subplots(1, len(reps), figsize=(3.2 * len(reps), 3.2), squeeze=False)
    for ax, (n, model) in zip(axes[0], reps.items()):
        ot = A.orientation_tuning(model, "fc1", size=xte.shape[-1], channels=xte.shape[1])
        im = ax.imshow(ot["preferred"].reshape(11, 11).numpy(), cmap="hsv", vmin=0, vmax=180)
        ax.set_title(f"{n}: preferred orientation", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label="degrees")
    save(fig, "orientation_maps.png")
    fig = P.corruption_gallery(xte[0], list(tt.robustness.NOISE_CORRUPTIONS), [1, 3, 5], noise_severities=[0.05, 0.1, 0.2])
    save(fig, "noise_examples.png")
    return files


# ------------------------------------------------------------------------------ main
def run_one(cond, seed, args, data, ckdir):
    """Train (or load) one model and evaluate it (or load its evaluation)."""
    mean, std = data[4], data[5]
    tag = f"{cond['name']}_seed{seed}"
    ck = os.path.join(ckdir, tag + ".pt")
    ev = os.path.join(ckdir, f"{tag}.eval-{eval_key(args)}.json")
    sig = {"epochs": args.epochs, "dataset": args.dataset, "n_train": args.n_train, "lr": args.lr,
           "batch_size": args.batch_size, "ws_distance": args.ws_distance, "as_distance": args.as_distance}
    model = None
    if not args.no_resume and os.path.exists(ck):
        blob = torch.load(ck, map_location="cpu", weights_only=False)
        if blob.get("signature") == sig:
            model = make_model(args, mean, std)
            model.load_state_dict(blob["state_dict"])
            model.to(args.device)
            history = blob["history"]
    trained = model is None
    args._counts["trained" if trained else "loaded"] += 1
    if trained and args.no_train:
        return None, None
    if trained:
        model, history = train_model(cond, seed, args, data, mean, std, desc=tag)
        torch.save({"state_dict": model.state_dict(), "history": history, "signature": sig,
                    "condition": cond, "seed": seed}, ck)
    if not trained and os.path.exists(ev):
        with open(ev) as f:
            res = json.load(f)
    else:
        res = evaluate(model, args, data, seed)
        res.update({"seed": seed, "val_acc": history[-1]["val_acc"] if history else None,
                    "final_penalty": history[-1]["penalty"] if history else None})
        derive(res)
        with open(ev, "w") as f:
            json.dump(res, f)
    return model, res


def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    args._counts = {"trained": 0, "loaded": 0}
    out = args.out
    ckdir = os.path.join(out, "checkpoints")
    os.makedirs(ckdir, exist_ok=True)
    t0 = time.time()
    data = load_data(args)
    conds = conditions(args)
    # seed-major order: an interrupted run (or --no-train on a partial one) has every condition
    jobs = [(c, args.seed + s) for s in range(args.seeds) for c in conds]
    if args.shard is not None:
        k, n = args.shard
        for i, (cond, seed) in enumerate(tqdm(jobs, desc=f"models (shard {k}/{n})")):
            if i % n == k:
                run_one(cond, seed, args, data, ckdir)
        return {"shard": list(args.shard), "jobs": sum(1 for i in range(len(jobs)) if i % n == k)}
    results: Dict[str, List[Dict]] = {c["name"]: [] for c in conds}
    reps: Dict[str, nn.Module] = {}
    rep_lam = representative_lambda(args)
    for cond, seed in tqdm(jobs, desc="models"):
        model, res = run_one(cond, seed, args, data, ckdir)
        if res is None:  # --no-train and not trained yet
            continue
        results[cond["name"]].append(res)
        if (cond["method"] == "control" or cond["lam"] == rep_lam) and cond["name"] not in reps:
            reps[cond["name"]] = model
    summary = summarise(results)
    fmt = {"acc": "{:.2f}", "poz": "{:.1f}", "ed_acts": "{:.1f}", "ed_weights": "{:.1f}",
           "noise_mean_change": "{:.2f}", "wnoise_all_change_0.1": "{:.2f}", "wnoise_fc1_change_0.1": "{:.2f}",
           "common_mean_change": "{:.2f}", "dead_units": "{:.1f}"}
    main_keys = ["acc", "morans_i", "neighbor_r"]
    tab_main = table(summary, conds, main_keys, fmt)
    tab_repr = table(summary, conds, ["corr_abs_mean", "corr_bimodality", "entropy", "poz", "dead_units", "ed_acts",
                                       "ed_weights", "sensitivity", "weight_norm"], fmt)
    tab_func = table(summary, conds, ["expert_fraction", "localization", "dprime_morans_i", "osi",
                                       "orientation_morans_i", "symmetry_abs_dprime", "eccentricity_slope"], fmt)
    rob_keys = ["noise_mean_change", "noise_white_mean_change", "noise_pink_mean_change",
                "noise_salt_and_pepper_mean_change", "wnoise_fc1_change_0.1", "wnoise_all_change_0.1",
                "wnoise_all_rsm_0.1"] + (["common_mean_change"] if args.common_corruptions else [])
    tab_rob = table(summary, conds, rob_keys, {k: "{:.2f}" for k in rob_keys[:-1]} | {"wnoise_all_rsm_0.1": "{:.3f}"})
    claim_lines = claims(summary, args, results)
    print()
    print(tab_main)
    print()
    print(tab_rob)
    print()
    print("\n".join(claim_lines))
    files = []
    if not args.no_plots:
        files = figures(args, summary, conds, reps, data, out)
    elapsed = time.time() - t0
    payload = {
        "config": {k: v for k, v in vars(args).items() if not k.startswith("_")},
        "models": dict(args._counts),
        "conditions": conds,
        "results": results,
        "summary": summary,
        "claims": claim_lines,
        "figures": [os.path.basename(f) for f in files],
        "elapsed_s": elapsed,
    }
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(payload, f, indent=1, default=float)
    write_report(args, data, summary, conds, tab_main, tab_repr, tab_func, tab_rob, claim_lines, files, elapsed)
    return payload


def write_report(args, data, summary, conds, tab_main, tab_repr, tab_func, tab_rob, claim_lines, files, elapsed):
    figs = {os.path.basename(p) for p in files}

    def fig(name, caption):
        return f"![{caption}]({name})\n\n*{caption}*\n\n" if name in figs else ""

    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write("# Topographic regularization: WS vs AS (Truong & Hasson)\n\n")
        f.write(
            f"Dataset: **{args.dataset}**, {data[0].shape[0]} training images (80/20 train/validation split per "
            f"seed) and {data[2].shape[0]} test images; {args.epochs} epochs, Adam lr {args.lr:g}, batch "
            f"{args.batch_size}; {args.seeds} model(s) per condition, λ ∈ {args.lambdas}; WS distance "
            f"{args.ws_distance}, AS distance {args.as_distance} (pre-ReLU fc1, 11×11, 8 neighbours). "
            f"Values are mean ± SD over models. This invocation took {elapsed:.0f} s "
            f"({args._counts['trained']} models trained, {args._counts['loaded']} loaded from --out/checkpoints).\n\n"
        )
        f.write("## Accuracy and smoothness\n\n")
        f.write("acc: test accuracy (%); morans_i: Moran's I of each test image's 11×11 pre-ReLU fc1 map "
                "(binary 8-neighbour weights), averaged over images; neighbor_r: mean Pearson r between "
                "neighbouring units' responses over the test set.\n\n")
        f.write(tab_main + "\n\n")
        f.write(fig("metrics_vs_lambda.png", "Metrics against λ (WS, AS; black line and band: control)"))
        f.write("## Robustness\n\n")
        f.write("Accuracy change (percentage points) from the same model's clean accuracy. noise_*: mean over "
                "the levels 0.01, 0.05, 0.1, 0.15, 0.2 of white (σ), pink (σ, true 1/f power) and "
                "salt-and-pepper (p) noise in [0, 1] pixel space; wnoise_*_0.1: Gaussian weight noise σ = 0.1 on "
                "fc1 only or on all layers; wnoise_all_rsm_0.1: cosine similarity of the readout (fc2) "
                "class-weight RSM before/after."
                + (" common_mean_change: mean over the 15 ImageNet-C corruptions × 5 severities "
                   "(torchtopo's torch re-implementation, frost synthesised)." if args.common_corruptions else "")
                + "\n\n")
        f.write(tab_rob + "\n\n")
        f.write(fig("weight_noise.png", "Weight-noise robustness (control and λ = %g)" % representative_lambda(args)))
        f.write(fig("corruptions.png", "Input-noise robustness (control and λ = %g)" % representative_lambda(args)))
        f.write(fig("common_corruptions.png", "The 15 common corruptions"))
        f.write(fig("noise_examples.png", "A test digit under the three noises"))
        f.write("## Representations\n\n")
        f.write("corr_abs_mean: mean |r| over all unit pairs; corr_bimodality: Sarle's bimodality coefficient "
                "(skew² + 1)/kurtosis of the pairwise r (> 0.555 suggests bimodality); entropy: Shannon entropy "
                "(bits, 32 bins) of each unit's pre-ReLU activations; poz: % of test inputs with zero post-ReLU "
                "output; dead_units: units that are never active; ed_*: participation ratio of the activation "
                "covariance and of the fc1 weight rows; sensitivity: activation variance across stimuli; "
                "weight_norm: mean ‖w_i‖ of fc1 rows.\n\n")
        f.write(tab_repr + "\n\n")
        f.write(fig("correlation_structure.png", "Correlation vs grid distance, and the distribution of pairwise r"))
        f.write("## Category selectivity, localisation and probes\n\n")
        f.write("expert_fraction: share of units with d′ > 1 for some class; localization: 1 − (mean sheet "
                "distance between a class's experts)/(mean distance between random units), averaged over classes; "
                "dprime_morans_i: Moran's I of the per-class d′ maps; osi: mean orientation selectivity index "
                "(gratings); orientation_morans_i: Moran's I of the preferred-orientation map (cos 2θ, sin 2θ); "
                "symmetry_abs_dprime: mean |d′| symmetric vs asymmetric patterns; eccentricity_slope: mean slope "
                "of the response to a blob against its distance from the centre.\n\n")
        f.write(tab_func + "\n\n")
        for n in summary:
            f.write(fig(f"maps_per_class_{n}.png", f"{n}: mean fc1 map per class"))
            f.write(fig(f"experts_{n}.png", f"{n}: selectivity maps and expert units"))
        f.write(fig("orientation_maps.png", "Preferred-orientation maps"))
        f.write("## Notes and deviations from the study\n\n")
        notes = [
            "Truong & Hasson train on full MNIST (48k/12k) for 10 epochs at Adam lr 1e-3, batch 64. The offline "
            "sample has 3,200 training images after the 80/20 split, i.e. 15× fewer steps per epoch, so on it "
            "the defaults are batch 32 and lr 3e-3 (pass --lr 1e-3 --batch-size 64 for the paper's values); "
            "accuracies are therefore far below full-MNIST levels and every comparison is between small models.",
            "AS uses the pre-ReLU fc1 output and 1 − Pearson r over the batch (STUDIES.md: the AS training code "
            "is not released; this is the natural reading). WS uses correlation distance on MNIST and cosine on "
            "CIFAR-10, as in the released models.",
            "Expert units: d′ > 1 (the paper's threshold is not published). Localisation is torchtopo's "
            "statistic (1 − mean expert distance / mean random distance), not necessarily the paper's.",
            "Weight noise is absolute (σ in weight units) on fc1 or on all parameters; the RSM cosine compares "
            "the off-diagonal upper triangles of the fc2 class-weight correlation matrices.",
            "Input noise is added in [0, 1] pixel space and clamped; pink noise has true 1/f power "
            "(the released code's amplitude ÷ f is brown noise).",
        ]
        f.write("".join(f"* {n}\n" for n in notes) + "\n")
        f.write("## Published claims (STUDIES.md §1) against this run\n\n")
        f.write("Automatic verdicts: a difference counts when it exceeds 2 standard errors. Models with the same "
                "seed share their initialisation and data split across conditions, so differences are paired by "
                "seed (SE = SD of the per-seed differences / √n); with 3 seeds this is a lenient heuristic, not a "
                "significance test. With one model per condition only the direction is reported.\n\n")
        f.write("\n".join(claim_lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
