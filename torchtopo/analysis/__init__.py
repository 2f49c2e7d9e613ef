"""Analyses of the studies' evaluations: batched, torch-native, on any device.

Topographic layers (Truong & Hasson, arXiv:2508.00043): :mod:`~torchtopo.analysis.collect`,
:mod:`~torchtopo.analysis.maps`, :mod:`~torchtopo.analysis.units`,
:mod:`~torchtopo.analysis.categories`, :mod:`~torchtopo.analysis.probes`.  Filter fits and
lateral kernels (Bertoni et al. 2021): :mod:`~torchtopo.analysis.fits`,
:mod:`~torchtopo.analysis.lateral`.
"""
from .categories import expert_units, localization_score, selectivity
from .collect import collect_activations
from .fits import fit_gabor, fit_log, gabor_kernel, log_kernel, radial_symmetry
from .lateral import (
    association_field,
    lateral_selectivity,
    plot_association_field,
    plot_lateral_selectivity,
    plot_unit_association_fields,
)
from .maps import (
    correlation_distribution,
    correlation_matrix,
    correlation_vs_distance,
    directional_morans_i,
    mean_map_share,
    morans_i,
    neighbor_correlation,
)
from .probes import (
    eccentricity_stimuli,
    eccentricity_tuning,
    grating,
    orientation_tuning,
    symmetry_selectivity,
    symmetry_stimuli,
)
from .units import effective_dimensionality, input_sensitivity, percent_zero, unit_entropy

__all__ = [
    # collection
    "collect_activations",
    # map structure
    "morans_i",
    "directional_morans_i",
    "mean_map_share",
    "correlation_matrix",
    "neighbor_correlation",
    "correlation_vs_distance",
    "correlation_distribution",
    # unit statistics
    "unit_entropy",
    "percent_zero",
    "input_sensitivity",
    "effective_dimensionality",
    # category structure
    "selectivity",
    "expert_units",
    "localization_score",
    # stimuli and probes
    "grating",
    "orientation_tuning",
    "symmetry_stimuli",
    "symmetry_selectivity",
    "eccentricity_stimuli",
    "eccentricity_tuning",
    # filter fits
    "fit_log",
    "fit_gabor",
    "log_kernel",
    "gabor_kernel",
    "radial_symmetry",
    # lateral kernels
    "lateral_selectivity",
    "association_field",
    "plot_lateral_selectivity",
    "plot_association_field",
    "plot_unit_association_fields",
]
