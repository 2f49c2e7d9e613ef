"""Topographic units and their terms: a layer whose units sit on a grid, and the losses that
make neighbouring units alike.

* :class:`TopoLinear`: an ``nn.Linear`` with a :class:`~torchtopo.Grid` (the 11 × 11 ``fc1``
  sheet of Truong & Hasson, arXiv:2508.00043).
* :class:`WeightSimilarity` / :class:`ActivationSimilarity`: the WS and AS losses of Truong &
  Hasson (arXiv:2508.00043), mean distances between neighbouring units' weights or responses.
* :class:`SpatialCorrelation`: the spatial-correlation loss of TDANN (Lee et al. 2020; Margalit
  et al. 2024, Neuron).

The terms are attached to layers with :func:`torchtopo.attach`; their pure functions are in
:mod:`torchtopo.functional.topographic`.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from . import functional as F
from ._checks import check_choice
from .grid import Grid, GridLike, as_grid
from .regularizer import GridTerm, Strength, describe_module, infer_units

__all__ = ["TopoLinear", "WeightSimilarity", "ActivationSimilarity", "SpatialCorrelation"]


class TopoLinear(nn.Linear):
    """An :class:`torch.nn.Linear` whose ``out_features`` units sit on a 2-D :class:`Grid`.

    ``y = x Wᵀ + b`` exactly as ``nn.Linear``; unit ``k`` (row ``k`` of ``weight``, column ``k``
    of the output) is at grid row ``k // W``, column ``k % W``.  The grid is what the topographic
    terms (:class:`~torchtopo.WeightSimilarity`, :class:`~torchtopo.ActivationSimilarity`) use
    when none is given.  In Truong & Hasson this is ``fc1``, 121 units on 11 × 11.

    Args:
        in_features: size of each input sample.
        grid: a :class:`Grid` or ``(H, W)``; ``out_features = H · W``.
        bias: as in ``nn.Linear``.
    """

    def __init__(self, in_features: int, grid: GridLike, bias: bool = True, device=None, dtype=None) -> None:
        g = as_grid(grid)
        super().__init__(in_features, g.n_units, bias=bias, device=device, dtype=dtype)
        self.grid: Grid = g

    @classmethod
    def from_linear(cls, linear: nn.Linear, grid: GridLike) -> "TopoLinear":
        """A TopoLinear with ``linear``'s weights (copied), device and dtype.

        Raises:
            ValueError: if ``grid`` does not have ``linear.out_features`` units.
        """
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"TopoLinear.from_linear: expected an nn.Linear, got {type(linear).__name__}")
        g = as_grid(grid)
        if g.n_units != linear.out_features:
            raise ValueError(
                f"TopoLinear.from_linear: the Linear has {linear.out_features} out_features but the "
                f"grid {g.height}×{g.width} has {g.n_units} units"
            )
        new = cls(
            linear.in_features,
            g,
            bias=linear.bias is not None,
            device=linear.weight.device,
            dtype=linear.weight.dtype,
        )
        with torch.no_grad():
            new.weight.copy_(linear.weight)
            if linear.bias is not None:
                new.bias.copy_(linear.bias)
        new.weight.requires_grad_(linear.weight.requires_grad)
        return new

    def extra_repr(self) -> str:
        return super().extra_repr() + f", grid={self.grid.height}x{self.grid.width}"


# ------------------------------------------------------------------------------ terms
class _DistanceTerm(GridTerm):
    """A term that averages a distance (:data:`torchtopo.functional.DISTANCES`) over the grid's
    neighbour pairs, on one of the backends of :func:`torchtopo.functional.resolve_backend`."""

    def __init__(self, strength: Strength, grid: Optional[GridLike], distance: str, backend: Optional[str]) -> None:
        super().__init__(strength, grid)
        self.distance = check_choice(distance, F.DISTANCES, "distance", type(self).__name__)
        self.backend = backend

    def options(self) -> Dict[str, Any]:
        return {**super().options(), "distance": self.distance}


class _ActivationTerm(GridTerm):
    """A term on the layer's last forward output, whose features/channels are the units."""

    needs_output = True

    def bind(self, name: str, module: nn.Module) -> None:
        super().bind(name, module)
        self._check_units(name, module, infer_units(module), "output units (features/channels)")

    def _output(self, output) -> Tensor:
        if not isinstance(output, Tensor):
            raise TypeError(
                f"{type(self).__name__}: the layer's output must be a tensor, got {type(output).__name__}"
            )
        return output


class WeightSimilarity(_DistanceTerm):
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
        super().__init__(strength, grid, distance, backend)

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


class ActivationSimilarity(_DistanceTerm, _ActivationTerm):
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
        super().__init__(strength, grid, distance, backend)

    def loss(self, module: nn.Module, inputs, output) -> Tensor:
        return F.activation_similarity(self._output(output), self.grid, distance=self.distance, backend=self.backend)


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
            self._generator = torch.Generator().manual_seed(self.seed)
        return F.spatial_correlation(
            self._output(output), self.grid, neighborhood=self.neighborhood, generator=self._generator
        )

    def options(self) -> Dict[str, Any]:
        nb = list(self.neighborhood) if isinstance(self.neighborhood, tuple) else self.neighborhood
        return {**super().options(), "neighborhood": nb, "seed": self.seed}
