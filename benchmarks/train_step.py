"""Training-step time of whole models with and without torchtopo's terms.

What a user pays for a regularizer is not the kernel's time but the share it adds to a training
step (forward + backward + optimizer step).  For each model this script times one SGD step of

* ``plain``      — cross-entropy only;
* ``WS``         — + :class:`tt.WeightSimilarity` (cosine) on every convolution, each on the most
  square grid of its output channels (:meth:`tt.Grid.for_units`) (Margalit et al. 2024, TDANN's
  weight-similarity form; Lee et al. 2020);
* ``AS``         — + :class:`tt.ActivationSimilarity` (correlation) on the stage outputs
  (ResNet-18: ``layer1``..``layer4``; the study CNNs: every convolution), grids from the channel
  counts (Truong & Hasson);
* ``Hebbian``    — + :class:`tt.HebbianLoss` (layer-local, ρ = 0.1) on the first blocks
  (ResNet-18: ``conv1`` and the convolutions of ``layer1``; the study CNNs: the first
  convolution) (Cekic et al., arXiv:2202.13074);
* ``L2``         — + a plain Σ w² loss term on the same convolutions as ``WS`` (a reference, not
  a torchtopo term: what the cheapest weight penalty written as a loss costs in eager PyTorch,
  its forward, backward and autograd's accumulation into the convolutions' gradients);
* ``topoloss``   — + TopoNets' LaplacianPyramid loss (Deb et al., ICLR 2025) on the same layers
  as ``WS``, the weight ``(C_out, C_in·k·k)`` viewed as a ``h × w × C_in·k·k`` sheet (the
  ``topoloss`` package when it imports, else the re-implementation in ``neighbor_penalty.py``).

Models: ResNet-18 (torchvision, ``num_classes=10``, 64×64 input, batch 32) and the study CNNs
from :func:`tt.models.get_model` (``mnist_cnn``, ``hah_cnn``, ``lgn_cnn``; 28×28 grayscale,
batch 32).  Every configuration has its own copy of the model (same initial weights); the
configurations are timed *interleaved* (one step of each, ``--repeats`` times, after
``--warmup`` steps) and the medians compared, so that a shared machine's load affects them
alike.  Overhead = median(config) / median(plain) − 1.  Targets (CPU): WS on every conv ≤ 5 %,
AS ≤ 3 %.

    python benchmarks/train_step.py                       # CPU, 2 threads
    python benchmarks/train_step.py --threads 1 --models mnist_cnn --repeats 5
    python benchmarks/train_step.py --device cuda
    python benchmarks/train_step.py --profile WS --models resnet18   # where a term's time goes
    python benchmarks/train_step.py --breakdown --models resnet18     # per layer, the term alone
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn.functional as NF
from torch import nn

import torchtopo as tt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from neighbor_penalty import TOPOLOSS_LABEL, topoloss_lp  # noqa: E402  (one topoloss, shared)

CONFIGS = ("plain", "WS", "AS", "Hebbian", "L2", "topoloss")
MODELS = ("resnet18", "mnist_cnn", "hah_cnn", "lgn_cnn")
#: Overhead targets (fraction of the plain CPU step).
TARGETS = {"WS": 0.05, "AS": 0.03}


def make_model(name: str) -> Tuple[nn.Module, Tuple[int, ...]]:
    """The model and its per-image input shape."""
    if name == "resnet18":
        import torchvision

        return torchvision.models.resnet18(num_classes=10), (3, 64, 64)
    return tt.models.get_model(name), (1, 28, 28)


def convs(model: nn.Module) -> List[Tuple[str, nn.Conv2d]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def stage_names(name: str, model: nn.Module) -> List[str]:
    """Layers whose outputs AS regularizes: ResNet's four stages, else every convolution."""
    if name == "resnet18":
        return ["layer1", "layer2", "layer3", "layer4"]
    return [n for n, _ in convs(model)]


def hebbian_names(name: str, model: nn.Module) -> List[str]:
    """The first blocks' convolutions (those with enough channels for ρ = 0.1 to leave a rest)."""
    if name == "resnet18":
        return ["conv1"] + [n for n, _ in convs(model) if n.startswith("layer1.")]
    return [convs(model)[0][0]]


def out_channels(model: nn.Module, layer: str) -> int:
    m = model.get_submodule(layer)
    if isinstance(m, nn.Conv2d):
        return m.out_channels
    return [c for _, c in convs(m)][-1].out_channels  # a ResNet stage: its last convolution


def make_penalty(cfg: str, name: str, model: nn.Module) -> Callable[[], torch.Tensor]:
    """``() -> penalty`` for a configuration (``plain``: none)."""
    if cfg == "plain":
        return lambda: None
    if cfg == "topoloss":
        layers = [(m, tt.Grid.for_units(m.out_channels)) for _, m in convs(model)]

        def penalty():
            total = 0.0
            for m, g in layers:
                total = total + topoloss_lp(m.weight.view(g.height, g.width, -1))
            return total

        return penalty
    if cfg == "L2":
        weights = [m.weight for _, m in convs(model)]
        return lambda: 1e-4 * sum((w * w).sum() for w in weights)
    if cfg == "WS":
        terms = {n: tt.WeightSimilarity(1.0, tt.Grid.for_units(m.out_channels), distance="cosine")
                 for n, m in convs(model)}
    elif cfg == "AS":
        terms = {n: tt.ActivationSimilarity(1.0, tt.Grid.for_units(out_channels(model, n)), distance="correlation")
                 for n in stage_names(name, model)}
    elif cfg == "Hebbian":
        terms = {n: tt.HebbianLoss(1.0) for n in hebbian_names(name, model)}
    else:
        raise ValueError(f"unknown configuration {cfg!r}")
    reg = tt.attach(model, terms)
    return reg.penalty


def make_step(cfg: str, name: str, device: str, batch: int, seed: int) -> Callable[[], float]:
    torch.manual_seed(seed)  # the same initial weights for every configuration
    model, shape = make_model(name)
    model.to(device).train()
    penalty = make_penalty(cfg, name, model)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, *shape, generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = NF.cross_entropy(model(x), y)
        p = penalty()
        if p is not None:
            loss = loss + p
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_model(name: str, cfgs: List[str], device: str, batch: int, warmup: int, repeats: int) -> Dict[str, List[float]]:
    steps = {c: make_step(c, name, device, batch, seed=0) for c in cfgs}
    for s in steps.values():
        for _ in range(warmup):
            s()
    _sync(device)
    times: Dict[str, List[float]] = {c: [] for c in cfgs}
    for _ in range(repeats):  # interleaved: one step of each configuration per round
        for c, s in steps.items():
            t = time.perf_counter()
            s()
            _sync(device)
            times[c].append(time.perf_counter() - t)
    return times


def profile(name: str, cfg: str, device: str, batch: int, steps: int = 5, rows: int = 25) -> str:
    """torch.profiler table of ``steps`` training steps of one configuration (after a warm-up)."""
    from torch.profiler import ProfilerActivity, profile as tprofile

    step = make_step(cfg, name, device, batch, seed=0)
    for _ in range(3):
        step()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with tprofile(activities=acts) as prof:
        for _ in range(steps):
            step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def breakdown(name: str, device: str, repeats: int = 7) -> List[dict]:
    """Per layer: forward + backward time of the WS (cosine) term alone on the layer's weight and
    of the topoloss term, median of ``repeats``, and the number of aten operators one WS call
    dispatches (forward + backward).  Where a term's share of the step comes from."""
    from torch.profiler import ProfilerActivity, profile as tprofile

    model, _ = make_model(name)
    model.to(device)
    rows = []
    for lname, m in convs(model):
        g = tt.Grid.for_units(m.out_channels)
        w = m.weight.detach().clone().requires_grad_()
        fns = {"WS": lambda: tt.functional.weight_similarity(w, g, distance="cosine"),
               "topoloss": lambda: topoloss_lp(w.view(g.height, g.width, -1))}
        row = {"layer": lname, "units": m.out_channels, "grid": f"{g.height}x{g.width}", "D": w[0].numel()}
        for key, fn in fns.items():
            ts = []
            for _ in range(repeats + 1):
                t = time.perf_counter()
                fn().backward()
                _sync(device)
                ts.append(time.perf_counter() - t)
            row[f"{key}_ms"] = 1e3 * statistics.median(ts[1:])
        with tprofile(activities=[ProfilerActivity.CPU]) as prof:
            fns["WS"]().backward()
        row["WS_aten_ops"] = sum(1 for e in prof.events() if e.name.startswith("aten::"))
        rows.append(row)
    return rows


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (when present)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--profile", default=None, choices=CONFIGS, help="print a profiler table of this configuration instead")
    ap.add_argument("--breakdown", action="store_true",
                    help="instead: per-layer time of the WS and topoloss terms alone, and WS's aten op count")
    ap.add_argument("--out", default="runs/benchmarks/train_step.json")
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("train_step: --device cuda but CUDA is not available")
    if args.profile:
        for name in args.models:
            print(f"== {name}, {args.profile}, {args.device}, {args.threads} threads")
            print(profile(name, args.profile, args.device, args.batch))
        return {}
    if args.breakdown:
        out = {}
        for name in args.models:
            rows = out[name] = breakdown(name, args.device)
            print(f"== {name}: per-layer term cost alone (forward + backward), {args.threads} threads")
            print(f"{'layer':22s} {'grid':>6s} {'D':>6s} {'WS ms':>7s} {'aten ops':>8s} {'topoloss ms':>11s}")
            for r in rows:
                print(f"{r['layer']:22s} {r['grid']:>6s} {r['D']:6d} {r['WS_ms']:7.2f} {r['WS_aten_ops']:8d} "
                      f"{r['topoloss_ms']:11.2f}")
            print(f"{'total':22s} {'':6s} {'':6s} {sum(r['WS_ms'] for r in rows):7.2f} "
                  f"{sum(r['WS_aten_ops'] for r in rows):8d} {sum(r['topoloss_ms'] for r in rows):11.2f}")
        return out
    cfgs = ["plain"] + [c for c in args.configs if c != "plain"]
    results = []
    print(f"device: {args.device} ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, batch {args.batch}; medians of {args.repeats} interleaved steps; "
          f"topoloss: {TOPOLOSS_LABEL}")
    hdr = f"{'model':10s} {'config':9s} {'median ms':>10s} {'min ms':>8s} {'overhead':>9s} {'target':>7s}"
    print(hdr)
    print("-" * len(hdr))
    for name in args.models:
        t = time_model(name, cfgs, args.device, args.batch, args.warmup, args.repeats)
        base = statistics.median(t["plain"])
        for c in cfgs:
            med = statistics.median(t[c])
            r = {"model": name, "config": c, "median_ms": 1e3 * med, "min_ms": 1e3 * min(t[c]),
                 "times_ms": [1e3 * v for v in t[c]], "overhead": med / base - 1.0,
                 "target": TARGETS.get(c) if args.device == "cpu" else None}
            results.append(r)
            tgt = "" if r["target"] is None else f"{100 * r['target']:.0f} %"
            print(f"{name:10s} {c:9s} {r['median_ms']:10.1f} {r['min_ms']:8.1f} {100 * r['overhead']:8.1f}% {tgt:>7s}")
    report = {"device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "batch": args.batch, "repeats": args.repeats, "warmup": args.warmup,
              "topoloss": TOPOLOSS_LABEL, "results": results}
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
