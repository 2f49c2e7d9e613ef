"""Analyses of the studies' evaluations: batched, torch-native, on any device."""

__all__: list = []

# Each section below adds its imports and `__all__ += [...]`.
# --- topographic analyses (issue 4) ---
from . import topographic as _topographic
from .topographic import *  # noqa: F401,F403  (names listed in topographic.__all__)

__all__ += list(_topographic.__all__)
# --- filter fits and lateral-kernel analyses (issue 7): fit_log, fit_gabor, ... ---
from .fits import fit_gabor, fit_log, gabor_kernel, log_kernel, radial_symmetry  # noqa: E402
from .lateral import (  # noqa: E402
    association_field,
    lateral_selectivity,
    plot_association_field,
    plot_lateral_selectivity,
    plot_unit_association_fields,
)

__all__ = list(globals().get("__all__", [])) + [
    "fit_log",
    "fit_gabor",
    "log_kernel",
    "gabor_kernel",
    "radial_symmetry",
    "lateral_selectivity",
    "association_field",
    "plot_lateral_selectivity",
    "plot_association_field",
    "plot_unit_association_fields",
]
