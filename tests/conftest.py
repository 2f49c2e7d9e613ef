"""Shared pytest configuration.

Tests run with ``--import-mode=importlib`` (test files in different folders may share a name),
so this folder is put on ``sys.path`` for the shared helpers (``from _scripts import ...``).

Kernels: without a CUDA device the Triton kernels can only run in Triton's interpreter,
which reads ``TRITON_INTERPRET`` when a kernel is defined, so it is set here, before any test
module imports ``triton`` or ``torchtopo.kernels``.  Tests marked ``@pytest.mark.cuda`` are
skipped when no CUDA device is present.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

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
