"""torchtopo: brain-inspired regularizers and layers for PyTorch.

>>> import torchtopo as tt
>>> reg = tt.attach(model, {"fc1": tt.WeightSimilarity(strength=1.0, distance="cosine")})
"""
from . import data, functional, models
from .grid import Grid, as_grid
from .regularizer import Regularizer, Term, attach
from .terms import ActivationSimilarity, SpatialCorrelation, WeightSimilarity
from .topo import TopoLinear

__version__ = "0.1.0"

__all__ = [
    "Grid",
    "as_grid",
    "Term",
    "Regularizer",
    "attach",
    "WeightSimilarity",
    "ActivationSimilarity",
    "SpatialCorrelation",
    "TopoLinear",
    "data",
    "functional",
    "models",
]

# Each section below adds its imports and `__all__ += [...]`.
# --- analysis / robustness / plot (issue 4) ---
from . import analysis, plot, robustness  # noqa: E402  (plot imports matplotlib lazily)

__all__ += ["analysis", "robustness", "plot"]
# --- V1 front (issue 5) ---
from . import v1  # noqa: E402
from .v1 import V1Front, with_v1_front  # noqa: E402

__all__ += ["v1", "V1Front", "with_v1_front"]
# --- HaH (issue 6) ---
from . import adversarial  # noqa: E402
from .hah import (  # noqa: E402
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

__all__ += [
    "adversarial",
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
]
# --- LGN and lateral (issue 7) ---
from .lgn import LateralConv2d, LGNFilter  # noqa: E402

__all__ += ["LGNFilter", "LateralConv2d"]
