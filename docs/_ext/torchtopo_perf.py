"""The performance page's summaries of the committed benchmark results (a part of the local
Sphinx extension ``torchtopo_docs``).

For each benchmark whose JSON layout is known (:data:`RENDERERS`) this writes a few short tables
of **ratios** with their units, a plot (matplotlib, at build time, into
``docs/_generated/perf/``), what the yardsticks are, and what was *not* measured.  The JSON
files under ``docs/_static/benchmarks/`` stay the complete record; the page links them.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

#: Folder of the generated plots (git-ignored, like the rest of ``docs/_generated``).
PLOT_DIR = "perf"

#: Section titles of the known benchmarks.
TITLES = {
    "neighbor_penalty": "Neighbour penalties: WS and AS losses",
    "v1_front": "V1 front-end against a dense filter bank",
    "hah_block": "HaH block and Hebbian term",
}


def _ms(v: Optional[float]) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 1000 else f"{v:,.0f}"


def _x(v: Optional[float]) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.2f} ×" if v < 10 else f"{v:.1f} ×" if v < 100 else f"{v:,.0f} ×"


def _mib(v: Optional[float]) -> str:
    return "—" if v is None else ("< 0.1" if v < 0.1 else f"{v:.1f}")


def list_table(header: List[str], rows: List[List[str]], widths: Optional[List[int]] = None) -> str:
    lines = [".. list-table::", "   :header-rows: 1", "   :class: bench-table"]
    if widths:
        lines.append("   :widths: " + " ".join(str(w) for w in widths))
    lines.append("")
    for r in [header] + rows:
        lines.append("   * - " + "\n     - ".join(c if c.strip() else " " for c in r))
    return "\n".join(lines) + "\n"


def machine_line(data: Dict[str, Any]) -> str:
    parts = []
    dev = data.get("device")
    if dev:
        parts.append(f"device: {dev}")
    if data.get("threads"):
        parts.append(f"{data['threads']} thread(s)")
    for k in ("dtype", "torch", "repeats"):
        if data.get(k) is not None:
            parts.append(f"{k} {data[k]}")
    return "*Measured on* " + ", ".join(parts) + "." if parts else ""


def _figure(out_dir: Path, name: str, draw: Callable, alt: str, caption: str) -> str:
    """Draw with matplotlib into ``out_dir/perf/name.png``; the rst that shows it, or a note
    when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is in the docs extra
        return "(Install matplotlib to see the plot.)\n"
    path = out_dir / PLOT_DIR / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    with plt.rc_context({"font.size": 11, "legend.fontsize": 9, "axes.grid": True, "grid.alpha": 0.3}):
        fig = draw(plt)
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
    rel = path.relative_to(out_dir.parent).as_posix() if out_dir.parent in path.parents else path.as_posix()
    return f".. figure:: /{rel}\n   :alt: {alt}\n   :width: 100%\n\n   {caption}\n"


# ------------------------------------------------------------------ neighbor_penalty
NP_IMPLS = {"WS": ["ref", "torch", "naive gather", "topoloss", "topoloss (re-impl.)"],
            "AS": ["ref", "torch", "naive gather", "full NxN"]}
NP_TARGETS = {
    "ws_vs_elementwise": ("WS cosine, 128 × 128 units, D = 256: torch ÷ ref", "≤ 3 ×", False),
    "ws_speedup_vs_topoloss": ("WS cosine, 128 × 128 units, D = 256: topoloss ÷ torch", "≥ 2 ×", True),
    "as_speedup_vs_full_nxn": ("AS correlation, 128 × 128 units, batch 256: full N×N ÷ torch", "≥ 100 ×", True),
}


def neighbor_penalty(data: Dict[str, Any], out_dir: Path) -> str:
    rows = data.get("results", [])
    cases: Dict[tuple, Dict[str, dict]] = {}
    for r in rows:
        cases.setdefault((r["kind"], r["H"], r["D"]), {})[r["impl"]] = r

    def t(c, impl):
        r = c.get(impl)
        return None if not r or r.get("median_s") is None else 1e3 * r["median_s"]

    out = [machine_line(data) + "  " + (data.get("note", "") + "." if data.get("note") else ""), ""]
    out.append(
        "**The yardsticks.** ``ref`` is ``(w * w).sum()`` forward + backward on the same tensor "
        "(the weights for WS, the activations for AS): one elementwise pass, about the least any "
        "loss over that tensor can cost; *torch ÷ ref* says how many such passes the penalty "
        "costs.  ``naive gather`` indexes the neighbour pairs (``v[i]``, ``v[j]``) and "
        "materialises P × D pair matrices.  ``topoloss`` is TopoNets' loss (Deb et al., ICLR 2025) "
        "on the same weights as an H × H × D sheet, from the ``topoloss`` package.  ``full N×N`` "
        "computes AS through the whole N × N correlation matrix.  *X ÷ torch* is how many times "
        "slower X is than torchtopo's PyTorch path.  Times are forward + backward, median of "
        "interleaved repeats; memory is the peak extra memory of one forward + backward, the "
        "gradient included.\n"
    )
    for kind, title, alt_impl, alt_name in (("WS", "Weight Similarity (cosine)", "topoloss", "topoloss"),
                                            ("AS", "Activation Similarity (correlation)", "full NxN", "full N×N")):
        ds = sorted({d for (k, _, d) in cases if k == kind})
        if not ds:
            continue
        d0 = 256 if 256 in ds else ds[len(ds) // 2]
        what = "D = 256 (the weight rows' length)" if kind == "WS" else "batch D = 256"
        body = []
        for (k, h, d), c in sorted(cases.items()):
            if k != kind or d != d0:
                continue
            ref, tor = t(c, "ref"), t(c, "torch")
            alt = t(c, alt_impl) if alt_impl in c else t(c, "topoloss (re-impl.)")
            nav = t(c, "naive gather")
            mem = lambda i: (c.get(i) or {}).get("peak_extra_mb")  # noqa: E731
            body.append([f"{h} × {h} ({h * h:,})", _ms(tor), _x(tor / ref if tor and ref else None),
                         _x(nav / tor if nav and tor else None), _x(alt / tor if alt and tor else None),
                         f"{_mib(mem('torch'))} / {_mib(mem('naive gather'))} / {_mib(mem(alt_impl))}"])
        out.append(f"**{title}**, {what}; the JSON has D ∈ {{{', '.join(map(str, ds))}}}.\n")
        out.append(list_table(["grid (units)", "torch (ms)", "torch ÷ ref", "naive gather ÷ torch",
                               f"{alt_name} ÷ torch", f"extra memory (MiB): torch / naive / {alt_name}"],
                              body, [14, 11, 11, 14, 14, 26]))
        out.append("(— : skipped, the estimate exceeded the memory budget.)\n" if any("—" in r for r in body) else "")

    def draw(plt):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
        for ax, kind in zip(axes, ("WS", "AS")):
            sel = {(h, impl): t(c, impl) for (k, h, d), c in cases.items() if k == kind and d == 256 for impl in c}
            for impl in NP_IMPLS[kind]:
                pts = sorted((h * h, v) for (h, i), v in sel.items() if i == impl and v)
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=impl.replace("NxN", "N×N"))
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("units on the grid, N = H × H")
            ax.set_ylabel("forward + backward (ms)")
            ax.set_title("WS cosine, D = 256" if kind == "WS" else "AS correlation, batch 256")
            ax.legend()
        fig.tight_layout()
        return fig

    if cases:
        out.append(_figure(out_dir, "neighbor_penalty", draw, "time against number of units",
                           "Forward + backward time against the number of units (log–log), D = 256, one CPU thread."))
    targets = (data.get("targets") or {}).get("torch") or {}
    trows = []
    for key, (label, goal, faster) in NP_TARGETS.items():
        if key in targets and targets[key] is not None:
            trows.append([label, _x(targets[key]), goal])
    g = targets.get("as_growth") or {}
    if g:
        trows.append([f"AS, batch 256: growth from 128² to 256² units (× {g.get('N_ratio', 4):g} units)",
                      f"time {_x(g.get('time_ratio'))}, memory {_x(g.get('memory_ratio'))}", "linear in N"])
    if trows:
        out.append("**Targets** (ratios of medians)\n")
        out.append(list_table(["case", "measured", "target"], trows, [60, 25, 15]))
    if data.get("gpu_bandwidth") is None:
        out.append(
            ".. note::\n\n   **Not measured: GPU.**  No GPU was available for these runs, so the fused "
            "Triton kernels were\n   not timed and the achieved bandwidth (target ≥ 70 % of a "
            "device-to-device copy) is unknown.\n   ``python benchmarks/neighbor_penalty.py --device cuda`` "
            "measures both where a GPU exists.\n"
        )
    return "\n".join(out)


# ------------------------------------------------------------------------- v1_front
def v1_front(data: Dict[str, Any], out_dir: Path) -> str:
    rows = data.get("rows", [])
    out = [machine_line(data), ""]
    out.append(
        "**The yardstick** is a dense VOneNet-style filter bank computed from the same sampled "
        "parameters (every filter a C_in × k × k kernel, both quadratures for every cell): "
        "*V1Front ÷ dense* below 1 means faster.  Time is the forward pass of a batch, median "
        "of interleaved repeats; the MACs ratio is the arithmetic one; *max rel. diff* is the "
        "largest relative difference of the two outputs (they compute the same function).\n"
    )
    body = [[r["config"], str(r["batch"]), f"{r['kernel_dense']} px",
             _ms(r["dense_ms_median"] / r["batch"]), _ms(r["v1front_ms_median"] / r["batch"]),
             _x(r["time_ratio_median"]), _x(r["macs_ratio"]),
             "—" if r.get("max_rel_diff") is None or r["max_rel_diff"] != r["max_rel_diff"] else f"{r['max_rel_diff']:.1e}"]
            for r in rows]
    out.append(list_table(["setting", "batch", "dense kernel", "dense (ms / image)", "V1Front (ms / image)",
                           "V1Front ÷ dense (time)", "V1Front ÷ dense (MACs)", "max rel. diff"],
                          body, [24, 7, 9, 11, 11, 12, 12, 10]))

    def draw(plt):
        fig, ax = plt.subplots(figsize=(9, 3.4))
        names = [r["config"] for r in rows]
        y = range(len(rows))
        ax.barh([i + 0.2 for i in y], [r["dense_ms_median"] / r["batch"] for r in rows], 0.4, label="dense bank")
        ax.barh([i - 0.2 for i in y], [r["v1front_ms_median"] / r["batch"] for r in rows], 0.4, label="tt.V1Front")
        ax.set_yticks(list(y), names)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("forward time per image (ms, log scale)")
        ax.legend(loc="lower right")
        fig.tight_layout()
        return fig

    if rows:
        out.append(_figure(out_dir, "v1_front", draw, "forward time per image, dense bank vs V1Front",
                           "Forward time per image, dense bank against ``tt.V1Front``, one CPU thread."))
    out.append(".. note::\n\n   **Not measured: GPU.**  These are CPU timings; "
               "``python benchmarks/v1_front.py --device cuda`` times the same on a GPU.\n"
               if str(data.get("device", "cpu")).startswith("cpu") else "")
    return "\n".join(out)


# ------------------------------------------------------------------------ hah_block
def hah_block(data: Dict[str, Any], out_dir: Path) -> str:
    res = data.get("results", {})
    shape = data.get("shape", {})
    out = [machine_line(data), ""]
    where = (f"a batch of {shape.get('batch')} images of {shape.get('c_in')} channels, "
             f"{shape.get('size')} × {shape.get('size')} px, to {shape.get('c_out')} channels") if shape else "one batch"
    out.append(
        f"**The yardstick** is ``conv-bn-relu`` (``nn.Conv2d`` → ``nn.BatchNorm2d`` → ``nn.ReLU``) on "
        f"{where}, forward + backward; *÷ conv-bn-relu* is each block's time over it (median of "
        "interleaved repeats).  ``hah`` is ``tt.HaHBlock``; ``+hebbian`` adds ``tt.HebbianLoss`` through "
        "``tt.attach`` (``local``: recomputed in ``penalty()``; ``e2e``: on the forward's "
        "activations); the last three rows are parts alone.\n"
    )
    names = list(res)
    body = [[n, _ms(res[n].get("median_ms")), _x(res[n].get("ratio_vs_conv_bn_relu"))] for n in names]
    out.append(list_table(["block", "forward + backward (ms)", "÷ conv-bn-relu"], body, [40, 30, 30]))

    def draw(plt):
        fig, ax = plt.subplots(figsize=(9, 3.2))
        ax.barh(names, [res[n].get("ratio_vs_conv_bn_relu") or 0 for n in names], color="#2f6f5e")
        ax.axvline(1.0, color="k", lw=1, ls="--")
        ax.invert_yaxis()
        ax.set_xlabel("forward + backward time ÷ conv-bn-relu (×)")
        fig.tight_layout()
        return fig

    if names:
        out.append(_figure(out_dir, "hah_block", draw, "time of each block relative to conv-bn-relu",
                           "Time of each block relative to conv → BatchNorm → ReLU (dashed line: 1 ×), one CPU thread."))
    if str(data.get("device", "cpu")).lower().startswith("cpu"):
        out.append(".. note::\n\n   **Not measured: GPU.**  These are CPU timings; "
                   "``python benchmarks/hah_block.py --device cuda`` times the same on a GPU.\n")
    return "\n".join(out)


#: Benchmarks with a summary of their own; any other JSON gets the generic tables.
RENDERERS: Dict[str, Callable[[Dict[str, Any], Path], str]] = {
    "neighbor_penalty": neighbor_penalty,
    "v1_front": v1_front,
    "hah_block": hah_block,
}
