"""Strength of every common corruption per benchmark table (Hendrycks & Dietterich, ICLR 2019).

For each corruption, preset ("imagenet", "tiny_imagenet", "cifar10") and image size, prints the
mean absolute change mean|corrupt(x) − x| (grey levels of 255) per severity 1 … 5, over crops of
the photographs that scikit-image ships (offline), resized with antialiasing; writes JSON.
Severity should raise it monotonically; ``!`` marks a drop larger than ``--tol`` grey levels.

    python benchmarks/corruption_strength.py                          # 224, 64, 32 px, 24 images
    python benchmarks/corruption_strength.py --sizes 32 --presets cifar10 --n 48
"""
from __future__ import annotations

import argparse
import json
from typing import Dict, List

import torch
import torch.nn.functional as F

import torchtopo as tt

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field")


def photographs(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """``n`` random square crops (half to all of the short side) of scikit-image's colour
    photographs, resized to ``size`` px with antialiasing; (n, 3, size, size) in [0, 1]."""
    from skimage import data

    g = torch.Generator().manual_seed(seed)
    imgs = [torch.from_numpy(getattr(data, name)()[..., :3].copy()).permute(2, 0, 1).double() / 255 for name in PHOTOS]
    out = []
    for i in range(n):
        im = imgs[i % len(imgs)]
        side = min(im.shape[1:])
        c = int(side * (0.5 + 0.5 * float(torch.rand((), generator=g))))
        top = int(torch.randint(0, im.shape[1] - c + 1, (), generator=g))
        left = int(torch.randint(0, im.shape[2] - c + 1, (), generator=g))
        crop = im[None, :, top : top + c, left : left + c]
        out.append(F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False))
    return torch.cat(out).clamp(0, 1).float()


def strength(x: torch.Tensor, kind: str, preset: str, seed: int = 0) -> List[float]:
    """mean|corrupt(x) − x| × 255 at severities 1 … 5 (the same seeded draws at every severity)."""
    return [
        255 * float((tt.robustness.corrupt(x, kind, s, preset=preset, generator=torch.Generator().manual_seed(seed)) - x).abs().mean())
        for s in range(1, 6)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[224, 64, 32])
    ap.add_argument("--presets", nargs="+", default=list(tt.robustness.PRESETS))
    ap.add_argument("--kinds", nargs="+", default=list(tt.robustness.COMMON_CORRUPTIONS))
    ap.add_argument("--n", type=int, default=24, help="images per size")
    ap.add_argument("--tol", type=float, default=0.0, help="allowed drop between severities (grey levels)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default="corruption_strength.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res: Dict[str, Dict] = {}
    print("mean |corrupt(x) - x| in grey levels (of 255), severities 1 … 5; ! = a drop > tol\n")
    print("| corruption | preset | px | s1 | s2 | s3 | s4 | s5 |")
    print("|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        x = photographs(args.n, size)
        for kind in args.kinds:
            for preset in args.presets:
                v = strength(x, kind, preset)
                res.setdefault(kind, {}).setdefault(preset, {})[size] = v
                cells = [f"{v[0]:.2f}"] + [f"{b:.2f}" + ("!" if b < a - args.tol else "") for a, b in zip(v, v[1:])]
                print(f"| {kind} | {preset} | {size} | " + " | ".join(cells) + " |", flush=True)
    with open(args.json, "w") as f:
        json.dump({"n": args.n, "photos": PHOTOS, "mean_abs_change_255": res}, f, indent=1)


if __name__ == "__main__":
    main()
