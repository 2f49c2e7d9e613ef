"""Topographic regularization: Weight Similarity (WS) vs Activation Similarity (AS).

Reproduces Truong & Hasson, "Beyond topography: topographic regularization improves robustness
and reshapes representations in convolutional neural networks" (arXiv:2508.00043) with torchtopo:
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
from torch import nn

import torchtopo as tt

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:  # the examples' shared helpers
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _claims import claim_table, summarise, table
from _common import Checkpoints, add_common_args, fit, parse, parse_shard, progress, start, write_results
from _topographic_report import figures, report

NOISE_LEVELS = [0.01, 0.05, 0.1, 0.15, 0.2]
WEIGHT_SIGMAS = [0.01, 0.02, 0.05, 0.1, 0.2]
MODELS = {"mnist_sample": "mnist_cnn", "mnist": "mnist_cnn", "cifar10": "cifar_cnn"}


# ------------------------------------------------------------------------------ configuration
def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, out="runs/topographic_mnist", datasets=list(MODELS), seeds="models per condition",
                    quick_help="control + WS + AS at λ=1, 1 seed, 4 epochs (< 2 min)")
    p.add_argument("--full", action="store_true", help="the paper's grid: control + WS/AS × λ∈{0.1,0.3,0.5,1,2,3}, 10 seeds")
    p.add_argument("--lambdas", type=float, nargs="+", default=None, help="λ grid for WS and AS")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None, help="default 64 (the paper's); 32 on the small MNIST sample")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-3, the paper's; 3e-3 on the small sample)")
    p.add_argument("--ws-distance", default=None, help="WS distance (default: correlation on MNIST, cosine on CIFAR-10)")
    p.add_argument("--as-distance", default="correlation")
    p.add_argument("--n-train", type=int, default=None, help="use only this many training images")
    p.add_argument("--n-test", type=int, default=None, help="use only this many test images")
    p.add_argument("--common-corruptions", action="store_true", help="also evaluate the 15 ImageNet-C corruptions (on by default with --full)")
    p.add_argument("--weight-repeats", type=int, default=None, help="noise draws per weight-noise level")
    p.add_argument("--no-resume", action="store_true", help="retrain even if a checkpoint exists")
    p.add_argument("--no-train", action="store_true", help="report only the models already in --out/checkpoints (train nothing)")
    p.add_argument("--shard", default=None, metavar="K/N", type=parse_shard,
                   help="train and evaluate only every N-th model starting at K (run N such processes in "
                        "parallel, then once without --shard to collect everything into the report)")
    a = parse(p, argv, offline=["mnist_sample"])
    cifar, small = a.dataset == "cifar10", a.dataset == "mnist_sample"
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


# ------------------------------------------------------------------------------ data, model, training
def load_data(args):
    """(x_train, y_train, x_test, y_test, mean, std) with images in [0, 1]; the model normalises."""
    if args.dataset == "mnist_sample":
        (xtr, ytr), (xte, yte) = (tt.data.mnist_sample_tensors(s, normalize=False) for s in ("train", "test"))
    else:
        load = tt.data.cifar10 if args.dataset == "cifar10" else tt.data.mnist
        xtr, ytr = tt.data.to_tensors(load(args.data_root, train=True, normalize=False), args.n_train, batch_size=1000, progress=True)
        xte, yte = tt.data.to_tensors(load(args.data_root, train=False, normalize=False), args.n_test, batch_size=1000, progress=True)
    if args.n_train is not None:
        xtr, ytr = xtr[: args.n_train], ytr[: args.n_train]
    if args.n_test is not None:
        xte, yte = xte[: args.n_test], yte[: args.n_test]
    if args.dataset == "cifar10":
        mean, std = tt.data.CIFAR10_MEAN, tt.data.CIFAR10_STD
    else:
        mean, std = (tt.data.MNIST_MEAN,), (tt.data.MNIST_STD,)
    return xtr, ytr, xte, yte, mean, std


def make_model(args, data) -> nn.Module:
    """The study CNN with a Normalize layer first, so the model takes images in [0, 1]."""
    return tt.models.get_model(MODELS[args.dataset], normalize=(data[4], data[5]))


def make_term(cond, args) -> Optional[tt.Term]:
    if cond["method"] == "WS":
        return tt.WeightSimilarity(strength=cond["lam"], distance=args.ws_distance)
    if cond["method"] == "AS":
        return tt.ActivationSimilarity(strength=cond["lam"], distance=args.as_distance)
    return None


def train_model(cond, seed, args, data, desc=""):
    """Adam, a seeded 80/20 train/validation split, no augmentation; CE + λ·S on fc1."""
    xtr, ytr = data[0], data[1]
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(xtr.shape[0], generator=g)
    n_val = xtr.shape[0] // 5
    xv, yv, xt, yt = xtr[perm[:n_val]], ytr[perm[:n_val]], xtr[perm[n_val:]], ytr[perm[n_val:]]
    model = make_model(args, data).to(args.device)
    term = make_term(cond, args)
    reg = tt.attach(model, {"fc1": term}) if term is not None else None
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    # drop the last incomplete batch (AS needs >= 2 stimuli)
    history = fit(model, lambda ep: tt.data.batches(xt, yt, args.batch_size, generator=g, drop_last=True), opt,
                  epochs=args.epochs, reg=reg, device=args.device, desc=desc,
                  on_epoch=lambda m: {"val_acc": tt.robustness.evaluate_accuracy(m, (xv, yv), device=args.device)})
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
    """Every per-model evaluation of the study (scalars and short curves, JSON-able)."""
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
    ex = A.expert_units(A.selectivity(acts, labels, 10), grid, threshold=1.0)
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
    res["eccentricity_slope"] = float(A.eccentricity_tuning(model, "fc1", size=H, channels=C)["slope"].mean())
    return res


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


def claims(summary, args, results=None) -> List[str]:
    """Truong & Hasson's claims against this run (see ``_claims`` for the verdicts)."""
    lam, strong = representative_lambda(args), max(args.lambdas)
    ws, as_ = f"WS_{lam:g}", f"AS_{lam:g}"
    noise, wn = "mean acc. change over white/pink/s&p (pp)", "acc. change, σ=0.1 all layers (pp)"
    rows = [
        ("WS gives smooth maps", "morans_i", ws, "control", "Moran's I (λ=%g)" % lam),
        ("WS gives correlated neighbourhoods", "neighbor_r", ws, "control", "neighbour r (λ=%g)" % lam),
        ("AS: bimodal inter-unit correlations", "corr_bimodality", as_, "control", "bimodality coeff. of pairwise r"),
        ("AS: no spatial smoothness (vs WS)", "morans_i", ws, as_, "Moran's I, WS − AS"),
        ("WS improves robustness to image degradation on MNIST", "noise_mean_change", ws, "control", noise),
        ("AS improves image-degradation robustness (claimed on CIFAR-10)", "noise_mean_change", as_, "control", noise),
        ("WS improves weight-perturbation robustness", "wnoise_all_change_0.1", ws, "control", wn),
        ("AS improves weight-perturbation robustness", "wnoise_all_change_0.1", as_, "control", wn),
        ("WS keeps readout geometry under weight noise", "wnoise_all_rsm_0.1", ws, "control", "RSM cosine, σ=0.1 all layers"),
        ("WS raises unit input sensitivity", "sensitivity", ws, "control", "mean activation variance"),
        ("WS raises functional localisation", "localization", ws, "control", "expert localisation score"),
    ]
    pairs = [("WS", ws), ("AS", as_)] + ([("WS", f"WS_{strong:g}"), ("AS", f"AS_{strong:g}")] if strong != lam else [])
    rows += [(f"accuracy largely kept ({m})", "acc", a, "control",
              f"test acc. (%) at λ={a.split('_', 1)[1]}, tolerance 1 pp", {"tolerance": 1.0}) for m, a in pairs]
    return claim_table(summary, rows, results)


# ------------------------------------------------------------------------------ main
def run_one(cond, seed, args, data, ck: Checkpoints):
    """Train (or load) one model and evaluate it (or load its evaluation)."""
    tag = f"{cond['name']}_seed{seed}"
    ev = f"{tag}.eval-{eval_key(args)}.json"
    model = make_model(args, data)
    blob = None if args.no_resume else ck.load(tag, model)
    trained = blob is None
    args._counts["trained" if trained else "loaded"] += 1
    if trained and args.no_train:
        return None, None
    if trained:
        model, history = train_model(cond, seed, args, data, desc=tag)
        ck.save(tag, model, history=history, condition=cond, seed=seed)
    else:
        model, history = model.to(args.device), blob["history"]
    res = None if trained else ck.load_json(ev)
    if res is None:
        res = evaluate(model, args, data, seed)
        res.update({"seed": seed, "val_acc": history[-1]["val_acc"] if history else None,
                    "final_penalty": history[-1]["penalty"] if history else None})
        derive(res)
        ck.save_json(ev, res)
    return model, res


def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    args._counts = {"trained": 0, "loaded": 0}
    t0 = start(args)
    ck = Checkpoints(os.path.join(args.out, "checkpoints"),
                     {"epochs": args.epochs, "dataset": args.dataset, "n_train": args.n_train, "lr": args.lr,
                      "batch_size": args.batch_size, "ws_distance": args.ws_distance, "as_distance": args.as_distance})
    data = load_data(args)
    conds = conditions(args)
    # seed-major order: an interrupted run (or --no-train on a partial one) has every condition
    jobs = [(c, args.seed + s) for s in range(args.seeds) for c in conds]
    if args.shard is not None:
        k, n = args.shard
        mine = [job for i, job in enumerate(jobs) if i % n == k]
        for cond, seed in progress(mine, f"models (shard {k}/{n})"):
            run_one(cond, seed, args, data, ck)
        return {"shard": list(args.shard), "jobs": len(mine)}
    results: Dict[str, List[Dict]] = {c["name"]: [] for c in conds}
    reps: Dict[str, nn.Module] = {}
    rep_lam = representative_lambda(args)
    for cond, seed in progress(jobs, "models"):
        model, res = run_one(cond, seed, args, data, ck)
        if res is None:  # --no-train and not trained yet
            continue
        results[cond["name"]].append(res)
        if (cond["method"] == "control" or cond["lam"] == rep_lam) and cond["name"] not in reps:
            reps[cond["name"]] = model
    summary = summarise(results, skip=("preferred_orientation",))
    names = [c["name"] for c in conds]
    fmt = {"acc": "{:.2f}", "poz": "{:.1f}", "ed_acts": "{:.1f}", "ed_weights": "{:.1f}", "dead_units": "{:.1f}"}
    rob_keys = ["noise_mean_change", "noise_white_mean_change", "noise_pink_mean_change",
                "noise_salt_and_pepper_mean_change", "wnoise_fc1_change_0.1", "wnoise_all_change_0.1",
                "wnoise_all_rsm_0.1"] + (["common_mean_change"] if args.common_corruptions else [])
    tables = {
        "main": table(summary, names, ["acc", "morans_i", "neighbor_r"], fmt),
        "repr": table(summary, names, ["corr_abs_mean", "corr_bimodality", "entropy", "poz", "dead_units", "ed_acts",
                                        "ed_weights", "sensitivity", "weight_norm"], fmt),
        "func": table(summary, names, ["expert_fraction", "localization", "dprime_morans_i", "osi",
                                        "orientation_morans_i", "symmetry_abs_dprime", "eccentricity_slope"], fmt),
        "rob": table(summary, names, rob_keys, {k: "{:.2f}" for k in rob_keys[:-1]} | {"wnoise_all_rsm_0.1": "{:.3f}"}),
    }
    claim_lines = claims(summary, args, results)
    print("", tables["main"], "", tables["rob"], "", "\n".join(claim_lines), sep="\n")
    files = [] if args.no_plots else figures(args, summary, conds, reps, data, representative_lambda(args),
                                             NOISE_LEVELS, WEIGHT_SIGMAS)
    elapsed = time.time() - t0
    payload = {
        "config": {k: v for k, v in vars(args).items() if not k.startswith("_")},
        "models": dict(args._counts),
        "conditions": conds,
        "results": results,
        "summary": summary,
        "claims": claim_lines,
        "figures": files,
        "elapsed_s": elapsed,
    }
    write_results(args.out, payload, report(args, data, summary, tables, claim_lines, files, elapsed,
                                            representative_lambda(args)))
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
