"""Layers whose units sit on a grid."""
from __future__ import annotations

import torch
from torch import nn

from .grid import Grid, GridLike, as_grid

__all__ = ["TopoLinear"]


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
