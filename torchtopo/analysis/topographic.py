r"""Evaluations of topographic layers (Truong & Hasson, arXiv:2508.00043), as library calls.

Every function is batched and torch-native: it runs on the device of its input and never loops
over units, pairs or pixels in Python.  Activations are laid out ``(S, N)``: S stimuli (rows),
N units (columns), unit ``k`` at grid row ``k // W`` and column ``k % W``.

Contents:

* :func:`collect_activations` — a layer's input or output over a tensor, Dataset or DataLoader.
* Map structure: :func:`morans_i`, :func:`correlation_matrix`, :func:`neighbor_correlation`,
  :func:`correlation_vs_distance`.
* Unit statistics: :func:`unit_entropy`, :func:`percent_zero`, :func:`input_sensitivity`,
  :func:`effective_dimensionality`.
* Category structure: :func:`selectivity` (d′), :func:`expert_units`,
  :func:`localization_score`.
* Probes: :func:`grating`, :func:`orientation_tuning`, :func:`symmetry_stimuli`,
  :func:`symmetry_selectivity`, :func:`eccentricity_stimuli`, :func:`eccentricity_tuning`.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..grid import Grid, GridLike, as_grid

__all__ = [
    "collect_activations",
    "morans_i",
    "correlation_matrix",
    "neighbor_correlation",
    "correlation_vs_distance",
    "unit_entropy",
    "percent_zero",
    "input_sensitivity",
    "effective_dimensionality",
    "selectivity",
    "expert_units",
    "localization_score",
    "grating",
    "orientation_tuning",
    "symmetry_stimuli",
    "symmetry_selectivity",
    "eccentricity_stimuli",
    "eccentricity_tuning",
]


# ----------------------------------------------------------------------------- helpers
def _check_tensor(x: Any, name: str, who: str, dims: Optional[Sequence[int]] = None) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{who}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if dims is not None and x.dim() not in dims:
        want = " or ".join(f"{d}-D" for d in dims)
        raise ValueError(f"{who}: {name} must be {want}, got shape {tuple(x.shape)}")
    return x


def _float(x: Tensor) -> Tensor:
    return x if x.is_floating_point() else x.float()


def _acts(x: Any, who: str, name: str = "activations") -> Tensor:
    """(S, N) float view of activations; (S, C, H, W) conv maps are averaged over positions."""
    x = _check_tensor(x, name, who, (2, 3, 4))
    if x.dim() > 2:
        x = x.flatten(2).mean(-1)
    return _float(x)


def _grid_for(grid: Optional[GridLike], n: int, who: str) -> Grid:
    g = Grid.for_units(n) if grid is None else as_grid(grid)
    if g.n_units != n:
        raise ValueError(f"{who}: the maps have {n} units but the grid {g.height}×{g.width} has {g.n_units}")
    return g


def _resolve_module(model: nn.Module, module_or_name: Union[str, nn.Module], who: str) -> nn.Module:
    if isinstance(module_or_name, nn.Module):
        return module_or_name
    if isinstance(module_or_name, str):
        modules = dict(model.named_modules())
        if module_or_name not in modules:
            import difflib

            close = difflib.get_close_matches(module_or_name, [n for n in modules if n], n=5, cutoff=0.5)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"{who}: the model has no module named {module_or_name!r}{hint}")
        return modules[module_or_name]
    raise TypeError(f"{who}: module_or_name must be an nn.Module or a module name, got {type(module_or_name).__name__}")


def _batches(data: Any, batch_size: int, who: str) -> Iterable[Tuple[Tensor, Optional[Tensor]]]:
    """Yield (x, y or None) from a tensor, a (x, y) tuple, a Dataset or an iterable of batches."""
    from torch.utils.data import DataLoader, Dataset

    if isinstance(data, Tensor):
        for k in range(0, data.shape[0], batch_size):
            yield data[k : k + batch_size], None
        return
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        x, y = data
        for k in range(0, x.shape[0], batch_size):
            yield x[k : k + batch_size], y[k : k + batch_size]
        return
    if isinstance(data, Dataset) and not isinstance(data, DataLoader):
        data = DataLoader(data, batch_size=batch_size, shuffle=False)
    if not hasattr(data, "__iter__"):
        raise TypeError(
            f"{who}: data must be a tensor, an (x, y) tuple of tensors, a Dataset or a DataLoader, "
            f"got {type(data).__name__}"
        )
    for b in data:
        if isinstance(b, Tensor):
            yield b, None
        elif isinstance(b, (tuple, list)) and len(b) >= 1 and isinstance(b[0], Tensor):
            yield b[0], (b[1] if len(b) > 1 and isinstance(b[1], Tensor) else None)
        else:
            raise TypeError(f"{who}: each batch must be a tensor or an (x, y, ...) tuple, got {type(b).__name__}")


# ----------------------------------------------------------------------------- collection
@torch.no_grad()
def collect_activations(
    model: nn.Module,
    module_or_name: Union[str, nn.Module],
    data: Any,
    *,
    batch_size: int = 128,
    device: Optional[Union[str, torch.device]] = None,
    which: str = "output",
    transform: Optional[Callable[[Tensor], Tensor]] = None,
    max_batches: Optional[int] = None,
    return_outputs: bool = False,
) -> Tuple[Tensor, ...]:
    """Run ``model`` over ``data`` and collect one layer's output (or input) with a forward hook.

    The model runs in ``eval()`` mode under ``torch.no_grad()`` and its previous mode is
    restored afterwards.  Collected tensors are moved to the CPU and concatenated.

    Args:
        model: any module.
        module_or_name: the layer (or its name in ``model.named_modules()``), e.g. ``"fc1"``
            (whose output is the *pre-ReLU* map in :func:`torchtopo.models.mnist_cnn`).
        data: a tensor of inputs, an ``(x, y)`` tuple of tensors, a Dataset or a DataLoader
            (batches ``x`` or ``(x, y, ...)``).
        batch_size: for tensors and Datasets.
        device: where to run (default: the model's parameters' device).
        which: ``"output"`` or ``"input"`` (the layer's first positional input).
        transform: applied to each input batch before the model (e.g. a corruption).
        max_batches: stop after this many batches.
        return_outputs: also return the model's outputs (e.g. logits).

    Returns:
        ``(acts, labels)`` — ``acts`` (S, ...) and ``labels`` (S,) or None when the data have
        none — plus ``outputs`` (S, ...) when ``return_outputs``.
    """
    who = "collect_activations"
    if which not in ("output", "input"):
        raise ValueError(f"{who}: which must be 'output' or 'input', got {which!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"{who}: batch_size must be a positive int, got {batch_size!r}")
    module = _resolve_module(model, module_or_name, who)
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    store: list = []

    def hook(mod, inputs, output):
        t = output if which == "output" else inputs[0]
        if not isinstance(t, Tensor):
            raise TypeError(f"{who}: the layer's {which} is a {type(t).__name__}, not a tensor")
        store.append(t.detach().cpu())

    handle = module.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    labels, outs = [], []
    try:
        for k, (x, y) in enumerate(_batches(data, batch_size, who)):
            if max_batches is not None and k >= max_batches:
                break
            x = x.to(device)
            if transform is not None:
                x = transform(x)
            out = model(x)
            if return_outputs:
                outs.append(out.detach().cpu())
            if y is not None:
                labels.append(y.cpu())
    finally:
        handle.remove()
        model.train(was_training)
    if not store:
        raise ValueError(f"{who}: data yielded no batches (or the layer never ran)")
    acts = torch.cat(store)
    lab = torch.cat(labels) if labels and len(labels) == len(store) else None
    if return_outputs:
        return acts, lab, torch.cat(outs)
    return acts, lab


# ----------------------------------------------------------------------------- map structure
def morans_i(maps: Tensor, grid: Optional[GridLike] = None) -> Tensor:
    r"""Moran's I spatial autocorrelation of each map, with binary neighbour weights.

    .. math::

        I = \frac{N}{W}\,\frac{\sum_i z_i \sum_j w_{ij} z_j}{\sum_i z_i^2},
        \qquad z = x - \bar x,\quad W = \sum_{ij} w_{ij}

    with :math:`w_{ij} = 1` when units i and j are neighbours on ``grid`` (8 neighbours for the
    default Chebyshev radius-1 grid, as in Truong & Hasson, arXiv:2508.00043) and 0 otherwise.
    I ≈ 1 for a smooth map, ≈ −1/(N−1) (near 0) for spatial noise, negative for a checkerboard.

    Args:
        maps: (B, N) or (B, H, W) maps (a single (N,) map is taken as B = 1 only if ``grid`` is
            given).
        grid: the units' :class:`~torchtopo.Grid` or ``(H, W)``; default ``Grid(H, W)`` for
            (B, H, W) maps and ``Grid.for_units(N)`` for (B, N).

    Returns:
        (B,) tensor of I values (float).  A constant map (Σz² = 0) has no defined I: it is
        returned as 0 (no spatial structure) rather than NaN.
    """
    who = "morans_i"
    _check_tensor(maps, "maps", who, (1, 2, 3))
    if maps.dim() == 1:
        if grid is None:
            raise ValueError(f"{who}: a 1-D map needs a grid; pass maps as (B, N) or (B, H, W)")
        maps = maps.unsqueeze(0)
    if maps.dim() == 3:
        H, W = maps.shape[1], maps.shape[2]
        g = Grid(H, W) if grid is None else as_grid(grid)
        if (g.height, g.width) != (H, W):
            raise ValueError(f"{who}: maps are {H}×{W} but the grid is {g.height}×{g.width}")
        maps = maps.flatten(1)
    else:
        g = _grid_for(grid, maps.shape[1], who)
    x = _float(maps)
    i, j = g.neighbor_pairs(x.device)
    if i.numel() == 0:
        raise ValueError(f"{who}: the grid {g.height}×{g.width} has no neighbour pairs")
    z = x - x.mean(dim=1, keepdim=True)
    num = 2.0 * (z[:, i] * z[:, j]).sum(dim=1)  # Σ_i z_i Σ_j w_ij z_j, symmetric w
    den = (z * z).sum(dim=1)
    n, w = g.n_units, 2.0 * i.numel()
    ok = den > torch.finfo(x.dtype).tiny * n
    return torch.where(ok, (n / w) * num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(den))


def correlation_matrix(activations: Tensor) -> Tensor:
    r"""Pearson correlation between every pair of units over the stimuli.

    .. math:: r_{ij} = \frac{\sum_s (a_{si}-\bar a_i)(a_{sj}-\bar a_j)}
                        {\sqrt{\sum_s (a_{si}-\bar a_i)^2}\sqrt{\sum_s (a_{sj}-\bar a_j)^2}}

    Args:
        activations: (S, N), S ≥ 2 stimuli (conv maps (S, C, H, W) are averaged over positions).

    Returns:
        (N, N) matrix; rows/columns of zero-variance (dead) units are NaN, the diagonal of live
        units is 1.  Callers that summarise it (:func:`neighbor_correlation`,
        :func:`correlation_vs_distance`) drop the NaN pairs explicitly.
    """
    a = _acts(activations, "correlation_matrix")
    if a.shape[0] < 2:
        raise ValueError(f"correlation_matrix: needs at least 2 stimuli, got shape {tuple(a.shape)}")
    a = a.double() if a.dtype != torch.float64 else a
    z = a - a.mean(0, keepdim=True)
    norm = z.norm(dim=0)
    dead = norm <= 1e-12 * (1 + a.abs().amax(0))
    zn = z / torch.where(dead, torch.ones_like(norm), norm)
    r = (zn.T @ zn).clamp(-1.0, 1.0)
    r[dead, :] = float("nan")
    r[:, dead] = float("nan")
    return r.to(activations.dtype if activations.is_floating_point() else torch.float32)


def neighbor_correlation(activations: Tensor, grid: GridLike) -> Tensor:
    r"""Mean Pearson r between the responses of neighbouring units (over the stimuli).

    .. math:: \bar r_{nb} = \frac{1}{|P|}\sum_{(i,j)\in P} r_{ij}

    with P the grid's neighbour pairs whose units both respond (pairs with a dead unit are
    dropped).  Returns a 0-d tensor (0 if no pair is left).
    """
    a = _acts(activations, "neighbor_correlation")
    g = _grid_for(grid, a.shape[1], "neighbor_correlation")
    r = correlation_matrix(a)
    i, j = g.neighbor_pairs(r.device)
    v = r[i, j]
    ok = torch.isfinite(v)
    return torch.where(ok, v, torch.zeros_like(v)).sum() / ok.sum().clamp_min(1)


def correlation_vs_distance(
    activations: Tensor,
    grid: GridLike,
    *,
    bins: Optional[Union[int, Tensor]] = None,
) -> Dict[str, Tensor]:
    r"""Response correlation of unit pairs as a function of their distance on the sheet.

    For every unordered pair i < j (both units alive) the Pearson r over stimuli
    (:func:`correlation_matrix`) and the Euclidean sheet distance
    :math:`d_{ij} = \lVert p_i - p_j \rVert_2` are computed; the curve is the mean (and SD) of r
    per distance bin.  Truong & Hasson (arXiv:2508.00043) plot this curve and the histogram of r
    (WS: high r decaying smoothly with distance; AS: a bimodal distribution).

    Args:
        activations: (S, N).
        grid: the units' grid.
        bins: None (default) — one bin per distinct distance value; an int — that many equal
            bins from 0 to the largest distance; or a 1-D tensor of bin edges.

    Returns:
        dict with ``"distance"`` (K,) bin centres (or the exact distances), ``"mean"`` (K,),
        ``"std"`` (K,), ``"count"`` (K,) pairs per bin, and the pairwise distribution
        ``"pair_r"`` (P,), ``"pair_distance"`` (P,), ``"pair_i"``, ``"pair_j"`` (P,) over the
        live pairs.  Empty bins have mean and std NaN (count 0).
    """
    who = "correlation_vs_distance"
    a = _acts(activations, who)
    g = _grid_for(grid, a.shape[1], who)
    r = correlation_matrix(a)
    n = g.n_units
    iu, ju = torch.triu_indices(n, n, offset=1, device=r.device)
    rv = r[iu, ju]
    pos = g.positions.to(r.device).double()
    dr = (pos[iu, 0] - pos[ju, 0]).abs()
    dc = (pos[iu, 1] - pos[ju, 1]).abs()
    if g.wrap:
        dr = torch.minimum(dr, g.height - dr)
        dc = torch.minimum(dc, g.width - dc)
    d = torch.sqrt(dr * dr + dc * dc)
    ok = torch.isfinite(rv)
    rv, d, iu, ju = rv[ok], d[ok], iu[ok], ju[ok]
    if bins is None:
        centres, idx = torch.unique(d, return_inverse=True)
        k = centres.numel()
    else:
        if isinstance(bins, int):
            if bins < 1:
                raise ValueError(f"{who}: bins must be >= 1, got {bins}")
            dmax = float(d.max()) if d.numel() else 1.0
            edges = torch.linspace(0.0, dmax * (1 + 1e-9), bins + 1, dtype=torch.float64, device=r.device)
        elif isinstance(bins, Tensor) and bins.dim() == 1 and bins.numel() >= 2:
            edges = bins.to(r.device, torch.float64)
        else:
            raise TypeError(f"{who}: bins must be None, an int or a 1-D tensor of >= 2 edges, got {bins!r}")
        k = edges.numel() - 1
        idx = (torch.bucketize(d, edges, right=True) - 1).clamp(0, k - 1)
        inside = (d >= edges[0]) & (d <= edges[-1])
        rv, d, iu, ju, idx = rv[inside], d[inside], iu[inside], ju[inside], idx[inside]
        centres = 0.5 * (edges[1:] + edges[:-1])
    rd = rv.double()
    cnt = torch.zeros(k, dtype=torch.float64, device=r.device).index_add_(0, idx, torch.ones_like(rd))
    s1 = torch.zeros_like(cnt).index_add_(0, idx, rd)
    s2 = torch.zeros_like(cnt).index_add_(0, idx, rd * rd)
    mean = s1 / cnt
    var = (s2 / cnt - mean * mean).clamp_min(0) * cnt / (cnt - 1).clamp_min(1)
    out_dtype = rv.dtype
    return {
        "distance": centres.to(out_dtype),
        "mean": mean.to(out_dtype),
        "std": var.sqrt().to(out_dtype),
        "count": cnt.long(),
        "pair_r": rv,
        "pair_distance": d.to(out_dtype),
        "pair_i": iu,
        "pair_j": ju,
    }


# ----------------------------------------------------------------------------- unit statistics
def unit_entropy(activations: Tensor, *, bins: int = 32, base: float = 2.0) -> Tensor:
    r"""Shannon entropy of each unit's binned activations over the stimuli.

    Each unit's values are split into ``bins`` equal-width bins between *its own* min and max
    (Truong & Hasson, arXiv:2508.00043: entropy of the binned pre-ReLU activations), :math:`p_b` the share of stimuli
    in bin b, and

    .. math:: H = -\sum_b p_b \log p_b

    in units of ``log(base)`` (bits by default).  A constant (dead) unit has H = 0.

    Args:
        activations: (S, N).
        bins: number of bins (≥ 1).
        base: logarithm base.

    Returns:
        (N,) entropies, between 0 and log(bins).
    """
    who = "unit_entropy"
    a = _acts(activations, who)
    if not isinstance(bins, int) or bins < 1:
        raise ValueError(f"{who}: bins must be a positive int, got {bins!r}")
    lo, hi = a.amin(0, keepdim=True), a.amax(0, keepdim=True)
    span = hi - lo
    flat = span <= 0
    t = (a - lo) / torch.where(flat, torch.ones_like(span), span)
    idx = (t * bins).long().clamp(0, bins - 1)
    idx = torch.where(flat.expand_as(idx), torch.zeros_like(idx), idx)
    counts = torch.zeros(a.shape[1], bins, dtype=torch.float64, device=a.device)
    counts.scatter_add_(1, idx.T, torch.ones_like(idx.T, dtype=torch.float64))
    p = counts / a.shape[0]
    h = -(torch.where(p > 0, p * p.log(), torch.zeros_like(p))).sum(1) / math.log(base)
    return h.to(a.dtype).clamp_min(0)


def percent_zero(activations: Tensor, *, pre_relu: bool = False) -> Tensor:
    r"""Percentage of Zeros (PoZ) per unit: the share of stimuli on which the unit's post-ReLU
    output is exactly 0, in percent.

    .. math:: \mathrm{PoZ}_i = 100 \cdot \frac{1}{S}\sum_s [\,\mathrm{ReLU}(a_{si}) = 0\,]

    Args:
        activations: (S, N) post-ReLU outputs, or pre-ReLU ones with ``pre_relu=True`` (then a
            value ≤ 0 counts as a zero).

    Returns:
        (N,) percentages in [0, 100].
    """
    a = _acts(activations, "percent_zero")
    z = (a <= 0) if pre_relu else (a == 0)
    return 100.0 * z.to(a.dtype).mean(0)


def input_sensitivity(activations: Tensor) -> Tensor:
    r"""Input sensitivity of each unit: the variance of its activation across stimuli
    (Truong & Hasson, arXiv:2508.00043), :math:`\frac{1}{S-1}\sum_s (a_{si} - \bar a_i)^2`.

    Returns:
        (N,) variances.
    """
    a = _acts(activations, "input_sensitivity")
    if a.shape[0] < 2:
        raise ValueError(f"input_sensitivity: needs at least 2 stimuli, got shape {tuple(a.shape)}")
    return a.var(0, unbiased=True)


def effective_dimensionality(x: Tensor, *, center: bool = True) -> Tensor:
    r"""Participation ratio of the eigenvalues of the covariance of ``x``.

    .. math:: \mathrm{PR} = \frac{(\sum_k \lambda_k)^2}{\sum_k \lambda_k^2}

    with :math:`\lambda_k` the eigenvalues of :math:`\frac{1}{S-1} X_c^\top X_c` (``X_c`` the
    column-centred data); computed from the singular values of ``X_c``.  PR ranges from 1
    (rank-1 data) to D (isotropic data).  Used by Truong & Hasson on the fc1 activations and on
    the fc1 weight matrix (Truong & Hasson, arXiv:2508.00043).

    Args:
        x: (S, D) — rows are samples (stimuli, or the weight rows of the units).
        center: subtract the column means first (set False for an uncentred second moment).

    Returns:
        0-d tensor; 0 for all-constant data.
    """
    a = _acts(x, "effective_dimensionality", "x")
    a = a.double() if a.dtype != torch.float64 else a
    if center:
        a = a - a.mean(0, keepdim=True)
    s2 = torch.linalg.svdvals(a) ** 2
    tot = s2.sum()
    pr = torch.where(tot > 0, tot * tot / (s2 * s2).sum().clamp_min(1e-300), torch.zeros_like(tot))
    return pr.to(x.dtype if x.is_floating_point() else torch.float32)


# ----------------------------------------------------------------------------- categories
def selectivity(activations: Tensor, labels: Tensor, num_classes: Optional[int] = None, *, eps: float = 1e-8) -> Tensor:
    r"""Category selectivity d′ of every unit for every class.

    .. math:: d'_{ci} = \frac{\mu_{ci} - \mu_{\bar c i}}{\sqrt{(\sigma_{ci}^2 + \sigma_{\bar c i}^2)/2}}

    with μ, σ² the mean and (unbiased) variance of unit i's activation over the stimuli of class
    c and over all the other stimuli (Truong & Hasson, arXiv:2508.00043, "expert units").  The denominator is
    clamped at ``eps`` (a unit that is constant within both groups gets a large finite d′, or 0
    if the means are equal too).

    Args:
        activations: (S, N).
        labels: (S,) integer class labels in [0, num_classes).
        num_classes: default ``labels.max() + 1``.

    Returns:
        (C, N) d′ values.
    """
    who = "selectivity"
    a = _acts(activations, who)
    _check_tensor(labels, "labels", who, (1,))
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"{who}: labels must be an integer tensor, got dtype {labels.dtype}")
    if labels.shape[0] != a.shape[0]:
        raise ValueError(f"{who}: labels has {labels.shape[0]} entries but activations has {a.shape[0]} stimuli")
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError(f"{who}: labels must be >= 0")
    C = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    if labels.numel() and int(labels.max()) >= C:
        raise ValueError(f"{who}: labels go up to {int(labels.max())} but num_classes is {C}")
    ad = a.double()
    onehot = torch.nn.functional.one_hot(labels.to(a.device).long(), C).double()  # (S, C)
    n_c = onehot.sum(0)  # (C,)
    n_r = a.shape[0] - n_c
    s1, s2 = onehot.T @ ad, onehot.T @ (ad * ad)  # (C, N)
    t1, t2 = ad.sum(0), (ad * ad).sum(0)
    r1, r2 = t1 - s1, t2 - s2

    def mv(s1_, s2_, n):
        n = n[:, None]
        m = s1_ / n.clamp_min(1)
        v = (s2_ - n * m * m).clamp_min(0) / (n - 1).clamp_min(1)
        return m, v

    mc, vc = mv(s1, s2, n_c)
    mr, vr = mv(r1, r2, n_r)
    d = (mc - mr) / torch.sqrt((vc + vr) / 2).clamp_min(eps)
    return d.to(a.dtype)


def localization_score(mask: Tensor, grid: GridLike) -> Tensor:
    r"""Spatial clustering of a set of units on the sheet (functional localisation).

    .. math:: L = 1 - \frac{\bar d_{\mathrm{set}}}{\bar d_{\mathrm{all}}}

    with :math:`\bar d_{\mathrm{set}}` the mean Euclidean sheet distance between the units of the
    set and :math:`\bar d_{\mathrm{all}}` the mean over all unit pairs, which is exactly the
    expected value of :math:`\bar d_{\mathrm{set}}` for a uniformly random set of the same size.
    L > 0: clustered; ≈ 0: scattered at random; < 0: dispersed.  (Truong & Hasson measure
    functional localisation as the spatial clustering of expert units; their exact statistic is
    not published — this is torchtopo's.)

    Args:
        mask: (..., N) boolean masks of units (e.g. the experts of each class).
        grid: the units' grid.

    Returns:
        (...) scores; NaN where a mask has fewer than 2 units (no pair to measure).
    """
    who = "localization_score"
    _check_tensor(mask, "mask", who)
    if mask.dtype != torch.bool:
        raise TypeError(f"{who}: mask must be a bool tensor, got dtype {mask.dtype}")
    g = _grid_for(grid, mask.shape[-1], who)
    pos = g.positions.to(mask.device).double()
    D = torch.cdist(pos, pos)  # (N, N)
    if g.wrap:
        dr = (pos[:, None, 0] - pos[None, :, 0]).abs()
        dc = (pos[:, None, 1] - pos[None, :, 1]).abs()
        D = torch.sqrt(torch.minimum(dr, g.height - dr) ** 2 + torch.minimum(dc, g.width - dc) ** 2)
    n = g.n_units
    d_all = D.sum() / (n * (n - 1)) if n > 1 else torch.zeros((), dtype=D.dtype)
    m = mask.double()
    k = m.sum(-1)
    tot = torch.einsum("...i,ij,...j->...", m, D, m)
    d_set = tot / (k * (k - 1)).clamp_min(1)
    score = 1 - d_set / d_all.clamp_min(1e-12)
    return torch.where(k >= 2, score, torch.full_like(score, float("nan"))).float()


def expert_units(
    dprime: Tensor,
    grid: Optional[GridLike] = None,
    *,
    threshold: float = 1.0,
) -> Dict[str, Tensor]:
    r"""Expert units: units whose d′ for a class exceeds ``threshold``, and how clustered they are.

    A unit is an expert for class c when :math:`d'_{ci} > \text{threshold}` (Truong & Hasson,
    Truong & Hasson, arXiv:2508.00043; the paper's threshold is **unconfirmed**, default 1.0).

    Args:
        dprime: (C, N) from :func:`selectivity`.
        grid: the units' grid (default ``Grid.for_units(N)``).
        threshold: d′ threshold.

    Returns:
        dict with ``"mask"`` (C, N) bool, ``"count"`` (C,), ``"fraction"`` (0-d: share of units
        that are an expert for at least one class), ``"localization"`` (C,) from
        :func:`localization_score` (NaN for classes with < 2 experts), and ``"morans_i"`` (C,):
        Moran's I of each class's d′ map, a threshold-free smoothness of the selectivity map.
    """
    who = "expert_units"
    d = _check_tensor(dprime, "dprime", who, (2,))
    g = _grid_for(grid, d.shape[1], who)
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not math.isfinite(threshold):
        raise TypeError(f"{who}: threshold must be a finite number, got {threshold!r}")
    mask = d > threshold
    return {
        "mask": mask,
        "count": mask.sum(1),
        "fraction": mask.any(0).float().mean(),
        "localization": localization_score(mask, g),
        "morans_i": morans_i(_float(d), g),
    }


# ----------------------------------------------------------------------------- stimuli
def _as_1d(v: Union[float, Sequence[float], Tensor], name: str, who: str) -> Tensor:
    t = torch.as_tensor(v, dtype=torch.float64).flatten()
    if t.numel() == 0:
        raise ValueError(f"{who}: {name} must not be empty")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{who}: {name} must be finite, got {v!r}")
    return t


def _check_size(size: Union[int, Tuple[int, int]], who: str) -> Tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size)
    ):
        raise ValueError(f"{who}: size must be a positive int or (H, W), got {size!r}")
    return int(size[0]), int(size[1])


def grating(
    size: Union[int, Tuple[int, int]],
    orientation: Union[float, Sequence[float], Tensor],
    spatial_freq: Union[float, Sequence[float], Tensor] = 0.1,
    phase: Union[float, Sequence[float], Tensor] = 0.0,
    *,
    contrast: float = 1.0,
    channels: int = 1,
    dtype: torch.dtype = torch.float32,
    device: Optional[Union[str, torch.device]] = None,
) -> Tensor:
    r"""Sinusoidal gratings in [0, 1], for every (orientation, frequency, phase) combination.

    .. math:: g(x, y) = \tfrac12 + \tfrac{c}{2}\cos\!\big(2\pi f (x\cos\theta + y\sin\theta) + \varphi\big)

    with (x, y) pixel coordinates relative to the image centre (y pointing down), θ the
    orientation of the modulation direction in degrees (θ = 0: vertical stripes, varying along
    x), f in cycles per pixel, φ in degrees, c the contrast.

    Args:
        size: H or (H, W).
        orientation, spatial_freq, phase: scalars or 1-D sequences.
        contrast: in [0, 1].
        channels: copies of the grating along the channel axis.

    Returns:
        (O, F, P, channels, H, W) tensor, squeezed of nothing: O orientations, F frequencies,
        P phases.
    """
    who = "grating"
    H, W = _check_size(size, who)
    th = _as_1d(orientation, "orientation", who) * math.pi / 180
    f = _as_1d(spatial_freq, "spatial_freq", who)
    ph = _as_1d(phase, "phase", who) * math.pi / 180
    if not 0 <= contrast <= 1:
        raise ValueError(f"{who}: contrast must be in [0, 1], got {contrast}")
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"{who}: channels must be a positive int, got {channels!r}")
    y = torch.arange(H, dtype=torch.float64) - (H - 1) / 2
    x = torch.arange(W, dtype=torch.float64) - (W - 1) / 2
    proj = x[None, None, :] * th.cos()[:, None, None] + y[None, :, None] * th.sin()[:, None, None]  # (O,H,W)
    arg = 2 * math.pi * f[None, :, None, None, None] * proj[:, None, None] + ph[None, None, :, None, None]
    g = 0.5 + 0.5 * contrast * torch.cos(arg)  # (O, F, P, H, W)
    g = g.unsqueeze(3).expand(-1, -1, -1, channels, -1, -1)
    return g.to(dtype=dtype, device=device).contiguous()


def _responses(model, layer, stimuli: Tensor, transform, batch_size) -> Tensor:
    acts, _ = collect_activations(model, layer, stimuli, batch_size=batch_size, transform=transform)
    return _acts(acts, "probe")


def orientation_tuning(
    model: nn.Module,
    layer: Union[str, nn.Module],
    *,
    size: Union[int, Tuple[int, int]] = 28,
    channels: int = 1,
    orientations: Union[int, Sequence[float]] = 12,
    spatial_freqs: Sequence[float] = (0.05, 0.1, 0.15, 0.2),
    phases: int = 8,
    contrast: float = 1.0,
    transform: Optional[Callable[[Tensor], Tensor]] = None,
    rectify: bool = True,
    batch_size: int = 128,
) -> Dict[str, Tensor]:
    r"""Orientation tuning of a layer's units to sinusoidal gratings (:func:`grating`).

    Each unit's response R(θ) to orientation θ is its activation averaged over ``phases``
    evenly spaced phases, at the spatial frequency that drives it most (max over frequencies of
    the phase-averaged response, then that frequency for all θ).  With ``rectify`` the
    activations pass through a ReLU first (tuning of the post-ReLU output).  Then

    .. math:: \theta_{pref} = \arg\max_\theta R(\theta),\qquad
              \mathrm{OSI} = \frac{R_{pref} - R_{orth}}{R_{pref} + R_{orth}}

    with :math:`R_{orth} = R(\theta_{pref} + 90°)` (nearest sampled orientation), as in Truong &
    Hasson's orientation probe (Truong & Hasson, arXiv:2508.00043).  OSI is 0 where R_pref + R_orth = 0.

    Args:
        model, layer: the network and the layer (or its name) to read.
        size, channels: the stimulus image size and channel count (images in [0, 1]).
        orientations: a number of evenly spaced orientations in [0°, 180°), or the list.
        spatial_freqs: cycles per pixel.
        phases: number of phases in [0°, 360°).
        transform: applied to the stimuli before the model (e.g. normalisation).
        rectify: ReLU the activations.

    Returns:
        dict with ``"orientations"`` (O,) degrees, ``"responses"`` (O, N) tuning curves,
        ``"preferred"`` (N,) degrees, ``"osi"`` (N,), ``"best_freq"`` (N,) cycles/pixel.
    """
    who = "orientation_tuning"
    if isinstance(orientations, int) and not isinstance(orientations, bool):
        if orientations < 2:
            raise ValueError(f"{who}: orientations must be >= 2, got {orientations}")
        oris = torch.arange(orientations, dtype=torch.float64) * 180.0 / orientations
    else:
        oris = _as_1d(orientations, "orientations", who)
    if not isinstance(phases, int) or phases < 1:
        raise ValueError(f"{who}: phases must be a positive int, got {phases!r}")
    sf = _as_1d(spatial_freqs, "spatial_freqs", who)
    phs = torch.arange(phases, dtype=torch.float64) * 360.0 / phases
    stim = grating(size, oris, sf, phs, contrast=contrast, channels=channels)
    O, F, P = stim.shape[:3]
    r = _responses(model, layer, stim.flatten(0, 2), transform, batch_size)
    if rectify:
        r = r.clamp_min(0)
    r = r.reshape(O, F, P, -1).mean(2)  # (O, F, N)
    best = r.mean(0).argmax(0)  # (N,)
    N = r.shape[-1]
    R = r.gather(1, best[None, None, :].expand(O, 1, N)).squeeze(1)  # (O, N)
    pref_idx = R.argmax(0)
    pref = oris.to(R.dtype)[pref_idx]
    circ = (oris[None, :] - (oris[pref_idx.cpu()] + 90.0)[:, None]) % 180.0
    circ = torch.minimum(circ, 180.0 - circ)  # angular distance to the orthogonal orientation
    orth_idx = circ.argmin(1).to(R.device)
    rp = R.gather(0, pref_idx[None]).squeeze(0)
    ro = R.gather(0, orth_idx[None]).squeeze(0)
    den = rp + ro
    osi = torch.where(den.abs() > 0, (rp - ro) / torch.where(den.abs() > 0, den, torch.ones_like(den)), torch.zeros_like(den))
    return {
        "orientations": oris.to(R.dtype),
        "responses": R,
        "preferred": pref,
        "osi": osi,
        "best_freq": sf.to(R.dtype)[best],
    }


def _smooth_noise(n: int, H: int, W: int, sigma: float, generator: Optional[torch.Generator]) -> Tensor:
    z = torch.randn(n, 1, H, W, generator=generator, dtype=torch.float64)
    k = int(2 * math.ceil(3 * sigma) + 1)
    t = torch.arange(k, dtype=torch.float64) - k // 2
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    z = torch.nn.functional.conv2d(torch.nn.functional.pad(z, (k // 2,) * 4, mode="circular"), g.view(1, 1, 1, k))
    z = torch.nn.functional.conv2d(z, g.view(1, 1, k, 1))
    return z[:, 0]


def symmetry_stimuli(
    n: int,
    size: Union[int, Tuple[int, int]] = 28,
    *,
    channels: int = 1,
    sigma: float = 1.5,
    density: float = 0.3,
    generator: Optional[torch.Generator] = None,
) -> Tuple[Tensor, Tensor]:
    r"""Mirror-symmetric and matched asymmetric binary blob patterns, in [0, 1].

    A smooth random field (white noise blurred by a Gaussian of SD ``sigma`` px) is thresholded
    so that a share ``density`` of pixels is on.  The symmetric pattern reflects the left half
    onto the right half (symmetric about the vertical midline); the asymmetric one joins the
    left half of that pattern with the right half of an independent field — same half-image
    statistics, no symmetry.

    Returns:
        ``(symmetric, asymmetric)``, each (n, channels, H, W).
    """
    who = "symmetry_stimuli"
    H, W = _check_size(size, who)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"{who}: n must be a positive int, got {n!r}")
    if not 0 < density < 1:
        raise ValueError(f"{who}: density must be in (0, 1), got {density}")
    a = _smooth_noise(n, H, W, sigma, generator)
    b = _smooth_noise(n, H, W, sigma, generator)

    def binar(z):
        q = torch.quantile(z.flatten(1), 1 - density, dim=1)
        return (z > q[:, None, None]).double()

    a, b = binar(a), binar(b)
    half = (W + 1) // 2
    cols = torch.arange(W)
    mirror = torch.where(cols < half, cols, W - 1 - cols)
    sym = a[:, :, mirror]
    asym = torch.where(cols[None, None, :] < half, a, b)  # left half of a, right half of b
    out = [s.unsqueeze(1).expand(-1, channels, -1, -1).float().contiguous() for s in (sym, asym)]
    return out[0], out[1]


def symmetry_selectivity(
    model: nn.Module,
    layer: Union[str, nn.Module],
    *,
    n: int = 256,
    size: Union[int, Tuple[int, int]] = 28,
    channels: int = 1,
    transform: Optional[Callable[[Tensor], Tensor]] = None,
    seed: int = 0,
    batch_size: int = 128,
) -> Tensor:
    r"""Symmetry preference of each unit: d′ of its responses to mirror-symmetric versus
    asymmetric patterns (:func:`symmetry_stimuli`), d′ as in :func:`selectivity`
    (positive: prefers symmetric).  The symmetry probe of Truong & Hasson (arXiv:2508.00043).

    Returns:
        (N,) d′ values.
    """
    g = torch.Generator().manual_seed(seed)
    sym, asym = symmetry_stimuli(n, size, channels=channels, generator=g)
    r = _responses(model, layer, torch.cat([sym, asym]), transform, batch_size)
    lab = torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)])
    return selectivity(r, lab, 2)[0]


def eccentricity_stimuli(
    size: Union[int, Tuple[int, int]] = 28,
    eccentricities: Union[int, Sequence[float]] = 6,
    *,
    n_angles: int = 8,
    blob_sigma: float = 1.5,
    channels: int = 1,
) -> Tuple[Tensor, Tensor]:
    r"""A bright Gaussian blob at increasing distance from the image centre, in [0, 1].

    .. math:: s(x, y) = \exp\!\Big(-\frac{(x - e\cos\alpha)^2 + (y - e\sin\alpha)^2}{2\sigma^2}\Big)

    for each eccentricity e (pixels from the centre) and ``n_angles`` polar angles α.

    Args:
        eccentricities: a number of evenly spaced eccentricities from 0 to 0.8 × the half-size,
            or the list (pixels).

    Returns:
        ``(stimuli, ecc)`` — (E · A, channels, H, W) ordered eccentricity-major, and (E,) the
        eccentricities.
    """
    who = "eccentricity_stimuli"
    H, W = _check_size(size, who)
    if isinstance(eccentricities, int) and not isinstance(eccentricities, bool):
        if eccentricities < 1:
            raise ValueError(f"{who}: eccentricities must be >= 1, got {eccentricities}")
        ecc = torch.linspace(0, 0.8 * (min(H, W) - 1) / 2, eccentricities, dtype=torch.float64)
    else:
        ecc = _as_1d(eccentricities, "eccentricities", who)
    if not isinstance(n_angles, int) or n_angles < 1:
        raise ValueError(f"{who}: n_angles must be a positive int, got {n_angles!r}")
    al = torch.arange(n_angles, dtype=torch.float64) * 2 * math.pi / n_angles
    cx = (ecc[:, None] * al.cos()[None]).flatten()
    cy = (ecc[:, None] * al.sin()[None]).flatten()
    y = torch.arange(H, dtype=torch.float64) - (H - 1) / 2
    x = torch.arange(W, dtype=torch.float64) - (W - 1) / 2
    d2 = (x[None, None, :] - cx[:, None, None]) ** 2 + (y[None, :, None] - cy[:, None, None]) ** 2
    s = torch.exp(-d2 / (2 * blob_sigma**2)).float()
    return s.unsqueeze(1).expand(-1, channels, -1, -1).contiguous(), ecc.float()


def eccentricity_tuning(
    model: nn.Module,
    layer: Union[str, nn.Module],
    *,
    size: Union[int, Tuple[int, int]] = 28,
    eccentricities: Union[int, Sequence[float]] = 6,
    n_angles: int = 8,
    channels: int = 1,
    transform: Optional[Callable[[Tensor], Tensor]] = None,
    batch_size: int = 128,
) -> Dict[str, Tensor]:
    r"""Responses of a layer's units to a blob at increasing eccentricity
    (:func:`eccentricity_stimuli`), averaged over polar angles: the eccentricity probe of
    Truong & Hasson (arXiv:2508.00043).

    Returns:
        dict with ``"eccentricity"`` (E,), ``"responses"`` (E, N), ``"preferred"`` (N,) the
        eccentricity of the largest response, and ``"slope"`` (N,) the least-squares slope of
        response against eccentricity.
    """
    stim, ecc = eccentricity_stimuli(size, eccentricities, n_angles=n_angles, channels=channels)
    r = _responses(model, layer, stim, transform, batch_size)
    E = ecc.numel()
    R = r.reshape(E, -1, r.shape[-1]).mean(1)
    e = ecc.to(R.device, R.dtype)
    ec = e - e.mean()
    slope = (ec[:, None] * (R - R.mean(0, keepdim=True))).sum(0) / (ec * ec).sum().clamp_min(1e-12)
    return {"eccentricity": e, "responses": R, "preferred": e[R.argmax(0)], "slope": slope}
