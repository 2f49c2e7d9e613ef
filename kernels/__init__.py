"""Triton kernels for torchtopo (installed as ``torchtopo.kernels``).

Optional at run time: ``HAS_TRITON`` is False when Triton does not import, and
:mod:`torchtopo.functional` then uses its PyTorch path.
"""
try:  # pragma: no cover - depends on the environment
    import triton  # noqa: F401

    HAS_TRITON = True
except Exception:  # pragma: no cover
    HAS_TRITON = False

__all__ = ["HAS_TRITON"]
