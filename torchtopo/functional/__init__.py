"""Pure, differentiable functions (the ``torch.nn.functional`` of torchtopo).

Modules in :mod:`torchtopo` hold parameters and call these.
"""
from .topographic import (
    DISTANCES,
    activation_similarity,
    neighbor_distance_mean,
    resolve_backend,
    spatial_correlation,
    unit_view,
    weight_similarity,
)
from .hebbian import (
    divisive_norm,
    fractional_threshold,
    gdn,
    hebbian_cost,
    hebbian_k,
    normalized_conv2d,
    normalized_weight,
)
from .gabor import envelope_half_width, gabor_kernels

__all__ = [
    "DISTANCES",
    "activation_similarity",
    "neighbor_distance_mean",
    "resolve_backend",
    "spatial_correlation",
    "unit_view",
    "weight_similarity",
    "divisive_norm",
    "fractional_threshold",
    "gdn",
    "hebbian_cost",
    "hebbian_k",
    "normalized_conv2d",
    "normalized_weight",
    "gabor_kernels",
    "envelope_half_width",
]
