"""Topographic regularization terms for :func:`torchtopo.attach` (Truong & Hasson, arXiv:2508.00043)."""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from torch import Tensor, nn

from . import functional as F
from .grid import GridLike
from .regularizer import GridTerm, Strength, describe_module, infer_units

__all__ = ["WeightSimilarity", "ActivationSimilarity", "SpatialCorrelation"]


def _output_tensor(term, output) -> Tensor:
    if not isinstance(output, Tensor):
        raise TypeError(
            f"{type(term).__name__}: the layer's output must be a tensor, got {type(output).__name__}"
        )
    return output


class WeightSimilarity(GridTerm):
    r"""Weight-Similarity term: λ · mean over neighbour pairs of d(w_i, w_j) on the layer's
    ``weight`` rows (see :func:`torchtopo.functional.weight_similarity`).

    Fits any layer with a ``weight`` whose first dimension is the units: ``nn.Linear``
    (out_features), ``nn.Conv2d`` (out_channels), :class:`~torchtopo.TopoLinear`.

    Args:
        strength: λ, a number or a callable of the step.
        grid: the units' grid; default: the layer's ``.grid``.
        distance: ``"euclidean"`` (default), ``"sqeuclidean"``, ``"cosine"``, ``"correlation"``.
        backend: see :func:`torchtopo.functional.weight_similarity`.
    """

    def __init__(
        self,
        strength: Strength = 1.0,
        grid: Optional[GridLike] = None,
        *,
        distance: str = "euclidean",
        backend: Optional[str] = None,
    ) -> None:
        super().__init__(strength, grid)
        if distance not in F.DISTANCES:
            raise ValueError(f"WeightSimilarity: distance must be one of {F.DISTANCES}, got {distance!r}")
        self.distance = distance
        self.backend = backend

    def bind(self, name: str, module: nn.Module) -> None:
        w = getattr(module, "weight", None)
        if not isinstance(w, Tensor) or w.dim() < 1:
            raise TypeError(
                f"WeightSimilarity on {describe_module(name, module)}: the layer has no weight "
                f"tensor whose rows are units (use a Linear or Conv layer)"
            )
        super().bind(name, module)
        self._check_units(name, module, w.shape[0], "units (weight rows)")

    def loss(self, module: nn.Module, inputs, output) -> Tensor:
        return F.weight_similarity(module.weight, self.grid, distance=self.distance, backend=self.backend)

    def options(self) -> Dict[str, Any]:
        return {**super().options(), "distance": self.distance}


class _ActivationTerm(GridTerm):
    needs_output = True

    def bind(self, name: str, module: nn.Module) -> None:
        super().bind(name, module)
        self._check_units(name, module, infer_units(module), "output units (features/channels)")


class ActivationSimilarity(_ActivationTerm):
    r"""Activation-Similarity term: λ · mean over neighbour pairs of d(a_i, a_j), a_k unit k's
    responses over the batch in the layer's last forward output (see
    :func:`torchtopo.functional.activation_similarity`).

    The output is taken as the layer returns it: attach to ``fc1`` itself (not to a following
    ReLU) to regularize *pre-ReLU* activations, as in Truong & Hasson.  On a convolution the
    channels are the units and batch × positions the stimuli.

    Args:
        strength: λ, a number or a callable of the step.
        grid: the units' grid; default: the layer's ``.grid``.
        distance: ``"correlation"`` (default), ``"cosine"``, ``"euclidean"``, ``"sqeuclidean"``.
        backend: see :func:`torchtopo.functional.weight_similarity`.
    """

    def __init__(
        self,
        strength: Strength = 1.0,
        grid: Optional[GridLike] = None,
        *,
        distance: str = "correlation",
        backend: Optional[str] = None,
    ) -> None:
        super().__init__(strength, grid)
        if distance not in F.DISTANCES:
            raise ValueError(f"ActivationSimilarity: distance must be one of {F.DISTANCES}, got {distance!r}")
        self.distance = distance
        self.backend = backend

    def loss(self, module: nn.Module, inputs, output) -> Tensor:
        return F.activation_similarity(
            _output_tensor(self, output), self.grid, distance=self.distance, backend=self.backend
        )

    def options(self) -> Dict[str, Any]:
        return {**super().options(), "distance": self.distance}


class SpatialCorrelation(_ActivationTerm):
    r"""TDANN-style spatial-correlation term (see
    :func:`torchtopo.functional.spatial_correlation`): λ · ½(1 − Pearson(r_ij, 1/(1 + d_ij)))
    within a neighbourhood of units, one random window per step when ``neighborhood`` is set.

    Args:
        strength: λ.
        grid: the units' grid; default: the layer's ``.grid``.
        neighborhood: window size (int or (kh, kw)) sampled per step; None: all units.
        seed: seed of the term's own generator for the window draws (None: global RNG).
    """

    def __init__(
        self,
        strength: Strength = 1.0,
        grid: Optional[GridLike] = None,
        *,
        neighborhood: Optional[int | Tuple[int, int]] = None,
        seed: Optional[int] = None,
    ) -> None:
        super().__init__(strength, grid)
        self.neighborhood = neighborhood
        self.seed = seed
        self._generator = None

    def loss(self, module: nn.Module, inputs, output) -> Tensor:
        if self.seed is not None and self._generator is None:
            import torch

            self._generator = torch.Generator().manual_seed(self.seed)
        return F.spatial_correlation(
            _output_tensor(self, output), self.grid, neighborhood=self.neighborhood, generator=self._generator
        )

    def options(self) -> Dict[str, Any]:
        nb = list(self.neighborhood) if isinstance(self.neighborhood, tuple) else self.neighborhood
        return {**super().options(), "neighborhood": nb, "seed": self.seed}
