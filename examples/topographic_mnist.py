"""Topographic regularization: Weight Similarity (WS) vs forms of Activation Similarity (AS).

Reproduces Truong & Hasson, "Beyond topography: topographic regularization improves robustness
and reshapes representations in convolutional neural networks" (arXiv:2508.00043) with torchtopo:
the study CNN (``tt.models.mnist_cnn``: fc1 = 121 units on an 11×11 grid) trained as a control
(λ = 0), with WS, and with several forms of AS on ``fc1``, every model to a validation plateau
(early stopping on the 80/20 split), several seeds, each comparison paired by seed with a 95 %
confidence interval.  The AS training code is not released, so the AS forms run side by side:

* ``AS (1 − r)``: mean over neighbour pairs of 1 − Pearson r over the batch (the natural reading);
* ``AS (1 − |r|)``: the sign-agnostic form (``sign="absolute"``);
* ``AS, released loss untransposed``: a **hypothesis** about the unreleased code: the released
  ``spatial_loss`` views its input as (11, 11, −1), so applied to the (B, 121) batch without a
  transpose each "unit" is a contiguous chunk of B values of the batch × units buffer; built
  here from ``tt.functional.weight_similarity`` on ``acts.reshape(121, B)``.

    python examples/topographic_mnist.py                    # 5 conditions × 3 seeds, a process per core (≤ 30 min on 2 cores)
    python examples/topographic_mnist.py --jobs 1           # one training process
    python examples/topographic_mnist.py --quick            # smoke test (≤ 3 min): no verdicts
    python examples/topographic_mnist.py --full             # the paper's λ grid, 10 seeds
    python examples/topographic_mnist.py --dataset cifar10 --data-root ~/data

Offline by default: the 4,000/1,000 real MNIST digits of ``tt.data.mnist_sample()``.
Writes ``report.md``, ``results.json`` and PNG figures into ``--out``; trained models and their
evaluations are kept in ``--out/checkpoints`` and a rerun skips the finished ones.
"""
from __future__ import annotations

import argparse
import copy
import glob
import hashlib
import inspect
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional

import torch
import torch.nn.functional as TF
from torch import nn

import torchtopo as tt

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:  # the examples' shared helpers
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _claims import CURVES, claims, summarise
from _common import (Checkpoints, add_common_args, cores, fit, make_parser, open_dataset, parse, parse_shard, progress,
                     say, set_threads, start, write_results)
from _topographic_report import NOISE_LEVELS, WEIGHT_SIGMAS, figures, report, tables

MODELS = {"mnist_sample": "mnist_cnn", "mnist": "mnist_cnn", "cifar10": "cifar_cnn"}
#: AS form -> (condition prefix, label)
AS_FORMS = {"signed": ("AS", "AS (1 − r)"), "absolute": ("ASabs", "AS (1 − |r|)"),
            "squared": ("ASsq", "AS (1 − r²)"),
            "untransposed": ("ASflat", "AS, released loss on the untransposed batch (hypothesis)")}
HAS_SIGN = "sign" in inspect.signature(tt.ActivationSimilarity.__init__).parameters


# ------------------------------------------------------------------------------ configuration
def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = make_parser(__doc__, "python examples/topographic_mnist.py --out runs/topographic_mnist")
    add_common_args(p, out="runs/topographic_mnist", datasets=list(MODELS), seeds="models per condition (default 3)",
                    quick_help="smoke test: 1 seed, at most 6 epochs (≤ 3 min); the report states no verdicts")
    p.add_argument("--full", action="store_true", help="the paper's grid: λ∈{0.1,0.3,0.5,1,2,3}, 10 seeds")
    p.add_argument("--lambdas", type=float, nargs="+", default=None, help="λ grid of every method (default 1)")
    p.add_argument("--as-forms", nargs="+", default=None, choices=list(AS_FORMS),
                   help="AS forms to train (default: signed absolute untransposed)")
    p.add_argument("--max-epochs", type=int, default=None, help="epoch cap (default 150)")
    p.add_argument("--patience", type=int, default=None,
                   help="stop after this many epochs without a validation loss --min-delta below the last such (default 10)")
    p.add_argument("--min-delta", type=float, default=0.01, help="relative improvement of the validation loss that counts (default 0.01)")
    p.add_argument("--batch-size", type=int, default=64, help="default 64 (the paper's)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3, the paper's)")
    p.add_argument("--ws-distance", default=None, help="WS distance (default: correlation on MNIST, cosine on CIFAR-10)")
    p.add_argument("--as-distance", default="correlation", help="distance of the AS forms (default correlation)")
    p.add_argument("--n-train", type=int, default=None, help="use only this many training images")
    p.add_argument("--n-test", type=int, default=None, help="use only this many test images")
    p.add_argument("--expert-threshold", type=float, default=2.0, help="d′ above which a unit is a class expert (default 2)")
    p.add_argument("--common-corruptions", action="store_true", help="also evaluate the 15 common corruptions")
    p.add_argument("--weight-repeats", type=int, default=None, help="noise draws per weight-noise level")
    p.add_argument("--jobs", type=int, default=None,
                   help="train models in this many parallel processes, 1 thread each (default: one per core)")
    p.add_argument("--no-resume", action="store_true", help="retrain even if a checkpoint exists")
    p.add_argument("--no-train", action="store_true", help="report only the models already in --out/checkpoints")
    p.add_argument("--shard", default=None, metavar="K/N", type=parse_shard,
                   help="train and evaluate only every N-th model starting at K (what --jobs runs)")
    a = parse(p, argv, offline=["mnist_sample"])
    cifar = a.dataset == "cifar10"
    lam, seeds, max_ep, pat = [1.0], 3, 150, 10
    if a.full:
        lam, seeds, max_ep = [0.1, 0.3, 0.5, 1.0, 2.0, 3.0], 10, 150
    elif a.quick:
        seeds, max_ep, pat = 1, 6, 3
    elif a.tiny:
        seeds, max_ep, pat = 1, 2, 1
    a.lambdas = sorted(a.lambdas if a.lambdas is not None else lam)
    a.seeds = a.seeds if a.seeds is not None else seeds
    a.max_epochs = a.max_epochs if a.max_epochs is not None else max_ep
    a.patience = a.patience if a.patience is not None else pat
    a.as_forms = list(dict.fromkeys(a.as_forms or ["signed", "absolute", "untransposed"]))
    a.unavailable = [f for f in a.as_forms if f in ("absolute", "squared") and not HAS_SIGN]
    a.as_forms = [f for f in a.as_forms if f not in a.unavailable]
    a.weight_repeats = a.weight_repeats if a.weight_repeats is not None else (1 if (a.quick or a.tiny) else 2)
    a.smoke = bool(a.quick or a.tiny)
    a.jobs = a.jobs if a.jobs is not None else (1 if a.tiny or a.shard is not None else min(cores(), 8))
    if a.tiny:
        a.n_train, a.n_test = a.n_train or 320, a.n_test or 100
    a.ws_distance = a.ws_distance or ("cosine" if cifar else "correlation")
    if any(l <= 0 for l in a.lambdas):
        p.error("--lambdas must be positive (the control, λ = 0, is always trained)")
    if a.seeds < 1 or a.max_epochs < 1 or a.patience < 1 or a.jobs < 1:
        p.error("--seeds, --max-epochs, --patience and --jobs must be >= 1")
    return a


def conditions(args) -> List[Dict]:
    out = [{"name": "control", "method": "control", "form": None, "lam": 0.0, "label": "control"}]
    for lam in args.lambdas:
        out.append({"name": f"WS_{lam:g}", "method": "WS", "form": None, "lam": float(lam), "label": f"WS λ={lam:g}"})
        for form in args.as_forms:
            prefix, label = AS_FORMS[form]
            out.append({"name": f"{prefix}_{lam:g}", "method": "AS", "form": form, "lam": float(lam),
                        "label": f"{label} λ={lam:g}"})
    return out


def representative_lambda(args) -> float:
    """The λ of the per-model figures and the claims: 1 if in the grid, else the middle one."""
    return 1.0 if 1.0 in args.lambdas else args.lambdas[len(args.lambdas) // 2]


# ------------------------------------------------------------------------------ data, model, terms
def load_data(args):
    """(x_train, y_train, x_test, y_test, mean, std) with images in [0, 1]; the model normalises."""
    if args.dataset == "mnist_sample":
        (xtr, ytr), (xte, yte) = (tt.data.mnist_sample_tensors(s, normalize=False) for s in ("train", "test"))
    else:
        load = tt.data.cifar10 if args.dataset == "cifar10" else tt.data.mnist
        tr, te = (open_dataset(args.dataset, args.data_root, load, train=t, normalize=False) for t in (True, False))
        xtr, ytr = tt.data.to_tensors(tr, args.n_train, batch_size=1000, progress=True)
        xte, yte = tt.data.to_tensors(te, args.n_test, batch_size=1000, progress=True)
    xtr, ytr, xte, yte = xtr[: args.n_train], ytr[: args.n_train], xte[: args.n_test], yte[: args.n_test]
    if args.dataset == "cifar10":
        mean, std = tt.data.CIFAR10_MEAN, tt.data.CIFAR10_STD
    else:
        mean, std = (tt.data.MNIST_MEAN,), (tt.data.MNIST_STD,)
    return xtr, ytr, xte, yte, mean, std


def make_model(args, data) -> nn.Module:
    """The study CNN with a Normalize layer first, so the model takes images in [0, 1].

    Its convolutions use the channels-last memory format: on a CPU a training step of the MNIST
    CNN is about 1.5× faster (25 vs 37 ms per batch of 64 on one thread) and evaluation about
    2× faster, the same model up to float rounding."""
    model = tt.models.get_model(MODELS[args.dataset], normalize=(data[4], data[5]))
    return model.to(memory_format=torch.channels_last)


class UntransposedAS(tt.Term):
    """AS as the authors' released ``spatial_loss`` would compute it on the pre-ReLU batch
    without a transpose — a hypothesis about the unreleased AS code, not a documented method.

    ``spatial_loss`` views its input as (11, 11, −1) and compares each entry's vector with its
    Moore neighbours.  Given the (B, N) activations, "unit" k is then values k·B … (k+1)·B − 1 of
    the row-major batch × units buffer: row k of ``acts.reshape(N, B)``.  The loss is the mean
    neighbour distance between those rows, i.e. ``weight_similarity`` of that (N, B) matrix."""

    needs_output = True

    def __init__(self, strength: float = 1.0, *, distance: str = "correlation") -> None:
        super().__init__(strength)
        self.distance = distance

    def bind(self, name: str, module: nn.Module) -> None:
        self.grid = module.grid

    def loss(self, module, inputs, output):
        return tt.functional.weight_similarity(output.reshape(self.grid.n_units, -1), self.grid, distance=self.distance)

    def options(self) -> Dict:
        return {"distance": self.distance}


def make_term(cond, args) -> Optional[tt.Term]:
    if cond["method"] == "WS":
        return tt.WeightSimilarity(strength=cond["lam"], distance=args.ws_distance)
    if cond["form"] == "untransposed":
        return UntransposedAS(cond["lam"], distance=args.as_distance)
    if cond["form"] in ("absolute", "squared"):
        return tt.ActivationSimilarity(strength=cond["lam"], distance=args.as_distance, sign=cond["form"])
    if cond["method"] == "AS":
        return tt.ActivationSimilarity(strength=cond["lam"], distance=args.as_distance)
    return None


# ------------------------------------------------------------------------------ training
@torch.no_grad()
def validate(model, xv, yv, device) -> Dict:
    model.eval()
    loss = correct = 0.0
    for i in range(0, xv.shape[0], 500):
        x, y = xv[i:i + 500].to(device), yv[i:i + 500].to(device)
        out = model(x)
        loss += float(TF.cross_entropy(out, y, reduction="sum"))
        correct += float((out.argmax(1) == y).sum())
    return {"val_loss": loss / xv.shape[0], "val_acc": 100.0 * correct / xv.shape[0]}


def train_model(cond, seed, args, data, desc=""):
    """Adam, a seeded 80/20 train/validation split, no augmentation; CE + λ·S on fc1, until the
    validation loss has not fallen by ``--min-delta`` (relative) below its last such value for
    ``--patience`` epochs (or ``--max-epochs``); the weights of the lowest validation loss are kept."""
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
    history, best, best_state, ref = [], (math.inf, 0), None, (math.inf, 0)
    bar = progress(range(args.max_epochs), desc)
    for epoch in bar:
        # drop the last incomplete batch (AS needs >= 2 stimuli)
        rec = fit(model, lambda _: tt.data.batches(xt, yt, args.batch_size, generator=g, drop_last=True), opt,
                  reg=reg, device=args.device, desc=f"epoch {epoch + 1}",
                  on_epoch=lambda m: validate(m, xv, yv, args.device))[0]
        rec["epoch"] = epoch + 1
        history.append(rec)
        if rec["val_loss"] < best[0]:
            best, best_state = (rec["val_loss"], epoch + 1), copy.deepcopy(model.state_dict())
        if rec["val_loss"] < ref[0] * (1 - args.min_delta):  # a real improvement restarts the patience
            ref = (rec["val_loss"], epoch + 1)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(val_acc=f"{rec['val_acc']:.1f}", best_epoch=best[1])
        if epoch + 1 - ref[1] >= args.patience:
            break
    model.load_state_dict(best_state)
    if reg is not None:
        reg.remove()
    info = {"epochs_run": len(history), "best_epoch": best[1], "plateau": len(history) - ref[1] >= args.patience,
            "val_acc": history[best[1] - 1]["val_acc"], "final_penalty": history[best[1] - 1]["penalty"]}
    return model, history, info


# ------------------------------------------------------------------------------ evaluation
EVAL_VERSION = 4


def eval_key(args) -> str:
    cfg = {"v": EVAL_VERSION, "n_test": args.n_test, "common": args.common_corruptions, "rep": args.weight_repeats,
           "dataset": args.dataset, "expert": args.expert_threshold}
    return hashlib.sha1(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:10]


def _mean(t) -> float:
    t = torch.as_tensor(t).double()
    t = t[torch.isfinite(t)]
    return float(t.mean()) if t.numel() else float("nan")


def map_stats(acts, grid, res: Dict) -> None:
    """Smoothness of the pre-ReLU maps: Moran's I of the maps and of the mean-subtracted maps,
    directional Moran's I and the mean map's share of the variance (when torchtopo has them)."""
    A = tt.analysis
    centred = acts - acts.mean(0, keepdim=True)
    res["morans_i"] = _mean(A.morans_i(acts, grid))
    res["morans_i_centred"] = _mean(A.morans_i(centred, grid))
    if hasattr(A, "directional_morans_i"):
        for tag, maps in (("", acts), ("_centred", centred)):
            for k, v in A.directional_morans_i(maps, grid).items():
                res[f"dmi_{k}{tag}"] = _mean(v)
        res["stripe_contrast"] = abs(res["dmi_vertical"] - res["dmi_horizontal"])
    if hasattr(A, "mean_map_share"):
        res["mean_map_share"] = float(A.mean_map_share(acts))


def evaluate(model, args, data, seed: int) -> Dict:
    """Every per-model evaluation of the study (scalars and short curves, JSON-able)."""
    A, R = tt.analysis, tt.robustness
    xte, yte = data[2], data[3]
    grid, dev = model.fc1.grid, args.device
    C, H = xte.shape[1], xte.shape[-1]
    acts, labels = A.collect_activations(model, "fc1", (xte, yte), batch_size=128, device=dev)
    post = acts.clamp_min(0)
    res: Dict = {"acc": R.evaluate_accuracy(model, (xte, yte), device=dev)}
    map_stats(acts, grid, res)
    res["neighbor_r"] = float(A.neighbor_correlation(acts, grid))
    cvd = A.correlation_vs_distance(acts, grid)
    res["corr_distance"], res["corr_mean"] = cvd["distance"].tolist(), cvd["mean"].tolist()
    r = cvd["pair_r"].double()
    r = r[torch.isfinite(r)]
    hist = torch.histc(r.float(), bins=40, min=-1, max=1)
    res["corr_hist"] = (hist / hist.sum().clamp_min(1) / 0.05).tolist()  # density per unit r
    res["corr_abs_mean"] = float(r.abs().mean()) if r.numel() else float("nan")
    # Sarle's bimodality coefficient of the pairwise r: (skew² + 1) / kurtosis; > 5/9 suggests bimodal
    if r.numel() > 3 and float(r.std()) > 0:
        z = (r - r.mean()) / r.std()
        res["corr_bimodality"] = float(((z**3).mean() ** 2 + 1) / (z**4).mean())
    res["entropy"] = _mean(A.unit_entropy(acts))
    pz = A.percent_zero(post)
    res["poz"], res["dead_units"] = _mean(pz), int((pz >= 100).sum())
    res["ed_acts"] = float(A.effective_dimensionality(acts))
    res["ed_weights"] = float(A.effective_dimensionality(model.fc1.weight.detach(), center=False))
    res["sensitivity"] = _mean(A.input_sensitivity(acts))
    res["weight_norm"] = float(model.fc1.weight.detach().norm(dim=1).mean())
    ex = A.expert_units(A.selectivity(acts, labels, 10), grid, threshold=args.expert_threshold)
    res["expert_fraction"] = float(ex["fraction"])
    res["localization"] = _mean(ex["localization"])
    res["dprime_morans_i"] = _mean(ex["morans_i"])
    # input noise in [0, 1] pixel space: white, pink (true 1/f power), brown (amplitude ÷ f, the
    # authors' "pink"), salt-and-pepper; accuracy and its change from this model's clean accuracy
    for kind, base, kw in (("white", "white", {}), ("pink", "pink", {"exponent": 1.0}),
                           ("brown", "pink", {"exponent": 2.0}), ("salt_and_pepper", "salt_and_pepper", {})):
        cor = R.evaluate_corruptions(model, (xte, yte), kinds=[base], severities=NOISE_LEVELS, seed=1234 + len(kind),
                                     device=dev, **kw)
        res[f"acc_{kind}"], res[f"chg_{kind}"] = cor["accuracy"][base], cor["change"][base]
    if args.common_corruptions:
        cc = R.evaluate_corruptions(model, (xte, yte), kinds=R.COMMON_CORRUPTIONS, seed=4321, device=dev)
        res["common_mean_change"] = sum(sum(v) for v in cc["change"].values()) / (5 * len(cc["change"]))
    for scope, mods in (("fc1", "fc1"), ("all", None)):
        wn = R.evaluate_weight_noise(model, (xte, yte), WEIGHT_SIGMAS, modules=mods, readout="fc2",
                                     repeats=args.weight_repeats, seed=seed, device=dev)
        res[f"acc_w{scope}"], res[f"chg_w{scope}"] = wn["accuracy"], wn["change"]
        res[f"rsm_w{scope}"] = wn["rsm_cosine"]
    for k in CURVES:
        res[f"chg_{k}_mean"] = sum(res[f"chg_{k}"]) / len(res[f"chg_{k}"])
    res["rsm_wall_0.1"] = res["rsm_wall"][WEIGHT_SIGMAS.index(0.1)]
    ot = A.orientation_tuning(model, "fc1", size=H, channels=C)
    res["osi"] = _mean(ot["osi"])
    th = ot["preferred"].double() * math.pi / 90
    res["orientation_morans_i"] = _mean(A.morans_i(torch.stack([th.cos(), th.sin()]).float(), grid))
    res["symmetry_abs_dprime"] = _mean(A.symmetry_selectivity(model, "fc1", size=H, channels=C).abs())
    res["eccentricity_slope"] = _mean(A.eccentricity_tuning(model, "fc1", size=H, channels=C)["slope"])
    return res


# ------------------------------------------------------------------------------ running
def run_one(cond, seed, args, data, ck: Checkpoints, counts: Dict):
    """Train (or load) one model and evaluate it (or load its evaluation)."""
    tag = f"{cond['name']}_seed{seed}"
    ev = f"{tag}.eval-{eval_key(args)}.json"
    model = make_model(args, data)
    blob = None if args.no_resume else ck.load(tag, model)
    if blob is None and args.no_train:
        return None, None
    t0 = time.time()
    if blob is None:
        model, history, info = train_model(cond, seed, args, data, desc=tag)
        info["train_s"] = time.time() - t0
        ck.save(tag, model, history=history, info=info, condition=cond, seed=seed)
        counts["trained"] += 1
    else:
        model, info = model.to(args.device), blob["info"]
        counts["loaded"] += 1
    res = None if blob is None else ck.load_json(ev)
    if res is None:
        say(f"evaluating {tag} (accuracy, maps, noise curves, probes)")
        t1 = time.time()
        res = evaluate(model, args, data, seed)
        res.update(info, seed=seed, eval_s=time.time() - t1)
        ck.save_json(ev, res)
    return model, res


def _done(args, jobs, since: float = 0.0) -> int:
    """How many of ``jobs`` have an evaluation saved (at or after ``since``)."""
    key = eval_key(args)
    have = {os.path.basename(p) for p in glob.glob(os.path.join(args.out, "checkpoints", f"*.eval-{key}.json"))
            if os.path.getmtime(p) >= since}
    return sum(f"{c['name']}_seed{s}.eval-{key}.json" in have for c, s in jobs)


def claim(queue: str, tag: str) -> bool:
    """Atomically claim model ``tag`` in the directory ``queue``: True for the first process only."""
    try:
        os.close(os.open(os.path.join(queue, tag), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def run_parallel(args, argv: List[str], jobs) -> None:
    """``--jobs N``: N processes of this script with ``--shard K/N --threads 1``, logs in
    ``--out/logs``; a progress bar over the models (with the time left) while they run."""
    logs = os.path.join(args.out, "logs")
    os.makedirs(logs, exist_ok=True)
    env = dict(os.environ, TQDM_DISABLE="1", OMP_NUM_THREADS="1")
    procs, n = [], min(args.jobs, len(jobs))
    queue = os.path.join(logs, "claims")  # the workers' shared queue of models (see claim)
    shutil.rmtree(queue, ignore_errors=True)
    os.makedirs(queue)
    since = time.time() if args.no_resume else 0.0  # --no-resume: count only evaluations saved from now on
    for k in range(n):
        cmd = [sys.executable, os.path.abspath(__file__), *argv, "--jobs", "1", "--shard", f"{k}/{n}", "--threads", "1"]
        with open(os.path.join(logs, f"shard{k}.log"), "w") as fh:
            procs.append(subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env))
    say(f"training {len(jobs)} models in {n} processes (1 thread each); logs in {logs}")
    start_done = _done(args, jobs, since)
    bar = progress(range(len(jobs)), "models", total=len(jobs), initial=start_done)
    shown = start_done
    while any(p.poll() is None for p in procs):
        time.sleep(2.0)
        now = _done(args, jobs, since)
        if hasattr(bar, "update") and now > shown:
            bar.update(now - shown)
        shown = now
    if hasattr(bar, "close"):
        bar.close()
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    args.worker_cpu_s = cpu.ru_utime + cpu.ru_stime  # what the run costs on a machine of its own
    bad = [k for k, p in enumerate(procs) if p.returncode != 0]
    if bad:
        raise SystemExit(f"training process(es) {bad} failed: see {logs}/shard{bad[0]}.log")


def main(argv: Optional[List[str]] = None) -> Dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.shard is not None:  # a worker of --jobs: no lock on --out, one thread
        os.makedirs(args.out, exist_ok=True)
        set_threads(args)
        t0 = time.time()
    else:
        t0 = start(args)
    ck = Checkpoints(os.path.join(args.out, "checkpoints"),
                     {"v": 2, "max_epochs": args.max_epochs, "patience": args.patience, "min_delta": args.min_delta, "dataset": args.dataset,
                      "n_train": args.n_train, "lr": args.lr, "batch_size": args.batch_size,
                      "ws_distance": args.ws_distance, "as_distance": args.as_distance})
    data = load_data(args)
    conds = conditions(args)
    # seed-major order: an interrupted run (or --no-train on a partial one) has every condition
    jobs = [(c, args.seed + s) for s in range(args.seeds) for c in conds]
    counts = {"trained": 0, "loaded": 0}
    if args.shard is not None:
        k, n = args.shard
        queue = os.path.join(args.out, "logs", "claims")
        for i, (cond, seed) in enumerate(jobs):
            # under --jobs the workers take the next unclaimed model (models need 50-150 epochs, so
            # a fixed split leaves one process idle); a hand-started --shard takes every n-th
            if not (claim(queue, f"{cond['name']}_seed{seed}") if os.path.isdir(queue) else i % n == k):
                continue
            _, res = run_one(cond, seed, args, data, ck, counts)
            say(f"[shard {k}/{n}] {cond['name']} seed {seed}: acc {res['acc']:.1f} %, "
                f"{res['epochs_run']} epochs (best {res['best_epoch']})")
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        say(f"[shard {k}/{n}] done: {counts['trained']} trained, {counts['loaded']} loaded, "
            f"CPU time {(cpu.ru_utime + cpu.ru_stime) / 60:.1f} min")
        return {"shard": list(args.shard), "counts": counts}
    if args.jobs > 1 and not args.no_train and (args.no_resume or _done(args, jobs) < len(jobs)):
        t_workers = time.time()
        run_parallel(args, argv, jobs)
        args.no_resume = False  # the workers retrained; collect what they saved
        saved = glob.glob(os.path.join(args.out, "checkpoints", "*.pt"))
        args.worker_trained = sum(os.path.getmtime(p) >= t_workers for p in saved)
    results: Dict[str, List[Dict]] = {c["name"]: [] for c in conds}
    reps: Dict[str, nn.Module] = {}
    rep_lam = representative_lambda(args)
    bar = progress(jobs, "models")
    for i, (cond, seed) in enumerate(bar):
        model, res = run_one(cond, seed, args, data, ck, counts)
        if res is None:  # --no-train and not trained yet
            continue
        results[cond["name"]].append(res)
        if (cond["method"] == "control" or cond["lam"] == rep_lam) and cond["name"] not in reps:
            reps[cond["name"]] = model
        say(f"[{i + 1}/{len(jobs)}] {cond['name']} seed {seed}: acc {res['acc']:.1f} %, {res['epochs_run']} epochs "
            f"(best {res['best_epoch']}{'' if res['plateau'] else ', no plateau'}), "
            f"train {res.get('train_s', 0) / 60:.1f} min, eval {res['eval_s'] / 60:.1f} min")
    summary = summarise(results)
    claim_lines = [] if args.smoke else claims(results, conds, args)
    tabs = tables(summary, conds, args)
    print("", tabs["main"], "", tabs["rob"], "", "\n".join(claim_lines), sep="\n")
    files = [] if args.no_plots else figures(args, summary, results, conds, reps, data, rep_lam)
    elapsed = time.time() - t0
    payload = {"config": {k: v for k, v in vars(args).items() if not k.startswith("_")}, "models": counts,
               "conditions": conds, "results": results, "summary": summary, "claims": claim_lines,
               "figures": files, "elapsed_s": elapsed, "threads": torch.get_num_threads()}
    write_results(args.out, payload, report(args, data, summary, results, conds, tabs, claim_lines, files, elapsed, counts))
    say(f"report written to {os.path.join(os.path.abspath(args.out), 'report.md')} ({elapsed / 60:.1f} min)")
    return payload


if __name__ == "__main__":
    main()
