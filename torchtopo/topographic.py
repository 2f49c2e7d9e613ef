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
from ._checks import check_bool, check_choice, check_int
from .functional._neighbor import check_sign
from .functional.topographic import check_backend, check_neighborhood, resolve_unit_dim
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
        self.backend = check_backend(backend, type(self).__name__)

    def options(self) -> Dict[str, Any]:
        return {**super().options(), "distance": self.distance}


def _is_mha_out_proj(module: nn.Module) -> bool:
    """``nn.MultiheadAttention.out_proj``: a Linear whose forward never runs (its parent calls
    ``F.multi_head_attention_forward`` with the weights directly)."""
    cls = getattr(nn.modules.linear, "NonDynamicallyQuantizableLinear", None)
    return cls is not None and isinstance(module, cls)


class _ActivationTerm(GridTerm):
    """A term on the layer's last forward output, whose features/channels are the units.

    ``unit_dim``: the output's dimension that holds the units (all others are stimuli); None
    picks it from the layer — the last dimension for ``nn.Linear`` and
    ``nn.MultiheadAttention`` (whose outputs (…, N) always end with the units, so (B, T, N)
    token activations need nothing), dimension 1 for convolutions — and otherwise dimension 1
    with a clear error when a 3-D output is ambiguous.  ``sync=True`` gathers the batch of every
    ``torch.distributed`` rank first (differentiably), so the loss is that of the global batch.
    """

    needs_output = True

    def __init__(self, strength: Strength, grid: Optional[GridLike], unit_dim: Optional[int] = None,
                 sync: bool = False) -> None:
        super().__init__(strength, grid)
        self._activation_options(unit_dim, sync)

    def _activation_options(self, unit_dim: Optional[int], sync: bool) -> None:
        who = type(self).__name__
        self.unit_dim = None if unit_dim is None else check_int(unit_dim, "unit_dim", who)
        self.sync = check_bool(sync, "sync", who)
        self._unit_dim = self.unit_dim  # resolved from the layer by bind()
        self._where = who

    def bind(self, name: str, module: nn.Module) -> None:
        if _is_mha_out_proj(module):
            raise ValueError(
                f"{type(self).__name__} on {describe_module(name, module)}: this is the output "
                f"projection of an nn.MultiheadAttention, which calls "
                f"F.multi_head_attention_forward with out_proj's weights directly and never runs "
                f"out_proj as a module, so no activations can be captured there. Attach the term "
                f"to the MultiheadAttention itself ({name.rsplit('.', 1)[0]!r} if that is its "
                f"name): its output is out_proj's output"
            )
        super().bind(name, module)
        self._check_units(name, module, infer_units(module), "output units (features/channels)")
        self._where = f"{type(self).__name__} on {name!r}"
        if self.unit_dim is None:
            if isinstance(module, (nn.Linear, nn.MultiheadAttention)):
                self._unit_dim = -1
            elif isinstance(module, nn.modules.conv._ConvNd):
                self._unit_dim = 1

    def _output(self, module: nn.Module, output) -> Tuple[Tensor, int]:
        """The captured activations (gathered over ranks with ``sync``) and their unit dimension."""
        if isinstance(module, nn.MultiheadAttention) and isinstance(output, tuple):
            output = output[0]  # (attn_output, attn_weights)
        if not isinstance(output, Tensor):
            raise TypeError(
                f"{type(self).__name__}: the layer's output must be a tensor, got {type(output).__name__}"
            )
        ud = resolve_unit_dim(output.shape, self.grid.n_units, self._unit_dim, self._where, "the layer's output")
        if self.sync:
            from ._distributed import all_gather_batch

            output = all_gather_batch(output, dim=1 if ud == 0 else 0)  # a stimulus dimension
        return output, ud

    def options(self) -> Dict[str, Any]:
        return {**super().options(), "unit_dim": self.unit_dim, "sync": self.sync}


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
    responses over the stimuli in the layer's last forward output (see
    :func:`torchtopo.functional.activation_similarity`, which also says which ``sign`` form
    produced which published finding; the paper's exact AS is unconfirmed).

    The output is taken as the layer returns it: attach to ``fc1`` itself (not to a following
    ReLU) to regularize *pre-ReLU* activations, as in Truong & Hasson.  On a convolution the
    channels are the units and batch × positions the stimuli; on an ``nn.Linear`` of a
    transformer (output (B, T, N)) the last dimension is the units and batch × tokens the
    stimuli.  ``nn.MultiheadAttention.out_proj`` is never called as a module: attaching there
    fails at once; attach to the ``MultiheadAttention`` (its output is out_proj's).

    Args:
        strength: λ, a number or a callable of the step.
        grid: the units' grid; default: the layer's ``.grid``.
        distance: ``"correlation"`` (default), ``"cosine"``, ``"euclidean"``, ``"sqeuclidean"``.
        sign: ``"signed"`` (1 − s, default), ``"absolute"`` (1 − |s|) or ``"squared"``
            (1 − s²); the latter two need an angular distance.
        unit_dim: the output's dimension holding the units; None: from the layer (the last
            for Linear / MultiheadAttention, 1 for convolutions, else 1 with an error when
            ambiguous); −1 for (B, T, N) token activations of any other module.
        sync: under ``torch.distributed``, compute the loss over the global batch (a
            differentiable all-gather, like ``SyncBatchNorm``): every rank gets the value a
            single process would on the concatenated batch.  False (default): each rank's
            own batch (correlations over the per-GPU batch).  The gather is a collective: with
            ``sync=True``, calling ``losses()`` between the forward and ``penalty()`` computes
            the loss (and so gathers) then, so it must be called on every rank; after
            ``penalty()`` it returns the stored value and runs no collective.
        backend: see :func:`torchtopo.functional.weight_similarity`.
    """

    def __init__(
        self,
        strength: Strength = 1.0,
        grid: Optional[GridLike] = None,
        *,
        distance: str = "correlation",
        sign: str = "signed",
        unit_dim: Optional[int] = None,
        sync: bool = False,
        backend: Optional[str] = None,
    ) -> None:
        super().__init__(strength, grid, distance, backend)
        self._activation_options(unit_dim, sync)
        self.sign = check_sign(sign, self.distance, type(self).__name__)

    def loss(self, module: nn.Module, inputs, output) -> Tensor:
        acts, ud = self._output(module, output)
        return F.activation_similarity(
            acts, self.grid, distance=self.distance, sign=self.sign, unit_dim=ud, backend=self.backend
        )

    def options(self) -> Dict[str, Any]:
        return {**super().options(), "sign": self.sign}


class SpatialCorrelation(_ActivationTerm):
    r"""TDANN-style spatial-correlation term (see
    :func:`torchtopo.functional.spatial_correlation`): λ · ½(1 − Pearson(r_ij, 1/(1 + d_ij)))
    within a neighbourhood of units, one random window per step when ``neighborhood`` is set.

    Args:
        strength: λ.
        grid: the units' grid; default: the layer's ``.grid``.
        neighborhood: window size (an int ≥ 1 or a pair (kh, kw) of ints ≥ 1) sampled per
            step; None: all units.
        seed: a non-negative int, the seed of the term's own generator for the window draws
            (None: global RNG).
        unit_dim, sync: as in :class:`ActivationSimilarity`.

    Raises:
        TypeError: ``seed`` not an int, ``neighborhood`` not None/int/pair, ``unit_dim`` not
            an int, ``sync`` not a bool.
        ValueError: ``neighborhood`` entries < 1 or not a pair, ``seed`` < 0.
    """

    def __init__(
        self,
        strength: Strength = 1.0,
        grid: Optional[GridLike] = None,
        *,
        neighborhood: Optional[int | Tuple[int, int]] = None,
        seed: Optional[int] = None,
        unit_dim: Optional[int] = None,
        sync: bool = False,
    ) -> None:
        super().__init__(strength, grid, unit_dim, sync)
        who = type(self).__name__
        self.neighborhood = check_neighborhood(neighborhood, who)
        self.seed = None if seed is None else check_int(seed, "seed", who, minimum=0, maximum=2**64 - 1)
        self._generator = None

    def loss(self, module: nn.Module, inputs, output) -> Tensor:
        if self.seed is not None and self._generator is None:
            self._generator = torch.Generator().manual_seed(self.seed)
        acts, ud = self._output(module, output)
        return F.spatial_correlation(
            acts, self.grid, neighborhood=self.neighborhood, generator=self._generator, unit_dim=ud
        )

    def options(self) -> Dict[str, Any]:
        nb = list(self.neighborhood) if isinstance(self.neighborhood, tuple) else self.neighborhood
        return {**super().options(), "neighborhood": nb, "seed": self.seed}
