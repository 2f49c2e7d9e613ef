"""Overhead of the HaH block and the Hebbian term against conv → BatchNorm → ReLU (Cekic et al., arXiv:2202.13074).

Times forward + backward of one block on a batch, for

* ``conv-bn-relu``: the baseline ``nn.Conv2d`` → ``nn.BatchNorm2d`` → ``nn.ReLU``;
* ``hah``: ``tt.HaHBlock`` (NormalizedConv2d → ReLU → DivisiveNorm → FractionalThreshold);
* ``hah+hebbian(local)``: the block plus ``tt.HebbianLoss`` via ``tt.attach`` (layer-local:
  one extra convolution inside ``penalty()``);
* ``hah+hebbian(e2e)``: the same with ``local=False``;
* the parts alone: ``divisive_norm``, ``fractional_threshold``, ``hebbian_cost`` (forward + backward).

and prints the median time and its ratio to the baseline; writes JSON.

    python benchmarks/hah_block.py                       # CPU, VGG16 conv2-sized block
    python benchmarks/hah_block.py --device cuda --batch 128
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch
from torch import nn

import torchtopo as tt
from torchtopo import functional as TF


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timeit(fn: Callable[[], None], device: str, warmup: int, repeat: int) -> List[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - t)
    return out


def main(argv: Optional[List[str]] = None) -> Dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--channels", type=int, nargs=2, default=(64, 64), metavar=("C_IN", "C_OUT"))
    p.add_argument("--size", type=int, default=32, help="input height = width")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="autocast dtype on CUDA")
    p.add_argument("--out", default="runs/benchmarks/hah_block.json")
    a = p.parse_args(argv)
    dev = a.device
    torch.manual_seed(0)
    cin, cout = a.channels
    x = torch.randn(a.batch, cin, a.size, a.size, device=dev)

    base = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()).to(dev)
    hah = tt.HaHBlock(cin, cout).to(dev)
    hah_local = tt.HaHBlock(cin, cout).to(dev)
    reg_local = tt.attach(hah_local, {"conv": tt.HebbianLoss(0.0045, local=True)})
    hah_e2e = tt.HaHBlock(cin, cout).to(dev)
    reg_e2e = tt.attach(hah_e2e, {"conv": tt.HebbianLoss(0.0045, local=False)})
    z = torch.relu(torch.randn(a.batch, cout, a.size, a.size, device=dev)).requires_grad_()

    amp = a.dtype == "bfloat16" and dev.startswith("cuda")

    def run(model, reg=None):
        def f():
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                y = model(x)
                loss = y.float().square().mean()
                if reg is not None:
                    loss = loss + reg.penalty()
            loss.backward()
            model.zero_grad(set_to_none=True)
        return f

    def part(fn, scalar=False):
        def f():
            out = fn(z)
            (out if scalar else out.float().square().mean()).backward()
            z.grad = None
        return f

    cases = {
        "conv-bn-relu": run(base),
        "hah": run(hah),
        "hah+hebbian(local)": run(hah_local, reg_local),
        "hah+hebbian(e2e)": run(hah_e2e, reg_e2e),
        "divisive_norm": part(lambda t: TF.divisive_norm(t)),
        "fractional_threshold": part(lambda t: TF.fractional_threshold(t)),
        "hebbian_cost": part(TF.hebbian_cost, scalar=True),
    }
    res = {}
    for name, fn in cases.items():
        ts = timeit(fn, dev, a.warmup, a.repeat)
        res[name] = {"median_ms": 1e3 * statistics.median(ts), "min_ms": 1e3 * min(ts)}
    b = res["conv-bn-relu"]["median_ms"]
    for r in res.values():
        r["ratio_vs_conv_bn_relu"] = r["median_ms"] / b

    shape = f"x ({a.batch}, {cin}, {a.size}, {a.size}) → {cout} ch, 3×3"
    dev_name = torch.cuda.get_device_name() if dev.startswith("cuda") else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    print(f"forward + backward, {shape}, {dev_name}, {a.dtype if amp else 'float32'}, median of {a.repeat}")
    print(f"{'case':<24}{'median ms':>12}{'min ms':>10}{'× conv-bn-relu':>16}")
    for name, r in res.items():
        print(f"{name:<24}{r['median_ms']:>12.2f}{r['min_ms']:>10.2f}{r['ratio_vs_conv_bn_relu']:>16.2f}")
    payload = {
        "benchmark": "hah_block",
        "device": dev_name,
        "dtype": a.dtype if amp else "float32",
        "shape": {"batch": a.batch, "c_in": cin, "c_out": cout, "size": a.size},
        "torch": torch.__version__,
        "results": res,
    }
    if a.out:
        os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
        with open(a.out, "w") as fh:
            json.dump(payload, fh, indent=2)
        print(f"wrote {a.out}")
    reg_local.remove()
    reg_e2e.remove()
    return payload


if __name__ == "__main__":
    main()
