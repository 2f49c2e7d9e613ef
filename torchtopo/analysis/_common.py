"""Input coercion shared by the analysis modules (private): activations as an (S, N) float
matrix and the grid their units sit on."""
from __future__ import annotations

from typing import Any, Optional

from torch import Tensor

from .._checks import check_tensor
from ..grid import Grid, GridLike, as_grid

__all__ = ["as_float", "as_activations", "grid_for"]


def as_float(x: Tensor) -> Tensor:
    """``x`` itself when floating point, else a float32 copy."""
    return x if x.is_floating_point() else x.float()


def as_activations(x: Any, who: str, name: str = "activations") -> Tensor:
    """(S, N) float view of activations; (S, C, H, W) conv maps are averaged over positions."""
    x = check_tensor(x, name, who, dims=(2, 3, 4), floating=False, nonempty=True)
    if x.dim() > 2:
        x = x.flatten(2).mean(-1)
    return as_float(x)


def grid_for(grid: Optional[GridLike], n: int, who: str) -> Grid:
    """``grid`` as a :class:`~torchtopo.Grid` (default ``Grid.for_units(n)``) holding ``n`` units."""
    g = Grid.for_units(n) if grid is None else as_grid(grid)
    if g.n_units != n:
        raise ValueError(f"{who}: the maps have {n} units but the grid {g.height}×{g.width} has {g.n_units}")
    return g
