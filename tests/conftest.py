"""Shared pytest configuration.

Kernels (issue 3): without a CUDA device the Triton kernels can only run in Triton's interpreter,
which reads ``TRITON_INTERPRET`` when a kernel is defined, so it is set here, before any test
module imports ``triton`` or ``torchtopo.kernels``.  Tests marked ``@pytest.mark.cuda`` are
skipped when no CUDA device is present.
"""
import os

import pytest

try:
    import torch

    _HAS_CUDA = bool(torch.cuda.is_available())
except Exception:  # pragma: no cover
    _HAS_CUDA = False

if not _HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_collection_modifyitems(config, items):
    if _HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
