"""torchtopo: brain-inspired regularizers and layers for PyTorch.

>>> import torchtopo as tt
>>> reg = tt.attach(model, {"fc1": tt.WeightSimilarity(strength=1.0, distance="cosine")})

One block per study, in the README's order; the namespaces ``tt.functional``, ``tt.analysis``,
``tt.robustness``, ``tt.plot``, ``tt.models``, ``tt.data``, ``tt.adversarial`` and ``tt.v1`` hold
the rest.
"""
from . import adversarial, analysis, data, functional, models, plot, robustness, v1

# geometry and attachment
from .grid import Grid, as_grid
from .regularizer import Regularizer, Term, attach

# topographic units and losses (Truong & Hasson; TDANN)
from .topographic import ActivationSimilarity, SpatialCorrelation, TopoLinear, WeightSimilarity

# V1-like front-end (Barbulescu et al.; VOneNet)
from .v1 import V1Front, with_v1_front

# Hebbian / anti-Hebbian learning with divisive normalisation (Cekic et al.)
from .hebbian import (
    GDN,
    PAPER_HEBBIAN_STRENGTHS,
    DivisiveNorm,
    FractionalThreshold,
    HaHActivation,
    HaHBlock,
    HebbianLoss,
    NormalizedConv2d,
    hah_layer_names,
    hebbian_terms,
    to_hah,
)

# LGN pre-filter and lateral connections (Bertoni et al.)
from .lgn import LateralConv2d, LGNFilter

__version__ = "0.1.0"

__all__ = [
    # namespaces
    "adversarial",
    "analysis",
    "data",
    "functional",
    "models",
    "plot",
    "robustness",
    "v1",
    # geometry and attachment
    "Grid",
    "as_grid",
    "Term",
    "Regularizer",
    "attach",
    # topographic
    "WeightSimilarity",
    "ActivationSimilarity",
    "SpatialCorrelation",
    "TopoLinear",
    # V1
    "V1Front",
    "with_v1_front",
    # Hebbian
    "NormalizedConv2d",
    "DivisiveNorm",
    "FractionalThreshold",
    "GDN",
    "HaHActivation",
    "HaHBlock",
    "HebbianLoss",
    "to_hah",
    "hah_layer_names",
    "hebbian_terms",
    "PAPER_HEBBIAN_STRENGTHS",
    # LGN
    "LGNFilter",
    "LateralConv2d",
]
