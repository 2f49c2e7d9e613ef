"""The severity tables of the three published common-corruption benchmarks (private).

Hendrycks & Dietterich (ICLR 2019) generated ImageNet-C (224 px), Tiny ImageNet-C (64 px) and
CIFAR-10-C (32 px) each with its own parameter table; these are those tables, severities 1 … 5,
with the parameter meanings of :func:`torchtopo.robustness.corrupt`.  Spatial parameters are in
pixels of the preset's native image size (``NATIVE``).
"""
from __future__ import annotations

from typing import Dict, Tuple

__all__ = ["PRESETS", "NATIVE", "TABLES", "ELASTIC_UNIT", "FROST_PHOTOS", "FROST_CROP_STD", "pick_preset"]

#: The benchmarks, in order of image size.
PRESETS: Tuple[str, ...] = ("imagenet", "tiny_imagenet", "cifar10")
#: The image side each table was made for.
NATIVE: Dict[str, int] = {"imagenet": 224, "tiny_imagenet": 64, "cifar10": 32}
#: The elastic parameters are multiples of this many pixels (ImageNet-C's code uses 244 on its
#: 224-px images; the others the image side).
ELASTIC_UNIT: Dict[str, float] = {"imagenet": 244.0, "tiny_imagenet": 64.0, "cifar10": 32.0}

#: Mean RGB brightness in [0, 1] of the five frost photographs the reference draws from
#: (frost1.png … frost5.jpg of hendrycks/robustness; the sixth is never drawn), measured once.
FROST_PHOTOS: Tuple[Tuple[float, float, float], ...] = (
    (0.305, 0.585, 0.650),
    (0.787, 0.805, 0.841),
    (0.787, 0.805, 0.841),
    (0.540, 0.599, 0.648),
    (0.441, 0.484, 0.528),
)
#: Per photograph, the mean SD of the grey level within one crop of the preset's size (the
#: reference shrinks the photos by 0.3 for Tiny ImageNet-C and by 0.2 for CIFAR-10-C first).
FROST_CROP_STD: Dict[str, Tuple[float, ...]] = {
    "imagenet": (0.061, 0.079, 0.079, 0.103, 0.139),
    "tiny_imagenet": (0.048, 0.061, 0.060, 0.068, 0.102),
    "cifar10": (0.041, 0.050, 0.049, 0.056, 0.094),
}

_IMAGENET = {
    "gaussian_noise": [0.08, 0.12, 0.18, 0.26, 0.38],
    "shot_noise": [60, 25, 12, 5, 3],
    "impulse_noise": [0.03, 0.06, 0.09, 0.17, 0.27],
    "defocus_blur": [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)],
    "glass_blur": [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)],
    "motion_blur": [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)],
    # (stop, step) of numpy.arange(1, stop, step), with numpy's count ⌈(stop − 1)/step⌉ in float
    # arithmetic (so (1.11, .01) gives the 12 zooms 1 … 1.11)
    "zoom_blur": [(1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03)],
    "snow": [
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
        (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
    ],
    "frost": [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)],
    "fog": [(1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)],
    "brightness": [0.1, 0.2, 0.3, 0.4, 0.5],
    "contrast": [0.4, 0.3, 0.2, 0.1, 0.05],
    "elastic_transform": [(2, 0.7, 0.1), (2, 0.08, 0.2), (0.05, 0.01, 0.02), (0.07, 0.01, 0.02), (0.12, 0.01, 0.02)],
    "pixelate": [0.6, 0.5, 0.4, 0.3, 0.25],
    "jpeg_compression": [25, 18, 15, 10, 7],
}

_TINY = {
    "gaussian_noise": [0.04, 0.08, 0.12, 0.15, 0.18],
    "shot_noise": [250, 100, 50, 30, 15],
    "impulse_noise": [0.01, 0.02, 0.05, 0.08, 0.14],
    "defocus_blur": [(0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)],
    "glass_blur": [(0.1, 1, 1), (0.5, 1, 1), (0.6, 1, 2), (0.7, 2, 1), (0.9, 2, 2)],
    "motion_blur": [(10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)],
    "zoom_blur": [(1.06, 0.01), (1.11, 0.01), (1.16, 0.01), (1.21, 0.01), (1.26, 0.01)],
    "snow": [
        (0.1, 0.2, 1, 0.6, 8, 3, 0.8),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.8),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6),
    ],
    "frost": [(1, 0.3), (0.9, 0.4), (0.8, 0.45), (0.75, 0.5), (0.7, 0.55)],
    "fog": [(0.4, 3), (0.7, 3), (1.0, 2.5), (1.5, 2), (2.0, 1.75)],
    "brightness": [0.1, 0.2, 0.3, 0.4, 0.5],
    "contrast": [0.4, 0.3, 0.2, 0.1, 0.05],
    "elastic_transform": [(0, 0, 0.08), (0.05, 0.3, 0.06), (0.1, 0.08, 0.06), (0.1, 0.03, 0.03), (0.16, 0.03, 0.02)],
    "pixelate": [0.9, 0.8, 0.7, 0.6, 0.5],
    "jpeg_compression": [65, 58, 50, 40, 25],
}

_CIFAR = {
    "gaussian_noise": [0.04, 0.06, 0.08, 0.09, 0.10],
    "shot_noise": [500, 250, 100, 75, 50],
    "impulse_noise": [0.01, 0.02, 0.03, 0.05, 0.07],
    "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
    "glass_blur": [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],
    "motion_blur": [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],
    "zoom_blur": _TINY["zoom_blur"],
    "snow": [
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ],
    "frost": [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],
    "fog": [(0.2, 3), (0.5, 3), (0.75, 2.5), (1.0, 2), (1.5, 1.75)],
    "brightness": [0.05, 0.1, 0.15, 0.2, 0.3],
    "contrast": [0.75, 0.5, 0.4, 0.3, 0.15],
    "elastic_transform": [(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)],
    "pixelate": [0.95, 0.9, 0.85, 0.75, 0.65],
    "jpeg_compression": [80, 65, 58, 50, 40],
}

#: preset -> kind -> the five severities' parameters.
TABLES: Dict[str, Dict[str, list]] = {"imagenet": _IMAGENET, "tiny_imagenet": _TINY, "cifar10": _CIFAR}


def pick_preset(height: int, width: int) -> str:
    """The benchmark whose images are closest in size: side ≤ 32 → CIFAR-10-C, ≤ 64 → Tiny
    ImageNet-C, else ImageNet-C (side = min(H, W))."""
    side = min(height, width)
    return "cifar10" if side <= 32 else "tiny_imagenet" if side <= 64 else "imagenet"
