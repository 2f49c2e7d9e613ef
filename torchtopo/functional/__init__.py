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

__all__ = [
    "DISTANCES",
    "activation_similarity",
    "neighbor_distance_mean",
    "resolve_backend",
    "spatial_correlation",
    "unit_view",
    "weight_similarity",
]

# --- HaH (issue 6): divisive_norm, hebbian_cost, ... are imported here ---
from ._hah import (  # noqa: E402
    divisive_norm,
    fractional_threshold,
    gdn,
    hebbian_cost,
    hebbian_k,
    normalized_conv2d,
    normalized_weight,
)

__all__ += [
    "divisive_norm",
    "fractional_threshold",
    "gdn",
    "hebbian_cost",
    "hebbian_k",
    "normalized_conv2d",
    "normalized_weight",
]
