"""Triton kernels for torchtopo (installed as ``torchtopo.kernels``).

Optional at run time: ``HAS_TRITON`` is False when Triton does not import, and
:mod:`torchtopo.functional` then uses its PyTorch path.  When Triton imports,
:func:`pair_sums` and :func:`pair_grad` are the two fused walks of the neighbour-distance
penalties behind the WS and AS losses (see :mod:`torchtopo.kernels.neighbor`).  On CPU tensors the kernels only run under
``TRITON_INTERPRET=1`` (set before ``triton`` is first imported), which is how the tests check
them.
"""
#: True when Triton imports and the kernels load (then ``backend="auto"`` uses them for CUDA
#: tensors); False otherwise, and :mod:`torchtopo.functional` runs its PyTorch path.
HAS_TRITON = False
try:  # pragma: no cover - depends on the environment
    import triton  # noqa: F401

    HAS_TRITON = True
except Exception:  # pragma: no cover
    pass

__all__ = ["HAS_TRITON"]

if HAS_TRITON:  # pragma: no branch
    try:
        from .neighbor import pair_grad, pair_sums  # noqa: F401

        __all__ += ["pair_sums", "pair_grad"]
    except Exception:  # pragma: no cover - a Triton too old for the kernels
        HAS_TRITON = False
