"""A V1-like front-end (issue 5): Gabor filter bank with biologically sampled receptive fields."""

__all__: list = []
