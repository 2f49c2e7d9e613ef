"""Analyses of the studies' evaluations: batched, torch-native, on any device."""

# --- topographic analyses (issue 4) ---
# --- filter fits and lateral-kernel analyses (issue 7): fit_log, fit_gabor, ... ---

__all__: list = []
