r"""Robustness evaluations: image corruptions and weight perturbations, batched in torch.

Images are ``(B, C, H, W)`` tensors in [0, 1] (any size, any channel count, grayscale included):
corrupt them in pixel space, then let the model normalise (put :class:`torchtopo.data.Normalize`
first in the model).

* :mod:`~torchtopo.robustness.corruptions`: :func:`corrupt` with the noises of Truong & Hasson
  (arXiv:2508.00043) and the 15 common corruptions (Hendrycks & Dietterich, ICLR 2019) with
  the tables of ImageNet-C, Tiny ImageNet-C and CIFAR-10-C (:data:`PRESETS`), and
  :func:`pink_noise`.
* :mod:`~torchtopo.robustness.weights`: :func:`perturb_weights` (a context manager that restores
  the weights bit-exactly) and :func:`readout_rsm`.
* :mod:`~torchtopo.robustness.evaluate`: :func:`evaluate_accuracy`, :func:`evaluate_corruptions`
  and :func:`evaluate_weight_noise` (accuracy change and the cosine similarity of the readout's
  class-weight RSM before and after, Truong & Hasson).
"""
from .corruptions import COMMON_CORRUPTIONS, CORRUPTIONS, NOISE_CORRUPTIONS, PRESETS, corrupt, pink_noise
from .evaluate import evaluate_accuracy, evaluate_corruptions, evaluate_weight_noise
from .weights import perturb_weights, readout_rsm

__all__ = [
    "NOISE_CORRUPTIONS",
    "COMMON_CORRUPTIONS",
    "CORRUPTIONS",
    "PRESETS",
    "corrupt",
    "pink_noise",
    "perturb_weights",
    "readout_rsm",
    "evaluate_accuracy",
    "evaluate_corruptions",
    "evaluate_weight_noise",
]
