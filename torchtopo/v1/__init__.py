"""A V1-like front-end: Gabor filter bank with biologically sampled receptive fields.

VOneNet (Dapello et al. 2020) as studied by Barbulescu, Marques & Oliveira (arXiv:2310.10575).
:class:`V1Front` is the module, :func:`with_v1_front` puts it in front of a model, :func:`gabor_kernels`
(from :mod:`torchtopo.functional.gabor`) builds its filters, :mod:`torchtopo.v1.distributions` holds the
primate receptive-field tables and samplers, :mod:`torchtopo.v1.analysis` the conformance report,
filter plots, grating tuning and sub-population ablation.
"""
from . import analysis, distributions
from ..functional.gabor import envelope_half_width, gabor_kernels
from .front import V1Front
from .stem import V1Stem, with_v1_front

__all__ = ["V1Front", "V1Stem", "with_v1_front", "gabor_kernels", "envelope_half_width", "distributions", "analysis"]
