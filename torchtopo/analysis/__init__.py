"""Analyses of the studies' evaluations: batched, torch-native, on any device."""

__all__: list = []

# Each section below adds its imports and `__all__ += [...]`.
# --- topographic analyses (issue 4) ---
# --- filter fits and lateral-kernel analyses (issue 7): fit_log, fit_gabor, ... ---
