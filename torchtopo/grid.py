"""Geometry of a topographic sheet: units laid out on a 2-D grid.

Units are numbered in row-major order: unit ``k`` sits at row ``k // width`` and column
``k % width`` (the 11×11 ``fc1`` sheet of Truong & Hasson, arXiv:2508.00043).  Two distinct units are
neighbours when their grid distance is at most ``radius`` under ``metric``:

* ``"chebyshev"``: ``max(|Δr|, |Δc|)`` (radius 1 gives the 8-unit Moore neighbourhood),
* ``"manhattan"``: ``|Δr| + |Δc|`` (radius 1 gives the 4-unit von Neumann neighbourhood),
* ``"euclidean"``: ``sqrt(Δr² + Δc²)``.

With ``wrap=True`` the sheet is a torus and ``Δr``, ``Δc`` are the shorter way round.
"""
from __future__ import annotations

import math
import numbers
import warnings
from functools import cached_property, lru_cache
from typing import Sequence, Tuple, Union

import torch
from torch import Tensor

from ._checks import check_bool, check_choice, check_int, check_positive

__all__ = ["Grid", "GridLike", "as_grid"]

_METRICS = ("chebyshev", "manhattan", "euclidean")


class Grid:
    """A ``height × width`` sheet of units with a neighbourhood.

    Args:
        height: number of rows (≥ 1).
        width: number of columns (≥ 1).
        radius: neighbourhood radius in grid steps (> 0).
        metric: ``"chebyshev"``, ``"manhattan"`` or ``"euclidean"``.
        wrap: True joins opposite edges (a torus); must be a bool.

    Example:
        >>> g = Grid(11, 11)
        >>> g.n_units, g.n_pairs
        (121, 420)
    """

    def __init__(
        self,
        height: int,
        width: int,
        *,
        radius: float = 1,
        metric: str = "chebyshev",
        wrap: bool = False,
    ) -> None:
        self.height = check_int(height, "height", "Grid", minimum=1)
        self.width = check_int(width, "width", "Grid", minimum=1)
        r = check_positive(radius, "radius", "Grid")
        self.radius = int(radius) if isinstance(radius, numbers.Integral) else r
        self.metric = check_choice(metric, _METRICS, "metric", "Grid")
        self.wrap = check_bool(wrap, "wrap", "Grid")
        self._pair_cache: dict = {}

    # ------------------------------------------------------------------ basics
    @property
    def shape(self) -> Tuple[int, int]:
        return (self.height, self.width)

    @property
    def n_units(self) -> int:
        return self.height * self.width

    def __len__(self) -> int:
        return self.n_units

    def __repr__(self) -> str:
        extra = "" if (self.radius, self.metric, self.wrap) == (1, "chebyshev", False) else (
            f", radius={self.radius}, metric={self.metric!r}, wrap={self.wrap}"
        )
        return f"Grid({self.height}, {self.width}{extra})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Grid):
            return NotImplemented
        return self.config() == other.config()

    def __hash__(self) -> int:
        return hash(tuple(self.config().values()))

    def config(self) -> dict:
        """JSON-able description; ``Grid(**g.config())`` rebuilds it."""
        return {
            "height": self.height,
            "width": self.width,
            "radius": self.radius,
            "metric": self.metric,
            "wrap": self.wrap,
        }

    @classmethod
    def for_units(cls, n: int, **kwargs) -> "Grid":
        """The most square ``h × w`` grid with ``h * w == n`` and ``h <= w``.

        A prime ``n`` gives ``1 × n`` (allowed, with a warning: the sheet is then a line).
        """
        n = check_int(n, "n", "Grid.for_units", minimum=1)
        h = int(math.isqrt(n))
        while n % h:
            h -= 1
        if h == 1 and n > 3:
            warnings.warn(
                f"Grid.for_units({n}): {n} is prime, so the grid is 1×{n} (a line of units)",
                stacklevel=2,
            )
        return cls(h, n // h, **kwargs)

    # ---------------------------------------------------------------- geometry
    @cached_property
    def _positions_cpu(self) -> Tensor:
        k = torch.arange(self.n_units)
        return torch.stack([k // self.width, k % self.width], dim=1)

    @property
    def positions(self) -> Tensor:
        """(N, 2) LongTensor of (row, column) per unit, row-major."""
        return self._positions_cpu.clone()

    def _delta(self, i: Tensor, j: Tensor) -> Tuple[Tensor, Tensor]:
        pi, pj = self._positions_cpu[i.cpu()], self._positions_cpu[j.cpu()]
        dr = (pi[..., 0] - pj[..., 0]).abs()
        dc = (pi[..., 1] - pj[..., 1]).abs()
        if self.wrap:
            dr = torch.minimum(dr, self.height - dr)
            dc = torch.minimum(dc, self.width - dc)
        return dr, dc

    def _metric(self, dr: Tensor, dc: Tensor) -> Tensor:
        dr, dc = dr.double(), dc.double()
        if self.metric == "chebyshev":
            return torch.maximum(dr, dc)
        if self.metric == "manhattan":
            return dr + dc
        return torch.sqrt(dr * dr + dc * dc)

    def distance(self, i, j) -> Tensor:
        """Grid distance (under ``metric``, torus-aware with ``wrap``) between units i and j.

        ``i`` and ``j`` are ints or LongTensors that broadcast; returns a float64 tensor.
        """
        i = torch.as_tensor(i, dtype=torch.long)
        j = torch.as_tensor(j, dtype=torch.long)
        for name, t in (("i", i), ("j", j)):
            if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.n_units):
                raise IndexError(f"Grid.distance: {name} out of range for {self.n_units} units")
        return self._metric(*self._delta(i, j))

    def sheet_distance(self, i, j) -> Tensor:
        """Euclidean distance on the sheet (torus-aware), whatever ``metric`` is."""
        dr, dc = self._delta(torch.as_tensor(i), torch.as_tensor(j))
        return torch.sqrt(dr.double() ** 2 + dc.double() ** 2)

    # -------------------------------------------------------------- neighbours
    def _within(self, dr: Tensor, dc: Tensor) -> Tensor:
        return self._metric(dr, dc) <= self.radius + 1e-9

    @cached_property
    def offsets(self) -> Tuple[Tuple[int, int], ...]:
        """Half of the neighbourhood stencil: the offsets (dr, dc) with dr > 0, or dr == 0 and
        dc > 0, that are within ``radius``.  Each unordered neighbour pair is (u, u + offset)
        for exactly one offset (up to wrap-around aliasing on grids of size <= 2·radius)."""
        r = int(math.floor(self.radius + 1e-9))
        out = []
        for dr in range(0, r + 1):
            for dc in range(-r, r + 1):
                if dr == 0 and dc <= 0:
                    continue
                if bool(self._within(torch.tensor(abs(dr)), torch.tensor(abs(dc)))):
                    out.append((dr, dc))
        return tuple(out)

    @property
    def aliased(self) -> bool:
        """True when wrap-around makes two stencil offsets reach the same pair (tiny tori)."""
        if not self.wrap or not self.offsets:
            return False
        span_r = max(abs(o[0]) for o in self.offsets)
        span_c = max(abs(o[1]) for o in self.offsets)
        return self.height <= 2 * span_r or self.width <= 2 * span_c

    def _offset_maps(self, device: Union[str, torch.device, None] = None) -> Tuple[Tensor, Tensor]:
        """Per stencil offset o and unit u: whether the neighbour u + o exists, and its flat index
        (0 where it does not): ``(valid, partner)``, both ``(len(offsets), n_units)``.

        The one place the stencil meets the units (vectorised over units, a loop over the few
        offsets); the pair list and the PyTorch path's coefficients are built from it.  Cached
        per device."""
        dev = torch.device(device) if device is not None else torch.device("cpu")
        key = ("offset_maps", str(dev))
        if key not in self._pair_cache:
            if dev.type != "cpu":
                valid, partner = self._offset_maps("cpu")
                self._pair_cache[key] = (valid.to(dev), partner.to(dev))
                return self._pair_cache[key]
            H, W = self.height, self.width
            pos = self._positions_cpu
            valid, partner = [], []
            for dr, dc in self.offsets:  # loop over the (few) stencil offsets, not over units
                r2, c2 = pos[:, 0] + dr, pos[:, 1] + dc
                if self.wrap:
                    ok = torch.ones_like(r2, dtype=torch.bool)
                    r2, c2 = r2 % H, c2 % W
                else:
                    ok = (r2 >= 0) & (r2 < H) & (c2 >= 0) & (c2 < W)
                valid.append(ok)
                partner.append(torch.where(ok, r2 * W + c2, 0))
            shape = (len(self.offsets), self.n_units)
            self._pair_cache[key] = (
                torch.stack(valid) if valid else torch.zeros(shape, dtype=torch.bool),
                torch.stack(partner) if partner else torch.zeros(shape, dtype=torch.long),
            )
        return self._pair_cache[key]

    def _pairs_cpu(self) -> Tuple[Tensor, Tensor]:
        if "cpu" not in self._pair_cache:
            valid, partner = self._offset_maps("cpu")
            o, i = torch.nonzero(valid, as_tuple=True)
            j = partner[o, i]
            a, b = torch.minimum(i, j), torch.maximum(i, j)
            keep = a != b
            a, b = a[keep], b[keep]
            # unique unordered pairs, sorted by (i, j)
            key = torch.unique(a * self.n_units + b)
            self._pair_cache["cpu"] = (key // self.n_units, key % self.n_units)
        return self._pair_cache["cpu"]

    def neighbor_pairs(self, device: Union[str, torch.device, None] = None) -> Tuple[Tensor, Tensor]:
        """(i, j) LongTensors listing each unordered neighbour pair once, with i < j.

        Built from the stencil offsets (vectorised over units) and cached per device.
        """
        i, j = self._pairs_cpu()
        dev = torch.device(device) if device is not None else torch.device("cpu")
        if dev.type == "cpu":
            return i, j
        key = str(dev)
        if key not in self._pair_cache:
            self._pair_cache[key] = (i.to(dev), j.to(dev))
        return self._pair_cache[key]

    @property
    def n_pairs(self) -> int:
        """Number of unordered neighbour pairs (closed form from the stencil; no pair list is
        built unless the torus is so small that offsets alias)."""
        if "n" not in self._pair_cache:
            if self.aliased:
                n = int(self._pairs_cpu()[0].numel())
            elif self.wrap:
                n = len(self.offsets) * self.n_units
            else:
                n = sum(max(0, self.height - dr) * max(0, self.width - abs(dc)) for dr, dc in self.offsets)
            self._pair_cache["n"] = n
        return self._pair_cache["n"]

    def neighbor_counts(self) -> Tensor:
        """(N,) number of neighbours of each unit."""
        i, j = self._pairs_cpu()
        return torch.bincount(torch.cat([i, j]), minlength=self.n_units)

    def adjacency(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """Dense (N, N) symmetric binary neighbour matrix (for analysis of small sheets)."""
        i, j = self._pairs_cpu()
        A = torch.zeros(self.n_units, self.n_units, dtype=dtype)
        A[i, j] = 1
        A[j, i] = 1
        return A


GridLike = Union[Grid, Tuple[int, int], Sequence[int]]


@lru_cache(maxsize=64)
def _grid_of_shape(height: int, width: int) -> Grid:
    # one Grid per (H, W) tuple, so its cached stencil and pairs serve every call
    return Grid(height, width)


def as_grid(grid: GridLike, *, name: str = "grid") -> Grid:
    """Accept a :class:`Grid` or an ``(H, W)`` tuple."""
    if isinstance(grid, Grid):
        return grid
    if isinstance(grid, (tuple, list)) and len(grid) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in grid
    ):
        if torch.compiler.is_compiling():  # dynamo traces through lru_cache anyway (and warns)
            return Grid(int(grid[0]), int(grid[1]))
        return _grid_of_shape(int(grid[0]), int(grid[1]))
    raise TypeError(f"{name} must be a torchtopo.Grid or an (height, width) tuple of ints, got {grid!r}")
