"""The V1 front's convolution engine (private): a fixed Gabor bank applied per input channel.

Each filter reads a single input channel, so the filters are bucketed by (input channel, kernel
size) and each bucket is one convolution over that channel alone; the quadrature filter exists
only for complex cells.  With kernel sizes chosen from σ (many sizes, few filters each) buckets
of fewer than ``MIN_BUCKET_ROWS`` rows are merged into the next size of their channel (kernels
zero-padded, so the result is the same convolution); every kernel of ``FFT_MIN_KERNEL`` pixels
or more goes into one bucket applied with real FFTs on the smallest torus without wrap-around,
the stride taken in the frequency domain, the kernel spectra cached.  Used by
:class:`torchtopo.v1.V1Front`, which holds the kernels as non-persistent buffers and passes them
in.  Exactness is tested against a per-filter direct convolution.
"""
from __future__ import annotations

import weakref
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..functional.gabor import envelope_half_width, gabor_kernels

__all__ = ["FFT_MIN_KERNEL", "Bank", "kernel_sizes", "sort_order", "build", "apply"]

#: Kernels at least this large are applied with FFTs (faster than direct convolution there).
FFT_MIN_KERNEL = 57
#: Ladder of odd kernel sizes used to bucket per-filter sizes (≈ +15 % per step).
SIZE_LADDER = (3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 25, 29, 33, 37, 43, 49, 57, 65, 75, 85, 99, 113,
               129, 149, 171, 197, 227, 261, 301, 347, 399, 459, 527, 607, 699, 803, 923, 1061)
#: Bucket key of the FFT bucket (sorts after every (channel, size) key).
FFT_KEY = 2 ** 40

#: One bucket: (name, kernel size, input channel (−1: FFT), (simple cells, complex cells)).
Bank = Tuple[str, int, int, Tuple[int, int]]


def fast_len(n: int) -> int:
    """Smallest m >= n of the form 2^a 3^b 5^c (fast FFT lengths; zero padding beyond the linear
    convolution's length changes nothing)."""
    m = n
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def flush_subnormal(w: Tensor) -> Tensor:
    """float32 copy with subnormal values flushed to 0 (far envelope tails underflow, and
    subnormal weights slow CPU convolutions down by an order of magnitude)."""
    w = w.to(torch.float32)
    return torch.where(w.abs() < torch.finfo(torch.float32).tiny, torch.zeros_like(w), w)


def kernel_sizes(f: Tensor, theta_deg: Tensor, nx: Tensor, ny: Tensor, image_size: int,
                 kernel_size: Optional[int]) -> Tuple[Tensor, Tensor]:
    """Per-filter kernel sizes and envelope half-widths (float64 CPU inputs, f in cycles/pixel).

    With ``kernel_size=None`` the smallest ladder size whose half-width covers the envelope,
    capped at the largest odd size ≤ ``image_size``; otherwise ``kernel_size`` for every filter."""
    half = envelope_half_width(f, theta_deg, nx, ny)
    kmax = max(3, image_size - (1 - image_size % 2))  # largest odd size <= the image
    if kernel_size is None:
        need = (2 * torch.ceil(half) + 1).clamp(max=kmax).long()
        ladder = torch.tensor([s for s in SIZE_LADDER if s < kmax] + [kmax])
        sizes = ladder[torch.searchsorted(ladder, need).clamp(max=ladder.numel() - 1)]
    else:
        sizes = torch.full((f.numel(),), int(kernel_size), dtype=torch.long)
    return sizes, half


#: A direct bucket with fewer output rows than this (q0 of every cell, q1 of complex cells) is
#: merged into the next larger size of the same input channel, its kernels zero-padded: a
#: convolution with a handful of output channels runs several times below the MAC rate of one
#: with a few dozen, more than the padding costs.
MIN_BUCKET_ROWS = 16


def bucket_keys(sizes: Tensor, channel: Tensor, is_complex: Tensor, fft_min_kernel: int) -> Tensor:
    """Bucket of each filter, ``channel * 100_000 + bucket kernel size``: one direct convolution
    per (input channel, kernel size), buckets of fewer than :data:`MIN_BUCKET_ROWS` rows merged
    upwards into the next size of their channel (the last leftovers into the largest); all
    kernels of ``fft_min_kernel`` pixels or more in one FFT bucket (key ``FFT_KEY``, the last)."""
    sizes, channel = sizes.cpu().long(), channel.cpu().long()
    rows = 1 + is_complex.cpu().long()
    big = sizes >= fft_min_kernel
    bucket = sizes.clone()
    for c in torch.unique(channel[~big]).tolist():
        sel = (channel == c) & ~big
        groups: List[List[int]] = []  # sizes merged into one bucket, ascending
        pending: List[int] = []
        n_pending = 0
        for k in torch.unique(sizes[sel]).tolist():
            pending.append(k)
            n_pending += int(rows[sel & (sizes == k)].sum())
            if n_pending >= MIN_BUCKET_ROWS:
                groups.append(pending)
                pending, n_pending = [], 0
        if pending:
            if groups:
                groups[-1].extend(pending)
            else:
                groups.append(pending)
        for g in groups:
            for k in g:
                bucket[sel & (sizes == k)] = g[-1]
    key = channel * 100_000 + bucket
    return torch.where(big, torch.full_like(key, FFT_KEY), key)


def sort_order(sizes: Tensor, channel: Tensor, is_complex: Tensor, fft_min_kernel: int) -> Tensor:
    """The filter order in which the banks' outputs concatenate without a gather: simple
    cells then complex cells, each by bucket (a stable sort, so i.i.d. draws stay i.i.d.)."""
    key = bucket_keys(sizes, channel, is_complex, fft_min_kernel) + is_complex.cpu().long() * 2 ** 41
    return torch.sort(key, stable=True).indices


def build(f: Tensor, theta_deg: Tensor, phase_deg: Tensor, nx: Tensor, ny: Tensor, channel: Tensor,
          is_complex: Tensor, sizes: Tensor, gain_simple: float, gain_complex: float,
          fft_min_kernel: int) -> Tuple[List[Bank], List[Tensor], Optional[Tensor], Optional[Tensor]]:
    """The buckets of a bank (float64 CPU parameters, f in cycles/pixel).

    Returns ``(banks, weights, c_fft, perm_inv)``: per bucket its description and float32 kernels
    (``(rows, 1, k, k)`` for a direct bucket, ``(rows, kb, kb)`` zero-padded to the largest size
    for the FFT bucket), rows ordered ``[simple q0, complex q0, complex q1]`` and scaled by
    ``gain_simple`` / ``gain_complex``; the input channel of each FFT row (None without an FFT
    bucket); and the permutation from the banks' output order back to the filter order (None if
    the identity)."""
    def kernels(idx: Tensor, k: int, quad: float, gain: float) -> Tensor:
        return gain * gabor_kernels(f[idx], theta_deg[idx], phase_deg[idx] + quad, nx[idx], ny[idx], k)

    banks: List[Bank] = []
    weights: List[Tensor] = []
    c_fft = None
    keys = bucket_keys(sizes, channel, is_complex, fft_min_kernel)
    simple_order, complex_order = [], []
    for key in torch.unique(keys).tolist():
        s_idx = torch.nonzero((keys == key) & ~is_complex).flatten()
        c_idx = torch.nonzero((keys == key) & is_complex).flatten()
        simple_order.append(s_idx)
        complex_order.append(c_idx)
        if key == FFT_KEY:  # FFT bucket: pad every kernel to the largest size
            kb = int(sizes[torch.cat([s_idx, c_idx])].max())
            rows = [(s_idx, 0.0, gain_simple), (c_idx, 0.0, gain_complex), (c_idx, 90.0, gain_complex)]
            w = torch.zeros(s_idx.numel() + 2 * c_idx.numel(), kb, kb, dtype=torch.float64)
            r0 = 0
            for idx, quad, gain in rows:
                for i in range(idx.numel()):  # few large kernels: built one by one
                    k = int(sizes[idx[i]])
                    o = (kb - k) // 2
                    w[r0 + i, o:o + k, o:o + k] = kernels(idx[i:i + 1], k, quad, gain)[0]
                r0 += idx.numel()
            c_fft = torch.cat([channel[s_idx], channel[c_idx], channel[c_idx]])
            name, k, c = "fft", kb, -1
        else:
            k, c = int(key % 100_000), int(key // 100_000)
            parts = []
            for idx, quad, gain in ((s_idx, 0.0, gain_simple), (c_idx, 0.0, gain_complex), (c_idx, 90.0, gain_complex)):
                part = torch.zeros(idx.numel(), k, k, dtype=torch.float64)
                for ki in torch.unique(sizes[idx]).tolist():  # each filter at its own size, centred
                    sub = torch.nonzero(sizes[idx] == ki).flatten()
                    o = (k - ki) // 2
                    part[sub, o:o + ki, o:o + ki] = kernels(idx[sub], ki, quad, gain)
                parts.append(part)
            w = torch.cat(parts).unsqueeze(1)
            name = f"k{k}_c{c}"
        banks.append((name, k, c, (s_idx.numel(), c_idx.numel())))
        weights.append(flush_subnormal(w))
    perm = torch.cat(simple_order + complex_order)
    perm_inv = None
    if not torch.equal(perm, torch.arange(perm.numel())):
        perm_inv = torch.empty_like(perm)
        perm_inv[perm] = torch.arange(perm.numel())
    return banks, weights, c_fft, perm_inv


def fast_len_multiple(n: int, stride: int) -> int:
    """Smallest fast FFT length ``>= n`` that is a multiple of ``stride`` (so that the strided
    output can be taken by folding the spectrum)."""
    m = fast_len(n)
    while m % stride:
        m = fast_len(m + 1)
    return m


#: Kernel spectra of the FFT buckets, by (id of the kernel tensor, its version, FFT size, device).
_SPECTRA: Dict[Tuple[int, int, int, int, str], Tuple["weakref.ref", Tensor]] = {}
#: Complex elements per chunk of the FFT product (chunks small enough for the allocator to reuse:
#: fresh multi-megabyte buffers cost more in page faults than the arithmetic).
FFT_CHUNK = 1 << 19


def centred_spectrum(w: Tensor, k: int, nh: int, nw: int) -> Tensor:
    """``rfft2`` of the flipped kernels with their centre moved to pixel (0, 0) on an ``nh × nw``
    torus: ``h[d] = w[k//2 - d]`` (indices mod n), so that the circular convolution ``x ⊛ h`` at
    ``n`` is the zero-padded cross-correlation ``Σ_j x[n + j − k//2] w[j]`` whenever
    ``n_fft ≥ size + k//2`` (no wrap-around reaches an output pixel).  Cached per kernel tensor
    when it needs no gradient."""
    key = (id(w), w._version, nh, nw, str(w.device))
    hit = _SPECTRA.get(key)
    if hit is not None and hit[0]() is w:
        return hit[1]
    p = k // 2
    h = w.new_zeros((w.shape[0], nh, nw), dtype=torch.float32)
    h[:, :k, :k] = torch.flip(w.float(), (-2, -1))
    K = torch.fft.rfft2(torch.roll(h, (-p, -p), (-2, -1)))
    if not w.requires_grad:
        if len(_SPECTRA) > 32:
            _SPECTRA.clear()
        # the entry goes with its kernel tensor (a rebuilt or moved bank frees its spectra)
        _SPECTRA[key] = (weakref.ref(w, lambda _, key=key: _SPECTRA.pop(key, None)), K)
    return K


def fft_conv(x: Tensor, w: Tensor, k: int, c_fft: Tensor, stride: int) -> Tensor:
    """``conv2d(x[:, c_fft[m]], w[m], stride, padding=k//2)`` for every row m via real FFTs
    (float32): circular convolution on a torus of ``size + k//2`` (rounded up to a fast length)
    with the centred kernel spectrum, so no output pixel sees wrap-around; the stride is taken in
    the frequency domain along the rows (decimation by ``s`` sums the ``s`` aliased bands:
    ``y[s n] = (1/s) IDFT_{N/s}[Σ_q Y[k + qN/s]]``), so the row inverse is ``s`` times shorter;
    columns are strided after the inverse.  On CPU the batch is processed in chunks of about
    :data:`FFT_CHUNK` complex elements."""
    h, wd = x.shape[-2:]
    s = stride
    nh, nw = fast_len_multiple(h + k // 2, s), fast_len(wd + k // 2)
    K = centred_spectrum(w, k, nh, nw)
    ho, wo = (h - 1) // s + 1, (wd - 1) // s + 1
    X = torch.fft.rfft2(x.float(), s=(nh, nw))                      # (B, C, nh, nw//2+1)
    # chunks matter on CPU (allocator reuse); a GPU takes the whole batch in one go
    bs = x.shape[0] if x.is_cuda else max(1, FFT_CHUNK // K.numel())
    outs = []
    for b0 in range(0, x.shape[0], bs):
        Y = X[b0:b0 + bs].index_select(1, c_fft) * K                # (b, M, nh, nw//2+1)
        if s > 1:
            Y = Y.unflatten(-2, (s, nh // s)).sum(-3)
        y = torch.fft.irfft(torch.fft.ifft(Y, dim=-2), n=nw, dim=-1)
        outs.append(y[..., :ho, 0:s * (wo - 1) + 1:s])
    y = outs[0] if len(outs) == 1 else torch.cat(outs)
    return (y / s if s > 1 else y).to(x.dtype)


#: Kernels larger than this (or than the image) are convolved over explicitly padded input:
#: PyTorch's CPU convolution takes a path tens to hundreds of times slower for such kernels with
#: its own padding (measured: k = 59 at 64 px, k = 99 at 224 px).
BUILTIN_PAD_MAX = 57


def apply(x: Tensor, banks: Sequence[Bank], weights: Sequence[Tensor], c_fft: Optional[Tensor],
          perm_inv: Optional[Tensor], stride: int) -> Tensor:
    """Rates ``[ReLU(q0) (simple), √(q0² + q1²) (complex)]`` of the bank for ``x`` (B, C, H, W):
    one convolution per bucket, zero padding ``k // 2``, ``stride``; complex responses are
    ``√max(q0² + q1², tiny)`` (finite gradient at 0).  Shape ``(B, cells, H', W')`` in the
    filter order."""
    simple, cplx = [], []
    autocast = torch.is_autocast_enabled(x.device.type)
    for (name, k, c, (ns, nc)), wt in zip(banks, weights):
        if name == "fft":
            y = fft_conv(x, wt, k, c_fft, stride)
        else:
            if wt.dtype != x.dtype and not autocast:
                wt = wt.to(x.dtype)
            xc = x[:, c:c + 1]
            if k > BUILTIN_PAD_MAX or k > xc.shape[-1] or k > xc.shape[-2]:
                y = F.conv2d(F.pad(xc, (k // 2,) * 4), wt, stride=stride)
            else:
                y = F.conv2d(xc, wt, stride=stride, padding=k // 2)
        if ns:
            simple.append(F.relu(y[:, :ns]))
        if nc:
            a, b = y[:, ns:ns + nc], y[:, ns + nc:]
            e = a * a + b * b
            cplx.append(torch.sqrt(e.clamp_min(torch.finfo(e.dtype).tiny)))
    pieces = simple + cplx
    if len(pieces) == 1:
        out = pieces[0]
    else:
        dtype = pieces[0].dtype
        for p in pieces[1:]:
            dtype = torch.promote_types(dtype, p.dtype)
        out = torch.cat([p.to(dtype) for p in pieces], 1)
    if perm_inv is not None:
        out = out.index_select(1, perm_inv)
    return out
