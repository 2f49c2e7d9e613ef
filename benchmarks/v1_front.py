"""Forward time and MACs of ``tt.V1Front`` against a dense VOneNet-style bank (Dapello et al.
2020; Barbulescu et al., arXiv:2310.10575).

The dense bank is written here from the same sampled parameters and the same kernels, the way
VOneNet computes it: every filter is a ``C_in × k × k`` kernel that is zero except on the one
input channel it reads, the q0 and q1 banks are computed for *all* cells (one convolution with
``2 N`` output channels over all input channels), then simple cells take ``ReLU(q0)``, complex
cells ``√(q0² + q1²)/√2``, and the result is scaled by ``k_exc``.  Both run without noise (the
noise costs the same in both).

``V1Front`` computes each filter on its own input channel (one convolution per input channel
and kernel size) and q1 only for complex cells: for RGB input and 256 + 256 cells that is
``768 k²`` instead of ``3 · 1024 k²`` MACs per output pixel (1/4).  Target: ≤ 1/3 of the
dense time.

Rows: the three presets (forced kernel sizes, as the studies) and the Tiny ImageNet and ImageNet
fronts with kernel sizes chosen from σ (``kernel_size=None``: no envelope truncated, the faithful
mode; the dense bank then uses the largest kernel for every filter, which is what a single dense
convolution needs).  For the σ-sized rows the time per image is also given relative to the
preset with the forced kernel size at the same image size (target ≤ 2×).

Timings are the minimum and median of ``--repeats`` interleaved runs after a warm-up (the machine
may be shared, single timings are noisy).

    python benchmarks/v1_front.py                 # CPU
    python benchmarks/v1_front.py --device cuda --batch-scale 4
    python benchmarks/v1_front.py --quick
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import torchtopo as tt
from torchtopo.functional.gabor import gabor_kernels


class DenseVOneBank(nn.Module):
    """VOneNet-style dense bank with the parameters of ``front`` (every filter over every input
    channel, q1 for every cell), kernel size ``k`` for all filters."""

    def __init__(self, front: tt.V1Front, k: int) -> None:
        super().__init__()
        p = front.params
        n, c = front.out_channels, front.in_channels
        f = p["sf_cpd"].double() / front.ppd
        args = (p["theta_deg"].double(),)
        w = torch.zeros(2 * n, c, k, k, dtype=torch.float64)
        for q, dphi in enumerate((0.0, 90.0)):
            ker = gabor_kernels(f, *args, p["phase_deg"].double() + dphi, p["nx"].double(), p["ny"].double(), k)
            w[q * n + torch.arange(n), p["channel"]] = ker
        w = w.float()
        w = torch.where(w.abs() < torch.finfo(torch.float32).tiny, torch.zeros_like(w), w)  # as V1Front
        self.register_buffer("weight", w)
        self.n, self.s, self.k, self.stride, self.k_exc = n, front.simple_channels, k, front.stride, front.k_exc

    def forward(self, x: Tensor) -> Tensor:
        q = F.conv2d(x, self.weight, stride=self.stride, padding=self.k // 2)
        q0, q1 = q[:, :self.n], q[:, self.n:]
        simple = F.relu(q0[:, :self.s])
        cplx = torch.sqrt(q0[:, self.s:] ** 2 + q1[:, self.s:] ** 2) / math.sqrt(2)
        return self.k_exc * torch.cat([simple, cplx], 1)

    def macs(self, h: int, w: int) -> int:
        ho, wo = (h - 1) // self.stride + 1, (w - 1) // self.stride + 1
        return int(self.weight.numel()) * ho * wo


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench(fns: Dict[str, Callable[[], object]], device: str, warmup: int, repeats: int) -> Dict[str, List[float]]:
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    times: Dict[str, List[float]] = {k: [] for k in fns}
    for _ in range(repeats):  # interleaved
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t)
    return times


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch-scale", type=float, default=1.0, help="multiply every row's batch size")
    ap.add_argument("--quick", action="store_true", help="small batches, 3 repeats")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    ap.add_argument("--only", default=None, help="run only the rows whose label contains this text")
    ap.add_argument("--out", default="runs/benchmarks/v1_front.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup, args.batch_scale = 3, 1, args.batch_scale / 4
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows_cfg = [
        ("imagenet (224px, k=25, s=4)", tt.V1Front.imagenet, {}, 8),
        ("tiny_imagenet (64px, k=31, s=2)", tt.V1Front.tiny_imagenet, {}, 32),
        ("cifar (32px, k=15, s=1)", tt.V1Front.cifar, {}, 32),
        ("tiny_imagenet, k from sigma", tt.V1Front.tiny_imagenet, {"kernel_size": None}, 32),
        ("imagenet, k from sigma", tt.V1Front.imagenet, {"kernel_size": None}, 2),
    ]
    if args.only:
        rows_cfg = [r for r in rows_cfg if args.only in r[0]]
    rows = []
    for label, preset, kw, batch in rows_cfg:
        front = preset(noise=None, **kw).to(args.device).eval()
        k_dense = int(front.kernel_sizes.max())
        dense = DenseVOneBank(front.cpu(), k_dense).to(args.device)
        front.to(args.device)
        b = max(1, int(round(batch * args.batch_scale)))
        x = torch.rand(b, 3, front.image_size, front.image_size, device=args.device)
        with torch.no_grad():
            err = float((front(x) - dense(x)).abs().max() / dense(x).abs().max()) if k_dense <= 49 else float("nan")
            t = bench({"dense": lambda: dense(x), "v1front": lambda: front(x)}, args.device, args.warmup, args.repeats)
        h = front.image_size
        row = {
            "config": label, "batch": b, "kernel_dense": k_dense,
            "truncated_fraction": front.truncated_fraction,
            "dense_ms_min": 1e3 * min(t["dense"]), "dense_ms_median": 1e3 * statistics.median(t["dense"]),
            "v1front_ms_min": 1e3 * min(t["v1front"]), "v1front_ms_median": 1e3 * statistics.median(t["v1front"]),
            "dense_gmacs_per_image": dense.macs(h, h) / 1e9, "v1front_gmacs_per_image": front.macs(h, h) / 1e9,
            "max_rel_diff": err,
        }
        row["time_ratio_min"] = row["v1front_ms_min"] / row["dense_ms_min"]
        row["time_ratio_median"] = row["v1front_ms_median"] / row["dense_ms_median"]
        row["macs_ratio"] = row["v1front_gmacs_per_image"] / row["dense_gmacs_per_image"]
        forced = next((r for r in rows if r["config"].split(",")[0].split(" ")[0] == label.split(",")[0]
                       and "sigma" not in r["config"]), None)
        if "sigma" in label and forced is not None:  # the faithful mode against the forced preset, per image
            for s in ("min", "median"):
                row[f"sigma_vs_forced_{s}"] = (row[f"v1front_ms_{s}"] / b) / (forced[f"v1front_ms_{s}"] / forced["batch"])
        rows.append(row)
        del dense, front
    hdr = (f"{'config':34s} {'batch':>5s} {'dense ms':>10s} {'V1Front ms':>11s} {'ratio':>6s} "
           f"{'dense GMAC':>10s} {'V1F GMAC':>9s} {'MAC ratio':>9s} {'trunc':>6s}")
    print(f"device: {args.device} ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}; times: min (median) of {args.repeats}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print(f"{r['config']:34s} {r['batch']:5d} {r['dense_ms_min']:6.1f}({r['dense_ms_median']:.0f}) "
              f"{r['v1front_ms_min']:7.1f}({r['v1front_ms_median']:.0f}) {r['time_ratio_min']:6.2f} "
              f"{r['dense_gmacs_per_image']:10.3f} {r['v1front_gmacs_per_image']:9.3f} {r['macs_ratio']:9.3f} "
              f"{r['truncated_fraction']:6.3f}")
    for r in rows:
        if "sigma_vs_forced_min" in r:
            print(f"{r['config']}: {r['sigma_vs_forced_min']:.2f} (median {r['sigma_vs_forced_median']:.2f}) x "
                  f"the forced-kernel preset at the same image size (per image)")
    print("targets: V1Front time <= 1/3 of the dense bank's (ratio <= 0.33); "
          "sigma-sized kernels <= 2x the forced-kernel preset")
    result = {"device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "repeats": args.repeats, "rows": rows}
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
